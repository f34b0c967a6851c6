#!/usr/bin/env bash
# Benchmark (not a test): hostdevd against the direct path and Debian's mdevctl
# on a generated host (16 parents x 32 types, 2000 devices, 5000 definitions),
# in one run and one private mount namespace (the tree bound over /sys and
# /etc/mdevctl.d), on tmpfs and on a disk-backed directory.
#  1. `hostdevctl list` direct vs through the daemon: p50/p99 wall time per
#     command, CPU per command (client + daemon);
#  2. the daemon's RSS idle and its peak under 64 concurrent clients;
#  3. what libvirt runs on every refresh — mdevctl's `list --dumpjson
#     --defined` and `list --dumpjson` — direct, through the daemon and
#     Debian's mdevctl: CPU per command (outputs compared byte for byte).
# Usage: bench/daemon.sh [RUNS]   (needs root, unshare, apt-get install mdevctl)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-40}
cargo build -q --release -p hostdevctl -p hostdevd -p hostdev-testkit
DISK=${HOSTDEV_BENCH_DISK:-/var/tmp}
for base in /dev/shm "$DISK"; do
  W=$(mktemp -d "$base/hostdev-bench.XXXXXX")
  trap 'rm -rf "$W"' EXIT
  target/release/hostdev-testkit gen "$W/tree" --parents 16 --types 32 --devices 2000 --definitions 5000
  mkdir -p "$W/bin" && ln -s "$PWD/target/release/hostdevctl" "$W/bin/mdevctl" &&
    ln -s "$PWD/target/release/hostdevctl" "$W/bin/hostdevctl"
  printf 'uevents = false\nrestore_on_start = false\nresync_interval_secs = 3600\ngroup = "root"\n' > "$W/d.toml"
  cp bench/daemon_measure.py "$W/measure.py"
  echo "## tree on $(stat -f -c %T "$W") ($base)"
  unshare -m sh -c 'mount --make-rprivate / && mount --bind "$0/tree/sys" /sys && mkdir -p /etc/mdevctl.d &&
    mount --bind "$0/tree/etc/mdevctl.d" /etc/mdevctl.d &&
    python3 "$0/measure.py" "$1" "$0" "$2"' "$W" "$RUNS" "$PWD/target/release/hostdevd"
  rm -rf "$W"
done
