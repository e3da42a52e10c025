"""Typed columns in the Polars plugin: String, Categorical and Enum columns (which cross the
Arrow C Data Interface as string views and dictionaries) for category features, and
``predict(path)`` / ``predict_proba(path)`` with no expressions binding the frame's columns
by name — on eager, lazy and streaming frames. A LightGBM model fitted on a pandas frame with
a string category (derived from a real column), exported without ``sample_input``, is scored
on rows with unseen categories and missing values and compared with LightGBM's own predict."""

from __future__ import annotations

import mle_runtime as mle
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes

pl = pytest.importorskip("polars")
lgb = pytest.importorskip("lightgbm")

from mle_runtime.polars import predict, predict_proba  # noqa: E402

RTOL = 1e-5
BANDS = ["smooth", "fine", "coarse", "rough"]


def _bands(values, labels):
    q = np.quantile(values, np.linspace(0, 1, len(labels) + 1)[1:-1])
    return np.asarray(labels, dtype=object)[np.digitize(values, q)]


def _frame(data, band_of: str, keep: int):
    df = data.frame.drop(columns=["target"]).iloc[:, :keep].copy()
    df.columns = [c.replace(" ", "_") for c in df.columns]
    df["band"] = pd.Categorical(_bands(data.frame[band_of], BANDS), categories=BANDS)
    return df, data.target.to_numpy()


def _scored(df: pd.DataFrame, seed: int = 3) -> pd.DataFrame:
    """``df`` with unseen and missing categories and some missing numbers."""
    rng = np.random.default_rng(seed)
    out = df.copy()
    n = len(df)
    band = df["band"].astype(object).to_numpy().copy()
    band[rng.random(n) < 0.1] = None
    band[rng.random(n) < 0.1] = "never-seen"
    # What LightGBM reads an unseen category as (its set_categories makes it NaN).
    known = [b if b in BANDS else None for b in band]
    out["band"] = pd.Categorical(known, categories=BANDS)
    for c in df.columns[:-1]:
        v = df[c].to_numpy(dtype=np.float64).copy()
        v[rng.random(n) < 0.05] = np.nan
        out[c] = v
    return out, band


def _polars(df: pd.DataFrame, band, dtype) -> pl.DataFrame:
    """The frame in Polars with the category as ``dtype``, columns reordered and an extra
    column (binding is by name)."""
    cols = {c: pl.Series(c, df[c].to_numpy(), dtype=pl.Float64) for c in df.columns[:-1]}
    if dtype == "enum":
        s = pl.Series("band", list(band), dtype=pl.Enum([*BANDS, "never-seen"]))
    else:
        s = pl.Series("band", list(band), dtype=pl.String)
        if dtype == "categorical":
            s = s.cast(pl.Categorical)
    return pl.DataFrame([s, pl.Series("note", ["x"] * len(df)), *reversed(cols.values())])


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    df, y = _frame(load_breast_cancer(as_frame=True), "mean texture", 6)
    model = lgb.LGBMClassifier(n_estimators=25, min_child_samples=5, verbose=-1).fit(df, y)
    path = tmp_path_factory.mktemp("typed") / "clf.mle"
    mle.export_model(model, str(path))
    test, band = _scored(df)
    return model, str(path), test, band


@pytest.fixture(scope="module")
def regressor(tmp_path_factory):
    df, y = _frame(load_diabetes(as_frame=True), "bmi", 5)
    model = lgb.LGBMRegressor(n_estimators=25, min_child_samples=5, verbose=-1).fit(df, y)
    path = tmp_path_factory.mktemp("typed") / "reg.mle"
    mle.export_model(model, str(path))
    test, band = _scored(df)
    return model, str(path), test, band


def _run(frame: pl.DataFrame, expr: pl.Expr, how: str) -> pl.DataFrame:
    if how == "eager":
        return frame.select(expr)
    lazy = frame.lazy().select(expr)
    if how == "lazy":
        return lazy.collect()
    return lazy.collect(engine="streaming")


@pytest.mark.parametrize("dtype", ["string", "categorical", "enum"])
@pytest.mark.parametrize("how", ["eager", "lazy", "streaming"])
def test_predict_proba_by_name_matches_lightgbm(classifier, dtype, how):
    model, path, test, band = classifier
    frame = _polars(test, band, dtype)
    out = _run(frame, predict_proba(path), how)
    got = np.asarray(out["probabilities"].to_list())
    want = model.predict_proba(test)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-12)
    labels = _run(frame, predict(path), how)["prediction"].to_numpy()
    np.testing.assert_array_equal(labels, model.predict(test))


@pytest.mark.parametrize("dtype", ["string", "categorical", "enum"])
@pytest.mark.parametrize("how", ["eager", "lazy", "streaming"])
def test_regressor_by_name_and_by_expressions_agree_with_lightgbm(regressor, dtype, how):
    model, path, test, band = regressor
    frame = _polars(test, band, dtype)
    want = model.predict(test)
    got = _run(frame, predict(path), how)["prediction"].to_numpy()
    np.testing.assert_allclose(got, want, rtol=RTOL)
    # Given expressions, binding stays positional.
    names = list(test.columns)
    got = _run(frame, predict(path, *names), how)["prediction"].to_numpy()
    np.testing.assert_allclose(got, want, rtol=RTOL)


def test_by_name_with_columns_kept_and_chunked_frames(regressor):
    model, path, test, band = regressor
    frame = _polars(test, band, "categorical")
    chunked = pl.concat([frame[:100], frame[100:250], frame[250:]], rechunk=False)
    assert chunked.n_chunks() > 1
    out = chunked.with_columns(predict(path))
    assert out.columns[-1] == "prediction" and "note" in out.columns
    np.testing.assert_allclose(out["prediction"].to_numpy(), model.predict(test), rtol=RTOL)


def test_missing_feature_and_wrong_kind_are_named(regressor):
    _, path, test, band = regressor
    frame = _polars(test, band, "string")
    with pytest.raises(pl.exceptions.ColumnNotFoundError, match="band"):
        frame.drop("band").select(predict(path))
    # A string column for a numeric feature.
    first = test.columns[0]
    bad = frame.with_columns(pl.col(first).cast(pl.String))
    with pytest.raises(pl.exceptions.ComputeError,
                       match=rf'input column 0 \("{first}"\) has dtype str.*only integer'
                             rf'.* for feature "{first}", a float feature'):
        bad.select(predict(path))
    # A list for the category feature: a kind error naming the feature and its kind.
    bad = frame.with_columns(pl.concat_list(pl.col("band")).alias("band"))
    with pytest.raises(pl.exceptions.ComputeError,
                       match=r'"band".*neither a string nor a number; feature "band" is a '
                             r"category feature"):
        bad.select(predict(path))
    # No expressions and no readable model: named when the expression is built.
    with pytest.raises(ValueError, match="no feature columns given"):
        predict("/no/such/model.mle")
