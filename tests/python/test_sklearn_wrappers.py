"""scikit-learn meta-estimators over supported members: TransformedTargetRegressor,
VotingRegressor / VotingClassifier and StackingRegressor / StackingClassifier, on bundled
data, exported WITHOUT sample_input (the exporter's own sample validates each export), then
compared with scikit-learn's predict / predict_proba; one of each kind wraps a Pipeline with a
ColumnTransformer over a pandas frame with a string column."""

from __future__ import annotations

import mle_runtime as mle
import numpy as np
import pandas as pd
import pytest
from conftest import assert_close, export_and_load, load
from mle_runtime.errors import UnsupportedModelError
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
    StackingClassifier,
    StackingRegressor,
    VotingClassifier,
    VotingRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor


def _lr(max_iter=2000):
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))


def _check_regressor(model, X, tmp_model):
    _, rt = export_and_load(model, tmp_model())
    assert_close(rt.predict(X), model.predict(X), what=type(model).__name__)


def _check_classifier(model, X, tmp_model, proba=True):
    _, rt = export_and_load(model, tmp_model())
    np.testing.assert_array_equal(rt.predict(X), model.predict(X))
    if proba:
        assert_close(rt.predict_proba(X), model.predict_proba(X), what="predict_proba")


# -- TransformedTargetRegressor ----------------------------------------------------------

@pytest.mark.parametrize("case", ["log1p", "expm1", "scaler", "none"])
def test_transformed_target(case, tmp_model):
    X, y = load("diabetes")
    if case == "log1p":
        kw = {"func": np.log1p, "inverse_func": np.expm1}
        reg = GradientBoostingRegressor(n_estimators=30, random_state=0)
    elif case == "expm1":
        y = y / 100.0  # keeps expm1 finite
        kw = {"func": np.expm1, "inverse_func": np.log1p}
        # a tree predicts within the transformed targets (> -1): log1p stays finite
        reg = DecisionTreeRegressor(max_depth=6, random_state=0)
    elif case == "scaler":
        kw = {"transformer": StandardScaler()}
        reg = RandomForestRegressor(n_estimators=10, max_depth=6, random_state=0)
    else:
        kw = {}
        reg = LinearRegression()
    model = TransformedTargetRegressor(regressor=reg, **kw).fit(X, y)
    _check_regressor(model, X, tmp_model)


@pytest.mark.parametrize("kw, param", [
    ({"func": np.sqrt, "inverse_func": np.square}, "func="),
    ({"func": np.log1p, "inverse_func": np.exp}, "inverse_func="),
    ({"transformer": FunctionTransformer(np.log1p, np.expm1)}, "transformer="),
])
def test_transformed_target_refused(kw, param, tmp_model):
    X, y = load("diabetes")
    model = TransformedTargetRegressor(regressor=LinearRegression(), check_inverse=False,
                                       **kw).fit(X, y)
    with pytest.raises(UnsupportedModelError, match=param):
        mle.export_model(model, tmp_model())


# -- Voting ------------------------------------------------------------------------------

def test_voting_regressor(tmp_model):
    X, y = load("diabetes")
    model = VotingRegressor([
        ("lin", LinearRegression()),
        ("tree", DecisionTreeRegressor(max_depth=5, random_state=0)),
        ("hgb", HistGradientBoostingRegressor(max_iter=30, random_state=0)),
        ("drop", "drop"),
    ], weights=[1.0, 2.0, 0.5, 3.0]).fit(X, y)
    _check_regressor(model, X, tmp_model)


@pytest.mark.parametrize("data", ["breast_cancer", "wine"])
def test_voting_classifier_soft(data, tmp_model):
    X, y = load(data)
    y = np.asarray([f"c{v}" for v in y])  # string labels map through classes_
    model = VotingClassifier([
        ("lr", _lr()),
        ("rf", RandomForestClassifier(n_estimators=10, max_depth=5, random_state=0)),
        ("gb", GradientBoostingClassifier(n_estimators=10, random_state=0)),
    ], voting="soft", weights=[2, 1, 1]).fit(X, y)
    _check_classifier(model, X, tmp_model)


def test_voting_classifier_hard(tmp_model):
    X, y = load("wine")
    model = VotingClassifier([
        ("lr", _lr()),
        ("tree", DecisionTreeClassifier(max_depth=3, random_state=0)),
        ("hgb", HistGradientBoostingClassifier(max_iter=10, random_state=0)),
    ], voting="hard").fit(X, y)
    _check_classifier(model, X, tmp_model, proba=False)


# -- Stacking ----------------------------------------------------------------------------

@pytest.mark.parametrize("passthrough", [False, True])
def test_stacking_regressor(passthrough, tmp_model):
    X, y = load("diabetes")
    model = StackingRegressor([
        ("ridge", Ridge()),
        ("rf", RandomForestRegressor(n_estimators=8, max_depth=5, random_state=0)),
    ], final_estimator=Ridge(alpha=0.1), passthrough=passthrough, cv=3).fit(X, y)
    _check_regressor(model, X, tmp_model)


@pytest.mark.parametrize("data, passthrough", [("breast_cancer", False), ("wine", True)])
def test_stacking_classifier(data, passthrough, tmp_model):
    X, y = load(data)
    model = StackingClassifier([
        ("lr", _lr()),
        ("tree", DecisionTreeClassifier(max_depth=4, random_state=0)),
        ("hgb", HistGradientBoostingClassifier(max_iter=10, random_state=0)),
    ], final_estimator=LogisticRegression(max_iter=5000), passthrough=passthrough,
        cv=3).fit(X, y)
    _check_classifier(model, X, tmp_model)


def test_stacking_decision_function(tmp_model):
    X, y = load("wine")
    model = StackingClassifier([
        ("lr", _lr()),
        ("lr2", make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))),
    ], stack_method="decision_function", cv=3).fit(X, y)
    _check_classifier(model, X, tmp_model)


# -- wrappers around a Pipeline with a ColumnTransformer over a frame -----------------------

def _frame():
    X, y = load("diabetes")
    cols = [f"x{i}" for i in range(X.shape[1])]
    df = pd.DataFrame(X, columns=cols)
    rng = np.random.default_rng(0)
    df["city"] = np.asarray(["north", "south", "east", "west"], dtype=object)[
        rng.integers(0, 4, len(df))]
    y = y + np.where(df["city"] == "north", 40.0, 0.0)
    return df, y, cols


def _ct_pipeline(cols, est):
    ct = ColumnTransformer([
        ("num", StandardScaler(), cols),
        ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"]),
    ])
    return make_pipeline(ct, est)


def test_wrappers_over_column_transformer(tmp_model):
    df, y, cols = _frame()
    ttr = TransformedTargetRegressor(regressor=_ct_pipeline(cols, Ridge()),
                                     func=np.log1p, inverse_func=np.expm1).fit(df, y)
    _check_regressor(ttr, df, tmp_model)
    vote = VotingRegressor([
        ("ridge", _ct_pipeline(cols, Ridge())),
        ("gb", _ct_pipeline(cols, GradientBoostingRegressor(n_estimators=20,
                                                            random_state=0))),
    ]).fit(df, y)
    _check_regressor(vote, df, tmp_model)
    stack = StackingRegressor([
        ("ridge", _ct_pipeline(cols, Ridge())),
        ("tree", _ct_pipeline(cols, DecisionTreeRegressor(max_depth=4, random_state=0))),
    ], final_estimator=LinearRegression(), cv=3).fit(df, y)
    _check_regressor(stack, df, tmp_model)
    # unseen category: OneHotEncoder(handle_unknown="ignore") gives zeros
    odd = df.head(20).assign(city="elsewhere")
    _, rt = export_and_load(vote, tmp_model("odd.mle"))
    assert_close(rt.predict(odd), vote.predict(odd), what="unseen city")


def test_voting_classifier_over_column_transformer(tmp_model):
    df, y, cols = _frame()
    yc = np.where(y > np.median(y), "high", "low")
    model = VotingClassifier([
        ("lr", _ct_pipeline(cols, LogisticRegression(max_iter=2000))),
        ("rf", _ct_pipeline(cols, RandomForestClassifier(n_estimators=8, max_depth=5,
                                                         random_state=0))),
    ], voting="soft").fit(df, yc)
    _check_classifier(model, df, tmp_model)


def test_wrapper_as_pipeline_step(tmp_model):
    X, y = load("diabetes")
    plain = make_pipeline(StandardScaler(), VotingRegressor([
        ("ridge", Ridge()), ("tree", DecisionTreeRegressor(max_depth=4, random_state=0))]))
    _check_regressor(plain.fit(X, y), X, tmp_model)
    df, y2, cols = _frame()
    ct = ColumnTransformer([
        ("num", StandardScaler(), cols),
        ("cat", OneHotEncoder(), ["city"]),
    ])
    piped = make_pipeline(ct, TransformedTargetRegressor(
        regressor=VotingRegressor([("ridge", Ridge()), ("lin", LinearRegression())]),
        transformer=StandardScaler())).fit(df, y2)
    _check_regressor(piped, df, tmp_model)


def test_categorical_hist_gradient_boosting_members(tmp_model):
    X, y = load("diabetes")
    Xc = X.copy()
    Xc[:, 1] = (X[:, 1] > 0).astype(np.float64)  # sex: two integer categories
    hgb = HistGradientBoostingRegressor(max_iter=20, categorical_features=[1],
                                        random_state=0)
    ttr = TransformedTargetRegressor(regressor=hgb, func=np.log1p,
                                     inverse_func=np.expm1).fit(Xc, y)
    _, rt = export_and_load(ttr, tmp_model())
    assert_close(rt.predict(Xc), ttr.predict(Xc), what="TTR over categorical HGB")
    vote = VotingRegressor([("hgb", hgb), ("ridge", Ridge())]).fit(Xc, y)
    with pytest.raises(UnsupportedModelError, match="categorical HistGradientBoosting"):
        mle.export_model(vote, tmp_model("v.mle"), sample_input=Xc)


def test_stacking_decision_function_member(tmp_model):
    from sklearn.svm import LinearSVC

    X, y = load("breast_cancer")
    model = StackingClassifier([
        ("svc", make_pipeline(StandardScaler(), LinearSVC())),
        ("tree", DecisionTreeClassifier(max_depth=3, random_state=0)),
    ], cv=3).fit(X, y)
    assert model.stack_method_[0] == "decision_function"
    _check_classifier(model, X, tmp_model)
