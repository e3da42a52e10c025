//! Typed errors of the plugin; each becomes a Polars `ComputeError` carrying its message.

use mle_arrow::CacheError;
use polars::prelude::PolarsError;
use thiserror::Error;

/// An input column whose dtype does not fit its feature's kind.
#[derive(Debug, Error)]
#[error("{model}: input column {index} ({name:?}) has dtype {dtype}, which is {problem}; feature {feature:?} is a {kind} feature and takes {accepted} (nulls as missing values)")]
pub struct WrongKind {
    /// Model file.
    pub model: String,
    /// Position of the column among the inputs (0-based).
    pub index: usize,
    /// Column name.
    pub name: String,
    /// Its dtype.
    pub dtype: String,
    /// The feature it binds to.
    pub feature: String,
    /// The feature's kind.
    pub kind: &'static str,
    /// What is wrong.
    pub problem: &'static str,
    /// What the feature takes.
    pub accepted: &'static str,
}

/// An error scoring a Polars chunk or computing an output dtype.
#[derive(Debug, Error)]
pub enum PluginError {
    /// The executor or the file reader failed (corrupt model, bad signature, ...).
    #[error(transparent)]
    Exec(Box<mle_exec::ExecError>),
    /// The model file cannot be found or opened.
    #[error("{model}: {source}")]
    Io {
        /// Model file.
        model: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The shared model cache refused the file (not a regular file, ...).
    #[error(transparent)]
    Cache(Box<CacheError>),
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
    /// An input column's dtype is outside the input policy.
    #[error("{model}: input column {index} ({name:?}) has dtype {dtype}; only integer and float columns are accepted (booleans as 0 and 1, nulls as missing values) for feature {feature:?}, a {kind} feature")]
    NonNumeric {
        /// Model file.
        model: String,
        /// Position of the column among the inputs (0-based).
        index: usize,
        /// Column name.
        name: String,
        /// Its dtype.
        dtype: String,
        /// The feature it binds to.
        feature: String,
        /// The feature's kind (`float`, `integer`, `boolean`, `category (integer categories)`).
        kind: &'static str,
    },
    /// An input column's dtype does not fit its feature's kind (a number for a `string`
    /// feature, a string for integer categories, a list for a category, ...).
    #[error(transparent)]
    WrongKind(Box<WrongKind>),
    /// `mle_predict_proba` on a model without class probabilities.
    #[error("{model}: the model ({task}) has no class probabilities; use predict instead")]
    NoProbabilities {
        /// Model file.
        model: String,
        /// The model's task.
        task: String,
    },
    /// Binding the columns or building the outputs failed (`mle-arrow`).
    #[error("{model}: {source}")]
    Arrow {
        /// Model file.
        model: String,
        /// Why.
        source: Box<mle_arrow::ArrowError>,
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
    PublicKey(Box<mle_format::FormatError>),
    /// A column could not cross between polars-arrow and arrow-rs.
    #[error("Arrow C Data Interface: {0}")]
    Interop(String),
    /// Polars failed building the output.
    #[error(transparent)]
    Polars(#[from] PolarsError),
}

impl PluginError {
    /// A cache error for the model the user named `model`, in the plugin's wording.
    pub fn from_cache(model: &str, e: CacheError) -> PluginError {
        match e {
            CacheError::Io { source, .. } => PluginError::Io {
                model: model.to_string(),
                source,
            },
            CacheError::Load { source, .. } => PluginError::Exec(source),
            CacheError::PinnedVersionGone { .. } => PluginError::ModelChanged {
                model: model.to_string(),
                when: "changed after the expression was built",
            },
            CacheError::Unstable { .. } => PluginError::ModelChanged {
                model: model.to_string(),
                when: "kept changing while it was read",
            },
            CacheError::PinToken { token } => PluginError::PinToken { token },
            other => PluginError::Cache(Box::new(other)),
        }
    }
}

impl From<mle_exec::ExecError> for PluginError {
    fn from(e: mle_exec::ExecError) -> Self {
        PluginError::Exec(Box::new(e))
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
