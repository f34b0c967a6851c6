#!/bin/sh
# libvirt's node-device API driving an mdevctl: run inside the kernel lab by
# tests/kernel/libvirt.rs, once with Debian's mdevctl and once with hostdev's binary
# first in libvirtd's PATH under the name mdevctl. Prints a transcript of every
# virsh command (output and exit status) and the stored definition; the test
# compares the two transcripts.
#   nodedev.sh MDEVCTL_DIR   (a directory whose `mdevctl` libvirtd should run)
set -u
MDEVCTL_DIR=$1
U=a1b2c3d4-0000-4000-8000-000000000001
mkdir -p /var/lib/libvirt /var/cache/libvirt /var/log/libvirt /run/udev
grep -q '^libvirt-qemu:' /etc/passwd || {
  echo 'libvirt-qemu:x:64055:64055:Libvirt Qemu:/var/lib/libvirt:/usr/sbin/nologin' >> /etc/passwd
  echo 'libvirt-qemu:x:64055:' >> /etc/group; echo 'kvm:x:64056:' >> /etc/group; }
# udevd tells libvirt when devices come and go, as on a host.
pgrep -x systemd-udevd >/dev/null || /lib/systemd/systemd-udevd --daemon >/dev/null 2>&1
PATH="$MDEVCTL_DIR:$PATH" /usr/sbin/libvirtd > /tmp/libvirtd.log 2>&1 &
LPID=$!
i=0; until virsh -c qemu:///system version >/dev/null 2>&1 || [ $i -ge 150 ]; do sleep 0.2; i=$((i+1)); done

v() { echo "\$ virsh $*"; virsh -c qemu:///system "$@" 2>&1; echo "rc=$?"; }
cat > /tmp/mdev.xml <<XML
<device>
  <parent>mtty_mtty</parent>
  <capability type='mdev'>
    <type id='mtty-2'/>
    <uuid>$U</uuid>
  </capability>
</device>
XML
v nodedev-define /tmp/mdev.xml
N=$(virsh -c qemu:///system nodedev-list --cap mdev --all 2>/dev/null | grep "$(echo $U | tr - _)" | head -n1)
echo "node device: $N"
v nodedev-list --cap mdev --all
v nodedev-dumpxml "$N"
v nodedev-info "$N"
v nodedev-autostart "$N"
v nodedev-info "$N"
echo "stored: $(cat /etc/mdevctl.d/mtty/$U 2>&1 | tr -d ' \n')"
v nodedev-autostart --disable "$N"
v nodedev-info "$N"
echo "stored: $(cat /etc/mdevctl.d/mtty/$U 2>&1 | tr -d ' \n')"
v nodedev-start "$N"
echo "kernel: $(readlink /sys/bus/mdev/devices/$U/mdev_type 2>&1 | sed 's|.*/||')"
v nodedev-list --cap mdev
v nodedev-info "$N"
v nodedev-destroy "$N"
echo "kernel: $(ls /sys/bus/mdev/devices/ | grep -c $U)"
v nodedev-undefine "$N"
v nodedev-list --cap mdev --all
echo "stored: $(ls /etc/mdevctl.d/mtty/ 2>&1 | grep -c $U)"
kill $LPID; wait $LPID 2>/dev/null
