"""``export_model`` and ``validate_export``."""

from __future__ import annotations

import json
import os
import sys
import time
import warnings

import numpy as np

from . import _native
from .errors import MLEError, UnsupportedModelError, ValidationError
from .exporters import Export

#: zstd level used by ``compression=True`` (``mle_format::DEFAULT_ZSTD_LEVEL``).
ZSTD_LEVEL = _native.contract.DEFAULT_ZSTD_LEVEL

#: Validation tolerances ``(rtol, atol)`` by quantization: an output value passes when
#: ``|mle - framework| <= atol + rtol * |framework|``. For quantized models ``atol`` is
#: scaled by the largest framework output magnitude (at least 1).
TOLERANCES = {None: (1e-5, 1e-6), "fp16": (1e-2, 1e-2), "int8": (5e-2, 5e-2)}

FRAMEWORKS = ["scikit-learn", "xgboost", "lightgbm", "catboost", "pytorch", "onnx"]


def _framework_of(model) -> str:
    from .exporters.onnx import is_onnx

    if is_onnx(model):
        return "onnx"
    mod = type(model).__module__ or ""
    root = mod.split(".")[0]
    if root == "sklearn":
        return "sklearn"
    if root == "xgboost":
        return "xgboost"
    if root == "lightgbm":
        return "lightgbm"
    if root == "catboost":
        return "catboost"
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        return "pytorch"
    # A user's own estimator subclassing scikit-learn classes, or a Pipeline member.
    for base in type(model).__mro__:
        if (base.__module__ or "").startswith("sklearn."):
            return "sklearn"
    raise UnsupportedModelError(
        f"cannot export a {type(model).__module__}.{type(model).__name__}: not a model of a "
        f"supported framework ({', '.join(FRAMEWORKS)})")


def _exporter(framework: str):
    if framework == "sklearn":
        from .exporters import sklearn as m
    elif framework == "xgboost":
        from .exporters import xgboost as m
    elif framework == "lightgbm":
        from .exporters import lightgbm as m
    elif framework == "catboost":
        from .exporters import catboost as m
    elif framework == "onnx":
        from .exporters import onnx as m
    else:
        from .exporters import torch as m
    return m.export


def _introspect(model, **kw) -> Export:
    return _exporter(_framework_of(model))(model, **kw)


def _sample(ex: Export, input_shape, rows: int = 64):
    """The validation sample: the exporter's own (one that respects a typed model's input
    schema: categories from the vocabulary, unseen values, missing values), else
    standard-normal rows."""
    rng = np.random.default_rng(0)
    n = ex.n_features
    if input_shape is not None:
        shape = tuple(int(s) for s in input_shape)
        if len(shape) >= 2 and int(np.prod(shape[1:])) == n:
            rows = max(shape[0], 1) if shape[0] > 0 else rows
    if ex.sample is not None:
        return ex.sample(rows)
    dtype = np.float32 if ex.framework == "pytorch" else np.float64
    return rng.standard_normal((rows, n)).astype(dtype)


def _as_float(a) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def compare_outputs(reference: dict, got: dict, quantization=None) -> dict:
    """Compares the framework's outputs with the runtime's, by output name.

    Returns the seed's figures (``max_abs_error``, ``max_rel_error`` with
    ``rel = abs / (|framework| + 1e-8)``, ``mean_abs_error``) over the numeric outputs, the
    number of differing class decisions (``label_mismatches``), per-output figures, and
    ``passed`` under :data:`TOLERANCES`."""
    rtol, atol = TOLERANCES.get(quantization, TOLERANCES[None])
    per = {}
    passed = True
    abs_all = []
    rel_all = []
    mismatches = 0
    n = 0
    for name, ref in reference.items():
        if name not in got:
            continue
        mine = got[name]
        if name == "label":
            r = np.asarray(ref).ravel()
            m = np.asarray(mine).ravel()
            if r.shape != m.shape:
                raise ValidationError(f"label shape {m.shape} differs from {r.shape}")
            if r.dtype.kind in "OUS" or m.dtype.kind in "OUS":
                eq = r.astype(str) == m.astype(str)
            else:
                eq = r.astype(np.float64) == m.astype(np.float64)
            mismatches = int((~eq).sum())
            n = len(r)
            per[name] = {"mismatches": mismatches}
            if mismatches and quantization is None:
                passed = False
            continue
        r = _as_float(ref)
        m = _as_float(mine)
        if r.size != m.size:
            raise ValidationError(
                f"output {name!r}: shape {m.shape} differs from the framework's {r.shape}",
                {"output": name})
        r = r.reshape(m.shape)
        n = n or (r.shape[0] if r.ndim else 1)
        err = np.abs(m - r)
        err = np.where(np.isnan(m) & np.isnan(r), 0.0, err)
        rel = err / (np.abs(r) + 1e-8)
        # "near zero" is relative to the output's scale: float32 models (PyTorch, XGBoost)
        # round sums at ~1e-7 of their largest terms.
        finite = np.abs(r[np.isfinite(r)])
        a = atol * max(float(finite.max()) if finite.size else 0.0, 1.0)
        ok = bool(np.all(err <= a + rtol * np.abs(r)))
        passed &= ok
        figures = {
            "max_abs_error": float(np.nanmax(err)) if err.size else 0.0,
            "max_rel_error": float(np.nanmax(rel)) if rel.size else 0.0,
            "mean_abs_error": float(np.nanmean(err)) if err.size else 0.0,
            "passed": ok,
        }
        per[name] = figures
        abs_all.append(err.ravel())
        rel_all.append(rel.ravel())
    if abs_all:
        e = np.concatenate(abs_all)
        r = np.concatenate(rel_all)
        max_abs, max_rel, mean_abs = float(e.max()), float(r.max()), float(e.mean())
    else:
        max_abs = max_rel = mean_abs = 0.0
    return {
        "max_abs_error": max_abs,
        "max_rel_error": max_rel,
        "mean_abs_error": mean_abs,
        "label_mismatches": mismatches,
        "n_samples": int(n),
        "outputs": per,
        "tolerance": {"rtol": rtol, "atol": atol},
        "passed": bool(passed),
    }


def _runtime_outputs(rt, x) -> dict:
    outs = rt.run([x])
    return dict(zip(rt._out_names, outs, strict=False))


def export_model(
    model,
    output_path,
    input_shape=None,
    compression=False,
    quantization=None,
    metadata=None,
    feature_names=None,
    sample_input=None,
    *,
    validate=True,
    signing_key=None,
) -> dict:
    """Exports a trained model to a ``.mle`` file.

    Parameters
    ----------
    model : a fitted scikit-learn estimator or Pipeline, an XGBoost / LightGBM booster or
        estimator, a CatBoost model, a ``torch.nn.Module``, an ``onnx.ModelProto`` or the
        path of a ``.onnx`` file.
    output_path : where to write the file (atomically).
    input_shape : the input shape, e.g. ``(1, 128)`` (needed for PyTorch; used to draw a
        validation sample when ``sample_input`` is not given).
    compression : ``True`` (zstd at the format's default level, :data:`ZSTD_LEVEL`), an int
        zstd level, or ``False``.
    quantization : ``None``, ``"fp16"`` or ``"int8"`` (dense weights; trees stay exact).
    metadata : a JSON-able dict stored as the file's user metadata.
    feature_names : names of the input columns (default: the model's
        ``feature_names_in_`` or ``f0..fN``).
    sample_input : rows to validate the export on; when absent, the exporter makes a sample
        that respects the model's input schema (float features standard-normal; category
        features every category, values outside the vocabulary when the framework maps them
        to missing, and missing values), in what the model was fitted on (a DataFrame or a
        matrix). A CatBoost model with ``cat_features`` needs it: CatBoost keeps only the
        hashes of its categories, and the strings of these rows become the vocabulary.
    validate : ``True`` raises :class:`ValidationError` when the outputs differ beyond
        tolerance, ``"warn"`` warns instead, ``False`` skips validation.
    signing_key : an ED25519 secret key (file path or raw bytes) to sign the file with.

    Returns
    -------
    dict with ``success``, ``path``, ``size_bytes``, ``framework``, ``model_type``,
    ``validation`` (``max_abs_error``, ``max_rel_error``, ``mean_abs_error``, ...) and
    ``export_time_s``.
    """
    from .runtime import load_model

    t0 = time.perf_counter()
    if quantization not in (None, "fp16", "int8"):
        raise MLEError(f"quantization must be None, 'fp16' or 'int8', got {quantization!r}")
    if metadata is not None and not isinstance(metadata, dict):
        raise MLEError("metadata must be a dict")
    if metadata is not None:
        try:
            json.dumps(metadata)
        except (TypeError, ValueError) as e:
            raise MLEError(f"metadata is not JSON-serializable: {e}") from None
    level = None
    if compression is True:
        level = ZSTD_LEVEL
    elif compression not in (False, None, 0):
        level = int(compression)
    path = os.fspath(output_path)
    ex = _introspect(model, input_shape=input_shape, feature_names=feature_names,
                     quantization=quantization, user_metadata=metadata,
                     sample_input=sample_input)
    if ex.kind == "graph":
        size = _native.build_model(json.dumps(ex.metadata), ex.graph.graph_json(),
                                   ex.graph.weights, ex.graph.tensors, path, level,
                                   quantization, signing_key, ex.features)
    else:
        prefix_nodes, prefix_output = ex.prefix or (None, None)
        typed = dict(features=ex.features, prefix_nodes=prefix_nodes,
                     prefix_output=prefix_output)
        if ex.kind == "onnx":
            size, _ = _native.import_onnx(ex.payload, ex.extra["name"], json.dumps(ex.metadata),
                                          path, level, quantization, signing_key,
                                          model_dir=ex.extra["model_dir"])
        elif ex.kind == "catboost":
            size, _ = _native.import_catboost(ex.payload, type(model).__name__,
                                              json.dumps(ex.metadata), path, level,
                                              quantization, signing_key)
        elif ex.kind == "xgboost":
            size, _ = _native.import_xgboost(ex.payload, type(model).__name__,
                                             json.dumps(ex.metadata), path, level,
                                             quantization, signing_key, **typed)
        else:
            size, _ = _native.import_lightgbm(ex.payload.decode(), type(model).__name__,
                                              json.dumps(ex.metadata), path, level,
                                              quantization, signing_key, **typed)
    export_time = time.perf_counter() - t0
    result = {
        "success": True,
        "path": path,
        "size_bytes": int(size),
        "framework": ex.framework,
        "model_type": ex.model_type,
        "compression": level is not None,
        "quantization": quantization,
        "export_time_s": export_time,
        "validation": None,
    }
    if validate:
        x = sample_input if sample_input is not None else _sample(ex, input_shape)
        rt = load_model(path)
        x_arr = x
        if hasattr(x_arr, "detach"):
            x_arr = x_arr.detach().cpu().numpy()
        figures = compare_outputs(ex.reference(x_arr), _runtime_outputs(rt, x_arr),
                                  quantization)
        result["validation"] = figures
        if not figures["passed"]:
            msg = (f"{path}: exported {ex.model_type} differs from {ex.framework} beyond "
                   f"tolerance (rtol {figures['tolerance']['rtol']}, atol "
                   f"{figures['tolerance']['atol']}): max_abs_error "
                   f"{figures['max_abs_error']:.3g}, max_rel_error "
                   f"{figures['max_rel_error']:.3g}, label mismatches "
                   f"{figures['label_mismatches']}/{figures['n_samples']}")
            if validate == "warn":
                warnings.warn(msg, stacklevel=2)
            else:
                raise ValidationError(msg, figures)
    return result


def validate_export(original_model, mle_path, test_inputs, quantization=None) -> dict:
    """Loads ``mle_path``, runs ``test_inputs`` through it and through ``original_model``,
    and returns the error figures (``max_abs_error``, ``max_rel_error``,
    ``mean_abs_error``, ``label_mismatches``, per output, ``passed``)."""
    from .runtime import load_model

    rt = load_model(mle_path)
    x = test_inputs[0] if isinstance(test_inputs, (list, tuple)) else test_inputs
    ex = _introspect(original_model, input_shape=None, feature_names=None,
                     quantization=quantization, user_metadata=None, sample_input=x)
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return compare_outputs(ex.reference(x), _runtime_outputs(rt, x), quantization)
