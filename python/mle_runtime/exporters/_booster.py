"""Shared part of the XGBoost and LightGBM exporters: both hand the booster's own
serialization to the native ``mle-import`` and patch names, labels and user metadata.
Typed features (pandas ``category`` columns) become a ``Lookup`` chain in front of the
imported trees (:class:`~mle_runtime._graph.Graph` builds it, the native importer puts it
in front)."""

from __future__ import annotations

import json

import numpy as np

from .._graph import Graph
from . import Export
from ._sample import SampleSpec, schema_sample


def _is_frame(x) -> bool:
    return hasattr(x, "columns") and not isinstance(x, np.ndarray)


def booster_export(*, kind, version, name, est, payload, n_features, feature_names,
                   user_metadata, booster_predict, typed: Graph | None = None,
                   codes: dict | None = None, fitted_on_frame: bool = False) -> Export:
    """The :class:`Export` of a booster (``est`` is the scikit-learn wrapper or ``None``);
    ``booster_predict(x)`` is the raw booster's own prediction, the reference for a bare
    booster. ``typed`` holds the declared features (category features with their
    vocabularies); ``codes`` maps the index of an integer-coded categorical feature (no
    vocabulary) to the largest code its splits use, for the validation sample;
    ``fitted_on_frame`` makes that sample a DataFrame."""
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
        if not _is_frame(x):
            x = np.asarray(x)
        if est is None:
            return {"prediction": booster_predict(x)}
        if classes is not None:
            return {"label": est.predict(x), "probabilities": est.predict_proba(x)}
        return {"prediction": est.predict(x)}

    features = prefix = sample = None
    if typed is not None and typed.features is not None:
        if typed.typed:
            out = typed.lookups("X")
            features = typed.features_spec()
            prefix = (json.dumps(typed.nodes), out)
        specs = [SampleSpec(f, max_code=(codes or {}).get(i))
                 for i, f in enumerate(typed.features)]
        if features is not None or codes:
            frame = fitted_on_frame or features is not None

            def sample(rows):
                return schema_sample(specs, rows, frame=frame)

    return Export(kind=kind, framework=kind, model_type=name, metadata=patch,
                  n_features=n_features, reference=reference, payload=payload,
                  features=features, prefix=prefix, sample=sample)
