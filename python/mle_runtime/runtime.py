"""The Python face of a loaded model: ``mle_runtime.load_model(path)``."""

from __future__ import annotations

import json
import os

import numpy as np

from . import _native
from .errors import InputError, MLEError


def _is_pandas_frame(x) -> bool:
    return type(x).__module__.split(".")[0] == "pandas" and hasattr(x, "columns") \
        and hasattr(x, "dtypes")


def _is_table(x) -> bool:
    """True for anything with the Arrow PyCapsule interface (pyarrow Tables and
    RecordBatches, Polars DataFrames, ...): it binds by name."""
    return not isinstance(x, np.ndarray) and (
        hasattr(x, "__arrow_c_stream__") or hasattr(x, "__arrow_c_array__"))


def _pandas_table(df, feature_names: list[str]):
    """The feature columns of a pandas DataFrame as a pyarrow Table, by name (extra columns
    ignored): each column converted whole by pyarrow (``category`` columns as dictionary
    arrays, object / ``string`` columns as strings, numbers as numbers, NA as null); a
    missing feature or a column pyarrow cannot convert is an :class:`InputError` naming it."""
    try:
        import pyarrow as pa
    except ImportError:  # pragma: no cover - pyarrow is a dependency of the table path
        raise InputError("scoring a pandas DataFrame needs pyarrow (pip install pyarrow)") \
            from None
    names = [str(c) for c in df.columns]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise InputError(f"the DataFrame has duplicate column names: {', '.join(dup)}")
    position = {n: i for i, n in enumerate(names)}
    missing = [f for f in feature_names if f not in position]
    if missing:
        raise InputError(
            f"the input has no column{'' if len(missing) == 1 else 's'} {', '.join(missing)} "
            f"(the input has: {', '.join(names)}); a DataFrame binds to the model's features "
            f"by name")
    arrays = []
    for f in feature_names:
        col = df.iloc[:, position[f]]
        try:
            arrays.append(pa.array(col, from_pandas=True))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
            raise InputError(f"column {f!r} (dtype {col.dtype}) cannot be read: {e}") \
                from None
    return pa.Table.from_arrays(arrays, names=list(feature_names))


def _n_rows(t) -> int:
    n = getattr(t, "num_rows", None)
    if n is None:
        n = getattr(t, "height", None)
    if n is None:
        try:
            n = len(t)
        except TypeError:
            n = 0
    return int(n)


def _as_matrix(x, n_features: int, feature_names: list[str]) -> np.ndarray:
    """A C-contiguous float32/float64 ``[n, k]`` view of ``x`` (copied only when needed)."""
    if hasattr(x, "detach") and hasattr(x, "numpy"):  # torch tensor
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.dtype not in (np.float32, np.float64):
        if arr.dtype.kind not in "iufb":
            raise InputError(f"input dtype {arr.dtype} is not numeric")
        arr = arr.astype(np.float64)
    if arr.ndim == 1:
        if arr.shape[0] != n_features:
            raise InputError(
                f"a 1-D input is one row and must have {n_features} values, got {arr.shape[0]}")
        arr = arr.reshape(1, -1)
    elif arr.ndim != 2:
        if arr.ndim > 2 and arr.size > 0:
            arr = arr.reshape(arr.shape[0], -1)
        else:
            raise InputError(f"input must be 1-D or 2-D, got shape {arr.shape}")
    if arr.shape[1] != n_features:
        raise InputError(
            f"the model takes {n_features} features per row but the input has "
            f"{arr.shape[1]} columns")
    return np.ascontiguousarray(arr)


class MLERuntime:
    """A loaded ``.mle`` model.

    ``run([x])`` returns every output in graph order; ``predict``/``predict_proba``/
    ``decision_function`` return one output each. Outputs follow the output contract every
    front end shares (SQL, Polars, the CLI): a classifier is recognised by its metadata's
    task, its class indices are mapped to the class labels natively, and probabilities are
    float64.
    Inputs are numpy arrays (float32 or float64 used in place when C-contiguous; other
    numeric dtypes converted; columns by position), torch tensors, or tables bound to the
    features **by name** (extra columns ignored, a missing one an :class:`InputError` naming
    it): pandas DataFrames (numeric, object / ``string`` and ``category`` columns, through
    pyarrow), pyarrow Tables and RecordBatches, Polars DataFrames and anything with the
    Arrow PyCapsule interface (``__arrow_c_stream__`` / ``__arrow_c_array__``), chunked or
    not; tables cross into the runtime by the Arrow C interfaces, never value by value.
    ``input_schema`` lists the features with their kinds. The GIL is released while the
    model runs (from 64 rows, or with more than one thread; a smaller batch on one thread is
    cheaper with the GIL kept).
    """

    def __init__(self, native: _native.Runtime, path: str | None = None):
        self._rt = native
        self.path = path
        self.metadata: dict = json.loads(native.metadata_json)
        self._n_features = int(native.n_features)
        self.feature_names: list[str] = list(self.metadata["input"]["feature_names"])
        self.inputs = [
            {
                "name": "X",
                "shape": [-1, self._n_features],
                "dtype": self.metadata["input"]["dtype"],
                "feature_names": self.feature_names,
            }
        ]
        self.outputs = [
            {"name": n, "dtype": d, "shape": [-1] if w == 0 else [-1, w]}
            for (n, d, w) in native.outputs
        ]
        self._out_names = [o["name"] for o in self.outputs]
        labels = self.metadata["output"].get("class_labels")
        self.classes_ = None
        if labels is not None:
            kind = self.metadata.get("user", {}).get("mle.label_dtype", "")
            if kind and kind != "str":
                self.classes_ = np.asarray(labels).astype(np.dtype(kind))
            else:
                self.classes_ = np.asarray(labels)
        self._last_rows = 1
        self._schema = None

    # -------------------------------------------------------------------------------
    @property
    def task(self) -> str:
        return self.metadata["task"]

    @property
    def n_features(self) -> int:
        return self._n_features

    @property
    def input_schema(self) -> list[dict]:
        """One dict per input feature, in column order: ``name``, ``kind`` (``float``,
        ``integer``, ``boolean``, ``string`` or ``category``) and, for categories,
        ``n_categories`` and ``categories`` (in code order). A model written without typed
        features has only floats."""
        if self._schema is None:
            feats = list(self._rt.input_features)
            if not feats:
                feats = [{"name": n, "kind": "float"} for n in self.feature_names]
            for f in feats:
                if "categories" in f:
                    f["n_categories"] = len(f["categories"])
            self._schema = feats
        return [dict(f) for f in self._schema]

    def _prepare(self, x):
        """``x`` as the native runtime takes it: a float matrix, or an Arrow table."""
        if isinstance(x, np.ndarray):
            return _as_matrix(x, self._n_features, self.feature_names)
        if _is_pandas_frame(x):
            x = _pandas_table(x, self.feature_names)
        elif type(x).__name__ == "LazyFrame" and hasattr(x, "collect"):  # Polars
            names = list(x.collect_schema().names())
            missing = [f for f in self.feature_names if f not in names]
            if missing:
                raise InputError(
                    f"the input has no column{'' if len(missing) == 1 else 's'} "
                    f"{', '.join(missing)} (the input has: {', '.join(names)})")
            x = x.select(self.feature_names).collect()  # only the features are computed
        elif not _is_table(x):
            return _as_matrix(x, self._n_features, self.feature_names)
        return x

    def _raw(self, x, threads: int = 1, only: list[str] | None = None) -> dict:
        """The outputs by name (only those in ``only`` when given: the others are not
        converted)."""
        x = self._prepare(x)
        out = dict(self._rt.run(x, threads, only))
        first = next(iter(out.values()), None)
        self._last_rows = max(len(first), 1) if first is not None else 1
        return out

    def _labels(self, labels: np.ndarray) -> np.ndarray:
        """The class labels (mapped natively) in the numpy dtype of the model's classes."""
        if self.classes_ is None:
            return labels
        return labels.astype(self.classes_.dtype, copy=False)

    def run(self, inputs, threads: int = 1) -> list:
        """Runs the model on ``inputs[0]`` (or ``inputs`` itself when it is an array) and
        returns the outputs in graph order; ``label`` holds class labels."""
        x = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        out = self._raw(x, threads)
        res = []
        for name in self._out_names:
            v = out[name]
            if name == "label":
                v = self._labels(v)
            res.append(v)
        return res

    def predict(self, x, threads: int = 1) -> np.ndarray:
        """Class labels for classifiers, predictions for regressors and rankers, the
        transformed matrix for transformers, the network output for neural networks."""
        name = self._rt.prediction_output
        out = self._raw(x, threads, [name] if name is not None else None)
        if name == "label":
            return self._labels(out["label"])
        if name is not None:
            return out[name]
        if "prediction" in out:
            return out["prediction"]
        return out[self._out_names[0]]

    def predict_proba(self, x, threads: int = 1) -> np.ndarray:
        """Class probabilities ``[n, n_classes]`` (classifiers with probabilities)."""
        if "probabilities" not in self._out_names:
            raise MLEError(
                f"{self.metadata['model_type']} has no probabilities output "
                f"(outputs: {', '.join(self._out_names)})")
        return self._raw(x, threads, ["probabilities"])["probabilities"]

    def decision_function(self, x, threads: int = 1) -> np.ndarray:
        """Decision scores of linear classifiers."""
        if "scores" not in self._out_names:
            raise MLEError(f"{self.metadata['model_type']} has no scores output")
        return self._raw(x, threads, ["scores"])["scores"]

    def explain(self, x, threads: int = 1) -> np.ndarray:
        """Per-row feature contributions: exact path-dependent TreeSHAP of the tree
        ensemble's raw output (the margin, before any link), as XGBoost's ``pred_contribs``
        and LightGBM's ``pred_contrib`` compute them. ``[n, n_features + 1]`` float64 for
        models with one output, ``[n, n_outputs, n_features + 1]`` for multiclass ones; the
        last column is the bias, and each row adds up to the raw output. Inputs as
        :meth:`predict`. Models that are not one tree ensemble over the input features
        (linear models, networks), or were written without node covers, raise
        :class:`~mle_runtime.UnsupportedModelError` naming why."""
        out = self._rt.explain(self._prepare(x), threads)
        self._last_rows = max(out.shape[0], 1)
        return out[:, 0, :] if out.shape[1] == 1 else out

    @property
    def explain_columns(self) -> list[str]:
        """The names of :meth:`explain`'s last axis: the features, then ``bias``."""
        return list(self._rt.explain_columns)

    def apply(self, x, threads: int = 1) -> np.ndarray:
        """The leaf each row reaches in each tree, ``[n, n_trees]`` int32, numbered as the
        source framework numbers them (scikit-learn ``apply``: the node index; XGBoost
        ``pred_leaf``: the node id; LightGBM ``pred_leaf``: the leaf index). Inputs as
        :meth:`predict`."""
        out = self._rt.apply(self._prepare(x), threads)
        self._last_rows = max(out.shape[0], 1)
        return out

    def transform(self, x, threads: int = 1) -> np.ndarray:
        """Alias of :meth:`predict` for exported transformers."""
        return self.predict(x, threads)

    def benchmark(self, x, num_runs: int = 100, warmup: int = 5, threads: int = 1) -> dict:
        """Times ``num_runs`` runs of ``x`` (after ``warmup`` runs) inside the runtime and
        returns latency percentiles (milliseconds) and throughput (rows per second)."""
        if isinstance(x, (list, tuple)):
            x = x[0]
        arr = self._prepare(x)
        times = np.asarray(self._rt.benchmark(arr, int(num_runs), int(warmup), int(threads)))
        if times.size == 0:
            raise MLEError("benchmark needs num_runs >= 1")
        ms = times * 1e3
        rows = arr.shape[0] if isinstance(arr, np.ndarray) else _n_rows(arr)
        self._last_rows = max(rows, 1)
        return {
            "num_runs": int(times.size),
            "batch_size": int(rows),
            "mean_ms": float(ms.mean()),
            "std_ms": float(ms.std()),
            "min_ms": float(ms.min()),
            "max_ms": float(ms.max()),
            "p50_ms": float(np.percentile(ms, 50)),
            "p90_ms": float(np.percentile(ms, 90)),
            "p95_ms": float(np.percentile(ms, 95)),
            "p99_ms": float(np.percentile(ms, 99)),
            "throughput_rows_per_s": float(rows / times.mean()) if times.mean() > 0 else 0.0,
        }

    def peak_memory_usage(self, n_rows: int | None = None) -> int:
        """Planned peak bytes of intermediate buffers for a batch of ``n_rows`` (by default
        the size of the last batch run)."""
        return int(self._rt.peak_memory_bytes(int(n_rows or self._last_rows)))

    def __repr__(self) -> str:
        m = self.metadata
        return (f"MLERuntime({self.path!r}, framework={m['framework']!r}, "
                f"model_type={m['model_type']!r}, n_features={self._n_features})")


def load_model(path, public_key=None) -> MLERuntime:
    """Loads a ``.mle`` model. ``public_key`` (a key file path or the key's raw bytes)
    makes the signature mandatory: an unsigned or wrongly signed file raises
    :class:`~mle_runtime.SecurityError`."""
    if isinstance(path, (bytes, bytearray, memoryview)):
        return MLERuntime(_native.Runtime.from_bytes(bytes(path), "<memory>", public_key))
    path = os.fspath(path)
    if public_key is not None and not isinstance(public_key, (bytes, bytearray)):
        public_key = os.fspath(public_key)
    return MLERuntime(_native.Runtime(path, public_key), path)
