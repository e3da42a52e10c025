"""XGBoost and LightGBM models (Booster and scikit-learn wrappers) through the native
importers, compared with the frameworks' own predictions, with missing values."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close, export_and_load, load, with_nans

xgb = pytest.importorskip("xgboost")
lgb = pytest.importorskip("lightgbm")

# XGBoost sums leaves in f32; the importer keeps f64 leaves, so outputs differ at f32
# rounding (~1e-7 relative per tree).
XGB_RTOL = 1e-5


def _qid(n, size=20):
    return np.repeat(np.arange(n // size + 1), size)[:n]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("data", ["breast_cancer", "wine"])
def test_xgb_classifier(data, dtype, tmp_model):
    X, y = load(data)
    X = with_nans(X)
    model = xgb.XGBClassifier(n_estimators=20, max_depth=4, n_jobs=1).fit(X, y)
    Xt = X.astype(dtype)
    res, rt = export_and_load(model, tmp_model(), sample_input=Xt)
    assert res["framework"] == "xgboost" and res["validation"]["passed"]
    np.testing.assert_array_equal(rt.predict(Xt), model.predict(Xt))
    assert_close(rt.predict_proba(Xt), model.predict_proba(Xt), rtol=XGB_RTOL)


@pytest.mark.parametrize("objective", ["reg:squarederror", "count:poisson", "reg:gamma"])
def test_xgb_regressor(objective, tmp_model):
    X, y = load("diabetes")
    X = with_nans(X)
    model = xgb.XGBRegressor(n_estimators=20, objective=objective, n_jobs=1).fit(X, y)
    res, rt = export_and_load(model, tmp_model(), compression=True, sample_input=X)
    assert_close(rt.predict(X), model.predict(X), rtol=XGB_RTOL)


def test_xgb_booster_and_ranker(tmp_model):
    X, y = load("diabetes")
    d = xgb.DMatrix(X, label=y)
    booster = xgb.train({"objective": "reg:squarederror", "max_depth": 3}, d, 15)
    _, rt = export_and_load(booster, tmp_model("b.mle"), sample_input=X)
    assert_close(rt.predict(X), booster.predict(d), rtol=XGB_RTOL)
    ranker = xgb.XGBRanker(n_estimators=15, n_jobs=1).fit(X, (y > 150).astype(int),
                                                          qid=_qid(len(X)))
    _, rt = export_and_load(ranker, tmp_model("r.mle"), sample_input=X)
    assert_close(rt.predict(X), ranker.predict(X), rtol=XGB_RTOL)


def test_early_stopping_exports_the_trees_predict_uses(tmp_model):
    """The wrappers predict with the best iteration; the file must too (XGBoost keeps the
    later trees in the booster; LightGBM's booster is already cut at the best one)."""
    X, y = load("breast_cancer")
    X = with_nans(X)
    fit, val = slice(0, 400), slice(400, None)
    xm = xgb.XGBClassifier(n_estimators=300, max_depth=3, learning_rate=0.5,
                           early_stopping_rounds=5, n_jobs=1)
    xm.fit(X[fit], y[fit], eval_set=[(X[val], y[val])], verbose=False)
    assert xm.best_iteration + 1 < xm.get_booster().num_boosted_rounds()
    _, rt = export_and_load(xm, tmp_model("x.mle"), sample_input=X)
    assert_close(rt.predict_proba(X), xm.predict_proba(X), rtol=XGB_RTOL)
    np.testing.assert_array_equal(rt.predict(X), xm.predict(X))
    lm = lgb.LGBMClassifier(n_estimators=300, learning_rate=0.5, verbose=-1, n_jobs=1)
    lm.fit(X[fit], y[fit], eval_set=[(X[val], y[val])],
           callbacks=[lgb.early_stopping(5, verbose=False)])
    assert lm.best_iteration_ < 300  # stopped early
    _, rt = export_and_load(lm, tmp_model("l.mle"), sample_input=X)
    assert_close(rt.predict_proba(X), lm.predict_proba(X))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("data,labels", [("breast_cancer", "int"), ("iris", "str")])
def test_lgbm_classifier(data, labels, dtype, tmp_model):
    X, y = load(data)
    X = with_nans(X)
    if labels == "str":
        y = np.array(["setosa", "versicolor", "virginica"])[y]
    model = lgb.LGBMClassifier(n_estimators=20, verbose=-1, n_jobs=1).fit(X, y)
    Xt = X.astype(dtype)
    res, rt = export_and_load(model, tmp_model(), sample_input=Xt)
    assert res["framework"] == "lightgbm" and res["validation"]["passed"]
    np.testing.assert_array_equal(rt.predict(Xt), model.predict(Xt))
    assert_close(rt.predict_proba(Xt), model.predict_proba(Xt))


@pytest.mark.parametrize("objective", ["regression", "poisson", "gamma"])
def test_lgbm_regressor(objective, tmp_model):
    X, y = load("diabetes")
    X = with_nans(X)
    model = lgb.LGBMRegressor(n_estimators=20, objective=objective, verbose=-1,
                              n_jobs=1).fit(X, y)
    _, rt = export_and_load(model, tmp_model(), sample_input=X)
    assert_close(rt.predict(X), model.predict(X))


def test_lgbm_booster_ranker_and_categorical(tmp_model):
    X, y = load("diabetes")
    rng = np.random.default_rng(0)
    cat = rng.integers(0, 8, len(X)).astype(np.float64)
    Xc = np.column_stack([cat, X])
    ds = lgb.Dataset(Xc, label=y + 20 * (cat % 2), categorical_feature=[0])
    booster = lgb.train({"objective": "regression", "verbose": -1, "num_threads": 1,
                         "min_data_per_group": 5, "cat_smooth": 1}, ds, 20)
    assert "cat_threshold=" in booster.model_to_string()  # a categorical split exists
    _, rt = export_and_load(booster, tmp_model("b.mle"), sample_input=Xc)
    assert_close(rt.predict(Xc), booster.predict(Xc))
    ranker = lgb.LGBMRanker(n_estimators=15, verbose=-1, n_jobs=1).fit(
        X, (y > 150).astype(int), group=[20] * (len(X) // 20) + [len(X) % 20])
    _, rt = export_and_load(ranker, tmp_model("r.mle"), sample_input=X)
    assert_close(rt.predict(X), ranker.predict(X))
