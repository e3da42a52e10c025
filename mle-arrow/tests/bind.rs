//! Binding Arrow columns to features and building output arrays.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, Float32Array, Float64Array,
    Int32Array, Int64Array, StringArray, UInt8Array,
};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use mle_arrow::{columns_by_name, output_arrays, ArrowError, BoundColumns, OutputKind};
use mle_exec::{ColumnData, Output, OutputData, OutputInfo, Outputs};
use mle_format::{ClassLabels, DType, Metadata, Task};

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("f{i}")).collect()
}

fn values(b: &BoundColumns) -> Vec<Vec<f64>> {
    let batch = b.batch().unwrap();
    batch
        .columns()
        .iter()
        .map(|c| (0..batch.n_rows()).map(|r| c.get_f64(r)).collect())
        .collect()
}

#[test]
fn float_columns_without_nulls_are_borrowed_in_place() {
    let a = Float32Array::from(vec![1.5f32, 2.5, 3.5, 4.5]);
    let b = Float64Array::from(vec![0.1f64, 0.2, 0.3, 0.4]);
    // A slice with a non-zero offset must still be viewed at the right place.
    let b_sliced = b.slice(1, 3);
    let a_sliced = a.slice(1, 3);
    let cols: Vec<ArrayRef> = vec![Arc::new(a_sliced.clone()), Arc::new(b_sliced.clone())];
    let bound = BoundColumns::bind(&cols, &names(2), &names(2)).unwrap();
    assert_eq!(bound.borrowed_count(), 2);
    let batch = bound.batch().unwrap();
    match batch.columns()[0].data {
        ColumnData::F32(s) => assert_eq!(s.as_ptr(), a_sliced.values().as_ptr()),
        other => panic!("expected f32, got {other:?}"),
    }
    match batch.columns()[1].data {
        ColumnData::F64(s) => assert_eq!(s.as_ptr(), b_sliced.values().as_ptr()),
        other => panic!("expected f64, got {other:?}"),
    }
    assert_eq!(
        values(&bound),
        vec![vec![2.5, 3.5, 4.5], vec![0.2, 0.3, 0.4]]
    );
}

#[test]
fn nulls_become_nan_and_only_those_columns_are_copied() {
    let a = Float32Array::from(vec![Some(1.0f32), None, Some(3.0)]);
    let b = Float64Array::from(vec![None, Some(2.0f64), Some(3.0)]);
    let c = Float64Array::from(vec![7.0f64, 8.0, 9.0]);
    let cols: Vec<ArrayRef> = vec![Arc::new(a), Arc::new(b), Arc::new(c)];
    let bound = BoundColumns::bind(&cols, &names(3), &names(3)).unwrap();
    assert_eq!(bound.borrowed_count(), 1);
    let v = values(&bound);
    assert_eq!(v[0][0], 1.0);
    assert!(v[0][1].is_nan());
    assert!(v[1][0].is_nan());
    assert_eq!(v[1][1..], [2.0, 3.0]);
    assert_eq!(v[2], [7.0, 8.0, 9.0]);
}

#[test]
fn integer_unsigned_boolean_and_decimal_columns_are_converted() {
    let i = Int32Array::from(vec![Some(-3), None, Some(5)]);
    let u = UInt8Array::from(vec![1u8, 2, 255]);
    let t = BooleanArray::from(vec![Some(true), Some(false), None]);
    let d = Decimal128Array::from(vec![Some(12345i128), Some(-5), None])
        .with_precision_and_scale(10, 2)
        .unwrap();
    let cols: Vec<ArrayRef> = vec![Arc::new(i), Arc::new(u), Arc::new(t), Arc::new(d)];
    let bound = BoundColumns::bind(&cols, &names(4), &names(4)).unwrap();
    let v = values(&bound);
    assert_eq!(v[0][0], -3.0);
    assert!(v[0][1].is_nan());
    assert_eq!(v[0][2], 5.0);
    assert_eq!(v[1], [1.0, 2.0, 255.0]);
    assert_eq!(v[2][..2], [1.0, 0.0]);
    assert!(v[2][2].is_nan());
    assert_eq!(v[3][..2], [123.45, -0.05]);
    assert!(v[3][2].is_nan());
}

#[test]
fn string_column_is_refused_naming_column_and_feature() {
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Float64Array::from(vec![1.0])),
        Arc::new(StringArray::from(vec!["x"])),
    ];
    let err = BoundColumns::bind(
        &cols,
        &["a".to_string(), "name".to_string()],
        &["f_a".to_string(), "f_b".to_string()],
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ArrowError::UnsupportedType { .. }), "{msg}");
    assert!(
        msg.contains("\"name\"") && msg.contains("\"f_b\"") && msg.contains("Utf8"),
        "{msg}"
    );
}

#[test]
fn wrong_column_count_lists_the_features() {
    let cols: Vec<ArrayRef> = vec![Arc::new(Float64Array::from(vec![1.0]))];
    let err = BoundColumns::bind(&cols, &names(1), &names(3)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the model takes 3 features (f0, f1, f2) but 1 columns were given"
    );
}

#[test]
fn columns_by_name_lists_every_missing_column() {
    let schema = Schema::new(vec![
        Field::new("a", DataType::Float64, true),
        Field::new("b", DataType::Float64, true),
    ]);
    assert_eq!(
        columns_by_name(&schema, &["b".into(), "a".into()]).unwrap(),
        vec![1, 0]
    );
    let err = columns_by_name(&schema, &["a".into(), "x".into(), "y".into()]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the input has no columns x, y (the input has: a, b)"
    );
}

fn meta(task: Task, labels: Option<ClassLabels>) -> Metadata {
    let mut m = Metadata::new("test", "test", task, names(2), DType::F64, &[]);
    m.output.class_labels = labels;
    m
}

fn info(name: &str, dtype: DType, width: usize) -> OutputInfo {
    OutputInfo {
        name: name.into(),
        dtype,
        width,
    }
}

#[test]
fn regressor_keeps_the_executor_dtype() {
    let m = meta(Task::Regression, None);
    for (dt, data, arrow_dt) in [
        (
            DType::F32,
            OutputData::F32(vec![1.0, 2.0]),
            DataType::Float32,
        ),
        (
            DType::F64,
            OutputData::F64(vec![1.0, 2.0]),
            DataType::Float64,
        ),
    ] {
        let outs = vec![info("prediction", dt, 0)];
        let kind = OutputKind::of(&m, &outs).unwrap();
        assert_eq!(kind.prediction_type(), arrow_dt);
        assert_eq!(kind.probabilities_type(), None);
        let o = Outputs {
            outputs: vec![Output {
                info: outs[0].clone(),
                data,
            }],
            n_rows: 2,
        };
        let arr = output_arrays(&kind, &m, o.clone()).unwrap();
        assert_eq!(arr.prediction.data_type(), &arrow_dt);
        assert_eq!(arr.prediction.len(), 2);
    }
    // [N, 1] is one value per row too.
    let kind = OutputKind::of(&m, &[info("prediction", DType::F64, 1)]).unwrap();
    assert_eq!(kind.prediction_type(), DataType::Float64);
    let o = Outputs {
        outputs: vec![Output {
            info: info("prediction", DType::F64, 1),
            data: OutputData::F64(vec![3.0, 4.0]),
        }],
        n_rows: 2,
    };
    let arr = output_arrays(&kind, &m, o.clone()).unwrap();
    assert_eq!(
        arr.prediction.as_primitive::<Float64Type>().values(),
        &[3.0, 4.0]
    );
}

fn classifier_outputs(idx: Vec<i64>, proba: Vec<f32>) -> (Vec<OutputInfo>, Outputs) {
    let infos = vec![
        info("label", DType::I64, 0),
        info("probabilities", DType::F32, 3),
    ];
    let n = idx.len();
    let o = Outputs {
        outputs: vec![
            Output {
                info: infos[0].clone(),
                data: OutputData::I64(idx),
            },
            Output {
                info: infos[1].clone(),
                data: OutputData::F32(proba),
            },
        ],
        n_rows: n,
    };
    (infos, o)
}

#[test]
fn classifier_maps_indices_through_string_and_integer_labels() {
    let (infos, o) = classifier_outputs(vec![2, 0], vec![0.1, 0.2, 0.7, 0.8, 0.1, 0.1]);
    let m = meta(
        Task::Multiclass,
        Some(ClassLabels::Str(vec!["a".into(), "b".into(), "c".into()])),
    );
    let kind = OutputKind::of(&m, &infos).unwrap();
    assert_eq!(kind.prediction_type(), DataType::Utf8);
    let arr = output_arrays(&kind, &m, o.clone()).unwrap();
    let labels = arr.prediction.as_string::<i32>();
    assert_eq!((labels.value(0), labels.value(1)), ("c", "a"));
    let p = arr.probabilities.unwrap();
    assert_eq!(p.data_type(), &kind.probabilities_type().unwrap());
    let list = p.as_fixed_size_list();
    assert_eq!(list.value_length(), 3);
    // Probabilities are Float64 everywhere: the f32 output is widened exactly.
    assert_eq!(
        list.value(1).as_primitive::<Float64Type>().values(),
        &[0.8f32 as f64, 0.1f32 as f64, 0.1f32 as f64]
    );

    let m = meta(Task::Multiclass, Some(ClassLabels::Int(vec![10, 20, 30])));
    let kind = OutputKind::of(&m, &infos).unwrap();
    let arr = output_arrays(&kind, &m, o.clone()).unwrap();
    assert_eq!(
        arr.prediction.as_primitive::<Int64Type>().values(),
        &[30, 10]
    );
    let _ = Int64Array::from(vec![0]);
}

#[test]
fn class_index_out_of_range_is_an_error_not_a_panic() {
    let (infos, o) = classifier_outputs(vec![3], vec![0.1, 0.2, 0.7]);
    let m = meta(Task::Multiclass, Some(ClassLabels::Int(vec![0, 1, 2])));
    let kind = OutputKind::of(&m, &infos).unwrap();
    let err = output_arrays(&kind, &m, o.clone()).unwrap_err();
    assert!(
        err.to_string()
            .contains("class index 3 is outside the 3 classes"),
        "{err}"
    );
}

#[test]
fn label_count_must_match_probability_columns() {
    let (infos, _) = classifier_outputs(vec![0], vec![0.1, 0.2, 0.7]);
    let m = meta(Task::Multiclass, Some(ClassLabels::Int(vec![0, 1])));
    let err = OutputKind::of(&m, &infos).unwrap_err();
    assert!(
        err.to_string()
            .contains("2 class labels for 3 probability columns"),
        "{err}"
    );
}

#[test]
fn a_one_row_column_is_broadcast_without_a_copy_and_other_lengths_are_refused() {
    let lit = Float64Array::from(vec![0.25]);
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0])),
        Arc::new(lit.clone()),
    ];
    let bound = BoundColumns::bind(&cols, &names(2), &names(2)).unwrap();
    assert_eq!((bound.n_rows(), bound.borrowed_count()), (3, 2));
    assert_eq!(
        values(&bound),
        vec![vec![1.0, 2.0, 3.0], vec![0.25, 0.25, 0.25]]
    );
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0])),
        Arc::new(Float64Array::from(vec![1.0, 2.0])),
    ];
    let err = BoundColumns::bind(&cols, &names(2), &names(2)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "column \"f1\" has 2 rows but the batch has 3"
    );
}

#[test]
fn probabilities_are_float64_even_when_the_graph_computes_in_f32() {
    let (infos, o) = classifier_outputs(vec![1], vec![0.25, 0.5, 0.25]);
    let m = meta(Task::Multiclass, None);
    let kind = OutputKind::of(&m, &infos).unwrap();
    let want = DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float64, false)), 3);
    assert_eq!(kind.probabilities_type(), Some(want.clone()));
    let arr = output_arrays(&kind, &m, o.clone()).unwrap();
    assert_eq!(arr.probabilities.unwrap().data_type(), &want);
    assert_eq!(arr.prediction.as_primitive::<Int64Type>().values(), &[1]);
}

#[test]
fn a_classifier_without_probabilities_still_predicts_labels() {
    let infos = vec![info("label", DType::I64, 0)];
    let m = meta(
        Task::Binary,
        Some(ClassLabels::Str(vec!["no".into(), "yes".into()])),
    );
    let kind = OutputKind::of(&m, &infos).unwrap();
    assert!(kind.is_classifier() && !kind.has_probabilities());
    assert_eq!(kind.probabilities_type(), None);
    let o = Outputs {
        outputs: vec![Output {
            info: infos[0].clone(),
            data: OutputData::I64(vec![1, 0]),
        }],
        n_rows: 2,
    };
    let arr = output_arrays(&kind, &m, o.clone()).unwrap();
    let labels = arr.prediction.as_string::<i32>();
    assert_eq!((labels.value(0), labels.value(1)), ("yes", "no"));
    assert!(arr.probabilities.is_none());
}
