//! ONNX models (`.onnx`, a serialized `ModelProto`) into `.mle` graphs.
//!
//! The protobuf is decoded with `prost` into the message types of [`proto`] (the subset read,
//! with the field numbers of `onnx.proto`), then each node is translated onto the operators of
//! `docs/OPS.md` with onnxruntime's semantics: `ai.onnx.ml` tree ensembles, linear models and
//! preprocessing ops; the default domain's dense layers, activations, normalizations and shape
//! ops; constant folding of shape arithmetic (`Shape → Gather → Concat → Reshape`); and the
//! `Erf` GELU and `ReduceMean`/`Pow`/`Sqrt` layer-norm decompositions fused. Anything else is
//! [`ImportError::UnsupportedOp`] naming the operator, the node and the opset. The supported
//! operators and what is refused are listed in `mle-import/ONNX.md`.
//!
//! Outputs follow `docs/OPS.md`: a classifier (a class-label output and one probability
//! output, `ZipMap` included) gives `label` + `probabilities` with the class labels in the
//! metadata; a model with one float output gives `prediction`.
//!
//! ```no_run
//! # fn main() -> Result<(), mle_import::ImportError> {
//! let builder = mle_import::onnx::import_file("model.onnx".as_ref())?;
//! builder.write("model.mle", &mle_format::WriteOptions::default())?;
//! # Ok(()) }
//! ```

pub mod dense;
pub mod graph;
pub mod ml;
pub mod proto;
pub mod tensor;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use mle_format::ModelBuilder;
use prost::Message;

use crate::error::ImportError;
use graph::{Ctx, NodeCx, Val};

/// Most nodes of a graph.
pub const MAX_NODES: usize = 1 << 20;

/// Largest model accepted (the protobuf limit).
pub const MAX_MODEL_BYTES: usize = (1 << 31) - 1;

/// Options of an import.
#[derive(Debug, Clone, Default)]
pub struct OnnxOptions {
    /// Names the source in error messages (`<memory>` when empty).
    pub name: String,
    /// The directory external tensor data is read from (`None` refuses external data).
    /// [`import_file`] sets it to the model's directory.
    pub model_dir: Option<PathBuf>,
}

impl OnnxOptions {
    /// Options naming the source.
    pub fn named(name: impl Into<String>) -> OnnxOptions {
        OnnxOptions {
            name: name.into(),
            model_dir: None,
        }
    }
}

/// Imports an ONNX model from the bytes of a serialized `ModelProto`.
pub fn import(bytes: &[u8], opts: &OnnxOptions) -> Result<ModelBuilder, ImportError> {
    let name = if opts.name.is_empty() {
        "<memory>"
    } else {
        opts.name.as_str()
    };
    if bytes.len() > MAX_MODEL_BYTES {
        return Err(ImportError::Malformed {
            name: name.to_string(),
            format: "ONNX protobuf",
            detail: format!(
                "{} bytes (protobuf messages are at most 2 GiB)",
                bytes.len()
            ),
        });
    }
    let model = proto::ModelProto::decode(bytes).map_err(|e| ImportError::Malformed {
        name: name.to_string(),
        format: "ONNX protobuf",
        detail: e.to_string(),
    })?;
    import_model(&model, name, opts.model_dir.as_deref())
}

/// Reads and imports an `.onnx` file; external tensor data is read from its directory.
pub fn import_file(path: &Path) -> Result<ModelBuilder, ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let dir = path
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                p.to_path_buf()
            }
        })
        .unwrap_or_else(|| PathBuf::from("."));
    import(
        &bytes,
        &OnnxOptions {
            name: path.display().to_string(),
            model_dir: Some(dir),
        },
    )
}

/// Imports a decoded model.
pub fn import_model(
    model: &proto::ModelProto,
    name: &str,
    model_dir: Option<&Path>,
) -> Result<ModelBuilder, ImportError> {
    let mut ctx = Ctx::new(name, model_dir);
    let g = model
        .graph
        .as_ref()
        .ok_or_else(|| ctx.invalid_at("graph", "the model has no graph"))?;
    // Opsets.
    let mut opsets: HashMap<String, i64> = HashMap::new();
    for (k, o) in model.opset_import.iter().enumerate() {
        let d = if o.domain == "ai.onnx" {
            String::new()
        } else {
            o.domain.clone()
        };
        if o.version < 1 {
            return Err(ctx.invalid_at(
                format!("opset_import[{k}]"),
                format!("version {}", o.version),
            ));
        }
        opsets.insert(d, o.version);
    }
    if model.opset_import.is_empty() {
        return Err(ctx.invalid_at("opset_import", "empty (an IR 3+ model names its opsets)"));
    }
    if g.node.len() > MAX_NODES {
        return Err(ctx.invalid_at(
            "graph.node",
            format!("{} nodes (at most {MAX_NODES})", g.node.len()),
        ));
    }
    if !g.sparse_initializer.is_empty() {
        return Err(ctx.invalid_at(
            "graph.sparse_initializer",
            "sparse initializers are not supported",
        ));
    }
    // Initializers.
    let mut init_names = HashSet::new();
    for (k, t) in g.initializer.iter().enumerate() {
        let c = tensor::decode(t, model_dir)
            .map_err(|d| ctx.invalid_at(format!("graph.initializer[{k}] ({:?})", t.name), d))?;
        if !init_names.insert(t.name.clone()) {
            return Err(ctx.invalid_at(
                format!("graph.initializer[{k}] ({:?})", t.name),
                "defined twice",
            ));
        }
        ctx.values.insert(t.name.clone(), Val::Const(c));
    }
    // The one runtime input.
    let runtime: Vec<(usize, &proto::ValueInfoProto)> = g
        .input
        .iter()
        .enumerate()
        .filter(|(_, i)| !init_names.contains(&i.name))
        .collect();
    // One float/double input `[batch, features]` is `X` itself; several inputs, or int64
    // and string ones, are columns of `X` (typed features, strings through a `Lookup`).
    let one_float = match runtime.as_slice() {
        [(_, vi)] => vi
            .r#type
            .as_ref()
            .and_then(|t| t.tensor_type.as_ref())
            .is_some_and(|t| {
                matches!(
                    t.elem_type,
                    proto::data_type::FLOAT | proto::data_type::DOUBLE
                )
            }),
        _ => false,
    };
    let input = match runtime.as_slice() {
        [(k, vi)] if one_float => {
            let (d, n) = ctx.graph_input(vi, *k)?;
            (d, n, vi.name.clone())
        }
        [] => return Err(ctx.invalid_at("graph.input", "no runtime input")),
        _ => {
            ctx.graph_inputs(&runtime)?;
            (ctx.x_dtype, ctx.columns.len(), String::new())
        }
    };
    // Fused decompositions.
    let scalars: HashMap<String, f64> = ctx
        .values
        .iter()
        .filter_map(|(k, v)| match v {
            Val::Const(c) if c.len() == 1 => c
                .to_f64()
                .and_then(|v| v.first().copied())
                .map(|x| (k.clone(), x)),
            _ => None,
        })
        .chain(
            g.node
                .iter()
                .filter(|n| n.op_type == "Constant")
                .filter_map(|n| {
                    let a = n.attribute.iter().find(|a| a.name == "value")?;
                    let c = tensor::decode(a.t.as_ref()?, None).ok()?;
                    let v = *c.to_f64()?.first().filter(|_| c.len() == 1)?;
                    Some((n.output.first()?.clone(), v))
                }),
        )
        .collect();
    let (fused, skip) = dense::find_patterns(&g.node, &|v| scalars.get(v).copied());
    let fused_at: HashMap<usize, &dense::Fused> = fused.iter().map(|f| (f.at, f)).collect();

    for (idx, n) in g.node.iter().enumerate() {
        let domain = if n.domain == "ai.onnx" {
            ""
        } else {
            n.domain.as_str()
        };
        let op = if domain.is_empty() {
            n.op_type.clone()
        } else {
            format!("{domain}:{}", n.op_type)
        };
        let opset = match opsets.get(domain) {
            Some(&v) => v,
            None => {
                return Err(ctx.invalid_at(
                    format!("graph.node[{idx}] ({:?}, {op})", n.name),
                    format!("domain {domain:?} is not in opset_import"),
                ))
            }
        };
        let nc = NodeCx { n, idx, op, opset };
        if skip.contains(&idx) {
            continue;
        }
        if let Some(f) = fused_at.get(&idx) {
            dense::emit_fused(&mut ctx, &nc, f)?;
            continue;
        }
        translate(&mut ctx, &nc, domain)?;
    }
    let producer = [
        model.producer_name.as_str(),
        model.producer_version.as_str(),
    ]
    .iter()
    .filter(|s| !s.is_empty())
    .copied()
    .collect::<Vec<_>>()
    .join(" ");
    ctx.finish(&g.output, input, producer)
}

/// Operators known to need an executor op we lack (refused with that reason).
const NO_EXECUTOR_OP: &[(&str, &str)] = &[
    ("SVMClassifier", "support-vector kernels"),
    ("SVMRegressor", "support-vector kernels"),
    (
        "TreeEnsemble",
        "ai.onnx.ml opset 5 set-membership splits and leaf tensors",
    ),
    ("DictVectorizer", "map inputs"),
    ("CastMap", "map inputs"),
    ("Log", "logarithm"),
    ("Abs", "absolute value"),
    ("Sqrt", "square root (outside a layer-norm decomposition)"),
    ("Erf", "the error function (outside a GELU decomposition)"),
    ("Pow", "power (outside a layer-norm decomposition)"),
    (
        "ReduceMean",
        "reductions (outside a layer-norm decomposition)",
    ),
];

fn translate(ctx: &mut Ctx<'_>, nc: &NodeCx<'_>, domain: &str) -> Result<(), ImportError> {
    let op = nc.n.op_type.as_str();
    match (domain, op) {
        ("ai.onnx.ml", "TreeEnsembleClassifier") => ml::tree_classifier(ctx, nc),
        ("ai.onnx.ml", "TreeEnsembleRegressor") => ml::tree_regressor(ctx, nc),
        ("ai.onnx.ml", "LinearClassifier") => ml::linear_classifier(ctx, nc),
        ("ai.onnx.ml", "LinearRegressor") => ml::linear_regressor(ctx, nc),
        ("ai.onnx.ml", "Scaler") => ml::scaler(ctx, nc),
        ("ai.onnx.ml", "Normalizer") => ml::normalizer(ctx, nc),
        ("ai.onnx.ml", "Imputer") => ml::imputer(ctx, nc),
        ("ai.onnx.ml", "Binarizer") => ml::binarizer(ctx, nc),
        ("ai.onnx.ml", "FeatureVectorizer") => ml::feature_vectorizer(ctx, nc),
        ("ai.onnx.ml", "ArrayFeatureExtractor") => ml::array_feature_extractor(ctx, nc),
        ("ai.onnx.ml", "ZipMap") => ml::zipmap(ctx, nc),
        ("ai.onnx.ml", "OneHotEncoder") => ml::one_hot_encoder(ctx, nc),
        ("ai.onnx.ml", "LabelEncoder" | "CategoryMapper") => ml::label_encoder(ctx, nc),
        ("", "Gemm") => dense::gemm(ctx, nc),
        ("", "MatMul") => dense::matmul(ctx, nc),
        ("", "Add" | "Sub" | "Mul" | "Div") => dense::binary(ctx, nc),
        ("", "Neg") => dense::neg(ctx, nc),
        ("", "Relu" | "LeakyRelu" | "Sigmoid" | "Tanh" | "Exp") => dense::unary(ctx, nc),
        ("", "Gelu") if nc.opset >= 20 => dense::unary(ctx, nc),
        ("", "Softmax" | "LogSoftmax") => dense::softmax(ctx, nc),
        ("", "LayerNormalization") if nc.opset >= 17 => dense::layer_norm(ctx, nc),
        ("", "BatchNormalization") => dense::batch_norm(ctx, nc),
        ("", "Clip") => dense::clip(ctx, nc),
        ("", "Flatten") => dense::flatten(ctx, nc),
        ("", "Reshape") if nc.opset >= 5 => dense::reshape(ctx, nc),
        ("", "Squeeze") => dense::squeeze(ctx, nc, false),
        ("", "Unsqueeze") => dense::squeeze(ctx, nc, true),
        ("", "Identity" | "Dropout") => dense::identity(ctx, nc),
        ("", "Cast") => dense::cast(ctx, nc),
        ("", "Constant") => dense::constant(ctx, nc),
        ("", "Shape") => dense::shape(ctx, nc),
        ("", "Gather") => dense::gather(ctx, nc),
        ("", "Concat") => dense::concat(ctx, nc),
        ("", "ArgMax") => dense::argmax(ctx, nc),
        _ => {
            let why = NO_EXECUTOR_OP
                .iter()
                .find(|(o, _)| *o == op)
                .map(|(_, w)| format!("the executor has no op for {w}"))
                .unwrap_or_else(|| "not supported by the importer".to_string());
            Err(ctx.unsupported(nc, why))
        }
    }
}
