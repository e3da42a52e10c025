//! Errors of the SQL layer; they become DataFusion plan or execution errors.

use thiserror::Error;

/// An error finding, loading or calling a model from SQL.
#[derive(Debug, Error)]
pub enum SqlError {
    /// The model cannot be found, opened or loaded (the shared cache's error: it names the
    /// path and says why — missing, not a regular file, corrupt, wrongly signed).
    #[error(transparent)]
    Cache(#[from] mle_arrow::CacheError),
    /// The model's outputs do not fit what the UDF returns.
    #[error("model {path:?} has unusable outputs")]
    Outputs {
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: mle_arrow::ArrowError,
    },
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
