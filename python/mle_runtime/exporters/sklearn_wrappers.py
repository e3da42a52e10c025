"""scikit-learn meta-estimators over supported members: ``TransformedTargetRegressor``,
``VotingRegressor`` / ``VotingClassifier``, ``StackingRegressor`` /
``StackingClassifier`` and ``CalibratedClassifierCV``.

Each member is emitted over the wrapper's input by the caller's ``member`` callback (a
member may be a Pipeline with a ColumnTransformer: the pipeline exporter emits it over the
same coded input), and the wrapper's arithmetic is composed from existing ops (docs/OPS.md):

- ``TransformedTargetRegressor``: ``Expm1`` / ``Log1p`` (``func=np.log1p`` /
  ``np.expm1``), or a ``Scaler`` (``transformer=StandardScaler()``: ``x·scale + mean``);
- voting: members' predictions (or probabilities, or one-hot labels for hard voting) are
  concatenated and weighted by one ``LinearModel``, as ``np.average``;
- stacking: the members' outputs as scikit-learn stacks them (``predict_proba`` with the
  first column dropped for a binary target, ``decision_function``, ``predict``), then the
  input when ``passthrough=True``, read by the final estimator;
- ``CalibratedClassifierCV`` (see :func:`_calibrated`): per calibrated classifier, its
  estimator's ``decision_function`` (else ``predict_proba``; a binary target keeps the
  positive column) calibrated per class by ``method="sigmoid"`` (``LinearModel`` →
  ``Sigmoid``), ``"isotonic"`` (``Clip`` to the fitted range, then scipy's linear
  interpolation, segment by segment: ``Bucketize`` → ``OneHot`` selects the segment,
  ``Sub`` / ``Mul`` / ``LinearModel`` compute ``slope·(x − x_lo) + y_lo``) or
  ``"temperature"`` (binary ``decision_function`` only: ``Softmax`` of ``β·[−f, f]``), then
  normalised as scikit-learn does (binary ``[1 − p, p]``; multiclass divided by the row
  sum, uniform where it is 0), and averaged over the calibrated classifiers.
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
    "CalibratedClassifierCV",
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
    if name == "CalibratedClassifierCV":
        return [_unfrozen(cc.estimator) for cc in est.calibrated_classifiers_]
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
    if name == "CalibratedClassifierCV":
        return _calibrated(est, g, member)
    return _stacking(est, g, member, raw, head, name)


def _ttr(est, g, member) -> dict:
    reg = est.regressor_
    outs = member(reg)
    pred = _prediction(est, reg, outs)
    if g.width(pred) != 0 or getattr(est, "_training_dim", 1) != 1:
        raise _refuse(est, "only a one-dimensional target is supported")
    if est.transformer is not None:
        from .sklearn import _known_name, _scaler

        tr = est.transformer_
        if _known_name(tr) != "StandardScaler":
            raise _refuse(est, f"transformer={type(est.transformer).__name__}() is not "
                               f"supported (only StandardScaler, or func/inverse_func "
                               f"numpy.log1p/numpy.expm1)")
        mean = tr.mean_ if tr.with_mean and tr.mean_ is not None else np.zeros(1)
        scale = tr.scale_ if tr.with_std and tr.scale_ is not None else np.ones(1)
        mean = np.asarray(mean, dtype=np.float64).reshape(1)
        scale = np.asarray(scale, dtype=np.float64).reshape(1)
        # inverse_transform as scikit-learn computes it: x·scale + mean
        v = _scaler(g, _column(g, pred), np.zeros(1), scale=scale, bias=mean)
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


# -- CalibratedClassifierCV -------------------------------------------------------------

_MARGIN_MEMBERS = ("GradientBoostingClassifier", "HistGradientBoostingClassifier")


def _unfrozen(m):
    """``m`` without its ``FrozenEstimator`` wrappers (a prefit calibrated estimator)."""
    while type(m).__name__ == "FrozenEstimator" and \
            (type(m).__module__ or "").startswith("sklearn."):
        m = m.estimator
    return m


def _producer(g, v: str) -> dict | None:
    for n in g.nodes:
        if v in n["outputs"]:
            return n
    return None


def _margin(g, proba: str | None) -> str | None:
    """The margin under a GradientBoosting / HistGradientBoosting member's probabilities,
    which their exporters emit as ``Softmax(raw)`` or ``BinaryToProba(Sigmoid(raw))``:
    that ``raw`` is scikit-learn's ``decision_function`` (``_raw_predict``)."""
    n = _producer(g, proba) if proba is not None else None
    if n is not None and n["op"] == "Softmax":
        return n["inputs"][0]
    if n is not None and n["op"] == "BinaryToProba":
        s = _producer(g, n["inputs"][0])
        if s is not None and s["op"] == "Sigmoid":
            return s["inputs"][0]
    return None


def _response(est, g, base, m, outs: dict) -> tuple[str, list]:
    """scikit-learn's ``_get_response_values(base, X, ["decision_function",
    "predict_proba"])`` over member ``m`` (``base`` without FrozenEstimator): the method
    name and its columns, each an f64 ``[N, 1]`` value (one, the positive class, for a
    binary base)."""
    from sklearn.utils.multiclass import type_of_target
    from sklearn.utils.validation import _check_response_method

    from .sklearn import _known_name, _steps

    what = f"calibrated estimator {type(m).__name__}"
    try:
        method = _check_response_method(base, ["decision_function", "predict_proba"]).__name__
    except AttributeError:
        raise _refuse(est, f"{what} has neither decision_function nor predict_proba") \
            from None
    classes = np.asarray(m.classes_)
    binary = type_of_target(classes) == "binary"
    if method == "decision_function":
        v = outs.get("scores")
        if v is None and _known_name(_steps(m)[-1]) in _MARGIN_MEMBERS:
            v = _margin(g, outs.get("probabilities"))
        if v is None:
            raise _refuse(est, f"{what}: its decision_function is not exported")
        # pos_label is classes_[-1]: the decision function as it is
    else:
        v = outs.get("probabilities")
        if v is None:
            raise _refuse(est, f"{what}: its predict_proba is not exported")
        if binary:
            v = g.node("Gather", v, "f64", 1, columns=[len(classes) - 1])
    v = _column(g, v)
    want = 1 if binary else len(classes)
    if g.width(v) != want:
        raise _refuse(est, f"{what}: {method} gives {g.width(v)} columns, scikit-learn "
                           f"{want}")
    if want == 1:
        return method, [v]
    return method, [g.node("Gather", v, "f64", 1, columns=[j]) for j in range(want)]


def _sigmoid_calibrator(est, g, x: str, cal) -> str:
    """``_SigmoidCalibration``: ``expit(−(a_·f + b_))``; ``f·(−a) + (−b)`` is that exactly."""
    a, b = float(cal.a_), float(cal.b_)
    if not (np.isfinite(a) and np.isfinite(b)):
        raise _refuse(est, f"sigmoid calibrator a_={a!r}, b_={b!r}: not finite")
    z = g.node("LinearModel", x, "f64", 1, coef=g.tensor("coef", np.array([[-a]])),
               intercept=g.tensor("intercept", np.array([-b])))
    return g.node("Sigmoid", z, "f64", 1)


def _isotonic_calibrator(est, g, x: str, cal) -> str:
    """``IsotonicRegression(out_of_bounds="clip").predict``: ``np.clip`` to ``[X_min_,
    X_max_]``, then scipy's ``interp1d`` over ``X_thresholds_`` / ``y_thresholds_``: the
    segment ``lo`` with ``x_lo < x <= x_hi`` (``searchsorted``; the first one at ``x_0``)
    and ``slope·(x − x_lo) + y_lo`` with ``slope = (y_hi − y_lo) / (x_hi − x_lo)``.
    ``Bucketize`` counts the edges ``≤ x``: an edge one ulp above each inner threshold
    counts the thresholds ``< x``, which is that segment; ``OneHot`` marks it, and one
    ``LinearModel`` over ``[onehot·(x − x_lo), onehot]`` adds the one nonzero product to the
    one ``y_lo``."""
    if getattr(cal, "out_of_bounds", None) != "clip":
        raise _refuse(est, f"isotonic calibrator out_of_bounds={cal.out_of_bounds!r} is "
                           f"not supported (only 'clip')")
    xs = np.asarray(cal.X_thresholds_)
    ys = np.asarray(cal.y_thresholds_)
    if xs.dtype != np.float64 or ys.dtype != np.float64:
        raise _refuse(est, f"isotonic calibrator fitted on {xs.dtype} predictions: only "
                           f"float64 is supported")
    m = xs.shape[0]
    if xs.ndim != 1 or ys.shape != (m,) or m == 0 or not np.all(np.isfinite(xs)) \
            or not np.all(np.isfinite(ys)) or np.any(np.diff(xs) <= 0):
        raise _refuse(est, "isotonic calibrator X_thresholds_ must be finite and strictly "
                           "increasing, with one finite y_thresholds_ each")
    if ys.min() < 0 or ys.max() > 1:
        # Calibrated probabilities in [0, 1]: what the row normalisation and the clip of
        # values just above 1 rely on.
        raise _refuse(est, f"isotonic calibrator y_thresholds_ in [{ys.min()!r}, "
                           f"{ys.max()!r}], not within [0, 1]")
    if float(cal.X_min_) != xs[0] or float(cal.X_max_) != xs[-1]:
        raise _refuse(est, "isotonic calibrator X_min_ / X_max_ differ from the first / last "
                           "X_thresholds_")
    if m == 1:
        # a single threshold: the constant y_thresholds_[0]
        return g.node("LinearModel", x, "f64", 1, coef=g.tensor("coef", np.zeros((1, 1))),
                      intercept=g.tensor("intercept", ys[:1].copy()))
    x = g.node("Clip", x, "f64", 1, min=float(xs[0]), max=float(xs[-1]))
    k = m - 1
    slope = (ys[1:] - ys[:-1]) / (xs[1:] - xs[:-1])
    d = g.node("Sub", x, "f64", k, b=g.tensor("b", xs[:-1].copy()))
    if k == 1:
        return g.node("LinearModel", d, "f64", 1, coef=g.tensor("coef", slope.reshape(1, 1)),
                      intercept=g.tensor("intercept", ys[:1].copy()))
    edges = np.nextafter(xs[1:-1], np.inf)
    seg = g.node("Bucketize", x, "f64", 1, edges=g.tensor("edges", edges),
                 edge_offsets=g.tensor("edge_offsets", np.array([0, k - 1], dtype=np.uint32)))
    hot = g.node("OneHot", seg, "f64", k, feature=0, n_columns=k,
                 slots=g.tensor("slots", np.arange(k, dtype=np.int32)))
    part = g.node("Mul", [hot, d], "f64", k)
    both = g.node("Concat", [part, hot], "f64", 2 * k, axis=1)
    coef = np.concatenate([slope, ys[:-1]]).reshape(1, 2 * k)
    return g.node("LinearModel", both, "f64", 1, coef=g.tensor("coef", coef),
                  intercept=g.tensor("intercept", np.zeros(1)))


def _normalised(g, cols: list, n: int) -> str:
    """``[N, n]`` probabilities from each class's calibrated column (``None``: the zeros
    scikit-learn leaves for a class the estimator did not see), normalised as
    ``_CalibratedClassifier.predict_proba``: binary ``[1 − p1, p1]``; multiclass divided by
    the row sum, ``1/n`` everywhere in a row whose sum is 0."""
    def zeros():
        ref = next(c for c in cols if c is not None)
        return g.node("LinearModel", ref, "f64", 1, coef=g.tensor("coef", np.zeros((1, 1))),
                      intercept=g.tensor("intercept", np.zeros(1)))

    if n == 2:
        p1 = cols[1] if cols[1] is not None else zeros()
        return g.node("BinaryToProba", p1, "f64", 2)
    p = _concat(g, [c if c is not None else zeros() for c in cols])
    total = g.node("LinearModel", p, "f64", 1, coef=g.tensor("coef", np.ones((1, n))),
                   intercept=g.tensor("intercept", np.zeros(1)))
    # (1 − [sum > 0]) / n: 0 where the row sum is positive, 1/n where it is 0.
    pos = g.node("Cast", g.node("Threshold", total, "i64", 0, threshold=0.0), "f64", 0,
                 to="f64")
    pos = g.node("Reshape", pos, "f64", 1, shape=[-1, 1])
    u = 1.0 / n
    uniform = g.node("LinearModel", pos, "f64", 1, coef=g.tensor("coef", np.array([[-u]])),
                     intercept=g.tensor("intercept", np.array([u])))
    # Normalizer(l1) divides a row by its sum (the values are >= 0) and leaves a zero row.
    return g.node("Add", [g.node("Normalizer", p, "f64", n, norm="l1"), uniform], "f64", n)


def _calibrated(est, g, member) -> dict:
    """``CalibratedClassifierCV.predict_proba``: the mean over ``calibrated_classifiers_``
    of each one's calibrated, normalised probabilities (values in ``(1, 1 + 1e-5]`` set to
    1: a ``Clip`` at 1, as calibrated probabilities never exceed 1 by more)."""
    from sklearn.preprocessing import LabelEncoder

    classes = est.classes_
    if not isinstance(classes, np.ndarray) or classes.ndim != 1 or len(classes) < 2:
        raise _refuse(est, "only a binary or multiclass target is supported")
    n = len(classes)
    ccs = list(est.calibrated_classifiers_)
    if not ccs:
        raise _refuse(est, "no calibrated classifier")
    probas = []
    for i, cc in enumerate(ccs):
        method = cc.method
        base = cc.estimator
        m = _unfrozen(base)
        resp, cols = _response(est, g, base, m, member(m))
        if method == "temperature":
            if n != 2 or resp != "decision_function":
                raise _refuse(est, f"method='temperature' is supported for a binary target "
                                   f"over a decision_function only (scikit-learn takes the "
                                   f"log of predict_proba, or of a batch of decision values "
                                   f"that look like probabilities; there is no such op), "
                                   f"not over {resp} with {n} classes")
            beta = float(cc.calibrators[0].beta_)
            z = g.node("LinearModel", cols[0], "f64", 2,
                       coef=g.tensor("coef", np.array([[-beta], [beta]])),
                       intercept=g.tensor("intercept", np.zeros(2)))
            p = g.node("Softmax", z, "f64", 2, axis=-1)
        elif method in ("sigmoid", "isotonic"):
            pos = LabelEncoder().fit(cc.classes).transform(m.classes_)
            slots: list = [None] * n
            for class_idx, col, cal in zip(pos, cols, cc.calibrators, strict=False):
                class_idx = int(class_idx) + (1 if n == 2 else 0)
                if class_idx >= n:
                    raise _refuse(est, f"calibrated_classifiers_[{i}] has more calibrators "
                                       f"than classes")
                slots[class_idx] = _sigmoid_calibrator(est, g, col, cal) \
                    if method == "sigmoid" else _isotonic_calibrator(est, g, col, cal)
            if all(s is None for s in slots):
                raise _refuse(est, f"calibrated_classifiers_[{i}] has no calibrator")
            p = _normalised(g, slots, n)
        else:
            raise _refuse(est, f"method={method!r} is not supported")
        probas.append(g.node("Clip", p, "f64", n, max=1.0))
    # mean_proba = 0 + p_1 + p_2 + …, then / len(calibrated_classifiers_)
    proba = probas[0]
    for p in probas[1:]:
        proba = g.node("Add", [proba, p], "f64", n)
    if len(probas) > 1:
        proba = g.node("Div", proba, "f64", n,
                       b=g.tensor("b", np.array([float(len(probas))])))
    return {"label": g.node("ArgMax", proba, "i64", 0), "probabilities": proba}
