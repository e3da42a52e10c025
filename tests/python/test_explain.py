"""Explanations: ``rt.explain(X)`` (exact path-dependent TreeSHAP of the raw output) against
XGBoost's ``pred_contribs`` and LightGBM's ``pred_contrib`` (binary, multiclass, regression,
missing values, categorical splits), scikit-learn trees that add up to their raw prediction;
``rt.apply(X)`` against ``pred_leaf`` / ``apply``; and SQL ``mle_explain`` /
``mle_predict_leaf`` (through ``mle sql``), Polars ``explain`` and ``mle score --explain``
equal to Python bit for bit. Linear models and networks are refused naming why."""

from __future__ import annotations

import os
import subprocess

import mle_runtime as mle
import numpy as np
import pandas as pd
import pytest
from conftest import load, with_nans

xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")

#: "within 1e-5 of the output's scale": the bound on |ours - theirs| is 1e-5 times the
#: largest absolute raw output of the batch.
SCALE_TOL = 1e-5


def _names(n):
    return [f"f{i}" for i in range(n)]


def _close_to_scale(mine, ref, raw, what):
    mine = np.asarray(mine, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert mine.shape == ref.shape, f"{what}: {mine.shape} vs {ref.shape}"
    scale = max(float(np.max(np.abs(raw))), 1.0)
    err = float(np.max(np.abs(mine - ref)))
    assert err <= SCALE_TOL * scale, f"{what}: max error {err:.3g}, scale {scale:.3g}"


def _adds_up(contrib, raw, what):
    """Contributions plus bias equal the raw output (per row, per class)."""
    raw = np.asarray(raw, dtype=np.float64)
    total = contrib.sum(axis=-1)
    scale = max(float(np.max(np.abs(raw))), 1.0)
    np.testing.assert_allclose(total.reshape(raw.shape), raw, rtol=0, atol=1e-6 * scale,
                               err_msg=what)


def _export(model, path, X, **kw):
    r = mle.export_model(model, str(path), feature_names=_names(X.shape[1]), **kw)
    assert r["success"], r
    return mle.load_model(str(path))


# ----------------------------------------------------------------------------------------
# XGBoost


def _xgb_data(task):
    name = {"binary": "breast_cancer", "multiclass": "wine", "regression": "diabetes"}[task]
    X, y = load(name)
    return with_nans(X, 0.08, seed=1), y


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_xgboost_pred_contribs_and_leaves(task, tmp_path):
    X, y = _xgb_data(task)
    params = dict(n_estimators=25, max_depth=4, learning_rate=0.3, random_state=0, n_jobs=1)
    est = (xgb.XGBRegressor(**params) if task == "regression"
           else xgb.XGBClassifier(**params)).fit(X, y)
    rt = _export(est, tmp_path / "m.mle", X)
    dm = xgb.DMatrix(X)
    booster = est.get_booster()
    ref = booster.predict(dm, pred_contribs=True)
    margin = booster.predict(dm, output_margin=True)
    got = rt.explain(X)
    nf = X.shape[1]
    if task == "multiclass":
        assert got.shape == (len(X), 3, nf + 1)
    else:
        assert got.shape == (len(X), nf + 1)
    _close_to_scale(got, ref, margin, f"xgboost {task}")
    _adds_up(got, margin, f"xgboost {task}")
    assert rt.explain_columns == [*_names(nf), "bias"]
    leaves = rt.apply(X)
    assert leaves.dtype == np.int32
    np.testing.assert_array_equal(leaves, booster.predict(dm, pred_leaf=True).astype(np.int32))


def test_xgboost_categorical_splits(tmp_path):
    X, y = load("breast_cancer")
    rng = np.random.default_rng(0)
    df = pd.DataFrame(X[:, :6], columns=_names(6))
    bands = np.asarray(["a", "b", "c", "d", "e"], dtype=object)
    cat = bands[np.digitize(X[:, 7], np.quantile(X[:, 7], [0.2, 0.4, 0.6, 0.8]))]
    cat[rng.random(len(cat)) < 0.05] = None
    df["band"] = pd.Categorical(cat, categories=list(bands))
    df.loc[rng.random(len(df)) < 0.05, "f1"] = np.nan
    est = xgb.XGBClassifier(n_estimators=20, max_depth=4, tree_method="hist",
                            enable_categorical=True, max_cat_to_onehot=1, random_state=0,
                            n_jobs=1).fit(df, y)
    assert mle.export_model(est, str(tmp_path / "c.mle"))["success"]
    rt = mle.load_model(str(tmp_path / "c.mle"))
    dm = xgb.DMatrix(df, enable_categorical=True)
    booster = est.get_booster()
    import json

    trees = json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]["model"]["trees"]
    assert any(t["categories_nodes"] for t in trees), "the model has categorical splits"
    ref = booster.predict(dm, pred_contribs=True)
    margin = booster.predict(dm, output_margin=True)
    got = rt.explain(df)
    _close_to_scale(got, ref, margin, "xgboost categorical")
    np.testing.assert_array_equal(rt.apply(df),
                                  booster.predict(dm, pred_leaf=True).astype(np.int32))


# ----------------------------------------------------------------------------------------
# LightGBM


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_lightgbm_pred_contrib_and_leaves(task, tmp_path):
    X, y = _xgb_data(task)
    params = dict(n_estimators=25, num_leaves=15, learning_rate=0.2, random_state=0,
                  n_jobs=1, verbose=-1, min_child_samples=5)
    est = (lgb.LGBMRegressor(**params) if task == "regression"
           else lgb.LGBMClassifier(**params)).fit(X, y)
    rt = _export(est, tmp_path / "m.mle", X)
    booster = est.booster_
    ref = booster.predict(X, pred_contrib=True)
    margin = booster.predict(X, raw_score=True)
    got = rt.explain(X)
    nf = X.shape[1]
    if task == "multiclass":
        # LightGBM concatenates the classes: [n, k * (nf + 1)].
        ref = ref.reshape(len(X), 3, nf + 1)
    _close_to_scale(got, ref, margin, f"lightgbm {task}")
    _adds_up(got, margin, f"lightgbm {task}")
    np.testing.assert_array_equal(rt.apply(X), booster.predict(X, pred_leaf=True))


def test_lightgbm_categorical(tmp_path):
    X, y = load("diabetes")
    rng = np.random.default_rng(2)
    df = pd.DataFrame(X[:, :5], columns=_names(5))
    cats = ["north", "south", "east", "west", "centre", "isles"]
    band = np.asarray(cats, dtype=object)[rng.integers(0, len(cats), len(df))]
    y = y + np.where(band == "east", 40.0, 0.0) - np.where(band == "isles", 30.0, 0.0)
    band[rng.random(len(band)) < 0.05] = None
    df["region"] = pd.Categorical(band, categories=cats)
    est = lgb.LGBMRegressor(n_estimators=30, num_leaves=15, random_state=0, n_jobs=1,
                            verbose=-1, min_child_samples=5, min_data_per_group=5,
                            cat_smooth=1).fit(df, y)
    assert "categorical" in est.booster_.model_to_string().lower()
    assert mle.export_model(est, str(tmp_path / "c.mle"))["success"]
    rt = mle.load_model(str(tmp_path / "c.mle"))
    ref = est.booster_.predict(df, pred_contrib=True)
    margin = est.booster_.predict(df, raw_score=True)
    got = rt.explain(df)
    assert rt.explain_columns == [*_names(5), "region", "bias"]
    _close_to_scale(got, ref, margin, "lightgbm categorical")
    np.testing.assert_array_equal(rt.apply(df), est.booster_.predict(df, pred_leaf=True))


# ----------------------------------------------------------------------------------------
# scikit-learn


def _sk_cases():
    from sklearn.ensemble import (
        ExtraTreesRegressor,
        GradientBoostingClassifier,
        GradientBoostingRegressor,
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
    )
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    return {
        "tree_reg": (DecisionTreeRegressor(max_depth=6, random_state=0), "diabetes"),
        "tree_clf": (DecisionTreeClassifier(max_depth=5, random_state=0), "iris"),
        "forest_clf": (RandomForestClassifier(n_estimators=8, max_depth=6, random_state=0),
                       "wine"),
        "extra_reg": (ExtraTreesRegressor(n_estimators=6, max_depth=6, random_state=0),
                      "diabetes"),
        "gb_binary": (GradientBoostingClassifier(n_estimators=15, max_depth=3, random_state=0),
                      "breast_cancer"),
        "gb_multi": (GradientBoostingClassifier(n_estimators=10, max_depth=3, random_state=0),
                     "iris"),
        "gb_reg": (GradientBoostingRegressor(n_estimators=15, max_depth=3, subsample=0.8,
                                             random_state=0), "diabetes"),
        "hgb_clf": (HistGradientBoostingClassifier(max_iter=15, random_state=0),
                    "breast_cancer"),
        "hgb_multi": (HistGradientBoostingClassifier(max_iter=10, random_state=0), "wine"),
        "hgb_reg": (HistGradientBoostingRegressor(max_iter=15, random_state=0), "diabetes"),
    }


def _sk_raw(est, X):
    """The raw output the ensemble computes (what contributions add up to)."""
    name = type(est).__name__
    if name.startswith(("RandomForestClassifier", "DecisionTreeClassifier")):
        return est.predict_proba(X)
    if name.endswith("Classifier"):
        return est.decision_function(X)
    return est.predict(X)


@pytest.mark.parametrize("case", list(_sk_cases()))
def test_sklearn_adds_up_and_applies(case, tmp_path):
    est, data = _sk_cases()[case]
    X, y = load(data)
    if case.startswith("hgb"):
        X = with_nans(X, 0.05, seed=4)
    est.fit(X, y)
    rt = _export(est, tmp_path / "m.mle", X)
    got = rt.explain(X)
    raw = _sk_raw(est, X)
    _adds_up(got, raw, case)
    # Each feature's contribution is zero when no tree splits on it.
    used = np.zeros(X.shape[1], dtype=bool)
    trees = [est] if not hasattr(est, "estimators_") else np.ravel(est.estimators_)
    if hasattr(est, "_predictors"):
        for it in est._predictors:
            for p in it:
                nodes = p.nodes[~p.nodes["is_leaf"].astype(bool)]
                used[nodes["feature_idx"]] = True
    else:
        for t in trees:
            f = t.tree_.feature
            used[f[f >= 0]] = True
    assert np.all(got[..., :-1][..., ~used] == 0.0), case
    if hasattr(est, "apply"):
        want = est.apply(X.astype(np.float32)).reshape(len(X), -1)
        np.testing.assert_array_equal(rt.apply(X), want.astype(np.int32))
    if case == "gb_multi":
        # shap 0.51: "GradientBoostingClassifier is only supported for binary classification";
        # the multiclass case is checked by adding up above.
        return
    import shap

    sv = shap.TreeExplainer(est, feature_perturbation="tree_path_dependent").shap_values(X)
    sv = np.asarray(sv)
    if sv.ndim == 3 and sv.shape[0] != len(X):
        sv = np.moveaxis(sv, 0, 1)
    elif sv.ndim == 3:
        sv = np.moveaxis(sv, 2, 1)
    mine = got[..., :-1]
    _close_to_scale(mine, sv.reshape(mine.shape), raw, f"{case} vs shap")


def test_linear_models_and_networks_are_refused(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPRegressor

    X, y = load("iris")
    rt = _export(LogisticRegression(max_iter=500).fit(X, y), tmp_path / "lin.mle", X)
    with pytest.raises(mle.UnsupportedModelError, match="only tree models are explained"):
        rt.explain(X)
    with pytest.raises(mle.UnsupportedModelError, match="no TreeEnsemble"):
        rt.apply(X)
    net = MLPRegressor(hidden_layer_sizes=(4,), max_iter=50, random_state=0).fit(X, y)
    rt = _export(net, tmp_path / "net.mle", X)
    with pytest.raises(mle.UnsupportedModelError, match="cannot explain"):
        rt.explain(X)


def test_input_kinds_give_the_same_bits(tmp_path):
    X, y = _xgb_data("multiclass")
    est = lgb.LGBMClassifier(n_estimators=10, num_leaves=7, random_state=0, n_jobs=1,
                             verbose=-1).fit(X, y)
    rt = _export(est, tmp_path / "m.mle", X)
    want = rt.explain(X)
    df = pd.DataFrame(X, columns=_names(X.shape[1]))
    np.testing.assert_array_equal(rt.explain(df.iloc[:, ::-1]), want)
    np.testing.assert_array_equal(rt.explain(X.astype(np.float64), threads=2), want)
    import pyarrow as pa

    table = pa.Table.from_pandas(df, preserve_index=False)
    chunked = pa.Table.from_batches(table.to_batches(max_chunksize=50))
    np.testing.assert_array_equal(rt.explain(chunked), want)
    np.testing.assert_array_equal(rt.apply(chunked), rt.apply(X))


# ----------------------------------------------------------------------------------------
# The other front ends give Python's bits.


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A binary XGBoost and a multiclass LightGBM model with their data as Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = tmp_path_factory.mktemp("explain")
    out = {}
    for key, (est, task) in {
        "binary": (xgb.XGBClassifier(n_estimators=15, max_depth=4, random_state=0, n_jobs=1),
                   "binary"),
        "multi": (lgb.LGBMClassifier(n_estimators=10, num_leaves=7, random_state=0, n_jobs=1,
                                     verbose=-1), "multiclass"),
    }.items():
        X, y = _xgb_data(task)
        X = X[:, :8]
        est.fit(X, y)
        path = d / f"{key}.mle"
        rt = _export(est, path, X)
        data = d / f"{key}.parquet"
        pq.write_table(pa.table({n: X[:, i] for i, n in enumerate(_names(8))}), data)
        out[key] = (rt, path, data, X)
    return out


def _struct_to_array(column, names, multiclass):
    """A contributions struct column as [n, n_outputs, n_features + 1] float64."""
    fields = [np.asarray(column.field(n).to_pylist() if multiclass else
                         column.field(n).to_numpy(zero_copy_only=False), dtype=np.float64)
              for n in names]
    a = np.stack(fields, axis=-1)
    return a if multiclass else a[:, None, :]


def _combined(column):
    import pyarrow as pa

    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


@pytest.fixture(scope="module")
def mle_bin():
    path = os.environ.get("MLE_BIN")
    if not path:
        pytest.skip("MLE_BIN is not set (scripts/test.sh sets it to the debug `mle`)")
    assert os.path.isfile(path) and os.access(path, os.X_OK), f"MLE_BIN={path!r}"
    return path


@pytest.mark.parametrize("key", ["binary", "multi"])
def test_sql_mle_explain_and_leaves_equal_python(mle_bin, models, key, tmp_path):
    import pyarrow.parquet as pq

    rt, path, data, X = models[key]
    out = tmp_path / "o.parquet"
    cols = ", ".join(_names(8))
    q = (f"SELECT mle_explain('{path}', {cols}) AS c, mle_predict_leaf('{path}', {cols}) AS l "
         f"FROM t")
    r = subprocess.run([mle_bin, "sql", q, "--table", f"t={data}", "-o", str(out)],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    t = pq.read_table(out)
    names = rt.explain_columns
    got = _struct_to_array(_combined(t.column("c")), names, key == "multi")
    want = rt.explain(X).reshape(got.shape)
    np.testing.assert_array_equal(got, want)
    leaves = np.asarray(t.column("l").to_pylist(), dtype=np.int32)
    np.testing.assert_array_equal(leaves, rt.apply(X))


def test_sql_refuses_at_plan_time(mle_bin, tmp_path):
    from sklearn.linear_model import LinearRegression

    X, y = load("diabetes")
    import pyarrow as pa
    import pyarrow.parquet as pq

    _export(LinearRegression().fit(X, y), tmp_path / "lin.mle", X)
    names = _names(X.shape[1])
    pq.write_table(pa.table({n: X[:, i] for i, n in enumerate(names)}), tmp_path / "d.parquet")
    q = (f"SELECT mle_explain('{tmp_path / 'lin.mle'}', {', '.join(names)}) "
         f"FROM '{tmp_path / 'd.parquet'}'")
    r = subprocess.run([mle_bin, "sql", q], capture_output=True, text=True, check=False)
    assert r.returncode != 0
    assert "mle_explain" in r.stderr and "only tree models are explained" in r.stderr, r.stderr


@pytest.mark.parametrize("key", ["binary", "multi"])
def test_cli_score_explain_equals_python(mle_bin, models, key, tmp_path):
    import pyarrow.parquet as pq

    rt, path, data, X = models[key]
    out = tmp_path / "s.parquet"
    r = subprocess.run([mle_bin, "score", "-m", str(path), str(data), "-o", str(out),
                        "--explain", "--batch-size", "100"],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    t = pq.read_table(out)
    got = _struct_to_array(_combined(t.column("contributions")), rt.explain_columns,
                           key == "multi")
    np.testing.assert_array_equal(got, rt.explain(X).reshape(got.shape))
    np.testing.assert_array_equal(t.column("prediction").to_numpy(), rt.predict(X))


@pytest.mark.parametrize("key", ["binary", "multi"])
def test_polars_explain_equals_python(models, key):
    pl = pytest.importorskip("polars")
    from mle_runtime.polars import explain

    rt, path, data, X = models[key]
    df = pl.DataFrame({n: X[:, i] for i, n in enumerate(_names(8))})
    for frame in (df.with_columns(explain(str(path))),
                  df.lazy().with_columns(explain(str(path), *_names(8))).collect()):
        s = frame["contributions"]
        assert s.dtype.fields[-1].name == "bias"
        parts = [np.asarray(s.struct.field(n).to_list(), dtype=np.float64)
                 for n in rt.explain_columns]
        got = np.stack(parts, axis=-1)
        np.testing.assert_array_equal(got.reshape(rt.explain(X).shape), rt.explain(X))
