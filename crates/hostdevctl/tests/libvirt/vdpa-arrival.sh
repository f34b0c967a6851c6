#!/bin/sh
# hostdev's hook answering libvirt's `migrate begin` for a domain that holds
# a pool vDPA device, on the lab's real kernel (vdpa_sim_net): run by
# tests/kernel (the_hook_gives_an_arriving_vdpa_interface_a_device_with_the_sources_config).
# Hosts A and B (twohosts.sh: own namespaces, /etc/hostdev and
# /var/lib/hostdev, hostdev's hook installed in their libvirt) each have a
# vDPA pool `nics` of their own naming and MACs. A's pool gives the domain
# a device; its metadata (what `libvirt-hook annotate` writes) goes into the
# domain XML, which B's installed hook reads on stdin as libvirt hands it
# over: B makes a device with A's creation config (A's MAC, not B's), prints
# the XML with the interface's vhost-vdpa path rewritten, and libvirt's
# `prepare` and `release` on B keep and then give it back. Then B's pool of
# another kind refuses, printing nothing and making nothing. Prints a
# transcript; the test asserts on it.
#   vdpa-arrival.sh HOSTDEVCTL
set -u
H=$1
DOM=c0020000-0000-4000-8000-0000000000d1
. "$(dirname "$0")/twohosts.sh"
main() {

# The kernel's vdpa netlink family is served in the initial network
# namespace only (a host in its own one is told "no vdpa netlink family"),
# so commands here join a host's mount and UTS namespaces and not its
# network namespace; libvirtd is not asked to run anything.
onm() { n=$1; shift; nsenter -t "$(cat $MIG/$n/pid)" -m -u -r -w "$@"; }
h() { n=$1; shift; echo "\$ [$n] hostdevctl $*"; onm $n "$H" "$@" 2>&1; echo "rc=$?"; }
# pool HOST PREFIX MAC-BASE
pool() { mkdir -p $MIG/$1/etc-hostdev/pools.d
  printf 'kind = "vdpa"\nlimit = 2\n[vdpa]\nname_prefix = "%s"\nmac_base = "%s"\n[members]\nparents = ["vdpasim_net"]\n' \
    "$2" "$3" > $MIG/$1/etc-hostdev/pools.d/nics.toml; }
# The vDPA devices of the one kernel under both hosts, each with its
# vhost-vdpa character device and MAC.
kernel() { echo "kernel: $(for d in /sys/bus/vdpa/devices/*; do [ -e "$d" ] || continue
  n=$(basename "$d"); printf '%s %s %s; ' "$n" "$(vhost "$n")" \
    "$(vdpa dev config show "$n" 2>/dev/null | grep -o 'mac [0-9a-f:]*' | cut -d' ' -f2)"; done)"; }
vhost() { for v in /sys/bus/vdpa/devices/$1/vhost-vdpa-*; do [ -e "$v" ] && echo "/dev/$(basename "$v")"; done; }
# The installed hook (libvirt's qemu.d entry) on host N, XML on stdin.
hook() { n=$1 op=$2 sub=$3 in=$4 out=$5
  echo "\$ [$n] qemu hook mig-vm $op $sub - < $(basename "$in")"
  onm $n /etc/libvirt/hooks/qemu.d/50-hostdev mig-vm "$op" "$sub" - < "$in" > "$out" 2> $MIG/hook.err
  rc=$?; cat $MIG/hook.err; echo "rc=$rc"; }

host_up A 11111111-1111-4111-8111-111111111111
host_up B 22222222-2222-4222-8222-222222222222
pool A anet 52:54:00:00:10:00
pool B bnet 52:54:00:00:20:00
h A pool allocate nics --consumer $DOM
SRC=$(vhost anet0)
echo "source: $SRC"
kernel
META=$(onm A "$H" libvirt-hook annotate $DOM --print 2>&1)
echo "metadata on A: $(printf '%s' "$META" | grep -o 'pool="[^"]*" kind="[^"]*" id="[^"]*"')"
cat > $MIG/in.xml <<XML
<domain type='qemu'>
  <name>mig-vm</name>
  <uuid>$DOM</uuid>
  <metadata>$META</metadata>
  <memory unit='MiB'>32</memory>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <interface type='vdpa'>
      <mac address='52:54:00:00:10:00'/>
      <source dev='$SRC'/>
      <model type='virtio'/>
      <alias name='ua-net0'/>
    </interface>
  </devices>
</domain>
XML

h B migrate domain $MIG/in.xml
hook B migrate begin $MIG/in.xml $MIG/out.xml
echo "rewritten: $(grep -o '<source dev=[^>]*>' $MIG/out.xml)"
echo "metadata out: $(grep -o 'pool="[^"]*" kind="[^"]*" id="[^"]*"' $MIG/out.xml)"
echo "kept: $(grep -c "<alias name='ua-net0'/>\|<mac address='52:54:00:00:10:00'/>" $MIG/out.xml)"
kernel
h B pool show nics
# libvirt starts the incoming domain with the XML the hook printed, and
# gives its devices back when it ends there.
hook B prepare begin $MIG/out.xml /dev/null
h B pool show nics
hook B release end $MIG/out.xml /dev/null
kernel
h B pool show nics

# B's pool `nics` hands out mdevs: refused, nothing printed, nothing made.
mkdir -p $MIG/B/etc-hostdev/pools.d
printf 'kind = "mdev"\ntype = "mtty-2"\nmode = "on-demand"\nlimit = 2\n' > $MIG/B/etc-hostdev/pools.d/nics.toml
hook B migrate begin $MIG/in.xml $MIG/out2.xml
echo "printed: $(wc -c < $MIG/out2.xml) bytes"
kernel

h A pool release --consumer $DOM
kernel
host_down A
host_down B
}
if [ -w /dev/console ]; then main 2>&1 | tee /dev/console; else main; fi
exit 0
