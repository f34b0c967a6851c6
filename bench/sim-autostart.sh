#!/usr/bin/env bash
# Benchmark (not a test): restoring 512 auto-start devices on the simulated
# `large` profile (16 NVIDIA-like GPUs, 5 ms per create), after a simulated
# reboot each time. hostdev's `autostart` (parents in parallel, each parent's
# devices in order) against Debian's mdevctl `start-parent-mdevs` run for each
# parent one after the other (its per-parent serial time is the floor hostdev
# should approach). Usage: bench/sim-autostart.sh   (root, fuse3, mdevctl)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release -p hostdevctl -p hostdev-sim
BIN=$PWD/target/release
LAB=$(mktemp -d /dev/shm/hostdev-simbench.XXXXXX)
"$BIN/hostdev-sim" run --root "$LAB" --profile large 2>/dev/null &
SIM=$!
trap 'kill -TERM $SIM 2>/dev/null; wait $SIM 2>/dev/null; rm -rf "$LAB"' EXIT
for _ in $(seq 200); do [[ -e $LAB/run/hostdev-sim.pid ]] && break; sleep 0.05; done
parents=$(ls "$LAB/sys/class/mdev_bus")
n=0
for p in $parents; do
  mkdir -p "$LAB/etc/mdevctl.d/$p"
  for i in $(seq 0 31); do
    u=$(printf '5e1f0000-0000-4000-8000-%04x%08x' "$n" "$i")
    printf '{\n  "mdev_type": "nvidia-256",\n  "start": "auto",\n  "attrs": []\n}' > "$LAB/etc/mdevctl.d/$p/$u"
  done
  n=$((n + 1))
done
ms() { date +%s%N; }
running() { ls "$LAB/sys/bus/mdev/devices" | wc -l; }

"$BIN/hostdev-sim" reboot --root "$LAB"
t0=$(ms); HOSTDEV_ROOT=$LAB "$BIN/hostdevctl" autostart >/dev/null; t1=$(ms)
ours=$(( (t1 - t0) / 1000000 )); ours_n=$(running)

"$BIN/hostdev-sim" reboot --root "$LAB"
peer_total=0; peer_max=0
for p in $parents; do
  a=$(ms)
  unshare -m sh -c 'mount --make-rprivate / && mount --bind "$0/sys" /sys && mount --bind "$0/etc/mdevctl.d" /etc/mdevctl.d && exec mdevctl start-parent-mdevs "$1"' "$LAB" "$p"
  b=$(ms); d=$(( (b - a) / 1000000 ))
  peer_total=$((peer_total + d)); ((d > peer_max)) && peer_max=$d
done
peer_n=$(running)

"$BIN/hostdev-sim" reboot --root "$LAB"
our_par_max=0
for p in $parents; do
  a=$(ms); HOSTDEV_ROOT=$LAB "$BIN/hostdevctl" mdev start-parent-mdevs "$p"; b=$(ms)
  d=$(( (b - a) / 1000000 )); ((d > our_par_max)) && our_par_max=$d
done

echo "512 auto-start devices, 16 parents x 32, 5 ms per create (simulated), wall time after a simulated reboot"
echo "| what | devices running | wall (ms) |"
echo "|---|---:|---:|"
echo "| hostdev autostart (parents in parallel) | $ours_n | $ours |"
echo "| mdevctl start-parent-mdevs, 16 parents one after another | $peer_n | $peer_total |"
echo "| mdevctl start-parent-mdevs, slowest single parent | - | $peer_max |"
echo "| hostdev start-parent-mdevs, slowest single parent | - | $our_par_max |"
awk -v a="$ours" -v b="$peer_total" -v c="$peer_max" 'BEGIN{printf "hostdev autostart / mdevctl serial total = %.3f; / slowest parent serial = %.2f\n", a/b, a/c}'
