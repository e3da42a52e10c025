"""LightGBM exporter: the booster's text model is imported by the native ``mle-import``."""

from __future__ import annotations

import numpy as np

from ..errors import UnsupportedModelError
from . import Export

SUPPORTED = ["Booster", "LGBMClassifier", "LGBMRegressor", "LGBMRanker"]


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
    payload = booster.model_to_string().encode()
    n_features = int(booster.num_feature())
    patch: dict = {"framework_version": lgb.__version__, "model_type": name, "user": {}}
    if user_metadata:
        patch["user"].update(user_metadata)
    if feature_names is not None:
        patch["input"] = {"feature_names": [str(f) for f in feature_names]}
    classes = getattr(est, "classes_", None) if est is not None else None
    if classes is not None:
        from .._graph import class_labels_json, label_dtype

        patch["output"] = {"class_labels": class_labels_json(classes)}
        patch["user"]["mle.label_dtype"] = label_dtype(classes)

    def reference(x):
        x = np.asarray(x)
        if est is None:
            return {"prediction": booster.predict(x)}
        if classes is not None:
            return {"label": est.predict(x), "probabilities": est.predict_proba(x)}
        return {"prediction": est.predict(x)}

    return Export(kind="lightgbm", framework="lightgbm", model_type=name, metadata=patch,
                  n_features=n_features, reference=reference, payload=payload)
