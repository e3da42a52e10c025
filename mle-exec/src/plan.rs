//! Compiling a graph into a [`Plan`]: validation, shape and dtype inference, trivial constant
//! folding, fusion, dead-step elimination and the memory plan.
//!
//! Runtime values live **feature-major** in the arena: a value of shape `[N, d1, .., dk]` for a
//! chunk of `n` rows is stored as `width = d1·..·dk` rows of `n` contiguous elements, element
//! `(r, j)` (`j` the flat non-batch index) at `j·n + r`. Columnar input is copied per column
//! without a transpose, dense layers are `Y[M, n] = W[M, K] · X[K, n]`, and per-feature
//! operations run over contiguous memory.

use std::collections::HashMap;

use mle_format::{Attr, DType, MleFile, Node};

use crate::error::ExecError;
use crate::kernels::Packed;
use crate::memory::{plan_offsets, Buffer};
use crate::tree::TreeEnsemble;
use crate::OutputInfo;

/// Largest number of elements per row of one runtime value.
pub(crate) const MAX_WIDTH: usize = 1 << 24;
/// Rows per chunk of the batch path (at most). The arena holds a chunk feature-major, one
/// feature every `chunk rows` values: 512 rows of f64 put a row's features 4 KiB apart, where
/// the stores of the row-major → feature-major transpose alias the loads (4K aliasing) and
/// share L1 sets. 496 = 31 × 16 keeps the GEMM's 16-row panels whole.
pub(crate) const CHUNK_ROWS: usize = 496;
/// Largest arena of one chunk, in bytes; wide models get shorter chunks.
const MAX_CHUNK_BYTES: usize = 32 << 20;
/// Memory a plan may ask for beyond what the file pays for: the bytes of one row (arena, tree
/// staging and outputs) plus the compile-time broadcast maps must stay within
/// `MAX_PLAN_BYTES + PLAN_BYTES_PER_FILE_BYTE × file size`. Without it a few KiB of graph JSON
/// (concatenations fanned out to many outputs, outer-product broadcasts) could ask for
/// gigabytes on the first prediction.
pub const MAX_PLAN_BYTES: usize = 64 << 20;
/// See [`MAX_PLAN_BYTES`].
pub const PLAN_BYTES_PER_FILE_BYTE: usize = 16;

pub(crate) type ValueId = usize;
pub(crate) type BufId = usize;

/// A runtime value.
#[derive(Debug, Clone)]
pub(crate) struct Value {
    pub name: String,
    /// F32, F64 or I64.
    pub dtype: DType,
    /// Non-batch dimensions.
    pub dims: Vec<usize>,
    /// Product of `dims`.
    pub width: usize,
    /// The arena buffer holding it (aliases share their source's buffer).
    pub buf: BufId,
    /// Set for Identity/Reshape/Flatten/same-dtype Cast: the value shares `alias_of`'s buffer.
    pub alias_of: Option<ValueId>,
}

/// Elementwise activation (also fused into a dense layer's epilogue).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Act {
    None,
    Relu,
    LeakyRelu(f64),
    Sigmoid,
    Tanh,
    GeluErf,
    GeluTanh,
    Silu,
    Clip(f64, f64),
    Exp,
}

/// Elementwise binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
}

/// An operand of a binary op: a runtime value or a constant tensor (values as f64).
#[derive(Debug, Clone)]
pub(crate) enum Operand {
    Value(ValueId),
    Const(Vec<f64>),
}

/// Weights of a dense layer in the layout of the kernel: `w` is `[m, k]` row-major.
#[derive(Debug, Clone)]
pub(crate) struct Dense<T> {
    pub w: Vec<T>,
    pub bias: Option<Vec<T>>,
    pub m: usize,
    pub k: usize,
    /// Independent `[k, n]` blocks (inputs of rank > 2 multiply over the last axis).
    pub groups: usize,
    pub act: Act,
    /// The weights and bias pre-packed for the AVX2+FMA kernels (f32 layers on a CPU with
    /// both; set after fusion, so it includes fused biases).
    pub packed: Option<Box<Packed>>,
}

/// `l1`, `l2` or `max` row norm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Norm {
    L1,
    L2,
    Max,
}

/// A kernel with its compiled parameters.
pub(crate) enum Kernel {
    DenseF32(Dense<f32>),
    DenseF64(Dense<f64>),
    Binary {
        op: BinOp,
        a: Operand,
        b: Operand,
        /// For each output flat index: the flat index into `a` and into `b`.
        map: Vec<(u32, u32)>,
    },
    Unary(Act),
    Softmax {
        outer: usize,
        len: usize,
        inner: usize,
        log: bool,
    },
    LayerNorm {
        outer: usize,
        len: usize,
        weight: Option<Vec<f64>>,
        bias: Option<Vec<f64>>,
        eps: f64,
    },
    /// `y = x·scale[c] + shift[c]` per channel `c` (inference batch norm).
    ChannelAffine {
        channels: usize,
        inner: usize,
        scale: Vec<f64>,
        shift: Vec<f64>,
    },
    Concat {
        outer: usize,
        /// Per input: elements per row of one outer block.
        blocks: Vec<usize>,
    },
    Cast,
    Scaler {
        offset: Vec<f64>,
        scale: Vec<f64>,
    },
    Imputer {
        values: Vec<f64>,
        missing: f64,
    },
    Normalizer(Norm),
    Tree {
        ens: Box<TreeEnsemble>,
        /// Index of this tree step among the plan's tree steps (for per-thread scratch).
        slot: usize,
        /// Reads the batch itself (the graph input) instead of an arena value.
        from_input: bool,
    },
    BinaryToProba,
    ArgMax {
        classes: usize,
    },
    Threshold(f64),
}

/// One step of the plan.
pub(crate) struct Step {
    /// The node it came from (diagnostics).
    #[allow(dead_code)]
    pub node: String,
    pub kernel: Kernel,
    pub inputs: Vec<ValueId>,
    pub output: ValueId,
    /// Per-step scratch buffer (row vectors of f64 size).
    pub scratch: Option<BufId>,
}

/// A compiled model.
pub(crate) struct Plan {
    pub n_features: usize,
    /// The graph input value.
    pub x: ValueId,
    /// Whether `x` must be gathered into the arena (some non-tree step or output reads it).
    pub gather_x: bool,
    pub values: Vec<Value>,
    pub steps: Vec<Step>,
    /// Per graph output: the value holding it.
    pub outputs: Vec<ValueId>,
    pub infos: Vec<OutputInfo>,
    /// Per buffer: offset in bytes-per-row units (`offset_bytes = off · n`), or `None` if unused.
    pub buf_off: Vec<Option<usize>>,
    /// Arena bytes per row.
    pub arena_per_row: usize,
    /// Rows per chunk of the batch path.
    pub chunk_rows: usize,
    /// Number of tree steps.
    pub n_tree_steps: usize,
    /// Largest `n_targets` of a tree step reading... (row-major temp, per row).
    pub tree_tmp_per_row: usize,
}

/// Compiler state.
struct Compiler<'f> {
    file: &'f MleFile,
    values: Vec<Value>,
    /// Per buffer: bytes per row (multiple of 8).
    buf_units: Vec<usize>,
    names: HashMap<String, ValueId>,
    steps: Vec<Step>,
    casts: HashMap<(ValueId, DType), ValueId>,
    n_tree_steps: usize,
    /// Bytes of compile-time tables sized by value widths (broadcast maps).
    table_bytes: usize,
    /// The budget of [`MAX_PLAN_BYTES`] for this file.
    budget: usize,
}

fn unit_of(dtype: DType, width: usize) -> usize {
    (width * dtype.size()).div_ceil(8) * 8
}

/// A weight tensor's values and shape.
type Weights<T> = (Vec<T>, Vec<usize>);

/// Error helpers bound to a node.
struct Ctx<'a> {
    model: &'a str,
    node: &'a Node,
}

impl Ctx<'_> {
    fn bad(&self, detail: impl Into<String>) -> ExecError {
        ExecError::InvalidGraph {
            model: self.model.to_string(),
            node: self.node.name.clone(),
            op: self.node.op.clone(),
            detail: detail.into(),
        }
    }

    fn int(&self, key: &str, default: Option<i64>) -> Result<i64, ExecError> {
        match (self.node.attr(key), default) {
            (Some(Attr::Int(v)), _) => Ok(*v),
            (None, Some(d)) => Ok(d),
            (None, None) => Err(self.bad(format!("required attribute `{key}` (int) is missing"))),
            (Some(other), _) => Err(self.bad(format!(
                "attribute `{key}` must be an int, found {}",
                attr_kind(other)
            ))),
        }
    }

    fn float(&self, key: &str) -> Result<Option<f64>, ExecError> {
        match self.node.attr(key) {
            Some(Attr::Float(v)) => Ok(Some(*v)),
            Some(Attr::Int(v)) => Ok(Some(*v as f64)),
            None => Ok(None),
            Some(other) => Err(self.bad(format!(
                "attribute `{key}` must be a float, found {}",
                attr_kind(other)
            ))),
        }
    }

    fn string(&self, key: &str) -> Result<Option<&str>, ExecError> {
        match self.node.attr(key) {
            Some(Attr::Str(s)) => Ok(Some(s.as_str())),
            None => Ok(None),
            Some(other) => Err(self.bad(format!(
                "attribute `{key}` must be a string, found {}",
                attr_kind(other)
            ))),
        }
    }

    fn ints(&self, key: &str) -> Result<Option<&[i64]>, ExecError> {
        match self.node.attr(key) {
            Some(Attr::Ints(v)) => Ok(Some(v.as_slice())),
            None => Ok(None),
            Some(other) => Err(self.bad(format!(
                "attribute `{key}` must be a list of ints, found {}",
                attr_kind(other)
            ))),
        }
    }

    fn tensor_name(&self, key: &str) -> Result<Option<&str>, ExecError> {
        match self.node.attr(key) {
            Some(Attr::Tensor(s)) => Ok(Some(s.as_str())),
            None => Ok(None),
            Some(other) => Err(self.bad(format!(
                "attribute `{key}` must name a tensor, found {}",
                attr_kind(other)
            ))),
        }
    }

    /// A float tensor attribute as f64 with its shape (f32/f16/int8 widened exactly).
    fn tensor_f64(&self, file: &MleFile, key: &str) -> Result<Option<Weights<f64>>, ExecError> {
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
    fn tensor_f32(&self, file: &MleFile, key: &str) -> Result<Option<Weights<f32>>, ExecError> {
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

fn attr_kind(a: &Attr) -> &'static str {
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

fn is_float(dt: DType) -> bool {
    matches!(dt, DType::F32 | DType::F64)
}

/// Normalizes an axis given over the full shape `[N, dims..]` to an index into `dims`.
fn axis_index(ctx: &Ctx<'_>, axis: i64, rank_full: usize) -> Result<usize, ExecError> {
    let r = rank_full as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a <= 0 || a >= r {
        return Err(ctx.bad(format!(
            "axis {axis} is out of range for a value of rank {rank_full} (axis 0 is the batch and cannot be used)"
        )));
    }
    Ok(a as usize - 1)
}

fn checked_width(ctx: &Ctx<'_>, dims: &[usize]) -> Result<usize, ExecError> {
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
    fn new_value(&mut self, name: &str, dtype: DType, dims: Vec<usize>, width: usize) -> ValueId {
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

    fn new_alias(&mut self, name: &str, of: ValueId, dims: Vec<usize>) -> ValueId {
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

    fn new_scratch(&mut self, rows: usize) -> BufId {
        self.buf_units.push(rows * 8);
        self.buf_units.len() - 1
    }

    /// `v` as dtype `to`, inserting (and caching) a Cast step when needed.
    fn coerce(&mut self, v: ValueId, to: DType) -> ValueId {
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

    fn push(&mut self, node: &Node, kernel: Kernel, inputs: Vec<ValueId>, output: ValueId) {
        self.steps.push(Step {
            node: node.name.clone(),
            kernel,
            inputs,
            output,
            scratch: None,
        });
    }

    fn node(&mut self, node: &Node, x: ValueId) -> Result<(), ExecError> {
        let model = self.file.name().to_string();
        let ctx = Ctx {
            model: &model,
            node,
        };
        if node.outputs.len() != 1 {
            return Err(ctx.bad(format!(
                "expected exactly 1 output, found {}",
                node.outputs.len()
            )));
        }
        let mut ins = Vec::with_capacity(node.inputs.len());
        for name in &node.inputs {
            let v = *self.names.get(name).ok_or_else(|| {
                ctx.bad(format!(
                    "input {name:?} is not a graph input nor produced by an earlier node"
                ))
            })?;
            ins.push(v);
        }
        let out_name = node.outputs[0].as_str();
        if self.names.contains_key(out_name) {
            return Err(ctx.bad(format!("value {out_name:?} is produced more than once")));
        }
        let n_in = |k: usize| -> Result<(), ExecError> {
            if ins.len() != k {
                Err(ctx.bad(format!("expected {k} input(s), found {}", ins.len())))
            } else {
                Ok(())
            }
        };
        let float_in = |this: &Self, v: ValueId| -> Result<DType, ExecError> {
            let dt = this.values[v].dtype;
            if is_float(dt) {
                Ok(dt)
            } else {
                Err(ctx.bad(format!(
                    "input {:?} has dtype {dt}, expected f32 or f64",
                    this.values[v].name
                )))
            }
        };
        let op = node.op.as_str();
        let out = match op {
            "Gemm" | "MatMul" => {
                n_in(1).map_err(|e| {
                    if op == "MatMul" && ins.len() == 2 {
                        ctx.bad("a runtime right-hand side is not supported; give the weights as attribute `weight` [K, M]")
                    } else {
                        e
                    }
                })?;
                float_in(self, ins[0])?;
                let xin = self.coerce(ins[0], DType::F32);
                let dims = self.values[xin].dims.clone();
                if dims.is_empty() || (op == "Gemm" && dims.len() != 1) {
                    return Err(ctx.bad(format!(
                        "input must have shape [N, K]{}, found [N, {dims:?}]",
                        if op == "MatMul" {
                            " (or [N, .., K])"
                        } else {
                            ""
                        }
                    )));
                }
                let k = dims[dims.len() - 1];
                let (w, wshape) = ctx
                    .tensor_f32(self.file, "weight")?
                    .ok_or_else(|| ctx.bad("required attribute `weight` is missing"))?;
                let trans_b = if op == "Gemm" {
                    ctx.int("trans_b", Some(1))?
                } else {
                    0
                };
                if wshape.len() != 2 {
                    return Err(ctx.bad(format!("weight must be rank 2, found shape {wshape:?}")));
                }
                let (m, wk) = if trans_b != 0 {
                    (wshape[0], wshape[1])
                } else {
                    (wshape[1], wshape[0])
                };
                if wk != k {
                    return Err(ctx.bad(format!(
                        "weight shape {wshape:?} (trans_b={trans_b}) needs {wk} input features, the input has {k}"
                    )));
                }
                let w = if trans_b != 0 {
                    w
                } else {
                    let mut t = vec![0f32; m * k];
                    for i in 0..k {
                        for j in 0..m {
                            t[j * k + i] = w[i * m + j];
                        }
                    }
                    t
                };
                let bias = match ctx.tensor_f32(self.file, "bias")? {
                    None => None,
                    Some((b, _)) if b.len() == m => Some(b),
                    Some((b, s)) => {
                        return Err(ctx.bad(format!(
                            "bias has shape {s:?} ({} values), expected {m}",
                            b.len()
                        )))
                    }
                };
                let groups = dims[..dims.len() - 1].iter().product();
                let mut odims = dims.clone();
                if let Some(l) = odims.last_mut() {
                    *l = m;
                }
                let width = checked_width(&ctx, &odims)?;
                let o = self.new_value(out_name, DType::F32, odims, width);
                let d = Dense {
                    w,
                    bias,
                    m,
                    k,
                    groups,
                    act: Act::None,
                    packed: None,
                };
                self.push(node, Kernel::DenseF32(d), vec![xin], o);
                o
            }
            "LinearModel" => {
                n_in(1)?;
                float_in(self, ins[0])?;
                let xin = self.coerce(ins[0], DType::F64);
                let dims = self.values[xin].dims.clone();
                if dims.len() != 1 {
                    return Err(
                        ctx.bad(format!("input must have shape [N, F], found [N, {dims:?}]"))
                    );
                }
                let f = dims[0];
                let (coef, cshape) = ctx
                    .tensor_f64(self.file, "coef")?
                    .ok_or_else(|| ctx.bad("required attribute `coef` is missing"))?;
                let t = match cshape.as_slice() {
                    [t, cf] if *cf == f => *t,
                    [cf] if *cf == f => 1,
                    _ => {
                        return Err(ctx.bad(format!(
                            "coef has shape {cshape:?}, expected [T, {f}] for {f} input features"
                        )))
                    }
                };
                let intercept = match ctx.tensor_f64(self.file, "intercept")? {
                    None => None,
                    Some((b, _)) if b.len() == t => Some(b),
                    Some((b, s)) => {
                        return Err(ctx.bad(format!(
                            "intercept has shape {s:?} ({} values), expected {t}",
                            b.len()
                        )))
                    }
                };
                let o = self.new_value(out_name, DType::F64, vec![t], t);
                let d = Dense {
                    w: coef,
                    bias: intercept,
                    m: t,
                    k: f,
                    groups: 1,
                    act: Act::None,
                    packed: None,
                };
                self.push(node, Kernel::DenseF64(d), vec![xin], o);
                o
            }
            "Add" | "Sub" | "Mul" | "Div" => {
                let binop = match op {
                    "Add" => BinOp::Add,
                    "Sub" => BinOp::Sub,
                    "Mul" => BinOp::Mul,
                    _ => BinOp::Div,
                };
                let a = ins.first().copied().ok_or_else(|| {
                    ctx.bad("expected 2 inputs (or 1 input and attribute `b`), found 0")
                })?;
                let dt = float_in(self, a)?;
                let a_dims = self.values[a].dims.clone();
                // Full shapes; the batch dimension is `None`.
                let (b, b_full): (Operand, Vec<Option<usize>>) =
                    match (ins.len(), ctx.tensor_name("b")?) {
                        (2, None) => {
                            float_in(self, ins[1])?;
                            let bv = self.coerce(ins[1], dt);
                            let mut s = vec![None];
                            s.extend(self.values[bv].dims.iter().map(|&d| Some(d)));
                            (Operand::Value(bv), s)
                        }
                        (1, Some(_)) => {
                            let (c, s) = ctx
                                .tensor_f64(self.file, "b")?
                                .ok_or_else(|| ctx.bad("attribute `b` is missing"))?;
                            (Operand::Const(c), s.into_iter().map(Some).collect())
                        }
                        (k, _) => {
                            return Err(ctx.bad(format!(
                            "expected 2 inputs, or 1 input and attribute `b`; found {k} input(s)"
                        )))
                        }
                    };
                let mut a_full = vec![None];
                a_full.extend(a_dims.iter().map(|&d| Some(d)));
                let rank = a_full.len().max(b_full.len());
                let b_is_value = matches!(b, Operand::Value(_));
                if b_is_value && b_full.len() != a_full.len() {
                    return Err(ctx.bad(format!(
                        "runtime operands must have the same rank, found {} and {}",
                        a_full.len(),
                        b_full.len()
                    )));
                }
                if b_full.len() > a_full.len() {
                    return Err(ctx.bad(format!(
                        "constant `b` of rank {} cannot broadcast against an input of rank {}",
                        b_full.len(),
                        a_full.len()
                    )));
                }
                // Pad b on the left with 1s (numpy).
                let pad = rank - b_full.len();
                let b_pad: Vec<Option<usize>> =
                    std::iter::repeat_n(Some(1), pad).chain(b_full).collect();
                // Output dims (non-batch) and broadcasting.
                if let Some(Some(d)) = b_pad.first() {
                    if *d != 1 {
                        return Err(ctx.bad(format!(
                            "constant `b` has {d} along the batch axis; only 1 can broadcast"
                        )));
                    }
                }
                let mut odims = Vec::with_capacity(rank - 1);
                for i in 1..rank {
                    let da = a_full[i].unwrap_or(1);
                    let db = b_pad[i].unwrap_or(1);
                    let d = if da == db || db == 1 {
                        da
                    } else if da == 1 {
                        db
                    } else {
                        return Err(ctx.bad(format!(
                            "shapes [N, {a_dims:?}] and {:?} do not broadcast (axis {i}: {da} vs {db})",
                            &b_pad[1..]
                        )));
                    };
                    odims.push(d);
                }
                let width = checked_width(&ctx, &odims)?;
                let a_dims_u: Vec<usize> = a_full[1..].iter().map(|d| d.unwrap_or(1)).collect();
                let b_dims_u: Vec<usize> = b_pad[1..].iter().map(|d| d.unwrap_or(1)).collect();
                self.table_bytes = self
                    .table_bytes
                    .saturating_add(width.saturating_mul(std::mem::size_of::<(u32, u32)>()));
                if self.table_bytes > self.budget {
                    return Err(ctx.bad(format!(
                        "broadcasting to [N, {odims:?}] needs tables of {} bytes, over the plan budget of {} bytes for this file",
                        self.table_bytes, self.budget
                    )));
                }
                let map = broadcast_map(&odims, &a_dims_u, &b_dims_u);
                // Trivial folding: x + 0, x - 0, x * 1, x / 1 with the output shape of x.
                if let Operand::Const(c) = &b {
                    let neutral = match binop {
                        BinOp::Add | BinOp::Sub => 0.0,
                        BinOp::Mul | BinOp::Div => 1.0,
                    };
                    if odims == a_dims && c.iter().all(|&v| v == neutral) {
                        let o = self.new_alias(out_name, a, odims);
                        self.names.insert(out_name.to_string(), o);
                        return Ok(());
                    }
                }
                let o = self.new_value(out_name, dt, odims, width);
                let mut inputs = vec![a];
                if let Operand::Value(bv) = b {
                    inputs.push(bv);
                }
                self.push(
                    node,
                    Kernel::Binary {
                        op: binop,
                        a: Operand::Value(a),
                        b,
                        map,
                    },
                    inputs,
                    o,
                );
                o
            }
            "Relu" | "LeakyRelu" | "Sigmoid" | "Tanh" | "Gelu" | "Silu" | "Clip" | "Exp" => {
                n_in(1)?;
                let dt = float_in(self, ins[0])?;
                let act = match op {
                    "Relu" => Act::Relu,
                    "LeakyRelu" => Act::LeakyRelu(ctx.float("alpha")?.unwrap_or(0.01)),
                    "Sigmoid" => Act::Sigmoid,
                    "Tanh" => Act::Tanh,
                    "Gelu" => match ctx.string("approximate")?.unwrap_or("none") {
                        "none" => Act::GeluErf,
                        "tanh" => Act::GeluTanh,
                        other => {
                            return Err(ctx.bad(format!(
                            "attribute `approximate` is {other:?}, expected \"none\" or \"tanh\""
                        )))
                        }
                    },
                    "Silu" => Act::Silu,
                    "Clip" => {
                        let lo = ctx.float("min")?.unwrap_or(f64::NEG_INFINITY);
                        let hi = ctx.float("max")?.unwrap_or(f64::INFINITY);
                        if lo.is_nan() || hi.is_nan() || lo > hi {
                            return Err(ctx.bad(format!("min {lo} must not exceed max {hi}")));
                        }
                        Act::Clip(lo, hi)
                    }
                    _ => Act::Exp,
                };
                // Exp is a classical op: f64.
                let xin = if act == Act::Exp {
                    self.coerce(ins[0], DType::F64)
                } else {
                    ins[0]
                };
                let dt = if act == Act::Exp { DType::F64 } else { dt };
                let dims = self.values[xin].dims.clone();
                let width = self.values[xin].width;
                let o = self.new_value(out_name, dt, dims, width);
                self.push(node, Kernel::Unary(act), vec![xin], o);
                o
            }
            "Softmax" | "LogSoftmax" => {
                n_in(1)?;
                let dt = float_in(self, ins[0])?;
                let dims = self.values[ins[0]].dims.clone();
                let ax = axis_index(&ctx, ctx.int("axis", Some(-1))?, dims.len() + 1)?;
                let outer = dims[..ax].iter().product();
                let inner = dims[ax + 1..].iter().product();
                let len = dims[ax];
                let width = self.values[ins[0]].width;
                let o = self.new_value(out_name, dt, dims, width);
                self.push(
                    node,
                    Kernel::Softmax {
                        outer,
                        len,
                        inner,
                        log: op == "LogSoftmax",
                    },
                    vec![ins[0]],
                    o,
                );
                let s = self.new_scratch(2);
                if let Some(st) = self.steps.last_mut() {
                    st.scratch = Some(s);
                }
                o
            }
            "LayerNorm" => {
                n_in(1)?;
                let dt = float_in(self, ins[0])?;
                let dims = self.values[ins[0]].dims.clone();
                let Some(&len) = dims.last() else {
                    return Err(ctx.bad("input must have at least one non-batch axis"));
                };
                let weight = ctx.tensor_f64(self.file, "weight")?.map(|t| t.0);
                let bias = ctx.tensor_f64(self.file, "bias")?.map(|t| t.0);
                for (k, t) in [("weight", &weight), ("bias", &bias)] {
                    if let Some(t) = t {
                        if t.len() != len {
                            return Err(ctx.bad(format!(
                                "{k} has {} values, the last axis has {len}",
                                t.len()
                            )));
                        }
                    }
                }
                let eps = ctx.float("epsilon")?.unwrap_or(1e-5);
                let width = self.values[ins[0]].width;
                let outer = width.checked_div(len).unwrap_or(0);
                let o = self.new_value(out_name, dt, dims, width);
                self.push(
                    node,
                    Kernel::LayerNorm {
                        outer,
                        len,
                        weight,
                        bias,
                        eps,
                    },
                    vec![ins[0]],
                    o,
                );
                let s = self.new_scratch(2);
                if let Some(st) = self.steps.last_mut() {
                    st.scratch = Some(s);
                }
                o
            }
            "BatchNorm" => {
                n_in(1)?;
                let dt = float_in(self, ins[0])?;
                let dims = self.values[ins[0]].dims.clone();
                let Some(&c) = dims.first() else {
                    return Err(ctx.bad("input must have shape [N, C, ..]"));
                };
                let get = |k: &str, def: Option<f64>| -> Result<Vec<f64>, ExecError> {
                    match ctx.tensor_f64(self.file, k)? {
                        Some((t, _)) if t.len() == c => Ok(t),
                        Some((t, s)) => Err(ctx.bad(format!(
                            "{k} has shape {s:?} ({} values), expected [{c}]",
                            t.len()
                        ))),
                        None => match def {
                            Some(d) => Ok(vec![d; c]),
                            None => Err(ctx.bad(format!("required attribute `{k}` is missing"))),
                        },
                    }
                };
                let mean = get("mean", None)?;
                let var = get("var", None)?;
                let w = get("weight", Some(1.0))?;
                let b = get("bias", Some(0.0))?;
                let eps = ctx.float("epsilon")?.unwrap_or(1e-5);
                let scale: Vec<f64> = (0..c).map(|i| w[i] / (var[i] + eps).sqrt()).collect();
                let shift: Vec<f64> = (0..c).map(|i| b[i] - mean[i] * scale[i]).collect();
                let width = self.values[ins[0]].width;
                let inner = dims[1..].iter().product();
                let o = self.new_value(out_name, dt, dims, width);
                self.push(
                    node,
                    Kernel::ChannelAffine {
                        channels: c,
                        inner,
                        scale,
                        shift,
                    },
                    vec![ins[0]],
                    o,
                );
                o
            }
            "Concat" => {
                if ins.is_empty() {
                    return Err(ctx.bad("expected at least 1 input, found 0"));
                }
                let dt = self.values[ins[0]].dtype;
                let d0 = self.values[ins[0]].dims.clone();
                let ax = axis_index(&ctx, ctx.int("axis", Some(1))?, d0.len() + 1)?;
                let mut total = 0usize;
                let mut blocks = Vec::with_capacity(ins.len());
                let inner: usize = d0[ax + 1..].iter().product();
                for &v in &ins {
                    let val = &self.values[v];
                    if val.dtype != dt {
                        return Err(ctx.bad(format!(
                            "input {:?} has dtype {}, the first input has {dt}",
                            val.name, val.dtype
                        )));
                    }
                    if val.dims.len() != d0.len()
                        || val.dims[..ax] != d0[..ax]
                        || val.dims[ax + 1..] != d0[ax + 1..]
                    {
                        return Err(ctx.bad(format!(
                            "input {:?} has shape [N, {:?}], which does not match [N, {d0:?}] outside axis {}",
                            val.name, val.dims, ax + 1
                        )));
                    }
                    total = total.saturating_add(val.dims[ax]);
                    blocks.push(val.dims[ax] * inner);
                }
                let mut odims = d0.clone();
                odims[ax] = total;
                let width = checked_width(&ctx, &odims)?;
                let outer = d0[..ax].iter().product();
                let o = self.new_value(out_name, dt, odims, width);
                self.push(node, Kernel::Concat { outer, blocks }, ins.clone(), o);
                o
            }
            "Flatten" | "Identity" | "Reshape" => {
                n_in(1)?;
                let src = &self.values[ins[0]];
                let width = src.width;
                let odims = match op {
                    "Identity" => src.dims.clone(),
                    "Flatten" => vec![width],
                    _ => {
                        let shape = ctx
                            .ints("shape")?
                            .ok_or_else(|| ctx.bad("required attribute `shape` is missing"))?;
                        reshape_dims(&ctx, shape, width)?
                    }
                };
                self.new_alias(out_name, ins[0], odims)
            }
            "Cast" => {
                n_in(1)?;
                let to = match ctx.string("to")? {
                    Some("f32") => DType::F32,
                    Some("f64") => DType::F64,
                    Some(other) => {
                        return Err(ctx.bad(format!(
                            "attribute `to` is {other:?}, expected \"f32\" or \"f64\""
                        )))
                    }
                    None => return Err(ctx.bad("required attribute `to` is missing")),
                };
                let src = &self.values[ins[0]];
                if src.dtype == to {
                    let dims = src.dims.clone();
                    self.new_alias(out_name, ins[0], dims)
                } else {
                    let dims = src.dims.clone();
                    let width = src.width;
                    let o = self.new_value(out_name, to, dims, width);
                    self.push(node, Kernel::Cast, vec![ins[0]], o);
                    o
                }
            }
            "Scaler" | "Imputer" | "Normalizer" => {
                n_in(1)?;
                float_in(self, ins[0])?;
                let xin = self.coerce(ins[0], DType::F64);
                let dims = self.values[xin].dims.clone();
                if dims.len() != 1 {
                    return Err(
                        ctx.bad(format!("input must have shape [N, F], found [N, {dims:?}]"))
                    );
                }
                let f = dims[0];
                let per_feature = |k: &str, def: Option<f64>| -> Result<Vec<f64>, ExecError> {
                    match ctx.tensor_f64(self.file, k)? {
                        Some((t, _)) if t.len() == f => Ok(t),
                        Some((t, s)) => Err(ctx.bad(format!(
                            "{k} has shape {s:?} ({} values), expected [{f}] for {f} features",
                            t.len()
                        ))),
                        None => match def {
                            Some(d) => Ok(vec![d; f]),
                            None => Err(ctx.bad(format!("required attribute `{k}` is missing"))),
                        },
                    }
                };
                let (kernel, scratch) = match op {
                    "Scaler" => (
                        Kernel::Scaler {
                            offset: per_feature("offset", Some(0.0))?,
                            scale: per_feature("scale", Some(1.0))?,
                        },
                        false,
                    ),
                    "Imputer" => (
                        Kernel::Imputer {
                            values: per_feature("values", None)?,
                            missing: ctx.float("missing")?.unwrap_or(f64::NAN),
                        },
                        false,
                    ),
                    _ => {
                        let norm = match ctx.string("norm")?.unwrap_or("l2") {
                            "l1" => Norm::L1,
                            "l2" => Norm::L2,
                            "max" => Norm::Max,
                            other => {
                                return Err(ctx.bad(format!(
                                "attribute `norm` is {other:?}, expected \"l1\", \"l2\" or \"max\""
                            )))
                            }
                        };
                        (Kernel::Normalizer(norm), true)
                    }
                };
                let o = self.new_value(out_name, DType::F64, dims, f);
                self.push(node, kernel, vec![xin], o);
                if scratch {
                    let s = self.new_scratch(1);
                    if let Some(st) = self.steps.last_mut() {
                        st.scratch = Some(s);
                    }
                }
                o
            }
            "TreeEnsemble" => {
                n_in(1)?;
                float_in(self, ins[0])?;
                let dims = &self.values[ins[0]].dims;
                if dims.len() != 1 {
                    return Err(
                        ctx.bad(format!("input must have shape [N, F], found [N, {dims:?}]"))
                    );
                }
                let f = dims[0];
                let ens = TreeEnsemble::compile(node, self.file, f)?;
                let t = ens.n_targets();
                if t == 0 || t > MAX_WIDTH {
                    return Err(ctx.bad(format!("n_targets {t} is out of range 1..={MAX_WIDTH}")));
                }
                let o = self.new_value(out_name, DType::F64, vec![t], t);
                let slot = self.n_tree_steps;
                self.n_tree_steps += 1;
                self.push(
                    node,
                    Kernel::Tree {
                        ens: Box::new(ens),
                        slot,
                        from_input: ins[0] == x,
                    },
                    vec![ins[0]],
                    o,
                );
                o
            }
            "BinaryToProba" => {
                n_in(1)?;
                float_in(self, ins[0])?;
                let xin = self.coerce(ins[0], DType::F64);
                if self.values[xin].width != 1 || self.values[xin].dims.len() > 1 {
                    return Err(ctx.bad(format!(
                        "input must have shape [N] or [N, 1], found [N, {:?}]",
                        self.values[xin].dims
                    )));
                }
                let o = self.new_value(out_name, DType::F64, vec![2], 2);
                self.push(node, Kernel::BinaryToProba, vec![xin], o);
                o
            }
            "ArgMax" => {
                n_in(1)?;
                float_in(self, ins[0])?;
                let dims = &self.values[ins[0]].dims;
                if dims.len() != 1 || dims[0] == 0 {
                    return Err(ctx.bad(format!(
                        "input must have shape [N, C] with C >= 1, found [N, {dims:?}]"
                    )));
                }
                let classes = dims[0];
                let o = self.new_value(out_name, DType::I64, vec![], 1);
                self.push(node, Kernel::ArgMax { classes }, vec![ins[0]], o);
                o
            }
            "Threshold" => {
                n_in(1)?;
                float_in(self, ins[0])?;
                if self.values[ins[0]].width != 1 || self.values[ins[0]].dims.len() > 1 {
                    return Err(ctx.bad(format!(
                        "input must have shape [N] or [N, 1], found [N, {:?}]",
                        self.values[ins[0]].dims
                    )));
                }
                let t = ctx.float("threshold")?.ok_or_else(|| ctx.bad("required attribute `threshold` is missing (0.5 on probabilities, 0 on margins)"))?;
                let o = self.new_value(out_name, DType::I64, vec![], 1);
                self.push(node, Kernel::Threshold(t), vec![ins[0]], o);
                o
            }
            _ => {
                return Err(ExecError::UnsupportedOp {
                    model,
                    node: node.name.clone(),
                    op: node.op.clone(),
                })
            }
        };
        self.names.insert(out_name.to_string(), out);
        Ok(())
    }
}

/// Reshape target dims from `shape` (`shape[0]` is `-1`, the batch; one more `-1` may be inferred).
fn reshape_dims(ctx: &Ctx<'_>, shape: &[i64], width: usize) -> Result<Vec<usize>, ExecError> {
    if shape.first() != Some(&-1) {
        return Err(ctx.bad(format!(
            "shape {shape:?} must start with -1 (the batch dimension)"
        )));
    }
    let rest = &shape[1..];
    let mut infer = None;
    let mut known = 1usize;
    for (i, &d) in rest.iter().enumerate() {
        if d == -1 {
            if infer.is_some() {
                return Err(ctx.bad(format!(
                    "shape {shape:?} has more than one -1 after the batch"
                )));
            }
            infer = Some(i);
        } else if d <= 0 {
            return Err(ctx.bad(format!("shape {shape:?} has a non-positive dimension {d}")));
        } else {
            known = known
                .checked_mul(d as usize)
                .filter(|&k| k <= MAX_WIDTH)
                .ok_or_else(|| ctx.bad(format!("shape {shape:?} is too large")))?;
        }
    }
    let mut dims: Vec<usize> = rest.iter().map(|&d| d.max(0) as usize).collect();
    if let Some(i) = infer {
        if known == 0 || width % known != 0 {
            return Err(ctx.bad(format!(
                "cannot reshape {width} values per row into {shape:?}"
            )));
        }
        dims[i] = width / known;
    } else if known != width {
        return Err(ctx.bad(format!(
            "cannot reshape {width} values per row into {shape:?} ({known} values)"
        )));
    }
    Ok(dims)
}

/// The plan budget of a file: [`MAX_PLAN_BYTES`] plus [`PLAN_BYTES_PER_FILE_BYTE`] per byte of
/// the file (or of its decompressed weights, when larger).
fn plan_budget(file: &MleFile) -> usize {
    let size = file.file_bytes().len().max(file.weights().len());
    MAX_PLAN_BYTES.saturating_add(size.saturating_mul(PLAN_BYTES_PER_FILE_BYTE))
}

/// For each flat index of `out`, the flat indices into `a` and `b` under numpy broadcasting
/// (all three of the same rank; a dimension of 1 broadcasts).
fn broadcast_map(out: &[usize], a: &[usize], b: &[usize]) -> Vec<(u32, u32)> {
    let width: usize = out.iter().product();
    let strides = |d: &[usize]| -> Vec<usize> {
        let mut s = vec![0; d.len()];
        let mut acc = 1;
        for i in (0..d.len()).rev() {
            s[i] = if d[i] == 1 { 0 } else { acc };
            acc *= d[i];
        }
        s
    };
    let (sa, sb) = (strides(a), strides(b));
    let mut map = Vec::with_capacity(width);
    let mut idx = vec![0usize; out.len()];
    for _ in 0..width {
        let ja: usize = idx.iter().zip(&sa).map(|(i, s)| i * s).sum();
        let jb: usize = idx.iter().zip(&sb).map(|(i, s)| i * s).sum();
        map.push((ja as u32, jb as u32));
        for d in (0..out.len()).rev() {
            idx[d] += 1;
            if idx[d] < out[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    map
}

/// Number of uses of each value by steps, aliases and graph outputs.
fn use_counts(values: &[Value], steps: &[Step], outputs: &[ValueId]) -> Vec<usize> {
    let mut uses = vec![0usize; values.len()];
    for s in steps {
        for &i in &s.inputs {
            uses[i] += 1;
        }
    }
    for v in values {
        if let Some(src) = v.alias_of {
            uses[src] += 1;
        }
    }
    for &o in outputs {
        uses[o] += 1;
    }
    uses
}

/// Fuses `Dense → Add/Sub const` into the bias, `Dense → activation` into the epilogue, and a
/// `Scaler` into a following `LinearModel`. Each rewrite needs the intermediate value to have
/// exactly one use and not be a graph output. One forward pass (linear in the step count).
fn fuse(values: &[Value], steps: Vec<Step>, outputs: &[ValueId]) -> Vec<Step> {
    let uses = use_counts(values, &steps, outputs);
    let mut steps: Vec<Option<Step>> = steps.into_iter().map(Some).collect();
    let mut producer: HashMap<ValueId, usize> = HashMap::new();
    for ci in 0..steps.len() {
        let input = steps[ci].as_ref().and_then(|s| s.inputs.first().copied());
        let pi = input.and_then(|i| producer.get(&i).copied());
        if let (Some(input), Some(pi)) = (input, pi) {
            if uses[input] == 1 && pi < ci {
                let (head, tail) = steps.split_at_mut(ci);
                if let (Some(p), Some(c)) = (head[pi].as_mut(), tail[0].as_mut()) {
                    match fuse_pair(values, input, p, c) {
                        Fused::IntoProducer => {
                            p.output = c.output;
                            producer.insert(p.output, pi);
                            steps[ci] = None;
                            continue;
                        }
                        Fused::IntoConsumer => {
                            c.inputs[0] = p.inputs[0];
                            steps[pi] = None;
                        }
                        Fused::No => {}
                    }
                }
            }
        }
        if let Some(s) = &steps[ci] {
            producer.insert(s.output, ci);
        }
    }
    steps.into_iter().flatten().collect()
}

enum Fused {
    No,
    IntoProducer,
    IntoConsumer,
}

fn fuse_pair(values: &[Value], input: ValueId, p: &mut Step, c: &mut Step) -> Fused {
    let same_shape = values[c.output].dims == values[input].dims;
    match (&mut p.kernel, &mut c.kernel) {
        (
            Kernel::DenseF32(d),
            Kernel::Binary {
                op,
                a: Operand::Value(av),
                b: Operand::Const(cst),
                map,
            },
        ) if *av == input
            && d.act == Act::None
            && d.groups == 1
            && matches!(op, BinOp::Add | BinOp::Sub)
            && map.len() == d.m
            && same_shape =>
        {
            let sign = if *op == BinOp::Add { 1.0 } else { -1.0 };
            let bias = d.bias.get_or_insert_with(|| vec![0.0; d.m]);
            for (j, &(_, jb)) in map.iter().enumerate() {
                bias[j] = (bias[j] as f64 + sign * cst[jb as usize]) as f32;
            }
            Fused::IntoProducer
        }
        (
            Kernel::DenseF64(d),
            Kernel::Binary {
                op,
                a: Operand::Value(av),
                b: Operand::Const(cst),
                map,
            },
        ) if *av == input
            && d.act == Act::None
            && d.groups == 1
            && matches!(op, BinOp::Add | BinOp::Sub)
            && map.len() == d.m
            && same_shape =>
        {
            let sign = if *op == BinOp::Add { 1.0 } else { -1.0 };
            let bias = d.bias.get_or_insert_with(|| vec![0.0; d.m]);
            for (j, &(_, jb)) in map.iter().enumerate() {
                bias[j] += sign * cst[jb as usize];
            }
            Fused::IntoProducer
        }
        (Kernel::DenseF32(d), Kernel::Unary(act)) if d.act == Act::None => {
            d.act = *act;
            Fused::IntoProducer
        }
        (Kernel::DenseF64(d), Kernel::Unary(act)) if d.act == Act::None => {
            d.act = *act;
            Fused::IntoProducer
        }
        (Kernel::Scaler { offset, scale }, Kernel::DenseF64(d))
            if d.groups == 1
                && offset.iter().chain(scale.iter()).all(|v| v.is_finite())
                && offset.len() == d.k =>
        {
            let bias = d.bias.get_or_insert_with(|| vec![0.0; d.m]);
            for (t, b) in bias.iter_mut().enumerate() {
                let row = &mut d.w[t * d.k..(t + 1) * d.k];
                let mut shift = 0.0;
                for f in 0..d.k {
                    row[f] *= scale[f];
                    shift += row[f] * offset[f];
                }
                *b -= shift;
            }
            Fused::IntoConsumer
        }
        _ => Fused::No,
    }
}

/// Compiles `file`'s graph.
pub(crate) fn compile(file: &MleFile) -> Result<Plan, ExecError> {
    let graph = file.graph();
    let model = file.name().to_string();
    let gbad = |node: &str, detail: String| ExecError::InvalidGraph {
        model: model.clone(),
        node: node.to_string(),
        op: "graph".into(),
        detail,
    };
    let [input] = graph.inputs.as_slice() else {
        return Err(gbad(
            "<inputs>",
            format!(
                "expected exactly one graph input, found {}",
                graph.inputs.len()
            ),
        ));
    };
    if !is_float(input.dtype) {
        return Err(gbad(
            &input.name,
            format!("graph input has dtype {}, expected f32 or f64", input.dtype),
        ));
    }
    let n_features = match input.shape.as_slice() {
        [-1, f] if *f >= 0 && (*f as usize) <= MAX_WIDTH => *f as usize,
        s => {
            return Err(gbad(
                &input.name,
                format!("graph input shape {s:?} must be [-1, F] with 0 <= F <= {MAX_WIDTH}"),
            ))
        }
    };
    let names_len = file.metadata().input.feature_names.len();
    if names_len != 0 && names_len != n_features {
        return Err(gbad(
            &input.name,
            format!("metadata lists {names_len} feature names but the graph input has {n_features} features"),
        ));
    }
    let mut c = Compiler {
        file,
        values: Vec::new(),
        buf_units: Vec::new(),
        names: HashMap::new(),
        steps: Vec::new(),
        casts: HashMap::new(),
        n_tree_steps: 0,
        table_bytes: 0,
        budget: plan_budget(file),
    };
    let x = c.new_value(&input.name, input.dtype, vec![n_features], n_features);
    c.names.insert(input.name.clone(), x);
    for node in &graph.nodes {
        c.node(node, x)?;
    }
    // Graph outputs.
    if graph.outputs.is_empty() {
        return Err(gbad("<outputs>", "the graph has no outputs".into()));
    }
    let mut outputs = Vec::with_capacity(graph.outputs.len());
    let mut infos = Vec::with_capacity(graph.outputs.len());
    for o in &graph.outputs {
        let v = *c.names.get(&o.name).ok_or_else(|| {
            gbad(
                &o.name,
                format!("graph output {:?} is not produced by any node", o.name),
            )
        })?;
        let val = &c.values[v];
        let v = match (val.dtype, o.dtype) {
            (a, b) if a == b => v,
            (DType::F32 | DType::F64, DType::F32 | DType::F64) => c.coerce(v, o.dtype),
            (a, b) => {
                return Err(gbad(
                    &o.name,
                    format!("graph output is declared {b} but the graph computes {a}"),
                ))
            }
        };
        let val = &c.values[v];
        let declared = o.shape.get(1..).unwrap_or(&[]);
        if o.shape.first() != Some(&-1) {
            return Err(gbad(
                &o.name,
                format!("output shape {:?} must start with -1 (the batch)", o.shape),
            ));
        }
        let width = if declared.is_empty() {
            if val.width != 1 {
                return Err(gbad(
                    &o.name,
                    format!(
                        "output declared [N] but the graph computes [N, {:?}]",
                        val.dims
                    ),
                ));
            }
            0
        } else {
            if declared.iter().all(|&d| d >= 0) {
                let w = declared
                    .iter()
                    .try_fold(1u64, |a, &d| a.checked_mul(d as u64));
                if w != Some(val.width as u64) {
                    return Err(gbad(
                        &o.name,
                        format!(
                            "output declared {:?} but the graph computes [N, {:?}]",
                            o.shape, val.dims
                        ),
                    ));
                }
            }
            val.width
        };
        outputs.push(v);
        infos.push(OutputInfo {
            name: o.name.clone(),
            dtype: val.dtype,
            width,
        });
    }
    let steps = std::mem::take(&mut c.steps);
    let mut steps = fuse(&c.values, steps, &outputs);
    // Pre-pack f32 dense weights (after fusion: the bias is final).
    for s in &mut steps {
        if let Kernel::DenseF32(d) = &mut s.kernel {
            d.packed = Packed::new(&d.w, d.bias.as_deref(), d.m, d.k).map(Box::new);
        }
    }
    // Dead-step elimination (backwards from the outputs).
    let mut needed = vec![false; c.values.len()];
    let mark = |needed: &mut Vec<bool>, mut v: ValueId| loop {
        needed[v] = true;
        match c.values[v].alias_of {
            Some(src) if !needed[src] => v = src,
            _ => break,
        }
    };
    for &o in &outputs {
        mark(&mut needed, o);
    }
    let mut keep = vec![false; steps.len()];
    for i in (0..steps.len()).rev() {
        if needed[steps[i].output] {
            keep[i] = true;
            for &inp in &steps[i].inputs {
                mark(&mut needed, inp);
            }
        }
    }
    let mut k = keep.iter();
    steps.retain(|_| *k.next().unwrap_or(&false));
    // Tree steps reading the graph input read the batch; X is gathered only when needed.
    let mut gather_x = outputs.iter().any(|&o| c.values[o].buf == c.values[x].buf);
    for s in &steps {
        let reads_x = s.inputs.iter().any(|&i| c.values[i].buf == c.values[x].buf);
        if reads_x
            && !matches!(
                s.kernel,
                Kernel::Tree {
                    from_input: true,
                    ..
                }
            )
        {
            gather_x = true;
        }
    }
    // Liveness: X at time 0, step i at time i + 1, outputs read at steps.len() + 1.
    let end = steps.len() + 1;
    let mut first = vec![usize::MAX; c.buf_units.len()];
    let mut last = vec![0usize; c.buf_units.len()];
    let mut touch = |b: BufId, t: usize| {
        first[b] = first[b].min(t);
        last[b] = last[b].max(t);
    };
    if gather_x {
        touch(c.values[x].buf, 0);
    }
    for (i, s) in steps.iter().enumerate() {
        let t = i + 1;
        touch(c.values[s.output].buf, t);
        for &inp in &s.inputs {
            if inp == x && !gather_x {
                continue;
            }
            touch(c.values[inp].buf, t);
        }
        if let Some(b) = s.scratch {
            touch(b, t);
        }
    }
    for &o in &outputs {
        touch(c.values[o].buf, end);
    }
    let buffers: Vec<Buffer> = (0..c.buf_units.len())
        .map(|b| Buffer {
            size: c.buf_units[b],
            first: first[b],
            last: last[b],
        })
        .collect();
    let (buf_off, arena_per_row) = plan_offsets(&buffers);
    let mut tree_tmp_per_row = 0;
    for s in &steps {
        if let Kernel::Tree { ens, .. } = &s.kernel {
            tree_tmp_per_row = tree_tmp_per_row.max(ens.n_targets());
        }
    }
    let per_row = arena_per_row + tree_tmp_per_row * 8;
    let out_row: usize = infos.iter().map(|i| i.width.max(1) * 8).sum();
    let asked = per_row
        .saturating_add(out_row)
        .saturating_add(c.table_bytes);
    if asked > c.budget {
        return Err(gbad(
            "<plan>",
            format!(
                "one row needs {} bytes (arena {arena_per_row}, tree staging {}, outputs {out_row}, tables {}), over the plan budget of {} bytes for this file ({MAX_PLAN_BYTES} + {PLAN_BYTES_PER_FILE_BYTE} x its size)",
                asked,
                tree_tmp_per_row * 8,
                c.table_bytes,
                c.budget
            ),
        ));
    }
    let chunk_rows = (MAX_CHUNK_BYTES / per_row.max(1)).clamp(1, CHUNK_ROWS);
    Ok(Plan {
        n_features,
        x,
        gather_x,
        values: c.values,
        steps,
        outputs,
        infos,
        buf_off,
        arena_per_row,
        chunk_rows,
        n_tree_steps: c.n_tree_steps,
        tree_tmp_per_row,
    })
}
