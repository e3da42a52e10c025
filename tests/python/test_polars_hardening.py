"""Bad data and the trust policy through the Polars plugin (`mle_runtime.polars`): non-numeric
columns of several dtypes, NaN / ±Inf / extreme values (the same results as the Python runtime
on the same values, and as LightGBM itself where it accepts them), empty frames, zero-row lazy
scans and streaming chunks, and signatures in lazy and streaming queries. String columns,
eager signature cases and corrupt model files are in test_polars.py and
test_signature_hardening.py."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close, load

pl = pytest.importorskip("polars")
import mle_runtime as mle  # noqa: E402
from mle_runtime.polars import predict, predict_proba  # noqa: E402
from polars.exceptions import ComputeError  # noqa: E402
from test_signature_hardening import _tamper  # noqa: E402

NAMES = ["f0", "f1", "f2", "f3"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import lightgbm as lgb
    from sklearn.linear_model import Ridge

    d = tmp_path_factory.mktemp("polars_hardening")
    X, y = load("iris")
    clf = lgb.LGBMClassifier(n_estimators=20, num_leaves=7, verbose=-1, random_state=0).fit(X, y)
    reg = Ridge(alpha=0.5).fit(X, X @ np.array([1.0, -2.0, 0.5, 3.0]) + 1.0)
    paths = {"clf": str(d / "clf.mle"), "reg": str(d / "reg.mle")}
    for key, m in (("clf", clf), ("reg", reg)):
        assert mle.export_model(m, paths[key], feature_names=NAMES)["success"]
    return {"dir": d, "paths": paths, "clf": clf, "reg": reg, "X": X}


def _extreme_frame():
    """Every special value in each column, rotated so that each meets the others; one column
    of each kind Polars hands the plugin (Float64, Float32, Int64, UInt64), plus nulls."""
    f64 = [np.nan, np.inf, -np.inf, np.finfo(np.float64).max, -np.finfo(np.float64).max,
           1e300, -1e300, np.finfo(np.float64).tiny, -0.0, 0.0, 5.1, None]
    f32 = [np.nan, np.inf, -np.inf, float(np.finfo(np.float32).max), 3.4, 0.0, -0.0, 1e-38,
           None]
    i64 = [2**63 - 1, -(2**63), 0, 1, -1, 2**53 + 1, 4, None]
    u64 = [2**64 - 1, 0, 7, 2**60, 2]
    n = 72
    cols = {
        "f0": pl.Series("f0", [f64[i % len(f64)] for i in range(n)], dtype=pl.Float64),
        "f1": pl.Series("f1", [f32[(i + 1) % len(f32)] for i in range(n)], dtype=pl.Float32),
        "f2": pl.Series("f2", [i64[(i + 2) % len(i64)] for i in range(n)], dtype=pl.Int64),
        "f3": pl.Series("f3", [u64[(i + 3) % len(u64)] for i in range(n)], dtype=pl.UInt64),
    }
    df = pl.DataFrame(cols)
    # The values the runtime sees: float64, nulls as NaN (missing), integers converted.
    X = np.column_stack([
        df[c].cast(pl.Float64).fill_null(np.nan).to_numpy() for c in NAMES
    ])
    return df, X


# ------------------------------------------------------------------ non-numeric columns

@pytest.mark.parametrize("dtype", ["date", "categorical", "list", "struct"])
@pytest.mark.parametrize("lazy", [False, True])
def test_non_numeric_columns_are_refused_naming_the_column(models, tmp_path, dtype, lazy):
    X = models["X"][:10]
    df = pl.DataFrame({n: X[:, j] for j, n in enumerate(NAMES)})
    bad = {
        "date": pl.date_range(pl.date(2024, 1, 1), pl.date(2024, 1, 10), eager=True),
        "categorical": pl.Series(["a", "b"] * 5, dtype=pl.Categorical),
        "list": pl.Series([[1.0, 2.0]] * 10),
        "struct": pl.Series([{"a": 1.0}] * 10),
    }[dtype]
    df = df.with_columns(bad.alias("f2"))
    source = df
    if lazy:
        path = tmp_path / "bad.parquet"
        df.write_parquet(path)
        source = pl.scan_parquet(path)
    with pytest.raises(ComputeError,
                       match=r'reg\.mle: input column 2 \("f2"\) has dtype .*only integer '
                             r"and float columns are accepted"):
        q = source.select(predict(models["paths"]["reg"], *NAMES))
        if lazy:
            q.collect()


def test_boolean_columns_are_accepted_as_zero_and_one(models):
    """Boolean columns are features in every front end: false = 0, true = 1, null missing
    (they were refused by the plugin alone)."""
    X = models["X"][:10].copy()
    df = pl.DataFrame({n: X[:, j] for j, n in enumerate(NAMES)})
    flags = pl.Series([True, False, None, True, False, True, True, False, None, False])
    df = df.with_columns(flags.alias("f2"))
    X[:, 2] = np.array([1, 0, np.nan, 1, 0, 1, 1, 0, np.nan, 0], dtype=np.float64)
    out = df.select(predict(models["paths"]["reg"], *NAMES))
    want = mle.load_model(models["paths"]["reg"]).predict(X)
    np.testing.assert_array_equal(out["prediction"].to_numpy(), want)


# ------------------------------------------------------------------ extreme values

@pytest.mark.parametrize("engine", ["eager", "in-memory", "streaming"])
def test_nan_inf_and_extreme_values_match_the_runtime(models, tmp_path, engine):
    df, X = _extreme_frame()
    rt = {k: mle.load_model(p) for k, p in models["paths"].items()}
    exprs = [predict(models["paths"]["clf"], *NAMES).alias("label"),
             predict_proba(models["paths"]["clf"], *NAMES).alias("proba"),
             predict(models["paths"]["reg"], *NAMES).alias("reg")]
    if engine == "eager":
        out = df.select(exprs)
    else:
        path = tmp_path / "extreme.parquet"
        df.write_parquet(path, row_group_size=10)
        out = pl.scan_parquet(path).select(exprs).collect(engine=engine)
    assert out.height == df.height

    # The same values through the Python runtime: identical results.
    np.testing.assert_array_equal(out["label"].to_numpy(), rt["clf"].predict(X))
    proba = out["proba"].to_numpy()
    np.testing.assert_array_equal(proba, rt["clf"].predict_proba(X).astype(proba.dtype))
    reg = out["reg"].to_numpy()
    np.testing.assert_array_equal(reg, rt["reg"].predict(X).astype(reg.dtype))

    # The classifier's probabilities are valid whatever the inputs; LightGBM agrees.
    assert np.all(np.isfinite(proba)) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert_close(proba, models["clf"].predict_proba(X), what="LightGBM on extreme values")
    # The linear model on finite rows equals scikit-learn (it refuses NaN and Inf itself);
    # a non-finite input gives a non-finite prediction, never a finite wrong one.
    finite = np.isfinite(X).all(axis=1) & (np.abs(X).max(axis=1) < 1e200)
    assert finite.sum() >= 5
    assert_close(reg[finite], models["reg"].predict(X[finite]), what="Ridge")
    assert not np.isfinite(reg[~np.isfinite(X).all(axis=1)]).any()


# ------------------------------------------------------------------ empty inputs

def test_empty_frame_gives_empty_columns_of_the_model_dtypes(models):
    X = models["X"][:5]
    df = pl.DataFrame({n: X[:, j] for j, n in enumerate(NAMES)})
    exprs = [predict(models["paths"]["clf"], *NAMES).alias("label"),
             predict_proba(models["paths"]["clf"], *NAMES).alias("proba"),
             predict(models["paths"]["reg"], *NAMES).alias("reg")]
    full = df.select(exprs)
    empty = df.head(0).select(exprs)
    assert empty.height == 0
    assert empty.schema == full.schema
    # A frame with the right names and no rows at all, dtypes declared.
    bare = pl.DataFrame(schema={n: pl.Float64 for n in NAMES}).select(exprs)
    assert bare.height == 0 and bare.schema == full.schema


@pytest.mark.parametrize("engine", ["in-memory", "streaming"])
def test_zero_row_parquet_scan_and_filtered_out_chunks(models, tmp_path, engine):
    X = models["X"]
    df = pl.DataFrame({n: X[:, j] for j, n in enumerate(NAMES)})
    empty = tmp_path / "empty.parquet"
    df.head(0).write_parquet(empty)
    exprs = [predict(models["paths"]["clf"], *NAMES).alias("label"),
             predict_proba(models["paths"]["clf"], *NAMES).alias("proba")]
    ref = df.head(3).select(exprs)

    out = pl.scan_parquet(empty).with_columns(exprs).collect(engine=engine)
    assert out.height == 0
    assert out.select("label", "proba").schema == ref.schema

    # Every chunk emptied by a filter before the model runs.
    full = tmp_path / "full.parquet"
    df.write_parquet(full, row_group_size=16)
    out = (pl.scan_parquet(full).filter(pl.col("f0") > 1e9).with_columns(exprs)
           .collect(engine=engine))
    assert out.height == 0 and out.select("label", "proba").schema == ref.schema
    # Some chunks emptied, others not: the surviving rows score as they do alone.
    keep = pl.col("f2") > 4.5
    out = pl.scan_parquet(full).filter(keep).with_columns(exprs).collect(engine=engine)
    want = df.filter(keep).with_columns(exprs)
    assert out.height == want.height > 0
    np.testing.assert_array_equal(out["label"].to_numpy(), want["label"].to_numpy())
    np.testing.assert_array_equal(out["proba"].to_numpy(), want["proba"].to_numpy())


# ------------------------------------------------------------------ trust policy, lazily

@pytest.mark.parametrize("engine", ["in-memory", "streaming"])
def test_trust_policy_in_lazy_and_streaming_queries(models, tmp_path, engine):
    secret, public = mle.generate_keypair()
    other, _ = mle.generate_keypair()
    clf = models["clf"]
    paths = {c: str(tmp_path / f"{c}.mle") for c in ("unsigned", "wrong_key", "tampered", "signed")}
    mle.export_model(clf, paths["unsigned"], feature_names=NAMES)
    mle.export_model(clf, paths["wrong_key"], feature_names=NAMES, signing_key=other)
    mle.export_model(clf, paths["signed"], feature_names=NAMES, signing_key=secret)
    mle.export_model(clf, paths["tampered"], feature_names=NAMES, signing_key=secret)
    _tamper(paths["tampered"])
    keyfile = tmp_path / "release.pub"
    keyfile.write_text(public.hex() + "\n")

    X = models["X"]
    data = tmp_path / "data.parquet"
    pl.DataFrame({n: X[:, j] for j, n in enumerate(NAMES)}).write_parquet(data, row_group_size=32)

    def run(path):
        return (pl.scan_parquet(data)
                .with_columns(predict_proba(path, *NAMES, public_key=str(keyfile)))
                .collect(engine=engine))

    for case, why in (("unsigned", "the model is not signed"),
                      ("wrong_key", "invalid signature"),
                      ("tampered", "invalid signature")):
        with pytest.raises(ComputeError, match=rf"{case}\.mle: {why}"):
            run(paths[case])
    out = run(paths["signed"])
    assert_close(out["probabilities"].to_numpy(), clf.predict_proba(X), what="signed")
    # No policy: the tampered file runs (only a signature check can catch it).
    pl.scan_parquet(data).with_columns(predict(paths["tampered"], *NAMES)).collect(engine=engine)
