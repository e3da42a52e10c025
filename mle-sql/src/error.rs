//! Errors of the SQL layer; they become DataFusion plan or execution errors.

use std::path::PathBuf;

use thiserror::Error;

/// An error finding, loading or calling a model from SQL.
#[derive(Debug, Error)]
pub enum SqlError {
    /// The model file cannot be read.
    #[error("cannot open model file {path:?}")]
    Io {
        /// The path as written in the query.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The path names a directory or another non-file.
    #[error("model path {path:?} is not a file")]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// The file is not a valid model (corrupt, wrong signature, unsupported graph).
    #[error("cannot load model {path:?}")]
    Load {
        /// The path as written in the query.
        path: PathBuf,
        /// Why.
        #[source]
        source: mle_exec::ExecError,
    },
    /// The model's outputs do not fit what the UDF returns.
    #[error("model {path:?} has unusable outputs")]
    Outputs {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: mle_arrow::ArrowError,
    },
    /// A thread panicked while holding the cache lock.
    #[error("the model cache lock is poisoned (a thread panicked while loading a model)")]
    Poisoned,
}

/// Formats an error with its chain of causes on one line (`a: b: c`), skipping causes whose
/// text the outer message already contains.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}
