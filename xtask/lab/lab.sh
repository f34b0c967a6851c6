#!/usr/bin/env bash
# hostdev's real-kernel lab: boots a Debian 6.12 kernel under QEMU 10 with
# vfio-mdev + the sample drivers (mtty, mdpy, mbochs), vdpa + its simulators,
# and a real SR-IOV device: QEMU's Intel 82576 (igb, VFs driven by igbvf or
# vfio-pci) behind a PCIe root port and an emulated Intel IOMMU
# (intel_iommu=on), so its VFs get IOMMU groups; and runs one command inside
# it with the *host's* userland: the host's "/" is
# shared read-only over virtio-9p and made writable in the guest by an overlay
# on tmpfs, so whatever the host has installed (hostdev's test binaries, Debian's
# mdevctl, libvirt, iproute2's vdpa) runs unchanged at the same paths.
#
# QEMU 10 (bookworm-backports) is unpacked into the cache, not installed; it
# runs the guest (Debian 12's QEMU 7.2 has no igb, which came in 8.0) and is
# offered to the command as $LAB_QEMU10 with $LAB_QEMU10_DATA (firmware dirs):
# the migration tests need VFIO migration v2, which Debian 12's QEMU lacks.
# libvirt 11 (its partner there) is unpacked beside it as $LAB_LIBVIRT11 (a
# tree with usr/ and etc/; the two-host migration test lays it and QEMU 10
# over /usr in each host's mount namespace).
#
#   lab.sh prepare        fetch + build what is missing (idempotent, cached)
#   lab.sh run CMD...     boot, run CMD (sh -c) in the current directory, exit with its status
#
# Cache: $HOSTDEV_LAB_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/hostdev/kernel-lab).
# Exit status of run: the command's; 124 guest timeout; 125 lab failure.
# Env: HOSTDEV_LAB_ABI (kernel ABI, e.g. 6.12.117+deb12), HOSTDEV_LAB_TIMEOUT (s, 2700),
#      HOSTDEV_LAB_MEM (MiB, 2048), HOSTDEV_LAB_ACCEL (kvm|tcg|auto), HOSTDEV_LAB_VERBOSE=1,
#      HOSTDEV_LAB_ENV (names of host variables passed to the command).
set -euo pipefail

CACHE=${HOSTDEV_LAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hostdev/kernel-lab}
LAB_VERSION=3                                   # bump when the build below changes
MODULES="vfio vfio_iommu_type1 mdev mtty mdpy mbochs vdpa vdpa_sim_net vdpa_sim_blk vhost_vdpa igb igbvf vfio_pci"
SHIPPED="$MODULES vdpa_sim 9p 9pnet_virtio overlay"

say() { printf '[lab %s] %s\n' "$(date +%T)" "$*" >&2; }
fail() { say "error: $*"; exit 125; }
root_do() { if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

APT_FRESH=0
apt_update() { ((APT_FRESH)) || { root_do apt-get update -q >&2; APT_FRESH=1; }; }

host_tools() {
  local -A want=([qemu-system-x86_64]=qemu-system-x86 [make]=make [gcc-12]=gcc-12 [depmod]=kmod
                 [cpio]=cpio [xz]=xz-utils [dpkg-deb]=dpkg [flock]=util-linux [gzip]=gzip)
  local missing=() c
  for c in "${!want[@]}"; do command -v "$c" >/dev/null || missing+=("${want[$c]}"); done
  for c in libelf1 libssl3 zlib1g busybox-static; do dpkg -s "$c" >/dev/null 2>&1 || missing+=("$c"); done
  if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    apt_update
    root_do env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
  fi
}

pick_kernel() {
  if [[ -n ${HOSTDEV_LAB_ABI:-} ]]; then ABI=$HOSTDEV_LAB_ABI
  elif [[ -s $CACHE/abi ]]; then ABI=$(<"$CACHE/abi")
  else
    apt_update
    ABI=$(apt-cache depends linux-image-6.12-amd64 2>/dev/null |
          sed -n 's/.*Depends: linux-image-\(6\.12\.[0-9]*+deb12\)-amd64$/\1/p' | head -n1)
    [[ -n $ABI ]] || fail "no 6.12 kernel in the apt sources (bookworm-security or -backports needed)"
  fi
  KREL=$ABI-amd64
  K=$CACHE/$ABI
  SYSROOT=$K/sysroot
  KBUILD=$SYSROOT/usr/src/linux-headers-$KREL
}

fetch() {
  [[ -f $K/fetched.$LAB_VERSION ]] && return
  local v; apt_update
  rm -rf "$K"; mkdir -p "$K/debs" "$SYSROOT" "$K/src"
  v=$(apt-cache show --no-all-versions "linux-image-$KREL-unsigned" | awk '/^Version:/{print $2; exit}')
  [[ -n $v ]] || fail "linux-image-$KREL-unsigned is not in the apt sources"
  say "downloading kernel $v"
  ( cd "$K/debs" && apt-get -q -o APT::Sandbox::User=root download \
      "linux-image-$KREL-unsigned" "linux-headers-$KREL" "linux-headers-$ABI-common" \
      "linux-kbuild-$ABI" "linux-source-6.12=$v" >&2 )
  local d
  for d in "$K"/debs/linux-{image,headers,kbuild}-*.deb; do dpkg-deb -x "$d" "$SYSROOT"; done
  # The headers include the -common tree by its absolute /usr/src path.
  sed -i "s|^include /usr/src/|include $SYSROOT/usr/src/|" "$KBUILD/Makefile"
  # From the source only what Debian does not build: the mdev samples and the vDPA simulator.
  dpkg-deb --fsys-tarfile "$K"/debs/linux-source-6.12_*.deb |
    tar -xO ./usr/src/linux-source-6.12.tar.xz |
    tar -xJ -C "$K/src" --strip-components=1 --wildcards \
      'linux-source-6.12/samples/vfio-mdev/*' 'linux-source-6.12/drivers/vdpa/vdpa_sim/*' \
      'linux-source-6.12/drivers/vhost/vringh.c'
  rm -rf "$K/debs"
  echo "$ABI" > "$CACHE/abi"
  touch "$K/fetched.$LAB_VERSION"
}

build_modules() {
  [[ -f $K/modules.$LAB_VERSION ]] && return
  local B=$K/build
  rm -rf "$B"; mkdir -p "$B"
  cp "$K"/src/samples/vfio-mdev/{mtty.c,mdpy.c,mdpy-defs.h,mbochs.c} "$K"/src/drivers/vdpa/vdpa_sim/*.[ch] \
     "$K"/src/drivers/vhost/vringh.c "$B/"
  echo 'obj-m := vringh.o vdpa_sim.o vdpa_sim_net.o vdpa_sim_blk.o mtty.o mdpy.o mbochs.o' > "$B/Kbuild"
  say "building sample modules against $KREL"
  make -s -C "$KBUILD" M="$B" -j"$(nproc)" CONFIG_DEBUG_INFO_BTF_MODULES= modules >&2 || fail "module build failed"
  mkdir -p "$SYSROOT/lib/modules/$KREL/extra"
  cp "$B"/*.ko "$SYSROOT/lib/modules/$KREL/extra/"
  depmod -b "$SYSROOT" "$KREL"
  touch "$K/modules.$LAB_VERSION"
}

# The guest's /init: modules, the host root as an overlay, then the command in a chroot.
INIT='#!/bin/sh
PATH=/bin; export PATH
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
. /lab/env
for m in $LAB_MODULES 9pnet_virtio 9p overlay; do modprobe $m || echo "lab: modprobe $m failed"; done
mkdir -p /lower /rw /newroot
mount -t 9p -o ro,trans=virtio,version=9p2000.L,msize=512000,cache=loose hostroot /lower || echo "lab: 9p mount failed"
mount -t tmpfs -o size=75% tmpfs /rw; mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot || echo "lab: overlay mount failed"
mount -t proc proc /newroot/proc; mount -t sysfs sysfs /newroot/sys; mount -t devtmpfs devtmpfs /newroot/dev
mount -t debugfs debugfs /newroot/sys/kernel/debug 2>/dev/null
# /tmp stays on the overlay (a work tree may live under /tmp of the host); /run starts empty.
mount -t tmpfs tmpfs /newroot/run
mkdir -p /newroot/dev/pts /newroot/dev/shm /newroot/run/lock
mount -t devpts devpts /newroot/dev/pts; mount -t tmpfs tmpfs /newroot/dev/shm
ln -sf /proc/self/fd /newroot/dev/fd; ln -sf /proc/self/fd/0 /newroot/dev/stdin
ln -sf /proc/self/fd/1 /newroot/dev/stdout; ln -sf /proc/self/fd/2 /newroot/dev/stderr
cp /lab/cmd /newroot/tmp/lab-cmd; cp /lab/env /newroot/tmp/lab-env
echo "@@LAB-BEGIN@@"
chroot /newroot /bin/sh -c ". /tmp/lab-env; cd \"\$LAB_CWD\" && . /tmp/lab-cmd </dev/null"
echo "@@LAB-END@@ rc=$?"
sync; poweroff -f
'

initramfs() {
  local key; key=$(printf '%s\n' "$LAB_VERSION" "$INIT" "$SHIPPED" | sha256sum | cut -c1-12)
  INITRD=$K/initramfs-$key.cpio.gz
  [[ -f $INITRD ]] && return
  local R m f; R=$(mktemp -d "$K/initramfs.XXXXXX")
  mkdir -p "$R"/{bin,dev,proc,sys,lab}
  local bb; bb=$(command -v busybox || echo /bin/busybox)
  cp "$bb" "$R/bin/busybox"
  for f in $("$R/bin/busybox" --list); do [[ -e $R/bin/$f ]] || ln -s busybox "$R/bin/$f"; done
  for m in $SHIPPED; do
    modprobe -d "$SYSROOT" -S "$KREL" --show-depends "$m" | awk '$1=="insmod"{print $2}'
  done | sort -u | while read -r f; do
    local rel=${f#"$SYSROOT"}; rel=${rel%.xz}
    mkdir -p "$R$(dirname "$rel")"
    if [[ $f == *.xz ]]; then xz -dc "$f" > "$R$rel"; else cp "$f" "$R$rel"; fi
  done
  cp "$SYSROOT/lib/modules/$KREL"/modules.{builtin,builtin.modinfo,order} "$R/lib/modules/$KREL/"
  depmod -b "$R" "$KREL"
  printf '%s' "$INIT" > "$R/init"; chmod 755 "$R/init"
  (cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) > "$INITRD.tmp"
  mv "$INITRD.tmp" "$INITRD"; rm -rf "$R"
  say "initramfs built: $(du -h "$INITRD" | cut -f1)"
}

# QEMU 10 from bookworm-backports, unpacked into the cache (not installed:
# the host's own QEMU and libvirt stay as Debian 12 has them). Debian 12's 7.2
# predates VFIO migration v2; the migration tests run this one in the guest,
# with -L for its firmware (DOMAIN.md §8).
QEMU10_VERSION=10.0.2
fetch_qemu10() {
  Q=$CACHE/qemu-$QEMU10_VERSION
  [[ -x $Q/usr/bin/qemu-system-x86_64 ]] && return
  local t; t=$(mktemp -d "$CACHE/qemu10.XXXXXX")
  mkdir -p "$t/lists/partial" "$t/debs"
  echo "deb http://deb.debian.org/debian bookworm-backports main" > "$t/sources.list"
  local a=(-o "Dir::Etc::SourceList=$t/sources.list" -o Dir::Etc::SourceParts=/dev/null
           -o "Dir::State::Lists=$t/lists" -o APT::Sandbox::User=root)
  say "downloading QEMU $QEMU10_VERSION from bookworm-backports"
  apt-get -q "${a[@]}" update >&2 || fail "cannot read bookworm-backports"
  ( cd "$t/debs" && apt-get -q "${a[@]}" download qemu-system-x86/bookworm-backports \
      qemu-system-common/bookworm-backports qemu-system-data/bookworm-backports \
      seabios/bookworm-backports >&2 ) || fail "cannot download QEMU $QEMU10_VERSION"
  rm -rf "$t/root"; mkdir -p "$t/root"
  local d; for d in "$t"/debs/*.deb; do dpkg-deb -x "$d" "$t/root"; done
  "$t/root/usr/bin/qemu-system-x86_64" --version | grep -q "version $QEMU10_VERSION" ||
    fail "the unpacked QEMU does not run on this host"
  rm -rf "$Q"; mv "$t/root" "$Q"; rm -rf "$t"
}

# libvirt 11 from bookworm-backports, unpacked the same way: the daemon, its
# QEMU driver, virsh and the library (their other dependencies are Debian 12's
# own libraries, which libvirt 9.0 on the host already pulls in). libvirt 9.0
# predates QEMU 10, so the two-host migration test runs this pair.
LIBVIRT11_VERSION=11.3.0
fetch_libvirt11() {
  L=$CACHE/libvirt-$LIBVIRT11_VERSION
  [[ -x $L/usr/sbin/libvirtd ]] && return
  local t; t=$(mktemp -d "$CACHE/libvirt11.XXXXXX")
  mkdir -p "$t/lists/partial" "$t/debs"
  echo "deb http://deb.debian.org/debian bookworm-backports main" > "$t/sources.list"
  local a=(-o "Dir::Etc::SourceList=$t/sources.list" -o Dir::Etc::SourceParts=/dev/null
           -o "Dir::State::Lists=$t/lists" -o APT::Sandbox::User=root)
  say "downloading libvirt $LIBVIRT11_VERSION from bookworm-backports"
  apt-get -q "${a[@]}" update >&2 || fail "cannot read bookworm-backports"
  local p pkgs=()
  for p in libvirt-daemon libvirt-daemon-common libvirt-daemon-log libvirt-daemon-driver-qemu \
           libvirt0 libvirt-common libvirt-clients; do pkgs+=("$p/bookworm-backports"); done
  ( cd "$t/debs" && apt-get -q "${a[@]}" download "${pkgs[@]}" >&2 ) ||
    fail "cannot download libvirt $LIBVIRT11_VERSION"
  rm -rf "$t/root"; mkdir -p "$t/root"
  local d; for d in "$t"/debs/*.deb; do dpkg-deb -x "$d" "$t/root"; done
  LD_LIBRARY_PATH=$t/root/usr/lib/x86_64-linux-gnu "$t/root/usr/bin/virsh" --version |
    grep -qx "$LIBVIRT11_VERSION" || fail "the unpacked virsh does not run on this host"
  rm -rf "$L"; mv "$t/root" "$L"; rm -rf "$t"
}

prepare() {
  mkdir -p "$CACHE"
  host_tools
  exec 8>"$CACHE/.lock"; flock 8            # one builder at a time
  pick_kernel; fetch; build_modules; initramfs; fetch_qemu10; fetch_libvirt11
  flock -u 8
}

quote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

run() {
  prepare
  local rc accel v; W=$(mktemp -d "${TMPDIR:-/tmp}/hostdev-lab.XXXXXX")   # global: the trap uses it
  trap 'rm -rf "$W"' EXIT
  mkdir -p "$W/x/lab"
  printf '%s\n' "$*" > "$W/x/lab/cmd"
  { printf 'LAB_MODULES=%s\n' "$(quote "$MODULES")"
    printf 'LAB_CWD=%s\n' "$(quote "$PWD")"
    # Where the guest's modules are (the host's cache, seen through the
    # overlay), so a test can unload and reload a driver: modprobe $LAB_MODPROBE m
    printf 'export LAB_MODPROBE=%s\n' "$(quote "-d $SYSROOT -S $KREL")"
    # QEMU 10 for the migration tests, and its firmware directories.
    printf 'export LAB_QEMU10=%s\n' "$(quote "$Q/usr/bin/qemu-system-x86_64")"
    printf 'export LAB_QEMU10_DATA=%s\n' "$(quote "$Q/usr/share/qemu:$Q/usr/share/seabios")"
    printf 'export LAB_QEMU10_ROOT=%s LAB_LIBVIRT11=%s\n' "$(quote "$Q")" "$(quote "$L")"
    printf 'export PATH=%s HOME=/root TMPDIR=/tmp\n' "$(quote "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")"
    for v in ${HOSTDEV_LAB_ENV:-} $(compgen -e | grep -E '^(RUST|HOSTDEV)_' || true); do
      [[ $v =~ ^[A-Za-z_][A-Za-z0-9_]*$ && -n ${!v+x} ]] && printf 'export %s=%s\n' "$v" "$(quote "${!v}")"
    done
  } > "$W/x/lab/env"
  (cd "$W/x" && find . | cpio -o -H newc --quiet | gzip -1) | cat "$INITRD" - > "$W/initrd"
  accel=${HOSTDEV_LAB_ACCEL:-auto}
  if [[ $accel == auto ]]; then
    if [[ -w /dev/kvm && ! -d /sys/module/kvm_pvm ]] && grep -qwE 'vmx|svm' /proc/cpuinfo; then accel=kvm; else accel=tcg; fi
  fi
  local cpu=max,-la57; [[ $accel == kvm ]] && cpu=host
  say "booting $KREL ($accel, QEMU $QEMU10_VERSION)"
  local t0=$SECONDS
  set +e
  # q35 for PCIe (SR-IOV needs extended config space); the IOMMU comes before
  # the devices it translates, with interrupt remapping on (which under KVM
  # needs the split irqchip; TCG ignores it). The 82576 sits behind a root
  # port, whose ACS gives each VF its own IOMMU group; it has no network
  # peer (QEMU warns "no peer"), the tests only need its PCI side. Modules
  # and firmware come from QEMU 10's own tree, not the host's 7.2.
  QEMU_MODULE_DIR=$Q/usr/lib/x86_64-linux-gnu/qemu \
  timeout "${HOSTDEV_LAB_TIMEOUT:-2700}" "$Q/usr/bin/qemu-system-x86_64" \
    -L "$Q/usr/share/qemu" -L "$Q/usr/share/seabios" \
    -nodefaults -no-user-config -display none -no-reboot \
    -machine q35,kernel-irqchip=split -accel "$accel" -cpu "$cpu" -m "${HOSTDEV_LAB_MEM:-2048}" -smp 2 \
    -device intel-iommu,intremap=on \
    -device pcie-root-port,id=rp0,chassis=1 -device igb,bus=rp0,romfile= \
    -kernel "$SYSROOT/boot/vmlinuz-$KREL" -initrd "$W/initrd" \
    -append "console=ttyS0 quiet panic=-1 intel_iommu=on" -serial stdio -monitor none \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    </dev/null 2>&1 | tr -d '\r' > "$W/console" &
  local qpid=$!
  # Stream what the command prints while it runs; the awk marks the end it
  # saw, so that a stream that stopped early (a tail that died) is made up
  # for from the console file once the guest is done.
  tail -n +1 -f "$W/console" --pid=$qpid 2>/dev/null |
    if [[ ${HOSTDEV_LAB_VERBOSE:-0} == 1 ]]; then cat; else
      awk -v seen="$W/streamed" '/@@LAB-BEGIN@@/{on=1; next}
        /@@LAB-END@@/{on=0; printf "" > seen; close(seen)} on{print; fflush()}'; fi
  wait $qpid; local qrc=$?
  if [[ ${HOSTDEV_LAB_VERBOSE:-0} != 1 && ! -e $W/streamed ]] && grep -q '@@LAB-END@@' "$W/console"; then
    say "the guest's output did not stream; here it is from its console"
    awk '/@@LAB-BEGIN@@/{on=1; next} /@@LAB-END@@/{on=0} on' "$W/console"
  fi
  set -e
  cp "$W/console" "$CACHE/last-console.log"
  rc=$(sed -n 's/.*@@LAB-END@@ rc=\([0-9]*\).*/\1/p' "$W/console" | tail -n1)
  if [[ -z $rc ]]; then
    if ((qrc == 124)); then rc=124; say "guest timed out"; else rc=125; fi
    say "no status from the guest; console tail ($CACHE/last-console.log):"; tail -n 25 "$W/console" >&2
  fi
  say "guest finished in $((SECONDS - t0))s with status $rc"
  return "$rc"
}

case ${1:-} in
  prepare) prepare; echo "$INITRD" ;;
  run) shift; run "$@" ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
esac
