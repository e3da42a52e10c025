#!/usr/bin/env bash
# Creates the side-by-side benchmark venv (separate from the project's test venv so that one
# stays small) with the peers pinned, and installs mle_runtime into it in release mode.
#
#   benches/compare/setup.sh            # venv at ${MLE_BENCH_VENV:-$HOME/.cache/mle-bench-venv}
#
# torch: see below.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="${MLE_BENCH_VENV:-$HOME/.cache/mle-bench-venv}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
pip() { "$VENV/bin/python" -m pip "$@"; }
pip install -q --upgrade pip

# Every version resolved together on Python 3.11 (2026-11); keep them in step.
pip install -q -r benches/compare/requirements.txt
# torch: first without dependencies (the CPU path may work without the ~4.9 GB of CUDA
# wheels); when the probe fails (torch 2.15 preloads libcudart/cuBLAS at import), the normal
# install with its CUDA wheels.
probe() {
  "$VENV/bin/python" - <<'PY'
import torch
y = torch.nn.Linear(2, 2)(torch.zeros(1, 2))
assert tuple(y.shape) == (1, 2), y.shape
print("torch", torch.__version__, "CPU forward ok")
PY
}
if ! probe 2>/dev/null; then
  pip install -q --no-deps torch==2.15.0
  if ! probe 2>/dev/null; then
    echo "torch without its CUDA dependencies does not import; installing them (~4.9 GB)" >&2
    pip install -q torch==2.15.0
    probe
  fi
fi

# Our package: a release wheel installed into this venv (not `maturin develop`, which would
# put the extension into the shared source tree). The benchmark measures the optimised build.
# MLE_BENCH_FROM_HEAD=1 builds the last commit (a `git archive HEAD` snapshot) instead of the
# working tree, for a tree where others are mid-edit.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mle-bench-target}"
WHEELS="$CARGO_TARGET_DIR/wheels"
SRC="$PWD"
if [ -n "${MLE_BENCH_FROM_HEAD:-}" ]; then
  SRC="$(mktemp -d /tmp/mle-bench-src.XXXXXX)"
  git archive HEAD | tar -x -C "$SRC"
fi
rm -f "$WHEELS"/mle_runtime-*.whl
# Without the Polars plugin (feature `polars` of mle-python) unless MLE_BENCH_WITH_POLARS=1: this
# harness does not use it, and a release build of polars takes most of an hour on 2 cores.
features=(--no-default-features)
[ -n "${MLE_BENCH_WITH_POLARS:-}" ] && features=()
(cd "$SRC" && "$VENV/bin/maturin" build --release -q "${features[@]}" -i "$VENV/bin/python" -o "$WHEELS")
pip install -q --force-reinstall --no-deps "$WHEELS"/mle_runtime-*.whl
# What was built, for the report (run.py prints it).
desc="$(git rev-parse --short HEAD)"
if [ -z "${MLE_BENCH_FROM_HEAD:-}" ] && [ -n "$(git status --porcelain -- mle-exec mle-format mle-import mle-python python)" ]; then
  desc="$desc + uncommitted changes"
fi
echo "$desc" > "$VENV/mle-build.txt"
(cd /tmp && "$VENV/bin/python" -c "import mle_runtime; print('mle_runtime', mle_runtime.__version__, mle_runtime.__file__)")

# The Rust CLI for the `mle bench` column (optional: MLE_BENCH_NO_CLI=1 skips it).
if [ -z "${MLE_BENCH_NO_CLI:-}" ]; then
  (cd "$SRC" && cargo build --release -q -p mle-cli)
  echo "mle CLI: $CARGO_TARGET_DIR/release/mle"
fi
