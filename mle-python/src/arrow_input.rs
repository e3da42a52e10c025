//! Arrow inputs from Python: any object with the Arrow PyCapsule interface
//! (`__arrow_c_stream__`, or `__arrow_c_array__` for one record batch) crosses into Rust
//! through the Arrow C Stream / C Data interfaces, without a copy and without touching the
//! values in Python. pyarrow Tables and RecordBatches, Polars DataFrames, and pandas frames
//! (converted to pyarrow by `mle_runtime.runtime`) all arrive here.
//!
//! Binding the columns to the model's features (by name) is `mle-arrow`'s, the one input
//! policy of every front end; [`bind_error`] maps its errors to the Python classes.

use std::ffi::CStr;

use arrow::array::{Array, RecordBatch, StructArray};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::ffi::{from_ffi, FFI_ArrowArray, FFI_ArrowSchema};
use arrow::ffi_stream::{ArrowArrayStreamReader, FFI_ArrowArrayStream};
use arrow::record_batch::RecordBatchReader;
use mle_arrow::ArrowError;
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyTuple};

use crate::errors::{from_exec, py_err, Kind};

const STREAM: &CStr = c"arrow_array_stream";
const SCHEMA: &CStr = c"arrow_schema";
const ARRAY: &CStr = c"arrow_array";

/// True when `x` offers the Arrow PyCapsule interface.
pub fn is_arrow(x: &Bound<'_, PyAny>) -> bool {
    x.hasattr("__arrow_c_stream__").unwrap_or(false)
        || x.hasattr("__arrow_c_array__").unwrap_or(false)
}

fn capsule<'py>(obj: Bound<'py, PyAny>, what: &str) -> PyResult<Bound<'py, PyCapsule>> {
    obj.cast_into::<PyCapsule>().map_err(|_| {
        py_err(
            Kind::Input,
            format!("{what} did not return a PyCapsule (Arrow PyCapsule interface)"),
        )
    })
}

/// The capsule's pointer when it carries the protocol's `name`.
fn pointer(
    cap: &Bound<'_, PyCapsule>,
    name: &CStr,
) -> PyResult<std::ptr::NonNull<std::ffi::c_void>> {
    cap.pointer_checked(Some(name)).map_err(|_| {
        py_err(
            Kind::Input,
            format!(
                "the Arrow PyCapsule is not a valid {:?} capsule",
                name.to_string_lossy()
            ),
        )
    })
}

fn arrow_input_error(e: arrow::error::ArrowError) -> PyErr {
    py_err(Kind::Input, format!("reading the Arrow input: {e}"))
}

/// The record batches of `x` (a stream: every chunk; an array: the one batch) and their
/// schema. The values stay in the producer's buffers (Arrow arrays share them).
pub fn import_batches(x: &Bound<'_, PyAny>) -> PyResult<(SchemaRef, Vec<RecordBatch>)> {
    if x.hasattr("__arrow_c_stream__")? {
        let cap = capsule(x.call_method0("__arrow_c_stream__")?, "__arrow_c_stream__")?;
        let ptr = pointer(&cap, STREAM)?;
        // SAFETY: the capsule is named "arrow_array_stream", so by the PyCapsule protocol it
        // holds an initialized `ArrowArrayStream`; `from_raw` moves it out and leaves a
        // released (empty) struct behind, which the capsule's destructor then ignores. The
        // capsule stays alive (borrowed) for the duration of the call.
        let reader = unsafe {
            ArrowArrayStreamReader::from_raw(ptr.cast::<FFI_ArrowArrayStream>().as_ptr())
        }
        .map_err(arrow_input_error)?;
        let schema = reader.schema();
        let batches = reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(arrow_input_error)?;
        return Ok((schema, batches));
    }
    if x.hasattr("__arrow_c_array__")? {
        let pair = x.call_method0("__arrow_c_array__")?;
        let pair = pair.cast::<PyTuple>().map_err(|_| {
            py_err(
                Kind::Input,
                "__arrow_c_array__ did not return a (schema, array) tuple",
            )
        })?;
        if pair.len() != 2 {
            return Err(py_err(
                Kind::Input,
                "__arrow_c_array__ did not return a (schema, array) tuple",
            ));
        }
        let schema_cap = capsule(pair.get_item(0)?, "__arrow_c_array__")?;
        let array_cap = capsule(pair.get_item(1)?, "__arrow_c_array__")?;
        let schema_ptr = pointer(&schema_cap, SCHEMA)?;
        let array_ptr = pointer(&array_cap, ARRAY)?;
        // SAFETY: by the PyCapsule protocol the capsules named "arrow_schema" and
        // "arrow_array" hold an initialized `ArrowSchema` and `ArrowArray`. The array is moved
        // out (its capsule is left with a released struct, which its destructor ignores); the
        // schema is only borrowed while its capsule is alive, and `from_ffi` checks the array
        // against it.
        let data = unsafe {
            let array = FFI_ArrowArray::from_raw(array_ptr.cast::<FFI_ArrowArray>().as_ptr());
            let schema = &*schema_ptr.cast::<FFI_ArrowSchema>().as_ptr();
            from_ffi(array, schema)
        }
        .map_err(arrow_input_error)?;
        if !matches!(data.data_type(), DataType::Struct(_)) {
            return Err(py_err(
                Kind::Input,
                format!(
                    "the Arrow array has type {}; a table (a struct array or record batch) is needed",
                    data.data_type()
                ),
            ));
        }
        let st = StructArray::from(data);
        if st.null_count() > 0 {
            return Err(py_err(
                Kind::Input,
                "the Arrow struct array has null rows; a record batch has none",
            ));
        }
        let batch = RecordBatch::from(st);
        return Ok((batch.schema(), vec![batch]));
    }
    Err(py_err(
        Kind::Input,
        "the input has no Arrow PyCapsule interface (__arrow_c_stream__ / __arrow_c_array__)",
    ))
}

/// An `mle-arrow` binding error as the Python class it maps to: the input's fault
/// (`InputError`, naming the column) unless the executor or the output contract failed.
pub fn bind_error(e: ArrowError, model: &str) -> PyErr {
    match e {
        ArrowError::Exec(e) => from_exec(e),
        ArrowError::Output(_) => py_err(Kind::Base, format!("{model}: {e}")),
        other => py_err(Kind::Input, format!("{model}: {other}")),
    }
}
