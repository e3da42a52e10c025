//! The `Runtime` class: a compiled model (from `mle-arrow`'s shared cache, or from bytes) and
//! its pool of execution sessions.
//!
//! Numpy matrices go to the executor directly (a zero-copy row-major view); tables (anything
//! with the Arrow PyCapsule interface: pyarrow, Polars, pandas through pyarrow) cross by the
//! Arrow C interfaces ([`crate::arrow_input`]) and bind to the features by name through
//! `mle-arrow`'s input policy, one record batch at a time; what comes back
//! follows `mle-arrow`'s output contract, the same as SQL, Polars and the CLI: a classifier
//! is recognised by the metadata's task, its class indices are mapped to class labels by
//! [`mle_arrow::class_column`], and probabilities are float64 ([`mle_arrow::probabilities_f64`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use mle_arrow::cache::{CacheError, CachedModel, ModelCache, SessionPool, MAX_IDLE_SESSIONS};
use mle_arrow::{
    class_column, probabilities_f64, ArrowError, BoundColumns, ClassColumn, Features, OutputKind,
    LABEL, PROBABILITIES,
};
use mle_exec::{Batch, ExecError, Model, OutputData, Outputs, RunOptions};
use mle_format::{Categories, InputKind, MleFile, PublicKey, ReadOptions};
use numpy::{
    PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray2, PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::arrow_input::{bind_error, import_batches, is_arrow};
use crate::errors::{from_exec, from_format, py_err, Kind};

/// Reads an optional public key given as a key file path or as the key's raw bytes.
pub fn public_key(key: Option<&Bound<'_, PyAny>>) -> PyResult<Option<PublicKey>> {
    let Some(key) = key else { return Ok(None) };
    if key.is_none() {
        return Ok(None);
    }
    if let Ok(b) = key.cast::<PyBytes>() {
        return mle_format::sign::public_key_from_bytes(b.as_bytes(), Path::new("<bytes>"))
            .map(Some)
            .map_err(from_format);
    }
    let path: PathBuf = key.extract().map_err(|_| {
        py_err(
            Kind::Security,
            "public_key must be a key file path or the key's bytes",
        )
    })?;
    mle_format::read_public_key(path)
        .map(Some)
        .map_err(from_format)
}

/// Input matrix borrowed from numpy: C-contiguous f32 or f64, `[n_rows, n_cols]`.
enum InputView<'py> {
    F32(PyReadonlyArray2<'py, f32>),
    F64(PyReadonlyArray2<'py, f64>),
}

impl<'py> InputView<'py> {
    fn extract(x: &Bound<'py, PyAny>) -> PyResult<Self> {
        // A type check and a shared borrow per dtype (no Python error built for the dtype
        // that does not match: this runs on every call, single rows included).
        let borrowed = |e: numpy::BorrowError| py_err(Kind::Input, format!("input array: {e}"));
        if let Ok(a) = x.cast::<PyArray2<f64>>() {
            return a.try_readonly().map(InputView::F64).map_err(borrowed);
        }
        if let Ok(a) = x.cast::<PyArray2<f32>>() {
            return a.try_readonly().map(InputView::F32).map_err(borrowed);
        }
        Err(py_err(
            Kind::Input,
            "input must be a 2-D numpy array of float32 or float64",
        ))
    }

    fn shape(&self) -> (usize, usize) {
        let s = match self {
            InputView::F32(a) => a.shape(),
            InputView::F64(a) => a.shape(),
        };
        (
            s.first().copied().unwrap_or(0),
            s.get(1).copied().unwrap_or(0),
        )
    }

    /// The data as a borrowed slice (no copy); fails for non-C-contiguous arrays.
    fn slice(&self) -> PyResult<Slice<'_>> {
        let not_contig = |_| {
            py_err(
                Kind::Input,
                "input must be C-contiguous (use np.ascontiguousarray)",
            )
        };
        Ok(match self {
            InputView::F32(a) => Slice::F32(a.as_slice().map_err(not_contig)?),
            InputView::F64(a) => Slice::F64(a.as_slice().map_err(not_contig)?),
        })
    }
}

/// Below this many rows (one thread) a call keeps the GIL: releasing and re-taking it costs
/// about as much as the model itself on such batches.
const DETACH_MIN_ROWS: usize = 64;

/// A borrowed input slice that can cross `Python::detach`.
#[derive(Clone, Copy)]
enum Slice<'a> {
    F32(&'a [f32]),
    F64(&'a [f64]),
}

impl<'a> Slice<'a> {
    fn batch(self, n_rows: usize, n_cols: usize) -> Result<Batch<'a>, ExecError> {
        match self {
            Slice::F32(d) => Batch::from_row_major_f32(d, n_rows, n_cols),
            Slice::F64(d) => Batch::from_row_major_f64(d, n_rows, n_cols),
        }
    }
}

/// Where a runtime's model and sessions live.
enum Source {
    /// From the shared cache (`mle-arrow`): one compiled model and session pool per file
    /// version and trust policy, shared with every front end in the process.
    Cached(Arc<CachedModel>),
    /// From bytes in memory: a model of its own, with a pool of the same kind.
    Memory(Arc<Model>, SessionPool),
}

/// A loaded `.mle` model, ready to run. Thread-safe: concurrent calls each take a session
/// from a pool, and the GIL is released while the model runs (batches of 64 rows or more).
#[pyclass(module = "mle_runtime._native", frozen)]
pub struct Runtime {
    source: Source,
    /// The output contract (`None` for models that are neither classifiers nor have a
    /// `prediction` output, e.g. exported transformers: their outputs are returned as is).
    kind: Option<OutputKind>,
    name: String,
}

impl Runtime {
    fn from_source(source: Source, name: String) -> Self {
        let model = match &source {
            Source::Cached(c) => c.model().clone(),
            Source::Memory(m, _) => m.clone(),
        };
        Runtime {
            kind: OutputKind::of_model(&model).ok(),
            source,
            name,
        }
    }

    fn model(&self) -> &Arc<Model> {
        match &self.source {
            Source::Cached(c) => c.model(),
            Source::Memory(m, _) => m,
        }
    }

    fn pool(&self) -> &SessionPool {
        match &self.source {
            Source::Cached(c) => c.sessions(),
            Source::Memory(_, p) => p,
        }
    }

    fn check_width(&self, n_cols: usize) -> PyResult<()> {
        let want = self.model().n_features();
        if n_cols != want {
            return Err(py_err(
                Kind::Input,
                format!(
                    "{}: the model takes {want} features per row but the input has {n_cols} columns",
                    self.name
                ),
            ));
        }
        Ok(())
    }

    /// Runs `x` and returns owned outputs; the GIL is released unless the batch is tiny.
    /// A numpy matrix binds by position; a table (Arrow PyCapsule interface) by name.
    fn execute(&self, py: Python<'_>, x: &Bound<'_, PyAny>, threads: usize) -> PyResult<Outputs> {
        if !x.is_instance_of::<PyUntypedArray>() && is_arrow(x) {
            return self.execute_arrow(py, x, threads);
        }
        let view = InputView::extract(x)?;
        let (n_rows, n_cols) = view.shape();
        self.check_width(n_cols)?;
        let slice = view.slice()?;
        let run = || {
            self.pool().with_session(|session| {
                slice
                    .batch(n_rows, n_cols)
                    .and_then(|b| session.predict_batch_owned(&b, RunOptions { threads }))
            })
        };
        let result = if n_rows < DETACH_MIN_ROWS && threads <= 1 {
            run()
        } else {
            py.detach(run)
        };
        result.map_err(from_exec)
    }

    /// The record batches of a table and the columns of the model's features, by name (a
    /// missing feature is an `InputError` naming it).
    fn import_table(&self, x: &Bound<'_, PyAny>) -> PyResult<Table> {
        let (schema, mut batches) = import_batches(x)?;
        let features = Features::of_model(self.model());
        let idx = features
            .columns_by_name(&schema)
            .map_err(|e| bind_error(e, &self.name))?;
        batches.retain(|b| b.num_rows() > 0);
        if batches.is_empty() {
            batches.push(RecordBatch::new_empty(schema));
        }
        Ok(Table {
            features,
            batches,
            idx,
        })
    }

    /// Runs a table: its record batches (every chunk of a stream) are bound to the model's
    /// features by name (extra columns ignored; a missing feature or a column of the wrong
    /// type is an `InputError` naming it) and run one after the other; the outputs are
    /// concatenated in row order.
    fn execute_arrow(
        &self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        threads: usize,
    ) -> PyResult<Outputs> {
        let table = self.import_table(x)?;
        let n_rows: usize = table.batches.iter().map(RecordBatch::num_rows).sum();
        let run = || -> Result<Outputs, ArrowError> {
            let mut acc: Option<Outputs> = None;
            for b in &table.batches {
                let bound = BoundColumns::bind_at(b, &table.idx, &table.features)?;
                let batch = bound.batch()?;
                let out = self.pool().with_session(|session| {
                    session.predict_batch_owned(&batch, RunOptions { threads })
                })?;
                append_outputs(&mut acc, out)?;
            }
            Ok(acc.unwrap_or_default())
        };
        let result = if n_rows < DETACH_MIN_ROWS && threads <= 1 {
            run()
        } else {
            py.detach(run)
        };
        result.map_err(|e| bind_error(e, &self.name))
    }

    /// Runs `f` on each executor batch of `x` in row order: a numpy matrix is one batch
    /// (bound by position), a table one per record batch (bound by name through `mle-arrow`'s
    /// input policy, as [`Runtime::execute_arrow`] binds them). The GIL is released unless the
    /// input is tiny.
    fn for_each_batch(
        &self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        threads: usize,
        f: &mut (dyn FnMut(&mut mle_exec::Session, &Batch<'_>) -> Result<(), ArrowError> + Send),
    ) -> PyResult<()> {
        let detach = |n_rows: usize| n_rows >= DETACH_MIN_ROWS || threads > 1;
        if !x.is_instance_of::<PyUntypedArray>() && is_arrow(x) {
            let table = self.import_table(x)?;
            let n_rows: usize = table.batches.iter().map(RecordBatch::num_rows).sum();
            let mut run = || -> Result<(), ArrowError> {
                for b in &table.batches {
                    let bound = BoundColumns::bind_at(b, &table.idx, &table.features)?;
                    let batch = bound.batch()?;
                    self.pool().with_session(|s| f(s, &batch))?;
                }
                Ok(())
            };
            let r = if detach(n_rows) {
                py.detach(run)
            } else {
                run()
            };
            return r.map_err(|e| bind_error(e, &self.name));
        }
        let view = InputView::extract(x)?;
        let (n_rows, n_cols) = view.shape();
        self.check_width(n_cols)?;
        let slice = view.slice()?;
        let mut run = || -> Result<(), ArrowError> {
            let batch = slice.batch(n_rows, n_cols)?;
            self.pool().with_session(|s| f(s, &batch))
        };
        let r = if detach(n_rows) {
            py.detach(run)
        } else {
            run()
        };
        r.map_err(|e| bind_error(e, &self.name))
    }

    /// One output as numpy under the output contract: a classifier's `label` as class labels,
    /// its `probabilities` as float64; anything else as the executor returned it.
    fn contract_output<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        data: OutputData,
        n_rows: usize,
        width: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let Some(OutputKind::Classifier { n_classes, .. }) = &self.kind else {
            return output_to_py(py, data, n_rows, width);
        };
        let contract = |e: mle_arrow::ArrowError| py_err(Kind::Base, format!("{}: {e}", self.name));
        match (name, data) {
            (LABEL, OutputData::I64(idx)) => {
                match class_column(self.model().metadata(), *n_classes, &idx).map_err(contract)? {
                    ClassColumn::Int(v) => Ok(PyArray1::from_vec(py, v).into_any()),
                    ClassColumn::Str(v) => {
                        // One Python string per class, shared by the rows of that class.
                        let mut interned: HashMap<*const u8, Py<PyAny>> = HashMap::new();
                        let objects: Vec<Py<PyAny>> = v
                            .iter()
                            .map(|s| {
                                interned
                                    .entry(s.as_ptr())
                                    .or_insert_with(|| PyString::new(py, s).into_any().unbind())
                                    .clone_ref(py)
                            })
                            .collect();
                        Ok(PyArray1::from_vec(py, objects).into_any())
                    }
                }
            }
            (PROBABILITIES, data) => {
                let v = probabilities_f64(data).map_err(contract)?;
                output_to_py(py, OutputData::F64(v), n_rows, width)
            }
            (_, data) => output_to_py(py, data, n_rows, width),
        }
    }
}

/// A table bound by name: its batches, the model's features (kinds included) and, per
/// feature, the index of its column.
struct Table {
    features: Features,
    batches: Vec<RecordBatch>,
    idx: Vec<usize>,
}

/// Appends the outputs of the next batch to `acc` (same outputs, in the same order).
fn append_outputs(acc: &mut Option<Outputs>, next: Outputs) -> Result<(), ArrowError> {
    let Some(a) = acc else {
        *acc = Some(next);
        return Ok(());
    };
    if a.outputs.len() != next.outputs.len() {
        return Err(ArrowError::Output(
            "batches returned different outputs".to_string(),
        ));
    }
    a.n_rows += next.n_rows;
    for (o, n) in a.outputs.iter_mut().zip(next.outputs) {
        match (&mut o.data, n.data) {
            (OutputData::F32(v), OutputData::F32(w)) => v.extend(w),
            (OutputData::F64(v), OutputData::F64(w)) => v.extend(w),
            (OutputData::I64(v), OutputData::I64(w)) => v.extend(w),
            _ => {
                return Err(ArrowError::Output(format!(
                    "output {:?} changed dtype between batches",
                    o.info.name
                )))
            }
        }
    }
    Ok(())
}

/// A cache error as the Python exception class it maps to.
fn from_cache(e: CacheError) -> PyErr {
    match e {
        CacheError::Load { source, .. } => from_exec(*source),
        CacheError::Io { ref source, .. } => py_err(Kind::File, format!("{e}: {source}")),
        other => py_err(Kind::File, other.to_string()),
    }
}

fn output_to_py<'py>(
    py: Python<'py>,
    data: OutputData,
    n_rows: usize,
    width: usize,
) -> PyResult<Bound<'py, PyAny>> {
    // A 2-D output is reshaped by numpy's C API (a view, no copy), not a Python method call.
    fn shaped<'py, T: numpy::Element>(
        py: Python<'py>,
        v: Vec<T>,
        n_rows: usize,
        width: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let a = PyArray1::from_vec(py, v);
        if width == 0 {
            Ok(a.into_any())
        } else {
            Ok(a.reshape([n_rows, width])?.into_any())
        }
    }
    match data {
        OutputData::F32(v) => shaped(py, v, n_rows, width),
        OutputData::F64(v) => shaped(py, v, n_rows, width),
        OutputData::I64(v) => shaped(py, v, n_rows, width),
    }
}

#[pymethods]
impl Runtime {
    /// Opens and compiles the model at `path`; with `public_key` (a key file path or raw
    /// bytes), an unsigned or wrongly signed file is refused.
    #[new]
    #[pyo3(signature = (path, public_key=None))]
    fn new(py: Python<'_>, path: PathBuf, public_key: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let key = self::public_key(public_key)?;
        let name = path.display().to_string();
        let cached = py
            .detach(|| ModelCache::global().get(&path, key.as_ref()))
            .map_err(from_cache)?;
        Ok(Runtime::from_source(Source::Cached(cached), name))
    }

    /// A runtime over a model held in memory.
    #[staticmethod]
    #[pyo3(signature = (data, name="<memory>", public_key=None))]
    fn from_bytes(
        py: Python<'_>,
        data: &[u8],
        name: &str,
        public_key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let opts = ReadOptions {
            public_key: self::public_key(public_key)?,
        };
        let model = py
            .detach(|| {
                MleFile::from_bytes(data, name, &opts)
                    .map_err(ExecError::from)
                    .and_then(Model::compile)
            })
            .map_err(from_exec)?;
        let model = Arc::new(model);
        let pool = SessionPool::new(model.clone(), MAX_IDLE_SESSIONS);
        Ok(Runtime::from_source(
            Source::Memory(model, pool),
            name.to_string(),
        ))
    }

    /// True when the model is a classifier (by its metadata's task, the one rule of every
    /// front end).
    #[getter]
    fn is_classifier(&self) -> bool {
        self.kind.as_ref().is_some_and(OutputKind::is_classifier)
    }

    /// The output `predict` returns (`label` for classifiers, `prediction` for regressors and
    /// rankers), or `None` when the model fits neither.
    #[getter]
    fn prediction_output(&self) -> Option<&'static str> {
        self.kind.as_ref().map(OutputKind::prediction_output)
    }

    /// The metadata section as a JSON string.
    #[getter]
    fn metadata_json(&self) -> PyResult<String> {
        serde_json::to_string(self.model().metadata())
            .map_err(|e| py_err(Kind::Base, format!("metadata does not serialize: {e}")))
    }

    /// The graph section (nodes, inputs, outputs, tensor descriptors) as a JSON string.
    #[getter]
    fn graph_json(&self) -> PyResult<String> {
        serde_json::to_string(self.model().file().graph())
            .map_err(|e| py_err(Kind::Base, format!("graph does not serialize: {e}")))
    }

    /// The typed input features (`input.features`), one dict per feature: `name`, `kind`
    /// (`float`, `integer`, `boolean`, `string`, `category`) and, for categories,
    /// `categories` (a list of str or int, in code order). Empty for an untyped (1.0) file.
    #[getter]
    fn input_features<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let features = self.model().file().input_features().map_err(from_format)?;
        let out = PyList::empty(py);
        for f in features {
            let d = PyDict::new(py);
            d.set_item("name", f.name)?;
            let kind = match &f.kind {
                InputKind::Float => "float",
                InputKind::Integer => "integer",
                InputKind::Boolean => "boolean",
                InputKind::String => "string",
                InputKind::Category(_) => "category",
            };
            d.set_item("kind", kind)?;
            if let InputKind::Category(c) = &f.kind {
                match c {
                    Categories::Strings(v) => {
                        d.set_item("categories", PyList::new(py, v.iter())?)?
                    }
                    Categories::Integers(v) => {
                        d.set_item("categories", PyList::new(py, v.values())?)?
                    }
                }
            }
            out.append(d)?;
        }
        Ok(out)
    }

    /// Number of input features.
    #[getter]
    fn n_features(&self) -> usize {
        self.model().n_features()
    }

    /// The outputs as `(name, dtype, width)` tuples; width 0 means a 1-D output.
    #[getter]
    fn outputs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items: Vec<Bound<'py, PyTuple>> = self
            .model()
            .outputs()
            .iter()
            .map(|o| (o.name.as_str(), o.dtype.name(), o.width).into_pyobject(py))
            .collect::<PyResult<_>>()?;
        PyList::new(py, items)
    }

    /// True when the weights are used in place from the memory map (uncompressed file).
    #[getter]
    fn zero_copy(&self) -> bool {
        self.model().file().is_zero_copy()
    }

    /// Planned peak bytes of intermediate buffers for a batch of `n_rows`.
    fn peak_memory_bytes(&self, n_rows: usize) -> usize {
        self.model().peak_memory_bytes(n_rows)
    }

    /// Runs a C-contiguous `[n, k]` float32/float64 array (not copied), or a table with the
    /// Arrow PyCapsule interface (bound by name), and returns the
    /// outputs as a list of `(name, ndarray)` under the output contract (a classifier's
    /// `label` as class labels: int64, or objects for string labels; `probabilities` float64). The GIL is released while the model runs, except
    /// for batches under 64 rows on one thread (cheaper to keep it). With `only`, just the
    /// outputs named there are converted and returned (`predict_proba` does not pay for the
    /// label mapping).
    #[pyo3(signature = (x, threads=1, only=None))]
    fn run<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        threads: usize,
        only: Option<Vec<String>>,
    ) -> PyResult<Vec<(String, Bound<'py, PyAny>)>> {
        let out = self.execute(py, x, threads)?;
        let n = out.n_rows;
        out.outputs
            .into_iter()
            .filter(|o| {
                only.as_ref()
                    .is_none_or(|names| names.contains(&o.info.name))
            })
            .map(|o| {
                let arr = self.contract_output(py, &o.info.name, o.data, n, o.info.width)?;
                Ok((o.info.name, arr))
            })
            .collect()
    }

    /// Per-row feature contributions (exact path-dependent TreeSHAP on the raw output of the
    /// model's tree ensemble, `mle_exec::Session::explain_batch`) of `x` (a numpy matrix or a
    /// table, as `run` takes them): a float64 array `[n, n_outputs, n_features + 1]`, the
    /// last column the bias. A model that cannot be explained raises `UnsupportedModelError`
    /// naming why.
    #[pyo3(signature = (x, threads=1))]
    fn explain<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        threads: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let info = self.model().explain_info().map_err(from_exec)?;
        let (mut values, mut n_rows) = (Vec::new(), 0usize);
        let opts = RunOptions { threads };
        self.for_each_batch(py, x, threads, &mut |s, b| {
            let e = s.explain_batch(b, opts)?;
            values.extend_from_slice(&e.values);
            n_rows += e.n_rows;
            Ok(())
        })?;
        let a = PyArray1::from_vec(py, values);
        Ok(a.reshape([n_rows, info.n_outputs, info.n_features + 1])?
            .into_any())
    }

    /// The leaf each row of `x` reaches in each tree, numbered as the source framework
    /// numbers them (scikit-learn `apply`, XGBoost / LightGBM `pred_leaf`): an int32 array
    /// `[n, n_trees]`. Needs no covers; a model without a tree ensemble raises
    /// `UnsupportedModelError`.
    #[pyo3(signature = (x, threads=1))]
    fn apply<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        threads: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let info = self.model().apply_info().map_err(from_exec)?;
        let (mut values, mut n_rows) = (Vec::new(), 0usize);
        let opts = RunOptions { threads };
        self.for_each_batch(py, x, threads, &mut |s, b| {
            let l = s.apply_batch(b, opts)?;
            values.extend_from_slice(&l.values);
            n_rows += l.n_rows;
            Ok(())
        })?;
        let a = PyArray1::from_vec(py, values);
        Ok(a.reshape([n_rows, info.n_trees])?.into_any())
    }

    /// The names of the contribution columns (the features, then `bias`).
    #[getter]
    fn explain_columns(&self) -> PyResult<Vec<String>> {
        let info = self.model().explain_info().map_err(from_exec)?;
        let mut names = info.feature_names;
        names.push(mle_arrow::BIAS.to_string());
        Ok(names)
    }

    /// Runs `x` `warmup` times, then `num_runs` times, and returns each timed run's latency
    /// in seconds. The GIL is released for the whole loop. A table (Arrow PyCapsule
    /// interface) is imported once; each run binds its columns and runs every batch.
    #[pyo3(signature = (x, num_runs=100, warmup=5, threads=1))]
    fn benchmark(
        &self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        num_runs: usize,
        warmup: usize,
        threads: usize,
    ) -> PyResult<Vec<f64>> {
        if !x.is_instance_of::<PyUntypedArray>() && is_arrow(x) {
            let table = self.import_table(x)?;
            let result = py.detach(|| -> Result<Vec<f64>, ArrowError> {
                let opts = RunOptions { threads };
                let mut session = self.pool().take();
                let once = |session: &mut mle_exec::Session| -> Result<(), ArrowError> {
                    for b in &table.batches {
                        let bound = BoundColumns::bind_at(b, &table.idx, &table.features)?;
                        session.predict_batch(&bound.batch()?, opts)?;
                    }
                    Ok(())
                };
                let mut times = Vec::with_capacity(num_runs);
                let mut r = (0..warmup).try_for_each(|_| once(&mut session));
                for _ in 0..num_runs {
                    if r.is_err() {
                        break;
                    }
                    let t = Instant::now();
                    r = once(&mut session);
                    times.push(t.elapsed().as_secs_f64());
                }
                self.pool().give_back(session);
                r.map(|()| times)
            });
            return result.map_err(|e| bind_error(e, &self.name));
        }
        let view = InputView::extract(x)?;
        let (n_rows, n_cols) = view.shape();
        self.check_width(n_cols)?;
        let slice = view.slice()?;
        let result = py.detach(|| -> Result<Vec<f64>, ExecError> {
            let batch = slice.batch(n_rows, n_cols)?;
            let mut session = self.pool().take();
            let opts = RunOptions { threads };
            let mut times = Vec::with_capacity(num_runs);
            let mut run = || -> Result<Vec<f64>, ExecError> {
                for _ in 0..warmup {
                    session.predict_batch(&batch, opts)?;
                }
                for _ in 0..num_runs {
                    let t = Instant::now();
                    session.predict_batch(&batch, opts)?;
                    times.push(t.elapsed().as_secs_f64());
                }
                Ok(std::mem::take(&mut times))
            };
            let r = run();
            self.pool().give_back(session);
            r
        });
        result.map_err(from_exec)
    }

    fn __repr__(&self) -> String {
        let m = self.model().metadata();
        format!(
            "Runtime({:?}, framework={:?}, model_type={:?}, n_features={})",
            self.name,
            m.framework,
            m.model_type,
            self.model().n_features()
        )
    }
}
