"""XGBoost exporter: the booster is serialized to JSON and imported by the native
``mle-import`` (tree semantics live there once)."""

from __future__ import annotations

from ..errors import UnsupportedModelError
from . import Export
from ._booster import booster_export

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
    return booster_export(kind="xgboost", version=xgb.__version__, name=name, est=est,
                          payload=bytes(booster.save_raw(raw_format="json")),
                          n_features=int(booster.num_features()), feature_names=feature_names,
                          user_metadata=user_metadata, booster_predict=booster.inplace_predict)
