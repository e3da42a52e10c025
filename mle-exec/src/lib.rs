//! # mle-exec
//!
//! SKELETON — the public API contract; `mle-exec` owner fills in the bodies.
//!
//! Load a `.mle` model once ([`Model::load`]), compile it into a plan, then predict a batch of
//! columns ([`Session::predict_batch`]) or one row with no heap allocation per call
//! ([`Session::predict_row`]). Operators and their semantics: `docs/OPS.md`.

#![warn(missing_docs)]

pub mod batch;
pub mod error;

pub use batch::{Batch, Column, ColumnData};
pub use error::ExecError;

use std::path::Path;
use std::sync::Arc;

use mle_format::{DType, Metadata, MleFile, ReadOptions};

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
    /// Worker threads: 1 runs on the calling thread; 0 uses rayon's global pool.
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
    // plan: Plan, ...
}

impl Model {
    /// Opens, validates and compiles a model file.
    pub fn load(path: impl AsRef<Path>, opts: &ReadOptions) -> Result<Model, ExecError> {
        Self::compile(MleFile::open(path, opts)?)
    }

    /// Compiles an opened file: checks the graph, infers shapes, fuses, picks kernels.
    pub fn compile(file: MleFile) -> Result<Model, ExecError> {
        let _ = &file;
        todo!("mle-exec owner")
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
        todo!("mle-exec owner")
    }

    /// The outputs this model produces.
    pub fn outputs(&self) -> &[OutputInfo] {
        todo!("mle-exec owner")
    }

    /// Planned peak bytes of intermediate buffers for a batch of `n_rows`.
    pub fn peak_memory_bytes(&self, n_rows: usize) -> usize {
        let _ = n_rows;
        todo!("mle-exec owner")
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
}

impl Session {
    /// A session for `model`.
    pub fn new(model: Arc<Model>) -> Session {
        Session {
            model,
            outputs: Outputs::default(),
        }
    }

    /// The model.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Runs a batch; the result borrows the session's buffers.
    pub fn predict_batch(
        &mut self,
        batch: &Batch<'_>,
        opts: RunOptions,
    ) -> Result<&Outputs, ExecError> {
        let _ = (batch, opts);
        todo!("mle-exec owner")
    }

    /// Runs one row of f64 features with no heap allocation (after the first call).
    pub fn predict_row(&mut self, row: &[f64]) -> Result<&Outputs, ExecError> {
        let _ = row;
        todo!("mle-exec owner")
    }

    /// Runs one row of f32 features with no heap allocation (after the first call).
    pub fn predict_row_f32(&mut self, row: &[f32]) -> Result<&Outputs, ExecError> {
        let _ = row;
        todo!("mle-exec owner")
    }
}
