//! The `Runtime` class: a compiled model and a pool of execution sessions.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use mle_exec::{Batch, ExecError, Model, OutputData, Outputs, RunOptions, Session};
use mle_format::{MleFile, PublicKey, ReadOptions};
use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

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

/// A loaded `.mle` model, ready to run. Thread-safe: concurrent calls each take a session
/// from a pool, and the GIL is released while the model runs (batches of 64 rows or more).
#[pyclass(module = "mle_runtime._native", frozen)]
pub struct Runtime {
    model: Arc<Model>,
    sessions: Mutex<Vec<Session>>,
    name: String,
}

impl Runtime {
    fn from_model(model: Model, name: String) -> Self {
        Runtime {
            model: Arc::new(model),
            sessions: Mutex::new(Vec::new()),
            name,
        }
    }

    fn take_session(&self) -> Session {
        let popped = match self.sessions.lock() {
            Ok(mut pool) => pool.pop(),
            Err(poisoned) => poisoned.into_inner().pop(),
        };
        popped.unwrap_or_else(|| Session::new(self.model.clone()))
    }

    fn give_back(&self, s: Session) {
        match self.sessions.lock() {
            Ok(mut pool) => pool.push(s),
            Err(poisoned) => poisoned.into_inner().push(s),
        }
    }

    fn check_width(&self, n_cols: usize) -> PyResult<()> {
        let want = self.model.n_features();
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
    fn execute(&self, py: Python<'_>, x: &Bound<'_, PyAny>, threads: usize) -> PyResult<Outputs> {
        let view = InputView::extract(x)?;
        let (n_rows, n_cols) = view.shape();
        self.check_width(n_cols)?;
        let slice = view.slice()?;
        let run = || {
            let mut session = self.take_session();
            let out = slice
                .batch(n_rows, n_cols)
                .and_then(|b| session.predict_batch(&b, RunOptions { threads }).cloned());
            self.give_back(session);
            out
        };
        let result = if n_rows < DETACH_MIN_ROWS && threads <= 1 {
            run()
        } else {
            py.detach(run)
        };
        result.map_err(from_exec)
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
        let opts = ReadOptions {
            public_key: self::public_key(public_key)?,
        };
        let name = path.display().to_string();
        let model = py.detach(|| Model::load(&path, &opts)).map_err(from_exec)?;
        Ok(Runtime::from_model(model, name))
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
        Ok(Runtime::from_model(model, name.to_string()))
    }

    /// The metadata section as a JSON string.
    #[getter]
    fn metadata_json(&self) -> PyResult<String> {
        serde_json::to_string(self.model.metadata())
            .map_err(|e| py_err(Kind::Base, format!("metadata does not serialize: {e}")))
    }

    /// The graph section (nodes, inputs, outputs, tensor descriptors) as a JSON string.
    #[getter]
    fn graph_json(&self) -> PyResult<String> {
        serde_json::to_string(self.model.file().graph())
            .map_err(|e| py_err(Kind::Base, format!("graph does not serialize: {e}")))
    }

    /// Number of input features.
    #[getter]
    fn n_features(&self) -> usize {
        self.model.n_features()
    }

    /// The outputs as `(name, dtype, width)` tuples; width 0 means a 1-D output.
    #[getter]
    fn outputs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items: Vec<Bound<'py, PyTuple>> = self
            .model
            .outputs()
            .iter()
            .map(|o| (o.name.as_str(), o.dtype.name(), o.width).into_pyobject(py))
            .collect::<PyResult<_>>()?;
        PyList::new(py, items)
    }

    /// True when the weights are used in place from the memory map (uncompressed file).
    #[getter]
    fn zero_copy(&self) -> bool {
        self.model.file().is_zero_copy()
    }

    /// Planned peak bytes of intermediate buffers for a batch of `n_rows`.
    fn peak_memory_bytes(&self, n_rows: usize) -> usize {
        self.model.peak_memory_bytes(n_rows)
    }

    /// Runs a C-contiguous `[n, k]` float32/float64 array (not copied) and returns the
    /// outputs as a list of `(name, ndarray)`. The GIL is released while the model runs, except
    /// for batches under 64 rows on one thread (cheaper to keep it).
    #[pyo3(signature = (x, threads=1))]
    fn run<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        threads: usize,
    ) -> PyResult<Vec<(String, Bound<'py, PyAny>)>> {
        let out = self.execute(py, x, threads)?;
        let n = out.n_rows;
        out.outputs
            .into_iter()
            .map(|o| Ok((o.info.name, output_to_py(py, o.data, n, o.info.width)?)))
            .collect()
    }

    /// Runs `x` `warmup` times, then `num_runs` times, and returns each timed run's latency
    /// in seconds. The GIL is released for the whole loop.
    #[pyo3(signature = (x, num_runs=100, warmup=5, threads=1))]
    fn benchmark(
        &self,
        py: Python<'_>,
        x: &Bound<'_, PyAny>,
        num_runs: usize,
        warmup: usize,
        threads: usize,
    ) -> PyResult<Vec<f64>> {
        let view = InputView::extract(x)?;
        let (n_rows, n_cols) = view.shape();
        self.check_width(n_cols)?;
        let slice = view.slice()?;
        let result = py.detach(|| -> Result<Vec<f64>, ExecError> {
            let batch = slice.batch(n_rows, n_cols)?;
            let mut session = self.take_session();
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
            self.give_back(session);
            r
        });
        result.map_err(from_exec)
    }

    fn __repr__(&self) -> String {
        let m = self.model.metadata();
        format!(
            "Runtime({:?}, framework={:?}, model_type={:?}, n_features={})",
            self.name,
            m.framework,
            m.model_type,
            self.model.n_features()
        )
    }
}
