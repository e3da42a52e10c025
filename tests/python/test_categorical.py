"""Framework-native categoricals: LightGBM, XGBoost and HistGradientBoosting fitted on pandas
DataFrames with category columns (derived from real columns of scikit-learn's datasets),
exported WITHOUT sample_input (the exporter's own sample respects the schema), and scored on
frames with unseen categories and missing values against the framework's own predict; then
the same models through `mle score` and `mle sql` (plain and dictionary string columns, the
scalar UDFs and the table function `mle_score`), which give Python's numbers bit for bit."""

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
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

lgb = pytest.importorskip("lightgbm")
xgb = pytest.importorskip("xgboost")
en = pytest.importorskip("sklearn.ensemble")

RTOL = 1e-5


def _bands(values, labels):
    """A string category per row: the quantile band of a real column."""
    q = np.quantile(values, np.linspace(0, 1, len(labels) + 1)[1:-1])
    return np.asarray(labels, dtype=object)[np.digitize(values, q)]


def diabetes_frame():
    """Diabetes with two string categories derived from real columns (BMI band, sex),
    placed after the numeric columns (so HistGradientBoosting reorders its columns)."""
    d = load_diabetes(as_frame=True)
    df = d.frame.drop(columns=["target", "sex"])
    df["bmi_band"] = pd.Categorical(_bands(d.frame["bmi"], ["vlow", "low", "mid", "high",
                                                            "vhigh"]))
    df["sex"] = pd.Categorical(np.where(d.frame["sex"] > 0, "m", "f"))
    return df, d.target.to_numpy()


def cancer_frame():
    d = load_breast_cancer(as_frame=True)
    # LightGBM stores "mean radius" as "mean_radius": names without spaces bind everywhere
    df = d.frame.drop(columns=["target"]).iloc[:, :8].copy()
    df.columns = [c.replace(" ", "_") for c in df.columns]
    df["texture_band"] = pd.Categorical(_bands(d.frame["mean texture"],
                                               ["smooth", "fine", "coarse", "rough"]))
    return df, d.target.to_numpy()


def wine_frame():
    d = load_wine(as_frame=True)
    df = d.frame.drop(columns=["target"]).iloc[:, :6].copy()
    df["hue_band"] = pd.Categorical(_bands(d.frame["hue"], ["pale", "mid", "deep"]))
    return df, d.target.to_numpy()


def with_unseen_and_missing(df, *, unseen: bool = True, seed: int = 1):
    """A copy of ``df`` whose category columns have unseen values (when ``unseen``) and
    missing values in some rows, and whose numeric columns have some NaN."""
    rng = np.random.default_rng(seed)
    out = df.copy()
    n = len(df)
    for c in df.columns:
        if isinstance(df[c].dtype, pd.CategoricalDtype):
            vals = df[c].astype(object).to_numpy().copy()
            vals[rng.random(n) < 0.1] = None
            if unseen:
                vals[rng.random(n) < 0.1] = "never-seen"
            out[c] = pd.Categorical(vals)
        else:
            vals = df[c].to_numpy(dtype=np.float64).copy()
            vals[rng.random(n) < 0.05] = np.nan
            out[c] = vals
    return out


def _models(task):
    """(name, fitted-model factory) for each framework and the task."""
    kw_lgb = dict(n_estimators=30, min_child_samples=5, cat_smooth=1, min_data_per_group=5,
                  verbose=-1)
    kw_xgb = dict(n_estimators=30, tree_method="hist", enable_categorical=True,
                  max_cat_to_onehot=1)
    kw_hgb = dict(max_iter=30, categorical_features="from_dtype")
    if task == "regression":
        return {"lightgbm": lambda: lgb.LGBMRegressor(**kw_lgb),
                "xgboost": lambda: xgb.XGBRegressor(**kw_xgb),
                "hgb": lambda: en.HistGradientBoostingRegressor(**kw_hgb)}
    return {"lightgbm": lambda: lgb.LGBMClassifier(**kw_lgb),
            "xgboost": lambda: xgb.XGBClassifier(**kw_xgb),
            "hgb": lambda: en.HistGradientBoostingClassifier(**kw_hgb)}


DATA = {"regression": diabetes_frame, "binary": cancer_frame, "multiclass": wine_frame}
CASES = [(fw, task) for task in DATA for fw in ("lightgbm", "xgboost", "hgb")]


def _fit(fw, task):
    df, y = DATA[task]()
    model = _models(task if task == "regression" else "clf")[fw]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(df, y)
    return model, df


def _close(got, want):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape
    near_zero = 1e-6 * max(float(np.nanmax(np.abs(want))), 1.0)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=near_zero)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Every (framework, task) model, exported without sample_input."""
    out = {}
    d = tmp_path_factory.mktemp("categorical")
    for fw, task in CASES:
        model, df = _fit(fw, task)
        path = d / f"{fw}_{task}.mle"
        res = mle.export_model(model, path)  # no sample_input: the exporter's own sample
        out[fw, task] = (model, df, path, res)
    return out


@pytest.mark.parametrize("fw,task", CASES)
def test_export_without_sample_input_validates(exported, fw, task):
    model, df, path, res = exported[fw, task]
    v = res["validation"]
    assert v is not None and v["passed"], v
    assert v["label_mismatches"] == 0
    # the sample covered every category of the largest vocabulary and missing values
    assert v["n_samples"] >= 64


@pytest.mark.parametrize("fw,task", CASES)
def test_unseen_and_missing_match_the_framework(exported, fw, task):
    model, df, path, _ = exported[fw, task]
    rt = mle.load_model(path)
    # XGBoost refuses categories it was not trained on (tested below); the others map them
    # to missing.
    x = with_unseen_and_missing(df, unseen=fw != "xgboost")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if task == "regression":
            _close(rt.predict(x), model.predict(x))
            return
        want_labels = model.predict(x)
        want_proba = model.predict_proba(x)
    np.testing.assert_array_equal(rt.predict(x), want_labels)
    _close(rt.predict_proba(x), want_proba)


def test_xgboost_unseen_category_is_an_error_as_in_xgboost(exported):
    """XGBoost refuses a category it was not trained on, and so does the export.

    (XGBoost 3.2 raises only for a value that sorts after every training category, "zzz"
    here; one that sorts between them silently takes the next training category in sort
    order, "j" scores as "low". The export refuses both: it follows the intent of the
    error, not the binary search.)"""
    model, df, path, _ = exported["xgboost", "regression"]
    x = df.iloc[:5].copy()
    x["bmi_band"] = pd.Categorical(["low", "zzz", "mid", None, "high"])
    with pytest.raises(Exception, match="not in the training set"):
        model.predict(x)
    rt = mle.load_model(path)
    with pytest.raises(mle.InputError, match="bmi_band"):
        rt.predict(x)
    # a missing value alone is fine in both
    x["bmi_band"] = pd.Categorical(["low", None, "mid", None, "high"])
    _close(rt.predict(x), model.predict(x))


@pytest.mark.parametrize("fw", ["lightgbm", "xgboost", "hgb"])
def test_input_schema_lists_the_categories(exported, fw):
    model, df, path, _ = exported[fw, "regression"]
    schema = mle.load_model(path).input_schema
    assert [f["name"] for f in schema] == list(df.columns)
    kinds = {f["name"]: f["kind"] for f in schema}
    assert kinds["bmi_band"] == "category" and kinds["sex"] == "category"
    assert kinds["age"] == "float"
    band = next(f for f in schema if f["name"] == "bmi_band")
    assert band["n_categories"] == 5
    assert sorted(band["categories"]) == sorted(["vlow", "low", "mid", "high", "vhigh"])


def test_category_order_of_the_frame_does_not_matter(exported):
    """Values bind by category, not by the frame's codes (reordered categories)."""
    model, df, path, _ = exported["lightgbm", "regression"]
    x = df.copy()
    x["bmi_band"] = x["bmi_band"].cat.reorder_categories(
        list(reversed(x["bmi_band"].cat.categories)))
    rt = mle.load_model(path)
    np.testing.assert_array_equal(rt.predict(x), rt.predict(df))
    _close(rt.predict(x), model.predict(x))


def test_object_and_string_columns_bind_like_categories(exported):
    model, df, path, _ = exported["hgb", "regression"]
    rt = mle.load_model(path)
    want = rt.predict(df)
    obj = df.assign(bmi_band=df["bmi_band"].astype(object), sex=df["sex"].astype(object))
    np.testing.assert_array_equal(rt.predict(obj), want)
    st = df.assign(bmi_band=df["bmi_band"].astype("string"), sex=df["sex"].astype("string"))
    np.testing.assert_array_equal(rt.predict(st), want)


# ---------------------------------------------------------------------------------------
# integer-coded categories (numpy), exported without sample_input


def _coded_diabetes():
    d = load_diabetes()
    band = np.digitize(d.data[:, 2], np.quantile(d.data[:, 2], [0.2, 0.4, 0.6, 0.8]))
    # codes 1, 3, 5, 7, 9: a vocabulary that is not 0..n-1
    return np.column_stack([d.data, 2.0 * band + 1]), d.target


@pytest.mark.parametrize("cls", ["HistGradientBoostingRegressor",
                                 "HistGradientBoostingClassifier"])
def test_hgb_integer_categories_without_sample_input(tmp_model, cls):
    X, y = _coded_diabetes()
    if cls.endswith("Classifier"):
        y = (y > np.median(y)).astype(int)
    model = getattr(en, cls)(max_iter=30, categorical_features=[10]).fit(X, y)
    path = tmp_model()
    res = mle.export_model(model, path)
    assert res["validation"]["passed"], res["validation"]
    rt = mle.load_model(path)
    schema = rt.input_schema
    assert schema[10]["kind"] == "category"
    assert list(schema[10]["categories"]) == [1, 3, 5, 7, 9]
    # non-integer, negative, unseen and out-of-range values, and NaN: as scikit-learn
    x = np.repeat(X[:12], 1, axis=0).copy()
    x[:, 10] = [1, 3, 5.0, 9, 2, 4.5, -1, -3, 11, 300, np.nan, 7]
    want = model.predict_proba(x) if cls.endswith("Classifier") else model.predict(x)
    got = rt.predict_proba(x) if cls.endswith("Classifier") else rt.predict(x)
    _close(got, want)


@pytest.mark.parametrize("cls", ["XGBRegressor", "XGBClassifier"])
def test_xgboost_integer_coded_without_sample_input(tmp_model, cls):
    X, y = _coded_diabetes()
    if cls.endswith("Classifier"):
        y = (y > np.median(y)).astype(int)
    model = getattr(xgb, cls)(n_estimators=20, tree_method="hist", enable_categorical=True,
                              max_cat_to_onehot=1, feature_types=["q"] * 10 + ["c"]).fit(X, y)
    path = tmp_model()
    res = mle.export_model(model, path)
    assert res["validation"]["passed"], res["validation"]
    assert mle.load_model(path).input_schema[10]["kind"] == "float"  # codes, no vocabulary


def _codes(df, schema):
    """``df`` as a float matrix of category codes (positions in the model's vocabularies,
    NaN for unseen and missing), the numeric columns as they are."""
    cols = []
    for f in schema:
        col = df[f["name"]]
        if f["kind"] == "category":
            c = pd.Categorical(col.astype(object), categories=f["categories"]).codes
            cols.append(np.where(c < 0, np.nan, c).astype(np.float64))
        else:
            cols.append(col.to_numpy(dtype=np.float64))
    return np.column_stack(cols)


@pytest.mark.parametrize("fw", ["lightgbm", "xgboost", "hgb"])
def test_numpy_codes_score_like_the_frame(exported, fw):
    """A matrix of codes (numbers for a string vocabulary pass unchanged) gives the
    framework's predictions on the frame."""
    model, df, path, _ = exported[fw, "binary"]
    rt = mle.load_model(path)
    x = with_unseen_and_missing(df, unseen=fw != "xgboost")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = model.predict_proba(x)
    _close(rt.predict_proba(_codes(x, rt.input_schema)), want)


def test_typed_export_compressed_and_signed(tmp_model):
    model, df = _fit("lightgbm", "binary")
    secret, public = mle.generate_keypair()
    path = tmp_model()
    res = mle.export_model(model, path, compression=True, signing_key=secret)
    assert res["validation"]["passed"]
    rt = mle.load_model(path, public_key=public)
    assert rt.input_schema[-1]["kind"] == "category"
    x = with_unseen_and_missing(df)
    _close(rt.predict_proba(_codes(x, rt.input_schema)), model.predict_proba(x))


@pytest.mark.parametrize("fw", ["lightgbm", "hgb"])
def test_integer_pandas_categories(tmp_model, fw):
    """pandas category columns of integers: an integer vocabulary (a value maps to its
    position), unseen integers and missing values as the framework."""
    d = load_diabetes(as_frame=True)
    df = d.frame.drop(columns=["target"]).copy()
    band = np.digitize(df["bmi"], np.quantile(df["bmi"], [0.2, 0.4, 0.6, 0.8]))
    df["bmi_code"] = pd.Categorical(10 * band + 5)  # 5, 15, ..., 45
    y = d.target.to_numpy()
    if fw == "lightgbm":
        model = lgb.LGBMRegressor(n_estimators=30, min_child_samples=5, verbose=-1)
    else:
        model = en.HistGradientBoostingRegressor(max_iter=30, categorical_features="from_dtype")
    model.fit(df, y)
    path = tmp_model()
    assert mle.export_model(model, path)["validation"]["passed"]
    rt = mle.load_model(path)
    f = rt.input_schema[-1]
    assert f["kind"] == "category" and list(f["categories"]) == [5, 15, 25, 35, 45]
    x = df.iloc[:20].copy()
    x["bmi_code"] = pd.Categorical([5, 15, 25, 35, 45, 7, None, 100, 15, 25] * 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = model.predict(x)
    _close(rt.predict(x), want)


def test_lightgbm_integer_coded_without_sample_input(tmp_model):
    """numpy codes with categorical_feature: the sample draws the codes the splits use (and
    codes beyond them, negative ones, NaN); non-integer and negative codes as LightGBM."""
    X, y = _coded_diabetes()
    y = y + 40.0 * (X[:, 10] % 4 == 1)  # make the code informative
    model = lgb.LGBMRegressor(n_estimators=30, min_child_samples=5, min_data_per_group=5,
                              cat_smooth=1, verbose=-1).fit(X, y, categorical_feature=[10])
    from mle_runtime.exporters.lightgbm import max_code

    text = model.booster_.model_to_string()
    assert "cat_threshold=" in text and max_code(text, 10) == 9
    path = tmp_model()
    res = mle.export_model(model, path)
    assert res["validation"]["passed"], res["validation"]
    rt = mle.load_model(path)
    x = X[:12].copy()
    x[:, 10] = [1, 3, 5.5, 9, 2, -0.5, -1, -3, 11, 300, np.nan, 7]
    _close(rt.predict(x), model.predict(x))


# ---------------------------------------------------------------------------------------
# the same models through every front end: `mle score`, `mle sql` (plain and dictionary
# string columns, the scalar UDFs and the table function) give Python's numbers


@pytest.fixture(scope="module")
def mle_bin():
    path = os.environ.get("MLE_BIN")
    if not path:
        pytest.skip("MLE_BIN is not set (scripts/test.sh sets it to the debug `mle`)")
    assert os.path.isfile(path) and os.access(path, os.X_OK), f"MLE_BIN={path!r}"
    return path


def _mle(mle_bin, *args):
    env = {k: v for k, v in os.environ.items() if k != "MLE_TRUSTED_KEYS"}
    r = subprocess.run([mle_bin, *map(str, args)], capture_output=True, text=True, env=env,
                       check=False)
    assert r.returncode == 0, r.stderr
    return r


def _arrow(x, dictionary):
    """``x`` as a pyarrow Table with a ``row_id`` column first; category columns as plain
    strings or as dictionary columns, missing values as nulls."""
    cols, names = [pa.array(np.arange(len(x), dtype=np.int64))], ["row_id"]
    for c in x.columns:
        if isinstance(x[c].dtype, pd.CategoricalDtype):
            a = pa.array(x[c].astype(object).to_numpy(), type=pa.string(), from_pandas=True)
            if dictionary:
                a = a.dictionary_encode()
        else:
            a = pa.array(x[c].to_numpy(dtype=np.float64), from_pandas=True)  # NaN → null
        cols.append(a)
        names.append(c)
    return pa.table(cols, names=names)


def _labels(col, want):
    got = col.to_numpy(zero_copy_only=False)
    return got.astype(np.asarray(want).dtype) if got.dtype.kind != "U" else got


def _proba(col):
    return np.stack(col.to_numpy(zero_copy_only=False)).astype(np.float64)


@pytest.mark.parametrize("fw,task", CASES)
def test_every_front_end_gives_pythons_numbers(exported, mle_bin, tmp_path, fw, task):
    model, df, path, _ = exported[fw, task]
    rt = mle.load_model(path)
    x = with_unseen_and_missing(df, unseen=fw != "xgboost", seed=3)
    clf = task != "regression"
    want = rt.predict(x)
    want_proba = rt.predict_proba(x) if clf else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if clf:
            np.testing.assert_array_equal(want, model.predict(x))
            _close(want_proba, model.predict_proba(x))
        else:
            _close(want, model.predict(x))
    feats = ", ".join(f'"{f["name"]}"' for f in rt.input_schema)
    cats = [f["name"] for f in rt.input_schema if f["kind"] == "category"]
    for layout in ("plain", "dictionary"):
        data = tmp_path / f"{layout}.parquet"
        pq.write_table(_arrow(x, layout == "dictionary"), data)
        table = f"t={data}"

        # `mle score` binds by name
        out = tmp_path / f"score-{layout}.parquet"
        _mle(mle_bin, "score", "-m", path, data, "-o", out, "--batch-size", "64")
        s = pq.read_table(out)
        assert s.column("row_id").to_pylist() == list(range(len(x)))
        np.testing.assert_array_equal(_labels(s.column("prediction"), want), want)
        if clf:
            np.testing.assert_array_equal(_proba(s.column("probabilities")), want_proba)

        # the scalar UDFs, by position; the category column reaches them in its layout
        out = tmp_path / f"sql-{layout}.parquet"
        udfs = f"mle_predict('{path}', {feats}) AS y"
        if clf:
            udfs += f", mle_predict_proba('{path}', {feats}) AS p"
        _mle(mle_bin, "sql", f'SELECT arrow_typeof("{cats[0]}") AS ty, {udfs} FROM t '
             "ORDER BY row_id", "--table", table, "-o", out)
        s = pq.read_table(out)
        ty = s.column("ty")[0].as_py()
        assert ty.startswith("Dictionary") == (layout == "dictionary"), ty
        np.testing.assert_array_equal(_labels(s.column("y"), want), want)
        if clf:
            np.testing.assert_array_equal(_proba(s.column("p")), want_proba)

        # the table function, by name
        out = tmp_path / f"table-{layout}.parquet"
        _mle(mle_bin, "sql", f"SELECT * FROM mle_score('{path}', 't') ORDER BY row_id",
             "--table", table, "-o", out)
        s = pq.read_table(out)
        assert s.column_names[:len(x.columns) + 1] == ["row_id", *x.columns]
        np.testing.assert_array_equal(_labels(s.column("prediction"), want), want)
        if clf:
            np.testing.assert_array_equal(_proba(s.column("probabilities")), want_proba)
