#!/usr/bin/env bash
# Rows/s of an aggregate over `mle_predict(...)` on a local Ballista cluster (1 scheduler and
# 1, then 2 executors on 127.0.0.1) next to single-process DataFusion (`mle sql`), over the
# same multi-file Parquet dataset.
#
#   benches/cluster_bench.sh [ROWS] [FILES]     # default 10,000,000 rows in 8 files
#
# Needs release binaries of `mle` with the cluster feature and of the cluster processes:
#   cargo build --release -p mle-ballista -p mle-cli --features mle-cli/cluster --bins
# and the project venv for the data generator (datasets/make_bench_data.py). Each run is timed
# REPEAT times (default 2) and the best is kept. Prints a Markdown table and the load average.
#
# Environment: CARGO_TARGET_DIR / MLE_BIN_DIR (binaries), MLE_VENV, BENCH_DIR (data),
# MLE_SCHEDULER_PORT (default 50150, so a cluster on the default port is left alone), REPEAT.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${1:-10000000}"
FILES="${2:-8}"
REPEAT="${REPEAT:-2}"
TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/mle-target}"
BIN="${MLE_BIN_DIR:-$TARGET/release}"
MLE="$BIN/mle"
PY="${MLE_VENV:-$HOME/.cache/mle-venv}/bin/python"
DIR="${BENCH_DIR:-/tmp/mle_cluster_bench_${ROWS}_${FILES}}"
MODEL="$PWD/datasets/models/diabetes.mle"
PORT="${MLE_SCHEDULER_PORT:-50150}"
export MLE_SCHEDULER_PORT="$PORT" MLE_BIN_DIR="$BIN" MLE_CLUSTER_DIR="/tmp/mle_cluster_bench_state"

for b in mle mle-scheduler mle-executor; do
  [ -x "$BIN/$b" ] || { echo "error: no release binary $BIN/$b; see the header of $0" >&2; exit 1; }
done
# (the probe fails by design: read its message, not its exit status, which pipefail would see)
probe="$("$MLE" sql --cluster df://127.0.0.1:1 "SELECT 1" 2>&1 || true)"
if [[ "$probe" != *"cannot reach"* ]]; then
  echo "error: $MLE was built without the cluster feature" >&2
  exit 1
fi

# Data: one file from the generator, split into FILES files of equal row ranges.
if [ ! -f "$DIR/part-000.parquet" ]; then
  mkdir -p "$DIR"
  one="$DIR.single.parquet"
  [ -f "$one" ] || "$PY" datasets/make_bench_data.py diabetes "$ROWS" "$one"
  "$PY" - "$one" "$DIR" "$FILES" <<'EOF'
import sys
import pyarrow.parquet as pq
src, out, files = sys.argv[1], sys.argv[2], int(sys.argv[3])
t = pq.read_table(src)
step = -(-t.num_rows // files)
for i in range(files):
    pq.write_table(t.slice(i * step, step), f"{out}/part-{i:03d}.parquet", compression="snappy")
EOF
  rm -f "$one"
fi

FEATS=$("$MLE" inspect --json "$MODEL" | "$PY" -c 'import json,sys; print(", ".join(json.load(sys.stdin)["metadata"]["input"]["feature_names"]))')
# query SOURCE: the aggregate over the predictions of the rows of SOURCE.
query() { echo "SELECT COUNT(*) AS n, MIN(p) AS lo, MAX(p) AS hi FROM (SELECT mle_predict('$MODEL', $FEATS) AS p FROM $1)"; }
QUERY="$(query t)"

# best LABEL CMD...: runs CMD REPEAT times, prints "| LABEL | best seconds | rows/s |"
best() {
  local label="$1"; shift
  local b="" t0 t1 s
  for ((r = 0; r < REPEAT; r++)); do
    t0=$(date +%s.%N)
    "$@" > /tmp/mle_cluster_bench_out 2> /tmp/mle_cluster_bench_err || { cat /tmp/mle_cluster_bench_err >&2; exit 1; }
    t1=$(date +%s.%N)
    s=$("$PY" -c "print($t1 - $t0)")
    b=$("$PY" -c "print(min(float('${b:-inf}'), $s))")
  done
  grep -q " $ROWS " /tmp/mle_cluster_bench_out || { echo "error: $label did not count $ROWS rows:" >&2; cat /tmp/mle_cluster_bench_out >&2; exit 1; }
  "$PY" -c "print(f'| $label | {$b:.2f} | {$ROWS/$b:,.0f} |')"
}

cleanup() { scripts/cluster.sh stop > /dev/null 2>&1 || true; }
trap cleanup EXIT

cores=$(nproc)
echo "rows: $ROWS in $FILES files ($(du -sm "$DIR" | cut -f1) MiB), model: datasets/models/diabetes.mle, cores: $cores"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| run | seconds (best of $REPEAT) | rows/s |"
echo "|---|---:|---:|"
# Single process: the same directory through a quoted path (`--table` takes one file locally).
LQUERY="$(query "'$DIR/'")"
for t in 1 "$cores"; do
  best "single process, DataFusion ($t threads)" "$MLE" sql --threads "$t" "$LQUERY"
done
for n in 1 2; do
  scripts/cluster.sh start "$n" > /dev/null
  sleep 3 # executors register with their first heartbeat
  best "Ballista, $n executor(s) × $(( cores / n > 0 ? cores / n : 1 )) task slots, $FILES partitions" \
    "$MLE" sql --cluster "df://127.0.0.1:$PORT" --threads "$FILES" "$QUERY" --table "t=$DIR"
  scripts/cluster.sh stop > /dev/null
done
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
