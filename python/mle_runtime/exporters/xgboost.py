"""XGBoost exporter: the booster is serialized to JSON and imported by the native
``mle-import`` (tree semantics live there once)."""

from __future__ import annotations

import numpy as np

from ..errors import UnsupportedModelError
from . import Export

SUPPORTED = ["Booster", "XGBClassifier", "XGBRegressor", "XGBRanker", "XGBRFClassifier",
             "XGBRFRegressor"]


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
    else:
        raise UnsupportedModelError(
            f"XGBoost object {name} is not supported. Supported: {', '.join(SUPPORTED)}")
    payload = bytes(booster.save_raw(raw_format="json"))
    n_features = int(booster.num_features())
    patch: dict = {"framework_version": xgb.__version__, "model_type": name, "user": {}}
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
            return {"prediction": booster.inplace_predict(x)}
        if classes is not None:
            return {"label": est.predict(x), "probabilities": est.predict_proba(x)}
        return {"prediction": est.predict(x)}

    return Export(kind="xgboost", framework="xgboost", model_type=name, metadata=patch,
                  n_features=n_features, reference=reference, payload=payload)
