"""Shared helpers: datasets (scikit-learn's bundled data, with missing values where the
model supports them) and the comparison used by every parity test."""

from __future__ import annotations

import os

# OpenMP in scikit-learn / LightGBM / XGBoost spins badly on a loaded 2-core machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import mle_runtime as mle  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

#: fp32 parity bound (docs/ARCHITECTURE.md, "Non-negotiables"): max relative error 1e-5,
#: absolute 1e-6 near zero.
RTOL = 1e-5
ATOL = 1e-6


def with_nans(X, frac=0.05, seed=0):
    """A copy of X with ``frac`` of the entries set to NaN (never a whole row)."""
    rng = np.random.default_rng(seed)
    X = np.array(X, dtype=np.float64, copy=True)
    mask = rng.random(X.shape) < frac
    mask[:, 0] = False
    X[mask] = np.nan
    return X


def load(name):
    from sklearn import datasets

    loader = {
        "breast_cancer": datasets.load_breast_cancer,
        "iris": datasets.load_iris,
        "wine": datasets.load_wine,
        "diabetes": datasets.load_diabetes,
        "digits": datasets.load_digits,
    }[name]
    X, y = loader(return_X_y=True)
    return np.asarray(X, dtype=np.float64), np.asarray(y)


def assert_close(mine, ref, rtol=RTOL, atol=ATOL, what=""):
    mine = np.asarray(mine, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert mine.size == ref.size, f"{what}: shape {mine.shape} vs {ref.shape}"
    mine = mine.reshape(ref.shape)
    both_nan = np.isnan(mine) & np.isnan(ref)
    err = np.where(both_nan, 0.0, np.abs(mine - ref))
    bound = atol + rtol * np.abs(ref)
    worst = int(np.argmax(err - bound)) if err.size else 0
    assert np.all(err <= bound), (
        f"{what}: max abs error {err.max():.3g}, worst {mine.ravel()[worst]!r} vs "
        f"{ref.ravel()[worst]!r}")
    return float(err.max()) if err.size else 0.0


@pytest.fixture
def tmp_model(tmp_path):
    def make(name="model.mle"):
        return str(tmp_path / name)

    return make


def export_and_load(model, path, **kw):
    res = mle.export_model(model, path, **kw)
    assert res["success"] and res["path"] == path and res["size_bytes"] > 0
    return res, mle.load_model(path)
