"""scikit-learn CalibratedClassifierCV (sigmoid, isotonic and binary temperature scaling)
over the supported base estimators, on bundled data, exported WITHOUT sample_input (the
exporter's own sample validates each export), then compared with scikit-learn's
predict_proba and predict; one wraps, and one is the last step of, a Pipeline with a
ColumnTransformer over a pandas frame with a string column and an unseen category."""

from __future__ import annotations

import warnings

import mle_runtime as mle
import numpy as np
import pandas as pd
import pytest
from conftest import export_and_load, load
from mle_runtime.errors import UnsupportedModelError
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier

RTOL, ATOL = 1e-5, 1e-7

BASES = {
    "logreg": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
    "linear_svc": lambda: make_pipeline(StandardScaler(), LinearSVC()),
    "tree": lambda: DecisionTreeClassifier(max_depth=4, random_state=0),
    "forest": lambda: RandomForestClassifier(n_estimators=10, max_depth=5, random_state=0),
    "extra_trees": lambda: ExtraTreesClassifier(n_estimators=8, max_depth=5, random_state=0),
    "gb": lambda: GradientBoostingClassifier(n_estimators=15, max_depth=2, random_state=0),
    "hgb": lambda: HistGradientBoostingClassifier(max_iter=15, random_state=0),
    "mlp": lambda: make_pipeline(StandardScaler(), MLPClassifier(
        (8,), max_iter=300, random_state=0)),
}


def _fit(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


def _check(model, X, tmp_model, name="model.mle"):
    _, rt = export_and_load(model, tmp_model(name))
    ref = model.predict_proba(X)
    got = rt.predict_proba(X)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(rt.predict(X), model.predict(X))
    return rt


@pytest.mark.parametrize("ensemble", [True, False])
@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
@pytest.mark.parametrize("data", ["breast_cancer", "wine"])
@pytest.mark.parametrize("base", sorted(BASES))
def test_calibrated(base, data, method, ensemble, tmp_model):
    X, y = load(data)
    model = _fit(CalibratedClassifierCV(BASES[base](), method=method, ensemble=ensemble,
                                        cv=3), X, y)
    assert len(model.calibrated_classifiers_) == (3 if ensemble else 1)
    _check(model, X, tmp_model)


def test_string_labels_and_default_estimator(tmp_model):
    X, y = load("iris")
    y = np.asarray(["setosa", "versicolor", "virginica"], dtype=object)[y]
    model = _fit(CalibratedClassifierCV(method="isotonic", cv=4), X, y)  # LinearSVC
    assert type(model.calibrated_classifiers_[0].estimator).__name__ == "LinearSVC"
    rt = _check(model, X, tmp_model)
    assert set(rt.predict(X)) <= set(model.classes_)


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_frozen_prefit_estimator(method, tmp_model):
    X, y = load("wine")
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(y))
    fit, cal = idx[:90], idx[90:]
    hgb = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(X[fit], y[fit])
    model = CalibratedClassifierCV(FrozenEstimator(hgb), method=method).fit(X[cal], y[cal])
    assert len(model.calibrated_classifiers_) == 1  # ensemble="auto" under FrozenEstimator
    _check(model, X, tmp_model)


@pytest.mark.parametrize("data", ["iris", "wine"])
def test_isotonic_all_zero_rows_are_uniform(data, tmp_model):
    # One-vs-rest LinearSVC scores far from the data are below every class's calibration
    # range: each isotonic calibrator gives 0 and scikit-learn returns 1/n_classes.
    X, y = load(data)
    model = CalibratedClassifierCV(make_pipeline(StandardScaler(), LinearSVC()),
                                   method="isotonic", cv=3).fit(X, y)
    rng = np.random.default_rng(0)
    far = X.mean(0) + 5 * X.std(0) * rng.standard_normal((2000, X.shape[1]))
    uniform = np.all(model.predict_proba(far) == 1.0 / len(model.classes_), axis=1)
    assert uniform.any()
    _check(model, np.vstack([X, far]), tmp_model)


@pytest.mark.parametrize("base", ["logreg", "linear_svc", "gb", "hgb"])
def test_temperature_binary_decision_function(base, tmp_model):
    X, y = load("breast_cancer")
    model = CalibratedClassifierCV(BASES[base](), method="temperature", cv=3).fit(X, y)
    _check(model, X, tmp_model)


@pytest.mark.parametrize("data, base", [
    ("breast_cancer", "forest"),  # predict_proba: scikit-learn takes its log
    ("wine", "logreg"),  # multiclass decision values: a batch-dependent log
])
def test_temperature_refused(data, base, tmp_model):
    X, y = load(data)
    model = CalibratedClassifierCV(BASES[base](), method="temperature", cv=3).fit(X, y)
    with pytest.raises(UnsupportedModelError,
                       match="CalibratedClassifierCV: method='temperature'"):
        mle.export_model(model, tmp_model())


def test_refused_base_estimator(tmp_model):
    from sklearn.neighbors import KNeighborsClassifier

    X, y = load("breast_cancer")
    model = CalibratedClassifierCV(KNeighborsClassifier(), cv=3).fit(X, y)
    with pytest.raises(UnsupportedModelError, match="KNeighborsClassifier"):
        mle.export_model(model, tmp_model())


def test_refused_isotonic_out_of_bounds(tmp_model):
    X, y = load("breast_cancer")
    model = CalibratedClassifierCV(BASES["tree"](), method="isotonic", cv=3).fit(X, y)
    model.calibrated_classifiers_[1].calibrators[0].set_params(out_of_bounds="nan")
    with pytest.raises(UnsupportedModelError, match="out_of_bounds='nan'"):
        mle.export_model(model, tmp_model())


# -- over a Pipeline with a ColumnTransformer, a pandas frame with a string column ---------

def _frame(data):
    X, y = load(data)
    cols = [f"x{i}" for i in range(X.shape[1])]
    df = pd.DataFrame(X, columns=cols)
    rng = np.random.default_rng(0)
    df["city"] = np.asarray(["north", "south", "east", "west"], dtype=object)[
        rng.integers(0, 4, len(df))]
    # the city carries signal: flip a third of the "north" rows to the next class
    flip = (df["city"] == "north").to_numpy() & (rng.random(len(df)) < 0.3)
    y = np.where(flip, (y + 1) % len(np.unique(y)), y)
    return df, y, cols


def _ct(cols, scale=True):
    return ColumnTransformer([
        ("num", StandardScaler() if scale else "passthrough", cols),
        ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"]),
    ])


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
@pytest.mark.parametrize("data", ["breast_cancer", "wine"])
def test_over_column_transformer(data, method, tmp_model):
    df, y, cols = _frame(data)
    model = CalibratedClassifierCV(make_pipeline(_ct(cols), LogisticRegression(
        max_iter=2000)), method=method, cv=3).fit(df, y)
    _check(model, df, tmp_model)
    odd = df.head(40).assign(city="elsewhere")  # unseen: OneHotEncoder gives zeros
    _check(model, odd, tmp_model, "odd.mle")


@pytest.mark.parametrize("scale", [True, False])
@pytest.mark.parametrize("ensemble", [True, False])
def test_as_pipeline_step_after_column_transformer(ensemble, scale, tmp_model):
    df, y, cols = _frame("wine")
    # Scaled, the trees split on StandardScaler's doubles: the export must divide by scale_
    # as scikit-learn does (x · (1/scale_) moved row 123 across a threshold by one ulp).
    model = make_pipeline(_ct(cols, scale=scale), CalibratedClassifierCV(
        HistGradientBoostingClassifier(max_iter=15, random_state=0), method="isotonic",
        ensemble=ensemble, cv=3)).fit(df, y)
    _check(model, df, tmp_model)
    odd = df.head(40).assign(city="elsewhere")
    _check(model, odd, tmp_model, "odd.mle")
