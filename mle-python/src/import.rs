//! Bindings to the native importers of `mle-import`: the Python exporters serialize an
//! XGBoost booster (JSON/UBJSON) or a LightGBM booster (text model) and hand the bytes
//! here, so the tree logic lives once, in Rust.

use std::path::PathBuf;

use mle_format::{Metadata, ModelBuilder, Node};
use mle_import::ImportError;
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::build::{apply_features, finish, with_prefix, write_options};
use crate::errors::{format_kind, py_err, Kind};

/// Converts an importer error.
pub fn from_import(e: ImportError) -> PyErr {
    #[allow(unreachable_patterns)]
    let kind = match &e {
        ImportError::Malformed { .. }
        | ImportError::InvalidField { .. }
        | ImportError::UnknownFormat { .. } => Kind::Corrupted,
        ImportError::UnsupportedModel { .. } | ImportError::UnsupportedOp { .. } => {
            Kind::Unsupported
        }
        ImportError::Io { .. } => Kind::File,
        ImportError::Build(f) => format_kind(f),
        _ => Kind::Base,
    };
    py_err(kind, e.to_string())
}

/// Merges `patch` (a JSON object) into `base`: objects merge key by key, anything else
/// replaces.
fn merge(base: &mut serde_json::Value, patch: serde_json::Value) {
    match (base, patch) {
        (serde_json::Value::Object(b), serde_json::Value::Object(p)) => {
            for (k, v) in p {
                match b.get_mut(&k) {
                    Some(slot) if slot.is_object() && v.is_object() => merge(slot, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, p) => *b = p,
    }
}

/// Applies a metadata patch (JSON object) to the builder's metadata.
fn patch_metadata(b: &mut ModelBuilder, patch: Option<&str>) -> PyResult<()> {
    let Some(patch) = patch else { return Ok(()) };
    let patch: serde_json::Value = serde_json::from_str(patch)
        .map_err(|e| py_err(Kind::Base, format!("metadata patch is not JSON: {e}")))?;
    let mut doc = serde_json::to_value(&*b.metadata_mut())
        .map_err(|e| py_err(Kind::Base, format!("metadata does not serialize: {e}")))?;
    merge(&mut doc, patch);
    let meta: Metadata = serde_json::from_value(doc)
        .map_err(|e| py_err(Kind::Base, format!("patched metadata is invalid: {e}")))?;
    let n_old = b.metadata_mut().input.feature_names.len();
    if meta.input.feature_names.len() != n_old {
        return Err(py_err(
            Kind::Input,
            format!(
                "feature_names has {} names but the model takes {n_old} features",
                meta.input.feature_names.len()
            ),
        ));
    }
    *b.metadata_mut() = meta;
    Ok(())
}

/// The metadata the importer would write, as JSON (for inspection before patching).
fn metadata_json(b: &mut ModelBuilder) -> PyResult<String> {
    serde_json::to_string(&*b.metadata_mut())
        .map_err(|e| py_err(Kind::Base, format!("metadata does not serialize: {e}")))
}

/// Typed input features of an imported model: the features (see
/// [`crate::build::apply_features`]) and the nodes that turn them into the numbers the trees
/// read (graph JSON of the `Lookup` chain, reading the graph input, and the chain's output).
struct Typed<'a, 'py> {
    features: Option<&'a Bound<'py, PyList>>,
    prefix_nodes: Option<&'a str>,
    prefix_output: Option<&'a str>,
}

fn import_and_write(
    py: Python<'_>,
    builder: Result<ModelBuilder, ImportError>,
    metadata_patch: Option<&str>,
    typed: Typed<'_, '_>,
    path: Option<PathBuf>,
    opts: (Option<i32>, Option<&str>, Option<&Bound<'_, PyAny>>),
) -> PyResult<(Py<PyAny>, String)> {
    let (compression, quantization, signing_key) = opts;
    let mut b = builder.map_err(from_import)?;
    patch_metadata(&mut b, metadata_patch)?;
    match (typed.prefix_nodes, typed.prefix_output) {
        (Some(nodes), Some(out)) => {
            let nodes: Vec<Node> = serde_json::from_str(nodes)
                .map_err(|e| py_err(Kind::Base, format!("prefix nodes JSON is invalid: {e}")))?;
            if !nodes.is_empty() {
                b = with_prefix(&b, nodes, out)?;
            }
        }
        (None, None) => {}
        _ => {
            return Err(py_err(
                Kind::Base,
                "prefix_nodes and prefix_output go together",
            ))
        }
    }
    apply_features(&mut b, typed.features)?;
    let meta = metadata_json(&mut b)?;
    let opts = write_options(compression, quantization, signing_key)?;
    Ok((finish(py, &b, path, &opts)?, meta))
}

/// Imports an XGBoost model (JSON or UBJSON bytes from `Booster.save_raw`), patches its
/// metadata with `metadata_patch` (a JSON object), and writes it to `path` (or returns the
/// bytes). With `features` (typed input features, see [`crate::build::apply_features`]) and
/// `prefix_nodes` / `prefix_output` (the graph JSON of the nodes that turn them into the
/// trees' numbers, e.g. a `Lookup` chain, and its output), the imported trees read the
/// chain's output. Returns `(size_or_bytes, metadata_json)`.
#[pyfunction]
#[pyo3(signature = (data, name="<memory>", metadata_patch=None, path=None, compression=None, quantization=None, signing_key=None, features=None, prefix_nodes=None, prefix_output=None))]
#[allow(clippy::too_many_arguments)]
pub fn import_xgboost(
    py: Python<'_>,
    data: &[u8],
    name: &str,
    metadata_patch: Option<&str>,
    path: Option<PathBuf>,
    compression: Option<i32>,
    quantization: Option<&str>,
    signing_key: Option<&Bound<'_, PyAny>>,
    features: Option<&Bound<'_, PyList>>,
    prefix_nodes: Option<&str>,
    prefix_output: Option<&str>,
) -> PyResult<(Py<PyAny>, String)> {
    let builder = py.detach(|| mle_import::import_xgboost(data, name));
    let typed = Typed {
        features,
        prefix_nodes,
        prefix_output,
    };
    import_and_write(
        py,
        builder,
        metadata_patch,
        typed,
        path,
        (compression, quantization, signing_key),
    )
}

/// Imports a LightGBM text model (`Booster.model_to_string()`); otherwise as
/// [`import_xgboost`].
#[pyfunction]
#[pyo3(signature = (text, name="<memory>", metadata_patch=None, path=None, compression=None, quantization=None, signing_key=None, features=None, prefix_nodes=None, prefix_output=None))]
#[allow(clippy::too_many_arguments)]
pub fn import_lightgbm(
    py: Python<'_>,
    text: &str,
    name: &str,
    metadata_patch: Option<&str>,
    path: Option<PathBuf>,
    compression: Option<i32>,
    quantization: Option<&str>,
    signing_key: Option<&Bound<'_, PyAny>>,
    features: Option<&Bound<'_, PyList>>,
    prefix_nodes: Option<&str>,
    prefix_output: Option<&str>,
) -> PyResult<(Py<PyAny>, String)> {
    let builder = py.detach(|| mle_import::import_lightgbm(text, name));
    let typed = Typed {
        features,
        prefix_nodes,
        prefix_output,
    };
    import_and_write(
        py,
        builder,
        metadata_patch,
        typed,
        path,
        (compression, quantization, signing_key),
    )
}

/// Imports an ONNX model (the bytes of a serialized `ModelProto`; `model_dir`, when given,
/// is the directory its external tensor data is read from); otherwise as
/// [`import_xgboost`].
#[pyfunction]
#[pyo3(signature = (data, name="<memory>", metadata_patch=None, path=None, compression=None, quantization=None, signing_key=None, model_dir=None))]
#[allow(clippy::too_many_arguments)]
pub fn import_onnx(
    py: Python<'_>,
    data: &[u8],
    name: &str,
    metadata_patch: Option<&str>,
    path: Option<PathBuf>,
    compression: Option<i32>,
    quantization: Option<&str>,
    signing_key: Option<&Bound<'_, PyAny>>,
    model_dir: Option<PathBuf>,
) -> PyResult<(Py<PyAny>, String)> {
    let opts = mle_import::onnx::OnnxOptions {
        name: name.to_string(),
        model_dir,
    };
    let builder = py.detach(|| mle_import::onnx::import(data, &opts));
    let typed = Typed {
        features: None,
        prefix_nodes: None,
        prefix_output: None,
    };
    import_and_write(
        py,
        builder,
        metadata_patch,
        typed,
        path,
        (compression, quantization, signing_key),
    )
}

/// Imports a CatBoost JSON model (`save_model(format="json", pool=...)`: its categorical
/// features, when any, become category features with the pool's strings as vocabulary);
/// otherwise as [`import_xgboost`].
#[pyfunction]
#[pyo3(signature = (data, name="<memory>", metadata_patch=None, path=None, compression=None, quantization=None, signing_key=None))]
#[allow(clippy::too_many_arguments)]
pub fn import_catboost(
    py: Python<'_>,
    data: &[u8],
    name: &str,
    metadata_patch: Option<&str>,
    path: Option<PathBuf>,
    compression: Option<i32>,
    quantization: Option<&str>,
    signing_key: Option<&Bound<'_, PyAny>>,
) -> PyResult<(Py<PyAny>, String)> {
    let builder = py.detach(|| mle_import::import_catboost(data, name));
    let typed = Typed {
        features: None,
        prefix_nodes: None,
        prefix_output: None,
    };
    import_and_write(
        py,
        builder,
        metadata_patch,
        typed,
        path,
        (compression, quantization, signing_key),
    )
}
