"""The Python face of a loaded model: ``mle_runtime.load_model(path)``."""

from __future__ import annotations

import json
import os

import numpy as np

from . import _native
from .errors import InputError, MLEError


def _as_matrix(x, n_features: int, feature_names: list[str]) -> np.ndarray:
    """A C-contiguous float32/float64 ``[n, k]`` view of ``x`` (copied only when needed)."""
    cols = getattr(x, "columns", None)
    if cols is not None and not isinstance(x, np.ndarray):
        names = [str(c) for c in cols]
        if set(feature_names) <= set(names) and names != feature_names:
            x = x[feature_names]
        x = x.to_numpy()
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

    ``run([x])`` returns every output in graph order (class indices mapped to the class
    labels); ``predict``/``predict_proba``/``decision_function`` return one output each.
    Inputs are numpy arrays (float32 or float64 used in place when C-contiguous; other
    numeric dtypes converted), pandas DataFrames (columns picked by feature name) or torch
    tensors. The GIL is released while the model runs (from 64 rows, or with more than one
    thread; a smaller batch on one thread is cheaper with the GIL kept).
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

    # -------------------------------------------------------------------------------
    @property
    def task(self) -> str:
        return self.metadata["task"]

    @property
    def n_features(self) -> int:
        return self._n_features

    def _raw(self, x, threads: int = 1) -> dict:
        arr = _as_matrix(x, self._n_features, self.feature_names)
        self._last_rows = max(arr.shape[0], 1)
        return dict(self._rt.run(arr, threads))

    def _labels(self, idx: np.ndarray) -> np.ndarray:
        if self.classes_ is None:
            return idx
        return self.classes_.take(idx)

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
        out = self._raw(x, threads)
        if "label" in out:
            return self._labels(out["label"])
        if "prediction" in out:
            return out["prediction"]
        return out[self._out_names[0]]

    def predict_proba(self, x, threads: int = 1) -> np.ndarray:
        """Class probabilities ``[n, n_classes]`` (classifiers with probabilities)."""
        if "probabilities" not in self._out_names:
            raise MLEError(
                f"{self.metadata['model_type']} has no probabilities output "
                f"(outputs: {', '.join(self._out_names)})")
        return self._raw(x, threads)["probabilities"]

    def decision_function(self, x, threads: int = 1) -> np.ndarray:
        """Decision scores of linear classifiers."""
        if "scores" not in self._out_names:
            raise MLEError(f"{self.metadata['model_type']} has no scores output")
        return self._raw(x, threads)["scores"]

    def transform(self, x, threads: int = 1) -> np.ndarray:
        """Alias of :meth:`predict` for exported transformers."""
        return self.predict(x, threads)

    def benchmark(self, x, num_runs: int = 100, warmup: int = 5, threads: int = 1) -> dict:
        """Times ``num_runs`` runs of ``x`` (after ``warmup`` runs) inside the runtime and
        returns latency percentiles (milliseconds) and throughput (rows per second)."""
        if isinstance(x, (list, tuple)):
            x = x[0]
        arr = _as_matrix(x, self._n_features, self.feature_names)
        times = np.asarray(self._rt.benchmark(arr, int(num_runs), int(warmup), int(threads)))
        if times.size == 0:
            raise MLEError("benchmark needs num_runs >= 1")
        ms = times * 1e3
        rows = arr.shape[0]
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
