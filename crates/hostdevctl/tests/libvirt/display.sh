#!/bin/sh
# The libvirt element `hostdevctl -o libvirt probe` prints, started under
# libvirtd: run inside the kernel lab by tests/kernel
# (libvirt_starts_what_probe_prints_and_the_display_notes_hold). For mdpy
# (region display), mbochs (dma-buf) and mtty (none): the element, then a
# domain with it alone and with a VNC <graphics>, each started paused.
#   display.sh HOSTDEVCTL
set -u
H=$1
. "$(dirname "$0")/libvirtd.sh"
libvirtd_start
for p in "mdpy mdpy-vga" "mbochs mbochs-small" "mtty mtty-2"; do
  set -- $p
  u=$("$H" mdev start -p $1 -t $2 | tail -n1)
  el=$("$H" -o libvirt probe $u)
  echo "== $1"
  echo "$el"
  for g in none vnc; do
    gx=""; [ $g = vnc ] && gx="<graphics type='vnc' listen='127.0.0.1' autoport='yes'/>"
    cat > /tmp/display-$1.xml <<XML
<domain type='qemu'><name>display-$1</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type></os>
<devices><emulator>/usr/bin/qemu-system-x86_64</emulator>$gx
$el
<memballoon model='none'/></devices></domain>
XML
    echo "-- $1 with graphics $g"
    virsh -c qemu:///system create /tmp/display-$1.xml --paused 2>&1 | grep -v '^$' | sed 's/^.*\(opengl not available\).*$/error: ... \1/'
    virsh -c qemu:///system destroy display-$1 >/dev/null 2>&1
  done
  "$H" mdev stop -u $u
done
libvirtd_stop
exit 0
