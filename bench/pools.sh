#!/usr/bin/env bash
# Benchmark (not a test): pool allocate+release on a pre-created pool of 100
# mdevs on the simulated lab (profile `large`), with 1, 8 and 64 concurrent
# clients: CLI processes acting directly (`hostdevctl pool allocate` then
# `release`, two processes per round) and API clients through hostdevd (one
# HTTP request each, as the CLI's client sends it). Closed loop (each client
# asks again as soon as it is answered: the most the path gives), then 64 API
# clients paced to 2000 allocations/s together (open loop: the latency an
# allocation sees at that rate, counted from when it was due). Prints
# allocations/s, the p50/p99 latency of allocate and release, and the
# daemon/direct ratio.
# The state database is on the lab root's filesystem (a temp dir: tmpfs or
# disk, as `mktemp -d` gives; HOSTDEV_BENCH_DIR chooses).
# Usage: bench/pools.sh [OPS_PER_CLIENT]   (needs root and FUSE)
set -euo pipefail
cd "$(dirname "$0")/.."
OPS=${1:-200}
cargo build -q --release -p hostdevctl -p hostdevd -p hostdev-sim -p hostdev-testkit
W=$(mktemp -d "${HOSTDEV_BENCH_DIR:-/tmp}/hostdev-pools.XXXXXX")
R=$W/root
mkdir -p "$R"
target/release/hostdev-sim run --root "$R" --profile large >"$W/sim.log" 2>&1 &
SIM=$!
cleanup() {
  [[ -n ${D:-} ]] && kill "$D" 2>/dev/null && wait "$D" 2>/dev/null
  kill "$SIM" 2>/dev/null
  wait "$SIM" 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
for _ in $(seq 100); do [[ -e $R/sys/class/mdev_bus ]] && break; sleep 0.1; done
export HOSTDEV_ROOT=$R HOSTDEV_SOCKET=
H=target/release/hostdevctl
mkdir -p "$R/etc/hostdev/pools.d"
printf 'kind = "mdev"\ntype = "nvidia-260"\nmode = "pre-created"\ncount = 100\n' >"$R/etc/hostdev/pools.d/ready.toml"
$H pool reconcile >/dev/null
echo "pool: $($H pool list | tail -1)"
echo "state database on $(stat -f -c %T "$R") ($W)"
printf 'uevents = false\nrestore_on_start = false\nresync_interval_secs = 3600\ngroup = "root"\npool_reconcile_secs = 0\n' >"$W/d.toml"
target/release/hostdevd --config "$W/d.toml" --socket "$R/run/hostdevd.sock" 2>"$W/d.log" &
D=$!
for _ in $(seq 100); do [[ -S $R/run/hostdevd.sock ]] && break; sleep 0.05; done
printf '%-22s %8s %10s %12s %12s %12s %12s %7s\n' path clients "allocs/s" "alloc p50" "alloc p99" "release p50" "release p99" failed
declare -A rate
for c in 1 8 64; do
  n=$(( c == 64 ? OPS / 4 : OPS ))
  cli_ops=$(( n / 4 > 0 ? n / 4 : 1 ))
  read -r _ r a50 a99 r50 r99 f < <(target/release/hostdev-testkit pool-load cli "$PWD/$H" ready "$c" "$cli_ops")
  printf '%-22s %8s %10s %10sms %10sms %10sms %10sms %7s\n' "CLI processes, direct" "$c" "$r" "$a50" "$a99" "$r50" "$r99" "$f"
  rate[cli$c]=$r
  read -r _ r a50 a99 r50 r99 f < <(target/release/hostdev-testkit pool-load api "$R/run/hostdevd.sock" ready "$c" "$n")
  printf '%-22s %8s %10s %10sms %10sms %10sms %10sms %7s\n' "API via hostdevd" "$c" "$r" "$a50" "$a99" "$r50" "$r99" "$f"
  rate[api$c]=$r
done
# The goal's measure: 64 clients that together start 2000 allocations/s on a
# fixed schedule (open loop; latency counted from when each was due).
read -r _ r a50 a99 r50 r99 f < <(target/release/hostdev-testkit pool-load api "$R/run/hostdevd.sock" ready 64 $((OPS / 2)) 2000)
printf '%-22s %8s %10s %10sms %10sms %10sms %10sms %7s\n' "API, paced 2000/s" 64 "$r" "$a50" "$a99" "$r50" "$r99" "$f"
echo "goal (via hostdevd, 64 clients): >= 2000 allocs/s closed loop: ${rate[api64]}; p99 < 10 ms at 2000/s paced: ${a99} ms"
for c in 1 8 64; do
  echo "clients $c: hostdevd/direct throughput = $(python3 -c "print(round(${rate[api$c]}/max(${rate[cli$c]},1),1))")x"
done
echo "daemon RSS after: $(awk '/VmRSS/{print $2/1024 " MiB"}' /proc/$D/status)"
