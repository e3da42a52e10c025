#!/usr/bin/env bash
# Runs one cargo-fuzz target for a number of seconds, at low priority, one job.
#   scripts/fuzz.sh [TARGET] [SECONDS]      (defaults: read_model 600)
# Targets (fuzz/fuzz_targets/):
#   read_model            any bytes -> MleFile (reader only)
#   read_model_crc_fixed  the same with every CRC repaired first (reaches the JSON and tensors)
#   load_and_run          any bytes -> MleFile -> mle_exec::Model::compile -> one row of NaN,
#                         zeros and random values (predict_row) and a 3-row batch
#   xgboost_json          any bytes -> mle_import::import_xgboost -> .mle -> compile -> one row
#   lightgbm_text         any bytes -> mle_import::import_lightgbm -> .mle -> compile -> one row
#   import_onnx           any bytes -> mle_import::onnx::import -> .mle -> compile -> rows and a batch
#   import_catboost       any bytes -> mle_import::import_catboost -> .mle -> compile -> numeric and
#                         string rows
#   read_vocabulary       any bytes (CRCs repaired) -> MleFile -> input_features() -> every category
#                         -> compile (Lookup index) -> typed rows and a string batch
#   vocabulary_tensors    a valid model whose vocabulary tensors are replaced by input-derived
#                         contents (framed with correct CRCs); open/refuse checked against the rules
# Needs cargo-fuzz (`cargo install cargo-fuzz`). On a stable toolchain the sanitizer flags are
# enabled with RUSTC_BOOTSTRAP=1. Crashes land in fuzz/artifacts/TARGET/. Set
# FUZZ_TARGET_DIR to build elsewhere than fuzz/target (e.g. one directory per user), and
# FUZZ_RSS_LIMIT_MB to change libFuzzer's memory limit (default 2048).
# One fuzzing process (no -jobs: with -jobs libFuzzer writes fuzz-N.log into the current
# directory, which concurrent runs of different targets would share); its output, including the
# final statistics (executions, `cov:` edges), goes to stderr.
set -euo pipefail
target="${1:-read_model}"
seconds="${2:-600}"
root="$(cd "$(dirname "$0")/.." && pwd)"
corpus="$root/fuzz/corpus/$target"
mkdir -p "$corpus"
if [ -z "$(ls -A "$corpus" 2>/dev/null)" ]; then
    case "$target" in
        read_model | read_model_crc_fixed)
            # Valid sample files (plain, compressed+int8, signed+fp16).
            MLE_FUZZ_SEEDS="$corpus" cargo test -p mle-format --test robustness write_fuzz_seeds \
                --manifest-path "$root/Cargo.toml" -- --ignored --exact ;;
        load_and_run)
            # The reader's samples plus every importer fixture as .mle (plain, zstd, fp16).
            MLE_FUZZ_SEEDS="$corpus" cargo test -p mle-format --test robustness write_fuzz_seeds \
                --manifest-path "$root/Cargo.toml" -- --ignored --exact
            MLE_FUZZ_SEEDS="$corpus" cargo test -p mle-hardening --test fuzz_seeds write_fuzz_seeds \
                --manifest-path "$root/Cargo.toml" -- --ignored --exact ;;
        xgboost_json)
            for f in "$root"/tests/fixtures/xgboost/*.json "$root"/tests/fixtures/xgboost/*.ubj; do
                case "$f" in *.expected.json) continue ;; esac
                cp "$f" "$corpus/"
            done ;;
        lightgbm_text)
            for f in "$root"/tests/fixtures/lightgbm/*.txt; do cp "$f" "$corpus/"; done ;;
        import_onnx)
            # The ONNX fixtures (skl2onnx, onnxmltools, torch.onnx.export models).
            for f in "$root"/mle-import/tests/fixtures/onnx/*.onnx; do cp "$f" "$corpus/"; done ;;
        import_catboost)
            # The CatBoost JSON fixtures (float, one-hot and CTR models).
            for f in "$root"/mle-import/tests/fixtures/catboost/*.json; do
                case "$f" in *.expected.json) ;; *) cp "$f" "$corpus/" ;; esac
            done ;;
        read_vocabulary)
            # Files with string and integer vocabularies (plain, zstd, signed), and models
            # whose Lookups compile.
            MLE_FUZZ_SEEDS="$corpus" cargo test -p mle-format --test schema write_fuzz_seeds \
                --manifest-path "$root/Cargo.toml" -- --ignored --exact
            MLE_FUZZ_SEEDS="$corpus" cargo test -p mle-exec --test lookup write_fuzz_seeds \
                --manifest-path "$root/Cargo.toml" -- --ignored --exact ;;
        vocabulary_tensors)
            # mode, categories, integers, then lengths / raw offsets and bytes.
            printf '\x00\x03\x02\x01\xfe\x01\x02\x03abcdef' >"$corpus/seed-lengths"
            printf '\x02\x02\x01\x07\x01\x02xy' >"$corpus/seed-long"
            printf '\x01\x02\x00\x00\x00\x00\x00\x01\x00\x00\x00\x03\x00\x00\x00abc' \
                >"$corpus/seed-offsets" ;;
    esac
fi
cd "$root/fuzz"
export RUSTC_BOOTSTRAP="${RUSTC_BOOTSTRAP:-1}"
tdir=()
if [ -n "${FUZZ_TARGET_DIR:-}" ]; then tdir=(--target-dir "$FUZZ_TARGET_DIR"); fi
# Build at a moderate priority, fuzz at the lowest (the machine is shared).
nice -n 10 cargo fuzz build "${tdir[@]}" "$target"
exec nice -n 19 cargo fuzz run "${tdir[@]}" "$target" "$corpus" -- \
    -max_total_time="$seconds" -rss_limit_mb="${FUZZ_RSS_LIMIT_MB:-2048}" -max_len=65536 \
    -timeout=10 -print_final_stats=1
