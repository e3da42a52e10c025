//! datafusion-python (feature `datafusion`): `mle-sql`'s UDFs exported as `datafusion-ffi`
//! objects, which a `datafusion.SessionContext` registers through the
//! `__datafusion_scalar_udf__` PyCapsule protocol (see `mle_runtime.datafusion`).
//!
//! The functions are `mle-sql`'s own (`mle_predict`, `mle_predict_proba`, `mle_explain`,
//! `mle_predict_leaf`): the same input policy,
//! output contract and model cache as `mle sql`; the model is opened and the arguments are
//! checked while the query is planned (`return_field_from_args` crosses the FFI boundary with
//! its literal arguments). Batches cross by the Arrow C Data Interface without a copy, and no
//! Python runs per batch.
//!
//! [`FfiCall`] adapts one difference of the boundary: datafusion-ffi passes every argument as
//! an array (a literal is repeated to the batch's length), while `mle-sql` takes the model
//! path as a scalar. Nothing panics across the boundary: a panic in a call becomes an error.
//!
//! `mle_score` is not exported: wrapped as an `FFI_TableFunction` whose view is planned on
//! this side, it plans, but datafusion-python 55.0.0 crashed while collecting its result.

use std::ffi::CStr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use datafusion::arrow::array::new_empty_array;
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
};
use datafusion_ffi::udf::FFI_ScalarUDF;
use mle_sql::UdfOptions;
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

use crate::runtime::public_key;

const SCALAR_UDF: &CStr = c"datafusion_scalar_udf";

/// One of `mle-sql`'s UDFs as seen through datafusion-ffi (see the module docs).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct FfiCall {
    inner: ScalarUDF,
}

fn panicked(name: &str, what: &str) -> DataFusionError {
    DataFusionError::Execution(format!(
        "{name}: internal error: {what} panicked (please report it)"
    ))
}

impl ScalarUDFImpl for FfiCall {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.inner().coerce_types(arg_types)
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.inner().return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        catch_unwind(AssertUnwindSafe(|| self.inner.return_field_from_args(args)))
            .unwrap_or_else(|_| Err(panicked(self.name(), "planning the call")))
    }

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = self.name();
        // The path literal arrives as an array repeating it; mle-sql takes it as a scalar.
        if let Some(ColumnarValue::Array(a)) = args.args.first() {
            if a.is_empty() {
                return Ok(ColumnarValue::Array(new_empty_array(
                    args.return_field.data_type(),
                )));
            }
            let path = ScalarValue::try_from_array(a, 0)?;
            args.args[0] = ColumnarValue::Scalar(path);
        }
        catch_unwind(AssertUnwindSafe(|| self.inner.invoke_with_args(args)))
            .unwrap_or_else(|_| Err(panicked(name, "running the model")))
    }
}

/// A `mle-sql` UDF that datafusion-python registers (`SessionContext.register_udf`): it
/// offers the `__datafusion_scalar_udf__` PyCapsule.
#[pyclass(name = "DataFusionUdf", module = "mle_runtime._native", frozen)]
pub struct DataFusionUdf {
    udf: Arc<ScalarUDF>,
}

#[pymethods]
impl DataFusionUdf {
    /// The function's SQL name.
    #[getter]
    fn name(&self) -> String {
        self.udf.name().to_string()
    }

    /// The datafusion-ffi `FFI_ScalarUDF` in a capsule named `datafusion_scalar_udf`.
    fn __datafusion_scalar_udf__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyCapsule>> {
        PyCapsule::new_with_value(py, FFI_ScalarUDF::from(self.udf.clone()), SCALAR_UDF)
    }

    fn __repr__(&self) -> String {
        format!("DataFusionUdf({})", self.udf.name())
    }
}

fn ffi_udf(inner: ScalarUDF) -> DataFusionUdf {
    let call = FfiCall { inner };
    DataFusionUdf {
        udf: Arc::new(ScalarUDF::new_from_impl(call)),
    }
}

/// `mle-sql`'s UDFs (`mle_sql::udfs`: `mle_predict`, `mle_predict_proba`, `mle_explain`,
/// `mle_predict_leaf`) for datafusion-python, requiring every model to be signed by
/// `public_key` when given (a key file's path or its bytes).
#[pyfunction]
#[pyo3(signature = (public_key=None))]
pub fn datafusion_udfs(public_key: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<DataFusionUdf>> {
    let opts = UdfOptions {
        public_key: self::public_key(public_key)?,
        ..UdfOptions::default()
    };
    Ok(mle_sql::udfs(opts).into_iter().map(ffi_udf).collect())
}

/// Adds the classes and functions of this module to `_native`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<DataFusionUdf>()?;
    m.add_function(wrap_pyfunction!(datafusion_udfs, m)?)?;
    // The datafusion-python major version these objects are compatible with.
    m.add("DATAFUSION_MAJOR", 55)?;
    Ok(())
}
