#!/bin/sh
# A domain holding a pool mtty device live-migrated between two libvirt
# "hosts" with plain `virsh migrate --live`: run inside the kernel lab by
# tests/kernel (libvirt_migrates_a_pool_device_between_two_hosts). Hosts A
# and B (twohosts.sh: a libvirtd 11 with QEMU 10 each, own namespaces, host
# UUID, state and sockets, hostdev's hook installed) have the same
# on-demand mtty pool; the domain names a UUID bound to A's pool and runs
# (firmware only, TCG) with the QEMU properties mtty needs to migrate. It
# goes A → B and back; then B refuses it three times: its pool hands out
# another type, its pool is full, its driver policy refuses the source's
# driver version.
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
# pool HOST TYPE [LIMIT [DRIVER_POLICY]]
pool() { mkdir -p $MIG/$1/etc-hostdev/pools.d
  { printf 'kind = "mdev"\ntype = "%s"\nmode = "on-demand"\nlimit = %s\n' "$2" "${3:-2}"
    [ -n "${4:-}" ] && printf '[migration]\ndriver_policy = "%s"\n' "$4"
  } > $MIG/$1/etc-hostdev/pools.d/tty.toml; }
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

# A destination whose pool of the right type has no room left: refused.
pool B mtty-2 1
h B pool allocate tty --consumer other-vm
h B pool show tty
mig A B
state A
state B
kernel
h B pool show tty
h B pool release --consumer other-vm

# A source whose driver is another version than the destination's, under a
# destination policy that asks for the same version: refused. (Both hosts
# share one kernel here, so the source's spec in the domain's metadata is
# edited to tell another mtty version, as a host with an older build would.)
pool B mtty-2 2 version
old=$(vh A metadata mig-vm --uri urn:hostdev:domain:1 2>&1)
new=$(printf '%s' "$old" | sed -E 's/((&quot;|")version(&quot;|"):)(null|(&quot;|")[^"&]*(&quot;|"))/\1"0.0-older"/')
[ "$new" != "$old" ] || echo "the source's spec tells no driver version: $old"
v A metadata mig-vm --uri urn:hostdev:domain:1 --key hostdev --set "$new" --live
echo "source spec driver: $(vh A metadata mig-vm --uri urn:hostdev:domain:1 2>&1 | grep -o -E '(&quot;|")version(&quot;|"):[^,}]*' | head -n1)"
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
