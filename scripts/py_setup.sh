#!/usr/bin/env bash
# Creates or updates the Python dev venv with the pins of requirements-dev.txt and builds the
# extension (mle-python → mle_runtime._native) into it with `maturin develop` (debug build).
#
#   scripts/py_setup.sh            # venv at ${MLE_VENV:-$HOME/.cache/mle-venv}
#   MLE_PY_RELEASE=1 scripts/py_setup.sh   # optimized extension (benchmarks)
#
# Afterwards: "$MLE_VENV/bin/python" -m pytest tests/python
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${MLE_VENV:-$HOME/.cache/mle-venv}"
PYTHON="${PYTHON:-python3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mle-target}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "py_setup: creating venv $VENV" >&2
    "$PYTHON" -m venv "$VENV"
fi
# Installs only what differs from the pins (a no-op when the venv is up to date).
if ! "$VENV/bin/python" - requirements-dev.txt <<'PY'
import sys
from importlib.metadata import version, PackageNotFoundError
bad = []
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    name, want = line.split("==")
    try:
        have = version(name)
    except PackageNotFoundError:
        have = None
    if have is None or have.split("+")[0] != want:
        bad.append(f"{name} {have} != {want}")
if bad:
    print("py_setup: out of date: " + "; ".join(bad), file=sys.stderr)
    sys.exit(1)
PY
then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
fi
args=()
if [ "${MLE_PY_RELEASE:-0}" = "1" ]; then
    args+=(--release)
fi
VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" "$VENV/bin/maturin" develop --quiet "${args[@]}"
"$VENV/bin/python" -c "import mle_runtime as m; print('py_setup: mle_runtime', m.__version__, 'ready in', '$VENV')"
