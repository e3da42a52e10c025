#!/usr/bin/env bash
# Rows/s of `SELECT mle_predict(...)` in DataFusion over a large Parquet file, next to the raw
# executor on the same rows and to `mle score`, with 1 and 2 threads; peak RSS of each run.
#
#   benches/sql_bench.sh [ROWS]          # default 10,000,000 rows of the diabetes features
#
# Needs a release build of the CLI (`cargo build --release -p mle-cli`, ~20 min on 2 cores)
# and the project venv for the data generator. Results are printed as a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${1:-10000000}"
TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/mle-target}"
MLE="${MLE_BIN:-$TARGET/release/mle}"
PY="${MLE_VENV:-$HOME/.cache/mle-venv}/bin/python"
DATA="${BENCH_DATA:-/tmp/mle_bench_diabetes_${ROWS}.parquet}"
MODEL=datasets/models/diabetes.mle
OUT=/tmp/mle_bench_scored.parquet

[ -x "$MLE" ] || { echo "error: no release binary at $MLE (cargo build --release -p mle-cli)" >&2; exit 1; }
[ -f "$DATA" ] || "$PY" datasets/make_bench_data.py diabetes "$ROWS" "$DATA"

FEATS=$("$MLE" inspect --json "$MODEL" | "$PY" -c 'import json,sys; print(", ".join(json.load(sys.stdin)["metadata"]["input"]["feature_names"]))')

# run LABEL CMD...: prints "| label | seconds | rows/s | peak RSS MiB |"
run() {
  local label="$1"; shift
  local t0 t1 rss
  t0=$(date +%s.%N)
  /usr/bin/time -f '%M' -o /tmp/mle_bench_rss "$@" > /dev/null 2> /tmp/mle_bench_err || { cat /tmp/mle_bench_err >&2; exit 1; }
  t1=$(date +%s.%N)
  rss=$(tail -1 /tmp/mle_bench_rss)
  "$PY" -c "import sys; s=$t1-$t0; print(f'| $label | {s:.2f} | {$ROWS/s:,.0f} | {$rss/1024:.0f} |')"
}

echo "rows: $ROWS, file: $DATA ($(du -m "$DATA" | cut -f1) MiB), model: $MODEL"
echo
echo "| run | seconds | rows/s | peak RSS MiB |"
echo "|---|---:|---:|---:|"
for t in 1 2; do
  run "DataFusion scan only, SUM(age + ... ) ($t thr)" "$MLE" sql --threads "$t" "SELECT SUM(${FEATS//, / + }) FROM '$DATA'"
  run "DataFusion SUM(mle_predict(...)) ($t thr)" "$MLE" sql --threads "$t" "SELECT SUM(mle_predict('$MODEL', $FEATS)) FROM '$DATA'"
  run "mle score ($t thr)" "$MLE" score -m "$MODEL" "$DATA" -o "$OUT" --threads "$t"
done
for t in 1 2; do
  echo
  echo "raw executor, in memory ($t thr):"
  "$MLE" bench -m "$MODEL" --input "$DATA" --threads "$t" --iterations 1000 | sed 's/^/    /'
done
rm -f "$OUT"
