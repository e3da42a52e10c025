//! Typed errors of the executor.

use thiserror::Error;

/// An error compiling or running a model.
#[derive(Debug, Error)]
pub enum ExecError {
    /// The file could not be read or failed validation.
    #[error(transparent)]
    Format(#[from] mle_format::FormatError),
    /// The graph is malformed: names the model, the node and what is wrong.
    #[error("{model}: invalid graph at node {node:?} ({op}): {detail}")]
    InvalidGraph {
        /// Model file name.
        model: String,
        /// Node name.
        node: String,
        /// Operator.
        op: String,
        /// What is wrong, with the bound that failed.
        detail: String,
    },
    /// An operator this executor does not implement.
    #[error("{model}: unsupported operator {op:?} at node {node:?}")]
    UnsupportedOp {
        /// Model file name.
        model: String,
        /// Node name.
        node: String,
        /// Operator.
        op: String,
    },
    /// The input does not fit the model (width, dtype, lengths).
    #[error("invalid input: {0}")]
    Input(String),
    /// The model cannot be explained (or its leaves indexed): names the model and why.
    #[error("{model}: cannot explain: {reason}")]
    NotExplainable {
        /// Model file name.
        model: String,
        /// Why.
        reason: crate::explain::Unexplainable,
    },
    /// A thread pool for the requested number of threads could not be created.
    #[error("cannot create a thread pool: {0}")]
    Threads(String),
}
