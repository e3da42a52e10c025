//! Writing `.mle` files from Python: the exporters describe the model as a metadata JSON, a
//! graph JSON (inputs, outputs, nodes) and numpy tensors; this module hands them to
//! `mle_format::ModelBuilder`. `TreeEnsemble` nodes are built natively ([`tree_ensemble`],
//! through `mle_format::tree::TreeEnsembleSpec`) so that Python never writes their attributes.

use std::path::{Path, PathBuf};

use mle_format::tree::{
    Aggregate, CategoricalRule, CategorySets, Comparison, Members, Precision, TreeAnnotations,
    TreeArray, TreeEnsembleSpec, TreeSpecError,
};
use mle_format::{
    CategoriesRef, DType, FeatureKind, FeatureSpec, Metadata, MleFile, ModelBuilder, Node,
    QuantMode, ReadOptions, SecretKey, ValueInfo, WriteOptions,
};
use numpy::{
    Element as NpElement, PyArray1, PyReadonlyArray1, PyReadonlyArrayDyn, PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

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
/// - `features`: the typed input features (see [`apply_features`]), or `None` for a model
///   whose features are all floats (a 1.0 file).
///
/// Returns the file size when `path` is given, else the file's bytes.
#[pyfunction]
#[pyo3(signature = (metadata_json, graph_json, weights, tensors, path=None, compression=None, quantization=None, signing_key=None, features=None))]
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
    features: Option<&Bound<'_, PyList>>,
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
    apply_features(&mut b, features)?;
    let opts = write_options(compression, quantization, signing_key)?;
    finish(py, &b, path, &opts)
}

/// The kind named `kind` (`float`, `integer`, `boolean`, `string`, `category`).
fn feature_kind(kind: &str, feature: &str) -> PyResult<FeatureKind> {
    Ok(match kind {
        "float" => FeatureKind::Float,
        "integer" => FeatureKind::Integer,
        "boolean" => FeatureKind::Boolean,
        "string" => FeatureKind::String,
        "category" => FeatureKind::Category,
        other => {
            return Err(py_err(
                Kind::Base,
                format!("feature {feature:?}: unknown kind {other:?} (float, integer, boolean, string or category)"),
            ))
        }
    })
}

/// Adds a feature's vocabulary named `vocab` to `b`: a list of strings (a string vocabulary)
/// or integers / an int64 numpy array (an integer vocabulary), in code order.
fn add_vocabulary(
    b: &mut ModelBuilder,
    feature: &str,
    vocab: &str,
    categories: &Bound<'_, PyAny>,
) -> PyResult<CategoriesRef> {
    if let Ok(a) = categories.extract::<PyReadonlyArray1<'_, i64>>() {
        let values = array(&a);
        return b
            .add_integer_vocabulary(vocab, &values)
            .map_err(from_format);
    }
    let list = categories.cast::<PyList>().map_err(|_| {
        py_err(
            Kind::Base,
            format!(
                "feature {feature:?}: categories must be a list of str or int, or an int64 array"
            ),
        )
    })?;
    if list.iter().all(|c| c.is_instance_of::<PyString>()) {
        let strings: Vec<String> = list.extract()?;
        return b.add_vocabulary(vocab, &strings).map_err(from_format);
    }
    let values: Vec<i64> = list.extract().map_err(|_| {
        py_err(
            Kind::Base,
            format!("feature {feature:?}: categories must be all strings or all integers"),
        )
    })?;
    b.add_integer_vocabulary(vocab, &values)
        .map_err(from_format)
}

/// Declares the model's typed input features (`input.features`, format 1.1).
///
/// `features` is a list with one dict per feature, in column order: `name`, `kind` (`float`,
/// `integer`, `boolean`, `string`, `category`) and, for categories, `vocabulary` (the
/// vocabulary's name: its tensors are `<vocabulary>.bytes` / `<vocabulary>.offsets` for
/// strings, `<vocabulary>` for integers, which is what `Lookup` nodes reference) and
/// `categories` (the categories in code order). `None` leaves the model untyped.
pub fn apply_features(b: &mut ModelBuilder, features: Option<&Bound<'_, PyList>>) -> PyResult<()> {
    let Some(features) = features else {
        return Ok(());
    };
    let mut specs = Vec::with_capacity(features.len());
    for item in features.iter() {
        let d = item
            .cast::<PyDict>()
            .map_err(|_| py_err(Kind::Base, "each feature must be a dict"))?;
        let get = |k: &str| d.get_item(k);
        let name: String = get("name")?
            .ok_or_else(|| py_err(Kind::Base, "a feature has no name"))?
            .extract()?;
        let kind: String = get("kind")?
            .ok_or_else(|| py_err(Kind::Base, format!("feature {name:?} has no kind")))?
            .extract()?;
        let kind = feature_kind(&kind, &name)?;
        let categories = get("categories")?.filter(|c| !c.is_none());
        let spec = match (kind, categories) {
            (FeatureKind::Category, Some(cats)) => {
                let vocab: String = get("vocabulary")?
                    .ok_or_else(|| {
                        py_err(
                            Kind::Base,
                            format!("feature {name:?} has no vocabulary name"),
                        )
                    })?
                    .extract()?;
                let r = add_vocabulary(b, &name, &vocab, &cats)?;
                FeatureSpec::category(name, r)
            }
            (FeatureKind::Category, None) => {
                return Err(py_err(
                    Kind::Base,
                    format!("feature {name:?} is a category without categories"),
                ))
            }
            (kind, None) => FeatureSpec::new(name, kind),
            (kind, Some(_)) => {
                return Err(py_err(
                    Kind::Base,
                    format!("feature {name:?} of kind {kind} cannot have categories"),
                ))
            }
        };
        specs.push(spec);
    }
    b.set_input_features(specs).map_err(from_format)
}

fn copy_tensor<T: mle_format::Element>(
    b: &mut ModelBuilder,
    file: &MleFile,
    name: &str,
    shape: &[u64],
) -> PyResult<()> {
    let data = file.tensor_as::<T>(name).map_err(from_format)?;
    b.add_tensor(name, shape, data).map_err(from_format)
}

/// Puts `prefix` (nodes reading the graph input and producing `prefix_output`, e.g. the
/// `Lookup` chain of typed features) in front of an imported model's graph: the imported
/// nodes then read `prefix_output` where they read the graph input. The builder is written
/// and read back (its graph has no other accessor), so every tensor is copied exactly.
pub fn with_prefix(
    b: &ModelBuilder,
    prefix: Vec<Node>,
    prefix_output: &str,
) -> PyResult<ModelBuilder> {
    let bytes = b.to_bytes(&WriteOptions::default()).map_err(from_format)?;
    let file =
        MleFile::from_bytes(&bytes, "<import>", &ReadOptions::default()).map_err(from_format)?;
    let graph = file.graph();
    let input = match graph.inputs.as_slice() {
        [one] => one.name.clone(),
        other => {
            return Err(py_err(
                Kind::Base,
                format!(
                    "an imported graph with {} inputs cannot take typed features",
                    other.len()
                ),
            ))
        }
    };
    let mut nb = ModelBuilder::new(file.metadata().clone());
    nb.set_inputs(graph.inputs.clone());
    nb.set_outputs(graph.outputs.clone());
    for n in prefix {
        nb.push_node(n);
    }
    for n in &graph.nodes {
        let mut n = n.clone();
        for i in &mut n.inputs {
            if *i == input {
                *i = prefix_output.to_string();
            }
        }
        nb.push_node(n);
    }
    for t in &graph.tensors {
        let (name, shape) = (t.name.as_str(), t.shape.as_slice());
        match t.dtype {
            DType::F32 => copy_tensor::<f32>(&mut nb, &file, name, shape)?,
            DType::F64 => copy_tensor::<f64>(&mut nb, &file, name, shape)?,
            DType::I64 => copy_tensor::<i64>(&mut nb, &file, name, shape)?,
            DType::I32 => copy_tensor::<i32>(&mut nb, &file, name, shape)?,
            DType::U32 => copy_tensor::<u32>(&mut nb, &file, name, shape)?,
            DType::U8 => copy_tensor::<u8>(&mut nb, &file, name, shape)?,
            DType::I8 => copy_tensor::<i8>(&mut nb, &file, name, shape)?,
            DType::F16 => {
                return Err(py_err(
                    Kind::Base,
                    format!("imported tensor {name:?} is f16: it cannot be copied exactly"),
                ))
            }
        }
    }
    Ok(nb)
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

fn array<T: NpElement + Copy>(a: &PyReadonlyArray1<'_, T>) -> Vec<T> {
    a.as_array().iter().copied().collect()
}

/// Builds a `TreeEnsemble` node through `mle_format::tree::TreeEnsembleSpec` (the arrays and
/// values of `docs/OPS.md`, keyword arguments named after the attributes), validates it, and
/// returns `(node_json, tensors)`: the node as graph JSON, whose tensor attributes name
/// `{name}.feature`, `{name}.threshold`, ..., and those tensors (name → numpy array) for
/// [`build_model`]. An invalid ensemble (lengths that disagree, a child that does not point
/// forward, an undefined flag bit, an unknown `comparison` ...) is an `MLEError` naming the
/// field and the bound.
#[pyfunction]
#[pyo3(signature = (
    name, input, output, *, n_targets, leaf_dim, tree_roots, feature, threshold, left, right,
    flags, leaf_values, comparison, input_precision, aggregate, base_scores, tree_targets=None,
    tree_weights=None, cat_offsets=None, cat_bits=None, categorical_members="left",
    categorical_rule="lightgbm", node_cover=None, leaf_ids=None
))]
#[allow(clippy::too_many_arguments)]
pub fn tree_ensemble<'py>(
    py: Python<'py>,
    name: &str,
    input: &str,
    output: &str,
    n_targets: usize,
    leaf_dim: usize,
    tree_roots: PyReadonlyArray1<'py, u32>,
    feature: PyReadonlyArray1<'py, i32>,
    threshold: PyReadonlyArray1<'py, f64>,
    left: PyReadonlyArray1<'py, u32>,
    right: PyReadonlyArray1<'py, u32>,
    flags: PyReadonlyArray1<'py, u8>,
    leaf_values: PyReadonlyArray1<'py, f64>,
    comparison: &str,
    input_precision: &str,
    aggregate: &str,
    base_scores: Vec<f64>,
    tree_targets: Option<PyReadonlyArray1<'py, u32>>,
    tree_weights: Option<PyReadonlyArray1<'py, f64>>,
    cat_offsets: Option<PyReadonlyArray1<'py, u32>>,
    cat_bits: Option<PyReadonlyArray1<'py, u32>>,
    categorical_members: &str,
    categorical_rule: &str,
    node_cover: Option<PyReadonlyArray1<'py, f64>>,
    leaf_ids: Option<PyReadonlyArray1<'py, i32>>,
) -> PyResult<(String, Bound<'py, PyDict>)> {
    let spec_err = |e: TreeSpecError| py_err(Kind::Base, e.to_string());
    let categories = match (cat_offsets, cat_bits) {
        (Some(o), Some(b)) => Some(CategorySets {
            offsets: array(&o),
            bits: array(&b),
        }),
        (None, None) => None,
        _ => {
            return Err(py_err(
                Kind::Base,
                format!("TreeEnsemble {name:?}: cat_offsets and cat_bits go together (one was given without the other)"),
            ))
        }
    };
    let spec = TreeEnsembleSpec {
        n_targets,
        leaf_dim,
        roots: array(&tree_roots),
        targets: tree_targets.as_ref().map(array),
        weights: tree_weights.as_ref().map(array),
        feature: array(&feature),
        threshold: array(&threshold),
        left: array(&left),
        right: array(&right),
        flags: array(&flags),
        leaf_values: array(&leaf_values),
        comparison: Comparison::parse(comparison).map_err(spec_err)?,
        input_precision: Precision::parse(input_precision).map_err(spec_err)?,
        aggregate: Aggregate::parse(aggregate).map_err(spec_err)?,
        base_scores,
        categories,
        categorical_members: Members::parse(categorical_members).map_err(spec_err)?,
        categorical_rule: CategoricalRule::parse(categorical_rule).map_err(spec_err)?,
    };
    spec.validate_as(name).map_err(spec_err)?;
    let ann = TreeAnnotations {
        node_cover: node_cover.as_ref().map(array),
        leaf_ids: leaf_ids.as_ref().map(array),
    };
    ann.validate_as(&spec, name).map_err(spec_err)?;
    let node = ann.annotate(spec.node(name, input, output), name);
    let node = serde_json::to_string(&node)
        .map_err(|e| py_err(Kind::Base, format!("TreeEnsemble {name:?}: {e}")))?;
    let tensors = PyDict::new(py);
    for (_, suffix, data) in spec.arrays().into_iter().chain(ann.arrays()) {
        let key = format!("{name}.{suffix}");
        match data {
            TreeArray::U8(v) => tensors.set_item(key, PyArray1::from_slice(py, v))?,
            TreeArray::I32(v) => tensors.set_item(key, PyArray1::from_slice(py, v))?,
            TreeArray::U32(v) => tensors.set_item(key, PyArray1::from_slice(py, v))?,
            TreeArray::F64(v) => tensors.set_item(key, PyArray1::from_slice(py, v))?,
        }
    }
    Ok((node, tensors))
}
