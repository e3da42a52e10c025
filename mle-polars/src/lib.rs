//! # mle-polars
//!
//! The Polars expression plugin of MLE Runtime: `mle_predict` and `mle_predict_proba` score
//! `.mle` models inside Polars queries (eager, lazy and streaming), with no Python call per
//! row or per batch. Python users reach them through `mle_runtime.polars.predict(path, *exprs)`
//! and `mle_runtime.polars.predict_proba(path, *exprs)`, which register these functions with
//! `polars.plugins.register_plugin_function(..., is_elementwise=True)`.
//!
//! - Every column crosses from polars-arrow to arrow-rs through the Arrow C Data Interface
//!   ([`interop`], zero copy for a column held in one chunk), and `mle-arrow` does the rest,
//!   as for every front end: its input policy, kind by kind (integer, float and boolean
//!   columns — false = 0, true = 1 — for numeric features; `String`, `Categorical` and `Enum`
//!   columns, which cross as `Utf8View` and dictionaries, for string and category features,
//!   read in place; nulls as missing values, a literal broadcast), its output contract
//!   (classifiers recognised by the metadata's task, class labels Int64 or String,
//!   probabilities `Array(Float64, n_classes)`, regression values in the model's own Float32
//!   or Float64), and its shared model cache (regular files only, file identity re-checked,
//!   bounded). The outputs cross back the same way.
//! - A query sees one model version: the Python wrapper pins the model when the expression
//!   is built ([`pin`]) and every chunk uses that compiled model.
//! - Every failure is a Polars `ComputeError` carrying the runtime's message; panics are caught
//!   before they reach the FFI boundary.
//!
//! The `#[polars_expr]` functions export the C symbols `_polars_plugin_mle_predict`,
//! `_polars_plugin_field_mle_predict` (and the same for `mle_predict_proba`). This crate is an
//! rlib linked into the `mle_runtime._native` extension module, so the symbols ship in the
//! same shared library as the Python package's native code.

#![warn(missing_docs)]

pub mod error;
pub mod interop;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;

use arrow::array::ArrayRef;
use mle_arrow::cache::{CachedModel, ModelCache};
use mle_arrow::explain::explain_batch_array;
use mle_arrow::{output_arrays, BoundColumns, Features, OutputKind};
use mle_exec::RunOptions;
use mle_format::PublicKey;
use polars::prelude::*;
use serde::Deserialize;

pub use error::PluginError;

/// Below this many rows a chunk runs on Polars' calling thread; above it the executor splits
/// the rows over its thread pool (unless Polars says it already runs chunks in parallel).
pub const PARALLEL_MIN_ROWS: usize = 1 << 18;

/// Name of the output column when the call has no input column to take a name from.
const PREDICTION: &str = "prediction";

/// Keyword arguments of both plugin functions (pickled by the Python wrapper).
#[derive(Debug, Clone, Deserialize)]
pub struct MleKwargs {
    /// Path of the `.mle` model.
    pub model_path: String,
    /// Ed25519 public key as 64 hex characters; when set, the model must be signed by it.
    #[serde(default)]
    pub public_key: Option<String>,
    /// The model version pinned when the expression was built ([`pin`]); every chunk of
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
    /// The per-row feature contributions (`mle-arrow`'s explanation struct).
    Explain,
}

/// Parses a hex (or raw) ed25519 public key given as a plugin argument.
pub fn parse_public_key(hex: &str) -> Result<PublicKey, PluginError> {
    mle_format::sign::public_key_from_bytes(hex.as_bytes(), Path::new("<public_key argument>"))
        .map_err(|e| PluginError::PublicKey(Box::new(e)))
}

/// Pins the current version of the model at `path` in the shared cache and returns the token
/// for the plugin's `pin` argument (see `mle_arrow::ModelCache::pin`).
pub fn pin(path: &str, public_key: Option<&PublicKey>) -> Result<String, PluginError> {
    ModelCache::global()
        .pin(path, public_key)
        .map_err(|e| PluginError::from_cache(path, e))
}

fn load(kwargs: &MleKwargs) -> Result<Arc<CachedModel>, PluginError> {
    let key = kwargs
        .public_key
        .as_deref()
        .map(parse_public_key)
        .transpose()?;
    let path = &kwargs.model_path;
    let cache = ModelCache::global();
    match kwargs.pin.as_deref() {
        Some(token) => cache.get_pinned(path, key.as_ref(), token),
        None => cache.get(Path::new(path), key.as_ref()),
    }
    .map_err(|e| PluginError::from_cache(path, e))
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

/// Checks the number and dtypes of the input columns against the model's features with
/// `mle-arrow`'s input policy, kind by kind (no data needed); errors name the column by
/// position, name and Polars dtype, and the feature and its kind.
pub fn check_fields(
    model_name: &str,
    features: &Features,
    fields: &[(String, DataType)],
) -> Result<(), PluginError> {
    if fields.len() != features.len() {
        return Err(PluginError::Arity {
            model: model_name.to_string(),
            expected: features.len(),
            names: features.names().join(", "),
            got: fields.len(),
        });
    }
    for (index, ((name, dtype), feature)) in fields.iter().zip(features.iter()).enumerate() {
        let arrow = interop::arrow_type(dtype);
        let ok = arrow
            .as_ref()
            .is_some_and(|t| mle_arrow::check_column(name, feature, t).is_ok());
        if ok {
            continue;
        }
        if feature.takes_numbers() && !feature.takes_strings() {
            return Err(PluginError::NonNumeric {
                model: model_name.to_string(),
                index,
                name: name.clone(),
                dtype: dtype.to_string(),
                feature: feature.name.clone(),
                kind: feature.kind_label(),
            });
        }
        return Err(PluginError::WrongKind(Box::new(error::WrongKind {
            model: model_name.to_string(),
            index,
            name: name.clone(),
            dtype: dtype.to_string(),
            feature: feature.name.clone(),
            kind: feature.kind_label(),
            problem: feature.problem(arrow.as_ref().and_then(mle_arrow::column_class)),
            accepted: feature.accepted(),
        })));
    }
    Ok(())
}

/// The output kind of a model, for `kind` of call.
fn output_kind(cached: &CachedModel, kind: Kind) -> Result<OutputKind, PluginError> {
    let name = cached.display();
    let out = cached.output_kind().map_err(|source| PluginError::Arrow {
        model: name.to_string(),
        source: Box::new(source),
    })?;
    if kind == Kind::Proba && !out.has_probabilities() {
        return Err(PluginError::NoProbabilities {
            model: name.to_string(),
            task: format!("{:?}", cached.model().metadata().task).to_lowercase(),
        });
    }
    Ok(out)
}

/// The contributions struct type of a model (or why it cannot be explained).
fn explain_type_of(cached: &CachedModel) -> Result<arrow::datatypes::DataType, PluginError> {
    let info = cached.model().explain_info()?;
    mle_arrow::explain_type(&info).map_err(|source| PluginError::Arrow {
        model: cached.display().to_string(),
        source: Box::new(source),
    })
}

/// The output field of a call over inputs of these fields (used by Polars to plan queries).
pub fn output_field(input_fields: &[Field], kwargs: &MleKwargs, kind: Kind) -> PolarsResult<Field> {
    guarded("the mle plugin's output type", || {
        let cached = load(kwargs)?;
        let fields: Vec<(String, DataType)> = input_fields
            .iter()
            .map(|f| (f.name().to_string(), f.dtype().clone()))
            .collect();
        check_fields(
            cached.display(),
            &Features::of(cached.model().metadata()),
            &fields,
        )?;
        let arrow_type = match kind {
            Kind::Predict => Some(output_kind(&cached, kind)?.prediction_type()),
            Kind::Proba => output_kind(&cached, kind)?.probabilities_type(),
            Kind::Explain => Some(explain_type_of(&cached)?),
        };
        let dtype = match arrow_type {
            Some(t) => interop::polars_type(&t)?,
            None => return Err(PluginError::Interop("no output type".into()).into()),
        };
        let name = input_fields
            .first()
            .map(|f| f.name().clone())
            .unwrap_or_else(|| PlSmallStr::from_static(PREDICTION));
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
        let meta = model.metadata();
        let features = Features::of(meta);
        let fields: Vec<(String, DataType)> = inputs
            .iter()
            .map(|s| (s.name().to_string(), s.dtype().clone()))
            .collect();
        check_fields(name, &features, &fields)?;
        let out_kind = match kind {
            Kind::Explain => None,
            _ => Some(output_kind(&cached, kind)?),
        };
        let columns = inputs
            .iter()
            .map(interop::series_to_arrow_rs)
            .collect::<Result<Vec<ArrayRef>, PluginError>>()?;
        let names: Vec<String> = fields.into_iter().map(|(n, _)| n).collect();
        let arrow_err = |source| PluginError::Arrow {
            model: name.to_string(),
            source: Box::new(source),
        };
        let bound = BoundColumns::bind_typed(&columns, &names, &features).map_err(arrow_err)?;
        let batch = bound.batch().map_err(arrow_err)?;
        let threads = if parallel || batch.n_rows() < PARALLEL_MIN_ROWS {
            1
        } else {
            0
        };
        let out_name = inputs
            .first()
            .map(|s| s.name().clone())
            .unwrap_or_else(|| PlSmallStr::from_static(PREDICTION));
        let opts = RunOptions { threads };
        let Some(out_kind) = out_kind else {
            let array = cached
                .with_session(|session| explain_batch_array(session, &batch, opts))
                .map_err(arrow_err)?;
            return Ok(interop::arrow_rs_to_series(out_name, &array)?);
        };
        let arrays = cached.with_session(|session| -> Result<_, PluginError> {
            let outputs = session.predict_batch_owned(&batch, opts)?;
            output_arrays(&out_kind, meta, outputs).map_err(arrow_err)
        })?;
        let array = match kind {
            Kind::Predict => arrays.prediction,
            Kind::Proba | Kind::Explain => arrays
                .probabilities
                .ok_or_else(|| PluginError::Interop("no probabilities produced".into()))?,
        };
        Ok(interop::arrow_rs_to_series(out_name, &array)?)
    })
}

pub mod plugin {
    //! The C entry points Polars calls (generated by `#[polars_expr]`):
    //! `_polars_plugin_mle_predict`, `_polars_plugin_field_mle_predict`,
    //! `_polars_plugin_mle_predict_proba`, `_polars_plugin_field_mle_predict_proba`,
    //! `_polars_plugin_mle_explain`, `_polars_plugin_field_mle_explain`.
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

    fn explain_field(input_fields: &[Field], kwargs: MleKwargs) -> PolarsResult<Field> {
        output_field(input_fields, &kwargs, Kind::Explain)
    }

    #[polars_expr(output_type_func_with_kwargs = explain_field)]
    fn mle_explain(
        inputs: &[Series],
        context: CallerContext,
        kwargs: MleKwargs,
    ) -> PolarsResult<Series> {
        score(inputs, &kwargs, Kind::Explain, context.parallel())
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
