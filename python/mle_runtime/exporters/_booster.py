"""Shared part of the XGBoost and LightGBM exporters: both hand the booster's own
serialization to the native ``mle-import`` and patch names, labels and user metadata."""

from __future__ import annotations

import numpy as np

from . import Export


def booster_export(*, kind, version, name, est, payload, n_features, feature_names,
                   user_metadata, booster_predict) -> Export:
    """The :class:`Export` of a booster (``est`` is the scikit-learn wrapper or ``None``);
    ``booster_predict(x)`` is the raw booster's own prediction, the reference for a bare
    booster."""
    patch: dict = {"framework_version": version, "model_type": name, "user": {}}
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
            return {"prediction": booster_predict(x)}
        if classes is not None:
            return {"label": est.predict(x), "probabilities": est.predict_proba(x)}
        return {"prediction": est.predict(x)}

    return Export(kind=kind, framework=kind, model_type=name, metadata=patch,
                  n_features=n_features, reference=reference, payload=payload)
