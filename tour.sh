#!/usr/bin/env bash
# A guided tour of hostdev on the simulated lab (no hardware needed): mounts
# the `demo` profile with hostdev-sim, then lists types, defines, starts,
# lists and stops devices with hostdevctl, and unmounts. Needs root and FUSE
# (apt-get install fuse3). Every step prints the command it runs: copy them.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v fusermount3 >/dev/null; then
  echo "tour: the simulated lab needs FUSE; installing Debian's fuse3" >&2
  if [[ $EUID -eq 0 ]]; then apt-get update -q >/dev/null && apt-get install -y -q fuse3 >/dev/null
  else sudo apt-get update -q >/dev/null && sudo apt-get install -y -q fuse3 >/dev/null; fi
fi
cargo build -q -p hostdevctl -p hostdev-sim
BIN=$PWD/target/debug
LAB=$(mktemp -d /tmp/hostdev-tour.XXXXXX)
"$BIN/hostdev-sim" run --root "$LAB" --profile demo 2>/dev/null &
SIM=$!
cleanup() { kill -TERM "$SIM" 2>/dev/null; wait "$SIM" 2>/dev/null; rm -rf "$LAB"; }
trap cleanup EXIT
for _ in $(seq 100); do [[ -e $LAB/run/hostdev-sim.pid ]] && break; sleep 0.05; done
export HOSTDEV_ROOT=$LAB PATH=$BIN:$PATH
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
echo "A simulated host is mounted at $LAB/sys (profile demo); HOSTDEV_ROOT=$LAB points hostdev at it."
step hostdevctl mdev types
step hostdevctl mdev define -u 6f1c9a3e-2b7d-4c55-9e0a-1d2b3c4d5e01 -p 0000:3b:00.0 -t nvidia-230 --auto
step hostdevctl mdev define -u 6f1c9a3e-2b7d-4c55-9e0a-1d2b3c4d5e02 -p mtty -t mtty-1
step hostdevctl mdev list --defined
step hostdevctl autostart
step hostdevctl mdev start -u 6f1c9a3e-2b7d-4c55-9e0a-1d2b3c4d5e02
step hostdevctl mdev list
step hostdevctl mdev types -p 0000:3b:00.0
echo; echo "# The NVIDIA-like GPU runs one type at a time: its other types now show 0 available."
step hostdevctl mdev start -p 0000:3b:00.0 -t nvidia-222 || true
step hostdevctl mdev stop -u 6f1c9a3e-2b7d-4c55-9e0a-1d2b3c4d5e01
step hostdevctl mdev list -o json
echo; echo "Done: the simulator is unmounted and $LAB removed."
