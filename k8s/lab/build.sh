#!/usr/bin/env bash
# Builds the Kubernetes lab's binaries from this Go module into a cache outside
# the clone, keyed by the versions go.mod pins:
#   ${HOSTDEV_K8S_LAB_CACHE:-~/.cache/hostdev/k8s-lab}/<kubernetes version>-<key>/bin
# One `go build` for every program (one build cache, GOFLAGS=-p=2), so the
# packages they share (client-go, grpc, protobuf, ...) compile once.
# Prints where the binaries are on its last line of stdout; the time it took on stderr.
set -euo pipefail
cd "$(dirname "$0")"
export PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null || { echo "build.sh: go is missing (expected at /usr/local/go/bin)" >&2; exit 1; }
command -v gcc >/dev/null || { echo "build.sh: gcc is missing (runc's nsenter is C, built through cgo)" >&2; exit 1; }
[[ -e /usr/include/seccomp.h ]] || { echo "build.sh: libseccomp-dev is missing (runc is built with seccomp)" >&2; exit 1; }

ver() { go list -m -f '{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}' "$1"; }
K8S=$(ver k8s.io/kubernetes)
CTRD=$(ver github.com/containerd/containerd/v2)
RUNC=$(ver github.com/opencontainers/runc)
ETCD=$(ver go.etcd.io/etcd/server/v3)
# Build tags: seccomp for runc (libseccomp through cgo), no btrfs/zfs/devmapper
# snapshotters in containerd (the lab uses overlayfs or native), providerless
# for Kubernetes (no cloud providers), no urfave/cli docs generators.
TAGS=seccomp,urfave_cli_no_docs,no_btrfs,no_zfs,no_devmapper,providerless
KV=${K8S#v}
LDFLAGS="-s -w
 -X k8s.io/component-base/version.gitVersion=$K8S -X k8s.io/component-base/version.gitMajor=${KV%%.*}
 -X k8s.io/component-base/version.gitMinor=$(cut -d. -f2 <<<"$KV") -X k8s.io/component-base/version.gitTreeState=clean
 -X k8s.io/client-go/pkg/version.gitVersion=$K8S -X k8s.io/client-go/pkg/version.gitMajor=${KV%%.*}
 -X k8s.io/client-go/pkg/version.gitMinor=$(cut -d. -f2 <<<"$KV") -X k8s.io/client-go/pkg/version.gitTreeState=clean
 -X github.com/containerd/containerd/v2/version.Version=$CTRD -X main.version=${RUNC#v}"
KEY=$( { cat go.mod go.sum; go version; echo "$TAGS $LDFLAGS"; find cmd -name '*.go' | sort | xargs cat; } | sha256sum | cut -c1-12)
CACHE=${HOSTDEV_K8S_LAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hostdev/k8s-lab}
OUT=$CACHE/$K8S-$KEY
PROGS=(
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kubectl
  github.com/containerd/containerd/v2/cmd/containerd github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2
  github.com/containerd/containerd/v2/cmd/ctr github.com/opencontainers/runc
  ./cmd/etcd
)
if [[ -f $OUT/built ]]; then
  echo "build.sh: binaries for kubernetes $K8S, containerd $CTRD, runc $RUNC, etcd $ETCD are cached in $OUT" >&2
  echo "$OUT/bin"; exit 0
fi
mkdir -p "$CACHE"
exec 9>"$CACHE/.build.lock"; flock 9           # one builder at a time
rm -rf "$OUT.tmp"; mkdir -p "$OUT.tmp/bin"
GOCACHE_DIR=$(go env GOCACHE)
cache_mb=$(du -sm "$GOCACHE_DIR" 2>/dev/null | cut -f1 || true)
echo "build.sh: building kubernetes $K8S, containerd $CTRD, runc $RUNC, etcd $ETCD (GOFLAGS=-p=${HOSTDEV_GO_P:-2}; the Go build cache $GOCACHE_DIR holds ${cache_mb:-0} MB: $( ((${cache_mb:-0} > 1000)) && echo warm || echo cold))" >&2
t0=$(date +%s)
GOFLAGS="-p=${HOSTDEV_GO_P:-2} -mod=readonly" CGO_ENABLED=1 \
  go build -trimpath -tags "$TAGS" -ldflags "$LDFLAGS" -o "$OUT.tmp/bin/" "${PROGS[@]}"
secs=$(( $(date +%s) - t0 ))
printf '%s\n' "kubernetes $K8S" "containerd $CTRD" "runc $RUNC" "etcd $ETCD" "$(go version)" > "$OUT.tmp/versions"
echo "$secs" > "$OUT.tmp/build-seconds"
touch "$OUT.tmp/built"
rm -rf "$OUT"; mv "$OUT.tmp" "$OUT"
# Keep this build and the one before it (another worktree may pin other
# versions); older ones go (each is about 560 MB).
ls -1dt "$CACHE"/v*-*/ 2>/dev/null | tail -n +3 | while read -r old; do
  [[ $old == "$OUT/" ]] || rm -rf "$old"
done
echo "build.sh: built in ${secs}s into $OUT/bin ($(du -sh "$OUT/bin" | cut -f1))" >&2
echo "$OUT/bin"
