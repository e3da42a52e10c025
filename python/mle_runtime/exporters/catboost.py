"""CatBoost exporter: the model is saved as CatBoost JSON and imported by the native
``mle-import`` (oblivious trees, float borders, one-hot and CTR categorical features; see
``mle_import::catboost``).

CatBoost knows a category by a hash of its string; the strings themselves are only in the
JSON when ``save_model`` is given a pool holding them. A model with ``cat_features`` is
therefore exported with ``sample_input`` (rows with the training categories, e.g. the
training frame): its categorical columns make that pool, and their strings become the
features' vocabulary. A string outside it is scored as a category CatBoost never saw.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from ..errors import UnsupportedModelError
from . import Export

SUPPORTED = ["CatBoostClassifier", "CatBoostRegressor", "CatBoostRanker", "CatBoost"]


def _is_frame(x) -> bool:
    return hasattr(x, "columns") and not isinstance(x, np.ndarray)


def export(model, *, feature_names=None, user_metadata=None, sample_input=None, **_) -> Export:
    import catboost

    name = type(model).__name__
    if not isinstance(model, catboost.CatBoost):
        raise UnsupportedModelError(
            f"CatBoost object {name} is not supported. Supported: {', '.join(SUPPORTED)}")
    if not model.is_fitted():
        raise UnsupportedModelError(f"{name} is not fitted")
    cat_idx = list(model.get_cat_feature_indices())
    pool = None
    if cat_idx:
        if sample_input is None:
            raise UnsupportedModelError(
                f"{name} has categorical features {cat_idx}: give sample_input (rows holding "
                "the training categories, e.g. the training frame) so that their strings can "
                "be stored; CatBoost's model keeps only their hashes")
        pool = catboost.Pool(sample_input, cat_features=cat_idx)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.json")
        model.save_model(path, format="json", pool=pool)
        with open(path, "rb") as f:
            payload = f.read()
    patch: dict = {"framework_version": catboost.__version__, "model_type": name, "user": {}}
    if user_metadata:
        patch["user"].update(user_metadata)
    if feature_names is not None:
        patch["input"] = {"feature_names": [str(f) for f in feature_names]}
    classes = getattr(model, "classes_", None) if isinstance(
        model, catboost.CatBoostClassifier) else None
    if classes is not None:
        from .._graph import class_labels_json, label_dtype

        patch["output"] = {"class_labels": class_labels_json(classes)}
        patch["user"]["mle.label_dtype"] = label_dtype(classes)

    def reference(x):
        if not _is_frame(x):
            x = np.asarray(x)
        if classes is not None:
            return {"label": np.asarray(model.predict(x)).reshape(-1),
                    "probabilities": model.predict_proba(x)}
        return {"prediction": model.predict(x)}

    return Export(kind="catboost", framework="catboost", model_type=name, metadata=patch,
                  n_features=len(model.feature_names_), reference=reference,
                  payload=payload)
