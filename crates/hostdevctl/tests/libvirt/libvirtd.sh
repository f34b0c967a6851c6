# Sourced by the lab's libvirt scenarios (pools.sh, display.sh): a libvirtd
# that runs QEMU domains inside the lab guest. The guest is a chroot on an
# overlay: QEMU runs as root, without the security driver, cgroups or a
# private /dev, and logs to a file. `libvirtd_start` after the hooks are in
# place; `libvirtd_stop` at the end restores qemu.conf. `v` runs virsh and
# prints a transcript line; `h` runs hostdevctl ($H) likewise.
mkdir -p /var/lib/libvirt /var/cache/libvirt /var/log/libvirt /run/udev
grep -q '^libvirt-qemu:' /etc/passwd || {
  echo 'libvirt-qemu:x:64055:64055:Libvirt Qemu:/var/lib/libvirt:/usr/sbin/nologin' >> /etc/passwd
  echo 'libvirt-qemu:x:64055:' >> /etc/group; echo 'kvm:x:64056:' >> /etc/group; }
rm -f /tmp/qemu.conf.lab
[ -e /etc/libvirt/qemu.conf ] && cp /etc/libvirt/qemu.conf /tmp/qemu.conf.lab
cat > /etc/libvirt/qemu.conf <<'CONF'
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
CONF
pgrep -x systemd-udevd >/dev/null || /lib/systemd/systemd-udevd --daemon >/dev/null 2>&1

h() { echo "\$ hostdevctl $*"; "$H" "$@" 2>&1; echo "rc=$?"; }
v() { echo "\$ virsh $*"; virsh -c qemu:///system "$@" 2>&1; echo "rc=$?"; }

libvirtd_start() {
  /usr/sbin/libvirtd > /tmp/libvirtd.log 2>&1 &
  LPID=$!
  i=0; until virsh -c qemu:///system version >/dev/null 2>&1 || [ $i -ge 300 ]; do sleep 0.2; i=$((i+1)); done
}

libvirtd_stop() {
  kill $LPID; wait $LPID 2>/dev/null
  if [ -e /tmp/qemu.conf.lab ]; then cp /tmp/qemu.conf.lab /etc/libvirt/qemu.conf; else rm -f /etc/libvirt/qemu.conf; fi
  echo "--- libvirtd log (tail)"; tail -n 15 /tmp/libvirtd.log
}
