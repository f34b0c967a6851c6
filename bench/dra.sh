#!/usr/bin/env bash
# Benchmark (not a test): the DRA driver at scale on the Kubernetes lab, with
# release binaries. Runs the Kubernetes tier's TestDRAScale
# (k8s/lab/labtest/dra_scale_test.go) — 200 claims in 20 pods against the
# `large` simulated host, capacity 160 — and prints its tables: the plugin's
# prepare time per claim (p50, p99, max: the driver's own log line for each
# claim, from the apiserver fetch of the claim to the CDI spec and metadata
# file written, and where it went), and the time from changes on the host
# (an mdev made through hostdevd, removed, and made behind its back) until
# the apiserver holds the changed pool, beside the
# driver's own account of that publish (offer read, slices written).
# Needs what the Kubernetes tier needs (root, cgroups, busybox-static,
# containernetworking-plugins, FUSE; `cargo xtask test` lists them) and the
# lab host lock: one lab per host (wrap in flock as docs/testing.md says).
# Usage: bench/dra.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
cargo build -q --release --locked -p hostdev-sim -p hostdevd -p hostdevctl -p hostdev-dra
LAB_BIN=$(k8s/lab/build.sh | tail -n 1)
REL=$PWD/target/release
cd k8s/lab
HOSTDEV_K8S_LAB_BIN=$LAB_BIN HOSTDEV_K8S_LAB_SIM=$REL/hostdev-sim HOSTDEV_DRA_BIN=$REL \
  go test -trimpath -count=1 -v -timeout=30m -run '^TestDRAScale$' ./labtest 2>&1 |
  tee /tmp/hostdev-bench-dra.log | grep -E '^\s+dra_scale_test.go:[0-9]+: (\||scale:)|^(--- |ok|FAIL)' |
  sed -E 's/^\s+dra_scale_test.go:[0-9]+: //'
