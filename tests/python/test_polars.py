"""The Polars plugin (`mle_runtime.polars`): eager, lazy (scan_parquet) and streaming
results against the original frameworks' own predictions, nulls as missing values, every
dtype path (Float64, Float32, integers, nullable), and every error asserted by message."""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import assert_close, load, with_nans

pl = pytest.importorskip("polars")
import mle_runtime as mle  # noqa: E402
from mle_runtime.polars import predict, predict_proba  # noqa: E402
from polars.exceptions import ComputeError  # noqa: E402

#: Rows of the scoring table: the dataset tiled, so Parquet holds several row groups and the
#: streaming engine calls the plugin on many chunks.
N_ROWS = 40_000
ROW_GROUP = 4_096


def _prepare(X, names):
    """The table as Polars stores it, and the matrix the framework sees for it.

    Column 1 becomes Float32 (the reference sees it rounded to f32), column 2 integers
    (Int32), the rest Float64; NaN becomes null."""
    X = np.array(X, dtype=np.float64, copy=True)
    X[:, 1] = X[:, 1].astype(np.float32).astype(np.float64)
    X[:, 2] = np.where(np.isnan(X[:, 2]), np.nan, np.round(X[:, 2] * 10.0))
    cols = {}
    for j, name in enumerate(names):
        s = pl.Series(name, X[:, j], nan_to_null=True)
        if j == 1:
            s = s.cast(pl.Float32)
        elif j == 2:
            s = s.cast(pl.Int32)
        cols[name] = s
    return pl.DataFrame(cols), X


def _tile(X, n=N_ROWS):
    reps = -(-n // len(X))
    return np.tile(X, (reps, 1))[:n]


class Case:
    def __init__(self, name, tmp, model, X, names, kind):
        self.name, self.kind, self.names = name, kind, names
        self.df, self.X = _prepare(_tile(X), names)
        self.model_path = str(tmp / f"{name}.mle")
        self.parquet = str(tmp / f"{name}.parquet")
        self.df.write_parquet(self.parquet, row_group_size=ROW_GROUP)
        self.model = model
        res = mle.export_model(model, self.model_path, feature_names=names,
                               sample_input=self.X[:256])
        assert res["success"]


def _names(n):
    return [f"f{j}" for j in range(n)]


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    import lightgbm as lgb
    import xgboost as xgb
    from sklearn import ensemble as en
    from sklearn import linear_model as lm
    from sklearn import pipeline
    from sklearn import preprocessing as pp

    tmp = tmp_path_factory.mktemp("polars")
    out = {}

    # XGBoost binary classifier with missing values.
    X, y = load("breast_cancer")
    Xn = with_nans(X, 0.05, seed=1)
    d, Xr = _prepare(Xn, _names(X.shape[1]))
    m = xgb.XGBClassifier(n_estimators=40, max_depth=4, random_state=0).fit(Xr, y)
    out["xgb_clf"] = Case("xgb_clf", tmp, m, Xr, _names(X.shape[1]), "clf")

    # LightGBM regressor with missing values.
    X, y = load("diabetes")
    Xn = with_nans(X, 0.05, seed=2)
    d, Xr = _prepare(Xn, _names(X.shape[1]))
    m = lgb.LGBMRegressor(n_estimators=40, num_leaves=15, verbose=-1, random_state=0).fit(Xr, y)
    out["lgb_reg"] = Case("lgb_reg", tmp, m, Xr, _names(X.shape[1]), "reg")

    # scikit-learn random forest with string labels and missing values.
    X, y = load("wine")
    Xn = with_nans(X, 0.05, seed=3)
    d, Xr = _prepare(Xn, _names(X.shape[1]))
    labels = np.array(["barolo", "grignolino", "barbera"])[y]
    m = en.RandomForestClassifier(n_estimators=25, random_state=0).fit(Xr, labels)
    out["rf_clf"] = Case("rf_clf", tmp, m, Xr, _names(X.shape[1]), "clf")

    # scikit-learn linear pipeline (no missing values).
    X, y = load("diabetes")
    d, Xr = _prepare(X, _names(X.shape[1]))
    m = pipeline.make_pipeline(pp.StandardScaler(), lm.Ridge(alpha=0.5)).fit(Xr, y)
    out["ridge"] = Case("ridge", tmp, m, Xr, _names(X.shape[1]), "reg")
    return out


CASE_IDS = ["xgb_clf", "lgb_reg", "rf_clf", "ridge"]


def _run(case, engine, fn):
    expr = fn(case.model_path, *case.names)
    if engine == "eager":
        return case.df.with_columns(expr)
    lf = pl.scan_parquet(case.parquet).with_columns(**{expr.meta.output_name(): expr})
    return lf.collect(engine="streaming" if engine == "streaming" else "in-memory")


@pytest.mark.parametrize("engine", ["eager", "lazy", "streaming"])
@pytest.mark.parametrize("name", CASE_IDS)
def test_predict_matches_framework(cases, name, engine):
    case = cases[name]
    out = _run(case, engine, predict)
    assert out.height == N_ROWS
    assert out.columns[-1] == "prediction"
    got = out["prediction"]
    assert got.null_count() == 0
    ref = case.model.predict(case.X)
    if case.kind == "clf":
        assert got.dtype == (pl.String if ref.dtype.kind in "UO" else pl.Int64)
        np.testing.assert_array_equal(got.to_numpy(), ref)
    else:
        assert got.dtype in (pl.Float32, pl.Float64)
        assert_close(got.to_numpy(), ref, what=f"{name} {engine}")


@pytest.mark.parametrize("engine", ["eager", "lazy", "streaming"])
@pytest.mark.parametrize("name", ["xgb_clf", "rf_clf"])
def test_predict_proba_matches_framework(cases, name, engine):
    case = cases[name]
    out = _run(case, engine, predict_proba)
    ref = case.model.predict_proba(case.X)
    # Probabilities are Float64 in every front end (was Float32 in the plugin alone).
    assert out.schema["probabilities"] == pl.Array(pl.Float64, ref.shape[1])
    got = out["probabilities"].to_numpy()
    assert got.shape == ref.shape
    assert_close(got, ref, rtol=1e-5, atol=1e-6, what=f"{name} {engine}")


def test_nulls_are_missing_values(cases):
    """A row with nulls scores as the framework scores NaN (not as 0, not as null)."""
    case = cases["xgb_clf"]
    assert sum(case.df[c].null_count() for c in case.names) > 0
    df = case.df.head(500)
    X = case.X[:500].copy()
    # Null out a whole column (every dtype path: Float64, Float32, Int32).
    for j in (0, 1, 2, 5):
        df = df.with_columns(pl.lit(None, dtype=df[case.names[j]].dtype).alias(case.names[j]))
        X[:, j] = np.nan
    out = df.select(predict_proba(case.model_path, *case.names))
    assert_close(out["probabilities"].to_numpy(), case.model.predict_proba(X), what="nulls")


def test_expressions_and_literals(cases):
    """Inputs are expressions: arithmetic on columns and a broadcast literal."""
    case = cases["ridge"]
    df = case.df.head(1000)
    X = case.X[:1000].copy()
    exprs = [pl.col(n) for n in case.names]
    exprs[0] = pl.col(case.names[0]) * 2.0
    X[:, 0] *= 2.0
    exprs[3] = pl.lit(0.25)
    X[:, 3] = 0.25
    out = df.select(predict(case.model_path, *exprs))
    assert_close(out["prediction"].to_numpy(), case.model.predict(X), what="exprs")
    # A list of names works as well as separate arguments.
    out2 = df.select(predict(case.model_path, case.names))
    assert_close(out2["prediction"].to_numpy(), case.model.predict(case.X[:1000]))


def test_group_by_and_filter(cases):
    """The expression composes with the rest of a query."""
    case = cases["lgb_reg"]
    ref = case.model.predict(case.X)
    q = (pl.scan_parquet(case.parquet)
         .with_row_index("i")
         .with_columns(pred=predict(case.model_path, *case.names))
         .filter(pl.col("i") % 7 == 0)
         .select("i", "pred"))
    out = q.collect(engine="streaming").sort("i")
    idx = out["i"].to_numpy()
    assert_close(out["pred"].to_numpy(), ref[idx])


def test_model_file_rewritten_is_reloaded(cases, tmp_path):
    """The cache is keyed by mtime and size: a rewritten model is picked up."""
    from sklearn import linear_model as lm

    case = cases["ridge"]
    path = str(tmp_path / "swap.mle")
    X = case.X[:300]
    a = lm.LinearRegression().fit(X, X[:, 0])
    b = lm.LinearRegression().fit(X, X[:, 0] * 3.0 + 1.0)
    df = case.df.head(300)
    mle.export_model(a, path, feature_names=case.names)
    first = df.select(predict(path, *case.names))["prediction"].to_numpy()
    assert_close(first, a.predict(X))
    os.utime(path, ns=(0, 0))  # make sure the mtime differs even on coarse clocks
    mle.export_model(b, path, feature_names=case.names)
    second = df.select(predict(path, *case.names))["prediction"].to_numpy()
    assert_close(second, b.predict(X))


def test_a_query_keeps_the_model_version_its_expression_was_built_with(cases, tmp_path):
    """The model is pinned when the expression is built: replacing the file afterwards (as
    the atomic writer does) changes nothing for that expression — eager, lazy or streaming —
    while a new expression scores with the new file. When the pin is no longer held, the
    query fails naming the file instead of mixing versions."""
    from sklearn import linear_model as lm

    case = cases["ridge"]
    path = str(tmp_path / "pinned.mle")
    X = case.X[:300]
    a = lm.LinearRegression().fit(X, X[:, 0])
    b = lm.LinearRegression().fit(X, X[:, 0] * 3.0 + 1.0)
    df = case.df.head(300)
    pq = str(tmp_path / "pinned.parquet")
    df.write_parquet(pq, row_group_size=64)
    mle.export_model(a, path, feature_names=case.names)
    old = predict(path, *case.names)
    mle.export_model(b, path, feature_names=case.names)  # atomic replacement
    assert_close(df.select(old)["prediction"].to_numpy(), a.predict(X))
    for engine in ("in-memory", "streaming"):
        got = pl.scan_parquet(pq).select(old).collect(engine=engine)["prediction"]
        assert_close(got.to_numpy(), a.predict(X), what=engine)
    assert_close(df.select(predict(path, *case.names))["prediction"].to_numpy(), b.predict(X))
    # Drop the old pin (least recently used beyond the capacity of 64) and run it again.
    for _ in range(70):
        predict(path, *case.names)
    with pytest.raises(ComputeError, match=r"pinned\.mle: the model file changed after the "
                                           r"expression was built"):
        df.select(old)


# --- errors, asserted by message --------------------------------------------------------


def test_error_wrong_number_of_columns(cases):
    case = cases["rf_clf"]
    n = len(case.names)
    msg = rf"takes {n} feature columns \(f0, f1, .*f{n - 1}\), got 2"
    with pytest.raises(ComputeError, match=msg):
        case.df.select(predict(case.model_path, "f0", "f1"))
    # Lazily too: the error comes from planning, before any data is read.
    with pytest.raises(ComputeError, match=rf"takes {n} feature columns"):
        pl.scan_parquet(case.parquet).select(predict(case.model_path, "f0")).collect()


def test_error_missing_file(cases, tmp_path):
    case = cases["ridge"]
    missing = str(tmp_path / "nope.mle")
    with pytest.raises(ComputeError, match=r"nope\.mle: No such file or directory"):
        case.df.select(predict(missing, *case.names))


def test_error_corrupt_model(cases, tmp_path):
    case = cases["ridge"]
    bad = tmp_path / "garbage.mle"
    bad.write_bytes(b"this is not a model" * 20)
    with pytest.raises(ComputeError, match=r"garbage\.mle: not an MLE model: bad magic"):
        case.df.select(predict(str(bad), *case.names))
    # A real model with flipped bytes in its body fails its checksum.
    data = bytearray(open(case.model_path, "rb").read())
    for i in range(len(data) // 2, len(data) // 2 + 16):
        data[i] ^= 0xFF
    flipped = tmp_path / "flipped.mle"
    flipped.write_bytes(bytes(data))
    with pytest.raises(ComputeError, match=r"flipped\.mle: (checksum mismatch|corrupted)"):
        case.df.select(predict(str(flipped), *case.names))
    # Truncated.
    trunc = tmp_path / "trunc.mle"
    trunc.write_bytes(bytes(data[:100]))
    with pytest.raises(ComputeError, match=r"trunc\.mle: truncated"):
        case.df.select(predict(str(trunc), *case.names))


def test_error_non_numeric_input(cases):
    case = cases["ridge"]
    df = case.df.with_columns(pl.col("f4").cast(pl.String))
    with pytest.raises(ComputeError,
                       match=r'input column 4 \("f4"\) has dtype str; only integer and float'):
        df.select(predict(case.model_path, *case.names))


def test_error_proba_on_regressor(cases):
    case = cases["lgb_reg"]
    with pytest.raises(ComputeError, match=r"has no class probabilities"):
        case.df.select(predict_proba(case.model_path, *case.names))


def test_signed_models(cases, tmp_path):
    case = cases["ridge"]
    secret, public = mle.generate_keypair()
    _, other = mle.generate_keypair()
    signed = str(tmp_path / "signed.mle")
    mle.export_model(case.model, signed, feature_names=case.names, signing_key=secret)
    df = case.df.head(100)
    ref = case.model.predict(case.X[:100])
    for key in (public, public.hex()):
        out = df.select(predict(signed, *case.names, public_key=key))
        assert_close(out["prediction"].to_numpy(), ref)
    keyfile = tmp_path / "pub.key"
    keyfile.write_text(public.hex() + "\n")
    out = df.select(predict(signed, *case.names, public_key=str(keyfile)))
    assert_close(out["prediction"].to_numpy(), ref)
    with pytest.raises(ComputeError, match=r"signed\.mle: invalid signature"):
        df.select(predict(signed, *case.names, public_key=other))
    with pytest.raises(ComputeError, match=r"ridge\.mle: the model is not signed"):
        df.select(predict(case.model_path, *case.names, public_key=public))
    with pytest.raises(ComputeError, match=r"public_key.*expected 64 hex characters"):
        df.select(predict(signed, *case.names, public_key="abc"))


def test_no_features_given():
    with pytest.raises(ValueError, match="feature columns"):
        predict("model.mle")
