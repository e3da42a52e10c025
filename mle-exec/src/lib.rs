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
//!     input: InputSchema { feature_names: vec!["a".into(), "b".into()], dtype: DType::F64, shape: vec![-1, 2], features: vec![] },
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
//! operator not in [`ops`]); compilation never panics. Then it:
//! - dequantizes f16/int8 weights to f32 and lays dense weights out as `[M, K]` row-major;
//! - folds trivial constants: `Identity`, `Flatten`, `Reshape` and a `Cast` to the same dtype
//!   become aliases of their input (no copy); `x + 0`, `x − 0`, `x · 1`, `x / 1` vanish; batch
//!   norm becomes one scale and shift per channel;
//! - fuses a dense layer (`Gemm`, `MatMul`, `LinearModel`) with a following `Add`/`Sub` of a
//!   per-output constant (into its bias) and a following activation (into its epilogue), and a
//!   `Scaler` or `Affine` (without `bias`) into a following `LinearModel` (`coef·scale` or `coef/divisor`,
//!   `intercept − Σ coef'·offset`);
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
//! ## Strings and categories
//!
//! A batch column may hold strings ([`ColumnData::Str`]: Arrow `Utf8`, `LargeUtf8` or
//! `Utf8View`, borrowed in place) or a dictionary of them ([`ColumnData::Dict`]);
//! [`Batch::from_strided`] checks every offset, view, key and UTF-8 string first. Strings
//! reach a model only through its `Lookup` ops (docs/OPS.md, "Input stage"): the compiler folds
//! the chain of Lookups at the graph input into an input stage, whose vocabulary indexes are
//! built at compile time; each batch runs it once before the steps (a dictionary is mapped
//! once per batch, then each row gathers its key's code), into buffers the session reuses, so
//! every step sees numbers only. [`Session::predict_row_typed`] takes one row of [`Value`]s
//! (numbers, strings, booleans, missing) with no heap allocation per call once warm.
//!
//! ## Operators
//!
//! `docs/OPS.md` (at the workspace root) states every operator's inputs, attributes and
//! semantics; [`ops`] lists the operators this executor runs with the attributes each reads
//! (the two are checked against each other by a test). A node may carry attributes its
//! operator does not read; they are ignored.

#![warn(missing_docs)]

pub mod batch;
pub mod error;
pub mod explain;
pub mod tree;

mod exec;
mod kernels;
mod lookup;
mod memory;
mod plan;
mod real;

pub use batch::{
    Batch, Column, ColumnData, DictColumn, DictKeys, StrColumn, StrData, StrValue, Validity,
};
pub use error::ExecError;
pub use explain::{ExplainInfo, Explanation, LeafIndices, Unexplainable};
pub use plan::{ops, OpSpec, MAX_PLAN_BYTES, PLAN_BYTES_PER_FILE_BYTE};

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

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
    /// The explainer, built on first use ([`Session::explain_batch`], [`Session::apply_batch`]).
    explainer: OnceLock<Result<explain::Explainer, Unexplainable>>,
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
        Ok(Model {
            file,
            plan,
            explainer: OnceLock::new(),
        })
    }

    /// The model's explainer (built once, on first use), or why it has none.
    fn explainer(&self) -> Result<&explain::Explainer, ExecError> {
        self.explainer
            .get_or_init(|| explain::analyze(self))
            .as_ref()
            .map_err(|reason| ExecError::NotExplainable {
                model: self.file.name().to_string(),
                reason: reason.clone(),
            })
    }

    fn explain_info_of(&self, ex: &explain::Explainer) -> ExplainInfo {
        let names = &self.metadata().input.feature_names;
        ExplainInfo {
            n_features: ex.n_features,
            n_outputs: ex.n_targets,
            n_trees: ex.trees.len(),
            feature_names: (0..ex.n_features)
                .map(|j| names.get(j).cloned().unwrap_or_else(|| format!("f{j}")))
                .collect(),
        }
    }

    /// The shape of [`Session::explain_batch`]'s result, or [`ExecError::NotExplainable`]
    /// naming why this model has no explanations (not one `TreeEnsemble` reading the input
    /// features, or no node covers).
    pub fn explain_info(&self) -> Result<ExplainInfo, ExecError> {
        let ex = self.explainer()?;
        if let Err(reason) = &ex.shap {
            return Err(ExecError::NotExplainable {
                model: self.file.name().to_string(),
                reason: reason.clone(),
            });
        }
        Ok(self.explain_info_of(ex))
    }

    /// The shape of [`Session::apply_batch`]'s result (needs no covers), or
    /// [`ExecError::NotExplainable`] naming why this model has no leaf indices.
    pub fn apply_info(&self) -> Result<ExplainInfo, ExecError> {
        Ok(self.explain_info_of(self.explainer()?))
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

    /// `feature "name"` (from the metadata's feature names) or `feature j` (without names),
    /// for messages.
    pub(crate) fn feature_label(&self, j: usize) -> String {
        match self.metadata().input.feature_names.get(j) {
            Some(name) => format!("feature {name:?} (column {j})"),
            None => format!("feature {j}"),
        }
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
    run: Runner,
    lookup: LookupScratch,
    explain: explain::ExplainScratch,
}

/// The outputs, the per-thread workers and the thread pool.
struct Runner {
    outputs: Outputs,
    workers: Vec<Worker>,
    pool: Option<(usize, rayon::ThreadPool)>,
}

/// The input stage's buffers, reused across calls.
#[derive(Default)]
struct LookupScratch {
    /// Codes of the batch's looked-up columns (`n` per column).
    codes: Vec<f32>,
    /// A dictionary mapped to codes.
    dict: Vec<u32>,
    /// The columns of the batch the steps read (codes in place of looked-up columns); kept
    /// empty between calls, for its allocation.
    cols: Vec<Column<'static>>,
    /// One row after the input stage.
    row: Vec<f64>,
}

/// An empty vector of columns, reusing `v`'s allocation (in-place collection: same layout).
fn recycle(mut v: Vec<Column<'_>>) -> Vec<Column<'static>> {
    v.clear();
    // Never called (the vector is empty): it only changes the element's lifetime.
    v.into_iter()
        .map(|c| Column {
            data: ColumnData::F64(&[]),
            offset: c.offset,
            stride: c.stride,
        })
        .collect()
}

/// One value of a typed row ([`Session::predict_row_typed`]).
#[derive(Clone, Copy, Debug)]
pub enum Value<'a> {
    /// A number (NaN is missing).
    Num(f64),
    /// A string: the category of a string or category feature (through the model's Lookup).
    Str(&'a str),
    /// A boolean: 0 or 1.
    Bool(bool),
    /// Missing (NULL).
    Missing,
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
            run: Runner {
                outputs: Outputs { outputs, n_rows: 0 },
                workers: Vec::new(),
                pool: None,
            },
            lookup: LookupScratch::default(),
            explain: explain::ExplainScratch::default(),
        }
    }

    /// The model.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Runs a batch; the result borrows the session's buffers.
    ///
    /// The model's `Lookup`s run first (the input stage): string and dictionary columns of
    /// looked-up features become codes (a dictionary is mapped once per batch), numbers for
    /// an integer vocabulary are mapped to codes, numbers for a string vocabulary are codes
    /// already. A string column for a feature without a Lookup is an [`ExecError::Input`]
    /// naming the feature.
    pub fn predict_batch(
        &mut self,
        batch: &Batch<'_>,
        opts: RunOptions,
    ) -> Result<&Outputs, ExecError> {
        let model = self.model.clone();
        let needs_view = self.check_batch(batch)?;
        self.run.resize_outputs(batch.n_rows());
        if batch.n_rows() == 0 {
            return Ok(&self.run.outputs);
        }
        self.staged(batch, needs_view, |run, _, b| {
            run.run_batch(&model.plan, b, opts)
        })?;
        Ok(&self.run.outputs)
    }

    /// [`Session::predict_batch`], handing the output buffers over instead of lending them:
    /// the caller owns them (numpy arrays and Arrow buffers take a `Vec` without a copy) and
    /// the session allocates fresh, zeroed ones for its next run.
    pub fn predict_batch_owned(
        &mut self,
        batch: &Batch<'_>,
        opts: RunOptions,
    ) -> Result<Outputs, ExecError> {
        self.predict_batch(batch, opts)?;
        Ok(self.run.take_outputs())
    }

    /// Exact path-dependent TreeSHAP contributions of every row of `batch` to the model's
    /// `TreeEnsemble` output (the raw margin, before post-transforms; base scores in the bias),
    /// as XGBoost's `pred_contribs` and LightGBM's `pred_contrib` (module [`explain`]):
    /// `[n, n_outputs, n_features + 1]`, bias last; for every row and output the values add up
    /// to the margin. Strings and dictionary columns go through the model's `Lookup`s as in
    /// [`Session::predict_batch`] (a category feature contributes under its name). Threads as
    /// [`RunOptions::threads`] (bit-identical results whatever the count); no allocation per
    /// row, none per call once warm for the same batch size. The result borrows the session.
    ///
    /// [`ExecError::NotExplainable`] when the model is not one `TreeEnsemble` over the input
    /// features (followed by post-transforms only) or has no node covers.
    pub fn explain_batch(
        &mut self,
        batch: &Batch<'_>,
        opts: RunOptions,
    ) -> Result<&explain::Explanation, ExecError> {
        let model = self.model.clone();
        let ex = model.explainer()?;
        let shap = ex
            .shap
            .as_ref()
            .map_err(|reason| ExecError::NotExplainable {
                model: model.file.name().to_string(),
                reason: reason.clone(),
            })?;
        let needs_view = self.check_batch(batch)?;
        if self.explain.explanation.feature_names.len() != ex.n_features {
            self.explain.explanation.feature_names = model.explain_info_of(ex).feature_names;
        }
        self.staged(batch, needs_view, |run, xs, b| {
            xs.explain(ex, shap, b, opts, &mut run.pool)
        })?;
        Ok(&self.explain.explanation)
    }

    /// The leaf each row of `batch` reaches in each tree, `[n, n_trees]`, numbered as the
    /// source framework numbers leaves (XGBoost `pred_leaf` and scikit-learn `apply`: the node
    /// id in the tree; LightGBM `pred_leaf`: the leaf index; docs/OPS.md `leaf_ids`). Needs no
    /// covers; otherwise as [`Session::explain_batch`].
    pub fn apply_batch(
        &mut self,
        batch: &Batch<'_>,
        opts: RunOptions,
    ) -> Result<&explain::LeafIndices, ExecError> {
        let model = self.model.clone();
        let ex = model.explainer()?;
        let needs_view = self.check_batch(batch)?;
        self.staged(batch, needs_view, |run, xs, b| {
            xs.apply(ex, b, opts, &mut run.pool)
        })?;
        Ok(&self.explain.leaves)
    }

    /// Checks the batch's width and that string columns go to looked-up features; returns
    /// whether the input stage must replace columns by codes.
    fn check_batch(&self, batch: &Batch<'_>) -> Result<bool, ExecError> {
        let model = &self.model;
        let plan = &model.plan;
        if batch.n_columns() != plan.n_features {
            return Err(ExecError::Input(format!(
                "{}: the batch has {} columns but the model takes {} features",
                model.file.name(),
                batch.n_columns(),
                plan.n_features
            )));
        }
        let mut needs_view = false;
        for (j, c) in batch.columns().iter().enumerate() {
            match plan.lookup_of.get(j).copied().flatten() {
                // `missing = error` checks its column even when it needs no codes.
                Some(k) => {
                    let st = &plan.lookups[k];
                    needs_view |= st.needs_codes(c) || st.reads_numbers();
                }
                None if c.is_string() => {
                    return Err(ExecError::Input(format!(
                        "{}: {} is numeric in this model (no Lookup turns its strings into codes), but the batch gives it a string column",
                        model.file.name(),
                        model.feature_label(j)
                    )))
                }
                None => {}
            }
        }
        Ok(needs_view)
    }

    /// Runs `f` on the batch after the input stage: `batch` itself when no column needs
    /// codes, else a view with each looked-up column replaced by its codes (`n` values per
    /// column, 1 for a broadcast literal), built in the session's reused buffers.
    fn staged<R>(
        &mut self,
        batch: &Batch<'_>,
        needs_view: bool,
        f: impl FnOnce(&mut Runner, &mut explain::ExplainScratch, &Batch<'_>) -> Result<R, ExecError>,
    ) -> Result<R, ExecError> {
        let model = self.model.clone();
        let plan = &model.plan;
        if !needs_view || batch.n_rows() == 0 {
            return f(&mut self.run, &mut self.explain, batch);
        }
        let n = batch.n_rows();
        // The input stage: codes of every looked-up column that needs them, `n` values per
        // column (1 for a broadcast literal), then a view of the batch with those columns
        // replaced.
        let LookupScratch {
            codes, dict, cols, ..
        } = &mut self.lookup;
        let n_code = plan
            .lookups
            .iter()
            .filter(|st| st.needs_codes(&batch.columns()[st.feature]))
            .count();
        if codes.len() < n_code * n {
            codes.resize(n_code * n, 0.0);
        }
        let mut spans = codes.chunks_mut(n);
        let mut view: Vec<Column<'_>> = std::mem::take(cols);
        view.extend_from_slice(batch.columns());
        let mut slot = 0;
        for st in &plan.lookups {
            let c = batch.columns()[st.feature];
            let rows = if c.stride == 0 { 1 } else { n };
            let coded = st.needs_codes(&c);
            let done = if coded {
                let Some(span) = spans.next() else { break };
                st.codes(&c, &mut span[..rows], dict)
            } else {
                st.check_missing(&c, rows)
            };
            if let Err(m) = done {
                *cols = recycle(view);
                return Err(ExecError::Input(m.message(
                    model.file.name(),
                    &model.feature_label(st.feature),
                    st,
                )));
            }
            slot += usize::from(coded);
        }
        debug_assert_eq!(slot, n_code);
        // The codes, read-only from here on: column k of the view reads its span.
        let codes: &[f32] = codes;
        let mut spans = codes.chunks(n);
        for st in &plan.lookups {
            let c = batch.columns()[st.feature];
            if !st.needs_codes(&c) {
                continue;
            }
            let Some(span) = spans.next() else { break };
            view[st.feature] = Column {
                data: ColumnData::F32(span),
                offset: 0,
                stride: if c.stride == 0 { 0 } else { 1 },
            };
        }
        let view = Batch::trusted(view, n);
        let r = f(&mut self.run, &mut self.explain, &view);
        *cols = recycle(view.into_columns());
        r
    }

    /// Runs one row of f64 features with no heap allocation (after the first call). A
    /// feature with an integer vocabulary takes the category's value (mapped to its code);
    /// one with a string vocabulary takes the code.
    pub fn predict_row(&mut self, row: &[f64]) -> Result<&Outputs, ExecError> {
        let model = self.model.clone();
        let plan = &model.plan;
        if !plan.lookups.iter().any(|st| st.reads_numbers()) {
            return self.run.predict_one(&model, Source::RowF64(row), row.len());
        }
        self.check_row_len(row.len())?;
        let buf = &mut self.lookup.row;
        buf.clear();
        buf.extend_from_slice(row);
        self.numeric_lookups()?;
        self.run
            .predict_one(&model, Source::RowF64(&self.lookup.row), row.len())
    }

    /// Runs one row of f32 features with no heap allocation (after the first call); as
    /// [`Session::predict_row`].
    pub fn predict_row_f32(&mut self, row: &[f32]) -> Result<&Outputs, ExecError> {
        let model = self.model.clone();
        let plan = &model.plan;
        if !plan.lookups.iter().any(|st| st.reads_numbers()) {
            return self.run.predict_one(&model, Source::RowF32(row), row.len());
        }
        self.check_row_len(row.len())?;
        let buf = &mut self.lookup.row;
        buf.clear();
        buf.extend(row.iter().map(|&v| v as f64));
        self.numeric_lookups()?;
        self.run
            .predict_one(&model, Source::RowF64(&self.lookup.row), row.len())
    }

    /// Runs one typed row (numbers, strings, booleans, missing values) with no heap
    /// allocation per call once warm. `Bool` is 0 or 1, `Missing` is NaN; `Str` is the
    /// category of a feature the model looks up (through its `Lookup`); a string for any
    /// other feature, or for a feature with integer categories, is an [`ExecError::Input`]
    /// naming the feature. Numbers go through the input stage as in
    /// [`Session::predict_row`].
    pub fn predict_row_typed(&mut self, row: &[Value<'_>]) -> Result<&Outputs, ExecError> {
        let model = self.model.clone();
        let plan = &model.plan;
        self.check_row_len(row.len())?;
        let buf = &mut self.lookup.row;
        buf.clear();
        for (j, v) in row.iter().enumerate() {
            let x = match *v {
                Value::Num(x) => x,
                Value::Bool(b) => b as u8 as f64,
                Value::Missing => f64::NAN,
                Value::Str(s) => {
                    let Some(st) = plan
                        .lookup_of
                        .get(j)
                        .copied()
                        .flatten()
                        .map(|k| &plan.lookups[k])
                    else {
                        return Err(ExecError::Input(format!(
                            "{}: {} is numeric in this model (no Lookup turns strings into codes), but the row gives it the string {:?}",
                            model.file.name(),
                            model.feature_label(j),
                            lookup::truncate(s)
                        )));
                    };
                    match st.code_of_str(s.as_bytes()) {
                        Ok(c) => c as f64,
                        Err(m) => {
                            return Err(ExecError::Input(m.message(
                                model.file.name(),
                                &model.feature_label(j),
                                st,
                            )))
                        }
                    }
                }
            };
            buf.push(x);
        }
        // Numbers (and booleans) for integer vocabularies; strings were coded above.
        for st in &plan.lookups {
            let Some(&x) = self.lookup.row.get(st.feature) else {
                continue;
            };
            if st.reads_numbers() && !matches!(row.get(st.feature), Some(Value::Str(_))) {
                let code = st.code_of_f64(x).map_err(|m| {
                    ExecError::Input(m.message(
                        model.file.name(),
                        &model.feature_label(st.feature),
                        st,
                    ))
                })?;
                if let Some(o) = self.lookup.row.get_mut(st.feature) {
                    *o = code;
                }
            }
        }
        self.run
            .predict_one(&model, Source::RowF64(&self.lookup.row), row.len())
    }

    fn check_row_len(&self, len: usize) -> Result<(), ExecError> {
        let f = self.model.plan.n_features;
        if len != f {
            return Err(ExecError::Input(format!(
                "{}: the row has {len} values but the model takes {f} features",
                self.model.file.name()
            )));
        }
        Ok(())
    }

    /// Maps the numbers of `self.lookup.row` through the integer vocabularies.
    fn numeric_lookups(&mut self) -> Result<(), ExecError> {
        let model = &self.model;
        for st in &model.plan.lookups {
            if st.reads_numbers() {
                if let Some(x) = self.lookup.row.get_mut(st.feature) {
                    *x = st.code_of_f64(*x).map_err(|m| {
                        ExecError::Input(m.message(
                            model.file.name(),
                            &model.feature_label(st.feature),
                            st,
                        ))
                    })?;
                }
            }
        }
        Ok(())
    }
}

impl Runner {
    fn resize_outputs(&mut self, n: usize) {
        /// `v` with `len` values: resized in place when it has the room, else a fresh zeroed
        /// allocation (the allocator's zero pages; nothing to copy or fill by hand), as after
        /// [`Runner::take_outputs`].
        fn sized<T: Copy + Default>(v: &mut Vec<T>, len: usize) {
            if v.capacity() >= len {
                v.resize(len, T::default());
            } else {
                *v = vec![T::default(); len];
            }
        }
        self.outputs.n_rows = n;
        for o in &mut self.outputs.outputs {
            let len = n * o.info.width.max(1);
            match &mut o.data {
                OutputData::F32(v) => sized(v, len),
                OutputData::F64(v) => sized(v, len),
                OutputData::I64(v) => sized(v, len),
            }
        }
    }

    /// The outputs of the last run, moved out (the session keeps empty buffers of the same
    /// outputs).
    fn take_outputs(&mut self) -> Outputs {
        let outputs = self
            .outputs
            .outputs
            .iter_mut()
            .map(|o| Output {
                info: o.info.clone(),
                data: match &mut o.data {
                    OutputData::F32(v) => OutputData::F32(std::mem::take(v)),
                    OutputData::F64(v) => OutputData::F64(std::mem::take(v)),
                    OutputData::I64(v) => OutputData::I64(std::mem::take(v)),
                },
            })
            .collect();
        Outputs {
            outputs,
            n_rows: std::mem::take(&mut self.outputs.n_rows),
        }
    }

    /// Runs the plan's steps over every chunk of `batch` (numeric columns only), into the
    /// outputs (already sized for its rows).
    fn run_batch(
        &mut self,
        plan: &Plan,
        batch: &Batch<'_>,
        opts: RunOptions,
    ) -> Result<(), ExecError> {
        let n = batch.n_rows();
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
        Ok(())
    }

    fn predict_one(
        &mut self,
        model: &Model,
        src: Source<'_, '_>,
        len: usize,
    ) -> Result<&Outputs, ExecError> {
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
}
