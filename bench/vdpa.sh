#!/usr/bin/env bash
# Benchmark (not a test): add and delete 256 vDPA devices on vdpa_sim_net in
# the kernel lab guest, hostdev against a loop of iproute2's `vdpa dev add/del`,
# in the same run: hostdev one process per operation, and one `hostdevctl
# apply` of a host file with 256 [[vdpa]] devices (one netlink socket; it
# also writes 256 definitions), then one apply of an empty file (deletes
# them and their definitions). Usage: bench/vdpa.sh   (runs `cargo xtask lab`)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release -p hostdevctl
cat > target/vdpa-bench.sh <<'GUEST'
H=$PWD/target/release/hostdevctl
N=256
ms() { date +%s%N; }
t0=$(ms); for i in $(seq $N); do vdpa dev add name ip$i mgmtdev vdpasim_net; done; t1=$(ms)
for i in $(seq $N); do vdpa dev del ip$i; done; t2=$(ms)
for i in $(seq $N); do $H vdpa add hd$i --mgmtdev vdpasim_net; done; t3=$(ms)
for i in $(seq $N); do $H vdpa del hd$i; done; t4=$(ms)
F=$(mktemp); E=$(mktemp); printf '[host]\nid = "bench"\n' > $E; cp $E $F
for i in $(seq $N); do printf '[[vdpa]]\nname = "ha%d"\nmgmtdev = "vdpasim_net"\nmac = "52:54:00:01:%02x:%02x"\n' $i $((i/256)) $((i%256)) >> $F; done
t5=$(ms); $H apply --file $F > /dev/null; t6=$(ms)
$H apply --file $E > /dev/null; t7=$(ms)
test "$(vdpa dev show | wc -l)" = 0 || echo "warning: devices left after the empty apply"
echo "256 vDPA devices on vdpa_sim_net, one process per operation, wall time (TCG guest)"
echo "| operation | iproute2 vdpa (ms) | hostdev (ms) | hostdev / iproute2 |"
echo "|---|---:|---:|---:|"
awk -v a=$(( (t1-t0)/1000000 )) -v b=$(( (t3-t2)/1000000 )) 'BEGIN{printf "| add x256 | %d | %d | %.2f |\n", a, b, b/a}'
awk -v a=$(( (t2-t1)/1000000 )) -v b=$(( (t4-t3)/1000000 )) 'BEGIN{printf "| del x256 | %d | %d | %.2f |\n", a, b, b/a}'
echo
echo "The same 256 devices by one host-file apply (one process, one netlink socket, definitions written)"
echo "| operation | iproute2 vdpa loop (ms) | hostdevctl apply (ms) | apply / iproute2 |"
echo "|---|---:|---:|---:|"
awk -v a=$(( (t1-t0)/1000000 )) -v b=$(( (t6-t5)/1000000 )) 'BEGIN{printf "| add x256 | %d | %d | %.2f |\n", a, b, b/a}'
awk -v a=$(( (t2-t1)/1000000 )) -v b=$(( (t7-t6)/1000000 )) 'BEGIN{printf "| del x256 | %d | %d | %.2f |\n", a, b, b/a}'
GUEST
cargo xtask lab -- 'sh target/vdpa-bench.sh'
