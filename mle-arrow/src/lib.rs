//! # mle-arrow
//!
//! The one adapter core of MLE Runtime: the only place that maps host columns to executor
//! batches and executor outputs back, and the model cache every front end shares. `mle-sql`
//! (DataFusion) and the CLI use it directly; the Polars plugin crosses from polars-arrow to
//! arrow-rs through the Arrow C Data Interface (zero copy) and back; the Python extension uses
//! the same output contract and cache for numpy inputs. The decisions, made once here:
//!
//! **Inputs** ([`input`]). `Float32` and `Float64` columns without nulls are borrowed in place
//! (no copy). Integer, unsigned, **`Boolean` (false = 0, true = 1)**, `Float16`, decimal and
//! dictionary-encoded numeric columns are converted to `Float64`. **A null is a missing value**
//! (NaN); only a column that has nulls is copied to say so. A one-row column next to longer
//! ones (a literal) is broadcast. Columns are checked against the kind of their feature (the
//! model's input schema, [`Features`]): `Utf8`, `LargeUtf8`, `Utf8View` and string dictionary
//! columns bind to `string` and `category` features, in place (the model's `Lookup` turns
//! them into codes); numeric columns to numeric features and, as codes, to categories. A
//! column of the wrong kind, and nested or temporal types, are refused, naming the column,
//! the feature and its kind. Tables bind **by name** ([`BoundColumns::bind_by_name`]).
//!
//! **Outputs** ([`output`], see [`OutputKind`]).
//! - A model is a classifier when its metadata's `task` is `binary` or `multiclass` (one rule
//!   for every front end).
//! - Classifiers: `prediction` is the class label, the executor's class index mapped through
//!   `metadata.output.class_labels` (`Int64` for integer labels, `Utf8` for string labels; the
//!   index itself as `Int64` when the model has no labels), and **`probabilities` is
//!   `FixedSizeList<Float64>` everywhere** (widened exactly from f32 when the graph computes in
//!   f32), one entry per class, in the label order.
//! - Regressors and rankers: `prediction` is `Float32` when the model computes in f32 (dense
//!   networks) and `Float64` when it computes in f64 (linear models, tree ensembles) — exactly
//!   the executor's output dtype; a multi-target model gives a `FixedSizeList` of the targets.
//!
//! **Explanations** ([`explain`](mod@explain)). Contributions are a `Struct` with one `Float64`
//! field per feature (named as the feature) and `bias` (each field a
//! `FixedSizeList<Float64>` per class for multiclass models); leaf indices are
//! `FixedSizeList<Int32, n_trees>`.
//!
//! **Model files and the cache** ([`cache`], [`file`](mod@file)). Every front end loads models through
//! [`ModelCache`]: keyed by canonical path and trust policy (public key or none), a file's
//! version is its device, inode, modification time and size, re-checked after each load (a
//! file replaced while it was read is read again, a bounded number of times); at most
//! [`cache::DEFAULT_CAPACITY`] models (least recently used dropped), each with one bounded
//! session pool; a poisoned lock is recovered. Only regular files are opened: a FIFO, a
//! directory or a device is an error naming the path, never a hang.

#![warn(missing_docs)]

pub mod cache;
pub mod explain;
pub mod file;
pub mod input;
pub mod output;

use arrow::array::ArrayRef;
use arrow::datatypes::DataType;
use thiserror::Error;

pub use cache::{CacheError, CachedModel, ModelCache, SessionPool};
pub use explain::{
    apply_arrays, explain_arrays, explain_fields, explain_type, explanation_array, leaf_array,
    leaf_type, BIAS, CONTRIBUTIONS,
};
pub use file::{open_model_file, FileIdentity};
pub use input::{
    bind_record_batch, check_column, column_class, columns_by_name, is_supported_type,
    BoundColumns, ColumnClass, Feature, Features,
};
pub use output::{
    class_column, output_arrays, probabilities_f64, ClassColumn, OutputArrays, OutputKind, LABEL,
    PREDICTION, PROBABILITIES,
};

/// An error binding Arrow columns to a model or building output arrays.
#[derive(Debug, Error)]
pub enum ArrowError {
    /// A column's type does not fit its feature's kind (a string column for a numeric
    /// feature, a numeric column for a `string` feature, a list, a date, ...).
    #[error("column {column:?} (feature {feature:?}) has type {data_type}, which is {problem}; a {kind} feature takes {accepted}")]
    UnsupportedType {
        /// Name of the column (or its position).
        column: String,
        /// The feature it binds to.
        feature: String,
        /// The feature's kind (`float`, ..., `category (integer categories)`).
        kind: &'static str,
        /// Its Arrow type.
        data_type: DataType,
        /// What is wrong: `not numeric`, `not a string`, `neither a string nor a number`.
        problem: &'static str,
        /// What the feature takes.
        accepted: &'static str,
    },
    /// The number of columns does not match the model's features.
    #[error("the model takes {expected} features ({names}) but {actual} columns were given")]
    FeatureCount {
        /// Features of the model.
        expected: usize,
        /// Columns given.
        actual: usize,
        /// The model's feature names, comma separated.
        names: String,
    },
    /// Columns of one batch have different lengths.
    #[error("column {column:?} has {actual} rows but the batch has {expected}")]
    Length {
        /// The column.
        column: String,
        /// Rows of the batch.
        expected: usize,
        /// Rows of the column.
        actual: usize,
    },
    /// Columns named by the model (or the user) are missing from the input.
    #[error("the input has no column{} {} (the input has: {available})", if missing.len() == 1 { "" } else { "s" }, missing.join(", "))]
    MissingColumns {
        /// Names not found.
        missing: Vec<String>,
        /// Names the input has, comma separated.
        available: String,
    },
    /// The executor's outputs do not match what the model's metadata promises.
    #[error("model output does not match its metadata: {0}")]
    Output(String),
    /// Two fields of a contributions struct would have one name (a feature named like
    /// another, or like the bias field).
    #[error("the contributions struct cannot have two fields named {name:?}: rename the feature (the bias field is named {bias:?})", bias = explain::BIAS)]
    FieldClash {
        /// The name.
        name: String,
    },
    /// Arrow could not convert a column.
    #[error("converting column {column:?}: {source}")]
    Cast {
        /// The column.
        column: String,
        /// The Arrow error.
        #[source]
        source: arrow::error::ArrowError,
    },
    /// The executor failed.
    #[error(transparent)]
    Exec(#[from] mle_exec::ExecError),
}

/// Result alias of this crate.
pub type Result<T, E = ArrowError> = std::result::Result<T, E>;

/// Runs `session` over Arrow columns (in feature order, bound by position and checked
/// against the model's feature kinds) and returns the output arrays.
///
/// `names` name the columns in errors.
pub fn predict_arrays(
    session: &mut mle_exec::Session,
    kind: &OutputKind,
    columns: &[ArrayRef],
    names: &[String],
    opts: mle_exec::RunOptions,
) -> Result<OutputArrays> {
    let model = session.model().clone();
    let meta = model.metadata();
    let bound = BoundColumns::bind_typed(columns, names, &Features::of(meta))?;
    let batch = bound.batch()?;
    let outputs = session.predict_batch_owned(&batch, opts)?;
    output_arrays(kind, meta, outputs)
}
