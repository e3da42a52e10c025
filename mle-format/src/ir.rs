//! The graph IR stored in the graph section of a `.mle` file.
//!
//! A [`Graph`] is an ordered list of [`Node`]s over named runtime values, plus the
//! descriptors of every weight tensor ([`TensorDesc`]). The graph section is JSON; bulk
//! data (dense weights, tree node arrays, leaf values, category bitsets) lives in the
//! weights section and is referenced from a node through an [`Attr::Tensor`] attribute
//! holding the tensor's name — never as JSON numbers.
//!
//! The op set and each op's exact semantics are listed in `docs/OPS.md`; the executor
//! (`mle-exec`) is the reference implementation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Element type of a tensor or a runtime value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// IEEE 754 binary32.
    F32,
    /// IEEE 754 binary64 (thresholds and leaf values that need exact parity).
    F64,
    /// IEEE 754 binary16 (fp16-quantized weights).
    F16,
    /// Signed 8-bit integer (int8-quantized weights).
    I8,
    /// Signed 32-bit integer.
    I32,
    /// Signed 64-bit integer.
    I64,
    /// Unsigned 8-bit integer (flags).
    U8,
    /// Unsigned 32-bit integer (indices, bitset words).
    U32,
}

impl DType {
    /// Size of one element in bytes.
    pub const fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F16 => 2,
            DType::I8 | DType::U8 => 1,
        }
    }

    /// The lowercase name used in JSON (`"f32"`, `"u8"`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::F16 => "f16",
            DType::I8 => "i8",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::U8 => "u8",
            DType::U32 => "u32",
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How a stored tensor was quantized from its original f32 values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "scheme", rename_all = "lowercase")]
pub enum Quantization {
    /// Stored as f16; the logical value is the f16 value widened to f32.
    Fp16,
    /// Stored as i8, symmetric, one f32 scale per slice along `axis` (the output
    /// channel, axis 0 for a `[out, in]` weight): `value = q * scales[channel]`.
    Int8 {
        /// The axis the scales run along.
        axis: u32,
        /// Name of the f32 tensor holding one scale per index of `axis`.
        scales: String,
    },
}

/// Descriptor of one tensor in the weights section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorDesc {
    /// Unique name; nodes refer to it through [`Attr::Tensor`].
    pub name: String,
    /// Stored element type.
    pub dtype: DType,
    /// Shape; the element count is the product (1 for a scalar `[]`).
    pub shape: Vec<u64>,
    /// Byte offset from the start of the (decompressed) weights blob; a multiple of 64.
    pub offset: u64,
    /// Length in bytes; equals element count × dtype size.
    pub length: u64,
    /// Present when the tensor holds quantized f32 values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<Quantization>,
}

/// A named runtime value at the graph boundary (graph input or output).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValueInfo {
    /// Value name, unique in the graph.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape; `-1` marks the batch dimension (always the first).
    pub shape: Vec<i64>,
}

/// A node attribute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Attr {
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string (enumerations such as `"sum"`, `"sigmoid"`).
    Str(String),
    /// A short list of integers (shapes, axes).
    Ints(Vec<i64>),
    /// A short list of floats (base scores). Bulk data goes into tensors.
    Floats(Vec<f64>),
    /// A list of strings (class labels).
    Strs(Vec<String>),
    /// The name of a tensor in the weights section.
    Tensor(String),
}

/// One operation of the graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Node name (diagnostics only).
    pub name: String,
    /// Operator name, one of `docs/OPS.md` (e.g. `"Gemm"`, `"TreeEnsemble"`).
    pub op: String,
    /// Names of runtime values consumed (graph inputs or earlier node outputs).
    pub inputs: Vec<String>,
    /// Names of runtime values produced; each is produced exactly once.
    pub outputs: Vec<String>,
    /// Attributes; weights are `Attr::Tensor` references.
    #[serde(default)]
    pub attrs: BTreeMap<String, Attr>,
}

impl Node {
    /// A node with no attributes.
    pub fn new(
        name: impl Into<String>,
        op: impl Into<String>,
        inputs: &[&str],
        outputs: &[&str],
    ) -> Self {
        Node {
            name: name.into(),
            op: op.into(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: outputs.iter().map(|s| s.to_string()).collect(),
            attrs: BTreeMap::new(),
        }
    }

    /// Adds an attribute (builder style).
    pub fn with(mut self, key: impl Into<String>, value: Attr) -> Self {
        self.attrs.insert(key.into(), value);
        self
    }

    /// Looks up an attribute.
    pub fn attr(&self, key: &str) -> Option<&Attr> {
        self.attrs.get(key)
    }
}

/// The whole graph section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    /// Runtime inputs; classical and dense models have one, `"X"`, shape `[-1, n_features]`.
    pub inputs: Vec<ValueInfo>,
    /// Runtime outputs, by convention `"prediction"` (regressors and rankers: `[-1]` or
    /// `[-1, n_targets]`), and for classifiers `"label"` (`[-1]`, i64 class index into the
    /// metadata's class labels) and `"probabilities"` (`[-1, n_classes]`).
    pub outputs: Vec<ValueInfo>,
    /// Nodes in execution order (topologically sorted).
    pub nodes: Vec<Node>,
    /// Every tensor of the weights section.
    pub tensors: Vec<TensorDesc>,
}

impl Graph {
    /// Finds a tensor descriptor by name.
    pub fn tensor(&self, name: &str) -> Option<&TensorDesc> {
        self.tensors.iter().find(|t| t.name == name)
    }
}
