#!/bin/sh
# A domain holding a pool mtty device live-migrated between two libvirt
# "hosts" with plain `virsh migrate --live`: run inside the kernel lab by
# tests/kernel (libvirt_migrates_a_pool_device_between_two_hosts). Hosts A
# and B (twohosts.sh: a libvirtd 11 with QEMU 10 each, own namespaces, host
# UUID, state and sockets, hostdev's hook installed) have the same
# on-demand mtty pool; the domain names a UUID bound to A's pool and runs
# (firmware only, TCG) with the QEMU properties mtty needs to migrate. It
# goes A → B and back; then B's pool hands out another type and refuses.
# Prints a transcript (each command with its output and status, what the
# kernel and each pool hold); the test asserts on it.
#   migrate.sh HOSTDEVCTL
set -u
H=$1
U1=b0020000-0000-4000-8000-000000000001
DOM=c0020000-0000-4000-8000-000000000001
. "$(dirname "$0")/twohosts.sh"
# The transcript goes to the test and, as it is made, to the lab's console
# (what a guest that times out leaves to read).
main() {

h() { n=$1; shift; echo "\$ [$n] hostdevctl $*"; on $n "$H" "$@" 2>&1; echo "rc=$?"; }
v() { n=$1; shift; echo "\$ [$n] virsh $*"; vh $n "$@" 2>&1; echo "rc=$?"; }
# Every mdev in the one kernel under both hosts, with its type.
kernel() { echo "kernel: $(cd /sys/bus/mdev/devices && for u in *; do
  [ -e "$u" ] && printf '%s %s; ' "$u" "$(basename "$(readlink "$u/mdev_type")")"; done)"; }
pool() { mkdir -p $MIG/$1/etc-hostdev/pools.d
  printf 'kind = "mdev"\ntype = "%s"\nmode = "on-demand"\nlimit = 2\n' "$2" > $MIG/$1/etc-hostdev/pools.d/tty.toml; }
# hostdev's metadata in the domain's live XML on host N (the annotation the
# hook started is written once libvirtd's start job ends).
meta() { i=0; until vh $1 metadata mig-vm --uri urn:hostdev:domain:1 >/dev/null 2>&1 || [ $i -ge 150 ]; do sleep 0.2; i=$((i+1)); done
  echo "metadata on $1: $(vh $1 metadata mig-vm --uri urn:hostdev:domain:1 2>&1 | grep -o 'pool="[^"]*" kind="[^"]*" id="[^"]*"')"; }
state() { echo "state on $1: $(vh $1 domstate mig-vm 2>&1 | head -n1)"; }
uuid_on() { vh $1 dumpxml mig-vm 2>/dev/null | grep -o "address uuid='[^']*'" | sed "s/.*='//; s/'//"; }

host_up A 11111111-1111-4111-8111-111111111111
host_up B 22222222-2222-4222-8222-222222222222
echo "hosts: $(vh A hostname) $(vh B hostname) $(vh A version | grep -o 'Running hypervisor: QEMU [0-9.]*')"
pool A mtty-2
pool B mtty-2
h A pool bind tty --uuid $U1

cat > $MIG/mig-vm.xml <<XML
<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>mig-vm</name>
  <uuid>$DOM</uuid>
  <memory unit='MiB'>32</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <hostdev mode='subsystem' type='mdev' model='vfio-pci' managed='no'>
      <source><address uuid='$U1'/></source>
      <alias name='ua-tty0'/>
    </hostdev>
    <memballoon model='none'/>
  </devices>
  <qemu:override>
    <qemu:device alias='ua-tty0'>
      <qemu:frontend>
        <qemu:property name='x-device-dirty-page-tracking' type='string' value='off'/>
        <qemu:property name='enable-migration' type='string' value='on'/>
      </qemu:frontend>
    </qemu:device>
  </qemu:override>
</domain>
XML
v A define $MIG/mig-vm.xml
v A start mig-vm
state A
kernel
meta A

mig() { # FROM TO (virsh's blank line after a silent success dropped)
  rm -f $MIG/qemu.sock
  echo "\$ [$1] virsh migrate --live mig-vm (to $2)"
  out=$(vh $1 migrate --live mig-vm "qemu+unix:///system?socket=$MIG/$2/run/libvirt/libvirt-sock" \
    --migrateuri "unix://$MIG/qemu.sock" 2>&1)
  rc=$?
  [ -n "$out" ] && echo "$out"
  echo "rc=$rc"
}
mig A B
state A
state B
echo "uuid on B: $(uuid_on B)"
kernel
h A pool show tty
h B pool show tty
meta B
mig B A
state A
state B
echo "uuid on A: $(uuid_on A)"
kernel
h A pool show tty
h B pool show tty

# A destination whose pool hands out another type: refused before QEMU
# starts there, with hostdev's reason; the domain keeps running on A.
pool B mtty-1
mig A B
state A
state B
kernel
h B pool show tty
v A destroy mig-vm
kernel
h A pool show tty
v A undefine mig-vm
host_down A
host_down B
for n in A B; do
  echo "--- $n libvirtd log (tail)"; grep -v 'getaddrinfo failed' $MIG/$n/libvirtd.log | tail -n 12
  for f in $MIG/$n/var-log-libvirt/qemu/*.log; do [ -s "$f" ] && { echo "--- $f (tail)"; tail -n 6 "$f"; }; done
done
}
if [ -w /dev/console ]; then main 2>&1 | tee /dev/console; else main; fi
exit 0
