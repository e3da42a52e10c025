"""scikit-learn exporter: introspects fitted estimators and builds the graph IR.

Numerics follow scikit-learn exactly (docs/OPS.md):
- linear models, scalers and MLPs compute in f64 (their fitted parameters are f64);
- trees (DecisionTree, RandomForest, ExtraTrees, GradientBoosting) compare ``float32(x) <= t``
  with an f64 threshold (``input_precision = f32``); NaN follows ``missing_go_to_left``;
- HistGradientBoosting compares in f64, sends NaN by ``missing_go_to_left``, and its
  categorical splits send bitset members left (unknown categories go the missing side);
- RandomForest/ExtraTrees classifiers average the per-tree class fractions (scikit-learn
  >= 1.4 stores fractions in ``tree_.value``).
"""

from __future__ import annotations

import numpy as np

from .._graph import Graph, make_metadata, vocabulary
from .._native import contract
from ..errors import MLEError, UnsupportedModelError
from . import Export
from ._sample import SampleSpec, schema_sample
from .sklearn_pipeline import PIPELINE_STEPS, PipelineBuilder, _Raw, used_columns
from .sklearn_wrappers import WRAPPERS
from .sklearn_wrappers import emit as _emit_wrapper
from .sklearn_wrappers import members as _wrapper_members

# TreeEnsemble node flag bits (docs/OPS.md), from mle_format through the extension.
_FLAGS = contract.TREE_FLAGS

# Binary GradientBoostingClassifier predicts class 1 when raw >= 0; ``x > -min_subnormal``
# is exactly ``x >= 0`` for doubles.
_GE_ZERO = -5e-324

SUPPORTED = [
    "LinearRegression",
    "Ridge",
    "Lasso",
    "ElasticNet",
    "LogisticRegression",
    "SGDClassifier",
    "SGDRegressor",
    "LinearSVC",
    "LinearSVR",
    "DecisionTreeClassifier",
    "DecisionTreeRegressor",
    "RandomForestClassifier",
    "RandomForestRegressor",
    "ExtraTreesClassifier",
    "ExtraTreesRegressor",
    "GradientBoostingClassifier",
    "GradientBoostingRegressor",
    "HistGradientBoostingClassifier",
    "HistGradientBoostingRegressor",
    "MLPClassifier",
    "MLPRegressor",
    "StandardScaler",
    "MinMaxScaler",
    "MaxAbsScaler",
    "RobustScaler",
    "SimpleImputer",
    "Normalizer",
    "Pipeline",
    *PIPELINE_STEPS,
    *WRAPPERS,
]

_LINEAR_REGRESSORS = {"LinearRegression", "Ridge", "Lasso", "ElasticNet", "SGDRegressor",
                      "LinearSVR"}
_LINEAR_CLASSIFIERS = {"LogisticRegression", "SGDClassifier", "LinearSVC"}
_TRANSFORMERS = {"StandardScaler", "MinMaxScaler", "MaxAbsScaler", "RobustScaler",
                 "SimpleImputer", "Normalizer"}


def _unsupported(est, why: str = "") -> UnsupportedModelError:
    name = type(est).__name__
    msg = f"scikit-learn estimator {name} is not supported"
    if why:
        msg = f"scikit-learn {name}: {why}"
    return UnsupportedModelError(f"{msg}. Supported: {', '.join(SUPPORTED)}")


# ---------------------------------------------------------------------------------------
# transformers


def _emit_transformer(est, g: Graph, v: str) -> str:
    name = _known_name(est)
    v = g.cast(v, "f64")
    w = g.width(v)
    # Each scaler as scikit-learn computes it (`X -= mean_; X /= scale_`, `X *= scale_;
    # X += min_`): a tree after it compares the same doubles.
    if name == "StandardScaler":
        offset = est.mean_ if est.with_mean and est.mean_ is not None else np.zeros(w)
        div = est.scale_ if est.with_std and est.scale_ is not None else np.ones(w)
        return _scaler(g, v, offset, divisor=div)
    if name == "MinMaxScaler":
        v = _scaler(g, v, np.zeros(w), scale=est.scale_, bias=est.min_)
        if est.clip:
            lo, hi = est.feature_range
            v = g.node("Clip", v, "f64", w, min=float(lo), max=float(hi))
        return v
    if name == "MaxAbsScaler":
        return _scaler(g, v, np.zeros(w), divisor=est.scale_)
    if name == "RobustScaler":
        offset = est.center_ if est.with_centering and est.center_ is not None \
            else np.zeros(w)
        div = est.scale_ if est.with_scaling and est.scale_ is not None else np.ones(w)
        return _scaler(g, v, offset, divisor=div)
    if name == "SimpleImputer":
        if est.add_indicator:
            raise _unsupported(est, "add_indicator=True is not supported")
        stats = np.asarray(est.statistics_, dtype=np.float64)
        if stats.shape[0] != w:
            raise _unsupported(est, "columns with no observed value are dropped by the imputer")
        if np.isnan(stats).any():
            raise _unsupported(est, "a column has no statistic (all values missing in fit)")
        mv = est.missing_values
        attrs = {}
        if not (isinstance(mv, float) and np.isnan(mv)) and mv is not None:
            try:
                attrs["missing"] = float(mv)
            except (TypeError, ValueError):
                raise _unsupported(est, f"missing_values={mv!r} is not numeric") from None
        return g.node("Imputer", v, "f64", w, values=g.tensor("impute", stats), **attrs)
    if name == "Normalizer":
        return g.node("Normalizer", v, "f64", w, norm=est.norm)
    raise _unsupported(est)


def _scaler(g: Graph, v: str, offset, scale=None, divisor=None, bias=None) -> str:
    """``(x − offset)·scale`` (``Scaler``), or ``(x − offset)/divisor`` and/or ``+ bias``
    (``Affine``, which readers without it refuse by name)."""
    w = g.width(v)

    def t(name, a):
        return g.tensor(name, np.asarray(a, dtype=np.float64).reshape(w))

    attrs = {"offset": t("offset", offset)}
    if divisor is not None:
        attrs["divisor"] = t("divisor", divisor)
    else:
        attrs["scale"] = t("scale", np.ones(w) if scale is None else scale)
    if bias is not None:
        attrs["bias"] = t("bias", bias)
    op = "Scaler" if divisor is None and bias is None else "Affine"
    return g.node(op, v, "f64", w, **attrs)


# ---------------------------------------------------------------------------------------
# linear models


def _linear(g: Graph, v: str, coef, intercept) -> str:
    coef = np.atleast_2d(np.asarray(coef, dtype=np.float64))
    t = coef.shape[0]
    intercept = np.broadcast_to(np.asarray(intercept, dtype=np.float64), (t,)).copy()
    v = g.cast(v, "f64")
    return g.node("LinearModel", v, "f64", t, coef=g.tensor("coef", coef),
                  intercept=g.tensor("intercept", intercept))


def _squeeze(g: Graph, v: str) -> str:
    return g.node("Reshape", v, g.dtype(v), 0, shape=[-1])


def _emit_linear_regressor(est, g: Graph, v: str) -> dict:
    coef = np.asarray(est.coef_)
    out = _linear(g, v, coef, est.intercept_)
    if coef.ndim == 1:
        out = _squeeze(g, out)
    return {"prediction": out}


def _emit_linear_classifier(est, g: Graph, v: str) -> dict:
    name = _known_name(est)
    n_classes = len(est.classes_)
    dec = _linear(g, v, est.coef_, est.intercept_)
    outs = {}
    with_proba = name == "LogisticRegression" or (
        name == "SGDClassifier" and est.loss == "log_loss" and n_classes == 2
    )
    if n_classes == 2:
        outs["label"] = g.node("Threshold", dec, "i64", 0, threshold=0.0)
        if with_proba:
            p = g.node("Sigmoid", dec, "f64", 1)
            outs["probabilities"] = g.node("BinaryToProba", p, "f64", 2)
        outs["scores"] = _squeeze(g, dec)
    else:
        outs["label"] = g.node("ArgMax", dec, "i64", 0)
        if name == "LogisticRegression":
            outs["probabilities"] = g.node("Softmax", dec, "f64", n_classes, axis=-1)
        outs["scores"] = dec
    return outs


# ---------------------------------------------------------------------------------------
# trees


class _Trees:
    """Accumulates trees into the struct-of-arrays tensors of ``TreeEnsemble``."""

    def __init__(self, leaf_dim: int):
        self.leaf_dim = leaf_dim
        self.feature, self.threshold, self.left, self.right = [], [], [], []
        self.flags, self.leaves, self.cat_sets = [], [], []
        self.roots, self.targets, self.weights = [], [], []
        # Per tree, each node's cover (``node_cover``: what explanations weigh paths by), or
        # None: the ensemble gets covers only when every tree has them.
        self.covers = []
        self.n_nodes = 0
        self.any_cat = False

    def add(self, *, feature, threshold, left, right, is_leaf, missing_left, leaf_values,
            target=0, weight=1.0, is_cat=None, cat_sets=None, cover=None):
        n = len(feature)
        off = self.n_nodes
        is_leaf = np.asarray(is_leaf, dtype=bool)
        flags = np.where(is_leaf, _FLAGS["LEAF"], 0) | np.where(
            np.asarray(missing_left) != 0, _FLAGS["MISSING_LEFT"], 0)
        if is_cat is not None:
            is_cat = np.asarray(is_cat, dtype=bool) & ~is_leaf
            flags |= np.where(is_cat, _FLAGS["CATEGORICAL"], 0)
            if is_cat.any():
                self.any_cat = True
        left = np.where(is_leaf, 0, np.asarray(left, dtype=np.int64) + off)
        right = np.where(is_leaf, 0, np.asarray(right, dtype=np.int64) + off)
        self.feature.append(np.where(is_leaf, 0, feature).astype(np.int32))
        self.threshold.append(np.where(is_leaf, 0.0, threshold).astype(np.float64))
        self.left.append(left.astype(np.uint32))
        self.right.append(right.astype(np.uint32))
        self.flags.append(flags.astype(np.uint8))
        self.leaves.append(np.asarray(leaf_values, dtype=np.float64).reshape(n, self.leaf_dim))
        self.cat_sets.extend(cat_sets if cat_sets is not None else [None] * n)
        self.roots.append(off)
        self.targets.append(target)
        self.weights.append(weight)
        self.covers.append(None if cover is None else np.asarray(cover, dtype=np.float64))
        self.n_nodes += n

    def emit(self, g: Graph, v: str, *, n_targets: int, comparison: str, precision: str,
             aggregate: str, base_scores, categorical_members: str = "left") -> str:
        v = g.cast(v, "f64") if precision == "f64" else v
        if g.dtype(v) not in ("f32", "f64"):
            v = g.cast(v, "f64")
        arrays = dict(
            tree_roots=np.asarray(self.roots, dtype=np.uint32),
            feature=np.concatenate(self.feature),
            threshold=np.concatenate(self.threshold),
            left=np.concatenate(self.left),
            right=np.concatenate(self.right),
            flags=np.concatenate(self.flags),
            leaf_values=np.concatenate(self.leaves).ravel(),
        )
        if n_targets > 1 and self.leaf_dim == 1:
            arrays["tree_targets"] = np.asarray(self.targets, dtype=np.uint32)
        if any(w != 1.0 for w in self.weights):
            arrays["tree_weights"] = np.asarray(self.weights, dtype=np.float64)
        if self.any_cat:
            offsets = [0]
            words = []
            for s in self.cat_sets:
                if s is not None:
                    words.extend(int(x) for x in s)
                offsets.append(len(words))
            arrays["cat_offsets"] = np.asarray(offsets, dtype=np.uint32)
            arrays["cat_bits"] = np.asarray(words, dtype=np.uint32)
        if self.covers and all(c is not None for c in self.covers):
            arrays["node_cover"] = np.concatenate(self.covers)
        # The node and its attributes are written by mle_format's TreeEnsembleSpec, which
        # also checks the arrays (lengths, forward children, flag bits).
        return g.tree_ensemble(v, n_targets, n_targets=n_targets, leaf_dim=self.leaf_dim,
                               comparison=comparison, input_precision=precision,
                               aggregate=aggregate,
                               base_scores=[float(b) for b in np.ravel(base_scores)],
                               categorical_members=categorical_members, **arrays)


def _add_sklearn_tree(trees: _Trees, tree, leaf_values, target=0, weight=1.0):
    t = tree.tree_
    if t.n_outputs != 1:
        raise UnsupportedModelError("multi-output trees are not supported")
    left = t.children_left
    is_leaf = left == -1
    missing = getattr(t, "missing_go_to_left", None)
    if missing is None:
        missing = np.zeros(t.node_count, dtype=np.uint8)
    trees.add(feature=t.feature, threshold=t.threshold, left=left, right=t.children_right,
              is_leaf=is_leaf, missing_left=missing, leaf_values=leaf_values,
              target=target, weight=weight, cover=t.weighted_n_node_samples)


def _class_fractions(tree):
    val = np.asarray(tree.tree_.value[:, 0, :], dtype=np.float64)
    s = val.sum(axis=1, keepdims=True)
    s[s == 0] = 1.0
    # scikit-learn >= 1.4 stores fractions; normalizing again reproduces predict_proba.
    return val / s


def _emit_forest(est, g: Graph, v: str) -> dict:
    name = _known_name(est)
    is_clf = name.endswith("Classifier")
    trees_list = [est] if name.startswith("DecisionTree") else list(est.estimators_)
    if is_clf:
        if getattr(est, "n_outputs_", 1) != 1:
            raise _unsupported(est, "multi-output classification is not supported")
        n_classes = int(est.n_classes_)
        trees = _Trees(n_classes)
        for t in trees_list:
            _add_sklearn_tree(trees, t, _class_fractions(t))
        proba = trees.emit(g, v, n_targets=n_classes, comparison="le", precision="f32",
                           aggregate="average", base_scores=[0.0] * n_classes)
        return {"label": g.node("ArgMax", proba, "i64", 0), "probabilities": proba}
    trees = _Trees(1)
    for t in trees_list:
        if t.tree_.n_outputs != 1:
            raise _unsupported(est, "multi-output regression is not supported")
        _add_sklearn_tree(trees, t, t.tree_.value[:, 0, 0])
    raw = trees.emit(g, v, n_targets=1, comparison="le", precision="f32",
                     aggregate="average", base_scores=[0.0])
    return {"prediction": _squeeze(g, raw)}


def _emit_gradient_boosting(est, g: Graph, v: str) -> dict:
    name = _known_name(est)
    if not (isinstance(est.init_, str) and est.init_ == "zero") and type(
        est.init_
    ).__name__ not in ("DummyClassifier", "DummyRegressor"):
        raise _unsupported(est, f"init estimator {type(est.init_).__name__} is not supported")
    n_features = est.n_features_in_
    base = np.asarray(est._raw_predict_init(np.zeros((1, n_features), dtype=np.float32)),
                      dtype=np.float64)[0]
    k = est.estimators_.shape[1]
    trees = _Trees(1)
    lr = float(est.learning_rate)
    for stage in est.estimators_:
        for j, t in enumerate(stage):
            _add_sklearn_tree(trees, t, t.tree_.value[:, 0, 0], target=j, weight=lr)
    raw = trees.emit(g, v, n_targets=k, comparison="le", precision="f32", aggregate="sum",
                     base_scores=base)
    if name == "GradientBoostingRegressor":
        return {"prediction": _squeeze(g, raw)}
    loss = est.loss
    if loss != "log_loss":
        raise _unsupported(est, f"loss={loss!r} is not supported (only 'log_loss')")
    if k == 1:
        p = g.node("Sigmoid", raw, "f64", 1)
        return {
            "label": g.node("Threshold", raw, "i64", 0, threshold=_GE_ZERO),
            "probabilities": g.node("BinaryToProba", p, "f64", 2),
        }
    return {
        "label": g.node("ArgMax", raw, "i64", 0),
        "probabilities": g.node("Softmax", raw, "f64", k, axis=-1),
    }


def _hgb_categories(est, g: Graph, v: str) -> tuple[str, np.ndarray | None]:
    """The categorical features of a HistGradientBoosting model as typed features.

    scikit-learn (>= 1.4) encodes every categorical feature with an ``OrdinalEncoder``
    (``est._preprocessor``: a value → its position among the categories seen in fit, an
    unknown or missing one → NaN) and reorders the columns, categorical ones first; the trees
    index the reordered columns. Each categorical feature becomes a category over the
    encoder's categories (strings, or integers) with a ``Lookup`` (unknown → missing, exact
    matches only, as the encoder); returns the value the trees read and, when the columns
    were reordered, each tree feature's input column."""
    pre = getattr(est, "_preprocessor", None)
    if pre is None or est.is_categorical_ is None or not np.any(est.is_categorical_):
        return v, None
    is_cat = np.asarray(est.is_categorical_, dtype=bool)
    cat_idx = np.flatnonzero(is_cat)
    encoder = pre.named_transformers_["encoder"]
    if v != "X":
        return _hgb_recode(est, g, v, cat_idx, encoder, is_cat), None
    for i, cats in zip(cat_idx, encoder.categories_, strict=True):
        cats = list(cats)
        if cats and isinstance(cats[-1], float) and np.isnan(cats[-1]):
            cats = cats[:-1]  # the encoder lists NaN last when fit saw missing values
        try:
            g.declare(int(i), "category", vocabulary(cats), unknown="missing")
        except MLEError as e:
            raise _unsupported(est, f"categorical feature {g.features[i].name!r}: {e}") \
                from None
    order = np.concatenate([cat_idx, np.flatnonzero(~is_cat)]).astype(np.int32)
    return g.lookups(v), order


def _hgb_recode(est, g: Graph, v: str, cat_idx, encoder, is_cat) -> str:
    """HistGradientBoosting's own encoder over columns a transformer made (an
    ``OrdinalEncoder``'s codes, say): each value equal to one of the encoder's (integer)
    categories → its position, anything else → NaN, as a ``CategoryMap``; then the columns
    in scikit-learn's order, categorical ones first (the trees index that order)."""
    parts = []
    for i, cats in zip(cat_idx, encoder.categories_, strict=True):
        cats = np.asarray([c for c in cats if not (isinstance(c, float) and np.isnan(c))],
                          dtype=np.float64)
        if cats.size and (np.any(cats < 0) or np.any(cats != np.round(cats))
                          or cats.max() >= 2 ** 20):
            raise _unsupported(est, f"categorical feature {int(i)} after a transformer has "
                                    f"categories {cats[:5].tolist()}: only codes 0..2^20")
        m = int(cats.max()) + 1 if cats.size else 0
        table = np.full((m, 1), np.nan)
        for pos, c in enumerate(cats):
            table[int(c), 0] = pos
        nan = g.tensor("cmiss", np.full(1, np.nan))
        parts.append(g.node("CategoryMap", v, "f64", 1, feature=int(i),
                            table=g.tensor("table", table), missing=nan, unknown=nan))
    rest = [int(j) for j in np.flatnonzero(~is_cat)]
    if rest:
        parts.append(g.node("Gather", v, "f64", len(rest), columns=rest))
    return g.node("Concat", parts, "f64", len(is_cat), axis=1) if len(parts) > 1 else parts[0]


def _emit_hist_gradient_boosting(est, g: Graph, v: str) -> dict:
    name = _known_name(est)
    k = int(est.n_trees_per_iteration_)
    v, order = _hgb_categories(est, g, v)
    known, f_idx_map = None, None
    if est.is_categorical_ is not None and np.any(est.is_categorical_):
        known, f_idx_map = est._bin_mapper.make_known_categories_bitsets()
    trees = _Trees(1)
    for it in est._predictors:
        for j, pred in enumerate(it):
            nodes = pred.nodes
            n = len(nodes)
            is_cat = nodes["is_categorical"].astype(bool)
            cat_sets = [None] * n
            if is_cat.any():
                for i in np.flatnonzero(is_cat & ~nodes["is_leaf"].astype(bool)):
                    bits = np.asarray(pred.raw_left_cat_bitsets[nodes["bitset_idx"][i]],
                                      dtype=np.uint32).copy()
                    if nodes["missing_go_to_left"][i]:
                        # scikit-learn sends unknown categories the way of missing values.
                        f = int(nodes["feature_idx"][i])
                        bits |= ~np.asarray(known[f_idx_map[f]], dtype=np.uint32)
                    cat_sets[i] = bits
            feature = nodes["feature_idx"] if order is None else order[nodes["feature_idx"]]
            trees.add(feature=feature, threshold=nodes["num_threshold"],
                      left=nodes["left"], right=nodes["right"], is_leaf=nodes["is_leaf"],
                      missing_left=nodes["missing_go_to_left"], leaf_values=nodes["value"],
                      target=j, is_cat=is_cat, cat_sets=cat_sets, cover=nodes["count"])
    base = np.asarray(est._baseline_prediction, dtype=np.float64).ravel()
    raw = trees.emit(g, v, n_targets=k, comparison="le", precision="f64", aggregate="sum",
                     base_scores=base, categorical_members="left")
    if name == "HistGradientBoostingRegressor":
        link = type(est._loss.link).__name__
        if link == "LogLink":
            raw = g.node("Exp", raw, "f64", 1)
        elif link != "IdentityLink":
            raise _unsupported(est, f"loss {est.loss!r} (link {link}) is not supported")
        return {"prediction": _squeeze(g, raw)}
    if k == 1:
        p = g.node("Sigmoid", raw, "f64", 1)
        proba = g.node("BinaryToProba", p, "f64", 2)
    else:
        proba = g.node("Softmax", raw, "f64", k, axis=-1)
    return {"label": g.node("ArgMax", proba, "i64", 0), "probabilities": proba}


# ---------------------------------------------------------------------------------------
# MLP

_MLP_ACT = {"relu": "Relu", "logistic": "Sigmoid", "tanh": "Tanh", "identity": None}


def _emit_mlp(est, g: Graph, v: str, quantized: bool) -> dict:
    name = _known_name(est)
    if est.activation not in _MLP_ACT:
        raise _unsupported(est, f"activation {est.activation!r} is not supported")
    dt = "f32" if quantized else "f64"
    v = g.cast(v, dt)
    n_layers = len(est.coefs_)
    for i, (w, b) in enumerate(zip(est.coefs_, est.intercepts_, strict=False)):
        w = np.asarray(w)
        if quantized:
            v = g.node("Gemm", v, "f32", w.shape[1], weight=g.weight("weight", w.T),
                       bias=g.weight("bias", b), trans_b=1)
        else:
            v = _linear(g, v, w.T, b)
        act = est.activation if i < n_layers - 1 else est.out_activation_
        if act == "softmax":
            v = g.node("Softmax", v, dt, g.width(v), axis=-1)
        elif _MLP_ACT.get(act):
            v = g.node(_MLP_ACT[act], v, dt, g.width(v))
        elif act != "identity":
            raise _unsupported(est, f"output activation {act!r} is not supported")
    v = g.cast(v, "f64")
    if name == "MLPRegressor":
        return {"prediction": _squeeze(g, v) if g.width(v) == 1 else v}
    if est.out_activation_ == "logistic":
        if len(est.classes_) != 2:
            raise _unsupported(est, "multilabel MLPClassifier is not supported")
        return {
            "label": g.node("Threshold", v, "i64", 0, threshold=0.5),
            "probabilities": g.node("BinaryToProba", v, "f64", 2),
        }
    return {"label": g.node("ArgMax", v, "i64", 0), "probabilities": v}


# ---------------------------------------------------------------------------------------
# dispatch


def _known_name(est) -> str:
    """The supported scikit-learn class ``est`` is (or derives from)."""
    for cls in type(est).__mro__:
        if cls.__name__ in SUPPORTED and (cls.__module__ or "").startswith("sklearn."):
            return cls.__name__
    return type(est).__name__


def _emit(est, g: Graph, v: str, quantized: bool):
    """Emits ``est``; returns ``("transform", value)`` or ``("final", {name: value})``."""
    name = _known_name(est)
    if name in _TRANSFORMERS:
        return "transform", _emit_transformer(est, g, v)
    if name in _LINEAR_REGRESSORS:
        return "final", _emit_linear_regressor(est, g, v)
    if name in _LINEAR_CLASSIFIERS:
        return "final", _emit_linear_classifier(est, g, v)
    if name in ("DecisionTreeClassifier", "DecisionTreeRegressor", "RandomForestClassifier",
                "RandomForestRegressor", "ExtraTreesClassifier", "ExtraTreesRegressor"):
        return "final", _emit_forest(est, g, v)
    if name in ("GradientBoostingClassifier", "GradientBoostingRegressor"):
        return "final", _emit_gradient_boosting(est, g, v)
    if name in ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor"):
        return "final", _emit_hist_gradient_boosting(est, g, v)
    if name in ("MLPClassifier", "MLPRegressor"):
        return "final", _emit_mlp(est, g, v, quantized)
    if name in WRAPPERS:
        ms = _wrapper_members(est)
        if v == "X" and (len(ms) > 1 or getattr(est, "passthrough", False)) and any(
                _categorical_hgb(s) for m in ms for s in _flat_steps(m)):
            raise _unsupported(est, "a member with categorical HistGradientBoosting "
                                    "features is supported only as the only member")
        return "final", _emit_wrapper(
            est, g, member=lambda m: _emit_steps(m, g, v, quantized), raw=lambda: v,
            head=lambda m, x: _emit_steps(m, g, x, quantized))
    raise _unsupported(est)


def _categorical_hgb(est) -> bool:
    return _known_name(est).startswith("HistGradientBoosting") and \
        getattr(est, "is_categorical_", None) is not None and bool(np.any(est.is_categorical_))


def _flat_steps(model) -> list:
    """The steps of ``model`` with the members of every wrapper (and a stacking final
    estimator) expanded: what decides whether the graph is a pipeline."""
    out = []
    for s in _steps(model):
        if _known_name(s) in WRAPPERS:
            for m in _wrapper_members(s):
                out.extend(_flat_steps(m))
            final = getattr(s, "final_estimator_", None)
            if final is not None:
                out.extend(_flat_steps(final))
        out.append(s)
    return out


def _emit_steps(est, g: Graph, v: str, quantized: bool) -> dict:
    """The outputs of ``est`` (an estimator or a Pipeline of plain steps) over value ``v``."""
    steps = _steps(est)
    outs = None
    for i, step in enumerate(steps):
        kind, res = _emit(step, g, v, quantized)
        if kind == "transform":
            v = res
            continue
        if i != len(steps) - 1:
            raise _unsupported(step, "only the last step of a pipeline may be a predictor")
        outs = res
    return outs if outs is not None else {"prediction": v}


def _emit_parts(est, g: Graph, b: PipelineBuilder, parts, quantized: bool) -> dict:
    """The outputs of ``est`` (an estimator or a Pipeline with pipeline steps) over the
    pipeline parts ``parts``."""
    steps = _steps(est)
    outs = None
    for i, step in enumerate(steps):
        if hasattr(step, "predict"):
            if i != len(steps) - 1:
                raise _unsupported(step, "only the last step of a pipeline may be a "
                                         "predictor")
            if _known_name(step) in WRAPPERS:
                outs = _emit_wrapper_parts(step, g, b, parts, quantized)
            else:
                _, outs = _emit(step, g, b.materialize(parts, step), quantized)
        else:
            parts = b.transform(step, parts)
    if outs is None:
        outs = {"prediction": b.materialize(parts, steps[-1])}
    return outs


def _emit_wrapper_parts(est, g: Graph, b: PipelineBuilder, parts, quantized: bool) -> dict:
    return _emit_wrapper(
        est, g, member=lambda m: _emit_parts(m, g, b, parts, quantized),
        raw=lambda: b.materialize(parts, est),
        head=lambda m, x: _emit_steps(m, g, x, quantized))


def _steps(model):
    if _known_name(model) == "Pipeline":
        out = []
        for _, step in model.steps:
            if step is None or (isinstance(step, str) and step == "passthrough"):
                continue
            out.extend(_steps(step))
        return out
    return [model]


def _used_columns(model, n_features) -> list:
    """:func:`used_columns`, through wrappers: a wrapper first reads the columns any of its
    members reads (all of them under stacking passthrough)."""
    first = [s for s in _steps(model)][:1]
    if not first or _known_name(first[0]) not in WRAPPERS:
        return used_columns(model, n_features)
    if getattr(first[0], "passthrough", False):
        return list(range(n_features))
    used = set()
    for m in _wrapper_members(first[0]):
        used.update(_used_columns(m, n_features))
    return sorted(used)


def export(model, *, feature_names=None, quantization=None, user_metadata=None, **_) -> Export:
    """Builds the graph of a fitted scikit-learn estimator or Pipeline."""
    import sklearn
    from sklearn.base import is_classifier
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(model)
    except Exception as e:  # NotFittedError, or a type sklearn does not know
        raise UnsupportedModelError(f"{type(model).__name__} is not fitted: {e}") from None
    steps = _steps(model)
    if not steps:
        raise _unsupported(model, "the pipeline has no step")
    n_features = getattr(model, "n_features_in_", None)
    if n_features is None:
        n_features = getattr(steps[0], "n_features_in_", None)
    if n_features is None:
        raise _unsupported(model, "the number of input features is unknown")
    n_features = int(n_features)
    if feature_names is None:
        fn = getattr(model, "feature_names_in_", None)
        feature_names = [str(f) for f in fn] if fn is not None else [
            f"f{i}" for i in range(n_features)]
    feature_names = list(feature_names)
    if len(feature_names) != n_features:
        raise UnsupportedModelError(
            f"feature_names has {len(feature_names)} names but the model takes "
            f"{n_features} features")

    frame = getattr(model, "feature_names_in_", None) is not None
    pipeline = any(_known_name(s) in PIPELINE_STEPS or (
        _known_name(s) == "SimpleImputer" and s.add_indicator) for s in _flat_steps(model))
    # A DataFrame-fitted pipeline reads its columns by name: the model takes the columns
    # its ColumnTransformer does not drop.
    used = _used_columns(model, n_features) if pipeline and frame \
        else list(range(n_features))
    all_names = feature_names
    feature_names = [all_names[i] for i in used]
    g = Graph(n_features=len(used), input_dtype="f64")
    g.set_features(feature_names)
    v = "X"
    quantized = quantization is not None
    if pipeline:
        b = PipelineBuilder(g, quantized)
        pos = {c: k for k, c in enumerate(used)}
        parts = [_Raw([pos.get(c, -1) for c in range(n_features)])]
        outs = _emit_parts(model, g, b, parts, quantized)
        b.finish()
    else:
        outs = _emit_steps(model, g, v, quantized)
    final = steps[-1]
    clf = is_classifier(model) or is_classifier(final)
    order = ["label", "probabilities", "scores"] if clf else ["prediction"]
    for name in order:
        if name in outs:
            g.output(outs[name], name)
    kind = "transformer" if "prediction" in outs and not hasattr(final, "predict") else None
    if clf:
        task = "binary" if len(final.classes_) == 2 else "multiclass"
    else:
        task = "regression"
    meta = make_metadata(
        framework="sklearn",
        framework_version=sklearn.__version__,
        model_type=type(model).__name__ if type(model).__name__ != "Pipeline"
        else "Pipeline(" + ",".join(type(s).__name__ for s in steps) + ")",
        task=task,
        feature_names=feature_names,
        input_dtype="f64",
        outputs=g.outputs,
        class_labels=final.classes_ if clf else None,
        user=user_metadata,
    )
    if kind:
        meta["user"]["mle.kind"] = kind

    dropped = [all_names[i] for i in range(n_features) if i not in set(used)]

    def reference(x):
        if dropped and hasattr(x, "columns"):
            # Columns the pipeline drops are not model inputs; scikit-learn still wants them.
            x = x.assign(**{c: np.nan for c in dropped if c not in x.columns})
        # scikit-learn keeps float32 inputs in float32 in some transformers; the runtime
        # widens them exactly and computes in f64, so the reference sees the same values
        # as f64 (trees round to f32 either way).
        if isinstance(x, np.ndarray) and x.dtype == np.float32:
            x = x.astype(np.float64)
        ref = {}
        if clf:
            ref["label"] = model.predict(x)
            if "probabilities" in outs:
                ref["probabilities"] = model.predict_proba(x)
            if "scores" in outs:
                ref["scores"] = model.decision_function(x)
        elif kind:
            ref["prediction"] = model.transform(x)
        else:
            ref["prediction"] = model.predict(x)
        return ref

    sample = None
    if g.typed or pipeline:
        # The sample is what the model was fitted on: a DataFrame when it has column names
        # (pandas category columns when the categories came from the dtype), else a matrix.
        from_dtype = isinstance(getattr(final, "categorical_features", None), str) and \
            final.categorical_features == "from_dtype"
        specs = [SampleSpec(f, category_dtype=from_dtype, as_object=pipeline,
                            positive=pipeline) for f in g.features]

        def sample(rows):
            return schema_sample(specs, rows, frame=frame)

    return Export(kind="graph", framework="sklearn", model_type=meta["model_type"],
                  metadata=meta, n_features=len(used), reference=reference, graph=g,
                  features=g.features_spec(), sample=sample)
