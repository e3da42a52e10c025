"""scikit-learn meta-estimators over supported members: ``TransformedTargetRegressor``,
``VotingRegressor`` / ``VotingClassifier`` and ``StackingRegressor`` /
``StackingClassifier``.

Each member is emitted over the wrapper's input by the caller's ``member`` callback (a
member may be a Pipeline with a ColumnTransformer: the pipeline exporter emits it over the
same coded input), and the wrapper's arithmetic is composed from existing ops (docs/OPS.md):

- ``TransformedTargetRegressor``: ``Expm1`` / ``Log1p`` (``func=np.log1p`` /
  ``np.expm1``), or a ``Scaler`` (``transformer=StandardScaler()``: ``x·scale + mean``);
- voting: members' predictions (or probabilities, or one-hot labels for hard voting) are
  concatenated and weighted by one ``LinearModel``, as ``np.average``;
- stacking: the members' outputs as scikit-learn stacks them (``predict_proba`` with the
  first column dropped for a binary target, ``decision_function``, ``predict``), then the
  input when ``passthrough=True``, read by the final estimator.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import UnsupportedModelError

WRAPPERS = [
    "TransformedTargetRegressor",
    "VotingRegressor",
    "VotingClassifier",
    "StackingRegressor",
    "StackingClassifier",
]

_INVERSE = {"log1p": ("expm1", "Expm1"), "expm1": ("log1p", "Log1p")}


def _refuse(est, why: str) -> UnsupportedModelError:
    return UnsupportedModelError(f"scikit-learn {type(est).__name__}: {why}")


def _fname(fn) -> str:
    return getattr(fn, "__name__", repr(fn))


def members(est) -> list:
    """The fitted estimators that read the wrapper's input (not a stacking final
    estimator)."""
    name = _wrapper_name(est)
    if name == "TransformedTargetRegressor":
        return [est.regressor_]
    return [m for m in est.estimators_ if not (isinstance(m, str) and m == "drop")]


def _wrapper_name(est) -> str | None:
    for cls in type(est).__mro__:
        if cls.__name__ in WRAPPERS and (cls.__module__ or "").startswith("sklearn."):
            return cls.__name__
    return None


def is_wrapper(est) -> bool:
    return _wrapper_name(est) is not None


def _column(g, v: str) -> str:
    """``v`` as an f64 ``[N, k]`` value (a ``[N]`` one becomes ``[N, 1]``)."""
    v = g.cast(v, "f64")
    if g.width(v) == 0:
        v = g.node("Reshape", v, "f64", 1, shape=[-1, 1])
    return v


def _concat(g, vals: list) -> str:
    if len(vals) == 1:
        return vals[0]
    return g.node("Concat", vals, "f64", sum(g.width(v) for v in vals), axis=1)


def _weighted(g, x: str, coef) -> str:
    coef = np.atleast_2d(np.asarray(coef, dtype=np.float64))
    return g.node("LinearModel", x, "f64", coef.shape[0], coef=g.tensor("coef", coef),
                  intercept=g.tensor("intercept", np.zeros(coef.shape[0])))


def _weights(est, n: int) -> np.ndarray:
    w = est._weights_not_none
    w = np.ones(n) if w is None else np.asarray(w, dtype=np.float64)
    if w.shape != (n,) or not np.all(np.isfinite(w)) or w.sum() == 0:
        raise _refuse(est, f"weights={est.weights!r}: one finite weight per member, "
                           f"not summing to 0")
    return w


def _prediction(est, m, outs: dict) -> str:
    if "prediction" not in outs:
        raise _refuse(est, f"member {type(m).__name__} gives no prediction")
    return outs["prediction"]


def emit(est, g, member: Callable, raw: Callable, head: Callable) -> dict:
    """The outputs of wrapper ``est``: ``member(m)`` emits member ``m`` over the input and
    returns its outputs; ``raw()`` is the input as an f64 value (stacking passthrough);
    ``head(est, v)`` emits an estimator over value ``v`` (the stacking final estimator)."""
    name = _wrapper_name(est)
    if name == "TransformedTargetRegressor":
        return _ttr(est, g, member)
    if name == "VotingRegressor":
        ms = members(est)
        w = _weights(est, len(ms))
        preds = []
        for m in ms:
            p = _column(g, _prediction(est, m, member(m)))
            if g.width(p) != 1:
                raise _refuse(est, "multi-output members are not supported")
            preds.append(p)
        avg = _weighted(g, _concat(g, preds), w / w.sum())
        return {"prediction": g.node("Reshape", avg, "f64", 0, shape=[-1])}
    if name == "VotingClassifier":
        return _voting_classifier(est, g, member)
    return _stacking(est, g, member, raw, head, name)


def _ttr(est, g, member) -> dict:
    reg = est.regressor_
    outs = member(reg)
    pred = _prediction(est, reg, outs)
    if g.width(pred) != 0 or getattr(est, "_training_dim", 1) != 1:
        raise _refuse(est, "only a one-dimensional target is supported")
    if est.transformer is not None:
        from .sklearn import _known_name

        tr = est.transformer_
        if _known_name(tr) != "StandardScaler":
            raise _refuse(est, f"transformer={type(est.transformer).__name__}() is not "
                               f"supported (only StandardScaler, or func/inverse_func "
                               f"numpy.log1p/numpy.expm1)")
        mean = tr.mean_ if tr.with_mean and tr.mean_ is not None else np.zeros(1)
        scale = tr.scale_ if tr.with_std and tr.scale_ is not None else np.ones(1)
        mean = np.asarray(mean, dtype=np.float64).reshape(1)
        scale = np.asarray(scale, dtype=np.float64).reshape(1)
        # x·scale + mean == (x − (−mean/scale))·scale
        v = g.node("Scaler", _column(g, pred), "f64", 1,
                   offset=g.tensor("offset", -mean / scale), scale=g.tensor("scale", scale))
        return {"prediction": g.node("Reshape", v, "f64", 0, shape=[-1])}
    func, inv = est.func, est.inverse_func
    if func is None and inv is None:
        return {"prediction": pred}
    if not (isinstance(func, np.ufunc) and _fname(func) in _INVERSE):
        raise _refuse(est, f"func={_fname(func)!r} is not supported (only numpy.log1p or "
                           f"numpy.expm1 with its inverse, or None)")
    want, op = _INVERSE[_fname(func)]
    if not (isinstance(inv, np.ufunc) and _fname(inv) == want):
        raise _refuse(est, f"inverse_func={_fname(inv)!r} is not supported with "
                           f"func=numpy.{_fname(func)} (only numpy.{want})")
    return {"prediction": g.node(op, g.cast(pred, "f64"), "f64", 0)}


def _voting_classifier(est, g, member) -> dict:
    ms = members(est)
    n = len(est.classes_)
    w = _weights(est, len(ms))
    if est.voting == "soft":
        probas = []
        for m in ms:
            outs = member(m)
            if "probabilities" not in outs:
                raise _refuse(est, f"voting='soft': member {type(m).__name__} has no "
                                   f"predict_proba")
            probas.append(outs["probabilities"])
        coef = np.zeros((n, n * len(ms)))
        for k, wk in enumerate(w / w.sum()):
            coef[np.arange(n), k * n + np.arange(n)] = wk
        proba = _weighted(g, _concat(g, probas), coef)
        return {"label": g.node("ArgMax", proba, "i64", 0), "probabilities": proba}
    # Hard voting: each member's label (its class index: members are fitted on the encoded
    # target, classes 0..n-1) one-hot, weighted votes, first maximum as np.bincount/argmax.
    votes = []
    for m in ms:
        outs = member(m)
        if "label" not in outs or len(getattr(m, "classes_", [])) != n:
            raise _refuse(est, f"voting='hard': member {type(m).__name__} does not predict "
                               f"the {n} classes")
        lab = _column(g, outs["label"])
        votes.append(g.node("OneHot", lab, "f64", n, feature=0, n_columns=n,
                            slots=g.tensor("slots", np.arange(n, dtype=np.int32))))
    coef = np.zeros((n, n * len(ms)))
    for k, wk in enumerate(w):
        coef[np.arange(n), k * n + np.arange(n)] = wk
    tally = _weighted(g, _concat(g, votes), coef)
    return {"label": g.node("ArgMax", tally, "i64", 0)}


def _stacking(est, g, member, raw, head, name) -> dict:
    clf = name == "StackingClassifier"
    n_classes = len(est.classes_) if clf else 0
    if clf and not isinstance(est.classes_, np.ndarray):
        raise _refuse(est, "multilabel targets are not supported")
    fitted = [m for m in est.estimators_ if not (isinstance(m, str) and m == "drop")]
    methods = [s for s in est.stack_method_ if s != "drop"]
    if len(fitted) != len(methods):
        raise _refuse(est, "cannot pair the fitted estimators with their stack methods")
    cols = []
    for m, meth in zip(fitted, methods, strict=True):
        outs = member(m)
        if meth == "predict_proba":
            if "probabilities" not in outs:
                raise _refuse(est, f"member {type(m).__name__}: no predict_proba")
            p = outs["probabilities"]
            if n_classes == 2:
                p = g.node("Gather", p, "f64", 1, columns=[1])
        elif meth == "decision_function":
            if "scores" not in outs:
                raise _refuse(est, f"member {type(m).__name__}: no decision_function")
            p = outs["scores"]
        elif meth == "predict":
            p = outs.get("label" if clf else "prediction")
            if p is None:
                raise _refuse(est, f"member {type(m).__name__}: no predict")
        else:
            raise _refuse(est, f"stack_method {meth!r} is not supported")
        cols.append(_column(g, p))
    if est.passthrough:
        cols.append(g.cast(raw(), "f64"))
    x_meta = _concat(g, cols)
    final = est.final_estimator_
    want = getattr(est, "_n_feature_outs", None)
    n_meta = sum(want) + (est.n_features_in_ if est.passthrough else 0) if want else None
    if n_meta is not None and g.width(x_meta) != n_meta:
        raise _refuse(est, f"the stacked features are {g.width(x_meta)} columns, "
                           f"scikit-learn {n_meta}")
    outs = head(final, x_meta)
    if clf:
        outs = {k: outs[k] for k in ("label", "probabilities") if k in outs}
    return outs
