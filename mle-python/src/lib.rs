//! # mle-python
//!
//! The PyO3 extension module `mle_runtime._native` behind the `mle_runtime` Python package.
//! It is thin on purpose: the exporters (model introspection) are Python, and everything that
//! touches bytes or runs a model is Rust:
//!
//! - [`runtime::Runtime`]: a model from `mle-arrow`'s shared cache (the one every front end
//!   in the process uses) with its session pool; runs C-contiguous f32/f64 numpy matrices
//!   without copying them, with the GIL released (from 64 rows; smaller batches keep it,
//!   which is cheaper), and returns outputs under `mle-arrow`'s output contract (class labels,
//!   float64 probabilities);
//! - [`build::build_model`]: writes a `.mle` file from a metadata JSON, a graph JSON and numpy
//!   tensors through `mle_format::ModelBuilder`;
//! - [`import`]: the native XGBoost / LightGBM / ONNX / CatBoost importers of `mle-import`;
//! - [`datafusion`] (feature `datafusion`): `mle-sql`'s UDFs as datafusion-ffi objects for
//!   datafusion-python (`mle_runtime.datafusion.register`);
//! - [`errors`]: maps every Rust error to the Python exception classes of `mle_runtime.errors`.
//!
//! The module is laid out by concern so that the Polars expression plugin (a later issue) can
//! join the same cdylib as its own module without touching these files.

#![warn(missing_docs)]

pub mod arrow_input;
pub mod build;
pub mod contract;
#[cfg(feature = "datafusion")]
pub mod datafusion;
pub mod errors;
pub mod import;
#[cfg(feature = "polars")]
pub mod polars_pin;
pub mod runtime;

/// The Polars expression plugin: linked here so its `_polars_plugin_*` C symbols are exported
/// from this same shared library (`mle_runtime.polars` registers them).
#[cfg(feature = "polars")]
pub use mle_polars;

use pyo3::prelude::*;

/// The `mle_runtime._native` module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<runtime::Runtime>()?;
    m.add_function(wrap_pyfunction!(build::build_model, m)?)?;
    m.add_function(wrap_pyfunction!(build::generate_keypair, m)?)?;
    m.add_function(wrap_pyfunction!(import::import_xgboost, m)?)?;
    m.add_function(wrap_pyfunction!(import::import_lightgbm, m)?)?;
    m.add_function(wrap_pyfunction!(import::import_onnx, m)?)?;
    m.add_function(wrap_pyfunction!(import::import_catboost, m)?)?;
    contract::register(m)?;
    #[cfg(feature = "datafusion")]
    datafusion::register(m)?;
    #[cfg(feature = "polars")]
    m.add_function(wrap_pyfunction!(polars_pin::polars_pin, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
