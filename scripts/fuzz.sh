#!/usr/bin/env bash
# Runs a cargo-fuzz target of the reader for a number of seconds, at low priority, one job.
#   scripts/fuzz.sh [TARGET] [SECONDS]      (defaults: read_model 600)
# Needs cargo-fuzz (`cargo install cargo-fuzz`). On a stable toolchain the sanitizer flags are
# enabled with RUSTC_BOOTSTRAP=1. Crashes land in fuzz/artifacts/TARGET/.
set -euo pipefail
target="${1:-read_model}"
seconds="${2:-600}"
root="$(cd "$(dirname "$0")/.." && pwd)"
corpus="$root/fuzz/corpus/$target"
mkdir -p "$corpus"
if [ -z "$(ls -A "$corpus" 2>/dev/null)" ]; then
    # Seed with valid sample files (plain, compressed+int8, signed+fp16).
    MLE_FUZZ_SEEDS="$corpus" cargo test -p mle-format --test robustness write_fuzz_seeds \
        --manifest-path "$root/Cargo.toml" -- --ignored --exact
fi
cd "$root/fuzz"
export RUSTC_BOOTSTRAP="${RUSTC_BOOTSTRAP:-1}"
# Build at a moderate priority, fuzz at the lowest (the machine is shared).
nice -n 10 cargo fuzz build "$target"
exec nice -n 19 cargo fuzz run "$target" "$corpus" -- \
    -max_total_time="$seconds" -jobs=1 -workers=1 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1
