"""LightGBM exporter: the booster's text model is imported by the native ``mle-import``."""

from __future__ import annotations

from ..errors import UnsupportedModelError
from . import Export
from ._booster import booster_export

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
    return booster_export(kind="lightgbm", version=lgb.__version__, name=name, est=est,
                          payload=booster.model_to_string().encode(),
                          n_features=int(booster.num_feature()), feature_names=feature_names,
                          user_metadata=user_metadata, booster_predict=booster.predict)
