"""Exception classes of mle_runtime.

Every error raised by the package (Python or Rust side) is an :class:`MLEError`; the Rust
extension maps its typed errors onto these classes (see ``mle-python/src/errors.rs``).
"""

from __future__ import annotations


class MLEError(Exception):
    """Base class of every error raised by mle_runtime."""


class UnsupportedModelError(MLEError, TypeError):
    """The model, layer, operator or objective cannot be exported or run."""


class CorruptedFileError(MLEError, ValueError):
    """The file is not a valid .mle model (bad magic, truncated, checksum mismatch, ...)."""


class VersionMismatchError(MLEError):
    """The file needs a newer reader (format version or required feature flags)."""


class SecurityError(MLEError):
    """A required signature is missing or invalid, or a key is unusable."""


class ValidationError(MLEError):
    """An exported model's outputs differ from the source framework beyond tolerance.

    ``errors`` holds the figures (``max_abs_error``, ``max_rel_error``, ...).
    """

    def __init__(self, message: str, errors: dict | None = None):
        super().__init__(message)
        self.errors = errors or {}


class InputError(MLEError, ValueError):
    """The input does not fit the model (width, dtype, shape)."""


class ModelFileError(MLEError, OSError):
    """The model file cannot be read or written (missing file, permissions)."""


__all__ = [
    "MLEError",
    "UnsupportedModelError",
    "CorruptedFileError",
    "VersionMismatchError",
    "SecurityError",
    "ValidationError",
    "InputError",
    "ModelFileError",
]
