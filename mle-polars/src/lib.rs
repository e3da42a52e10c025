//! # mle-polars
//!
//! The Polars expression plugin of MLE Runtime: `mle_predict` and `mle_predict_proba` score
//! `.mle` models inside Polars queries (eager, lazy and streaming), with no Python call per
//! row or per batch. Python users reach them through `mle_runtime.polars.predict(path, *exprs)`
//! and `mle_runtime.polars.predict_proba(path, *exprs)`, which register these functions with
//! `polars.plugins.register_plugin_function(..., is_elementwise=True)`.
//!
//! - Inputs bind by position to the model's features; integer and float columns are accepted,
//!   nulls are missing values (NaN). Float32/Float64 chunks without nulls are read in place.
//! - Output dtypes come from the model: Float32/Float64 for regressors, the class label dtype
//!   (Int64 or String) for classifiers, `Array(Float32, n_classes)` for probabilities.
//! - Models are compiled once and cached by path, modification time, size and inode, and
//!   pinned per expression so that a query never mixes two versions of a file ([`cache`]).
//! - Every failure is a Polars `ComputeError` carrying the runtime's message; panics are caught
//!   before they reach the FFI boundary.
//!
//! The `#[polars_expr]` functions export the C symbols `_polars_plugin_mle_predict`,
//! `_polars_plugin_field_mle_predict` (and the same for `mle_predict_proba`). This crate is an
//! rlib linked into the `mle_runtime._native` extension module, so the symbols ship in the
//! same shared library as the Python package's native code.

#![warn(missing_docs)]

pub mod cache;
pub mod error;
pub mod input;
pub mod output;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use mle_exec::RunOptions;
use polars::prelude::*;
use serde::Deserialize;

pub use error::PluginError;

/// Below this many rows a chunk runs on Polars' calling thread; above it the executor splits
/// the rows over its thread pool (unless Polars says it already runs chunks in parallel).
pub const PARALLEL_MIN_ROWS: usize = 1 << 18;

/// Keyword arguments of both plugin functions (pickled by the Python wrapper).
#[derive(Debug, Clone, Deserialize)]
pub struct MleKwargs {
    /// Path of the `.mle` model.
    pub model_path: String,
    /// Ed25519 public key as 64 hex characters; when set, the model must be signed by it.
    #[serde(default)]
    pub public_key: Option<String>,
    /// The model version pinned when the expression was built ([`cache::pin`]); every chunk of
    /// the query then uses that model.
    #[serde(default)]
    pub pin: Option<String>,
}

/// What a call returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The prediction (regression value or class label).
    Predict,
    /// The class probabilities.
    Proba,
}

fn load(kwargs: &MleKwargs) -> Result<Arc<cache::CachedModel>, PluginError> {
    let key = kwargs
        .public_key
        .as_deref()
        .map(cache::parse_public_key)
        .transpose()?;
    match kwargs.pin.as_deref() {
        Some(token) => cache::get_pinned(&kwargs.model_path, key.as_ref(), token),
        None => cache::get(&kwargs.model_path, key.as_ref()),
    }
}

/// Runs `f`, turning a panic into a `ComputeError` naming the function (a last resort: the
/// code below reports errors as values).
fn guarded<T>(what: &str, f: impl FnOnce() -> PolarsResult<T>) -> PolarsResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(PolarsError::ComputeError(
                format!("internal error in {what}: {msg}").into(),
            ))
        }
    }
}

/// The output field of a call over inputs of these fields (used by Polars to plan queries).
pub fn output_field(input_fields: &[Field], kwargs: &MleKwargs, kind: Kind) -> PolarsResult<Field> {
    guarded("the mle plugin's output type", || {
        let cached = load(kwargs)?;
        let model = cached.model();
        let fields: Vec<(String, DataType)> = input_fields
            .iter()
            .map(|f| (f.name().to_string(), f.dtype().clone()))
            .collect();
        input::check_fields(
            cached.display(),
            &model.metadata().input.feature_names,
            &fields,
        )?;
        let dtype = match kind {
            Kind::Predict => output::predict_dtype(model, cached.display())?,
            Kind::Proba => output::proba_dtype(model, cached.display())?,
        };
        let name = input_fields
            .first()
            .map(|f| f.name().clone())
            .unwrap_or_else(|| PlSmallStr::from_static(output::PREDICTION));
        Ok(Field::new(name, dtype))
    })
}

/// Scores one chunk: `inputs` are the feature columns in the model's order. `parallel` tells
/// that Polars already runs chunks in parallel (the executor then stays on this thread).
pub fn score(
    inputs: &[Series],
    kwargs: &MleKwargs,
    kind: Kind,
    parallel: bool,
) -> PolarsResult<Series> {
    guarded("the mle plugin", || {
        let cached = load(kwargs)?;
        let model = cached.model();
        let name = cached.display();
        let prepared = input::prepare(name, &model.metadata().input.feature_names, inputs)?;
        let batch = input::batch(name, inputs, &prepared)?;
        let threads = if parallel || batch.n_rows() < PARALLEL_MIN_ROWS {
            1
        } else {
            0
        };
        let out_name = inputs
            .first()
            .map(|s| s.name().clone())
            .unwrap_or_else(|| PlSmallStr::from_static(output::PREDICTION));
        let series = cached.with_session(|session| -> Result<Series, PluginError> {
            let outputs = session.predict_batch(&batch, RunOptions { threads })?;
            match kind {
                Kind::Predict => output::predict_series(model, name, outputs, out_name),
                Kind::Proba => output::proba_series(model, name, outputs, out_name),
            }
        })?;
        Ok(series)
    })
}

pub mod plugin {
    //! The C entry points Polars calls (generated by `#[polars_expr]`):
    //! `_polars_plugin_mle_predict`, `_polars_plugin_field_mle_predict`,
    //! `_polars_plugin_mle_predict_proba`, `_polars_plugin_field_mle_predict_proba`.
    #![allow(missing_docs)]

    use polars::prelude::*;
    use pyo3_polars::derive::{polars_expr, CallerContext};

    use crate::{output_field, score, Kind, MleKwargs};

    fn predict_field(input_fields: &[Field], kwargs: MleKwargs) -> PolarsResult<Field> {
        output_field(input_fields, &kwargs, Kind::Predict)
    }

    fn predict_proba_field(input_fields: &[Field], kwargs: MleKwargs) -> PolarsResult<Field> {
        output_field(input_fields, &kwargs, Kind::Proba)
    }

    #[polars_expr(output_type_func_with_kwargs = predict_field)]
    fn mle_predict(
        inputs: &[Series],
        context: CallerContext,
        kwargs: MleKwargs,
    ) -> PolarsResult<Series> {
        score(inputs, &kwargs, Kind::Predict, context.parallel())
    }

    #[polars_expr(output_type_func_with_kwargs = predict_proba_field)]
    fn mle_predict_proba(
        inputs: &[Series],
        context: CallerContext,
        kwargs: MleKwargs,
    ) -> PolarsResult<Series> {
        score(inputs, &kwargs, Kind::Proba, context.parallel())
    }
}
