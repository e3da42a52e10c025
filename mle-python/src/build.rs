//! Writing `.mle` files from Python: the exporters describe the model as a metadata JSON, a
//! graph JSON (inputs, outputs, nodes) and numpy tensors; this module hands them to
//! `mle_format::ModelBuilder`.

use std::path::{Path, PathBuf};

use mle_format::{Metadata, ModelBuilder, Node, QuantMode, SecretKey, ValueInfo, WriteOptions};
use numpy::{Element as NpElement, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::errors::{from_format, py_err, Kind};

/// Parses a JSON value of type `T` from `field` of `doc`, naming the field on error.
fn field<T: serde::de::DeserializeOwned>(
    doc: &serde_json::Value,
    name: &str,
    what: &str,
) -> PyResult<T> {
    let v = doc
        .get(name)
        .cloned()
        .ok_or_else(|| py_err(Kind::Base, format!("{what}: missing field {name:?}")))?;
    serde_json::from_value(v)
        .map_err(|e| py_err(Kind::Base, format!("{what}: field {name:?}: {e}")))
}

/// Parses the metadata JSON.
pub fn parse_metadata(metadata_json: &str) -> PyResult<Metadata> {
    serde_json::from_str(metadata_json)
        .map_err(|e| py_err(Kind::Base, format!("metadata JSON is invalid: {e}")))
}

/// Reads an optional signing key given as a key file path or raw bytes.
pub fn signing_key(key: Option<&Bound<'_, PyAny>>) -> PyResult<Option<SecretKey>> {
    let Some(key) = key else { return Ok(None) };
    if key.is_none() {
        return Ok(None);
    }
    if let Ok(b) = key.cast::<PyBytes>() {
        return mle_format::sign::secret_key_from_bytes(b.as_bytes(), Path::new("<bytes>"))
            .map(Some)
            .map_err(from_format);
    }
    let path: PathBuf = key.extract().map_err(|_| {
        py_err(
            Kind::Security,
            "signing_key must be a key file path or the key's bytes",
        )
    })?;
    mle_format::read_secret_key(path)
        .map(Some)
        .map_err(from_format)
}

/// Write options from the Python arguments.
pub fn write_options(
    compression: Option<i32>,
    quantization: Option<&str>,
    signing_key: Option<&Bound<'_, PyAny>>,
) -> PyResult<WriteOptions> {
    let quantization = match quantization {
        None | Some("none") | Some("") => None,
        Some("fp16") => Some(QuantMode::Fp16),
        Some("int8") => Some(QuantMode::Int8),
        Some(other) => {
            return Err(py_err(
                Kind::Base,
                format!("quantization {other:?} is not supported (use None, \"fp16\" or \"int8\")"),
            ))
        }
    };
    Ok(WriteOptions {
        compression,
        quantization,
        signing_key: self::signing_key(signing_key)?,
    })
}

/// Serializes `builder`; writes it to `path` (atomically) and returns the size, or returns
/// the bytes when `path` is `None`.
pub fn finish(
    py: Python<'_>,
    builder: &ModelBuilder,
    path: Option<PathBuf>,
    opts: &WriteOptions,
) -> PyResult<Py<PyAny>> {
    let bytes = py.detach(|| builder.to_bytes(opts)).map_err(from_format)?;
    match path {
        Some(p) => {
            py.detach(|| mle_format::write_atomic(&p, &bytes))
                .map_err(from_format)?;
            Ok(bytes.len().into_pyobject(py)?.into_any().unbind())
        }
        None => Ok(PyBytes::new(py, &bytes).into_any().unbind()),
    }
}

fn add_typed<T: NpElement + mle_format::Element>(
    b: &mut ModelBuilder,
    name: &str,
    value: &Bound<'_, PyAny>,
) -> PyResult<bool> {
    let Ok(arr) = value.extract::<PyReadonlyArrayDyn<'_, T>>() else {
        return Ok(false);
    };
    let shape: Vec<u64> = arr.shape().iter().map(|&d| d as u64).collect();
    let data = arr
        .as_slice()
        .map_err(|_| py_err(Kind::Base, format!("tensor {name:?} must be C-contiguous")))?;
    b.add_tensor(name, &shape, data).map_err(from_format)?;
    Ok(true)
}

/// Builds a `.mle` model.
///
/// - `metadata_json`: the metadata section (`mle_format::Metadata` as JSON);
/// - `graph_json`: `{"inputs": [...], "outputs": [...], "nodes": [...]}` as in `docs/OPS.md`;
/// - `weights`: name → float array, stored as f32 and quantized when `quantization` is
///   `"fp16"` or `"int8"` (dense layers);
/// - `tensors`: name → array stored exactly (f64, f32, i64, i32, u32, u8, i8: tree arrays,
///   thresholds, f64 coefficients);
/// - `path`: where to write (atomically); without it the bytes are returned;
/// - `compression`: a zstd level; `signing_key`: a key file path or raw key bytes.
///
/// Returns the file size when `path` is given, else the file's bytes.
#[pyfunction]
#[pyo3(signature = (metadata_json, graph_json, weights, tensors, path=None, compression=None, quantization=None, signing_key=None))]
#[allow(clippy::too_many_arguments)]
pub fn build_model(
    py: Python<'_>,
    metadata_json: &str,
    graph_json: &str,
    weights: &Bound<'_, PyDict>,
    tensors: &Bound<'_, PyDict>,
    path: Option<PathBuf>,
    compression: Option<i32>,
    quantization: Option<&str>,
    signing_key: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyAny>> {
    let metadata = parse_metadata(metadata_json)?;
    let graph: serde_json::Value = serde_json::from_str(graph_json)
        .map_err(|e| py_err(Kind::Base, format!("graph JSON is invalid: {e}")))?;
    let inputs: Vec<ValueInfo> = field(&graph, "inputs", "graph")?;
    let outputs: Vec<ValueInfo> = field(&graph, "outputs", "graph")?;
    let nodes: Vec<Node> = field(&graph, "nodes", "graph")?;
    let mut b = ModelBuilder::new(metadata);
    b.set_inputs(inputs);
    b.set_outputs(outputs);
    for n in nodes {
        b.push_node(n);
    }
    for (k, v) in weights.iter() {
        let name: String = k.extract()?;
        let arr = v.extract::<PyReadonlyArrayDyn<'_, f32>>().map_err(|_| {
            py_err(
                Kind::Base,
                format!("weight {name:?} must be a float32 numpy array"),
            )
        })?;
        let shape: Vec<u64> = arr.shape().iter().map(|&d| d as u64).collect();
        let data = arr
            .as_slice()
            .map_err(|_| py_err(Kind::Base, format!("weight {name:?} must be C-contiguous")))?;
        b.add_weight(&name, &shape, data).map_err(from_format)?;
    }
    for (k, v) in tensors.iter() {
        let name: String = k.extract()?;
        let done = add_typed::<f64>(&mut b, &name, &v)?
            || add_typed::<f32>(&mut b, &name, &v)?
            || add_typed::<i64>(&mut b, &name, &v)?
            || add_typed::<i32>(&mut b, &name, &v)?
            || add_typed::<u32>(&mut b, &name, &v)?
            || add_typed::<u8>(&mut b, &name, &v)?
            || add_typed::<i8>(&mut b, &name, &v)?;
        if !done {
            return Err(py_err(
                Kind::Base,
                format!(
                    "tensor {name:?} must be a numpy array of f64, f32, i64, i32, u32, u8 or i8"
                ),
            ));
        }
    }
    let opts = write_options(compression, quantization, signing_key)?;
    finish(py, &b, path, &opts)
}

/// Generates an ED25519 key pair; returns `(secret_key_bytes, public_key_bytes)` (32 each).
#[pyfunction]
pub fn generate_keypair(py: Python<'_>) -> PyResult<(Py<PyBytes>, Py<PyBytes>)> {
    let key = mle_format::generate_key().map_err(from_format)?;
    let public = key.verifying_key();
    Ok((
        PyBytes::new(py, &key.to_bytes()).unbind(),
        PyBytes::new(py, public.as_bytes()).unbind(),
    ))
}
