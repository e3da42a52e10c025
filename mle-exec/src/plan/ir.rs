//! The compiled form of a model: runtime values, kernels with their parameters, steps and the
//! plan the executor runs.

use mle_format::DType;

use crate::kernels::Packed;
use crate::lookup::LookupStage;
use crate::tree::TreeEnsemble;
use crate::OutputInfo;

/// Largest number of elements per row of one runtime value.
pub(crate) const MAX_WIDTH: usize = 1 << 24;
/// Rows per chunk of the batch path (at most). The arena holds a chunk feature-major, one
/// feature every `chunk rows` values: 512 rows of f64 put a row's features 4 KiB apart, where
/// the stores of the row-major → feature-major transpose alias the loads (4K aliasing) and
/// share L1 sets. 496 = 31 × 16 keeps the GEMM's 16-row panels whole.
pub(crate) const CHUNK_ROWS: usize = 496;

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
    /// `ln(1 + x)` (f64).
    Log1p,
    /// `e^x − 1` (f64).
    Expm1,
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
    /// `(x − offset)·scale`, `(x − offset)/scale` (`divide`), plus `bias` when present.
    Scaler {
        offset: Vec<f64>,
        scale: Vec<f64>,
        divide: bool,
        bias: Option<Vec<f64>>,
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
    /// Output column `j` is input column `columns[j]`.
    Gather {
        columns: Vec<usize>,
    },
    /// Code `c` of input column `feature` sets output column `slots[c]` (none if negative);
    /// NaN sets `missing`, another value `unknown`.
    OneHot {
        feature: usize,
        slots: Vec<i32>,
        missing: i32,
        unknown: i32,
    },
    /// Code `c` of input column `feature` → row `c` of `table` (`[n, width]` row-major).
    CategoryMap {
        feature: usize,
        width: usize,
        table: Vec<f64>,
        missing: Vec<f64>,
        unknown: Vec<f64>,
    },
    /// 1 where input column `columns[j]` is NaN or `missing`, else 0.
    MissingIndicator {
        columns: Vec<usize>,
        missing: f64,
    },
    /// Per feature `f`: the number of `edges[offsets[f]..offsets[f + 1]]` at or below `x`.
    Bucketize {
        edges: Vec<f64>,
        offsets: Vec<usize>,
    },
    /// Output column `k`: the product of input columns `terms[offsets[k]..offsets[k + 1]]`.
    Polynomial {
        terms: Vec<usize>,
        offsets: Vec<usize>,
    },
}

/// One step of the plan.
pub(crate) struct Step {
    /// The node it came from (diagnostics).
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
    /// Whether the first step is a Dense layer that reads a row-major batch in place of the
    /// gathered `x` (`x` read by no other step or output; see `kernels::dense_rows`).
    pub direct_x: bool,
    pub values: Vec<Value>,
    pub steps: Vec<Step>,
    /// Per graph output: the value holding it.
    pub outputs: Vec<ValueId>,
    pub infos: Vec<OutputInfo>,
    /// Per buffer: offset in bytes-per-row units (`offset_bytes = off · n`), or `None` if unused.
    pub buf_off: Vec<Option<usize>>,
    /// Per buffer: bytes per row (its region of a chunk of `n` rows is
    /// `buf_off · n .. (buf_off + buf_size) · n`).
    pub buf_size: Vec<usize>,
    /// Arena bytes per row.
    pub arena_per_row: usize,
    /// Rows per chunk of the batch path.
    pub chunk_rows: usize,
    /// Number of tree steps.
    pub n_tree_steps: usize,
    /// Largest `n_targets` of a tree step reading... (row-major temp, per row).
    pub tree_tmp_per_row: usize,
    /// The input stage: every `Lookup`, in chain order (run before the steps, which see
    /// codes in place of the looked-up columns).
    pub lookups: Vec<LookupStage>,
    /// Per input feature: the index of its Lookup in `lookups`.
    pub lookup_of: Vec<Option<usize>>,
}
