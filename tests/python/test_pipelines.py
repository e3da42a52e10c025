"""Whole scikit-learn pipelines: ColumnTransformer, FeatureUnion and the encoders, exported
WITHOUT sample_input (the exporter's own sample, made from the fitted encoders' categories,
validates each export), then scored on a frame with unseen categories and missing values
against scikit-learn's own predict / predict_proba / transform: in Python (pandas and a
pyarrow Table), through `mle score` and `mle sql` (env MLE_BIN) and the Polars plugin.

The frame is adult-census-like and made here: string columns with missing values and rare
categories, an integer column, floats with missing values and a skewed one."""

from __future__ import annotations

import os
import subprocess
import warnings

import mle_runtime as mle
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import FeatureUnion, make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    KBinsDiscretizer,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    PolynomialFeatures,
    StandardScaler,
    TargetEncoder,
)
from sklearn.tree import DecisionTreeRegressor

RTOL = 1e-5
STR = ["workclass", "education", "sex", "country"]
NUM = ["age", "hours", "capital_gain", "fnlwgt", "edu_num"]

WORKCLASS = ["Private", "Self-emp", "Local-gov", "State-gov", "Federal-gov", "Without-pay"]
EDUCATION = ["HS-grad", "Some-college", "Bachelors", "Masters", "Assoc", "Doctorate",
             "11th", "Prof-school"]
COUNTRY = ["US", "Mexico", "Philippines", "Germany", "Canada", "India", "Cuba", "Japan",
           "Iran", "Peru"]


def _frame(n: int, seed: int, unseen: bool):
    rng = np.random.default_rng(seed)

    def pick(values, p=None):
        return np.asarray(values, dtype=object)[rng.choice(len(values), n, p=p)]

    df = pd.DataFrame({
        "age": rng.normal(40, 12, n).clip(17, 90),
        "workclass": pick(WORKCLASS, [0.6, 0.15, 0.1, 0.08, 0.05, 0.02]),
        "education": pick(EDUCATION, [0.3, 0.22, 0.18, 0.1, 0.08, 0.05, 0.04, 0.03]),
        "sex": pick(["Male", "Female"], [0.65, 0.35]),
        "country": pick(COUNTRY, [0.7, 0.1, 0.05, 0.04, 0.03, 0.03, 0.02, 0.01, 0.01, 0.01]),
        "hours": rng.normal(40, 10, n).clip(1, 99),
        "capital_gain": np.where(rng.random(n) < 0.85, 0.0, rng.lognormal(8, 1.2, n)),
        "fnlwgt": rng.lognormal(12, 0.5, n),
        "edu_num": rng.integers(1, 17, n).astype(np.int64),
        "id": [f"r{i}" for i in range(n)],  # a string column every pipeline drops
    })
    for col, share in [("workclass", 0.06), ("country", 0.03), ("age", 0.05)]:
        df.loc[rng.random(n) < share, col] = np.nan
    if unseen:
        df.loc[rng.random(n) < 0.05, "workclass"] = "Never-worked"
        df.loc[rng.random(n) < 0.05, "country"] = "Atlantis"
        df.loc[rng.random(n) < 0.03, "education"] = "Preschool"
    score = (0.04 * (df["age"].fillna(40) - 40) + 0.05 * (df["hours"] - 40)
             + (df["education"].isin(["Bachelors", "Masters", "Doctorate"])) * 1.2
             + (df["sex"] == "Male") * 0.5 + np.log1p(df["capital_gain"]) * 0.1
             + rng.normal(0, 0.7, n))
    y_bin = (score > 0.8).astype(np.int64)
    y_multi = np.digitize(score, [0.0, 1.0])
    y_reg = score.to_numpy() * 1000.0
    return df, y_bin, y_multi, y_reg


TRAIN, Y_BIN, Y_MULTI, Y_REG = _frame(1500, 1, unseen=False)
TEST, _, _, _ = _frame(400, 2, unseen=True)
TEST_SEEN, _, _, _ = _frame(300, 3, unseen=False)


def _num(*extra):
    return make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), *extra)


def _ct(cat, num=None, cols=None, **kw):
    return ColumnTransformer(
        [("cat", cat, cols or ["workclass", "education", "sex"]),
         ("num", num or _num(), ["age", "hours"])], **kw)


def _lr():
    return LogisticRegression(max_iter=500)


# (id, pipeline factory, target, whether the test frame may hold unseen categories)
CASES = [
    ("ohe_ignore_lr", lambda: make_pipeline(_ct(OneHotEncoder(handle_unknown="ignore")),
                                            _lr()), "bin", True),
    ("ohe_sparse_lr", lambda: make_pipeline(
        _ct(OneHotEncoder(handle_unknown="ignore", sparse_output=True), sparse_threshold=1.0),
        _lr()), "bin", True),
    ("ohe_infrequent_min_frequency", lambda: make_pipeline(
        _ct(OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=60),
            cols=["workclass", "education", "country"]), _lr()), "bin", True),
    ("ohe_max_categories_warn", lambda: make_pipeline(
        _ct(OneHotEncoder(handle_unknown="warn", max_categories=4),
            cols=["workclass", "country"]), _lr()), "bin", True),
    ("ohe_drop_first_ignore", lambda: make_pipeline(
        _ct(OneHotEncoder(drop="first", handle_unknown="ignore")), _lr()), "bin", True),
    ("ohe_drop_if_binary_error", lambda: make_pipeline(
        _ct(OneHotEncoder(drop="if_binary", handle_unknown="error"),
            cols=["education", "sex"]), _lr()), "bin", False),
    ("ohe_drop_list_multiclass", lambda: make_pipeline(
        _ct(OneHotEncoder(drop=["HS-grad", "Male"], handle_unknown="ignore"),
            cols=["education", "sex"]), _lr()), "multi", True),
    ("ohe_nan_category_and_numeric_categories", lambda: make_pipeline(
        _ct(OneHotEncoder(handle_unknown="ignore"), cols=["workclass", "country", "edu_num"]),
        _lr()), "bin", True),
    ("ordinal_encoded_values_forest", lambda: make_pipeline(
        _ct(OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                           encoded_missing_value=-2)),
        RandomForestClassifier(n_estimators=15, max_depth=6, random_state=0)), "multi", True),
    ("ordinal_infrequent_hgb_categorical", lambda: make_pipeline(
        _ct(OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                           min_frequency=40), cols=["workclass", "education", "country"],
            verbose_feature_names_out=False),
        HistGradientBoostingClassifier(max_iter=30, categorical_features=[0, 1, 2],
                                       random_state=0)), "bin", True),
    ("target_binary_gb", lambda: make_pipeline(
        _ct(TargetEncoder(random_state=0), cols=["workclass", "education", "country"]),
        GradientBoostingClassifier(n_estimators=20, random_state=0)), "bin", True),
    ("target_continuous_ridge", lambda: make_pipeline(
        _ct(TargetEncoder(target_type="continuous", random_state=0)), Ridge()), "reg", True),
    ("target_multiclass_lr", lambda: make_pipeline(
        _ct(TargetEncoder(random_state=0), cols=["workclass", "education"]), _lr()),
     "multi", True),
    ("string_imputers_and_indicators", lambda: make_pipeline(ColumnTransformer([
        ("freq", make_pipeline(SimpleImputer(strategy="most_frequent"),
                               OneHotEncoder(handle_unknown="ignore")), ["workclass"]),
        ("const", make_pipeline(SimpleImputer(strategy="constant", fill_value="none"),
                                OrdinalEncoder(handle_unknown="use_encoded_value",
                                               unknown_value=-1)), ["country"]),
        ("ind", MissingIndicator(), ["workclass", "country", "age"]),
        ("num", make_pipeline(SimpleImputer(add_indicator=True), StandardScaler()),
         ["age", "hours"]),
    ]), _lr()), "bin", True),
    # hours and fnlwgt have no missing value in fit: error_on_new=False indicates age only
    ("indicator_not_error_on_new", lambda: make_pipeline(ColumnTransformer([
        ("ind", MissingIndicator(error_on_new=False), ["age", "hours", "fnlwgt"]),
        ("num", _num(), ["age", "hours"]),
    ]), _lr()), "bin", True),
    ("kbins_poly_log1p", lambda: make_pipeline(ColumnTransformer([
        ("bins_ord", KBinsDiscretizer(n_bins=5, encode="ordinal", quantile_method="linear"),
         ["hours"]),
        ("bins_oh", KBinsDiscretizer(n_bins=4, encode="onehot-dense", strategy="uniform"),
         ["fnlwgt"]),
        ("poly", make_pipeline(SimpleImputer(), PolynomialFeatures(degree=3),
                               StandardScaler()), ["age", "hours"]),
        ("inter", PolynomialFeatures(degree=2, interaction_only=True, include_bias=False),
         ["hours", "edu_num"]),
        ("log", make_pipeline(FunctionTransformer(np.log1p), MinMaxScaler()),
         ["capital_gain"]),
        ("ident", FunctionTransformer(None), ["edu_num"]),
    ]), _lr()), "bin", True),
    ("selectors_remainder_union_mlp", lambda: make_pipeline(ColumnTransformer([
        ("oh", OneHotEncoder(handle_unknown="ignore"),
         make_column_selector(pattern="^(workclass|sex)$")),
        ("idx", StandardScaler(), [5]),  # hours, by index
        ("gone", "drop", ["education", "country", "id"]),
        ("mask", FeatureUnion([("sc", _num()), ("ind", MissingIndicator(features="all"))]),
         [c in ("age", "fnlwgt") for c in TRAIN.columns]),
    ], remainder=make_pipeline(SimpleImputer(), StandardScaler())),
        MLPClassifier(hidden_layer_sizes=(8,), max_iter=300, random_state=0)), "bin", True),
    ("remainder_passthrough_tree", lambda: make_pipeline(ColumnTransformer([
        ("oh", OneHotEncoder(handle_unknown="ignore"), make_column_selector(
            dtype_include=object, pattern="^(?!id$)")),
        ("drop_id", "drop", ["id"]),
    ], remainder="passthrough", sparse_threshold=0.0),
        DecisionTreeRegressor(max_depth=6, random_state=0)),
     "reg", True),
    ("nested_column_transformer", lambda: make_pipeline(ColumnTransformer([
        ("inner", ColumnTransformer([
            ("oh", OneHotEncoder(handle_unknown="ignore"), ["sex"]),
            ("sc", StandardScaler(), [1]),
        ]), ["sex", "hours"]),
        ("edu", OrdinalEncoder(), ["education"]),
    ]), _lr()), "bin", False),
]


def _target(kind):
    return {"bin": Y_BIN, "multi": Y_MULTI, "reg": Y_REG}[kind]


def _fit(factory, target):
    model = factory()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(TRAIN, _target(target))
    return model


def _sk(model, x, proba):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.predict_proba(x) if proba else model.predict(x)


def _close(got, want, what):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-6 * max(np.abs(want).max(), 1),
                               err_msg=what)


class _Exported(dict):
    """Each case fitted and exported once, when a test first asks for it."""

    def __init__(self, d):
        super().__init__()
        self.d = d

    def __missing__(self, cid):
        _, factory, target, unseen = next(c for c in CASES if c[0] == cid)
        model = _fit(factory, target)
        path = str(self.d / f"{cid}.mle")
        r = mle.export_model(model, path)  # no sample_input: the exporter's own sample
        self[cid] = (model, path, target, unseen, r)
        return self[cid]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return _Exported(tmp_path_factory.mktemp("pipelines"))


@pytest.mark.parametrize("cid", [c[0] for c in CASES])
def test_pipeline_matches_sklearn(exported, cid):
    model, path, target, unseen, r = exported[cid]
    assert r["success"] and r["validation"]["passed"], r["validation"]
    assert r["validation"]["n_samples"] >= 64
    rt = mle.load_model(path)
    # the model's inputs are the columns the pipeline reads, by name; `id` is dropped
    assert "id" not in rt.feature_names
    assert set(rt.feature_names) <= set(TRAIN.columns)
    x = TEST if unseen else TEST_SEEN
    for frame, name in [(x, "pandas"), (pa.Table.from_pandas(x, preserve_index=False),
                                        "pyarrow")]:
        got = rt.predict(frame)
        want = _sk(model, x, proba=False)
        if target == "reg":
            _close(got, want, f"{cid} predict ({name})")
        else:
            np.testing.assert_array_equal(np.asarray(got), want, err_msg=f"{cid} ({name})")
            _close(rt.predict_proba(frame), _sk(model, x, proba=True),
                   f"{cid} predict_proba ({name})")


def test_column_transformer_alone_matches_transform(tmp_path):
    ct = ColumnTransformer([
        ("oh", OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=50,
                             sparse_output=False), ["workclass", "country"]),
        ("te", TargetEncoder(random_state=0), ["education"]),
        ("num", _num(), ["age", "hours"]),
    ], sparse_threshold=0.0)
    ct.fit(TRAIN, Y_BIN)
    path = str(tmp_path / "ct.mle")
    r = mle.export_model(ct, path)
    assert r["validation"]["passed"], r["validation"]
    got = mle.load_model(path).predict(TEST)
    _close(got, ct.transform(TEST), "ColumnTransformer.transform")


# ---------------------------------------------------------------------------------------
# refusals


def test_custom_function_transformer_is_refused(tmp_path):
    model = _fit(lambda: make_pipeline(_ct(OneHotEncoder(handle_unknown="ignore"),
                                           num=make_pipeline(SimpleImputer(),
                                                             FunctionTransformer(lambda a: a * 2))),
                                       _lr()),
                 "bin")
    with pytest.raises(mle.UnsupportedModelError, match=r"FunctionTransformer.*func="):
        mle.export_model(model, str(tmp_path / "f.mle"))


def test_missing_indicator_error_on_new_is_refused_where_sklearn_would_raise(tmp_path):
    model = _fit(lambda: make_pipeline(ColumnTransformer([
        ("ind", MissingIndicator(), ["age", "hours"]), ("num", _num(), ["age", "hours"])]),
        _lr()), "bin")
    bad = TEST_SEEN.copy()
    bad.loc[bad.index[3], "hours"] = np.nan
    with pytest.raises(ValueError, match="no missing values in fit"):
        model.predict(bad)
    with pytest.raises(mle.UnsupportedModelError, match=r"MissingIndicator.*error_on_new"):
        mle.export_model(model, str(tmp_path / "ind.mle"))


def test_unknown_estimator_in_a_column_transformer_is_refused(tmp_path):
    from sklearn.decomposition import PCA

    model = _fit(lambda: make_pipeline(_ct(OneHotEncoder(handle_unknown="ignore"),
                                           num=make_pipeline(SimpleImputer(), PCA(1))),
                                       _lr()), "bin")
    with pytest.raises(mle.UnsupportedModelError, match=r"PCA.*not supported"):
        mle.export_model(model, str(tmp_path / "pca.mle"))


#: What ``handle_unknown="error"`` meets at predict time: an unseen category, or a missing
#: value in a column that had none in fit (scikit-learn raises on both); the message names
#: the column and this.
BAD_VALUES = {"unseen": ("Preschool", "Preschool", "unknown categor"),
              "missing": (None, "missing value", r"Found unknown categories \[(None|nan)\]")}


def _error_model(tmp_path, bad_value="unseen"):
    model = _fit(lambda: make_pipeline(
        _ct(OneHotEncoder(handle_unknown="error"), cols=["education", "sex"]), _lr()), "bin")
    assert not TRAIN["education"].isna().any()
    path = str(tmp_path / "err.mle")
    mle.export_model(model, path)
    bad = TEST_SEEN.copy()
    bad.loc[bad.index[7], "education"] = BAD_VALUES[bad_value][0]
    return model, path, bad


@pytest.mark.parametrize("bad_value", list(BAD_VALUES))
def test_handle_unknown_error_names_the_column_and_the_value_in_python(tmp_path, bad_value):
    model, path, bad = _error_model(tmp_path, bad_value)
    _, ours, theirs = BAD_VALUES[bad_value]
    with pytest.raises(ValueError, match=theirs):
        model.predict(bad)
    rt = mle.load_model(path)
    for frame in (bad, pa.Table.from_pandas(bad, preserve_index=False)):
        with pytest.raises(mle.InputError, match=rf"education.*{ours}"):
            rt.predict(frame)
    # The rows without the bad value still score as scikit-learn does.
    good = bad.drop(index=bad.index[7])
    np.testing.assert_array_equal(rt.predict(good), model.predict(good))


# ---------------------------------------------------------------------------------------
# the other front ends: mle score, mle sql, the Polars plugin

FRONT_END_CASES = ["ohe_infrequent_min_frequency", "ordinal_infrequent_hgb_categorical",
                   "target_multiclass_lr", "string_imputers_and_indicators",
                   "target_continuous_ridge"]


@pytest.fixture(scope="module")
def mle_bin():
    path = os.environ.get("MLE_BIN")
    if not path:
        pytest.skip("MLE_BIN is not set (scripts/test.sh sets it to the debug `mle`)")
    assert os.path.isfile(path) and os.access(path, os.X_OK), path
    return path


def _mle(mle_bin, *args, ok=True):
    env = {k: v for k, v in os.environ.items() if k != "MLE_TRUSTED_KEYS"}
    r = subprocess.run([mle_bin, *map(str, args)], capture_output=True, text=True, env=env,
                       check=False)
    if ok:
        assert r.returncode == 0, r.stderr
    return r


def _labels(col, want):
    return np.asarray(col.to_pylist()).astype(np.asarray(want).dtype)


def _proba(col):
    return np.array(col.to_pylist(), dtype=np.float64)


@pytest.mark.parametrize("cid", FRONT_END_CASES)
def test_cli_score_and_sql_match_sklearn(exported, mle_bin, cid, tmp_path):
    model, path, target, _, _ = exported[cid]
    x = TEST.reset_index(drop=True)
    data = tmp_path / "test.parquet"
    pq.write_table(pa.Table.from_pandas(x.assign(row_id=np.arange(len(x))),
                                        preserve_index=False), data)
    want = _sk(model, x, proba=False)
    want_p = None if target == "reg" else _sk(model, x, proba=True)

    def check(s, pred="prediction", prob="probabilities"):
        if target == "reg":
            _close(s.column(pred).to_numpy(), want, f"{cid} {pred}")
        else:
            np.testing.assert_array_equal(_labels(s.column(pred), want), want)
            _close(_proba(s.column(prob)), want_p, f"{cid} {prob}")

    out = tmp_path / "scored.parquet"
    _mle(mle_bin, "score", "-m", path, data, "-o", out, "--batch-size", "128")
    check(pq.read_table(out))
    out = tmp_path / "sql.parquet"
    _mle(mle_bin, "sql", f"SELECT * FROM mle_score('{path}', 't') ORDER BY row_id",
         "--table", f"t={data}", "-o", out)
    check(pq.read_table(out))


@pytest.mark.parametrize("bad_value", list(BAD_VALUES))
def test_cli_handle_unknown_error_names_the_column_and_the_value(mle_bin, tmp_path, bad_value):
    _, path, bad = _error_model(tmp_path, bad_value)
    what = BAD_VALUES[bad_value][1]
    data = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pandas(bad, preserve_index=False), data)
    r = _mle(mle_bin, "score", "-m", path, data, "-o", tmp_path / "o.parquet", ok=False)
    assert r.returncode != 0 and "education" in r.stderr and what in r.stderr, r.stderr
    assert "panicked" not in r.stderr
    r = _mle(mle_bin, "sql", f"SELECT * FROM mle_score('{path}', 't')", "--table",
             f"t={data}", ok=False)
    assert r.returncode != 0 and "education" in r.stderr and what in r.stderr, r.stderr


@pytest.mark.parametrize("cid", FRONT_END_CASES)
def test_polars_plugin_binds_by_name_and_matches_sklearn(exported, cid):
    pl = pytest.importorskip("polars")
    import mle_runtime.polars as mpl

    model, path, target, _, _ = exported[cid]
    x = TEST.reset_index(drop=True)
    df = pl.from_pandas(x)
    out = df.select(mpl.predict(path).alias("y"))
    want = _sk(model, x, proba=False)
    if target == "reg":
        _close(out["y"].to_numpy(), want, cid)
        return
    np.testing.assert_array_equal(np.asarray(out["y"].to_list()).astype(want.dtype), want)
    p = df.select(mpl.predict_proba(path).alias("p"))
    _close(np.array(p["p"].to_list(), dtype=np.float64), _sk(model, x, proba=True), cid)


@pytest.mark.parametrize("bad_value", list(BAD_VALUES))
def test_polars_handle_unknown_error_names_the_column_and_the_value(tmp_path, bad_value):
    pl = pytest.importorskip("polars")
    import mle_runtime.polars as mpl

    _, path, bad = _error_model(tmp_path, bad_value)
    with pytest.raises(Exception, match=rf"education.*{BAD_VALUES[bad_value][1]}"):
        pl.from_pandas(bad).select(mpl.predict(path))
