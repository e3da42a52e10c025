#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: sets up the Python venv (pinned),
# builds the Python extension, then lint + Rust tests + Python tests.
#
#   scripts/test.sh            # everything
#   MLE_SKIP_PYTHON=1 scripts/test.sh   # Rust only
#   MLE_WITH_BALLISTA=1 scripts/test.sh # also the Ballista cluster tests (a second datafusion build)
#
# Shared build caches live outside the clone:
#   CARGO_TARGET_DIR (default ~/.cache/mle-target), MLE_VENV (default ~/.cache/mle-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mle-target}"
export MLE_VENV="${MLE_VENV:-$HOME/.cache/mle-venv}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
start=$(date +%s)
step() { printf '\n=== %s (%ss)\n' "$*" "$(( $(date +%s) - start ))"; }

step "rustfmt"
cargo fmt --all -- --check

step "clippy"
cargo clippy --all-targets -- -D warnings

step "cargo test"
# The default members: everything but mle-ballista, which turns on datafusion's default
# features and is built and tested on its own (`cargo test -p mle-ballista`).
cargo test

if [ -n "${MLE_WITH_BALLISTA:-}" ]; then
  step "cargo test -p mle-ballista (scheduler + executors on 127.0.0.1)"
  cargo test -p mle-ballista -- --test-threads 1
fi

if [ -z "${MLE_SKIP_PYTHON:-}" ] && [ -f scripts/py_setup.sh ]; then
  step "python set-up (venv, pinned packages, extension)"
  bash scripts/py_setup.sh
  step "ruff"
  "$MLE_VENV/bin/ruff" check python tests/python benches datasets
  step "pytest"
  export MLE_BIN="$CARGO_TARGET_DIR/debug/mle"  # built by `cargo test` (test_cli_vs_python.py)
  "$MLE_VENV/bin/python" -m pytest -q tests/python
fi

step "all tests passed"
