//! The output contract: what a model returns to every front end, and in which types.
//!
//! - **Classifier detection** is one rule: the metadata's `task` is `binary` or
//!   `multiclass` ([`mle_format::Task::is_classifier`]). A classifier has a `label` output
//!   (the class index, `i64`) and usually `probabilities`; anything else reads `prediction`.
//! - **Labels**: the class index is mapped through `metadata.output.class_labels` — `Int64`
//!   for integer labels, `Utf8` for string labels, the index itself (`Int64`) when the model
//!   has no labels ([`class_column`]).
//! - **Probabilities are `Float64` everywhere**: `FixedSizeList<Float64, n_classes>`, one
//!   entry per class in the label order, widened from f32 when the graph computes in f32
//!   (exact) ([`probabilities_f64`]).
//! - **Regression values** keep the executor's dtype: `Float32` when the model computes in
//!   f32 (dense networks), `Float64` when it computes in f64 (linear models, tree ensembles),
//!   never converted; a multi-target model gives `FixedSizeList<Float32|Float64, T>`.
//! - Outputs are never null: a missing input is a missing value the model handles.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, FixedSizeListArray, Float32Array, Float64Array, Int64Array, StringArray,
};
use arrow::buffer::ScalarBuffer;
use arrow::datatypes::{DataType, Field, FieldRef, Schema};
use mle_exec::{Model, OutputData, OutputInfo, Outputs};
use mle_format::{ClassLabels, DType, Metadata};

use crate::{ArrowError, Result};

/// Name of the prediction column (and of a regressor's output).
pub const PREDICTION: &str = "prediction";
/// Name of the class probabilities column (and of the classifier output).
pub const PROBABILITIES: &str = "probabilities";
/// Name of a classifier's class index output.
pub const LABEL: &str = "label";

/// What a model's `prediction` (and `probabilities`) columns hold.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputKind {
    /// A regressor or ranker: the `prediction` output as numbers.
    Regression {
        /// Element type: `Float32` or `Float64` (the executor's output dtype).
        dtype: DataType,
        /// Targets per row: 0 for one target (a plain column), `T ≥ 2` for a list of `T`.
        width: usize,
    },
    /// A classifier: the `label` output mapped to class labels, and `probabilities`.
    Classifier {
        /// The label column type: `Int64` or `Utf8`.
        label_type: DataType,
        /// Number of classes (0 when the model has neither probabilities nor labels).
        n_classes: usize,
        /// True when the model has a `probabilities` output.
        probabilities: bool,
    },
}

fn arrow_float(dt: DType, what: &str) -> Result<DataType> {
    match dt {
        DType::F32 => Ok(DataType::Float32),
        DType::F64 => Ok(DataType::Float64),
        other => Err(ArrowError::Output(format!(
            "output {what:?} has dtype {other}, expected f32 or f64"
        ))),
    }
}

fn find<'a>(outputs: &'a [OutputInfo], name: &str) -> Result<&'a OutputInfo> {
    outputs.iter().find(|o| o.name == name).ok_or_else(|| {
        let have: Vec<&str> = outputs.iter().map(|o| o.name.as_str()).collect();
        ArrowError::Output(format!(
            "the model has no output {name:?} (it has: {})",
            have.join(", ")
        ))
    })
}

impl OutputKind {
    /// Derives the output kind from a model's metadata and compiled outputs.
    pub fn of(metadata: &Metadata, outputs: &[OutputInfo]) -> Result<OutputKind> {
        if metadata.task.is_classifier() {
            let label = find(outputs, LABEL)?;
            if label.dtype != DType::I64 {
                return Err(ArrowError::Output(format!(
                    "output \"label\" has dtype {}, expected i64",
                    label.dtype
                )));
            }
            let proba = outputs.iter().find(|o| o.name == PROBABILITIES);
            if let Some(p) = proba {
                arrow_float(p.dtype, PROBABILITIES)?;
            }
            let labels = metadata.output.class_labels.as_ref();
            let n_classes = match (proba, labels) {
                (Some(p), _) => p.width.max(1),
                (None, Some(l)) => l.len(),
                (None, None) => 0,
            };
            if let Some(labels) = labels {
                if labels.len() != n_classes {
                    return Err(ArrowError::Output(format!(
                        "{} class labels for {n_classes} probability columns",
                        labels.len()
                    )));
                }
            }
            let label_type = match labels {
                Some(ClassLabels::Str(_)) => DataType::Utf8,
                _ => DataType::Int64,
            };
            Ok(OutputKind::Classifier {
                label_type,
                n_classes,
                probabilities: proba.is_some(),
            })
        } else {
            let p = find(outputs, PREDICTION)?;
            Ok(OutputKind::Regression {
                dtype: arrow_float(p.dtype, PREDICTION)?,
                // `[N]` and `[N, 1]` are both one value per row: a plain column.
                width: if p.width <= 1 { 0 } else { p.width },
            })
        }
    }

    /// Derives the output kind of a compiled model.
    pub fn of_model(model: &Model) -> Result<OutputKind> {
        Self::of(model.metadata(), model.outputs())
    }

    /// True for classifiers.
    pub fn is_classifier(&self) -> bool {
        matches!(self, OutputKind::Classifier { .. })
    }

    /// True when the model has class probabilities.
    pub fn has_probabilities(&self) -> bool {
        matches!(
            self,
            OutputKind::Classifier {
                probabilities: true,
                ..
            }
        )
    }

    /// The executor output a prediction is read from: `label` for classifiers, else
    /// `prediction`.
    pub fn prediction_output(&self) -> &'static str {
        if self.is_classifier() {
            LABEL
        } else {
            PREDICTION
        }
    }

    /// The Arrow type of the `prediction` column.
    pub fn prediction_type(&self) -> DataType {
        match self {
            OutputKind::Regression { dtype, width: 0 } => dtype.clone(),
            OutputKind::Regression { dtype, width } => list_type(dtype, *width),
            OutputKind::Classifier { label_type, .. } => label_type.clone(),
        }
    }

    /// The Arrow type of the `probabilities` column: `FixedSizeList<Float64, n_classes>`
    /// (classifiers with probabilities only).
    pub fn probabilities_type(&self) -> Option<DataType> {
        match self {
            OutputKind::Classifier {
                n_classes,
                probabilities: true,
                ..
            } => Some(list_type(&DataType::Float64, *n_classes)),
            _ => None,
        }
    }

    /// The output fields: `prediction`, and `probabilities` for classifiers that have them.
    /// Outputs are never null (a missing input is a missing value the model handles).
    pub fn fields(&self) -> Vec<FieldRef> {
        let mut f = vec![Arc::new(Field::new(
            PREDICTION,
            self.prediction_type(),
            false,
        ))];
        if let Some(t) = self.probabilities_type() {
            f.push(Arc::new(Field::new(PROBABILITIES, t, false)));
        }
        f
    }

    /// The output schema (see [`OutputKind::fields`]).
    pub fn schema(&self) -> Schema {
        Schema::new(self.fields())
    }
}

fn list_type(elem: &DataType, width: usize) -> DataType {
    DataType::FixedSizeList(
        Arc::new(Field::new("item", elem.clone(), false)),
        width as i32,
    )
}

/// The values as an Arrow array; the `Vec` becomes its buffer (no copy).
fn float_array(data: OutputData, what: &str) -> Result<ArrayRef> {
    Ok(match data {
        OutputData::F32(v) => Arc::new(Float32Array::new(ScalarBuffer::from(v), None)),
        OutputData::F64(v) => Arc::new(Float64Array::new(ScalarBuffer::from(v), None)),
        OutputData::I64(_) => {
            return Err(ArrowError::Output(format!(
                "output {what:?} holds integers, expected floats"
            )))
        }
    })
}

fn data_len(data: &OutputData) -> usize {
    match data {
        OutputData::F32(v) => v.len(),
        OutputData::F64(v) => v.len(),
        OutputData::I64(v) => v.len(),
    }
}

fn fixed_list(values: ArrayRef, width: usize, n_rows: usize, what: &str) -> Result<ArrayRef> {
    let need = n_rows.saturating_mul(width);
    if values.len() != need || width == 0 || width > i32::MAX as usize {
        return Err(ArrowError::Output(format!(
            "output {what:?} has {} values, expected {n_rows} rows × {width}",
            values.len()
        )));
    }
    let field = Arc::new(Field::new("item", values.data_type().clone(), false));
    FixedSizeListArray::try_new(field, width as i32, values, None)
        .map(|a| Arc::new(a) as ArrayRef)
        .map_err(|source| ArrowError::Cast {
            column: what.to_string(),
            source,
        })
}

/// Class labels of a batch (see [`class_column`]).
#[derive(Debug, Clone, PartialEq)]
pub enum ClassColumn<'m> {
    /// Integer labels, or the class index itself when the model has no labels.
    Int(Vec<i64>),
    /// String labels, borrowed from the metadata.
    Str(Vec<&'m str>),
}

/// Maps the executor's class indices to class labels (the one label mapping of every front
/// end). An index outside the `n_classes` classes is an error, never a panic; with no labels
/// and `n_classes == 0` (nothing to check against) only negative indices are refused.
pub fn class_column<'m>(
    metadata: &'m Metadata,
    n_classes: usize,
    idx: &[i64],
) -> Result<ClassColumn<'m>> {
    let bad = |i: i64| {
        ArrowError::Output(format!(
            "class index {i} is outside the {n_classes} classes"
        ))
    };
    match &metadata.output.class_labels {
        Some(ClassLabels::Int(labels)) => idx
            .iter()
            .map(|&i| {
                usize::try_from(i)
                    .ok()
                    .and_then(|u| labels.get(u).copied())
                    .ok_or_else(|| bad(i))
            })
            .collect::<Result<Vec<i64>>>()
            .map(ClassColumn::Int),
        Some(ClassLabels::Str(labels)) => idx
            .iter()
            .map(|&i| {
                usize::try_from(i)
                    .ok()
                    .and_then(|u| labels.get(u))
                    .map(String::as_str)
                    .ok_or_else(|| bad(i))
            })
            .collect::<Result<Vec<&str>>>()
            .map(ClassColumn::Str),
        None => {
            let out_of_range = |i: i64| i < 0 || (n_classes > 0 && i as u64 >= n_classes as u64);
            if let Some(&i) = idx.iter().find(|&&i| out_of_range(i)) {
                return Err(bad(i));
            }
            Ok(ClassColumn::Int(idx.to_vec()))
        }
    }
}

/// The probabilities as f64 (the one probability dtype of every front end): f64 outputs are
/// moved, f32 outputs widened (exactly).
pub fn probabilities_f64(data: OutputData) -> Result<Vec<f64>> {
    match data {
        OutputData::F64(v) => Ok(v),
        OutputData::F32(v) => Ok(v.into_iter().map(f64::from).collect()),
        OutputData::I64(_) => Err(ArrowError::Output(
            "output \"probabilities\" holds integers, expected floats".into(),
        )),
    }
}

/// The output arrays of one batch.
#[derive(Debug, Clone)]
pub struct OutputArrays {
    /// The `prediction` column (see [`OutputKind::prediction_type`]).
    pub prediction: ArrayRef,
    /// The `probabilities` column of classifiers that have one.
    pub probabilities: Option<ArrayRef>,
}

/// Turns the executor's outputs into Arrow arrays as described by `kind`. The float
/// outputs' buffers become the arrays' buffers (no copy): pass the outputs of
/// `Session::predict_batch_owned`.
pub fn output_arrays(
    kind: &OutputKind,
    metadata: &Metadata,
    outputs: Outputs,
) -> Result<OutputArrays> {
    let n = outputs.n_rows;
    let mut outputs = outputs.outputs;
    let mut get = |name: &str| {
        outputs
            .iter()
            .position(|o| o.info.name == name)
            .map(|i| outputs.swap_remove(i))
            .ok_or_else(|| ArrowError::Output(format!("the run produced no output {name:?}")))
    };
    match kind {
        OutputKind::Regression { width, .. } => {
            let p = get(PREDICTION)?;
            let values = float_array(p.data, PREDICTION)?;
            let prediction = if *width == 0 {
                if values.len() != n {
                    return Err(ArrowError::Output(format!(
                        "output \"prediction\" has {} values for {n} rows",
                        values.len()
                    )));
                }
                values
            } else {
                fixed_list(values, *width, n, PREDICTION)?
            };
            check_type(&prediction, &kind.prediction_type(), PREDICTION)?;
            Ok(OutputArrays {
                prediction,
                probabilities: None,
            })
        }
        OutputKind::Classifier {
            n_classes,
            probabilities,
            ..
        } => {
            let label = get(LABEL)?;
            let OutputData::I64(idx) = &label.data else {
                return Err(ArrowError::Output("output \"label\" is not i64".into()));
            };
            if idx.len() != n {
                return Err(ArrowError::Output(format!(
                    "output \"label\" has {} values for {n} rows",
                    idx.len()
                )));
            }
            let prediction: ArrayRef = match class_column(metadata, *n_classes, idx)? {
                ClassColumn::Int(v) => Arc::new(Int64Array::from(v)),
                ClassColumn::Str(v) => Arc::new(StringArray::from(v)),
            };
            if !probabilities {
                return Ok(OutputArrays {
                    prediction,
                    probabilities: None,
                });
            }
            let p = get(PROBABILITIES)?;
            if data_len(&p.data) != n * n_classes {
                return Err(ArrowError::Output(format!(
                    "output \"probabilities\" has {} values for {n} rows × {n_classes} classes",
                    data_len(&p.data)
                )));
            }
            let values = probabilities_f64(p.data)?;
            let values: ArrayRef = Arc::new(Float64Array::new(ScalarBuffer::from(values), None));
            let probabilities = fixed_list(values, *n_classes, n, PROBABILITIES)?;
            if let Some(t) = kind.probabilities_type() {
                check_type(&probabilities, &t, PROBABILITIES)?;
            }
            Ok(OutputArrays {
                prediction,
                probabilities: Some(probabilities),
            })
        }
    }
}

fn check_type(a: &ArrayRef, t: &DataType, what: &str) -> Result<()> {
    if a.data_type() != t {
        return Err(ArrowError::Output(format!(
            "output {what:?} is {} but the model's schema says {t}",
            a.data_type()
        )));
    }
    Ok(())
}
