#!/usr/bin/env bash
# Runs each fuzz target for a bounded time on the stable toolchain: libFuzzer
# (from libfuzzer-sys) with LLVM's sanitizer-coverage instrumentation enabled
# by plain -C flags, so neither nightly nor cargo-fuzz is needed.
# Usage: fuzz/run.sh [SECONDS-PER-TARGET]   (default 20)
set -euo pipefail
cd "$(dirname "$0")"
SECS=${1:-20}
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
# An explicit --target keeps the flags off build scripts and proc-macros.
TRIPLE=$(rustc -vV | sed -n "s/^host: //p")
cargo build -q --release --bins --target "$TRIPLE"
for t in vdpa_wire mdev_config daemon_request; do
  mkdir -p "corpus/$t"
  echo "fuzz: $t for ${SECS}s"
  "$CARGO_TARGET_DIR/$TRIPLE/release/$t" -max_total_time="$SECS" -print_final_stats=1 \
    -artifact_prefix="$PWD/artifacts-" "corpus/$t" > "$CARGO_TARGET_DIR/$t.log" 2>&1 || {
    tail -n 40 "$CARGO_TARGET_DIR/$t.log"; echo "fuzz: $t found a failure (artifact in fuzz/)"; exit 1; }
  grep -E "^(Done|stat::number_of_executed_units)" "$CARGO_TARGET_DIR/$t.log" || true
done
