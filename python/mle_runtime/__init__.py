"""MLE Runtime: export scikit-learn, XGBoost, LightGBM and PyTorch models to ``.mle`` and
run them with the native executor.

>>> import mle_runtime as mle
>>> result = mle.export_model(model, "model.mle")          # doctest: +SKIP
>>> rt = mle.load_model("model.mle")                       # doctest: +SKIP
>>> rt.predict(X)                                          # doctest: +SKIP
"""

from . import _native
from .errors import (
    CorruptedFileError,
    InputError,
    MLEError,
    ModelFileError,
    SecurityError,
    UnsupportedModelError,
    ValidationError,
    VersionMismatchError,
)
from .export import export_model, validate_export
from .runtime import MLERuntime, load_model

__version__ = _native.__version__


def generate_keypair() -> tuple[bytes, bytes]:
    """A new ED25519 key pair ``(secret_key, public_key)`` as raw 32-byte strings, for
    ``export_model(..., signing_key=secret)`` and ``load_model(..., public_key=public)``."""
    return _native.generate_keypair()


__all__ = [
    "export_model",
    "load_model",
    "validate_export",
    "generate_keypair",
    "MLERuntime",
    "MLEError",
    "UnsupportedModelError",
    "CorruptedFileError",
    "VersionMismatchError",
    "SecurityError",
    "ValidationError",
    "InputError",
    "ModelFileError",
    "__version__",
]
