//! The kind-aware input policy: string, large string, string view and dictionary columns bound
//! in place to category features, numeric codes, NULLs, unseen categories, wrong kinds and
//! binding by name — checked against the test kit's typed model, whose values are derived by
//! hand from the strings ([`mle_testkit::typed`]), not by the executor.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, DictionaryArray, Float64Array, Int64Array, LargeStringArray, RecordBatch,
    StringArray, StringViewArray, UInt16Array, UInt8Array,
};
use arrow::datatypes::{DataType, Field, Int32Type, Int8Type, Schema, UInt64Type};
use mle_arrow::{
    bind_record_batch, check_column, ArrowError, BoundColumns, ColumnClass, Features, OutputKind,
};
use mle_exec::{ColumnData, Model, OutputData, RunOptions, Session};
use mle_testkit::typed::{Typed, CITIES};

fn model(t: Typed, unknown: &str) -> Arc<Model> {
    Arc::new(Model::from_bytes(&t.bytes(unknown), "typed.mle").unwrap())
}

fn run(model: &Arc<Model>, bound: &BoundColumns<'_>) -> Vec<f64> {
    let batch = bound.batch().unwrap();
    let mut s = Session::new(model.clone());
    let out = s.predict_batch(&batch, RunOptions::default()).unwrap();
    match &out.get("prediction").unwrap().data {
        OutputData::F64(v) => v.clone(),
        other => panic!("{other:?}"),
    }
}

const CITY: [Option<&str>; 6] = [
    Some("Zürich"),
    Some("Paris"),
    None,
    Some("Atlantis"),
    Some("Zürich"),
    Some("a city with a rather long name"),
];
const X: [Option<f64>; 6] = [Some(0.1), Some(0.9), None, Some(0.5), Some(2.0), Some(-1.0)];
const STORE: [Option<i64>; 6] = [Some(300), Some(0), Some(300), None, Some(7), Some(300)];

fn expected(t: Typed) -> Vec<f64> {
    (0..CITY.len())
        .map(|i| t.margin(CITY[i], X[i], STORE[i].map(|v| v as f64)))
        .collect()
}

fn others() -> (ArrayRef, ArrayRef) {
    (
        Arc::new(Float64Array::from(X.to_vec())),
        Arc::new(Int64Array::from(STORE.to_vec())),
    )
}

fn city_columns() -> Vec<(&'static str, ArrayRef)> {
    let dict: DictionaryArray<Int32Type> = CITY.iter().copied().collect();
    let dict8: DictionaryArray<Int8Type> = CITY.iter().copied().collect();
    let dict_u64: DictionaryArray<UInt64Type> = CITY.iter().copied().collect();
    // A dictionary over string views, with an unused unknown value and a NULL value.
    let values: ArrayRef = Arc::new(StringViewArray::from(vec![
        Some("never used"),
        Some("Zürich"),
        Some("Paris"),
        None,
        Some("Atlantis"),
        Some("a city with a rather long name"),
    ]));
    let keys = UInt16Array::from(vec![Some(1), Some(2), Some(3), Some(4), Some(1), Some(5)]);
    let view_dict = DictionaryArray::try_new(keys, values).unwrap();
    vec![
        ("Utf8", Arc::new(StringArray::from(CITY.to_vec()))),
        ("LargeUtf8", Arc::new(LargeStringArray::from(CITY.to_vec()))),
        ("Utf8View", Arc::new(StringViewArray::from(CITY.to_vec()))),
        ("Dictionary(Int32, Utf8)", Arc::new(dict)),
        ("Dictionary(Int8, Utf8)", Arc::new(dict8)),
        ("Dictionary(UInt64, Utf8)", Arc::new(dict_u64)),
        ("Dictionary(UInt16, Utf8View)", Arc::new(view_dict)),
    ]
}

#[test]
fn every_string_layout_binds_in_place_and_scores_as_the_strings_say() {
    let m = model(Typed::Regressor, "missing");
    let features = Features::of_model(&m);
    let names: Vec<String> = features.names().to_vec();
    for (what, city) in city_columns() {
        let (x, store) = others();
        let cols = vec![city, x, store];
        let bound = BoundColumns::bind_typed(&cols, &names, &features).unwrap();
        // city (strings) and x (Float64 with a null: copied) / store (Int64: converted).
        assert_eq!(bound.borrowed_count(), 1, "{what}");
        let batch = bound.batch().unwrap();
        assert!(
            matches!(
                batch.columns()[0].data,
                ColumnData::Str(_) | ColumnData::Dict(_)
            ),
            "{what}"
        );
        assert_eq!(run(&m, &bound), expected(Typed::Regressor), "{what}");
    }
}

#[test]
fn utf8_bytes_are_borrowed_not_copied_and_slices_are_read_at_their_offset() {
    let m = model(Typed::Regressor, "missing");
    let features = Features::of_model(&m);
    let full = StringArray::from(
        vec![Some("Oslo")]
            .into_iter()
            .chain(CITY)
            .collect::<Vec<_>>(),
    );
    let city = full.slice(1, CITY.len());
    let (x, store) = others();
    let cols: Vec<ArrayRef> = vec![Arc::new(city.clone()), x, store];
    let bound = BoundColumns::bind_typed(&cols, features.names(), &features).unwrap();
    let batch = bound.batch().unwrap();
    let ColumnData::Str(s) = batch.columns()[0].data else {
        panic!("not a string column")
    };
    let mle_exec::StrData::Utf8 { bytes, .. } = s.data else {
        panic!("not Utf8")
    };
    assert_eq!(bytes.as_ptr(), city.values().as_ptr());
    assert_eq!(run(&m, &bound), expected(Typed::Regressor));
}

#[test]
fn numeric_codes_bind_to_a_string_category_and_a_literal_is_broadcast() {
    let m = model(Typed::Regressor, "missing");
    let features = Features::of_model(&m);
    // Codes of Zürich, Paris, missing, an unseen code, Zürich, the long name.
    let codes: ArrayRef = Arc::new(UInt8Array::from(vec![
        Some(1),
        Some(0),
        None,
        Some(40),
        Some(1),
        Some(3),
    ]));
    let (x, store) = others();
    let cols = vec![codes, x, store];
    let bound = BoundColumns::bind_typed(&cols, features.names(), &features).unwrap();
    assert_eq!(run(&m, &bound), expected(Typed::Regressor));

    let lit: ArrayRef = Arc::new(StringArray::from(vec!["Zürich"]));
    let (x, store) = others();
    let cols = vec![lit, x, store];
    let bound = BoundColumns::bind_typed(&cols, features.names(), &features).unwrap();
    assert_eq!(bound.n_rows(), CITY.len());
    let want: Vec<f64> = (0..CITY.len())
        .map(|i| Typed::Regressor.margin(Some("Zürich"), X[i], STORE[i].map(|v| v as f64)))
        .collect();
    assert_eq!(run(&m, &bound), want);
}

#[test]
fn by_name_binds_in_feature_order_ignores_extras_and_names_every_missing_feature() {
    let m = model(Typed::Regressor, "missing");
    let (x, store) = others();
    let city: ArrayRef = Arc::new(StringArray::from(CITY.to_vec()));
    let extra: ArrayRef = Arc::new(StringArray::from(vec!["e"; CITY.len()]));
    let batch = RecordBatch::try_from_iter(vec![
        ("store", store.clone()),
        ("comment", extra),
        ("x", x.clone()),
        ("city", city),
    ])
    .unwrap();
    let bound = bind_record_batch(&batch, &m).unwrap();
    assert_eq!(run(&m, &bound), expected(Typed::Regressor));

    let batch = RecordBatch::try_from_iter(vec![("x", x)]).unwrap();
    let err = bind_record_batch(&batch, &m).unwrap_err();
    assert!(matches!(err, ArrowError::MissingColumns { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "the input has no columns city, store (the input has: x)"
    );
}

#[test]
fn wrong_kinds_name_the_column_the_feature_its_kind_and_the_type() {
    let m = model(Typed::Regressor, "missing");
    let features = Features::of_model(&m);
    let city: ArrayRef = Arc::new(StringArray::from(CITY.to_vec()));
    let (x, store) = others();
    // A string column for the float feature.
    let schema = Schema::new(vec![
        Field::new("city", DataType::Utf8, true),
        Field::new("x", DataType::LargeUtf8, true),
        Field::new("store", DataType::Int64, true),
    ]);
    let err = features.columns_by_name(&schema).unwrap_err().to_string();
    assert_eq!(
        err,
        "column \"x\" (feature \"x\") has type LargeUtf8, which is not numeric; a float feature takes numeric columns (integer, unsigned, float, decimal or boolean)"
    );
    // A string column for the integer categories.
    let cols = vec![city.clone(), x.clone(), city.clone()];
    let names = vec!["c".to_string(), "x".to_string(), "shop".to_string()];
    let err = BoundColumns::bind_typed(&cols, &names, &features).unwrap_err();
    assert!(matches!(err, ArrowError::UnsupportedType { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("\"shop\"")
            && msg.contains("feature \"store\"")
            && msg.contains("category (integer categories)")
            && msg.contains("Utf8"),
        "{msg}"
    );
    // A list is refused for every kind; a Null column is taken by every kind.
    let list = DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)));
    for f in features.iter() {
        assert!(check_column("l", f, &list).is_err());
        assert_eq!(
            check_column("n", f, &DataType::Null).unwrap(),
            ColumnClass::Null
        );
    }
    // The wrong number of columns lists the features.
    let cols = vec![city, x, store.clone(), store];
    let err = BoundColumns::bind_typed(&cols, &names, &features).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the model takes 3 features (city, x, store) but 4 columns were given"
    );
}

#[test]
fn a_string_feature_refuses_numbers_and_untyped_models_refuse_strings() {
    let mut meta = mle_format::Metadata::new(
        "t",
        "t",
        mle_format::Task::Regression,
        vec!["comment".into(), "v".into()],
        mle_format::DType::F64,
        &[],
    );
    meta.input.features = vec![
        mle_format::FeatureSpec::new("comment", mle_format::FeatureKind::String),
        mle_format::FeatureSpec::new("v", mle_format::FeatureKind::Boolean),
    ];
    let features = Features::of(&meta);
    let comment = features.get(0).unwrap();
    assert_eq!(
        check_column("comment", comment, &DataType::Utf8View).unwrap(),
        ColumnClass::Strings
    );
    let dict = DataType::Dictionary(Box::new(DataType::Int16), Box::new(DataType::LargeUtf8));
    assert_eq!(
        check_column("comment", comment, &dict).unwrap(),
        ColumnClass::Strings
    );
    let err = check_column("c", comment, &DataType::Int32).unwrap_err();
    assert_eq!(
        err.to_string(),
        "column \"c\" (feature \"comment\") has type Int32, which is not a string; a string feature takes string columns (Utf8, LargeUtf8, Utf8View, string dictionaries)"
    );
    // A file without typed features: every feature is a float.
    let untyped = Features::floats(&["a".to_string()]);
    assert!(check_column("a", untyped.get(0).unwrap(), &DataType::Utf8).is_err());
    let num_dict = DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Float32));
    assert_eq!(
        check_column("a", untyped.get(0).unwrap(), &num_dict).unwrap(),
        ColumnClass::Numeric
    );
}

#[test]
fn unknown_error_models_name_the_value_and_classifiers_map_labels() {
    let m = model(Typed::Regressor, "error");
    let features = Features::of_model(&m);
    let city: ArrayRef = Arc::new(StringArray::from(CITY.to_vec()));
    let (x, store) = others();
    let cols = vec![city, x, store];
    let bound = BoundColumns::bind_typed(&cols, features.names(), &features).unwrap();
    let batch = bound.batch().unwrap();
    let err = Session::new(m.clone())
        .predict_batch(&batch, RunOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("Atlantis") && err.contains("city"), "{err}");

    let m = model(Typed::Classifier, "missing");
    let kind = OutputKind::of_model(&m).unwrap();
    let city: ArrayRef = Arc::new(StringArray::from(CITY.to_vec()));
    let (x, store) = others();
    let cols = vec![city, x, store];
    let names = Features::of_model(&m).names().to_vec();
    let out = mle_arrow::predict_arrays(
        &mut Session::new(m.clone()),
        &kind,
        &cols,
        &names,
        RunOptions::default(),
    )
    .unwrap();
    let labels = out
        .prediction
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap();
    let proba = out.probabilities.unwrap();
    let proba = proba
        .as_any()
        .downcast_ref::<arrow::array::FixedSizeListArray>()
        .unwrap();
    let pv = proba
        .values()
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap();
    for i in 0..CITY.len() {
        let mgn = Typed::Classifier.margin(CITY[i], X[i], STORE[i].map(|v| v as f64));
        assert_eq!(labels.value(i), Typed::label(mgn), "row {i}");
        let p = Typed::p(mgn);
        assert!((pv.value(2 * i + 1) - p).abs() < 1e-12, "row {i}");
        assert!((pv.value(2 * i) - (1.0 - p)).abs() < 1e-12, "row {i}");
    }
    assert_eq!(CITIES.len(), 4);
}

/// `CITY` with rows before and after it, as each string layout, then sliced back to `CITY`:
/// offsets, views, keys and validity bitmaps are read at the slice's offset (3, not a
/// multiple of 8, so the validity bits do not start at a byte).
fn sliced_city_columns() -> Vec<(&'static str, ArrayRef)> {
    let padded: Vec<Option<&str>> = [None, Some("Oslo"), Some("Zürich")]
        .into_iter()
        .chain(CITY)
        .chain([Some("Paris"), None])
        .collect();
    let n = CITY.len();
    let dict: DictionaryArray<Int32Type> = padded.iter().copied().collect();
    let dict_u8: DictionaryArray<arrow::datatypes::UInt8Type> = padded.iter().copied().collect();
    // A dictionary over large strings.
    let large_values: ArrayRef = Arc::new(LargeStringArray::from(vec![
        "Zürich",
        "Paris",
        "Atlantis",
        "a city with a rather long name",
        "Oslo",
    ]));
    let keys = arrow::array::Int16Array::from(vec![
        Some(4),
        None,
        Some(0),
        Some(0),
        Some(1),
        None,
        Some(2),
        Some(0),
        Some(3),
        Some(4),
    ]);
    let large_dict = DictionaryArray::try_new(keys, large_values).unwrap();
    let full: Vec<(&'static str, ArrayRef)> = vec![
        ("Utf8", Arc::new(StringArray::from(padded.clone()))),
        (
            "LargeUtf8",
            Arc::new(LargeStringArray::from(padded.clone())),
        ),
        ("Utf8View", Arc::new(StringViewArray::from(padded))),
        ("Dictionary(Int32, Utf8)", Arc::new(dict)),
        ("Dictionary(UInt8, Utf8)", Arc::new(dict_u8)),
        ("Dictionary(Int16, LargeUtf8)", Arc::new(large_dict)),
    ];
    full.into_iter()
        .map(|(what, a)| (what, a.slice(3, n)))
        .collect()
}

#[test]
fn sliced_string_dictionary_and_numeric_columns_are_read_at_their_offset() {
    let m = model(Typed::Regressor, "missing");
    let features = Features::of_model(&m);
    // x and store sliced too: x without nulls (borrowed at its offset), store with them.
    let x_full = Float64Array::from(
        [7.0, 7.0, 7.0]
            .into_iter()
            .chain(X.iter().map(|v| v.unwrap_or(0.25)))
            .chain([7.0])
            .collect::<Vec<_>>(),
    );
    let x: ArrayRef = Arc::new(x_full.slice(3, CITY.len()));
    let store_full = Int64Array::from(
        [Some(300), None, Some(300)]
            .into_iter()
            .chain(STORE)
            .chain([Some(300)])
            .collect::<Vec<_>>(),
    );
    let store: ArrayRef = Arc::new(store_full.slice(3, CITY.len()));
    // x's missing row (2) is 0.25 here: below 0.5, the same leaf as missing.
    for (what, city) in sliced_city_columns() {
        let cols = vec![city, x.clone(), store.clone()];
        let bound = BoundColumns::bind_typed(&cols, features.names(), &features).unwrap();
        assert_eq!(bound.borrowed_count(), 2, "{what}");
        let batch = bound.batch().unwrap();
        let ColumnData::F64(xs) = batch.columns()[1].data else {
            panic!("{what}: x is not borrowed as f64")
        };
        assert_eq!(xs.as_ptr(), x_full.values()[3..].as_ptr(), "{what}");
        assert_eq!(run(&m, &bound), expected(Typed::Regressor), "{what}");
    }
}

#[test]
fn all_null_columns_are_missing_for_every_kind() {
    let m = model(Typed::Regressor, "error");
    let features = Features::of_model(&m);
    let n = CITY.len();
    // A dictionary of Null values (an all-missing categorical) and a Null column.
    let null_dict: ArrayRef = Arc::new(
        DictionaryArray::try_new(
            arrow::array::Int8Array::from(vec![None::<i8>; n]),
            Arc::new(arrow::array::NullArray::new(0)) as ArrayRef,
        )
        .unwrap(),
    );
    assert_eq!(
        check_column("city", features.get(0).unwrap(), null_dict.data_type()).unwrap(),
        ColumnClass::Null
    );
    let nulls: ArrayRef = Arc::new(arrow::array::NullArray::new(n));
    let cols = vec![null_dict, nulls.clone(), nulls];
    let bound = BoundColumns::bind_typed(&cols, features.names(), &features).unwrap();
    // Missing is not unknown: the `error` rule does not fire.
    let want = vec![Typed::Regressor.margin(None, None, None); n];
    assert_eq!(run(&m, &bound), want);
}
