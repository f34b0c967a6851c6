#!/usr/bin/env bash
# Benchmark (not a test): CPU time of list/types on a generated host, hostdev's
# mdevctl personality against Debian's mdevctl, measured in the same run and
# the same private mount namespace (the tree bound over /sys and /etc/mdevctl.d).
# Usage: bench/mdev-list.sh [RUNS]   (needs root, unshare, apt-get install mdevctl)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
cargo build -q --release -p hostdevctl -p hostdev-testkit
# The tree lives on tmpfs, like sysfs: disk writeback (atime) would only add noise.
W=$(mktemp -d /dev/shm/hostdev-bench.XXXXXX)
trap 'rm -rf "$W"' EXIT
target/release/hostdev-testkit gen "$W/tree" --parents 16 --types 32 --devices 2000 --definitions 5000
mkdir -p "$W/bin" && ln -s "$PWD/target/release/hostdevctl" "$W/bin/mdevctl"
cat > "$W/measure.py" <<'PY'
import os, resource, subprocess, sys
runs, ours = int(sys.argv[1]), sys.argv[2]
cases = [["list"], ["list", "-d"], ["list", "--dumpjson"], ["types"], ["types", "--dumpjson"]]
def cpu(argv):
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # warm-up, not measured
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = None
    for _ in range(runs):
        out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)) / runs * 1000, out
print(f"host: 16 parents x 32 types, 2000 running devices, 5000 definitions; {runs} runs each, CPU time (user+sys) per run")
print(f"| command | mdevctl 1.2 (ms) | hostdev (ms) | hostdev / mdevctl |")
print(f"|---|---:|---:|---:|")
for c in cases:
    peer, a = cpu(["/usr/bin/mdevctl"] + c)
    mine, b = cpu([ours] + c)
    same = "" if a == b else " (OUTPUT DIFFERS)"
    print(f"| {' '.join(c)} | {peer:.1f} | {mine:.1f} | {mine / peer:.3f}{same} |")
PY
unshare -m sh -c 'mount --make-rprivate / && mount --bind "$0/tree/sys" /sys && mkdir -p /etc/mdevctl.d &&
  mount --bind "$0/tree/etc/mdevctl.d" /etc/mdevctl.d && python3 "$0/measure.py" "$1" "$0/bin/mdevctl"' "$W" "$RUNS"
