"""LightGBM exporter: the booster's text model is imported by the native ``mle-import``.

A booster fitted on a pandas DataFrame with ``category`` columns keeps their categories in
``Booster.pandas_categorical`` (one list per categorical feature, in feature order); LightGBM
predicts on a frame by mapping each value to its position in that list (the code its splits
use), and a value outside it, or a missing one, to NaN. The export declares those features
as categories with that vocabulary and a ``Lookup`` (unknown → missing) in front of the trees.

Feature names are the booster's: LightGBM stores a column ``"mean radius"`` as
``"mean_radius"``, and tables bind by those names (pass ``feature_names`` to
``export_model`` to keep others).
"""

from __future__ import annotations

import re

from .._graph import Graph, vocabulary
from ..errors import MLEError, UnsupportedModelError
from . import Export
from ._booster import booster_export

SUPPORTED = ["Booster", "LGBMClassifier", "LGBMRegressor", "LGBMRanker"]

_CATEGORICAL = re.compile(r"^\[categorical_feature: ?([0-9, ]*)\]$", re.MULTILINE)


def categorical_features(text: str) -> list[int]:
    """The categorical feature indices of a LightGBM text model (its parameters section)."""
    m = _CATEGORICAL.search(text)
    if not m or not m.group(1).strip():
        return []
    return [int(v) for v in m.group(1).replace(" ", "").split(",") if v]


def max_code(text: str, feature: int) -> int:
    """The largest category of an integer-coded categorical feature: its ``feature_infos``
    entry lists the categories seen in training (``-1:1:0:4``); else the largest code any
    split's bitset (``cat_threshold``) holds; 0 when there is neither."""
    for line in text.splitlines():
        if line.startswith("feature_infos="):
            infos = line.split("=", 1)[1].split()
            if feature < len(infos) and not infos[feature].startswith("["):
                try:
                    return max(int(v) for v in infos[feature].split(":"))
                except ValueError:
                    break
            break
    top = 0
    for line in text.splitlines():
        if line.startswith("cat_threshold="):
            for k, w in enumerate(line.split("=", 1)[1].split()):
                w = int(w)
                if w:
                    top = max(top, 32 * k + w.bit_length() - 1)
    return top


def typed_features(booster, text: str, names: list[str]) -> Graph:
    """The features of ``booster``: floats, and its pandas categorical features as
    categories over ``pandas_categorical`` (codes = positions, unknown/NULL → missing)."""
    g = Graph(n_features=len(names))
    g.set_features(names)
    cats = getattr(booster, "pandas_categorical", None) or []
    if not cats:
        return g
    idx = categorical_features(text)
    if len(idx) != len(cats):
        raise UnsupportedModelError(
            f"LightGBM booster: {len(cats)} pandas categorical columns but {len(idx)} "
            f"categorical features ({idx}); a category column used as a numeric feature, or a "
            f"categorical_feature list beside pandas categories, is not supported")
    for i, c in zip(idx, cats, strict=True):
        try:
            g.declare(i, "category", vocabulary(c), unknown="missing")
        except MLEError as e:
            raise UnsupportedModelError(f"LightGBM feature {names[i]!r}: {e}") from None
    return g


def export(model, *, feature_names=None, user_metadata=None, **_) -> Export:
    import lightgbm as lgb

    name = type(model).__name__
    if isinstance(model, lgb.Booster):
        booster, est = model, None
    elif isinstance(model, lgb.LGBMModel):
        try:
            booster, est = model.booster_, model
        except Exception as e:  # LGBMNotFittedError
            raise UnsupportedModelError(f"{name} is not fitted: {e}") from None
    else:
        raise UnsupportedModelError(
            f"LightGBM object {name} is not supported. Supported: {', '.join(SUPPORTED)}")
    text = booster.model_to_string()
    n_features = int(booster.num_feature())
    names = [str(f) for f in (feature_names if feature_names is not None
                              else booster.feature_name())]
    if len(names) != n_features:
        raise UnsupportedModelError(
            f"feature_names has {len(names)} names but the model takes {n_features} features")
    typed = typed_features(booster, text, names)
    fitted_on_frame = bool(getattr(booster, "pandas_categorical", None))
    # integer-coded categorical features (numpy codes, no vocabulary): the sample draws codes
    codes = {} if fitted_on_frame else {i: max_code(text, i)
                                         for i in categorical_features(text)}
    return booster_export(kind="lightgbm", version=lgb.__version__, name=name, est=est,
                          payload=text.encode(), n_features=n_features, feature_names=names,
                          user_metadata=user_metadata, booster_predict=booster.predict,
                          typed=typed, codes=codes, fitted_on_frame=fitted_on_frame)
