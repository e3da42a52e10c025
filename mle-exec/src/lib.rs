//! # mle-exec
//!
//! The vectorized executor of MLE models. Load a `.mle` model once ([`Model::load`],
//! [`Model::from_bytes`]), which compiles its graph into a plan, then predict a batch of
//! columns ([`Session::predict_batch`]) or one row with no heap allocation per call
//! ([`Session::predict_row`]).
//!
//! ```
//! use std::sync::Arc;
//! use mle_exec::{Batch, ColumnData, Model, RunOptions, Session};
//! use mle_format::*;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A logistic regression over two features: probabilities and labels.
//! let meta = Metadata {
//!     framework: "example".into(), framework_version: String::new(),
//!     model_type: "LogisticRegression".into(), task: Task::Binary,
//!     input: InputSchema { feature_names: vec!["a".into(), "b".into()], dtype: DType::F64, shape: vec![-1, 2] },
//!     output: OutputSchema {
//!         names: vec!["label".into(), "probabilities".into()],
//!         dtypes: vec![DType::I64, DType::F64],
//!         class_labels: Some(ClassLabels::Int(vec![0, 1])),
//!     },
//!     export_time: String::new(), exporter_version: String::new(), user: Default::default(),
//! };
//! let mut b = ModelBuilder::new(meta);
//! b.add_tensor("coef", &[1, 2], &[2.0f64, -1.0])?;
//! b.add_tensor("intercept", &[1], &[0.5f64])?;
//! b.set_inputs(vec![ValueInfo { name: "X".into(), dtype: DType::F64, shape: vec![-1, 2] }]);
//! b.push_node(Node::new("lin", "LinearModel", &["X"], &["margin"])
//!     .with("coef", Attr::Tensor("coef".into()))
//!     .with("intercept", Attr::Tensor("intercept".into())));
//! b.push_node(Node::new("sig", "Sigmoid", &["margin"], &["p"]));
//! b.push_node(Node::new("proba", "BinaryToProba", &["p"], &["probabilities"]));
//! b.push_node(Node::new("label", "Threshold", &["p"], &["label"]).with("threshold", Attr::Float(0.5)));
//! b.set_outputs(vec![
//!     ValueInfo { name: "label".into(), dtype: DType::I64, shape: vec![-1] },
//!     ValueInfo { name: "probabilities".into(), dtype: DType::F64, shape: vec![-1, 2] },
//! ]);
//! let model = Arc::new(Model::from_bytes(&b.to_bytes(&WriteOptions::default())?, "lr.mle")?);
//!
//! // A batch of columns (Arrow buffers, numpy columns...), borrowed without a copy.
//! let (a, bcol) = ([1.0, 0.0, -3.0], [0.0, 2.0, 1.0]);
//! let batch = Batch::from_columns(vec![ColumnData::F64(&a), ColumnData::F64(&bcol)])?;
//! let mut session = Session::new(model.clone());
//! let out = session.predict_batch(&batch, RunOptions::default())?;
//! assert_eq!(out.get("label").unwrap().data, mle_exec::OutputData::I64(vec![1, 0, 0]));
//!
//! // One row, no heap allocation per call once warm.
//! let out = session.predict_row(&[1.0, 0.0])?;
//! let mle_exec::OutputData::F64(p) = &out.get("probabilities").unwrap().data else { panic!() };
//! let expected = 1.0 / (1.0 + (-2.5f64).exp());
//! assert!((p[1] - expected).abs() < 1e-12 && (p[0] - (1.0 - expected)).abs() < 1e-12);
//! # Ok(()) }
//! ```
//!
//! ## Values and layout
//!
//! Every runtime value has a dtype (f32, f64 or i64) and a shape `[N, d1, ..]` whose first
//! dimension is the batch. Inside the executor, values are stored **feature-major** per chunk
//! of rows: `width = d1·..·dk` rows of `n` contiguous elements. Columnar input (Arrow buffers)
//! is therefore copied column by column with no transpose (row-major input, e.g. numpy's, is
//! transposed eight features per pass), and dense layers run as `Y[M, n] = W[M, K] · X[K, n]`.
//! f32 layers on a CPU with AVX2 and FMA (detected at compile time of the plan) use weights
//! pre-packed when the model is compiled: one row is a GEMV over 8-output panels, more rows a
//! 6×16 register-tiled GEMM, both with the bias and ReLU fused and no allocation; every output
//! is `bias + Σ w·x` in input order, so a row gives the same bits alone or in any batch.
//! Otherwise (f64 layers, other CPUs) a blocked GEMM (`matrixmultiply`), except for one row
//! (8-lane dot products), fewer than 8 rows or at most 4 outputs (row-wise axpy over contiguous
//! input rows). Per-feature operations sweep contiguous memory. Outputs are returned
//! row-major.
//!
//! ## Compilation
//!
//! [`Model::compile`] checks the graph — one input `[-1, F]`, every node input defined by an
//! earlier node, every value produced once, input counts, dtypes and shapes per operator,
//! attribute kinds, tensors present with the right sizes — and infers every value's dtype and
//! shape. Any violation is [`ExecError::InvalidGraph`] (or [`ExecError::UnsupportedOp`] for an
//! operator not listed below); compilation never panics. Then it:
//! - dequantizes f16/int8 weights to f32 and lays dense weights out as `[M, K]` row-major;
//! - folds trivial constants: `Identity`, `Flatten`, `Reshape` and a `Cast` to the same dtype
//!   become aliases of their input (no copy); `x + 0`, `x − 0`, `x · 1`, `x / 1` vanish; batch
//!   norm becomes one scale and shift per channel;
//! - fuses a dense layer (`Gemm`, `MatMul`, `LinearModel`) with a following `Add`/`Sub` of a
//!   per-output constant (into its bias) and a following activation (into its epilogue), and a
//!   `Scaler` into a following `LinearModel` (`coef·scale`, `intercept − Σ coef·scale·offset`);
//! - inserts `Cast`s where an op computes in another dtype (dense ops in f32, classical ops in
//!   f64) and where a graph output is declared f32/f64 but computed in the other;
//! - drops steps no output depends on, and plans memory: buffers whose lifetimes do not overlap
//!   share bytes of one arena ([`Model::peak_memory_bytes`]);
//! - refuses a plan whose memory for one row (arena, tree staging, outputs) plus its
//!   broadcast tables exceeds [`MAX_PLAN_BYTES`] + [`PLAN_BYTES_PER_FILE_BYTE`] × the file
//!   size, so a small file cannot ask for gigabytes (`ExecError::InvalidGraph` at `<plan>`).
//!
//! ## Execution
//!
//! The batch path splits the rows into chunks of a fixed size (at most 496 rows, fixed per
//! model), each run through the whole plan in a per-thread arena that is reused across calls.
//! [`RunOptions::threads`] only decides which thread runs which chunk (threads take the next
//! chunk from a shared queue, so a thread on a busier core does fewer), so results are
//! bit-identical whatever the thread count. The single-row path runs the same plan on a chunk
//! of one row and allocates nothing once the [`Session`] is warm.
//!
//! ## Operators
//!
//! The contract is `docs/OPS.md`. Dense ops compute in f32 (elementwise ones keep an f64
//! input's dtype), classical ops in f64.
//!
//! | op | semantics |
//! |---|---|
//! | `Gemm` | `Y = X·Wᵀ + b`; `weight: T[M,K]` (`trans_b=1`, default) or `[K,M]` (`trans_b=0`); `bias: T[M]` optional; input `[N, K]` |
//! | `MatMul` | `Y = X·W`, `weight: T[K,M]`; input `[N, .., K]` multiplies over the last axis (a runtime right-hand side is rejected) |
//! | `Add` `Sub` `Mul` `Div` | elementwise with numpy broadcasting; `B` a runtime value of the same rank, or a constant tensor `b` (its batch axis, if any, must be 1) |
//! | `Relu` `LeakyRelu` | `max(x, 0)`; `x ≥ 0 ? x : alpha·x` (`alpha` 0.01); NaN stays NaN |
//! | `Sigmoid` `Tanh` `Silu` | `1/(1+e^-x)`, `tanh x`, `x·sigmoid(x)` |
//! | `Gelu` | `approximate="none"`: `x/2·(1+erf(x/√2))`; `"tanh"`: `x/2·(1+tanh(√(2/π)(x+0.044715x³)))` |
//! | `Softmax` `LogSoftmax` | along `axis` (default −1, never the batch), max subtracted first |
//! | `LayerNorm` | over the last axis, biased variance, `epsilon` 1e-5, `weight`/`bias` optional |
//! | `BatchNorm` | `(x−mean)/√(var+ε)·weight + bias` per channel (axis 1) |
//! | `Clip` | to `[min, max]` (each optional); NaN stays NaN |
//! | `Concat` | along `axis` (default 1), inputs of one dtype, equal elsewhere |
//! | `Flatten` `Reshape` `Identity` | no copy; `Reshape.shape` starts with −1 (the batch), one more −1 may be inferred |
//! | `Cast` | `to`: `f32` or `f64` |
//! | `Scaler` | `(x − offset)·scale` per feature (NaN stays NaN) |
//! | `Imputer` | NaN, or a value equal to `missing`, becomes `values[f]` |
//! | `Normalizer` | per row, `norm` `l1` (`Σ|x|`), `l2` (`√Σx²`, default) or `max` (`max|x|`); a zero row stays zero |
//! | `LinearModel` | `y = x·coefᵀ + intercept`, `coef: T[T,F]` (or `[F]`), f64 |
//! | `TreeEnsemble` | see `docs/OPS.md` and the `tree` module |
//! | `BinaryToProba` | `[1 − p, p]` from `[N]` or `[N, 1]` |
//! | `Exp` | `e^x` in f64 |
//! | `ArgMax` | index of the first maximum of `[N, C]` as i64; NaN never wins (an all-NaN row gives 0) |
//! | `Threshold` | `x > threshold ? 1 : 0` as i64 (`threshold` required; NaN gives 0) |
//!
//! Linear classifiers are compositions: binary `LinearModel → Sigmoid → BinaryToProba` (and
//! `Threshold` for the label), one-vs-rest `LinearModel → Sigmoid → Normalizer(l1)`,
//! multinomial `LinearModel → Softmax` (and `ArgMax`). Classifier outputs are class *indices*;
//! front ends map them to `metadata.output.class_labels` (integer or string labels).

#![warn(missing_docs)]

pub mod batch;
pub mod error;
pub mod tree;

mod exec;
mod kernels;
mod memory;
mod plan;
mod real;

pub use batch::{Batch, Column, ColumnData};
pub use error::ExecError;
pub use plan::{MAX_PLAN_BYTES, PLAN_BYTES_PER_FILE_BYTE};

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use mle_format::{DType, Metadata, MleFile, ReadOptions};
use rayon::prelude::*;

use crate::exec::{OutSlice, Source, Worker};
use crate::plan::Plan;

/// One output of the model as the executor returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputInfo {
    /// Output name (`prediction`, `label`, `probabilities`, ...).
    pub name: String,
    /// Element type: F32, F64 or I64.
    pub dtype: DType,
    /// Values per row: 0 for a `[N]` output, `k` for `[N, k]`.
    pub width: usize,
}

/// Output values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputData {
    /// f32 values.
    F32(Vec<f32>),
    /// f64 values.
    F64(Vec<f64>),
    /// i64 values (class indices).
    I64(Vec<i64>),
}

/// One computed output.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// Name and shape.
    pub info: OutputInfo,
    /// `n_rows × max(width, 1)` values, row-major.
    pub data: OutputData,
}

/// All outputs of one run, in the graph's output order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outputs {
    /// The outputs.
    pub outputs: Vec<Output>,
    /// Rows computed.
    pub n_rows: usize,
}

impl Outputs {
    /// An output by name.
    pub fn get(&self, name: &str) -> Option<&Output> {
        self.outputs.iter().find(|o| o.info.name == name)
    }
}

/// Options of a batch run.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Worker threads: 1 runs on the calling thread; 0 uses rayon's global pool; `n > 1` uses a
    /// pool of `n` threads owned by the session (created on first use, then reused). Results
    /// are bit-identical whatever the value.
    pub threads: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { threads: 1 }
    }
}

/// A loaded and compiled model, shareable across threads (`Arc<Model>`).
pub struct Model {
    file: MleFile,
    plan: Plan,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("file", &self.file.name())
            .field("n_features", &self.plan.n_features)
            .field("outputs", &self.plan.infos)
            .field("steps", &self.plan.steps.len())
            .finish()
    }
}

impl Model {
    /// Opens, validates and compiles a model file.
    pub fn load(path: impl AsRef<Path>, opts: &ReadOptions) -> Result<Model, ExecError> {
        Self::compile(MleFile::open(path, opts)?)
    }

    /// Validates and compiles a model held in memory (no signature required); `name` is used
    /// in errors.
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<Model, ExecError> {
        Self::compile(MleFile::from_bytes(bytes, name, &ReadOptions::default())?)
    }

    /// Compiles an opened file: checks the graph, infers shapes, fuses, picks kernels, plans
    /// memory.
    pub fn compile(file: MleFile) -> Result<Model, ExecError> {
        let plan = plan::compile(&file)?;
        Ok(Model { file, plan })
    }

    /// The underlying file.
    pub fn file(&self) -> &MleFile {
        &self.file
    }

    /// The metadata section.
    pub fn metadata(&self) -> &Metadata {
        self.file.metadata()
    }

    /// Number of input features.
    pub fn n_features(&self) -> usize {
        self.plan.n_features
    }

    /// The outputs this model produces.
    pub fn outputs(&self) -> &[OutputInfo] {
        &self.plan.infos
    }

    /// Planned peak bytes of intermediate buffers for a batch of `n_rows`, per worker thread:
    /// the arena of one chunk (`min(n_rows, chunk_rows)` rows) plus the tree kernels'
    /// row-major staging. Output buffers (`n_rows × width`) are not included.
    pub fn peak_memory_bytes(&self, n_rows: usize) -> usize {
        let rows = n_rows.min(self.plan.chunk_rows);
        rows.saturating_mul(self.plan.arena_per_row + self.plan.tree_tmp_per_row * 8)
    }

    /// Rows per chunk of the batch path (fixed per model).
    pub fn chunk_rows(&self) -> usize {
        self.plan.chunk_rows
    }

    /// Number of executed steps after fusion and folding (diagnostics).
    pub fn n_steps(&self) -> usize {
        self.plan.steps.len()
    }

    /// Runs a batch with a temporary session.
    pub fn predict(
        self: &Arc<Self>,
        batch: &Batch<'_>,
        opts: RunOptions,
    ) -> Result<Outputs, ExecError> {
        let mut s = Session::new(self.clone());
        Ok(s.predict_batch(batch, opts)?.clone())
    }
}

/// Reusable scratch for running a model: the memory arena and output buffers. Holding one
/// per thread makes repeated calls allocation-free once warmed up.
pub struct Session {
    model: Arc<Model>,
    outputs: Outputs,
    workers: Vec<Worker>,
    pool: Option<(usize, rayon::ThreadPool)>,
}

impl Session {
    /// A session for `model`.
    pub fn new(model: Arc<Model>) -> Session {
        let outputs = model
            .plan
            .infos
            .iter()
            .map(|info| Output {
                info: info.clone(),
                data: match info.dtype {
                    DType::F32 => OutputData::F32(Vec::new()),
                    DType::I64 => OutputData::I64(Vec::new()),
                    _ => OutputData::F64(Vec::new()),
                },
            })
            .collect();
        Session {
            model,
            outputs: Outputs { outputs, n_rows: 0 },
            workers: Vec::new(),
            pool: None,
        }
    }

    /// The model.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    fn resize_outputs(&mut self, n: usize) {
        self.outputs.n_rows = n;
        for o in &mut self.outputs.outputs {
            let len = n * o.info.width.max(1);
            match &mut o.data {
                OutputData::F32(v) => v.resize(len, 0.0),
                OutputData::F64(v) => v.resize(len, 0.0),
                OutputData::I64(v) => v.resize(len, 0),
            }
        }
    }

    /// Runs a batch; the result borrows the session's buffers.
    pub fn predict_batch(
        &mut self,
        batch: &Batch<'_>,
        opts: RunOptions,
    ) -> Result<&Outputs, ExecError> {
        let model = self.model.clone();
        let plan = &model.plan;
        if batch.n_columns() != plan.n_features {
            return Err(ExecError::Input(format!(
                "{}: the batch has {} columns but the model takes {} features",
                model.file.name(),
                batch.n_columns(),
                plan.n_features
            )));
        }
        let n = batch.n_rows();
        self.resize_outputs(n);
        if n == 0 {
            return Ok(&self.outputs);
        }
        let cr = plan.chunk_rows;
        let n_chunks = n.div_ceil(cr);
        let threads = match opts.threads {
            0 => rayon::current_num_threads(),
            t => t,
        }
        .clamp(1, n_chunks);
        if opts.threads > 1 && threads > 1 && self.pool.as_ref().map(|p| p.0) != Some(threads) {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .map_err(|e| ExecError::Threads(e.to_string()))?;
            self.pool = Some((threads, pool));
        }
        while self.workers.len() < threads {
            self.workers.push(Worker::new(plan));
        }
        // Every output cut at chunk boundaries, chunk by chunk: chunk `c` owns
        // `slices[c * n_outs..(c + 1) * n_outs]`.
        let n_outs = self.outputs.outputs.len();
        let mut slices: Vec<OutSlice<'_>> = Vec::with_capacity(n_chunks * n_outs);
        let mut cut: Vec<std::vec::IntoIter<OutSlice<'_>>> = self
            .outputs
            .outputs
            .iter_mut()
            .map(|o| {
                let w = o.info.width.max(1);
                let v: Vec<OutSlice<'_>> = match &mut o.data {
                    OutputData::F32(v) => v.chunks_mut(cr * w).map(OutSlice::F32).collect(),
                    OutputData::F64(v) => v.chunks_mut(cr * w).map(OutSlice::F64).collect(),
                    OutputData::I64(v) => v.chunks_mut(cr * w).map(OutSlice::I64).collect(),
                };
                v.into_iter()
            })
            .collect();
        for _ in 0..n_chunks {
            slices.extend(cut.iter_mut().filter_map(Iterator::next));
        }
        // Threads take chunks one at a time until none is left, so that a thread that runs
        // slower (a busy core) does less of the work instead of holding up the batch.
        let queue = Mutex::new(slices.chunks_mut(n_outs.max(1)).enumerate());
        let run = |worker: &mut Worker| loop {
            let next = queue.lock().unwrap_or_else(PoisonError::into_inner).next();
            let Some((c, outs)) = next else { break };
            let row0 = c * cr;
            let len = cr.min(n - row0);
            exec::run_chunk(plan, worker, &Source::Batch(batch, row0), len);
            for (k, out) in outs.iter_mut().enumerate() {
                let dst = match out {
                    OutSlice::F32(d) => OutSlice::F32(d),
                    OutSlice::F64(d) => OutSlice::F64(d),
                    OutSlice::I64(d) => OutSlice::I64(d),
                };
                exec::extract(plan, worker, k, len, dst, 0);
            }
        };
        let workers = &mut self.workers[..threads];
        if let [worker] = workers {
            run(worker);
        } else if let (true, Some((_, pool))) = (opts.threads > 1, &self.pool) {
            pool.install(|| workers.par_iter_mut().for_each(run));
        } else {
            workers.par_iter_mut().for_each(run);
        }
        Ok(&self.outputs)
    }

    fn predict_one(&mut self, src: Source<'_, '_>, len: usize) -> Result<&Outputs, ExecError> {
        let model = &self.model;
        let plan = &model.plan;
        if len != plan.n_features {
            return Err(ExecError::Input(format!(
                "{}: the row has {len} values but the model takes {} features",
                model.file.name(),
                plan.n_features
            )));
        }
        if self.workers.is_empty() {
            self.workers.push(Worker::new(plan));
        }
        let worker = &mut self.workers[0];
        exec::run_chunk(plan, worker, &src, 1);
        self.outputs.n_rows = 1;
        for (k, o) in self.outputs.outputs.iter_mut().enumerate() {
            let len = o.info.width.max(1);
            let dst = match &mut o.data {
                OutputData::F32(v) => {
                    v.resize(len, 0.0);
                    OutSlice::F32(v)
                }
                OutputData::F64(v) => {
                    v.resize(len, 0.0);
                    OutSlice::F64(v)
                }
                OutputData::I64(v) => {
                    v.resize(len, 0);
                    OutSlice::I64(v)
                }
            };
            exec::extract(plan, worker, k, 1, dst, 0);
        }
        Ok(&self.outputs)
    }

    /// Runs one row of f64 features with no heap allocation (after the first call).
    pub fn predict_row(&mut self, row: &[f64]) -> Result<&Outputs, ExecError> {
        self.predict_one(Source::RowF64(row), row.len())
    }

    /// Runs one row of f32 features with no heap allocation (after the first call).
    pub fn predict_row_f32(&mut self, row: &[f32]) -> Result<&Outputs, ExecError> {
        self.predict_one(Source::RowF32(row), row.len())
    }
}
