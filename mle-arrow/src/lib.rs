//! # mle-arrow
//!
//! The Arrow side of the runtime: bind the columns of a `RecordBatch` (or any set of Arrow
//! arrays) to a model's features, and turn the executor's outputs back into Arrow arrays.
//!
//! **Inputs.** `Float32` and `Float64` columns without nulls are borrowed in place (no copy).
//! Integer, unsigned, boolean, `Float16`, decimal and dictionary-encoded numeric columns are
//! converted to `Float64`. A null becomes a missing value (NaN); only a column that has nulls
//! is copied to do so.
//!
//! **Outputs.** (see [`OutputKind`])
//! - regressors and rankers: `prediction` is `Float32` when the model computes in f32 (dense
//!   networks) and `Float64` when it computes in f64 (linear models, tree ensembles: XGBoost,
//!   LightGBM and scikit-learn all return f64 or have f64-exact leaf sums) — exactly the
//!   executor's output dtype, never converted; a multi-target model gives a
//!   `FixedSizeList<Float32|Float64>` of the targets;
//! - classifiers: `prediction` is the class label, the executor's class index mapped through
//!   `metadata.output.class_labels` (`Int64` for integer labels, `Utf8` for string labels;
//!   the index itself as `Int64` when the model has no labels), and `probabilities` is a
//!   `FixedSizeList<Float32|Float64>` with one entry per class, in the label order.

#![warn(missing_docs)]

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeListArray, Float32Array, Float64Array, Int64Array,
    StringArray,
};
use arrow::buffer::ScalarBuffer;
use arrow::datatypes::{DataType, Field, FieldRef, Float32Type, Float64Type, Schema};
use mle_exec::{Batch, ColumnData, Model, OutputData, OutputInfo, Outputs};
use mle_format::{ClassLabels, DType, Metadata};
use thiserror::Error;

/// Name of the prediction column.
pub const PREDICTION: &str = "prediction";
/// Name of the class probabilities column.
pub const PROBABILITIES: &str = "probabilities";

/// An error binding Arrow columns to a model or building output arrays.
#[derive(Debug, Error)]
pub enum ArrowError {
    /// A column's type cannot be used as a numeric feature.
    #[error("column {column:?} (feature {feature:?}) has type {data_type}, which is not numeric (integer, unsigned, float, decimal or boolean columns are accepted)")]
    UnsupportedType {
        /// Name of the column (or its position).
        column: String,
        /// The feature it binds to.
        feature: String,
        /// Its Arrow type.
        data_type: DataType,
    },
    /// The number of columns does not match the model's features.
    #[error("the model takes {expected} features ({names}) but {actual} columns were given")]
    FeatureCount {
        /// Features of the model.
        expected: usize,
        /// Columns given.
        actual: usize,
        /// The model's feature names, comma separated.
        names: String,
    },
    /// Columns of one batch have different lengths.
    #[error("column {column:?} has {actual} rows but the batch has {expected}")]
    Length {
        /// The column.
        column: String,
        /// Rows of the batch.
        expected: usize,
        /// Rows of the column.
        actual: usize,
    },
    /// Columns named by the model (or the user) are missing from the input.
    #[error("the input has no column{} {} (the input has: {available})", if missing.len() == 1 { "" } else { "s" }, missing.join(", "))]
    MissingColumns {
        /// Names not found.
        missing: Vec<String>,
        /// Names the input has, comma separated.
        available: String,
    },
    /// The executor's outputs do not match what the model's metadata promises.
    #[error("model output does not match its metadata: {0}")]
    Output(String),
    /// Arrow could not convert a column.
    #[error("converting column {column:?}: {source}")]
    Cast {
        /// The column.
        column: String,
        /// The Arrow error.
        #[source]
        source: arrow::error::ArrowError,
    },
    /// The executor failed.
    #[error(transparent)]
    Exec(#[from] mle_exec::ExecError),
}

/// Result alias of this crate.
pub type Result<T, E = ArrowError> = std::result::Result<T, E>;

/// True when columns of this Arrow type can be bound to a feature.
pub fn is_supported_type(dt: &DataType) -> bool {
    match dt {
        DataType::Null
        | DataType::Boolean
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal32(_, _)
        | DataType::Decimal64(_, _)
        | DataType::Decimal128(_, _)
        | DataType::Decimal256(_, _) => true,
        DataType::Dictionary(_, v) => is_supported_type(v),
        _ => false,
    }
}

/// Storage of one bound column: borrowed from Arrow, or converted.
enum Bound {
    F32(ArrayRef),
    F64(ArrayRef),
    OwnedF32(Vec<f32>),
    OwnedF64(Vec<f64>),
}

/// Arrow columns bound to a model's features, ready to view as an executor [`Batch`].
///
/// Holds references to the original arrays (so borrowed columns stay alive) and the buffers of
/// converted columns.
pub struct BoundColumns {
    cols: Vec<Bound>,
    n_rows: usize,
}

impl std::fmt::Debug for BoundColumns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundColumns")
            .field("n_columns", &self.cols.len())
            .field("n_rows", &self.n_rows)
            .field("borrowed", &self.borrowed_count())
            .finish()
    }
}

impl BoundColumns {
    /// Binds `columns` (in the model's feature order) as features. `names` are used in errors
    /// (column names, or the feature names); `feature_names` are the model's features.
    pub fn bind(
        columns: &[ArrayRef],
        names: &[String],
        feature_names: &[String],
    ) -> Result<BoundColumns> {
        if columns.len() != feature_names.len() {
            return Err(ArrowError::FeatureCount {
                expected: feature_names.len(),
                actual: columns.len(),
                names: feature_names.join(", "),
            });
        }
        let n_rows = columns.first().map_or(0, |c| c.len());
        let mut cols = Vec::with_capacity(columns.len());
        for (j, arr) in columns.iter().enumerate() {
            let column = || {
                names
                    .get(j)
                    .cloned()
                    .unwrap_or_else(|| format!("#{}", j + 1))
            };
            if arr.len() != n_rows {
                return Err(ArrowError::Length {
                    column: column(),
                    expected: n_rows,
                    actual: arr.len(),
                });
            }
            cols.push(bind_one(arr, j, &column, feature_names)?);
        }
        Ok(BoundColumns { cols, n_rows })
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// How many columns are borrowed from Arrow without a copy.
    pub fn borrowed_count(&self) -> usize {
        self.cols
            .iter()
            .filter(|c| matches!(c, Bound::F32(_) | Bound::F64(_)))
            .count()
    }

    /// The executor batch viewing these columns.
    pub fn batch(&self) -> Result<Batch<'_>> {
        let data = self
            .cols
            .iter()
            .map(|c| match c {
                // `bind_one` stores only Float32/Float64 arrays in these arms.
                Bound::F32(a) => ColumnData::F32(&a.as_primitive::<Float32Type>().values()[..]),
                Bound::F64(a) => ColumnData::F64(&a.as_primitive::<Float64Type>().values()[..]),
                Bound::OwnedF32(v) => ColumnData::F32(v),
                Bound::OwnedF64(v) => ColumnData::F64(v),
            })
            .collect();
        if self.cols.is_empty() {
            return Ok(Batch::from_strided(Vec::new(), self.n_rows)?);
        }
        Ok(Batch::from_columns(data)?)
    }
}

fn bind_one(
    arr: &ArrayRef,
    j: usize,
    column: &dyn Fn() -> String,
    feature_names: &[String],
) -> Result<Bound> {
    let unsupported = || ArrowError::UnsupportedType {
        column: column(),
        feature: feature_names.get(j).cloned().unwrap_or_default(),
        data_type: arr.data_type().clone(),
    };
    match arr.data_type() {
        DataType::Float32 => {
            if arr.null_count() == 0 {
                return Ok(Bound::F32(arr.clone()));
            }
            let a = arr.as_primitive::<Float32Type>();
            Ok(Bound::OwnedF32(
                a.iter().map(|v| v.unwrap_or(f32::NAN)).collect(),
            ))
        }
        DataType::Float64 => {
            if arr.null_count() == 0 {
                return Ok(Bound::F64(arr.clone()));
            }
            Ok(Bound::OwnedF64(with_nan(arr.as_primitive::<Float64Type>())))
        }
        DataType::Null => Ok(Bound::OwnedF64(vec![f64::NAN; arr.len()])),
        dt if is_supported_type(dt) => {
            let cast = arrow::compute::cast(arr, &DataType::Float64).map_err(|source| {
                ArrowError::Cast {
                    column: column(),
                    source,
                }
            })?;
            if cast.null_count() == 0 {
                Ok(Bound::F64(cast))
            } else {
                Ok(Bound::OwnedF64(with_nan(
                    cast.as_primitive::<Float64Type>(),
                )))
            }
        }
        _ => Err(unsupported()),
    }
}

fn with_nan(a: &Float64Array) -> Vec<f64> {
    a.iter().map(|v| v.unwrap_or(f64::NAN)).collect()
}

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
        /// Element type of the probabilities: `Float32` or `Float64`.
        proba_dtype: DataType,
        /// Number of classes.
        n_classes: usize,
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
            let proba = find(outputs, "probabilities")?;
            let label = find(outputs, "label")?;
            if label.dtype != DType::I64 {
                return Err(ArrowError::Output(format!(
                    "output \"label\" has dtype {}, expected i64",
                    label.dtype
                )));
            }
            let n_classes = proba.width.max(1);
            let label_type = match &metadata.output.class_labels {
                Some(ClassLabels::Str(_)) => DataType::Utf8,
                _ => DataType::Int64,
            };
            if let Some(labels) = &metadata.output.class_labels {
                if labels.len() != n_classes {
                    return Err(ArrowError::Output(format!(
                        "{} class labels for {n_classes} probability columns",
                        labels.len()
                    )));
                }
            }
            Ok(OutputKind::Classifier {
                label_type,
                proba_dtype: arrow_float(proba.dtype, "probabilities")?,
                n_classes,
            })
        } else {
            let p = find(outputs, "prediction")?;
            Ok(OutputKind::Regression {
                dtype: arrow_float(p.dtype, "prediction")?,
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

    /// The Arrow type of the `prediction` column.
    pub fn prediction_type(&self) -> DataType {
        match self {
            OutputKind::Regression { dtype, width: 0 } => dtype.clone(),
            OutputKind::Regression { dtype, width } => list_type(dtype, *width),
            OutputKind::Classifier { label_type, .. } => label_type.clone(),
        }
    }

    /// The Arrow type of the `probabilities` column (classifiers only).
    pub fn probabilities_type(&self) -> Option<DataType> {
        match self {
            OutputKind::Classifier {
                proba_dtype,
                n_classes,
                ..
            } => Some(list_type(proba_dtype, *n_classes)),
            OutputKind::Regression { .. } => None,
        }
    }

    /// The output fields: `prediction`, and `probabilities` for classifiers. Outputs are never
    /// null (a missing input is a missing value the model handles).
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

fn float_array(data: &OutputData, what: &str) -> Result<ArrayRef> {
    Ok(match data {
        OutputData::F32(v) => Arc::new(Float32Array::new(ScalarBuffer::from(v.clone()), None)),
        OutputData::F64(v) => Arc::new(Float64Array::new(ScalarBuffer::from(v.clone()), None)),
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

/// The output arrays of one batch.
#[derive(Debug, Clone)]
pub struct OutputArrays {
    /// The `prediction` column (see [`OutputKind::prediction_type`]).
    pub prediction: ArrayRef,
    /// The `probabilities` column of classifiers.
    pub probabilities: Option<ArrayRef>,
}

/// Turns the executor's outputs into Arrow arrays as described by `kind`.
pub fn output_arrays(
    kind: &OutputKind,
    metadata: &Metadata,
    outputs: &Outputs,
) -> Result<OutputArrays> {
    let n = outputs.n_rows;
    let get = |name: &str| {
        outputs
            .get(name)
            .ok_or_else(|| ArrowError::Output(format!("the run produced no output {name:?}")))
    };
    match kind {
        OutputKind::Regression { width, .. } => {
            let p = get("prediction")?;
            let values = float_array(&p.data, "prediction")?;
            let prediction = if *width == 0 {
                if values.len() != n {
                    return Err(ArrowError::Output(format!(
                        "output \"prediction\" has {} values for {n} rows",
                        values.len()
                    )));
                }
                values
            } else {
                fixed_list(values, *width, n, "prediction")?
            };
            check_type(&prediction, &kind.prediction_type(), "prediction")?;
            Ok(OutputArrays {
                prediction,
                probabilities: None,
            })
        }
        OutputKind::Classifier { n_classes, .. } => {
            let label = get("label")?;
            let OutputData::I64(idx) = &label.data else {
                return Err(ArrowError::Output("output \"label\" is not i64".into()));
            };
            if idx.len() != n {
                return Err(ArrowError::Output(format!(
                    "output \"label\" has {} values for {n} rows",
                    idx.len()
                )));
            }
            let bad = |i: i64| {
                ArrowError::Output(format!(
                    "class index {i} is outside the {n_classes} classes"
                ))
            };
            let prediction: ArrayRef = match &metadata.output.class_labels {
                Some(ClassLabels::Int(labels)) => Arc::new(Int64Array::from(
                    idx.iter()
                        .map(|&i| {
                            usize::try_from(i)
                                .ok()
                                .and_then(|u| labels.get(u).copied())
                                .ok_or_else(|| bad(i))
                        })
                        .collect::<Result<Vec<i64>>>()?,
                )),
                Some(ClassLabels::Str(labels)) => {
                    let mut out = Vec::with_capacity(idx.len());
                    for &i in idx {
                        out.push(
                            usize::try_from(i)
                                .ok()
                                .and_then(|u| labels.get(u))
                                .ok_or_else(|| bad(i))?
                                .as_str(),
                        );
                    }
                    Arc::new(StringArray::from(out))
                }
                None => {
                    if let Some(&i) = idx.iter().find(|&&i| i < 0 || i as usize >= *n_classes) {
                        return Err(bad(i));
                    }
                    Arc::new(Int64Array::from(idx.clone()))
                }
            };
            let p = get("probabilities")?;
            if data_len(&p.data) != n * n_classes {
                return Err(ArrowError::Output(format!(
                    "output \"probabilities\" has {} values for {n} rows × {n_classes} classes",
                    data_len(&p.data)
                )));
            }
            let probabilities = fixed_list(
                float_array(&p.data, "probabilities")?,
                *n_classes,
                n,
                "probabilities",
            )?;
            if let Some(t) = kind.probabilities_type() {
                check_type(&probabilities, &t, "probabilities")?;
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

/// Finds the columns of `schema` that hold the model's features, by name, in feature order.
/// Returns the column indices, or an error listing every missing feature.
pub fn columns_by_name(schema: &Schema, feature_names: &[String]) -> Result<Vec<usize>> {
    let mut idx = Vec::with_capacity(feature_names.len());
    let mut missing = Vec::new();
    for f in feature_names {
        match schema.index_of(f) {
            Ok(i) => idx.push(i),
            Err(_) => missing.push(f.clone()),
        }
    }
    if !missing.is_empty() {
        return Err(ArrowError::MissingColumns {
            missing,
            available: schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(idx)
}

/// Runs `session` over Arrow columns (in feature order) and returns the output arrays.
///
/// `names` name the columns in errors.
pub fn predict_arrays(
    session: &mut mle_exec::Session,
    kind: &OutputKind,
    columns: &[ArrayRef],
    names: &[String],
    opts: mle_exec::RunOptions,
) -> Result<OutputArrays> {
    let model = session.model().clone();
    let meta = model.metadata();
    let bound = BoundColumns::bind(columns, names, &meta.input.feature_names)?;
    let batch = bound.batch()?;
    let outputs = session.predict_batch(&batch, opts)?;
    output_arrays(kind, meta, outputs)
}
