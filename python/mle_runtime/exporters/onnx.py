"""ONNX exporter: an ``onnx.ModelProto`` (serialized here) or the path of a ``.onnx`` file is
handed to the native ``mle-import`` ONNX importer (operator semantics live there once; the
supported operators are listed in ``mle-import/ONNX.md``). The reference is onnxruntime on
the same bytes, when it is installed."""

from __future__ import annotations

import json
import os

import numpy as np

from ..errors import UnsupportedModelError
from . import Export


def is_onnx(model) -> bool:
    """A ``ModelProto`` or a path naming a ``.onnx`` file."""
    if isinstance(model, (str, os.PathLike)):
        return os.fspath(model).lower().endswith(".onnx")
    return type(model).__name__ == "ModelProto" and (
        (type(model).__module__ or "").startswith("onnx"))


def _session(source):
    """An onnxruntime session on one thread (``None`` without onnxruntime)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])


def export(model, *, feature_names=None, user_metadata=None, **_) -> Export:
    model_dir = None
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        try:
            with open(path, "rb") as f:
                payload = f.read()
        except OSError as e:
            raise UnsupportedModelError(f"cannot read the ONNX model {path}: {e}") from None
        model_dir = os.path.dirname(os.path.abspath(path))
        name = path
    else:
        payload = model.SerializeToString()
        name = "ModelProto"
    patch: dict = {"user": dict(user_metadata or {})}
    if feature_names is not None:
        patch["input"] = {"feature_names": [str(f) for f in feature_names]}

    from .. import _native

    # The importer's metadata (feature count, outputs, input dtype): nothing is written.
    _, meta_json = _native.import_onnx(payload, name, None, None, model_dir=model_dir)
    meta = json.loads(meta_json)
    n_features = int(len(meta["input"]["feature_names"]))
    names = [str(f) for f in meta["input"]["feature_names"]]
    typed = bool(meta["input"].get("features"))
    outputs = meta["output"]["names"]
    sess = None
    in_dtype = np.float64 if meta["input"]["dtype"] == "f64" else np.float32

    def reference(x):
        nonlocal sess
        if sess is None:
            # a path keeps its external data resolvable
            sess = _session(payload if model_dir is None else name)
        if sess is None:
            return {}
        if not typed:
            inp = sess.get_inputs()[0]
            res = sess.run(None, {inp.name: np.asarray(x, dtype=in_dtype)})
        else:
            res = sess.run(None, _feeds(sess, x, names))
        return _by_role(sess, res, outputs)

    def sample(rows):
        if typed:
            return _typed_sample(payload, meta["input"]["features"], rows)
        return np.random.default_rng(0).standard_normal((rows, n_features)).astype(in_dtype)

    return Export(kind="onnx", framework="onnx", model_type=meta.get("model_type", "onnx"),
                  metadata=patch, n_features=n_features, reference=reference,
                  payload=payload, sample=sample,
                  extra={"name": name, "model_dir": model_dir})


_ORT_TYPES = {"tensor(string)": object, "tensor(int64)": np.int64,
              "tensor(float)": np.float32, "tensor(double)": np.float64}


def _feeds(sess, x, names) -> dict:
    """onnxruntime's inputs of a model with several (or string / int64) graph inputs: each
    ``[N, k]`` input from the features named after it (``name``, or ``name_0`` ...), taken by
    name from a DataFrame-like ``x`` or by position from a 2-D array."""
    cols = list(x.columns) if hasattr(x, "columns") else None

    def column(feature):
        if cols is not None:
            return np.asarray(x[feature])
        return np.asarray(x)[:, names.index(feature)]

    feeds = {}
    for inp in sess.get_inputs():
        k = inp.shape[1] if len(inp.shape) == 2 and isinstance(inp.shape[1], int) else 1
        feats = [inp.name] if k == 1 else [f"{inp.name}_{j}" for j in range(k)]
        dtype = _ORT_TYPES.get(inp.type)
        if dtype is None:
            raise UnsupportedModelError(f"onnxruntime input {inp.name!r} of type {inp.type}")
        parts = [column(f) for f in feats]
        if dtype is object:
            parts = [np.array([None if v is None else str(v) for v in p], dtype=object)
                     for p in parts]
        feeds[inp.name] = np.stack([np.asarray(p, dtype=dtype) for p in parts], axis=1)
    return feeds


def _typed_sample(payload, features, rows):
    """Validation rows for a model with typed inputs (a DataFrame by feature name): the
    categories its encoders list (read from the ONNX graph; no unseen ones, which an encoder
    with ``zeros = 0`` refuses), integers for integer features, standard-normal floats for
    float features."""
    import pandas as pd

    rng = np.random.default_rng(0)
    cats = _encoder_categories(payload)
    data = {}
    for f in features:
        name, kind = f["name"], f["kind"]
        if kind == "category":
            known = cats.get(name) or ["a", "b"]
            vals = [known[i] for i in rng.integers(0, len(known), rows)]
            data[name] = pd.Series(vals, dtype=object if isinstance(known[0], str) else "int64")
        elif kind == "integer":
            data[name] = pd.Series(rng.integers(-3, 4, rows), dtype="int64")
        else:
            data[name] = rng.standard_normal(rows)
    return pd.DataFrame(data)


def _encoder_categories(payload) -> dict:
    """The categories the graph's encoders (``OneHotEncoder``, ``LabelEncoder``,
    ``CategoryMapper``) list for the graph inputs they read directly (empty without onnx)."""
    try:
        import onnx
    except ImportError:
        return {}
    m = onnx.ModelProto()
    m.ParseFromString(payload)
    out: dict = {}
    for node in m.graph.node:
        if node.op_type not in ("OneHotEncoder", "LabelEncoder", "CategoryMapper"):
            continue
        for a in node.attribute:
            if a.name in ("cats_strings", "keys_strings") and a.strings:
                out.setdefault(node.input[0], [s.decode() for s in a.strings])
            elif (a.name in ("cats_int64s", "keys_int64s") and a.ints
                  and node.op_type != "CategoryMapper"):
                out.setdefault(node.input[0], list(a.ints))
    return out


def _by_role(sess, res, outputs) -> dict:
    """onnxruntime's outputs under the graph's output names: a classifier's integer or string
    output is ``label`` and the other (``ZipMap`` dicts included) ``probabilities``; a
    regressor's one output is ``prediction``."""
    if "label" not in outputs:
        pred = np.asarray(res[0], dtype=np.float64)
        if pred.ndim == 2 and pred.shape[1] == 1:
            pred = pred.reshape(-1)
        return {"prediction": pred}
    got = {}
    for o, r in zip(sess.get_outputs(), res, strict=False):
        if isinstance(r, list) and r and isinstance(r[0], dict):
            keys = list(r[0].keys())
            got["probabilities"] = np.array([[d[k] for k in keys] for d in r], dtype=np.float64)
        elif "tensor(float" in o.type or "tensor(double" in o.type:
            got.setdefault("probabilities", np.asarray(r, dtype=np.float64))
        else:
            got.setdefault("label", np.asarray(r).reshape(-1))
    return got
