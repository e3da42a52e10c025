"""XGBoost exporter: the booster is serialized to JSON and imported by the native
``mle-import`` (tree semantics live there once).

A booster fitted with ``enable_categorical=True`` on pandas ``category`` columns keeps the
training categories (XGBoost >= 3.1, ``Booster.get_categories``); XGBoost predicts on a frame
by re-coding each value to its position among them, raises on a value outside them
("Found a category not in the training set") and treats a missing value as missing. The
export declares those features as categories with that vocabulary and a ``Lookup``
(unknown → error) in front of the trees. Integer-coded categorical features (numpy input,
``feature_types="c"``) have no vocabulary and stay numeric codes, as before.
"""

from __future__ import annotations

import json

from .._graph import Graph, vocabulary
from ..errors import MLEError, UnsupportedModelError
from . import Export
from ._booster import booster_export

SUPPORTED = ["Booster", "XGBClassifier", "XGBRegressor", "XGBRanker", "XGBRFClassifier",
             "XGBRFRegressor"]


def training_categories(booster) -> list:
    """``[(name, categories or None)]`` per feature: the training categories of the pandas
    categorical features (empty when the booster has none, or on XGBoost < 3.1)."""
    get = getattr(booster, "get_categories", None)
    if get is None:
        return []
    try:
        cats = get(export_to_arrow=True)
    except TypeError:  # an XGBoost without the export_to_arrow option
        return []
    if cats is None or (hasattr(cats, "empty") and cats.empty()):
        return []
    return [(n, None if a is None else a.to_pylist()) for n, a in cats.to_arrow()]


def _trees(doc: dict) -> list:
    gb = doc.get("learner", {}).get("gradient_booster", {})
    model = gb.get("model") or gb.get("gbtree", {}).get("model") or {}
    return model.get("trees", [])


def max_codes(payload: bytes, categorical: list[int]) -> dict:
    """The largest category code the trees split on, for each integer-coded categorical
    feature (index → code)."""
    if not categorical:
        return {}
    top = {i: 0 for i in categorical}
    for t in _trees(json.loads(payload)):
        cats = t.get("categories") or []
        segs = t.get("categories_segments") or []
        sizes = t.get("categories_sizes") or []
        nodes = t.get("categories_nodes") or []
        split = t.get("split_indices") or []
        for node, beg, size in zip(nodes, segs, sizes, strict=False):
            f = split[node] if node < len(split) else None
            if f in top and size:
                top[f] = max(top[f], int(max(cats[beg:beg + size])))
    return top


def export(model, *, feature_names=None, user_metadata=None, **_) -> Export:
    import xgboost as xgb

    name = type(model).__name__
    if isinstance(model, xgb.Booster):
        booster, est = model, None
    elif isinstance(model, xgb.XGBModel):
        try:
            booster, est = model.get_booster(), model
        except Exception as e:  # NotFittedError
            raise UnsupportedModelError(f"{name} is not fitted: {e}") from None
        # Trained with early stopping, the scikit-learn wrapper predicts with the trees up to
        # `best_iteration` while the booster keeps them all: export what `predict` uses.
        # (A bare Booster predicts with every tree, so it is exported whole.)
        try:
            best = int(model.best_iteration)
        except (AttributeError, TypeError, ValueError):
            best = None
        if best is not None and best + 1 < booster.num_boosted_rounds():
            booster = booster[: best + 1]
    else:
        raise UnsupportedModelError(
            f"XGBoost object {name} is not supported. Supported: {', '.join(SUPPORTED)}")
    payload = bytes(booster.save_raw(raw_format="json"))
    n_features = int(booster.num_features())
    names = feature_names if feature_names is not None else booster.feature_names
    names = [str(f) for f in names] if names is not None else [f"f{i}" for i in range(n_features)]
    if len(names) != n_features:
        raise UnsupportedModelError(
            f"feature_names has {len(names)} names but the model takes {n_features} features")
    g = Graph(n_features=n_features)
    g.set_features(names)
    cats = training_categories(booster)
    for i, (_, c) in enumerate(cats):
        if c is None:
            continue
        try:
            g.declare(i, "category", vocabulary(c), unknown="error")
        except MLEError as e:
            raise UnsupportedModelError(f"XGBoost feature {names[i]!r}: {e}") from None
    types = list(booster.feature_types or [])
    coded = [i for i, t in enumerate(types) if t == "c" and g.features[i].kind != "category"]
    return booster_export(kind="xgboost", version=xgb.__version__, name=name, est=est,
                          payload=payload, n_features=n_features, feature_names=names,
                          user_metadata=user_metadata, booster_predict=booster.inplace_predict,
                          typed=g, codes=max_codes(payload, coded),
                          fitted_on_frame=bool(cats))
