//! Lowering: each graph node becomes plan steps through the lowering function its operator
//! has in the registry ([`OPS`]), one file per operator family. Adding an operator means one
//! lowering function, one registry row, one kernel (or a composition of kernels) and one row
//! of `docs/OPS.md`.
//!
//! Attributes a node carries beyond those its operator declares are ignored (a file written by
//! a newer exporter with extra, informational attributes still loads); every declared
//! attribute is checked for its kind and value. In debug builds, reading an attribute that the
//! operator does not declare is a bug caught by an assertion, so the registry's attribute
//! lists stay the ones the code reads.

mod bucketize;
mod category_map;
mod classical;
mod dense;
mod elementwise;
mod gather;
mod lookup;
mod missing_indicator;
mod norm;
mod one_hot;
mod polynomial;
mod shape;
mod tree;

use std::collections::{HashMap, HashSet};

use mle_format::tree::attr;
use mle_format::{Attr, DType, MleFile, Node};

use super::ir::{BufId, Kernel, Step, Value, ValueId};
use super::MAX_WIDTH;
use crate::error::ExecError;
use crate::lookup::LookupStage;

/// Lowers one node (its inputs resolved in the [`Ctx`]) and returns the value it produces.
pub(crate) type Lower = fn(&mut Compiler<'_>, &Ctx<'_>) -> Result<ValueId, ExecError>;

/// One operator of the registry: its name in a graph, the attributes it reads, and its
/// lowering.
pub struct OpSpec {
    name: &'static str,
    attrs: &'static [&'static str],
    lower: Lower,
}

impl OpSpec {
    /// The operator's name as written in a graph node (`Node::op`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The attribute names the operator reads (any other attribute of a node is ignored).
    pub fn attributes(&self) -> &'static [&'static str] {
        self.attrs
    }
}

const fn op(name: &'static str, attrs: &'static [&'static str], lower: Lower) -> OpSpec {
    OpSpec { name, attrs, lower }
}

const NONE: &[&str] = &[];
const DENSE: &[&str] = &["weight", "bias", "trans_b"];
const MATMUL: &[&str] = &["weight", "bias"];
const BINARY: &[&str] = &["b"];
const TREE: &[&str] = &[
    attr::N_TARGETS,
    attr::TREE_ROOTS,
    attr::TREE_TARGETS,
    attr::TREE_WEIGHTS,
    attr::FEATURE,
    attr::THRESHOLD,
    attr::LEFT,
    attr::RIGHT,
    attr::FLAGS,
    attr::LEAF_DIM,
    attr::LEAF_VALUES,
    attr::COMPARISON,
    attr::INPUT_PRECISION,
    attr::AGGREGATE,
    attr::BASE_SCORES,
    attr::CAT_OFFSETS,
    attr::CAT_BITS,
    attr::CATEGORICAL_MEMBERS,
    attr::CATEGORICAL_RULE,
    attr::NODE_COVER,
    attr::LEAF_IDS,
];

/// Every operator the executor runs (the single list; `docs/OPS.md` documents each, and a test
/// checks that both name the same operators and attributes).
pub(crate) static OPS: &[OpSpec] = &[
    // Dense ops (f32).
    op("Gemm", DENSE, dense::lower_dense),
    op("MatMul", MATMUL, dense::lower_dense),
    op("Add", BINARY, elementwise::lower_binary),
    op("Sub", BINARY, elementwise::lower_binary),
    op("Mul", BINARY, elementwise::lower_binary),
    op("Div", BINARY, elementwise::lower_binary),
    op("Relu", NONE, elementwise::lower_activation),
    op("LeakyRelu", &["alpha"], elementwise::lower_activation),
    op("Sigmoid", NONE, elementwise::lower_activation),
    op("Tanh", NONE, elementwise::lower_activation),
    op("Gelu", &["approximate"], elementwise::lower_activation),
    op("Silu", NONE, elementwise::lower_activation),
    op("Softmax", &["axis"], norm::lower_softmax),
    op("LogSoftmax", &["axis"], norm::lower_softmax),
    op(
        "LayerNorm",
        &["weight", "bias", "epsilon"],
        norm::lower_layer_norm,
    ),
    op(
        "BatchNorm",
        &["mean", "var", "weight", "bias", "epsilon"],
        norm::lower_batch_norm,
    ),
    op("Clip", &["min", "max"], elementwise::lower_activation),
    op("Concat", &["axis"], shape::lower_concat),
    op("Flatten", NONE, shape::lower_alias),
    op("Reshape", &["shape"], shape::lower_alias),
    op("Identity", NONE, shape::lower_alias),
    op("Cast", &["to"], shape::lower_cast),
    // Classical ops (f64).
    op("Scaler", &["offset", "scale"], classical::lower_per_feature),
    op(
        "Affine",
        &["offset", "scale", "divisor", "bias"],
        classical::lower_per_feature,
    ),
    op(
        "Imputer",
        &["values", "missing"],
        classical::lower_per_feature,
    ),
    op("Normalizer", &["norm"], classical::lower_per_feature),
    op(
        "LinearModel",
        &["coef", "intercept"],
        dense::lower_linear_model,
    ),
    op("TreeEnsemble", TREE, tree::lower_tree),
    op("BinaryToProba", NONE, classical::lower_binary_to_proba),
    op("Exp", NONE, elementwise::lower_activation),
    op("Log1p", NONE, elementwise::lower_activation),
    op("Expm1", NONE, elementwise::lower_activation),
    op("ArgMax", NONE, classical::lower_argmax),
    op("Threshold", &["threshold"], classical::lower_threshold),
    // Pipeline ops (f64).
    op("Gather", &["columns"], gather::lower_gather),
    op(
        "OneHot",
        &["feature", "n_columns", "slots", "missing", "unknown"],
        one_hot::lower_one_hot,
    ),
    op(
        "CategoryMap",
        &["feature", "table", "missing", "unknown"],
        category_map::lower_category_map,
    ),
    op(
        "MissingIndicator",
        &["columns", "missing"],
        missing_indicator::lower_missing_indicator,
    ),
    op(
        "Bucketize",
        &["edges", "edge_offsets"],
        bucketize::lower_bucketize,
    ),
    op(
        "Polynomial",
        &["terms", "term_offsets"],
        polynomial::lower_polynomial,
    ),
    // Input stage.
    op(
        "Lookup",
        &[
            "feature", "bytes", "offsets", "values", "unknown", "missing",
        ],
        lookup::lower_lookup,
    ),
];

/// The registry entry of operator `name`.
pub(crate) fn lookup(name: &str) -> Option<&'static OpSpec> {
    OPS.iter().find(|s| s.name == name)
}

/// Compiler state.
pub(crate) struct Compiler<'f> {
    pub(super) file: &'f MleFile,
    pub(super) values: Vec<Value>,
    /// Per buffer: bytes per row (multiple of 8).
    pub(super) buf_units: Vec<usize>,
    pub(super) names: HashMap<String, ValueId>,
    pub(super) steps: Vec<Step>,
    pub(super) casts: HashMap<(ValueId, DType), ValueId>,
    pub(super) n_tree_steps: usize,
    /// Bytes of compile-time tables sized by value widths (broadcast maps).
    pub(super) table_bytes: usize,
    /// The budget of [`MAX_PLAN_BYTES`] for this file.
    pub(super) budget: usize,
    /// The `Lookup`s of the input stage, in chain order.
    pub(super) lookups: Vec<LookupStage>,
    /// Names of the Lookup chain: the graph input and every Lookup's output.
    pub(super) chain: HashSet<String>,
    /// The chain's last value (the graph input until a Lookup extends it).
    pub(super) chain_tail: String,
    /// (node, value) for every value of the chain read by a node other than a Lookup: each
    /// must be the chain's last value once the graph is read.
    pub(super) chain_reads: Vec<(String, String)>,
}

pub(super) fn unit_of(dtype: DType, width: usize) -> usize {
    (width * dtype.size()).div_ceil(8) * 8
}

/// A weight tensor's values and shape.
pub(super) type Weights<T> = (Vec<T>, Vec<usize>);

/// One node being lowered: its operator's registry entry, its resolved inputs, the name of its
/// output, and error helpers naming the model and the node.
pub(crate) struct Ctx<'a> {
    pub(super) model: &'a str,
    pub(super) node: &'a Node,
    pub(super) spec: &'static OpSpec,
    /// The node's inputs, resolved.
    pub(super) ins: Vec<ValueId>,
    /// The name of the node's (single) output.
    pub(super) out: &'a str,
    /// The graph input.
    pub(super) x: ValueId,
}

impl Ctx<'_> {
    pub(super) fn bad(&self, detail: impl Into<String>) -> ExecError {
        ExecError::InvalidGraph {
            model: self.model.to_string(),
            node: self.node.name.clone(),
            op: self.node.op.clone(),
            detail: detail.into(),
        }
    }

    /// Checks the number of inputs.
    pub(super) fn n_in(&self, k: usize) -> Result<(), ExecError> {
        if self.ins.len() != k {
            Err(self.bad(format!("expected {k} input(s), found {}", self.ins.len())))
        } else {
            Ok(())
        }
    }

    /// Attribute `key` of the node; `key` must be one the operator declares.
    fn attr(&self, key: &str) -> Option<&Attr> {
        debug_assert!(
            self.spec.attrs.contains(&key),
            "{} reads attribute `{key}`, which its registry entry does not declare",
            self.spec.name
        );
        self.node.attr(key)
    }

    pub(super) fn int(&self, key: &str, default: Option<i64>) -> Result<i64, ExecError> {
        match (self.attr(key), default) {
            (Some(Attr::Int(v)), _) => Ok(*v),
            (None, Some(d)) => Ok(d),
            (None, None) => Err(self.bad(format!("required attribute `{key}` (int) is missing"))),
            (Some(other), _) => Err(self.bad(format!(
                "attribute `{key}` must be an int, found {}",
                attr_kind(other)
            ))),
        }
    }

    pub(super) fn float(&self, key: &str) -> Result<Option<f64>, ExecError> {
        match self.attr(key) {
            Some(Attr::Float(v)) => Ok(Some(*v)),
            Some(Attr::Int(v)) => Ok(Some(*v as f64)),
            None => Ok(None),
            Some(other) => Err(self.bad(format!(
                "attribute `{key}` must be a float, found {}",
                attr_kind(other)
            ))),
        }
    }

    pub(super) fn string(&self, key: &str) -> Result<Option<&str>, ExecError> {
        match self.attr(key) {
            Some(Attr::Str(s)) => Ok(Some(s.as_str())),
            None => Ok(None),
            Some(other) => Err(self.bad(format!(
                "attribute `{key}` must be a string, found {}",
                attr_kind(other)
            ))),
        }
    }

    pub(super) fn ints(&self, key: &str) -> Result<Option<&[i64]>, ExecError> {
        match self.attr(key) {
            Some(Attr::Ints(v)) => Ok(Some(v.as_slice())),
            None => Ok(None),
            Some(other) => Err(self.bad(format!(
                "attribute `{key}` must be a list of ints, found {}",
                attr_kind(other)
            ))),
        }
    }

    pub(super) fn tensor_name(&self, key: &str) -> Result<Option<&str>, ExecError> {
        match self.attr(key) {
            Some(Attr::Tensor(s)) => Ok(Some(s.as_str())),
            None => Ok(None),
            Some(other) => Err(self.bad(format!(
                "attribute `{key}` must name a tensor, found {}",
                attr_kind(other)
            ))),
        }
    }

    /// A float tensor attribute as f64 with its shape (f32/f16/int8 widened exactly).
    pub(super) fn tensor_f64(
        &self,
        file: &MleFile,
        key: &str,
    ) -> Result<Option<Weights<f64>>, ExecError> {
        let Some(name) = self.tensor_name(key)? else {
            return Ok(None);
        };
        let desc = file.graph().tensor(name).ok_or_else(|| {
            self.bad(format!(
                "attribute `{key}` names tensor {name:?}, which does not exist"
            ))
        })?;
        let shape: Vec<usize> = desc.shape.iter().map(|&d| d as usize).collect();
        let data = match (desc.dtype, &desc.quantization) {
            (DType::F64, None) => file.tensor_as::<f64>(name)?.to_vec(),
            (DType::F32 | DType::F16 | DType::I8, _) => {
                file.tensor_f32(name)?.iter().map(|&x| x as f64).collect()
            }
            (dt, _) => {
                return Err(self.bad(format!(
                    "tensor {name:?} (attribute `{key}`) has dtype {dt}, expected a float tensor"
                )))
            }
        };
        Ok(Some((data, shape)))
    }

    /// A float tensor attribute as f32 (dequantized at compile time).
    pub(super) fn tensor_f32(
        &self,
        file: &MleFile,
        key: &str,
    ) -> Result<Option<Weights<f32>>, ExecError> {
        let Some(name) = self.tensor_name(key)? else {
            return Ok(None);
        };
        let desc = file.graph().tensor(name).ok_or_else(|| {
            self.bad(format!(
                "attribute `{key}` names tensor {name:?}, which does not exist"
            ))
        })?;
        if !matches!(desc.dtype, DType::F32 | DType::F64 | DType::F16 | DType::I8) {
            return Err(self.bad(format!(
                "tensor {name:?} (attribute `{key}`) has dtype {}, expected a float tensor",
                desc.dtype
            )));
        }
        let shape: Vec<usize> = desc.shape.iter().map(|&d| d as usize).collect();
        Ok(Some((file.tensor_f32(name)?.into_owned(), shape)))
    }
}

pub(super) fn attr_kind(a: &Attr) -> &'static str {
    match a {
        Attr::Int(_) => "an int",
        Attr::Float(_) => "a float",
        Attr::Str(_) => "a string",
        Attr::Ints(_) => "a list of ints",
        Attr::Floats(_) => "a list of floats",
        Attr::Strs(_) => "a list of strings",
        Attr::Tensor(_) => "a tensor reference",
    }
}

pub(super) fn is_float(dt: DType) -> bool {
    matches!(dt, DType::F32 | DType::F64)
}

/// Normalizes an axis given over the full shape `[N, dims..]` to an index into `dims`.
pub(super) fn axis_index(ctx: &Ctx<'_>, axis: i64, rank_full: usize) -> Result<usize, ExecError> {
    let r = rank_full as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a <= 0 || a >= r {
        return Err(ctx.bad(format!(
            "axis {axis} is out of range for a value of rank {rank_full} (axis 0 is the batch and cannot be used)"
        )));
    }
    Ok(a as usize - 1)
}

/// Column indices `cols` (attribute `key`) of an input with `f` columns.
pub(super) fn columns_of(
    ctx: &Ctx<'_>,
    key: &str,
    cols: &[i64],
    f: usize,
) -> Result<Vec<usize>, ExecError> {
    cols.iter()
        .map(|&j| {
            usize::try_from(j).ok().filter(|&j| j < f).ok_or_else(|| {
                ctx.bad(format!(
                    "`{key}` names column {j}, outside the {f} input columns"
                ))
            })
        })
        .collect()
}

/// Attribute `feature` of a node reading one column of an `[N, F]` input `x`.
pub(super) fn feature_of(c: &Compiler<'_>, ctx: &Ctx<'_>, x: ValueId) -> Result<usize, ExecError> {
    let dims = &c.values[x].dims;
    if dims.len() != 1 {
        return Err(ctx.bad(format!("input must have shape [N, F], found [N, {dims:?}]")));
    }
    let f = ctx.int("feature", None)?;
    Ok(columns_of(ctx, "feature", &[f], dims[0])?[0])
}

/// Offsets `raw` (attribute `key`) splitting `len` entries into `k` runs: `k + 1` monotone
/// offsets from 0 to `len`.
pub(super) fn offsets_of(
    ctx: &Ctx<'_>,
    key: &str,
    raw: &[u32],
    k: usize,
    len: usize,
) -> Result<Vec<usize>, ExecError> {
    let ok = raw.len() == k + 1
        && raw.first() == Some(&0)
        && raw.last().map(|&e| e as usize) == Some(len)
        && raw.windows(2).all(|p| p[0] <= p[1]);
    if !ok {
        return Err(ctx.bad(format!(
            "`{key}` must hold {} monotone offsets from 0 to {len}, found {} entries",
            k + 1,
            raw.len()
        )));
    }
    Ok(raw.iter().map(|&o| o as usize).collect())
}

pub(super) fn checked_width(ctx: &Ctx<'_>, dims: &[usize]) -> Result<usize, ExecError> {
    let w = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&w| w <= MAX_WIDTH)
        .ok_or_else(|| {
            ctx.bad(format!(
                "shape [N, {dims:?}] exceeds {MAX_WIDTH} elements per row"
            ))
        })?;
    Ok(w)
}

impl<'f> Compiler<'f> {
    /// A compiler for `file`'s graph with the plan budget `budget`.
    pub(super) fn new(file: &'f MleFile, budget: usize) -> Compiler<'f> {
        Compiler {
            file,
            values: Vec::new(),
            buf_units: Vec::new(),
            names: HashMap::new(),
            steps: Vec::new(),
            casts: HashMap::new(),
            n_tree_steps: 0,
            table_bytes: 0,
            budget,
            lookups: Vec::new(),
            chain: HashSet::new(),
            chain_tail: String::new(),
            chain_reads: Vec::new(),
        }
    }

    pub(super) fn new_value(
        &mut self,
        name: &str,
        dtype: DType,
        dims: Vec<usize>,
        width: usize,
    ) -> ValueId {
        let buf = self.buf_units.len();
        self.buf_units.push(unit_of(dtype, width));
        self.values.push(Value {
            name: name.to_string(),
            dtype,
            dims,
            width,
            buf,
            alias_of: None,
        });
        self.values.len() - 1
    }

    pub(super) fn new_alias(&mut self, name: &str, of: ValueId, dims: Vec<usize>) -> ValueId {
        let src = &self.values[of];
        let v = Value {
            name: name.to_string(),
            dtype: src.dtype,
            width: src.width,
            dims,
            buf: src.buf,
            alias_of: Some(of),
        };
        self.values.push(v);
        self.values.len() - 1
    }

    pub(super) fn new_scratch(&mut self, rows: usize) -> BufId {
        self.buf_units.push(rows * 8);
        self.buf_units.len() - 1
    }

    /// `v` as dtype `to`, inserting (and caching) a Cast step when needed.
    pub(super) fn coerce(&mut self, v: ValueId, to: DType) -> ValueId {
        if self.values[v].dtype == to {
            return v;
        }
        if let Some(&c) = self.casts.get(&(v, to)) {
            return c;
        }
        let name = format!("{}#{}", self.values[v].name, to.name());
        let dims = self.values[v].dims.clone();
        let width = self.values[v].width;
        let out = self.new_value(&name, to, dims, width);
        self.steps.push(Step {
            node: name,
            kernel: Kernel::Cast,
            inputs: vec![v],
            output: out,
            scratch: None,
        });
        self.casts.insert((v, to), out);
        out
    }

    pub(super) fn push(
        &mut self,
        node: &Node,
        kernel: Kernel,
        inputs: Vec<ValueId>,
        output: ValueId,
    ) {
        self.steps.push(Step {
            node: node.name.clone(),
            kernel,
            inputs,
            output,
            scratch: None,
        });
    }

    /// The dtype of input `v`, which must be f32 or f64.
    pub(super) fn float_in(&self, ctx: &Ctx<'_>, v: ValueId) -> Result<DType, ExecError> {
        let dt = self.values[v].dtype;
        if is_float(dt) {
            Ok(dt)
        } else {
            Err(ctx.bad(format!(
                "input {:?} has dtype {dt}, expected f32 or f64",
                self.values[v].name
            )))
        }
    }

    /// Lowers `node` through its operator's registry entry (`x`: the graph input).
    pub(super) fn node(&mut self, node: &Node, x: ValueId) -> Result<(), ExecError> {
        let model = self.file.name().to_string();
        let bad = |detail: String| ExecError::InvalidGraph {
            model: model.clone(),
            node: node.name.clone(),
            op: node.op.clone(),
            detail,
        };
        if node.outputs.len() != 1 {
            return Err(bad(format!(
                "expected exactly 1 output, found {}",
                node.outputs.len()
            )));
        }
        let mut ins = Vec::with_capacity(node.inputs.len());
        for name in &node.inputs {
            let v = *self.names.get(name).ok_or_else(|| {
                bad(format!(
                    "input {name:?} is not a graph input nor produced by an earlier node"
                ))
            })?;
            ins.push(v);
        }
        let out = node.outputs[0].as_str();
        if self.names.contains_key(out) {
            return Err(bad(format!("value {out:?} is produced more than once")));
        }
        let Some(spec) = lookup(&node.op) else {
            return Err(ExecError::UnsupportedOp {
                model,
                node: node.name.clone(),
                op: node.op.clone(),
            });
        };
        if spec.name != "Lookup" {
            for name in &node.inputs {
                if self.chain.contains(name) {
                    self.chain_reads.push((node.name.clone(), name.clone()));
                }
            }
        }
        let ctx = Ctx {
            model: &model,
            node,
            spec,
            ins,
            out,
            x,
        };
        let v = (spec.lower)(self, &ctx)?;
        self.names.insert(out.to_string(), v);
        Ok(())
    }
}
