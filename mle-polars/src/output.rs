//! Executor outputs → Polars series, and the output dtypes computed from the model alone.
//!
//! `predict`: a regressor's `prediction` as Float32/Float64 (`Array(_, T)` for `T > 1`
//! targets); a classifier's `label` mapped through the metadata's class labels (Int64 or
//! String; the raw class index as Int64 when the metadata has no labels).
//! `predict_proba`: `probabilities` as `Array(Float32, n_classes)`.

use mle_exec::{Model, Output, OutputData, OutputInfo, Outputs};
use mle_format::{ClassLabels, DType};
use polars::prelude::*;

use crate::error::PluginError;

/// Name of the output read by `predict` on classifiers.
pub const LABEL: &str = "label";
/// Name of the output read by `predict` on regressors and rankers.
pub const PREDICTION: &str = "prediction";
/// Name of the output read by `predict_proba`.
pub const PROBABILITIES: &str = "probabilities";

fn find<'a>(model: &'a Model, name: &str, model_name: &str) -> Result<&'a OutputInfo, PluginError> {
    model
        .outputs()
        .iter()
        .find(|o| o.name == name)
        .ok_or_else(|| missing(model, name, model_name))
}

fn missing(model: &Model, name: &str, model_name: &str) -> PluginError {
    PluginError::MissingOutput {
        model: model_name.to_string(),
        name: name.to_string(),
        outputs: model
            .outputs()
            .iter()
            .map(|o| o.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The output `predict` returns: `label` for classifiers, else `prediction`.
pub fn predict_output_name(model: &Model) -> &'static str {
    if model.outputs().iter().any(|o| o.name == LABEL) {
        LABEL
    } else {
        PREDICTION
    }
}

fn float_dtype(d: DType) -> DataType {
    match d {
        DType::F32 => DataType::Float32,
        _ => DataType::Float64,
    }
}

/// The dtype of `predict`'s result.
pub fn predict_dtype(model: &Model, model_name: &str) -> Result<DataType, PluginError> {
    let name = predict_output_name(model);
    let info = find(model, name, model_name)?;
    if name == LABEL {
        return Ok(match &model.metadata().output.class_labels {
            Some(ClassLabels::Str(_)) => DataType::String,
            _ => DataType::Int64,
        });
    }
    let inner = float_dtype(info.dtype);
    Ok(if info.width > 1 {
        DataType::Array(Box::new(inner), info.width)
    } else {
        inner
    })
}

/// Number of classes (probability columns) of a classifier.
fn n_classes(model: &Model, model_name: &str) -> Result<usize, PluginError> {
    match model.outputs().iter().find(|o| o.name == PROBABILITIES) {
        Some(info) => Ok(info.width.max(1)),
        None => Err(PluginError::NoProbabilities {
            model: model_name.to_string(),
            task: format!("{:?}", model.metadata().task).to_lowercase(),
        }),
    }
}

/// The dtype of `predict_proba`'s result.
pub fn proba_dtype(model: &Model, model_name: &str) -> Result<DataType, PluginError> {
    Ok(DataType::Array(
        Box::new(DataType::Float32),
        n_classes(model, model_name)?,
    ))
}

fn get<'a>(
    outputs: &'a Outputs,
    model: &Model,
    name: &str,
    model_name: &str,
) -> Result<&'a Output, PluginError> {
    outputs
        .get(name)
        .ok_or_else(|| missing(model, name, model_name))
}

fn data_len(d: &OutputData) -> usize {
    match d {
        OutputData::F32(v) => v.len(),
        OutputData::F64(v) => v.len(),
        OutputData::I64(v) => v.len(),
    }
}

/// Checks that an output holds `n_rows × max(width, 1)` values before it is viewed as rows.
fn check_len(out: &Output, n_rows: usize, model_name: &str) -> Result<(), PluginError> {
    let expected = n_rows.saturating_mul(out.info.width.max(1));
    let got = data_len(&out.data);
    if got != expected {
        return Err(PluginError::OutputLength {
            model: model_name.to_string(),
            name: out.info.name.clone(),
            got,
            expected,
        });
    }
    Ok(())
}

/// Values of a float output as an Array series of `width` (a flat series for width ≤ 1).
fn float_series(name: PlSmallStr, data: &OutputData, width: usize, n_rows: usize) -> Series {
    let flat = match data {
        OutputData::F32(v) => Float32Chunked::from_slice(name.clone(), v).into_series(),
        OutputData::F64(v) => Float64Chunked::from_slice(name.clone(), v).into_series(),
        OutputData::I64(v) => Int64Chunked::from_slice(name.clone(), v).into_series(),
    };
    if width <= 1 {
        return flat;
    }
    let inner = flat.dtype().clone();
    ArrayChunked::from_aligned_values(name, &inner, width, flat.chunks().clone(), n_rows)
        .into_series()
}

/// Builds `predict`'s result from a run's outputs.
pub fn predict_series(
    model: &Model,
    model_name: &str,
    outputs: &Outputs,
    name: PlSmallStr,
) -> Result<Series, PluginError> {
    let out_name = predict_output_name(model);
    let out = get(outputs, model, out_name, model_name)?;
    check_len(out, outputs.n_rows, model_name)?;
    if out_name != LABEL {
        return Ok(float_series(
            name,
            &out.data,
            out.info.width,
            outputs.n_rows,
        ));
    }
    let idx: &[i64] = match &out.data {
        OutputData::I64(v) => v,
        _ => return Err(missing(model, LABEL, model_name)),
    };
    let bad = |index: i64, n_labels: usize| PluginError::ClassIndex {
        model: model_name.to_string(),
        index,
        n_labels,
    };
    Ok(match &model.metadata().output.class_labels {
        None => Int64Chunked::from_slice(name, idx).into_series(),
        Some(ClassLabels::Int(labels)) => {
            let mut v = Vec::with_capacity(idx.len());
            for &i in idx {
                let l = usize::try_from(i)
                    .ok()
                    .and_then(|i| labels.get(i))
                    .ok_or_else(|| bad(i, labels.len()))?;
                v.push(*l);
            }
            Int64Chunked::from_vec(name, v).into_series()
        }
        Some(ClassLabels::Str(labels)) => {
            let mut v: Vec<&str> = Vec::with_capacity(idx.len());
            for &i in idx {
                let l = usize::try_from(i)
                    .ok()
                    .and_then(|i| labels.get(i))
                    .ok_or_else(|| bad(i, labels.len()))?;
                v.push(l.as_str());
            }
            StringChunked::from_slice(name, &v).into_series()
        }
    })
}

/// Builds `predict_proba`'s result (`Array(Float32, n_classes)`) from a run's outputs.
pub fn proba_series(
    model: &Model,
    model_name: &str,
    outputs: &Outputs,
    name: PlSmallStr,
) -> Result<Series, PluginError> {
    let width = n_classes(model, model_name)?;
    let out = get(outputs, model, PROBABILITIES, model_name)?;
    check_len(out, outputs.n_rows, model_name)?;
    if out.info.width.max(1) != width {
        return Err(missing(model, PROBABILITIES, model_name));
    }
    let flat = match &out.data {
        OutputData::F32(v) => Float32Chunked::from_slice(name.clone(), v),
        OutputData::F64(v) => {
            Float32Chunked::from_iter_values(name.clone(), v.iter().map(|&x| x as f32))
        }
        OutputData::I64(_) => return Err(missing(model, PROBABILITIES, model_name)),
    };
    Ok(ArrayChunked::from_aligned_values(
        name,
        &DataType::Float32,
        width,
        flat.chunks().clone(),
        outputs.n_rows,
    )
    .into_series())
}
