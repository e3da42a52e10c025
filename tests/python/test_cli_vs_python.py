"""`mle score` (the CLI) and `mle_runtime.load_model(...).predict(...)` (Python) give the same
predictions on the same shipped Parquet file.

The CLI binary comes from ``MLE_BIN`` (scripts/test.sh sets it to the debug build that
``cargo test`` made). Unset: the test is skipped; set to a missing file: the test fails."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import mle_runtime as mle
import numpy as np
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[2]
DATASETS = ["breast_cancer", "iris", "wine", "diabetes"]


@pytest.fixture(scope="module")
def mle_bin():
    path = os.environ.get("MLE_BIN")
    if not path:
        pytest.skip("MLE_BIN is not set (scripts/test.sh sets it to the debug `mle`)")
    assert os.path.isfile(path) and os.access(path, os.X_OK), (
        f"MLE_BIN={path!r} is not an executable file (build it with `cargo build -p mle-cli`)")
    return path


def _features(table, names):
    """The feature columns in the model's order as float64, nulls as NaN."""
    cols = [table.column(n).to_numpy(zero_copy_only=False) for n in names]
    return np.column_stack([np.asarray(c, dtype=np.float64) for c in cols])


@pytest.mark.parametrize("name", DATASETS)
def test_mle_score_equals_python_predict(mle_bin, name, tmp_path):
    model = ROOT / "datasets" / "models" / f"{name}.mle"
    data = ROOT / "datasets" / f"{name}.parquet"
    out = tmp_path / "scored.parquet"
    env = {k: v for k, v in os.environ.items() if k != "MLE_TRUSTED_KEYS"}
    r = subprocess.run(
        [mle_bin, "score", "-m", str(model), str(data), "-o", str(out), "--batch-size", "100"],
        capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    assert r.returncode == 0, r.stderr
    assert "scored" in r.stderr and "rows/s" in r.stderr, r.stderr

    table = pq.read_table(data)
    scored = pq.read_table(out)
    assert scored.num_rows == table.num_rows > 0
    rt = mle.load_model(str(model))
    X = _features(table, rt.feature_names)
    assert np.isnan(X).any(), "the shipped data has missing values"

    got = scored.column("prediction").to_numpy(zero_copy_only=False)
    want = rt.predict(X)
    assert got.dtype.kind == np.asarray(want).dtype.kind, (got.dtype, np.asarray(want).dtype)
    np.testing.assert_array_equal(got, want)
    if rt.task == "regression":
        assert "probabilities" not in scored.column_names
    else:
        proba = np.array(scored.column("probabilities").to_pylist(), dtype=np.float64)
        np.testing.assert_array_equal(proba, np.asarray(rt.predict_proba(X), dtype=np.float64))
        np.testing.assert_array_equal(rt.classes_[np.argmax(proba, axis=1)], got)
    # The input columns pass through unchanged.
    for col in table.column_names:
        assert scored.column(col).equals(table.column(col)), col
