"""Every supported scikit-learn estimator: train on bundled data, export, load, compare
with scikit-learn's own predict / predict_proba / decision_function / transform, for
float32 and float64 inputs, compressed and not."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import assert_close, export_and_load, load, with_nans
from sklearn import ensemble as en
from sklearn import impute, pipeline, svm, tree
from sklearn import linear_model as lm
from sklearn import neural_network as nn
from sklearn import preprocessing as pp
from sklearn.exceptions import ConvergenceWarning

warnings.filterwarnings("ignore", category=ConvergenceWarning)


def _clf_labels(y, kind):
    if kind == "str":
        names = np.array(["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta",
                          "iota", "kappa"])
        return names[y]
    return y


# (id, factory, dataset, supports NaN, label kind)
CLASSIFIERS = [
    ("logreg_binary", lambda: pipeline.make_pipeline(
        pp.StandardScaler(), lm.LogisticRegression(max_iter=2000)), "breast_cancer", False,
     "int"),
    ("logreg_multinomial", lambda: pipeline.make_pipeline(
        pp.StandardScaler(), lm.LogisticRegression(max_iter=2000)), "wine", False, "str"),
    ("sgd_hinge", lambda: pipeline.make_pipeline(
        pp.StandardScaler(), lm.SGDClassifier(random_state=0)), "iris", False, "int"),
    ("sgd_log_binary", lambda: pipeline.make_pipeline(
        pp.StandardScaler(), lm.SGDClassifier(loss="log_loss", random_state=0)),
     "breast_cancer", False, "str"),
    ("linear_svc", lambda: pipeline.make_pipeline(
        pp.StandardScaler(), svm.LinearSVC(random_state=0)), "wine", False, "int"),
    ("decision_tree", lambda: tree.DecisionTreeClassifier(random_state=0), "breast_cancer",
     True, "int"),
    ("random_forest", lambda: en.RandomForestClassifier(n_estimators=20, random_state=0),
     "wine", True, "str"),
    ("extra_trees", lambda: en.ExtraTreesClassifier(n_estimators=20, random_state=0),
     "digits", True, "int"),
    ("gradient_boosting_binary", lambda: en.GradientBoostingClassifier(
        n_estimators=30, random_state=0), "breast_cancer", False, "int"),
    ("gradient_boosting_multi", lambda: en.GradientBoostingClassifier(
        n_estimators=20, random_state=0), "iris", False, "str"),
    ("hist_gradient_boosting_binary", lambda: en.HistGradientBoostingClassifier(
        max_iter=30, random_state=0), "breast_cancer", True, "int"),
    ("hist_gradient_boosting_multi", lambda: en.HistGradientBoostingClassifier(
        max_iter=20, random_state=0), "digits", True, "int"),
    ("mlp_binary", lambda: pipeline.make_pipeline(
        pp.MinMaxScaler(), nn.MLPClassifier(hidden_layer_sizes=(32,), max_iter=300,
                                            random_state=0)), "breast_cancer", False, "int"),
    ("mlp_multi_tanh", lambda: pipeline.make_pipeline(
        pp.StandardScaler(), nn.MLPClassifier(hidden_layer_sizes=(32, 16), activation="tanh",
                                              max_iter=300, random_state=0)), "digits",
     False, "str"),
    ("imputer_logreg", lambda: pipeline.make_pipeline(
        impute.SimpleImputer(strategy="median"), pp.RobustScaler(),
        lm.LogisticRegression(max_iter=2000)), "breast_cancer", True, "int"),
]

REGRESSORS = [
    ("linear_regression", lm.LinearRegression, False),
    ("ridge", lambda: lm.Ridge(alpha=0.5), False),
    ("lasso", lambda: lm.Lasso(alpha=0.1), False),
    ("elastic_net", lambda: lm.ElasticNet(alpha=0.01), False),
    ("sgd_regressor", lambda: pipeline.make_pipeline(
        pp.StandardScaler(), lm.SGDRegressor(random_state=0)), False),
    ("linear_svr", lambda: pipeline.make_pipeline(
        pp.StandardScaler(), svm.LinearSVR(random_state=0, max_iter=5000)), False),
    ("decision_tree", lambda: tree.DecisionTreeRegressor(random_state=0), True),
    ("random_forest", lambda: en.RandomForestRegressor(n_estimators=20, random_state=0), True),
    ("extra_trees", lambda: en.ExtraTreesRegressor(n_estimators=20, random_state=0), True),
    ("gradient_boosting", lambda: en.GradientBoostingRegressor(n_estimators=30,
                                                               random_state=0), False),
    ("hist_gradient_boosting", lambda: en.HistGradientBoostingRegressor(
        max_iter=30, random_state=0), True),
    ("hist_gradient_boosting_poisson", lambda: en.HistGradientBoostingRegressor(
        max_iter=30, loss="poisson", random_state=0), True),
    ("mlp", lambda: pipeline.make_pipeline(
        pp.StandardScaler(), nn.MLPRegressor(hidden_layer_sizes=(32,), max_iter=500,
                                             random_state=0)), False),
    ("imputer_maxabs_ridge", lambda: pipeline.make_pipeline(
        impute.SimpleImputer(), pp.MaxAbsScaler(), lm.Ridge()), True),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CLASSIFIERS, ids=[c[0] for c in CLASSIFIERS])
def test_classifier_parity(case, dtype, tmp_model):
    name, factory, data, nan_ok, label_kind = case
    X, y = load(data)
    if nan_ok:
        X = with_nans(X)
    y = _clf_labels(y, label_kind)
    model = factory().fit(X, y)
    Xt = X.astype(dtype)
    Xr = Xt.astype(np.float64)  # scikit-learn's reference on the same values (see exporter)
    res, rt = export_and_load(model, tmp_model(), sample_input=Xt)
    assert res["framework"] == "sklearn"
    assert res["validation"]["passed"]
    # identical class decisions, labels of the original type
    pred = rt.predict(Xt)
    ref = model.predict(Xr)
    assert pred.dtype.kind == ref.dtype.kind or ref.dtype.kind in "OU"
    np.testing.assert_array_equal(pred.astype(str), ref.astype(str))
    final = model[-1] if hasattr(model, "steps") else model
    if hasattr(final, "predict_proba") and "probabilities" in [o["name"] for o in rt.outputs]:
        assert_close(rt.predict_proba(Xt), model.predict_proba(Xr), what="predict_proba")
    if "scores" in [o["name"] for o in rt.outputs]:
        assert_close(rt.decision_function(Xt), model.decision_function(Xr),
                     what="decision_function")
    # run([x])[0] is the label output
    np.testing.assert_array_equal(rt.run([Xt])[0].astype(str), ref.astype(str))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", REGRESSORS, ids=[c[0] for c in REGRESSORS])
def test_regressor_parity(case, dtype, tmp_model):
    name, factory, nan_ok = case
    X, y = load("diabetes")
    if nan_ok:
        X = with_nans(X)
    model = factory().fit(X, y)
    Xt = X.astype(dtype)
    res, rt = export_and_load(model, tmp_model(), sample_input=Xt)
    assert res["validation"]["passed"], res["validation"]
    assert_close(rt.predict(Xt), model.predict(Xt.astype(np.float64)), what=name)


@pytest.mark.parametrize("transformer", [
    pp.StandardScaler(), pp.StandardScaler(with_mean=False), pp.MinMaxScaler(),
    pp.MinMaxScaler(feature_range=(-1, 2), clip=True), pp.MaxAbsScaler(), pp.RobustScaler(),
    pp.Normalizer(), pp.Normalizer(norm="l1"), pp.Normalizer(norm="max"),
    impute.SimpleImputer(strategy="mean"), impute.SimpleImputer(strategy="most_frequent"),
    impute.SimpleImputer(strategy="constant", fill_value=-3.0),
], ids=lambda t: repr(t))
def test_transformer_parity(transformer, tmp_model):
    X, _ = load("wine")
    if isinstance(transformer, impute.SimpleImputer):
        X = with_nans(X, frac=0.1)
    transformer.fit(X[:100])
    res, rt = export_and_load(transformer, tmp_model(), sample_input=X)
    assert_close(rt.transform(X), transformer.transform(X), what=repr(transformer))


def test_hist_gradient_boosting_categorical(tmp_model):
    """Categorical splits (bitsets, members go left) with NaN in numeric and categorical
    features, checked against scikit-learn."""
    X, y = load("breast_cancer")
    rng = np.random.default_rng(1)
    cat = rng.integers(0, 12, size=len(X)).astype(np.float64)
    y = np.where(cat % 3 == 0, 1 - y, y)  # make the categorical feature informative
    Xc = np.column_stack([cat, with_nans(X[:, :8])])
    Xc[rng.random(len(Xc)) < 0.05, 0] = np.nan
    for model in [
        en.HistGradientBoostingClassifier(max_iter=30, categorical_features=[0],
                                          random_state=0),
        en.HistGradientBoostingRegressor(max_iter=30, categorical_features=[0],
                                         random_state=0),
    ]:
        target = y if model.__class__.__name__.endswith("Classifier") else y + cat / 10
        model.fit(Xc, target)
        assert any(p.nodes["is_categorical"].any() for it in model._predictors for p in it)
        res, rt = export_and_load(model, tmp_model(), sample_input=Xc)
        if hasattr(model, "predict_proba"):
            np.testing.assert_array_equal(rt.predict(Xc), model.predict(Xc))
            assert_close(rt.predict_proba(Xc), model.predict_proba(Xc))
        else:
            assert_close(rt.predict(Xc), model.predict(Xc))


def test_feature_names_and_metadata(tmp_model):
    import pandas as pd

    X, y = load("iris")
    df = pd.DataFrame(X, columns=["sl", "sw", "pl", "pw"])
    model = en.RandomForestClassifier(n_estimators=5, random_state=0).fit(df, y)
    res, rt = export_and_load(model, tmp_model(), metadata={"version": "1.0", "author": "t"},
                              sample_input=X)
    assert rt.metadata["input"]["feature_names"] == ["sl", "sw", "pl", "pw"]
    assert rt.metadata["user"]["version"] == "1.0"
    assert rt.inputs[0]["shape"] == [-1, 4]
    assert [o["name"] for o in rt.outputs] == ["label", "probabilities"]
    # a DataFrame with shuffled columns is reordered by name
    shuffled = df[["pw", "sl", "pl", "sw"]]
    np.testing.assert_array_equal(rt.predict(shuffled), model.predict(df))


def test_compressed_equals_uncompressed(tmp_model):
    X, y = load("digits")
    model = en.RandomForestClassifier(n_estimators=30, random_state=0).fit(X, y)
    a, rta = export_and_load(model, tmp_model("a.mle"), sample_input=X)
    b, rtb = export_and_load(model, tmp_model("b.mle"), compression=True, sample_input=X)
    assert b["size_bytes"] < a["size_bytes"]
    assert rta.zero_copy if hasattr(rta, "zero_copy") else True
    np.testing.assert_array_equal(rta.predict_proba(X), rtb.predict_proba(X))
    np.testing.assert_array_equal(rta.predict(X), rtb.predict(X))


@pytest.mark.parametrize("q", ["fp16", "int8"])
def test_mlp_quantized_bounds(q, tmp_model):
    """fp16 / int8 quantization of dense weights: measured bounds on digits (documented in
    docs/BENCHMARKS.md); trees are never quantized."""
    X, y = load("digits")
    model = pipeline.make_pipeline(pp.StandardScaler(), nn.MLPClassifier(
        hidden_layer_sizes=(64,), max_iter=300, random_state=0)).fit(X, y)
    res, rt = export_and_load(model, tmp_model(), quantization=q, sample_input=X)
    v = res["validation"]
    bound = {"fp16": 2e-3, "int8": 3e-2}[q]
    err = np.abs(rt.predict_proba(X) - model.predict_proba(X)).max()
    assert err <= bound, err
    agree = (rt.predict(X) == model.predict(X)).mean()
    assert agree >= {"fp16": 0.999, "int8": 0.98}[q], agree
    assert v["max_abs_error"] == pytest.approx(err, rel=1e-6)
    base, _ = export_and_load(model, tmp_model("base.mle"), sample_input=X)
    assert res["size_bytes"] < base["size_bytes"]


def test_validate_export(tmp_model):
    import mle_runtime as mle

    X, y = load("breast_cancer")
    model = lm.LogisticRegression(max_iter=5000).fit(X, y)
    path = tmp_model()
    mle.export_model(model, path)
    v = mle.validate_export(model, path, [X])
    assert v["passed"] and v["label_mismatches"] == 0
    assert v["max_abs_error"] < 1e-9 and v["max_rel_error"] < 1e-5
    assert set(v) >= {"max_abs_error", "max_rel_error", "mean_abs_error"}
