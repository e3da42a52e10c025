#!/usr/bin/env bash
# The main job on the shipped sample data: score a Parquet file with a shipped model, then run
# the same model inside SQL with mle_predict. Builds the `mle` binary first (cargo, debug).
#
#   scripts/demo.sh            # outputs go to ${MLE_DEMO_OUT:-/tmp/mle-demo}
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mle-target}"
OUT="${MLE_DEMO_OUT:-/tmp/mle-demo}"
mkdir -p "$OUT"

cargo build --quiet -p mle-cli
MLE="$CARGO_TARGET_DIR/debug/mle"

echo "== mle inspect datasets/models/breast_cancer.mle"
"$MLE" inspect datasets/models/breast_cancer.mle

echo
echo "== mle score: XGBoost classifier over datasets/breast_cancer.parquet (with missing values)"
"$MLE" score --model datasets/models/breast_cancer.mle datasets/breast_cancer.parquet -o "$OUT/breast_cancer.scored.parquet"

echo
echo "== mle score: LightGBM regressor over datasets/diabetes.parquet"
"$MLE" score --model datasets/models/diabetes.mle datasets/diabetes.parquet -o "$OUT/diabetes.scored.parquet"

echo
echo "== mle sql: mle_predict inside DataFusion"
"$MLE" sql --table iris=datasets/iris.parquet \
  "SELECT species, mle_predict('datasets/models/iris.mle', sepal_length, sepal_width, petal_length, petal_width) AS predicted, count(*) AS n
   FROM iris GROUP BY 1, 2 ORDER BY 1, 2"

echo
echo "scored files in $OUT"
