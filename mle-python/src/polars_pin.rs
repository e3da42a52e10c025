//! Pinning a model for a Polars expression (see `mle_polars::pin`).

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// Loads (and compiles) the model at `path` through the shared cache, keeps it for the
/// expressions that carry the returned token, and returns the token. `public_key` is 64 hex
/// characters or `None`.
#[pyfunction]
#[pyo3(signature = (path, public_key=None))]
pub fn polars_pin(py: Python<'_>, path: &str, public_key: Option<&str>) -> PyResult<String> {
    let key = public_key
        .map(mle_polars::parse_public_key)
        .transpose()
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    py.detach(|| mle_polars::pin(path, key.as_ref()))
        .map_err(|e| PyValueError::new_err(e.to_string()))
}
