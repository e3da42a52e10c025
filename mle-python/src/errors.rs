//! Rust errors → the exception classes of `mle_runtime.errors`.
//!
//! The classes are defined in Python (so they can also derive from `ValueError`, `OSError`,
//! ...) and looked up at raise time. Mapping:
//!
//! | Rust error | Python class |
//! |---|---|
//! | truncated, bad magic, checksum, corrupted section, bad tensor, invalid graph | `CorruptedFileError` |
//! | newer format version, unknown required feature flag | `VersionMismatchError` |
//! | missing or invalid signature, bad key | `SecurityError` |
//! | unsupported operator | `UnsupportedModelError` |
//! | input of the wrong width, dtype or layout | `InputError` |
//! | file not found / OS errors | `ModelFileError` (an `OSError` too) |
//! | anything else (inconsistent builder input) | `MLEError` |

use mle_exec::ExecError;
use mle_format::FormatError;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyType;

/// The Python exception classes an error can map to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `MLEError`, the base class.
    Base,
    /// `UnsupportedModelError`.
    Unsupported,
    /// `CorruptedFileError`.
    Corrupted,
    /// `VersionMismatchError`.
    Version,
    /// `SecurityError`.
    Security,
    /// `InputError`.
    Input,
    /// `ModelFileError` (I/O).
    File,
}

impl Kind {
    fn class_name(self) -> &'static str {
        match self {
            Kind::Base => "MLEError",
            Kind::Unsupported => "UnsupportedModelError",
            Kind::Corrupted => "CorruptedFileError",
            Kind::Version => "VersionMismatchError",
            Kind::Security => "SecurityError",
            Kind::Input => "InputError",
            Kind::File => "ModelFileError",
        }
    }
}

/// A Python exception of class `kind` with `msg`. Falls back to `RuntimeError` if the Python
/// package is not importable (the extension loaded on its own).
pub fn py_err(kind: Kind, msg: impl Into<String>) -> PyErr {
    let msg = msg.into();
    Python::attach(|py| {
        let class = py
            .import("mle_runtime.errors")
            .and_then(|m| m.getattr(kind.class_name()))
            .and_then(|c| c.cast_into::<PyType>().map_err(PyErr::from));
        match class {
            Ok(cls) => PyErr::from_type(cls, msg),
            Err(_) => PyRuntimeError::new_err(msg),
        }
    })
}

/// The class a format error maps to.
pub fn format_kind(e: &FormatError) -> Kind {
    match e {
        FormatError::Truncated { .. }
        | FormatError::BadMagic { .. }
        | FormatError::ChecksumMismatch { .. }
        | FormatError::Corrupted { .. }
        | FormatError::Tensor { .. }
        | FormatError::Schema { .. } => Kind::Corrupted,
        FormatError::VersionMismatch { .. } | FormatError::UnsupportedFeature { .. } => {
            Kind::Version
        }
        FormatError::SignatureMissing { .. }
        | FormatError::SignatureInvalid { .. }
        | FormatError::BadKey { .. } => Kind::Security,
        FormatError::Io { .. } => Kind::File,
        FormatError::Build(_) | FormatError::BuildSchema { .. } => Kind::Base,
    }
}

/// The class an executor error maps to.
pub fn exec_kind(e: &ExecError) -> Kind {
    #[allow(unreachable_patterns)]
    match e {
        ExecError::Format(f) => format_kind(f),
        ExecError::InvalidGraph { .. } => Kind::Corrupted,
        ExecError::UnsupportedOp { .. } | ExecError::NotExplainable { .. } => Kind::Unsupported,
        ExecError::Input(_) => Kind::Input,
        _ => Kind::Base,
    }
}

/// Converts a format error.
pub fn from_format(e: FormatError) -> PyErr {
    py_err(format_kind(&e), e.to_string())
}

/// Converts an executor error.
pub fn from_exec(e: ExecError) -> PyErr {
    py_err(exec_kind(&e), e.to_string())
}
