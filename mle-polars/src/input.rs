//! Polars input columns → executor batch columns.
//!
//! Float32/Float64 columns held in one chunk without nulls are borrowed in place; other
//! numeric columns (integers, nullable or multi-chunk floats) are copied once into a
//! contiguous buffer with nulls as NaN (the model's missing value). A column of length 1
//! (a literal) is broadcast to every row with a stride of 0.

use mle_exec::{Batch, Column, ColumnData};
use polars::prelude::*;

use crate::error::PluginError;

/// One input column, ready to be viewed as executor data.
pub enum Prepared {
    /// A Float32/Float64 series in one chunk without nulls (borrowed by the batch).
    Borrowed(Series),
    /// f32 values copied out (nulls → NaN).
    F32(Vec<f32>),
    /// f64 values copied out (nulls → NaN).
    F64(Vec<f64>),
}

impl Prepared {
    fn data(&self) -> PolarsResult<ColumnData<'_>> {
        Ok(match self {
            Prepared::Borrowed(s) => match s.dtype() {
                DataType::Float32 => ColumnData::F32(s.f32()?.cont_slice()?),
                _ => ColumnData::F64(s.f64()?.cont_slice()?),
            },
            Prepared::F32(v) => ColumnData::F32(v),
            Prepared::F64(v) => ColumnData::F64(v),
        })
    }

    fn len(&self) -> usize {
        match self {
            Prepared::Borrowed(s) => s.len(),
            Prepared::F32(v) => v.len(),
            Prepared::F64(v) => v.len(),
        }
    }
}

/// Copies a float chunked array into one buffer, nulls as NaN.
fn flatten<T>(ca: &ChunkedArray<T>, nan: T::Native) -> Vec<T::Native>
where
    T: PolarsNumericType,
{
    let mut out = Vec::with_capacity(ca.len());
    for arr in ca.downcast_iter() {
        match arr.validity() {
            Some(valid) if valid.unset_bits() > 0 => out.extend(
                arr.values()
                    .iter()
                    .zip(valid.iter())
                    .map(|(&x, ok)| if ok { x } else { nan }),
            ),
            _ => out.extend_from_slice(arr.values()),
        }
    }
    out
}

fn is_borrowable(s: &Series) -> bool {
    s.n_chunks() == 1 && s.null_count() == 0
}

/// Checks the number and dtypes of the input fields against the model (no data needed).
pub fn check_fields(
    model_name: &str,
    feature_names: &[String],
    fields: &[(String, DataType)],
) -> Result<(), PluginError> {
    if fields.len() != feature_names.len() {
        return Err(PluginError::Arity {
            model: model_name.to_string(),
            expected: feature_names.len(),
            names: feature_names.join(", "),
            got: fields.len(),
        });
    }
    for (index, (name, dtype)) in fields.iter().enumerate() {
        // `Null` is an all-null column (e.g. `pl.lit(None)`): every value is missing.
        if !(dtype.is_primitive_numeric() || dtype.is_null()) {
            return Err(PluginError::NonNumeric {
                model: model_name.to_string(),
                index,
                name: name.clone(),
                dtype: dtype.to_string(),
            });
        }
    }
    Ok(())
}

/// Prepares every input series; the result is viewed by [`batch`].
pub fn prepare(
    model_name: &str,
    feature_names: &[String],
    inputs: &[Series],
) -> Result<Vec<Prepared>, PluginError> {
    let fields: Vec<(String, DataType)> = inputs
        .iter()
        .map(|s| (s.name().to_string(), s.dtype().clone()))
        .collect();
    check_fields(model_name, feature_names, &fields)?;
    let mut out = Vec::with_capacity(inputs.len());
    for s in inputs {
        let p = match s.dtype() {
            DataType::Float32 | DataType::Float64 if is_borrowable(s) => {
                Prepared::Borrowed(s.clone())
            }
            DataType::Float32 => Prepared::F32(flatten(s.f32()?, f32::NAN)),
            DataType::Float64 => Prepared::F64(flatten(s.f64()?, f64::NAN)),
            _ => {
                let cast = s.cast(&DataType::Float64)?;
                Prepared::F64(flatten(cast.f64()?, f64::NAN))
            }
        };
        out.push(p);
    }
    Ok(out)
}

/// The batch viewing the prepared columns; length-1 columns broadcast to `n_rows`.
pub fn batch<'a>(
    model_name: &str,
    inputs: &[Series],
    prepared: &'a [Prepared],
) -> Result<Batch<'a>, PluginError> {
    let n_rows = prepared.iter().map(Prepared::len).max().unwrap_or(0);
    let mut cols = Vec::with_capacity(prepared.len());
    for (index, (p, s)) in prepared.iter().zip(inputs).enumerate() {
        let len = p.len();
        let stride = if len == n_rows {
            1
        } else if len == 1 {
            0
        } else {
            return Err(PluginError::Length {
                model: model_name.to_string(),
                index,
                name: s.name().to_string(),
                len,
                expected: n_rows,
            });
        };
        cols.push(Column {
            data: p.data()?,
            offset: 0,
            stride,
        });
    }
    Ok(Batch::from_strided(cols, n_rows)?)
}
