"""One model, four front ends, one answer: the Polars plugin, SQL (DataFusion, through
``mle sql``), the CLI (``mle score``) and numpy (``load_model``) give the same bits and the
same dtypes — a classifier with string class labels and a regressor, on data with a
Boolean column (false = 0, true = 1), integers, float32 and NULLs (missing values).

The CLI binary comes from ``MLE_BIN`` (scripts/test.sh sets it to the debug build); unset,
the test is skipped."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pl = pytest.importorskip("polars")
import mle_runtime as mle  # noqa: E402
from mle_runtime.polars import predict, predict_proba  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
NAMES = ["x_f64", "x_f32", "x_int", "x_bool"]
N = 500


@pytest.fixture(scope="module")
def mle_bin():
    path = os.environ.get("MLE_BIN")
    if not path:
        pytest.skip("MLE_BIN is not set (scripts/test.sh sets it to the debug `mle`)")
    assert os.path.isfile(path) and os.access(path, os.X_OK), path
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Training data, the scoring table (Parquet) with its Arrow types, and two models."""
    import lightgbm as lgb
    from sklearn.ensemble import RandomForestClassifier

    d = tmp_path_factory.mktemp("one_contract")
    rng = np.random.default_rng(7)
    x_f64 = rng.normal(size=N)
    x_f32 = rng.normal(size=N).astype(np.float32)
    x_int = rng.integers(-5, 6, size=N).astype(np.int32)
    x_bool = rng.random(N) < 0.4
    missing = rng.random(N) < 0.1  # NULLs in the float64 column and the Boolean column
    missing_b = rng.random(N) < 0.1
    # The matrix every framework sees: float64, booleans as 0/1, NULL as NaN.
    X = np.column_stack([
        np.where(missing, np.nan, x_f64),
        x_f32.astype(np.float64),
        x_int.astype(np.float64),
        np.where(missing_b, np.nan, x_bool.astype(np.float64)),
    ])
    score = np.nan_to_num(X[:, 0]) + X[:, 1] - 0.3 * X[:, 2] + 2.0 * np.nan_to_num(X[:, 3])
    labels = np.array(["low", "mid", "high"])[np.digitize(score, [-1.0, 1.0])]
    clf = RandomForestClassifier(n_estimators=15, max_depth=6, random_state=0).fit(X, labels)
    reg = lgb.LGBMRegressor(n_estimators=30, num_leaves=15, verbose=-1,
                            random_state=0).fit(X, score)
    paths = {"clf": str(d / "clf.mle"), "reg": str(d / "reg.mle")}
    for key, m in (("clf", clf), ("reg", reg)):
        assert mle.export_model(m, paths[key], feature_names=NAMES)["success"]

    table = pa.table({
        "x_f64": pa.array(x_f64, mask=missing, type=pa.float64()),
        "x_f32": pa.array(x_f32, type=pa.float32()),
        "x_int": pa.array(x_int, type=pa.int32()),
        "x_bool": pa.array(x_bool, mask=missing_b, type=pa.bool_()),
    })
    data = d / "data.parquet"
    pq.write_table(table, data, row_group_size=128)
    return {"dir": d, "paths": paths, "X": X, "data": data, "clf": clf, "reg": reg}


def _run(mle_bin, *args):
    env = {k: v for k, v in os.environ.items() if k != "MLE_TRUSTED_KEYS"}
    r = subprocess.run([mle_bin, *args], capture_output=True, text=True, env=env, cwd=ROOT,
                       check=False)
    assert r.returncode == 0, r.stderr
    return r


def _bits(a) -> np.ndarray:
    """Float values as their bit patterns (NaN-safe, -0.0 distinct from 0.0)."""
    a = np.ascontiguousarray(np.asarray(a, dtype=np.float64))
    return a.view(np.uint64)


def _front_ends(s, mle_bin, key):
    """{front end: (prediction values, prediction Arrow/Polars/numpy dtype, probabilities
    matrix or None, probabilities element dtype or None)}."""
    path = s["paths"][key]
    clf = key == "clf"
    out = {}

    # Polars: the plugin over the Parquet file (lazy, several chunks).
    exprs = [predict(path, *NAMES)]
    if clf:
        exprs.append(predict_proba(path, *NAMES))
    df = pl.scan_parquet(s["data"]).select(exprs).collect()
    proba = None
    if clf:
        assert df.schema["probabilities"] == pl.Array(pl.Float64, 3)
        proba = df["probabilities"].to_numpy()
    out["polars"] = (df["prediction"].to_numpy(), df.schema["prediction"], proba,
                     pl.Float64 if clf else None)

    # SQL: DataFusion through `mle sql`, bound by position.
    cols = ", ".join(NAMES)
    q = f"SELECT mle_predict('{path}', {cols}) AS prediction"
    if clf:
        q += f", mle_predict_proba('{path}', {cols}) AS probabilities"
    q += f" FROM '{s['data']}'"
    sql_out = s["dir"] / f"sql_{key}.parquet"
    _run(mle_bin, "sql", q, "-o", str(sql_out), "--threads", "1")
    out["sql"] = _from_parquet(sql_out, clf)

    # CLI: `mle score`, bound by name.
    score_out = s["dir"] / f"score_{key}.parquet"
    _run(mle_bin, "score", "-m", path, str(s["data"]), "-o", str(score_out),
         "--batch-size", "100")
    out["cli"] = _from_parquet(score_out, clf)

    # numpy: the Python runtime on the float64 matrix (booleans 0/1, NULL as NaN).
    rt = mle.load_model(path)
    pred = rt.predict(s["X"])
    proba = rt.predict_proba(s["X"]) if clf else None
    out["numpy"] = (pred, pred.dtype, proba, proba.dtype if clf else None)
    return out


def _from_parquet(path, clf):
    t = pq.read_table(path)
    pred = t.column("prediction")
    proba = None
    elem = None
    if clf:
        col = t.column("probabilities").combine_chunks()
        assert pa.types.is_fixed_size_list(col.type) and col.type.list_size == 3, col.type
        elem = col.type.value_type
        proba = col.flatten().to_numpy().reshape(-1, 3)
    return pred.to_numpy(zero_copy_only=False), pred.type, proba, elem


def test_a_classifier_with_string_labels_gives_the_same_labels_and_bits_everywhere(
        setup, mle_bin):
    got = _front_ends(setup, mle_bin, "clf")
    ref = setup["clf"].predict(setup["X"])
    ref_proba = setup["clf"].predict_proba(setup["X"])
    # dtypes: string labels, float64 probabilities in every front end.
    assert got["polars"][1] == pl.String
    assert got["sql"][1] == pa.string() and got["cli"][1] == pa.string()
    assert got["numpy"][1].kind in "UO"
    assert got["sql"][3] == pa.float64() and got["cli"][3] == pa.float64()
    assert got["numpy"][3] == np.float64
    for name, (pred, _, proba, _) in got.items():
        np.testing.assert_array_equal(np.asarray(pred).astype(str), ref.astype(str),
                                      err_msg=name)
        np.testing.assert_array_equal(_bits(proba), _bits(got["numpy"][2]), err_msg=name)
    # And the framework agrees (the Boolean and NULL inputs were read as it reads them).
    np.testing.assert_allclose(got["numpy"][2], ref_proba, rtol=1e-6, atol=1e-9)


def test_a_regressor_gives_the_same_bits_and_dtype_everywhere(setup, mle_bin):
    got = _front_ends(setup, mle_bin, "reg")
    assert got["polars"][1] == pl.Float64
    assert got["sql"][1] == pa.float64() and got["cli"][1] == pa.float64()
    assert got["numpy"][1] == np.float64
    want = _bits(got["numpy"][0])
    for name, (pred, _, _, _) in got.items():
        np.testing.assert_array_equal(_bits(pred), want, err_msg=name)
    np.testing.assert_allclose(got["numpy"][0], setup["reg"].predict(setup["X"]),
                               rtol=1e-6, atol=1e-9)
