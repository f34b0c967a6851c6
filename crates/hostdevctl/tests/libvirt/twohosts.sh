# Sourced by the two-host migration scenarios (migrate.sh): two libvirt
# "hosts" on the lab's one kernel. Each is a libvirtd 11 in its own mount,
# UTS and network namespaces (its own hostname, host UUID, /etc/libvirt,
# /var/lib/libvirt, /run, /etc/hostdev, /var/lib/hostdev, /etc/mdevctl.d),
# with libvirt 11 and QEMU 10 from the lab cache laid over /usr (their own
# driver and module directories bound over 9.0's and 7.2's; QEMU 10 crashes
# loading 7.2's modules). Both share libvirt's capabilities cache and see
# /tmp/mig, where their sockets live: `vh A …` runs virsh 11 against host A,
# `on A CMD…` runs a command inside host A's namespaces (hostdevctl there
# sees A's files). QEMU's migration stream goes over a unix socket in
# /tmp/mig, as libvirt documents for hosts that share no network.
# Each host has hostdev's libvirt hook (hostdevctl $H) installed.
#   host_up NAME HOST-UUID; host_down NAME
MIG=/tmp/mig
L11=${LAB_LIBVIRT11:?the lab exports LAB_LIBVIRT11 (libvirt 11 from bookworm-backports)}
Q10=${LAB_QEMU10_ROOT:?the lab exports LAB_QEMU10_ROOT (QEMU 10 from bookworm-backports)}
mkdir -p $MIG
grep -q '^libvirt-qemu:' /etc/passwd || {
  echo 'libvirt-qemu:x:64055:64055:Libvirt Qemu:/var/lib/libvirt:/usr/sbin/nologin' >> /etc/passwd
  echo 'libvirt-qemu:x:64055:' >> /etc/group; echo 'kvm:x:64056:' >> /etc/group; }
# The mount points each host's own directories are bound over.
mkdir -p /etc/libvirt /var/lib/libvirt /var/cache/libvirt /var/log/libvirt /etc/hostdev \
  /var/lib/hostdev /etc/mdevctl.d

# The mounts that make a namespace host NAME; then CMD.
host_enter() {
  n=$1; shift
  d=$MIG/$n
  cat <<SH
set -e
mount --make-rprivate /
mount -t overlay overlay -o lowerdir=$L11/usr:$Q10/usr:/usr /usr
mount --bind $L11/usr/lib/x86_64-linux-gnu/libvirt /usr/lib/x86_64-linux-gnu/libvirt
mount --bind $Q10/usr/lib/x86_64-linux-gnu/qemu /usr/lib/x86_64-linux-gnu/qemu
for p in etc/libvirt var/lib/libvirt var/log/libvirt run etc/hostdev var/lib/hostdev etc/mdevctl.d; do
  mount --bind $d/\$(echo \$p | tr / -) /\$p
done
# One capabilities cache for both: the second host reads what the first
# probed of QEMU 10 instead of probing it again (tens of seconds under TCG).
mount --bind $MIG/var-cache-libvirt /var/cache/libvirt
mkdir -p /run/lock /run/libvirt /run/udev /var/lib/libvirt/qemu /var/log/libvirt/qemu
hostname $n
ip link set lo up 2>/dev/null || true
set +e
SH
}

host_up() {
  n=$1; d=$MIG/$n
  rm -rf $d; mkdir -p $d
  for p in etc-libvirt var-lib-libvirt var-log-libvirt run etc-hostdev var-lib-hostdev etc-mdevctl.d; do mkdir -p $d/$p; done
  mkdir -p $MIG/var-cache-libvirt
  cat > $d/etc-libvirt/qemu.conf <<'CONF'
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
CONF
  printf 'host_uuid = "%s"\nlisten_tls = 0\nlisten_tcp = 0\n' "$2" > $d/etc-libvirt/libvirtd.conf
  mkdir -p $d/etc-libvirt/hooks/qemu.d
  # The hook in place before libvirtd starts (it looks for hooks at start).
  { host_enter $n; echo "\"$H\" libvirt-hook install >/dev/null"; echo "exec /usr/sbin/libvirtd"; } > $d/libvirtd.sh
  unshare -m -u -n sh $d/libvirtd.sh > $d/libvirtd.log 2>&1 &
  echo $! > $d/pid
  # Serving once virsh gets its version (QEMU's capabilities probed);
  # a daemon that exited (a zombie until reaped) or never serves is told.
  # The first host probes QEMU 10's capabilities before it serves.
  pid=$(cat $d/pid); end=$(($(date +%s) + 300))
  until vh $n version >/dev/null 2>&1; do
    if grep -q '^State:.*Z' /proc/$pid/status 2>/dev/null || [ ! -e /proc/$pid ] ||
       [ "$(date +%s)" -ge $end ]; then
      echo "libvirtd of $n is not serving; its log:"; tail -n 20 $d/libvirtd.log; return 1; fi
    sleep 0.5; done
}

# Runs CMD inside host NAME's namespaces (a fresh process that joins them),
# with libvirtd's root and working directory: joining a mount namespace
# resets the root to the namespace's own, which in the lab guest is the
# initramfs under the chroot the tests run in.
on() {
  n=$1; shift
  nsenter -t "$(cat $MIG/$n/pid)" -m -u -n -r -w "$@"
}

vh() { n=$1; shift
  timeout 300 env LD_LIBRARY_PATH=$L11/usr/lib/x86_64-linux-gnu $L11/usr/bin/virsh \
    -c "qemu+unix:///system?socket=$MIG/$n/run/libvirt/libvirt-sock" "$@"; }

# Stops host NAME: its running domains first (a QEMU left behind would
# hold its mdev for the tests after this one), then its libvirtd.
host_down() {
  n=$1
  for dom in $(vh $n list --name 2>/dev/null); do vh $n destroy "$dom" >/dev/null 2>&1; done
  kill "$(cat $MIG/$n/pid)" 2>/dev/null
  i=0; while kill -0 "$(cat $MIG/$n/pid)" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
}
