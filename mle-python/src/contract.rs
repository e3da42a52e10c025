//! The format's contract constants for Python, read from `mle_format` so that the Python
//! package never restates them: the submodule `mle_runtime._native.contract` holds
//!
//! - `DEFAULT_ZSTD_LEVEL`: the zstd level of `export_model(compression=True)`;
//! - `TREE_FLAGS`: `TreeEnsemble` node flag bits by name (`LEAF`, `MISSING_LEFT`, ...,
//!   and `ALL`);
//! - `TREE_ATTRS`: `TreeEnsemble` attribute names by constant name (`N_TARGETS` →
//!   `"n_targets"`, ...);
//! - `TREE_VALUES`: the accepted values of each string attribute (`comparison` →
//!   `["lt", "le"]`, ...).
//!
//! [`register`] also adds [`crate::build::tree_ensemble`], the native `TreeEnsemble` builder.

use mle_format::tree::{attr, flags, Aggregate, CategoricalRule, Comparison, Members, Precision};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Adds the `contract` submodule and `tree_ensemble` to the extension module `m`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let c = PyModule::new(py, "contract")?;
    c.add("DEFAULT_ZSTD_LEVEL", mle_format::DEFAULT_ZSTD_LEVEL)?;
    let bits = PyDict::new(py);
    for (name, bit) in flags::NAMED {
        bits.set_item(name, bit)?;
    }
    bits.set_item("ALL", flags::ALL)?;
    c.add("TREE_FLAGS", bits)?;
    let names = PyDict::new(py);
    for (name, value) in attr::NAMED {
        names.set_item(name, value)?;
    }
    c.add("TREE_ATTRS", names)?;
    let values = PyDict::new(py);
    values.set_item(attr::COMPARISON, Comparison::VALUES.to_vec())?;
    values.set_item(attr::INPUT_PRECISION, Precision::VALUES.to_vec())?;
    values.set_item(attr::AGGREGATE, Aggregate::VALUES.to_vec())?;
    values.set_item(attr::CATEGORICAL_MEMBERS, Members::VALUES.to_vec())?;
    values.set_item(attr::CATEGORICAL_RULE, CategoricalRule::VALUES.to_vec())?;
    c.add("TREE_VALUES", values)?;
    m.add_submodule(&c)?;
    m.add_function(wrap_pyfunction!(crate::build::tree_ensemble, m)?)?;
    Ok(())
}
