//! The translation context: values (constants, folded shapes, runtime values of our graph),
//! attribute access with typed errors, emission of `docs/OPS.md` nodes and tensors, and the
//! graph's outputs and metadata.

use std::collections::HashMap;
use std::path::Path;

use mle_format::{
    Attr, CategoriesRef, ClassLabels, DType, FeatureKind, FeatureSpec, Metadata, ModelBuilder,
    Node, Task, ValueInfo,
};

use super::proto::{attr_type as at, data_type as dt, AttributeProto, NodeProto, ValueInfoProto};
use super::tensor::{self, Const, Data};
use crate::error::ImportError;

/// One dimension of a folded shape value (`Shape` of a runtime value and what is computed from
/// it): the batch size (unknown until run time) or a known size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SDim {
    /// The batch dimension.
    Batch,
    /// A known size.
    Known(i64),
}

/// What a runtime value means for the graph's outputs.
#[derive(Debug, Clone, PartialEq)]
pub enum Role {
    /// A plain tensor.
    Plain,
    /// A class index (i64, `[N]`) whose labels are known.
    Label(ClassLabels),
    /// Class probabilities (after `ZipMap`).
    Proba,
    /// An ONNX int64 value (an encoder's integer output, exact in f64): only shape ops,
    /// `Concat` with other such values and `Cast` read it.
    Int,
}

/// A value of our graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Rt {
    /// Its name in the `.mle` graph.
    pub name: String,
    /// Its dtype there.
    pub dtype: DType,
    /// Its shape: `dims[0]` is the batch (`-1`), the others are known.
    pub dims: Vec<i64>,
    /// The ONNX element type is `double` (trees compare in f64), else `float`.
    pub onnx_f64: bool,
    /// What it is for the outputs.
    pub role: Role,
}

impl Rt {
    /// The rank.
    pub fn rank(&self) -> usize {
        self.dims.len()
    }

    /// A plain value derived from this one (same dtype and ONNX type; an int64 value stays
    /// one).
    pub fn derived(&self, name: String, dims: Vec<i64>) -> Rt {
        Rt {
            name,
            dtype: self.dtype,
            dims,
            onnx_f64: self.onnx_f64,
            role: if self.role == Role::Int {
                Role::Int
            } else {
                Role::Plain
            },
        }
    }
}

/// An ONNX value as the translation knows it.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// A constant (initializer, `Constant`, or folded).
    Const(Const),
    /// A 1-D int64 shape value (or a scalar when `scalar`) that may hold the batch size.
    Shape {
        /// The entries.
        dims: Vec<SDim>,
        /// A scalar (one entry, rank 0).
        scalar: bool,
    },
    /// A runtime value.
    Rt(Rt),
    /// A string or int64 graph input (or columns selected from such inputs), `[N, k]`: the
    /// columns `cols` of `X` before the `Lookup` input stage. Only encoders, `Concat`,
    /// `Gather` / `ArrayFeatureExtractor` (column selection), `Identity` and `Cast` read it.
    Cols {
        /// Strings or int64 values.
        kind: ColKind,
        /// The columns of `X`, in order.
        cols: Vec<usize>,
    },
}

/// The element type of [`Val::Cols`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColKind {
    /// ONNX `string`.
    Str,
    /// ONNX `int64`.
    Int,
}

/// A category of an encoder (`cats_strings` / `cats_int64s`, `keys_*`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// A string category.
    S(String),
    /// An integer category.
    I(i64),
}

/// One column of `X` in a graph with several (or non-float) inputs.
#[derive(Debug, Clone)]
pub struct InputCol {
    /// The feature name.
    pub name: String,
    /// The ONNX element type of its input (`data_type`).
    pub elem: i32,
    /// Read as a number (float/double inputs, int64 inputs through `Cast`).
    pub numeric: bool,
    /// The categories of the encoders reading it (the vocabulary of its `Lookup`).
    pub vocab: Option<Vocab>,
}

/// The vocabulary of an encoded input column.
#[derive(Debug, Clone, Default)]
pub struct Vocab {
    /// The categories, in code order.
    pub keys: Vec<Key>,
    /// The code of each category.
    pub index: HashMap<Key, usize>,
    /// An unknown category is an error (`zeros = 0`).
    pub error: bool,
}

/// Most entries of encoder tables (`OneHot` slots, `CategoryMap` rows) in one model.
pub const MAX_ENCODER_ENTRIES: usize = 1 << 24;

/// The node being translated, for messages.
pub struct NodeCx<'n> {
    /// The node.
    pub n: &'n NodeProto,
    /// Its index in `graph.node`.
    pub idx: usize,
    /// `op_type`, prefixed by the domain when not the default one.
    pub op: String,
    /// The opset version the model imports for the node's domain.
    pub opset: i64,
}

impl NodeCx<'_> {
    /// The node's name, or `#index`.
    pub fn label(&self) -> String {
        if self.n.name.is_empty() {
            format!("#{}", self.idx)
        } else {
            self.n.name.clone()
        }
    }
}

/// The translation state.
pub struct Ctx<'a> {
    /// Source name for errors.
    pub src: &'a str,
    /// Directory external tensor data may come from.
    pub model_dir: Option<&'a Path>,
    /// ONNX values by name.
    pub values: HashMap<String, Val>,
    /// The builder (metadata is set at the end).
    pub b: ModelBuilder,
    /// Counter for fresh names.
    fresh: usize,
    /// Operators that decided the model type (`TreeEnsembleClassifier`, `Gemm`, ...).
    pub model_ops: Vec<String>,
    /// The nodes emitted so far (written after the input stage by [`Ctx::finish`]).
    nodes: Vec<Node>,
    /// The columns of `X` when the graph has several (or non-float) inputs; empty for one
    /// float input `[batch, features]`.
    pub columns: Vec<InputCol>,
    /// The value that nodes read the input columns from: `X`, or the input stage's output.
    pub source: String,
    /// The dtype of `X`.
    pub x_dtype: DType,
    /// Encoder table entries so far (at most [`MAX_ENCODER_ENTRIES`]).
    encoder_entries: usize,
}

type R<T> = Result<T, ImportError>;

/// Most elements per row of a runtime value (`2^24`).
pub const MAX_ROW_ELEMENTS: i64 = 1 << 24;

/// Product of the non-batch dimensions, overflow-checked (`None` for a non-positive one).
pub fn per_row(dims: &[i64]) -> Option<i64> {
    dims.iter()
        .skip(1)
        .try_fold(1i64, |a, &d| if d >= 1 { a.checked_mul(d) } else { None })
}

impl<'a> Ctx<'a> {
    /// An empty context.
    pub fn new(src: &'a str, model_dir: Option<&'a Path>) -> Ctx<'a> {
        let meta = Metadata::new("onnx", "", Task::Regression, Vec::new(), DType::F32, &[]);
        Ctx {
            src,
            model_dir,
            values: HashMap::new(),
            b: ModelBuilder::new(meta),
            fresh: 0,
            model_ops: Vec::new(),
            nodes: Vec::new(),
            columns: Vec::new(),
            source: "X".into(),
            x_dtype: DType::F32,
            encoder_entries: 0,
        }
    }

    /// A field error at `field` (a path from the model root).
    pub fn invalid_at(&self, field: impl Into<String>, detail: impl Into<String>) -> ImportError {
        ImportError::InvalidField {
            name: self.src.to_string(),
            field: field.into(),
            detail: detail.into(),
        }
    }

    /// A field error at attribute or input `field` of node `nc`.
    pub fn invalid(&self, nc: &NodeCx<'_>, field: &str, detail: impl Into<String>) -> ImportError {
        self.invalid_at(
            format!(
                "graph.node[{}] ({:?}, {}).{field}",
                nc.idx,
                nc.label(),
                nc.op
            ),
            detail,
        )
    }

    /// The node's operator (or this use of it) cannot be expressed exactly.
    pub fn unsupported(&self, nc: &NodeCx<'_>, detail: impl Into<String>) -> ImportError {
        ImportError::UnsupportedOp {
            name: self.src.to_string(),
            op: nc.op.clone(),
            node: nc.label(),
            opset: nc.opset,
            detail: detail.into(),
        }
    }

    /// A fresh value or tensor name.
    pub fn fresh(&mut self, prefix: &str) -> String {
        self.fresh += 1;
        format!("{prefix}{}", self.fresh)
    }

    // ----- attributes -------------------------------------------------------------------

    fn attr<'n>(&self, nc: &NodeCx<'n>, key: &str) -> R<Option<&'n AttributeProto>> {
        let Some(a) = nc.n.attribute.iter().find(|a| a.name == key) else {
            return Ok(None);
        };
        if !a.ref_attr_name.is_empty() {
            return Err(self.unsupported(
                nc,
                format!("attribute {key} refers to a function attribute"),
            ));
        }
        Ok(Some(a))
    }

    fn check_type(&self, nc: &NodeCx<'_>, a: &AttributeProto, want: i32, kind: &str) -> R<()> {
        if a.r#type != 0 && a.r#type != want {
            return Err(self.invalid(
                nc,
                &a.name,
                format!("attribute type {}, expected {kind}", a.r#type),
            ));
        }
        Ok(())
    }

    /// An `INT` attribute.
    pub fn a_int(&self, nc: &NodeCx<'_>, key: &str) -> R<Option<i64>> {
        let Some(a) = self.attr(nc, key)? else {
            return Ok(None);
        };
        self.check_type(nc, a, at::INT, "INT")?;
        Ok(Some(a.i))
    }

    /// A `FLOAT` attribute.
    pub fn a_float(&self, nc: &NodeCx<'_>, key: &str) -> R<Option<f32>> {
        let Some(a) = self.attr(nc, key)? else {
            return Ok(None);
        };
        self.check_type(nc, a, at::FLOAT, "FLOAT")?;
        Ok(Some(a.f))
    }

    /// A `STRING` attribute (UTF-8).
    pub fn a_str(&self, nc: &NodeCx<'_>, key: &str) -> R<Option<String>> {
        let Some(a) = self.attr(nc, key)? else {
            return Ok(None);
        };
        self.check_type(nc, a, at::STRING, "STRING")?;
        String::from_utf8(a.s.clone())
            .map(Some)
            .map_err(|_| self.invalid(nc, key, "not UTF-8"))
    }

    /// An `INTS` attribute.
    pub fn a_ints(&self, nc: &NodeCx<'_>, key: &str) -> R<Option<Vec<i64>>> {
        let Some(a) = self.attr(nc, key)? else {
            return Ok(None);
        };
        self.check_type(nc, a, at::INTS, "INTS")?;
        Ok(Some(a.ints.clone()))
    }

    /// A `FLOATS` attribute.
    pub fn a_floats(&self, nc: &NodeCx<'_>, key: &str) -> R<Option<Vec<f32>>> {
        let Some(a) = self.attr(nc, key)? else {
            return Ok(None);
        };
        self.check_type(nc, a, at::FLOATS, "FLOATS")?;
        Ok(Some(a.floats.clone()))
    }

    /// A `STRINGS` attribute (each UTF-8).
    pub fn a_strs(&self, nc: &NodeCx<'_>, key: &str) -> R<Option<Vec<String>>> {
        let Some(a) = self.attr(nc, key)? else {
            return Ok(None);
        };
        self.check_type(nc, a, at::STRINGS, "STRINGS")?;
        let mut v = Vec::with_capacity(a.strings.len());
        for (i, s) in a.strings.iter().enumerate() {
            v.push(
                String::from_utf8(s.clone())
                    .map_err(|_| self.invalid(nc, &format!("{key}[{i}]"), "not UTF-8"))?,
            );
        }
        Ok(Some(v))
    }

    /// A `TENSOR` attribute, decoded.
    pub fn a_tensor(&self, nc: &NodeCx<'_>, key: &str) -> R<Option<Const>> {
        let Some(a) = self.attr(nc, key)? else {
            return Ok(None);
        };
        self.check_type(nc, a, at::TENSOR, "TENSOR")?;
        let t =
            a.t.as_ref()
                .ok_or_else(|| self.invalid(nc, key, "TENSOR attribute without a tensor"))?;
        tensor::decode(t, self.model_dir)
            .map(Some)
            .map_err(|d| self.invalid(nc, key, d))
    }

    /// A float list given as `key` (FLOATS) or `key_as_tensor` (a float or double tensor).
    pub fn a_float_list(&self, nc: &NodeCx<'_>, key: &str) -> R<Option<Vec<f64>>> {
        let as_tensor = format!("{key}_as_tensor");
        if let Some(t) = self.a_tensor(nc, &as_tensor)? {
            return match t.data {
                Data::F32(v) => Ok(Some(v.iter().map(|&x| f64::from(x)).collect())),
                Data::F64(v) => Ok(Some(v)),
                _ => Err(self.invalid(nc, &as_tensor, "expected a float or double tensor")),
            };
        }
        Ok(self
            .a_floats(nc, key)?
            .map(|v| v.iter().map(|&x| f64::from(x)).collect()))
    }

    // ----- values -----------------------------------------------------------------------

    /// Input `k` of the node, or `None` when absent or empty (an omitted optional input).
    pub fn opt_input(&self, nc: &NodeCx<'_>, k: usize) -> R<Option<Val>> {
        let Some(name) = nc.n.input.get(k) else {
            return Ok(None);
        };
        if name.is_empty() {
            return Ok(None);
        }
        match self.values.get(name) {
            Some(v) => Ok(Some(v.clone())),
            None => Err(self.invalid(
                nc,
                &format!("input[{k}]"),
                format!(
                    "value {name:?} is not defined by an initializer, a graph input or an \
                     earlier node (nodes must be in topological order)"
                ),
            )),
        }
    }

    /// Input `k`, required.
    pub fn input(&self, nc: &NodeCx<'_>, k: usize) -> R<Val> {
        self.opt_input(nc, k)?.ok_or_else(|| {
            self.invalid(
                nc,
                &format!("input[{k}]"),
                format!("missing (the node has {} inputs)", nc.n.input.len()),
            )
        })
    }

    /// Input `k` as a runtime value.
    pub fn rt_input(&self, nc: &NodeCx<'_>, k: usize) -> R<Rt> {
        match self.input(nc, k)? {
            Val::Rt(r) => Ok(r),
            Val::Cols { kind, .. } => Err(self.unsupported(nc, cols_use(k, kind))),
            _ => Err(self.unsupported(
                nc,
                format!("input[{k}] is a constant; only runtime inputs are supported here"),
            )),
        }
    }

    /// Input `k` as a runtime float value (not a class index).
    pub fn float_input(&self, nc: &NodeCx<'_>, k: usize) -> R<Rt> {
        let r = self.rt_input(nc, k)?;
        if r.dtype == DType::I64 || matches!(r.role, Role::Label(_)) {
            return Err(
                self.unsupported(nc, format!("input[{k}] is an integer (class index) value"))
            );
        }
        if r.role == Role::Int {
            return Err(self.unsupported(
                nc,
                format!("input[{k}] is an int64 value (read through a Cast to float)"),
            ));
        }
        Ok(r)
    }

    /// Input `k` as a constant (a shape value without the batch converts).
    pub fn const_input(&self, nc: &NodeCx<'_>, k: usize) -> R<Const> {
        self.opt_const_input(nc, k)?.ok_or_else(|| {
            self.invalid(
                nc,
                &format!("input[{k}]"),
                format!("missing (the node has {} inputs)", nc.n.input.len()),
            )
        })
    }

    /// Input `k` as a constant, or `None` when omitted.
    pub fn opt_const_input(&self, nc: &NodeCx<'_>, k: usize) -> R<Option<Const>> {
        match self.opt_input(nc, k)? {
            None => Ok(None),
            Some(Val::Const(c)) => Ok(Some(c)),
            Some(Val::Shape { dims, scalar }) => {
                shape_to_const(&dims, scalar).map(Some).ok_or_else(|| {
                    self.unsupported(
                        nc,
                        format!("input[{k}] depends on the batch size at run time"),
                    )
                })
            }
            Some(Val::Rt(_)) => Err(self.unsupported(
                nc,
                format!("input[{k}] must be a constant (an initializer or a folded value)"),
            )),
            Some(Val::Cols { kind, .. }) => Err(self.unsupported(nc, cols_use(k, kind))),
        }
    }

    /// Defines output `k` of the node.
    pub fn define(&mut self, nc: &NodeCx<'_>, k: usize, v: Val) -> R<()> {
        let Some(name) = nc.n.output.get(k) else {
            return Err(self.invalid(nc, "output", format!("has no output {k}")));
        };
        if name.is_empty() {
            return Ok(());
        }
        if let Val::Rt(r) = &v {
            if r.dims.len() > super::tensor::MAX_RANK
                || per_row(&r.dims).is_none_or(|p| p > MAX_ROW_ELEMENTS)
            {
                return Err(self.unsupported(
                    nc,
                    format!(
                        "a value of shape {:?} (at most {MAX_ROW_ELEMENTS} elements per row, rank {})",
                        r.dims,
                        super::tensor::MAX_RANK
                    ),
                ));
            }
        }
        if self.values.contains_key(name) {
            return Err(self.invalid(
                nc,
                &format!("output[{k}]"),
                format!("value {name:?} is defined twice"),
            ));
        }
        self.values.insert(name.clone(), v);
        Ok(())
    }

    /// Checks that outputs from `k` on are absent or empty names (optional outputs the
    /// translation does not produce, such as `Dropout`'s mask).
    pub fn no_outputs_from(&self, nc: &NodeCx<'_>, k: usize) -> R<()> {
        if nc.n.output.iter().skip(k).any(|o| !o.is_empty()) {
            return Err(self.unsupported(nc, format!("only the first {k} output(s) are supported")));
        }
        Ok(())
    }

    // ----- emission ---------------------------------------------------------------------

    /// Appends a node reading `inputs` and returns the name of its (fresh) output.
    pub fn emit(
        &mut self,
        nc: &NodeCx<'_>,
        op: &str,
        inputs: &[&str],
        attrs: Vec<(&str, Attr)>,
    ) -> String {
        self.emit_as(format!("{}:{op}", nc.label()), op, inputs, attrs)
    }

    /// Appends a node named `label` and returns the name of its (fresh) output.
    pub fn emit_as(
        &mut self,
        label: String,
        op: &str,
        inputs: &[&str],
        attrs: Vec<(&str, Attr)>,
    ) -> String {
        let out = self.fresh("v");
        let mut node = Node::new(label, op, inputs, &[&out]);
        for (k, v) in attrs {
            node = node.with(k, v);
        }
        self.nodes.push(node);
        out
    }

    /// Appends a node built elsewhere (a `TreeEnsemble` with its tensors).
    pub fn push(&mut self, node: Node) {
        self.nodes.push(node);
    }

    /// Adds an i32 tensor and returns its name.
    pub fn tensor_i32(&mut self, data: Vec<i32>) -> R<String> {
        let name = self.fresh("t");
        self.b.add_tensor(&name, &[data.len() as u64], &data)?;
        Ok(name)
    }

    /// Adds an f32 weight tensor and returns its name.
    pub fn weight(&mut self, shape: &[usize], data: Vec<f32>) -> R<String> {
        let name = self.fresh("w");
        let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        self.b.add_weight(&name, &shape, &data)?;
        Ok(name)
    }

    /// Adds an f64 tensor (classical ops) and returns its name.
    pub fn tensor_f64(&mut self, shape: &[usize], data: Vec<f64>) -> R<String> {
        let name = self.fresh("t");
        let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        self.b.add_tensor(&name, &shape, &data)?;
        Ok(name)
    }

    /// Adds a constant as a tensor for an op computing in `dtype`: an f32 weight for f32
    /// values, an f64 tensor otherwise.
    pub fn const_tensor(&mut self, c: &Const, dtype: DType) -> R<String> {
        let v = c
            .to_f64()
            .ok_or_else(|| self.invalid_at("constant", "a string constant in arithmetic"))?;
        if dtype == DType::F32 {
            self.weight(&c.dims, v.iter().map(|&x| x as f32).collect())
        } else {
            self.tensor_f64(&c.dims, v)
        }
    }

    // ----- inputs and outputs ------------------------------------------------------------

    /// Declares the graph input `X` from the ONNX graph input `vi`.
    pub fn graph_input(&mut self, vi: &ValueInfoProto, k: usize) -> R<(DType, usize)> {
        let field = format!("graph.input[{k}] ({:?})", vi.name);
        let tt = vi
            .r#type
            .as_ref()
            .and_then(|t| t.tensor_type.as_ref())
            .ok_or_else(|| {
                self.invalid_at(
                    &field,
                    "not a tensor (sequence, map and optional inputs are not supported)",
                )
            })?;
        let (dtype, onnx_f64) = match tt.elem_type {
            dt::FLOAT => (DType::F32, false),
            dt::DOUBLE => (DType::F64, true),
            t => {
                return Err(self.invalid_at(
                    &field,
                    format!(
                        "element type {} (only float and double inputs are supported)",
                        dt::name(t)
                    ),
                ))
            }
        };
        let dims = tt
            .shape
            .as_ref()
            .map(|s| s.dim.as_slice())
            .unwrap_or_default();
        if dims.len() != 2 {
            return Err(self.invalid_at(
                &field,
                format!("rank {} (the input must be [batch, features])", dims.len()),
            ));
        }
        let f = dims
            .get(1)
            .and_then(|d| d.dim_value)
            .filter(|&f| f >= 1 && f <= crate::ensemble::MAX_FEATURES as i64)
            .ok_or_else(|| {
                self.invalid_at(
                    &field,
                    format!(
                        "the feature dimension must be a known size in 1..={}",
                        crate::ensemble::MAX_FEATURES
                    ),
                )
            })?;
        self.values.insert(
            vi.name.clone(),
            Val::Rt(Rt {
                name: "X".into(),
                dtype,
                dims: vec![-1, f],
                onnx_f64,
                role: Role::Plain,
            }),
        );
        Ok((dtype, f as usize))
    }

    /// Declares several graph inputs (or one that is not float/double `[batch, features]`):
    /// each `[batch, k]` input becomes `k` columns of `X` (features named after the input, or
    /// `input_j`). Float and double inputs are read through a `Gather` of their columns;
    /// string and int64 inputs stay [`Val::Cols`] until an encoder or a `Cast` reads them.
    /// `X` is f64 when an input is double or int64 (exact integers), else f32.
    pub fn graph_inputs(&mut self, inputs: &[(usize, &ValueInfoProto)]) -> R<()> {
        let max = crate::ensemble::MAX_FEATURES;
        let mut decl: Vec<(String, i32, Vec<usize>)> = Vec::with_capacity(inputs.len());
        let mut wide = false;
        for &(k, vi) in inputs {
            let field = format!("graph.input[{k}] ({:?})", vi.name);
            let tt = vi
                .r#type
                .as_ref()
                .and_then(|t| t.tensor_type.as_ref())
                .ok_or_else(|| {
                    self.invalid_at(
                        &field,
                        "not a tensor (sequence, map and optional inputs are not supported)",
                    )
                })?;
            let elem = tt.elem_type;
            if !matches!(elem, dt::FLOAT | dt::DOUBLE | dt::INT64 | dt::STRING) {
                return Err(self.invalid_at(
                    &field,
                    format!(
                        "element type {} (float, double, int64 and string inputs are supported)",
                        dt::name(elem)
                    ),
                ));
            }
            wide |= matches!(elem, dt::DOUBLE | dt::INT64);
            let dims = tt
                .shape
                .as_ref()
                .map(|s| s.dim.as_slice())
                .unwrap_or_default();
            if dims.len() != 2 {
                return Err(self.invalid_at(
                    &field,
                    format!("rank {} (each input must be [batch, k])", dims.len()),
                ));
            }
            let start = self.columns.len();
            let w = dims
                .get(1)
                .and_then(|d| d.dim_value)
                .and_then(|w| usize::try_from(w).ok())
                .filter(|&w| w >= 1 && start.checked_add(w).is_some_and(|e| e <= max))
                .ok_or_else(|| {
                    self.invalid_at(
                        &field,
                        format!(
                            "the second dimension must be a known size, and all inputs at most \
                             {max} columns together"
                        ),
                    )
                })?;
            if decl.iter().any(|(n, _, _)| *n == vi.name) || vi.name.is_empty() {
                return Err(self.invalid_at(&field, "an empty or repeated input name"));
            }
            for j in 0..w {
                self.columns.push(InputCol {
                    name: if w == 1 {
                        vi.name.clone()
                    } else {
                        format!("{}_{j}", vi.name)
                    },
                    elem,
                    numeric: false,
                    vocab: None,
                });
            }
            decl.push((vi.name.clone(), elem, (start..start + w).collect()));
        }
        self.x_dtype = if wide { DType::F64 } else { DType::F32 };
        self.source = "Xc".into();
        for (name, elem, cols) in decl {
            let v = match elem {
                dt::STRING => Val::Cols {
                    kind: ColKind::Str,
                    cols,
                },
                dt::INT64 => Val::Cols {
                    kind: ColKind::Int,
                    cols,
                },
                _ => Val::Rt(self.numeric_cols(
                    format!("input:{name}"),
                    &cols,
                    elem == dt::DOUBLE,
                )?),
            };
            self.values.insert(name, v);
        }
        Ok(())
    }

    /// Reads columns of `X` as numbers (a `Gather`, then a `Cast` to f32 for an ONNX `float`
    /// value when `X` is f64). A column an encoder reads is refused.
    pub fn numeric_cols(&mut self, label: String, cols: &[usize], onnx_f64: bool) -> R<Rt> {
        for &c in cols {
            let col = self
                .columns
                .get_mut(c)
                .ok_or_else(|| ImportError::InvalidField {
                    name: self.src.to_string(),
                    field: "graph.input".into(),
                    detail: format!("column {c} out of range"),
                })?;
            if col.vocab.is_some() {
                let name = col.name.clone();
                return Err(self.invalid_at(
                    "graph.input",
                    format!("input column {name:?} is read both as numbers and by an encoder"),
                ));
            }
            col.numeric = true;
        }
        let ix: Vec<i64> = cols.iter().map(|&c| c as i64).collect();
        let src = self.source.clone();
        let mut name = self.emit_as(
            format!("{label}:Gather"),
            "Gather",
            &[&src],
            vec![("columns", Attr::Ints(ix))],
        );
        let mut dtype = self.x_dtype;
        if !onnx_f64 && dtype == DType::F64 {
            name = self.emit_as(
                format!("{label}:Cast"),
                "Cast",
                &[&name],
                vec![("to", Attr::Str("f32".into()))],
            );
            dtype = DType::F32;
        }
        Ok(Rt {
            name,
            dtype,
            dims: vec![-1, cols.len() as i64],
            onnx_f64,
            role: Role::Plain,
        })
    }

    /// Registers an encoder's categories on column `col` of `X`: they join the column's
    /// vocabulary (its `Lookup`, shared by every encoder of the column). Returns, for each code
    /// of the vocabulary so far, this encoder's position of that category (first occurrence)
    /// or -1; a code past the end is a category this encoder does not know. `error`: an
    /// unknown category is an error (onnxruntime raises), which needs the column's
    /// vocabulary to be exactly this encoder's categories.
    pub fn encode_column(
        &mut self,
        nc: &NodeCx<'_>,
        c: usize,
        cats: &[Key],
        error: bool,
    ) -> R<Vec<i32>> {
        let max = mle_format::vocab::MAX_CATEGORIES;
        let src = self.src.to_string();
        let unsupported = |detail: String| ImportError::UnsupportedOp {
            name: src.clone(),
            op: nc.op.clone(),
            node: nc.label(),
            opset: nc.opset,
            detail,
        };
        let Some(col) = self.columns.get_mut(c) else {
            return Err(unsupported(format!(
                "input column {c} is not a graph input"
            )));
        };
        if col.numeric {
            return Err(unsupported(format!(
                "input column {:?} is read both as numbers and by an encoder",
                col.name
            )));
        }
        let v = col.vocab.get_or_insert_with(|| Vocab {
            error,
            ..Vocab::default()
        });
        if v.error != error {
            return Err(unsupported(format!(
                "the encoders of input column {:?} differ in whether an unknown category is \
                 an error",
                col.name
            )));
        }
        let known = v.keys.len();
        for k in cats {
            if !v.index.contains_key(k) {
                if v.keys.len() >= max {
                    return Err(unsupported(format!(
                        "input column {:?} has more than {max} categories",
                        col.name
                    )));
                }
                v.index.insert(k.clone(), v.keys.len());
                v.keys.push(k.clone());
            }
        }
        if error && known > 0 && (v.keys.len() != known || cats_distinct(cats) != known) {
            return Err(unsupported(format!(
                "input column {:?} is read by encoders with different categories, one of \
                 them raising on unknown categories (zeros = 0)",
                col.name
            )));
        }
        // Codes past the last category of this encoder are unknown to it: the table ends there.
        let len = cats
            .iter()
            .filter_map(|k| v.index.get(k))
            .max()
            .map_or(0, |&p| p + 1);
        self.encoder_entries = self.encoder_entries.saturating_add(len);
        if self.encoder_entries > MAX_ENCODER_ENTRIES {
            return Err(unsupported(format!(
                "more than {MAX_ENCODER_ENTRIES} encoder table entries in the model"
            )));
        }
        let mut slots = vec![-1i32; len];
        for (i, k) in cats.iter().enumerate() {
            if let (Some(&p), Ok(i)) = (v.index.get(k), i32::try_from(i)) {
                if let Some(s) = slots.get_mut(p).filter(|s| **s < 0) {
                    *s = i;
                }
            }
        }
        Ok(slots)
    }

    /// The input stage and typed features of a graph with several (or non-float) inputs:
    /// one `Lookup` per encoded column, chained from `X` to [`Ctx::source`] (an `Identity`
    /// when no column is encoded).
    fn input_stage(&mut self) -> R<Vec<Node>> {
        let mut features = Vec::with_capacity(self.columns.len());
        let mut stage = Vec::new();
        let mut prev = "X".to_string();
        let cols = std::mem::take(&mut self.columns);
        let n_lookups = cols.iter().filter(|c| c.vocab.is_some()).count();
        for (j, c) in cols.iter().enumerate() {
            let Some(Vocab {
                keys: vocab, error, ..
            }) = &c.vocab
            else {
                let kind = match c.elem {
                    dt::STRING => {
                        return Err(self.invalid_at(
                            "graph.input",
                            format!(
                                "string input column {:?} is not read by an encoder \
                                 (OneHotEncoder)",
                                c.name
                            ),
                        ))
                    }
                    dt::INT64 => FeatureKind::Integer,
                    _ => FeatureKind::Float,
                };
                features.push(FeatureSpec::new(c.name.clone(), kind));
                continue;
            };
            let strs: Vec<&str> = vocab
                .iter()
                .filter_map(|k| match k {
                    Key::S(s) => Some(s.as_str()),
                    Key::I(_) => None,
                })
                .collect();
            let ints: Vec<i64> = vocab
                .iter()
                .filter_map(|k| match k {
                    Key::I(i) => Some(*i),
                    Key::S(_) => None,
                })
                .collect();
            let name = format!("vocab{j}");
            let cref = if c.elem == dt::STRING && strs.len() == vocab.len() {
                self.b.add_vocabulary(&name, &strs)?
            } else if c.elem == dt::INT64 && ints.len() == vocab.len() {
                self.b.add_integer_vocabulary(&name, &ints)?
            } else {
                return Err(self.invalid_at(
                    "graph.input",
                    format!("input column {:?}: categories of the wrong type", c.name),
                ));
            };
            let mut node = Node::new(
                format!("lookup:{}", c.name),
                "Lookup",
                &[&prev],
                &[&if stage.len() + 1 == n_lookups {
                    self.source.clone()
                } else {
                    format!("Xc{j}")
                }],
            )
            .with("feature", Attr::Int(j as i64))
            .with(
                "unknown",
                Attr::Str(if *error { "error" } else { "code" }.into()),
            );
            node = match &cref {
                CategoriesRef::String { bytes, offsets } => node
                    .with("bytes", Attr::Tensor(bytes.clone()))
                    .with("offsets", Attr::Tensor(offsets.clone())),
                CategoriesRef::Integer { values } => {
                    node.with("values", Attr::Tensor(values.clone()))
                }
            };
            prev = node.outputs.first().cloned().unwrap_or_default();
            stage.push(node);
            features.push(FeatureSpec::category(c.name.clone(), cref));
        }
        if stage.is_empty() {
            stage.push(Node::new("input", "Identity", &["X"], &[&self.source]));
        }
        self.b.set_input_features(features)?;
        self.columns = cols;
        Ok(stage)
    }

    /// Maps the ONNX graph outputs onto `label` + `probabilities` (classifiers) or
    /// `prediction`, and finishes the builder with the metadata.
    pub fn finish(
        mut self,
        outputs: &[ValueInfoProto],
        input: (DType, usize, String),
        producer: String,
    ) -> R<ModelBuilder> {
        let (in_dtype, n_features, in_name) = input;
        let mut label: Option<(Rt, ClassLabels)> = None;
        let mut floats: Vec<Rt> = Vec::new();
        for (k, o) in outputs.iter().enumerate() {
            let field = format!("graph.output[{k}] ({:?})", o.name);
            match self.values.get(&o.name) {
                None => {
                    return Err(self.invalid_at(field, "no node, initializer or input defines it"))
                }
                Some(Val::Rt(r)) => match &r.role {
                    Role::Label(l) => {
                        if label.is_some() {
                            return Err(self.invalid_at(field, "a second class-label output"));
                        }
                        label = Some((r.clone(), l.clone()));
                    }
                    _ if r.dtype == DType::I64 || r.role == Role::Int => {
                        return Err(
                            self.invalid_at(field, "an integer output that is not a class label")
                        )
                    }
                    _ => floats.push(r.clone()),
                },
                Some(Val::Cols { .. }) => {
                    return Err(self.invalid_at(
                        field,
                        "a string or int64 graph input given back as an output",
                    ))
                }
                Some(_) => {
                    return Err(self
                        .invalid_at(field, "a constant output (it does not depend on the input)"))
                }
            }
        }
        let f64v = |name: &str, shape: Vec<i64>| ValueInfo {
            name: name.to_string(),
            dtype: DType::F64,
            shape,
        };
        let (task, outs, labels) = if let Some((l, labels)) = label {
            let [p] = floats.as_slice() else {
                return Err(self.invalid_at(
                    "graph.output",
                    format!(
                        "a classifier needs exactly one probability output beside the label, found {}",
                        floats.len()
                    ),
                ));
            };
            let c = labels.len();
            if c < 2 || p.dims != [-1, c as i64] {
                return Err(self.invalid_at(
                    "graph.output",
                    format!(
                        "the probabilities have shape {:?}, expected [N, {c}] for {c} class labels",
                        p.dims
                    ),
                ));
            }
            self.nodes.push(Node::new(
                "output:label",
                "Identity",
                &[&l.name],
                &["label"],
            ));
            self.nodes.push(Node::new(
                "output:probabilities",
                "Identity",
                &[&p.name],
                &["probabilities"],
            ));
            let task = if c == 2 {
                Task::Binary
            } else {
                Task::Multiclass
            };
            (
                task,
                vec![
                    ValueInfo {
                        name: "label".into(),
                        dtype: DType::I64,
                        shape: vec![-1],
                    },
                    f64v("probabilities", vec![-1, c as i64]),
                ],
                Some(labels),
            )
        } else {
            let [p] = floats.as_slice() else {
                return Err(self.invalid_at(
                    "graph.output",
                    format!(
                        "a regressor needs exactly one float output, found {}",
                        floats.len()
                    ),
                ));
            };
            let shape = match p.dims.as_slice() {
                [_] | [_, 1] => {
                    self.nodes.push(
                        Node::new("output:prediction", "Reshape", &[&p.name], &["prediction"])
                            .with("shape", Attr::Ints(vec![-1])),
                    );
                    vec![-1]
                }
                [_, t] => {
                    self.nodes.push(Node::new(
                        "output:prediction",
                        "Identity",
                        &[&p.name],
                        &["prediction"],
                    ));
                    vec![-1, *t]
                }
                d => {
                    return Err(self.invalid_at(
                        "graph.output",
                        format!("the prediction has shape {d:?}, expected [N] or [N, T]"),
                    ))
                }
            };
            (Task::Regression, vec![f64v("prediction", shape)], None)
        };
        let general = !self.columns.is_empty();
        let feature_names = if general {
            self.columns.iter().map(|c| c.name.clone()).collect()
        } else if n_features == 1 {
            vec![in_name]
        } else {
            crate::ensemble::default_feature_names(n_features)
        };
        let out_pairs: Vec<(&str, DType)> =
            outs.iter().map(|o| (o.name.as_str(), o.dtype)).collect();
        let mut model_ops = self.model_ops.clone();
        model_ops.dedup();
        let model_type = if model_ops.is_empty() {
            "graph".to_string()
        } else {
            model_ops.join("+")
        };
        let mut meta = Metadata::new(
            "onnx",
            model_type,
            task,
            feature_names,
            in_dtype,
            &out_pairs,
        );
        meta.framework_version = producer;
        meta.exporter_version = concat!("mle-import ", env!("CARGO_PKG_VERSION")).to_string();
        if let Some(l) = labels {
            meta = meta.with_class_labels(l);
        }
        *self.b.metadata_mut() = meta;
        if general {
            for node in self.input_stage()? {
                self.b.push_node(node);
            }
        }
        for node in std::mem::take(&mut self.nodes) {
            // Non-finite float attributes (NaN `base_values`, ...) have no JSON form.
            for (key, a) in &node.attrs {
                let finite = match a {
                    Attr::Float(x) => x.is_finite(),
                    Attr::Floats(v) => v.iter().all(|x| x.is_finite()),
                    _ => true,
                };
                if !finite {
                    return Err(self.invalid_at(
                        format!("graph.node ({:?})", node.name),
                        format!("attribute {key} holds a NaN or infinite value"),
                    ));
                }
            }
            self.b.push_node(node);
        }
        self.b.set_inputs(vec![ValueInfo {
            name: "X".into(),
            dtype: in_dtype,
            shape: vec![-1, n_features as i64],
        }]);
        self.b.set_outputs(outs);
        Ok(self.b)
    }
}

fn cats_distinct(cats: &[Key]) -> usize {
    cats.iter().collect::<std::collections::HashSet<_>>().len()
}

/// Why a string/int64 input cannot be read by an operator.
pub fn cols_use(k: usize, kind: ColKind) -> String {
    let t = match kind {
        ColKind::Str => "string",
        ColKind::Int => "int64",
    };
    format!(
        "input[{k}] is a {t} graph input (read only by OneHotEncoder, LabelEncoder, \
         CategoryMapper, Concat, Gather, ArrayFeatureExtractor, Identity and Cast)"
    )
}

/// A shape value as a constant when it holds no batch entry.
pub fn shape_to_const(dims: &[SDim], scalar: bool) -> Option<Const> {
    let mut v = Vec::with_capacity(dims.len());
    for d in dims {
        match d {
            SDim::Known(x) => v.push(*x),
            SDim::Batch => return None,
        }
    }
    let shape = if scalar { vec![] } else { vec![v.len()] };
    Some(Const::ints(shape, v))
}

/// Class labels from `classlabels_int64s` / `classlabels_strings` (or their `_ints` spelling).
pub fn class_labels(ctx: &Ctx<'_>, nc: &NodeCx<'_>, ints_key: &str) -> R<ClassLabels> {
    let ints = ctx.a_ints(nc, ints_key)?.filter(|v| !v.is_empty());
    let strs = ctx
        .a_strs(nc, "classlabels_strings")?
        .filter(|v| !v.is_empty());
    match (ints, strs) {
        (Some(i), None) => Ok(ClassLabels::Int(i)),
        (None, Some(s)) => Ok(ClassLabels::Str(s)),
        (Some(_), Some(_)) => Err(ctx.invalid(
            nc,
            ints_key,
            "both integer and string class labels are given",
        )),
        (None, None) => Err(ctx.invalid(
            nc,
            ints_key,
            format!("no class labels ({ints_key} or classlabels_strings)"),
        )),
    }
}
