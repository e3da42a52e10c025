//! The explanation contract: per-row feature contributions and leaf indices as Arrow arrays,
//! the same in every front end (SQL `mle_explain` / `mle_predict_leaf`, Polars `explain`, the
//! CLI's `mle score --explain`).
//!
//! - **Contributions** ([`explain_type`]): a `Struct` with one field per input feature, named
//!   as the feature, in feature order, then [`BIAS`]. For a model with one output (regression,
//!   binary classification: the raw margin) each field is `Float64`; for a multiclass model
//!   each is `FixedSizeList<Float64, n_outputs>`, one entry per class in class order. Values
//!   are [`mle_exec::Session::explain_batch`]'s, not converted: every front end returns the
//!   same bits.
//! - **Leaf indices** ([`leaf_type`]): `FixedSizeList<Int32, n_trees>`, the leaf each row
//!   reaches in each tree, numbered as the source framework numbers them.
//! - Neither is ever null; a model that cannot be explained (no covers, not a tree model) is
//!   an [`ArrowError::Exec`] naming why.

use std::sync::Arc;

use arrow::array::{ArrayRef, FixedSizeListArray, Float64Array, Int32Array, StructArray};
use arrow::buffer::ScalarBuffer;
use arrow::datatypes::{DataType, Field, Fields};
use mle_exec::{Batch, ExplainInfo, Explanation, LeafIndices, RunOptions, Session};

use crate::{ArrowError, BoundColumns, Features, Result};

/// Name of the bias field of a contributions struct (the expected value of the model's raw
/// output; the contributions of a row plus the bias add up to its raw output).
pub const BIAS: &str = "bias";
/// Name of the contributions column the CLI adds (`mle score --explain`).
pub const CONTRIBUTIONS: &str = "contributions";
/// Name of a leaf-indices column.
pub const LEAVES: &str = "leaves";

fn list_of(elem: DataType, width: usize) -> Result<DataType> {
    let w = i32::try_from(width)
        .ok()
        .filter(|&w| w > 0)
        .ok_or_else(|| ArrowError::Output(format!("a list of {width} values per row")))?;
    Ok(DataType::FixedSizeList(
        Arc::new(Field::new("item", elem, false)),
        w,
    ))
}

/// The fields of a contributions struct for a model described by `info` (see the module
/// documentation). A feature named [`BIAS`], or two features of one name, are an error
/// naming it: the struct's fields must be distinct.
pub fn explain_fields(info: &ExplainInfo) -> Result<Fields> {
    let elem = if info.n_outputs == 1 {
        DataType::Float64
    } else {
        list_of(DataType::Float64, info.n_outputs)?
    };
    let mut seen = std::collections::HashSet::with_capacity(info.feature_names.len() + 1);
    let mut fields = Vec::with_capacity(info.feature_names.len() + 1);
    for name in info.feature_names.iter().map(String::as_str).chain([BIAS]) {
        if !seen.insert(name) {
            return Err(ArrowError::FieldClash {
                name: name.to_string(),
            });
        }
        fields.push(Field::new(name, elem.clone(), false));
    }
    Ok(Fields::from(fields))
}

/// The Arrow type of a contributions column ([`explain_fields`] as a `Struct`).
pub fn explain_type(info: &ExplainInfo) -> Result<DataType> {
    Ok(DataType::Struct(explain_fields(info)?))
}

/// The Arrow type of a leaf-indices column: `FixedSizeList<Int32, n_trees>`.
pub fn leaf_type(info: &ExplainInfo) -> Result<DataType> {
    leaf_type_of(info.n_trees)
}

/// The contributions struct of an explanation (`fields` from [`explain_fields`] for the same
/// model).
pub fn explanation_array(fields: &Fields, e: &Explanation) -> Result<ArrayRef> {
    let (n, nf, no) = (e.n_rows, e.n_features, e.n_outputs);
    let w = nf + 1;
    if fields.len() != w || e.values.len() != n * no * w || no == 0 {
        return Err(ArrowError::Output(format!(
            "an explanation of {} values for {n} rows × {no} outputs × {w} columns, {} fields",
            e.values.len(),
            fields.len()
        )));
    }
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(w);
    for (j, field) in fields.iter().enumerate() {
        // Column j of every (row, output), row-major: the values of a list entry are adjacent.
        let values: Vec<f64> = e.values.iter().skip(j).step_by(w).copied().collect();
        let values: ArrayRef = Arc::new(Float64Array::new(ScalarBuffer::from(values), None));
        let column: ArrayRef = if no == 1 {
            values
        } else {
            let DataType::FixedSizeList(item, _) = field.data_type() else {
                return Err(ArrowError::Output(format!(
                    "field {:?} is {}, expected a list per class",
                    field.name(),
                    field.data_type()
                )));
            };
            let list = FixedSizeListArray::try_new(item.clone(), no as i32, values, None).map_err(
                |source| ArrowError::Cast {
                    column: field.name().clone(),
                    source,
                },
            )?;
            Arc::new(list)
        };
        columns.push(column);
    }
    StructArray::try_new(fields.clone(), columns, None)
        .map(|a| Arc::new(a) as ArrayRef)
        .map_err(|source| ArrowError::Cast {
            column: CONTRIBUTIONS.to_string(),
            source,
        })
}

/// The leaf-indices column of `l` (`FixedSizeList<Int32, n_trees>`).
pub fn leaf_array(l: &LeafIndices) -> Result<ArrayRef> {
    let item = match leaf_type_of(l.n_trees)? {
        DataType::FixedSizeList(item, _) => item,
        other => return Err(ArrowError::Output(format!("leaf indices typed {other}"))),
    };
    if l.values.len() != l.n_rows * l.n_trees {
        return Err(ArrowError::Output(format!(
            "{} leaf indices for {} rows × {} trees",
            l.values.len(),
            l.n_rows,
            l.n_trees
        )));
    }
    let values: ArrayRef = Arc::new(Int32Array::new(ScalarBuffer::from(l.values.clone()), None));
    FixedSizeListArray::try_new(item, l.n_trees as i32, values, None)
        .map(|a| Arc::new(a) as ArrayRef)
        .map_err(|source| ArrowError::Cast {
            column: LEAVES.to_string(),
            source,
        })
}

fn leaf_type_of(n_trees: usize) -> Result<DataType> {
    list_of(DataType::Int32, n_trees)
}

/// Explains an executor batch (already bound) as a contributions struct.
pub fn explain_batch_array(
    session: &mut Session,
    batch: &Batch<'_>,
    opts: RunOptions,
) -> Result<ArrayRef> {
    let info = session.model().explain_info()?;
    let fields = explain_fields(&info)?;
    let e = session.explain_batch(batch, opts)?;
    explanation_array(&fields, e)
}

/// The leaf indices of an executor batch (already bound).
pub fn apply_batch_array(
    session: &mut Session,
    batch: &Batch<'_>,
    opts: RunOptions,
) -> Result<ArrayRef> {
    let l = session.apply_batch(batch, opts)?;
    leaf_array(l)
}

/// Explains Arrow columns (in feature order, bound by position and checked against the
/// model's feature kinds, as [`crate::predict_arrays`] binds them); `names` name the columns
/// in errors.
pub fn explain_arrays(
    session: &mut Session,
    columns: &[ArrayRef],
    names: &[String],
    opts: RunOptions,
) -> Result<ArrayRef> {
    let model = session.model().clone();
    let bound = BoundColumns::bind_typed(columns, names, &Features::of(model.metadata()))?;
    let batch = bound.batch()?;
    explain_batch_array(session, &batch, opts)
}

/// The leaf indices of Arrow columns (bound as [`explain_arrays`] binds them).
pub fn apply_arrays(
    session: &mut Session,
    columns: &[ArrayRef],
    names: &[String],
    opts: RunOptions,
) -> Result<ArrayRef> {
    let model = session.model().clone();
    let bound = BoundColumns::bind_typed(columns, names, &Features::of(model.metadata()))?;
    let batch = bound.batch()?;
    apply_batch_array(session, &batch, opts)
}
