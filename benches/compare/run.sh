#!/usr/bin/env bash
# The side-by-side benchmark (see benches/compare/run.py and docs/BENCHMARKS.md):
#   benches/compare/setup.sh            # once: the peers' venv and our release extension
#   benches/compare/run.sh [--quick] [--rows N] [--models rf,xgb_d6,...]
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="${MLE_BENCH_VENV:-$HOME/.cache/mle-bench-venv}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "no benchmark venv at $VENV: run benches/compare/setup.sh first" >&2
  exit 1
fi
exec "$VENV/bin/python" benches/compare/run.py "$@"
