"""ONNX models made by skl2onnx, onnxmltools and ``torch.onnx.export``, and CatBoost models,
exported from Python (``export_model`` on the ``ModelProto``, the ``.onnx`` path, the
CatBoost model) and through ``mle convert --from onnx|catboost``, against onnxruntime /
CatBoost on the same rows: identical labels, numbers within 1e-5 relative (1e-6 absolute).
skl2onnx ColumnTransformer pipelines with one string or float graph input per column
(OneHotEncoder, OrdinalEncoder) are scored on pandas DataFrames by column name, unseen
categories included.
``mle convert`` needs ``MLE_BIN`` (skipped without it, as in test_cli_vs_python)."""

from __future__ import annotations

import os
import subprocess

import mle_runtime as mle
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

RNG = np.random.default_rng(3)
X = RNG.standard_normal((300, 6)).astype(np.float32)
Y_BIN = (X[:, 0] + 0.5 * X[:, 1] - X[:, 2] > 0).astype(np.int64)
Y_MC = np.digitize(X[:, 0] + X[:, 3], [-0.7, 0.7]).astype(np.int64)
Y_REG = (X[:, 0] * 2 + X[:, 1] ** 2).astype(np.float64)
ROWS = X[:80]


def close(got, want, what):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64).reshape(got.shape)
    err = np.abs(got - want)
    tol = np.maximum(1e-5 * np.abs(want), 1e-6)
    assert np.all(err <= tol), f"{what}: max error {err.max():.3g}"


def ort_outputs(proto, x):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    s = ort.InferenceSession(proto.SerializeToString(), opts,
                             providers=["CPUExecutionProvider"])
    res = s.run(None, {s.get_inputs()[0].name: x})
    label = proba = None
    for o, r in zip(s.get_outputs(), res, strict=False):
        if isinstance(r, list):
            keys = list(r[0])
            proba = np.array([[d[k] for k in keys] for d in r])
        elif "float" in o.type or "double" in o.type:
            proba = r
        else:
            label = r
    return label, proba


def check_rt(rt, proto, x, what):
    label, out = ort_outputs(proto, x)
    if label is not None:
        np.testing.assert_array_equal(np.asarray(rt.predict(x)).astype(str),
                                      np.asarray(label).reshape(-1).astype(str), what)
        close(rt.predict_proba(x), out, what)
    else:
        close(rt.predict(x), np.asarray(out).reshape(-1) if np.asarray(out).ndim == 2
              and np.asarray(out).shape[1] == 1 else out, what)


def _skl(name):
    from skl2onnx import to_onnx
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    est = {
        "scaler_forest": lambda: make_pipeline(
            StandardScaler(), RandomForestClassifier(20, max_depth=6, random_state=0)),
        "gradient_boosting": lambda: GradientBoostingClassifier(
            n_estimators=30, max_depth=3, random_state=0),
        "logistic_regression": lambda: LogisticRegression(max_iter=500),
        "mlp": lambda: MLPClassifier((16,), max_iter=300, random_state=0),
    }[name]()
    y = Y_BIN if name != "gradient_boosting" else Y_MC
    est.fit(X, y)
    return to_onnx(est, X[:1], target_opset={"": 17, "ai.onnx.ml": 3})


def _xgb():
    import xgboost as xgb
    from onnxmltools import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    m = xgb.XGBClassifier(n_estimators=20, max_depth=4).fit(X, Y_MC)
    return convert_xgboost(m, initial_types=[("X", FloatTensorType([None, 6]))],
                           target_opset=15)


def _lgb():
    import lightgbm as lgb
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    m = lgb.LGBMRegressor(n_estimators=20, num_leaves=15, verbose=-1).fit(X, Y_REG)
    return convert_lightgbm(m, initial_types=[("X", FloatTensorType([None, 6]))],
                            target_opset=15)


def _torch(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.LayerNorm(32),
                              torch.nn.GELU(), torch.nn.Linear(32, 3)).eval()
    path = tmp_path / "torch.onnx"
    torch.onnx.export(net, (torch.from_numpy(X[:2]),), str(path), input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
                      dynamo=False)
    return onnx.load(str(path))


CASES = ["scaler_forest", "gradient_boosting", "logistic_regression", "mlp", "xgboost",
         "lightgbm", "torch_layernorm_gelu"]


def make(case, tmp_path):
    if case == "xgboost":
        pytest.importorskip("onnxmltools")
        return _xgb()
    if case == "lightgbm":
        pytest.importorskip("onnxmltools")
        return _lgb()
    if case == "torch_layernorm_gelu":
        return _torch(tmp_path)
    pytest.importorskip("skl2onnx")
    return _skl(case)


@pytest.fixture(scope="module")
def mle_bin():
    path = os.environ.get("MLE_BIN")
    if not path:
        pytest.skip("MLE_BIN is not set (scripts/test.sh sets it to the debug `mle`)")
    return path


@pytest.mark.parametrize("case", CASES)
def test_onnx_matches_onnxruntime(case, tmp_path):
    proto = make(case, tmp_path)
    res = mle.export_model(proto, tmp_path / "a.mle")
    assert res["framework"] == "onnx" and res["validation"]["passed"], res
    check_rt(mle.load_model(tmp_path / "a.mle"), proto, ROWS, f"{case} (ModelProto)")
    onnx.save(proto, str(tmp_path / "m.onnx"))
    mle.export_model(str(tmp_path / "m.onnx"), tmp_path / "b.mle")
    check_rt(mle.load_model(tmp_path / "b.mle"), proto, ROWS, f"{case} (.onnx path)")


@pytest.mark.parametrize("case", ["scaler_forest", "xgboost", "torch_layernorm_gelu"])
def test_onnx_through_mle_convert(case, tmp_path, mle_bin):
    proto = make(case, tmp_path)
    onnx.save(proto, str(tmp_path / "m.onnx"))
    subprocess.run([mle_bin, "convert", str(tmp_path / "m.onnx"), str(tmp_path / "c.mle"),
                    "--from", "onnx"], check=True, capture_output=True)
    check_rt(mle.load_model(tmp_path / "c.mle"), proto, ROWS, f"{case} (mle convert)")


def test_unsupported_onnx_is_named():
    from onnx import TensorProto, helper

    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv0")
    g = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor("w", TensorProto.FLOAT, [1], [1.0])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(mle.UnsupportedModelError, match="Conv.*conv0"):
        mle.export_model(m, "/nonexistent/never.mle")


# --- skl2onnx ColumnTransformer pipelines with string inputs ----------------------------------

CT_STR = ["radius", "texture"]
CT_NUM = ["smoothness", "symmetry", "concavity"]


def _ct_data():
    """Breast cancer with two string columns made from quantiles of real features."""
    import pandas as pd
    from sklearn import datasets

    bc = datasets.load_breast_cancer(as_frame=True)
    x = bc.data
    df = pd.DataFrame({
        "radius": pd.qcut(x["mean radius"], 3, labels=["small", "medium", "large"]).astype(str),
        "texture": pd.qcut(x["mean texture"], 4,
                           labels=["smooth", "fine", "coarse", "rough"]).astype(str),
        "smoothness": x["mean smoothness"], "symmetry": x["mean symmetry"],
        "concavity": x["mean concavity"]})
    return df, bc.target.to_numpy(), x["worst area"].to_numpy()


def _ct_probe(df):
    """Scored rows: real rows and rows with categories never seen in training (case,
    whitespace and empty strings included), columns in another order than the graph's
    inputs (binding is by name)."""
    import pandas as pd

    probe = df.iloc[::4].copy()
    probe.iloc[:6, probe.columns.get_loc("radius")] = ["huge", "", "Small", "small ", "x", "?"]
    probe.iloc[3:9, probe.columns.get_loc("texture")] = ["silky", "", "FINE", "rough", "a", "b"]
    return pd.DataFrame(probe[CT_NUM[::-1] + CT_STR[::-1]]).reset_index(drop=True)


def _ct_model(case):
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    df, y, area = _ct_data()
    enc = (OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
           if case == "ordinal_forest" else
           OneHotEncoder(handle_unknown="error" if case == "onehot_error_logreg" else "ignore"))
    est = {
        "onehot_logreg": lambda: LogisticRegression(max_iter=2000),
        "onehot_error_logreg": lambda: LogisticRegression(max_iter=2000),
        "onehot_forest": lambda: RandomForestClassifier(30, max_depth=6, random_state=0),
        "onehot_gbr": lambda: GradientBoostingRegressor(n_estimators=40, max_depth=3,
                                                        random_state=0),
        "ordinal_forest": lambda: RandomForestClassifier(20, max_depth=5, random_state=0),
    }[case]()
    pipe = Pipeline([("ct", ColumnTransformer([("cat", enc, CT_STR),
                                               ("num", StandardScaler(), CT_NUM)])),
                     ("m", est)])
    pipe.fit(df, area if case == "onehot_gbr" else y)
    types = ([(c, StringTensorType([None, 1])) for c in CT_STR]
             + [(c, FloatTensorType([None, 1])) for c in CT_NUM])
    return to_onnx(pipe, initial_types=types, target_opset={"": 17, "ai.onnx.ml": 3}), df


def ort_typed(proto, df):
    """onnxruntime's (label, probabilities) or (None, prediction) on a DataFrame, one
    ``[N, 1]`` input per column (strings as objects, floats as float32)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    s = ort.InferenceSession(proto.SerializeToString(), opts,
                             providers=["CPUExecutionProvider"])
    feeds = {i.name: (df[i.name].to_numpy(dtype=object) if i.type == "tensor(string)"
                      else df[i.name].to_numpy(dtype=np.float32)).reshape(-1, 1)
             for i in s.get_inputs()}
    res = s.run(None, feeds)
    label = out = None
    for o, r in zip(s.get_outputs(), res, strict=False):
        if isinstance(r, list):
            keys = list(r[0])
            out = np.array([[d[k] for k in keys] for d in r])
        elif "float" in o.type or "double" in o.type:
            out = r
        else:
            label = r
    return label, out


def check_typed(rt, proto, probe, what):
    label, out = ort_typed(proto, probe)
    if label is not None:
        np.testing.assert_array_equal(np.asarray(rt.predict(probe)),
                                      np.asarray(label).reshape(-1), what)
        close(rt.predict_proba(probe), out, what)
    else:
        close(rt.predict(probe), np.asarray(out).reshape(-1), what)


CT_CASES = ["onehot_logreg", "onehot_forest", "onehot_gbr", "ordinal_forest"]


@pytest.mark.parametrize("case", CT_CASES)
def test_column_transformer_with_strings_matches_onnxruntime(case, tmp_path):
    pytest.importorskip("skl2onnx")
    proto, df = _ct_model(case)
    probe = _ct_probe(df)
    res = mle.export_model(proto, tmp_path / "a.mle")
    assert res["framework"] == "onnx" and res["validation"]["passed"], res
    rt = mle.load_model(tmp_path / "a.mle")
    kinds = {f["name"]: f["kind"] for f in rt.input_schema}
    assert kinds == {**dict.fromkeys(CT_STR, "category"), **dict.fromkeys(CT_NUM, "float")}
    check_typed(rt, proto, probe, f"{case} (ModelProto)")
    onnx.save(proto, str(tmp_path / "m.onnx"))
    mle.export_model(str(tmp_path / "m.onnx"), tmp_path / "b.mle")
    check_typed(mle.load_model(tmp_path / "b.mle"), proto, probe, f"{case} (.onnx path)")


@pytest.mark.parametrize("case", CT_CASES)
def test_column_transformer_with_strings_through_mle_convert(case, tmp_path, mle_bin):
    pytest.importorskip("skl2onnx")
    proto, df = _ct_model(case)
    onnx.save(proto, str(tmp_path / "m.onnx"))
    subprocess.run([mle_bin, "convert", str(tmp_path / "m.onnx"), str(tmp_path / "c.mle"),
                    "--from", "onnx"], check=True, capture_output=True)
    check_typed(mle.load_model(tmp_path / "c.mle"), proto, _ct_probe(df),
                f"{case} (mle convert)")


def test_one_hot_handle_unknown_error_raises_like_onnxruntime(tmp_path):
    """``handle_unknown="error"`` (``zeros = 0``): known categories score as onnxruntime
    does; an unseen one is an error in both, naming the column here."""
    pytest.importorskip("skl2onnx")
    proto, df = _ct_model("onehot_error_logreg")
    mle.export_model(proto, tmp_path / "m.mle")
    rt = mle.load_model(tmp_path / "m.mle")
    check_typed(rt, proto, df.iloc[:50], "handle_unknown=error, known categories")
    bad = df.iloc[:3].copy()
    bad.iloc[1, bad.columns.get_loc("texture")] = "velvet"
    with pytest.raises(Exception, match="Unknown Category"):
        ort_typed(proto, bad)
    with pytest.raises(mle.InputError, match="texture.*velvet|velvet.*texture"):
        rt.predict(bad)


# --- CatBoost ----------------------------------------------------------------------------


def _cat_frame(n):
    import pandas as pd

    df = pd.DataFrame({"a": RNG.standard_normal(n), "b": RNG.standard_normal(n),
                       "city": RNG.choice(["paris", "rome", "oslo", "lima", "kyiv"], n),
                       "tier": RNG.choice(["gold", "silver"], n)})
    df.loc[RNG.random(n) < 0.1, "b"] = np.nan
    return df


CB_CASES = [(kind, cats) for kind in ("binary", "multiclass", "regression")
            for cats in ("none", "onehot", "ctr")]


@pytest.mark.parametrize(("kind", "cats"), CB_CASES)
def test_catboost_matches_predict(kind, cats, tmp_path, request):
    cb = pytest.importorskip("catboost")
    df = _cat_frame(400)
    if cats == "none":
        df = df[["a", "b"]]
    s = df["a"] + df["b"].fillna(0)
    if cats != "none":
        s = s + df["city"].map({"paris": 1.0, "rome": -1.0}).fillna(0) + (df["tier"] == "gold")
    y = {"binary": (s > 0).astype(int), "multiclass": np.digitize(s, [-0.5, 0.5]),
         "regression": s}[kind]
    params = dict(iterations=40, depth=4, verbose=0, random_seed=0, thread_count=1,
                  allow_writing_files=False)
    if cats != "none":
        params["cat_features"] = ["city", "tier"]
        params["one_hot_max_size"] = 10 if cats == "onehot" else 1
        params["max_ctr_complexity"] = 1
    if kind == "multiclass":
        params["loss_function"] = "MultiClass"
    est = cb.CatBoostRegressor if kind == "regression" else cb.CatBoostClassifier
    m = est(**params).fit(df, y)
    probe = df.iloc[:60].copy()
    probe.loc[probe.index[:5], "a"] = np.nan
    if cats != "none":
        probe.loc[probe.index[5:10], "city"] = "atlantis"  # never seen in training
    res = mle.export_model(m, tmp_path / "m.mle", sample_input=df)
    assert res["framework"] == "catboost" and res["validation"]["passed"], res
    rt = mle.load_model(tmp_path / "m.mle")
    if kind == "regression":
        close(rt.predict(probe), m.predict(probe), "predict")
    else:
        np.testing.assert_array_equal(np.asarray(rt.predict(probe)),
                                      np.asarray(m.predict(probe)).reshape(-1))
        close(rt.predict_proba(probe), m.predict_proba(probe), "predict_proba")
    bin_ = os.environ.get("MLE_BIN")
    if bin_ and cats != "onehot":
        m.save_model(str(tmp_path / "m.json"), format="json",
                     pool=cb.Pool(df, cat_features=params.get("cat_features")))
        subprocess.run([bin_, "convert", str(tmp_path / "m.json"), str(tmp_path / "c.mle"),
                        "--from", "catboost"], check=True, capture_output=True)
        rt2 = mle.load_model(tmp_path / "c.mle")
        out = rt2.predict(probe) if kind == "regression" else rt2.predict_proba(probe)
        want = m.predict(probe) if kind == "regression" else m.predict_proba(probe)
        close(out, want, "mle convert")


def test_catboost_cat_features_need_sample_input(tmp_path):
    cb = pytest.importorskip("catboost")
    df = _cat_frame(100)[["a", "b", "city"]]
    m = cb.CatBoostClassifier(iterations=3, verbose=0, cat_features=["city"],
                              allow_writing_files=False).fit(df, (df["a"] > 0).astype(int))
    with pytest.raises(mle.UnsupportedModelError, match="sample_input"):
        mle.export_model(m, tmp_path / "m.mle")
