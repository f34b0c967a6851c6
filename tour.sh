#!/usr/bin/env bash
# A guided tour of hostdev on the simulated lab (no hardware needed): builds
# hostdevctl and hostdev-sim, mounts the `demo` profile (an NVIDIA-like mdev
# GPU, mtty, an NVIDIA SR-IOV GPU), then walks the mdev workflow (with
# hostdev's own drop-in mdevctl: hostdevctl under that name, linked into the
# lab and first on PATH) and the NVIDIA SR-IOV vGPU workflow with
# hostdevctl, and cleans up on every exit. Needs root and FUSE (apt-get
# install fuse3); not Debian's mdevctl. Every step prints the command it
# runs: copy them.
#
#   ./tour.sh          the tour, then unmount and remove the lab
#   ./tour.sh --keep   leave the lab mounted to explore (prints how to stop it)
set -euo pipefail
cd "$(dirname "$0")"
KEEP=0
case "${1:-}" in
  --keep) KEEP=1 ;;
  "") ;;
  -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "tour: unknown option $1 (try --keep or --help)" >&2; exit 2 ;;
esac
if ! command -v fusermount3 >/dev/null; then
  echo "tour: the simulated lab needs FUSE; installing Debian's fuse3" >&2
  if [[ $EUID -eq 0 ]]; then apt-get update -q >/dev/null && apt-get install -y -q fuse3 >/dev/null
  else sudo apt-get update -q >/dev/null && sudo apt-get install -y -q fuse3 >/dev/null; fi
fi
echo "tour: building hostdevctl and hostdev-sim (the first build takes a minute or two)" >&2
cargo build -p hostdevctl -p hostdev-sim
BIN=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/debug
LAB=$(mktemp -d /tmp/hostdev-tour.XXXXXX)
SIMLOG=$LAB.sim.log
SIM=
cleanup() {
  local rc=$?
  if ((KEEP)) && ((rc == 0)); then return; fi
  [[ -n $SIM ]] && kill -TERM "$SIM" 2>/dev/null && wait "$SIM" 2>/dev/null
  mountpoint -q "$LAB/sys" 2>/dev/null && fusermount3 -u "$LAB/sys" 2>/dev/null
  rm -rf "$LAB" "$SIMLOG"
  ((rc == 0)) || echo "tour: stopped (exit $rc); the lab is unmounted and removed" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM
"$BIN/hostdev-sim" run --root "$LAB" --profile demo 2>"$SIMLOG" &
SIM=$!
for _ in $(seq 100); do
  [[ -e $LAB/run/hostdev-sim.pid ]] && break
  if ! kill -0 "$SIM" 2>/dev/null; then
    echo "tour: the simulator did not start:" >&2; cat "$SIMLOG" >&2; SIM=; exit 1
  fi
  sleep 0.05
done
[[ -e $LAB/run/hostdev-sim.pid ]] || { echo "tour: the simulator did not mount within 5 s:" >&2; cat "$SIMLOG" >&2; exit 1; }
# hostdev's drop-in mdevctl: hostdevctl invoked as `mdevctl` (argv[0] picks
# the personality), first on PATH whether or not Debian's is installed.
mkdir -p "$LAB/bin"
ln -s "$BIN/hostdevctl" "$LAB/bin/mdevctl"
ln -s "$BIN/hostdevctl" "$LAB/bin/lsmdev"
export HOSTDEV_ROOT=$LAB PATH=$LAB/bin:$BIN:$PATH
if [[ -t 1 && -z ${NO_COLOR:-} ]]; then B=$'\033[1m' N=$'\033[0m'; else B= N=; fi
step() { printf '\n%s$ %s%s\n' "$B" "$*" "$N"; "$@"; }
say() { printf '\n# %s\n' "$*"; }
echo "A simulated host is mounted at $LAB/sys (profile demo); HOSTDEV_ROOT=$LAB points hostdev at it."

say "Mediated devices: types, definitions, start at boot, the drop-in mdevctl."
step hostdevctl mdev types
step hostdevctl mdev define -u 6f1c9a3e-2b7d-4c55-9e0a-1d2b3c4d5e01 -p 0000:3b:00.0 -t nvidia-230 --auto
step hostdevctl mdev define -u 6f1c9a3e-2b7d-4c55-9e0a-1d2b3c4d5e02 -p mtty -t mtty-1
step hostdevctl mdev list --defined
step hostdevctl autostart
step hostdevctl mdev start -u 6f1c9a3e-2b7d-4c55-9e0a-1d2b3c4d5e02
step hostdevctl mdev list
say "The drop-in mdevctl is hostdevctl under that name (what the hostdev-mdevctl package installs):"
step ls -l "$(command -v mdevctl)"
step mdevctl list      # mdevctl's own formats, byte-identical to Debian's mdevctl
say "The NVIDIA-like GPU runs one type at a time: its other types now show 0 available,"
say "and the error says which device holds the card."
step hostdevctl mdev types -p 0000:3b:00.0
step hostdevctl mdev start -p 0000:3b:00.0 -t nvidia-222 || true
step hostdevctl mdev stop -u 6f1c9a3e-2b7d-4c55-9e0a-1d2b3c4d5e01

say "NVIDIA vGPUs on SR-IOV: enable VFs on the PF, pick a type per VF, hand the VF to a VM."
step hostdevctl vgpu enable --pf 0000:41:00.0 --numvfs 4 --auto
sleep 0.2   # the driver sets VFs up a moment after they appear
step hostdevctl vgpu types --pf 0000:41:00.0
step hostdevctl vgpu define --vf 0000:41:00.4 --type "NVIDIA L40S-4Q" --auto
step hostdevctl vgpu define --pf 0000:41:00.0 --type 1151 --auto
step hostdevctl autostart
step hostdevctl vgpu list
step hostdevctl vgpu libvirt --vf 0000:41:00.4

say "Everything at once: the host's topology, then every device of every kind as JSON."
step hostdevctl tree
step hostdevctl list -o json

say "vDPA devices need the kernel's vdpa netlink family, which the simulated lab has not:"
say "try them in the real-kernel lab: cargo xtask lab -- 'modprobe vdpa_sim_net; target/debug/hostdevctl vdpa mgmtdev list'"
if ((KEEP)); then
  echo
  echo "The lab stays mounted: export HOSTDEV_ROOT=$LAB PATH=$LAB/bin:$BIN:\$PATH and explore."
  echo "Stop it with: kill $SIM   (the simulator unmounts $LAB/sys), then rm -rf $LAB"
  trap - EXIT
  disown "$SIM" 2>/dev/null || true
else
  echo; echo "Done: the simulator is unmounted and $LAB removed."
fi
