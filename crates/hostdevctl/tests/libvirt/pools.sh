#!/bin/sh
# A pool behind libvirt's qemu hook: run inside the kernel lab by
# tests/kernel (libvirt_starts_domains_from_a_pool_through_the_hook).
# An on-demand mtty pool of two devices, three pool-bound UUIDs, the hook
# installed by hostdevctl, libvirtd started after it; three domains (TCG,
# started paused) each naming one of the UUIDs; then a pool whose liveness
# check asks libvirt about its consumers. Prints a transcript: every
# virsh command with its output and exit status, and what the kernel and the
# pool hold after each step; the test asserts on it.
#   pools.sh HOSTDEVCTL
set -u
H=$1
U1=b0010000-0000-4000-8000-000000000001
U2=b0010000-0000-4000-8000-000000000002
U3=b0010000-0000-4000-8000-000000000003
mkdir -p /etc/hostdev/pools.d
. "$(dirname "$0")/libvirtd.sh"
kernel() { for u in $U1 $U2 $U3; do
  if [ -e /sys/bus/mdev/devices/$u ]; then
    echo "kernel: $u $(readlink /sys/bus/mdev/devices/$u/mdev_type | sed 's|.*/||')"
  else echo "kernel: $u absent"; fi; done; }

cat > /etc/hostdev/pools.d/tty.toml <<'TOML'
kind = "mdev"
type = "mtty-2"
mode = "on-demand"
limit = 2
TOML
h pool bind tty --uuid $U1
h pool bind tty --uuid $U2
h pool bind tty --uuid $U3
h libvirt-hook install
echo "hook: $(cat /etc/libvirt/hooks/qemu.d/50-hostdev | tail -n1)"

libvirtd_start

for n in 1 2 3; do
  eval u=\$U$n
  cat > /tmp/pool-vm$n.xml <<XML
<domain type='qemu'>
  <name>pool-vm$n</name>
  <uuid>c0010000-0000-4000-8000-00000000000$n</uuid>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <hostdev mode='subsystem' type='mdev' model='vfio-pci'>
      <source><address uuid='$u'/></source>
    </hostdev>
    <memballoon model='none'/>
  </devices>
</domain>
XML
  v define /tmp/pool-vm$n.xml
done
kernel
v start --paused pool-vm1
v start --paused pool-vm2
v list --all
kernel
h pool show tty
v start --paused pool-vm3
kernel
v destroy pool-vm1
v destroy pool-vm2
kernel
h pool show tty
# The room the first two gave back serves the third.
v start --paused pool-vm3
kernel
v destroy pool-vm3
kernel
# Liveness: reconcile asks libvirt (virsh domstate) about each consumer.
cat > /etc/hostdev/pools.d/live.toml <<'TOML'
kind = "mdev"
type = "mtty-1"
mode = "on-demand"
limit = 4
[liveness]
libvirt = "qemu:///system"
running = true
TOML
v start --paused pool-vm1
h pool allocate live --consumer pool-vm1
h pool allocate live --consumer pool-vm2
h pool allocate live --consumer no-such-vm
h pool reconcile
h pool show live
v destroy pool-vm1
h pool reconcile
echo "live devices: $(ls /sys/class/mdev_bus/mtty/mdev_supported_types/mtty-1/devices | wc -l)"
for n in 1 2 3; do virsh -c qemu:///system undefine pool-vm$n >/dev/null 2>&1; done
rm -f /etc/libvirt/hooks/qemu.d/50-hostdev /etc/hostdev/pools.d/tty.toml /etc/hostdev/pools.d/live.toml
libvirtd_stop
for n in 1 2 3; do
  [ -s /var/log/libvirt/qemu/pool-vm$n.log ] && { echo "--- pool-vm$n log (tail)"; tail -n 5 /var/log/libvirt/qemu/pool-vm$n.log; }
done
exit 0
