//! Crossing between polars-arrow and arrow-rs through the Arrow C Data Interface.
//!
//! Polars stores its columns in polars-arrow arrays; `mle-arrow` (the input policy and the
//! output contract shared by every front end) works on arrow-rs arrays. Both libraries
//! implement the C Data Interface, so an array crosses by exporting it on one side and
//! importing it on the other: the buffers are shared (no copy) and released by their owner's
//! release callback when the last side drops them.

use std::borrow::Cow;

use arrow::array::{make_array, ArrayRef};
use arrow::datatypes::DataType as ArrowType;
use arrow::ffi::{FFI_ArrowArray, FFI_ArrowSchema};
use polars::prelude::{CompatLevel, DataType, PlSmallStr, Series};
use polars_arrow::array::Array as PlArray;
use polars_arrow::datatypes::Field as PlField;
use polars_arrow::ffi::{ArrowArray, ArrowSchema};

use crate::error::PluginError;

fn crossing(what: impl std::fmt::Display) -> PluginError {
    PluginError::Interop(what.to_string())
}

/// Moves a polars-arrow C array struct into arrow-rs's.
fn array_to_arrow_rs(a: ArrowArray) -> FFI_ArrowArray {
    // SAFETY: both types are the `ArrowArray` struct of the Arrow C Data Interface, declared
    // `#[repr(C)]` with the same fields in the same order (sizes checked by `transmute`).
    // Moving the value moves ownership: only the receiving side's `Drop` calls `release`.
    unsafe { std::mem::transmute::<ArrowArray, FFI_ArrowArray>(a) }
}

/// Moves a polars-arrow C schema struct into arrow-rs's.
fn schema_to_arrow_rs(s: ArrowSchema) -> FFI_ArrowSchema {
    // SAFETY: as in `array_to_arrow_rs`, for the C Data Interface `ArrowSchema` struct.
    unsafe { std::mem::transmute::<ArrowSchema, FFI_ArrowSchema>(s) }
}

/// Moves an arrow-rs C array struct into polars-arrow's.
fn array_to_polars(a: FFI_ArrowArray) -> ArrowArray {
    // SAFETY: as in `array_to_arrow_rs`, in the other direction.
    unsafe { std::mem::transmute::<FFI_ArrowArray, ArrowArray>(a) }
}

/// Moves an arrow-rs C schema struct into polars-arrow's.
fn schema_to_polars(s: FFI_ArrowSchema) -> ArrowSchema {
    // SAFETY: as in `array_to_arrow_rs`, for the schema struct, in the other direction.
    unsafe { std::mem::transmute::<FFI_ArrowSchema, ArrowSchema>(s) }
}

/// The arrow-rs type of a Polars dtype (its logical Arrow type: a Categorical is a
/// dictionary, a Date a `Date32`), or `None` when Polars has no Arrow form for it.
pub fn arrow_type(dtype: &DataType) -> Option<ArrowType> {
    let logical = dtype.try_to_arrow(CompatLevel::newest()).ok()?;
    let field = PlField::new(PlSmallStr::EMPTY, logical, true);
    let schema = schema_to_arrow_rs(polars_arrow::ffi::export_field_to_c(&field));
    ArrowType::try_from(&schema).ok()
}

/// The Polars dtype of an arrow-rs type (an output column's type, for query planning).
pub fn polars_type(dt: &ArrowType) -> Result<DataType, PluginError> {
    let schema = FFI_ArrowSchema::try_from(dt).map_err(crossing)?;
    let schema = schema_to_polars(schema);
    // SAFETY: `schema` was just exported by arrow-rs, a valid C Data Interface schema.
    let field = unsafe { polars_arrow::ffi::import_field_from_c(&schema) }.map_err(crossing)?;
    Ok(DataType::from_arrow_field(&field))
}

/// One polars-arrow chunk as an arrow-rs array, sharing its buffers.
fn chunk_to_arrow_rs(chunk: Box<dyn PlArray>) -> Result<ArrayRef, PluginError> {
    let field = PlField::new(PlSmallStr::EMPTY, chunk.dtype().clone(), true);
    let schema = schema_to_arrow_rs(polars_arrow::ffi::export_field_to_c(&field));
    let array = array_to_arrow_rs(polars_arrow::ffi::export_array_to_c(chunk));
    // SAFETY: `array` and `schema` were just exported by polars-arrow for the same array.
    let data = unsafe { arrow::ffi::from_ffi(array, &schema) }.map_err(crossing)?;
    Ok(make_array(data))
}

/// A Polars column as one arrow-rs array (zero copy for a column held in one chunk; a column
/// of several chunks is made contiguous first, the one copy the executor's column view needs).
pub fn series_to_arrow_rs(s: &Series) -> Result<ArrayRef, PluginError> {
    let s = if s.n_chunks() == 1 {
        s.clone()
    } else {
        s.rechunk()
    };
    if s.n_chunks() == 0 {
        let dt = arrow_type(s.dtype())
            .ok_or_else(|| crossing(format!("no Arrow type for {}", s.dtype())))?;
        return Ok(arrow::array::new_empty_array(&dt));
    }
    let field = s
        .dtype()
        .try_to_arrow(CompatLevel::newest())
        .map(|dt| PlField::new(s.name().clone(), dt, true))?;
    let chunk = s.to_arrow_with_field(0, Cow::Owned(field), true)?;
    chunk_to_arrow_rs(chunk)
}

/// An arrow-rs array as a Polars column named `name`, sharing its buffers where Polars can
/// use them as they are.
pub fn arrow_rs_to_series(name: PlSmallStr, array: &ArrayRef) -> Result<Series, PluginError> {
    let (array, schema) = arrow::ffi::to_ffi(&array.to_data()).map_err(crossing)?;
    let (array, schema) = (array_to_polars(array), schema_to_polars(schema));
    // SAFETY: `array` and `schema` were just exported by arrow-rs for the same array.
    let field = unsafe { polars_arrow::ffi::import_field_from_c(&schema) }.map_err(crossing)?;
    // SAFETY: as above; `field` describes `array`.
    let chunk = unsafe { polars_arrow::ffi::import_array_from_c(array, field.dtype().clone()) }
        .map_err(crossing)?;
    Ok(Series::from_arrow(name, chunk)?)
}
