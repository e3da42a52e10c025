//! Typed errors of the plugin; each becomes a Polars `ComputeError` carrying its message.

use polars::prelude::PolarsError;
use thiserror::Error;

/// An error scoring a Polars chunk or computing an output dtype.
#[derive(Debug, Error)]
pub enum PluginError {
    /// The executor or the file reader failed (missing file, corrupt model, bad signature...).
    #[error(transparent)]
    Exec(#[from] mle_exec::ExecError),
    /// The number of expressions does not match the model's features.
    #[error("{model}: the model takes {expected} feature columns ({names}), got {got}")]
    Arity {
        /// Model file.
        model: String,
        /// Features the model takes.
        expected: usize,
        /// Their names, comma separated.
        names: String,
        /// Columns given.
        got: usize,
    },
    /// An input column is not an integer or float column.
    #[error("{model}: input column {index} ({name:?}) has dtype {dtype}; only integer and float columns are accepted")]
    NonNumeric {
        /// Model file.
        model: String,
        /// Position of the column among the inputs (0-based).
        index: usize,
        /// Column name.
        name: String,
        /// Its dtype.
        dtype: String,
    },
    /// Input columns of different lengths.
    #[error("{model}: input column {index} ({name:?}) has {len} rows, expected {expected}")]
    Length {
        /// Model file.
        model: String,
        /// Position of the column.
        index: usize,
        /// Column name.
        name: String,
        /// Its length.
        len: usize,
        /// The batch length.
        expected: usize,
    },
    /// `mle_predict_proba` on a model without class probabilities.
    #[error("{model}: the model ({task}) has no class probabilities; use predict instead")]
    NoProbabilities {
        /// Model file.
        model: String,
        /// The model's task.
        task: String,
    },
    /// The model does not produce the output the plugin reads.
    #[error("{model}: the model has no output named {name:?} (outputs: {outputs})")]
    MissingOutput {
        /// Model file.
        model: String,
        /// The output looked for.
        name: String,
        /// The outputs it has.
        outputs: String,
    },
    /// A class index outside the metadata's class labels.
    #[error("{model}: class index {index} is outside the {n_labels} class labels of the metadata")]
    ClassIndex {
        /// Model file.
        model: String,
        /// The index returned by the executor.
        index: i64,
        /// Number of labels.
        n_labels: usize,
    },
    /// The executor returned an output of the wrong size (an executor bug, reported not trusted).
    #[error("{model}: output {name:?} holds {got} values, expected {expected}")]
    OutputLength {
        /// Model file.
        model: String,
        /// Output name.
        name: String,
        /// Values returned.
        got: usize,
        /// Values expected.
        expected: usize,
    },
    /// The model file is not the version the expression was built with (a query never mixes
    /// two versions of a model).
    #[error("{model}: the model file {when}; a query uses one version of a model: build the expression again to use the new file")]
    ModelChanged {
        /// Model file.
        model: String,
        /// What happened.
        when: &'static str,
    },
    /// The `pin` argument is not a token made by `mle_runtime.polars`.
    #[error("pin: {token:?} is not a model pin token (\"<id>:<file version>\")")]
    PinToken {
        /// The argument (at most 80 characters of it).
        token: String,
    },
    /// The `public_key` argument is not a valid key.
    #[error("public_key: {0}")]
    PublicKey(mle_format::FormatError),
    /// Polars failed building the output.
    #[error(transparent)]
    Polars(#[from] PolarsError),
}

impl From<mle_format::FormatError> for PluginError {
    fn from(e: mle_format::FormatError) -> Self {
        PluginError::Exec(mle_exec::ExecError::Format(e))
    }
}

impl From<PluginError> for PolarsError {
    fn from(e: PluginError) -> Self {
        match e {
            PluginError::Polars(p) => p,
            other => PolarsError::ComputeError(other.to_string().into()),
        }
    }
}
