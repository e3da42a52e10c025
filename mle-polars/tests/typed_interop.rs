//! Polars string columns (String, Categorical, Enum) cross to arrow-rs as string views and
//! dictionaries, are checked against the model's feature kinds and score as the strings say
//! (the test kit's hand-derived values, [`mle_testkit::typed`]).

use std::sync::Arc;

use arrow::array::Array;
use arrow::datatypes::DataType as ArrowType;
use mle_arrow::{BoundColumns, Features};
use mle_exec::{Model, OutputData, RunOptions, Session};
use mle_polars::check_fields;
use mle_polars::interop::series_to_arrow_rs;
use mle_testkit::typed::{Typed, CITIES};
use polars::prelude::*;

const CITY: [Option<&str>; 5] = [
    Some("Zürich"),
    None,
    Some("Atlantis"),
    Some("Paris"),
    Some("Zürich"),
];
const X: [Option<f64>; 5] = [Some(0.1), Some(0.9), None, Some(0.5), Some(3.0)];
const STORE: [Option<i64>; 5] = [Some(300), Some(0), None, Some(300), Some(2)];

fn cities(dtype: &str) -> Series {
    let s = Series::new("city".into(), &CITY);
    match dtype {
        "string" => s,
        "categorical" => s
            .cast(&DataType::from_categories(Categories::global()))
            .unwrap(),
        _ => {
            let mut cats: Vec<&str> = CITIES.to_vec();
            cats.push("Atlantis");
            let cats = FrozenCategories::new(cats).unwrap();
            s.cast(&DataType::from_frozen_categories(cats)).unwrap()
        }
    }
}

#[test]
fn string_categorical_and_enum_columns_bind_and_score_as_the_strings_say() {
    let model = Arc::new(Model::from_bytes(&Typed::Regressor.bytes("missing"), "t.mle").unwrap());
    let features = Features::of_model(&model);
    let x = Series::new("x".into(), &X);
    let store = Series::new("store".into(), &STORE);
    for dtype in ["string", "categorical", "enum"] {
        let city = cities(dtype);
        let fields: Vec<(String, DataType)> = [&city, &x, &store]
            .iter()
            .map(|s| (s.name().to_string(), s.dtype().clone()))
            .collect();
        check_fields("t.mle", &features, &fields).unwrap();
        let cols: Vec<_> = [&city, &x, &store]
            .iter()
            .map(|s| series_to_arrow_rs(s).unwrap())
            .collect();
        assert!(
            matches!(
                cols[0].data_type(),
                ArrowType::Utf8View | ArrowType::Dictionary(..)
            ),
            "{dtype}: {}",
            cols[0].data_type()
        );
        let bound = BoundColumns::bind_typed(&cols, features.names(), &features).unwrap();
        let batch = bound.batch().unwrap();
        let mut s = Session::new(model.clone());
        let out = s.predict_batch(&batch, RunOptions::default()).unwrap();
        let OutputData::F64(got) = &out.get("prediction").unwrap().data else {
            panic!("f64 output")
        };
        let want: Vec<f64> = (0..CITY.len())
            .map(|i| Typed::Regressor.margin(CITY[i], X[i], STORE[i].map(|v| v as f64)))
            .collect();
        assert_eq!(got, &want, "{dtype}");
    }
    // A string column for the float feature, and a number for nothing but codes: refused.
    let bad = vec![
        ("city".to_string(), DataType::String),
        ("x".to_string(), DataType::String),
        ("store".to_string(), DataType::Int64),
    ];
    let e = check_fields("t.mle", &features, &bad)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("input column 1 (\"x\")") && e.contains("only integer"),
        "{e}"
    );
    let bad = vec![
        (
            "city".to_string(),
            DataType::List(Box::new(DataType::String)),
        ),
        ("x".to_string(), DataType::Float64),
        ("store".to_string(), DataType::String),
    ];
    let e = check_fields("t.mle", &features, &bad)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("feature \"city\" is a category feature")
            && e.contains("neither a string nor a number"),
        "{e}"
    );
}
