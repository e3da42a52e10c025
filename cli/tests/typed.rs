//! Typed features through the CLI: `mle score` binding by name (string, large string, string
//! view and dictionary Parquet columns, NULLs, unseen categories; `--columns` by position),
//! `mle inspect` showing each feature's kind and categories, and `mle sql` with the table
//! function `mle_score`. Expected values come from the test kit's hand-derived oracle
//! ([`mle_testkit::typed`]), not from the executor.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{fails, mle, ok, p};
use datafusion::arrow::array::{
    ArrayRef, AsArray, DictionaryArray, Float64Array, Int64Array, LargeStringArray, RecordBatch,
    StringArray, StringViewArray,
};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int32Type, Int64Type};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::ArrowWriter;
use mle_testkit::typed::{Typed, CITIES, STORES};

const CITY: [Option<&str>; 7] = [
    Some("Zürich"),
    Some("Paris"),
    None,
    Some("Atlantis"),
    Some("Zürich"),
    Some("a city with a rather long name"),
    Some("Oslo"),
];
const X: [Option<f64>; 7] = [
    Some(0.1),
    Some(0.9),
    None,
    Some(0.5),
    Some(2.0),
    Some(-1.0),
    Some(0.25),
];
const STORE: [Option<i64>; 7] = [
    Some(300),
    Some(0),
    Some(300),
    None,
    Some(7),
    Some(300),
    Some(1000),
];

fn expected(t: Typed) -> Vec<f64> {
    (0..CITY.len())
        .map(|i| t.margin(CITY[i], X[i], STORE[i].map(|v| v as f64)))
        .collect()
}

fn write_model(dir: &Path, name: &str, t: Typed) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, t.bytes("missing")).unwrap();
    path
}

/// A Parquet file `(id, <city name>, x, store, note)`, two rows per row group.
fn write_input(path: &Path, city_name: &str, city: ArrayRef) {
    let batch = RecordBatch::try_from_iter(vec![
        (
            "id",
            Arc::new(Int64Array::from((0..CITY.len() as i64).collect::<Vec<_>>())) as ArrayRef,
        ),
        (city_name, city),
        ("x", Arc::new(Float64Array::from(X.to_vec())) as ArrayRef),
        (
            "store",
            Arc::new(Int64Array::from(STORE.to_vec())) as ArrayRef,
        ),
        (
            "note",
            Arc::new(StringArray::from(vec!["kept"; CITY.len()])) as ArrayRef,
        ),
    ])
    .unwrap();
    let f = std::fs::File::create(path).unwrap();
    let mut w = ArrowWriter::try_new(f, batch.schema(), None).unwrap();
    for start in (0..batch.num_rows()).step_by(2) {
        w.write(&batch.slice(start, 2.min(batch.num_rows() - start)))
            .unwrap();
        w.flush().unwrap();
    }
    w.close().unwrap();
}

fn read(path: &Path) -> RecordBatch {
    let r = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = r.map(|b| b.unwrap()).collect();
    datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

fn layouts() -> Vec<(&'static str, ArrayRef)> {
    let dict: DictionaryArray<Int32Type> = CITY.iter().copied().collect();
    vec![
        ("Utf8", Arc::new(StringArray::from(CITY.to_vec()))),
        ("LargeUtf8", Arc::new(LargeStringArray::from(CITY.to_vec()))),
        ("Utf8View", Arc::new(StringViewArray::from(CITY.to_vec()))),
        ("Dictionary", Arc::new(dict)),
    ]
}

#[test]
fn score_binds_string_and_dictionary_columns_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let reg = write_model(dir.path(), "reg.mle", Typed::Regressor);
    for (what, city) in layouts() {
        let input = dir.path().join(format!("in-{what}.parquet"));
        let out = dir.path().join(format!("out-{what}.parquet"));
        write_input(&input, "city", city);
        ok(&mle(&["score", "-m", p(&reg), p(&input), "-o", p(&out)]));
        let b = read(&out);
        let names: Vec<&str> = b
            .schema_ref()
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(
            names,
            ["id", "city", "x", "store", "note", "prediction"],
            "{what}"
        );
        let pred: Vec<f64> = b
            .column_by_name("prediction")
            .unwrap()
            .as_primitive::<Float64Type>()
            .values()
            .to_vec();
        assert_eq!(pred, expected(Typed::Regressor), "{what}");
    }
}

#[test]
fn score_with_columns_binds_by_position_and_classifiers_give_labels() {
    let dir = tempfile::tempdir().unwrap();
    let clf = write_model(dir.path(), "clf.mle", Typed::Classifier);
    let input = dir.path().join("in.parquet");
    let out = dir.path().join("out.parquet");
    let dict: DictionaryArray<Int32Type> = CITY.iter().copied().collect();
    write_input(&input, "town", Arc::new(dict));
    // By name, `town` is not `city`: every missing feature named.
    fails(
        &mle(&["score", "-m", p(&clf), p(&input), "-o", p(&out)]),
        &["does not have the model's feature columns", "city"],
    );
    ok(&mle(&[
        "score",
        "-m",
        p(&clf),
        p(&input),
        "-o",
        p(&out),
        "--columns",
        "town,x,store",
    ]));
    let b = read(&out);
    let labels = b.column_by_name("prediction").unwrap().as_string::<i32>();
    let proba = b
        .column_by_name("probabilities")
        .unwrap()
        .as_fixed_size_list();
    let pv = proba.values().as_primitive::<Float64Type>();
    for i in 0..CITY.len() {
        let m = Typed::Classifier.margin(CITY[i], X[i], STORE[i].map(|v| v as f64));
        assert_eq!(labels.value(i), Typed::label(m), "row {i}");
        assert!((pv.value(2 * i + 1) - Typed::p(m)).abs() < 1e-12, "row {i}");
    }
    // A string column for the float feature, by position: named before anything is written.
    fails(
        &mle(&[
            "score",
            "-m",
            p(&clf),
            p(&input),
            "-o",
            p(&out),
            "--columns",
            "town,note,store",
        ]),
        &[
            "cannot bind the columns of",
            "column \"note\" (feature \"x\") has type Utf8, which is not numeric; a float feature takes",
        ],
    );
}

#[test]
fn inspect_shows_each_features_kind_and_categories() {
    let dir = tempfile::tempdir().unwrap();
    let reg = write_model(dir.path(), "reg.mle", Typed::Regressor);
    let text = ok(&mle(&["inspect", p(&reg)]));
    assert!(
        text.contains(&format!(
            "city   category, {} string categories",
            CITIES.len()
        )),
        "{text}"
    );
    assert!(text.contains("x      float"), "{text}");
    assert!(
        text.contains(&format!(
            "store  category, {} integer categories",
            STORES.len()
        )),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&mle(&["inspect", "--json", p(&reg)]))).unwrap();
    assert_eq!(
        json["features"],
        serde_json::json!([
            {"name": "city", "kind": "category", "categories": CITIES.len(), "category_type": "string"},
            {"name": "x", "kind": "float"},
            {"name": "store", "kind": "category", "categories": STORES.len(), "category_type": "integer"},
        ])
    );
    // A model without typed features: every feature a float.
    let json: serde_json::Value = serde_json::from_str(&ok(&mle(&[
        "inspect",
        "--json",
        "datasets/models/iris.mle",
    ])))
    .unwrap();
    let features = json["features"].as_array().unwrap();
    assert_eq!(features.len(), 4);
    assert!(features.iter().all(|f| f["kind"] == "float"));
    let text = ok(&mle(&["inspect", "datasets/models/iris.mle"]));
    assert!(text.contains("4 features (all float)"), "{text}");
}

#[test]
fn sql_table_function_scores_a_parquet_table_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let reg = write_model(dir.path(), "reg.mle", Typed::Regressor);
    let input = dir.path().join("in.parquet");
    let dict: DictionaryArray<Int32Type> = CITY.iter().copied().collect();
    write_input(&input, "city", Arc::new(dict));
    let out = dir.path().join("out.parquet");
    let q = format!(
        "SELECT id, note, prediction FROM mle_score('{}', 'customers') ORDER BY id",
        p(&reg)
    );
    ok(&mle(&[
        "sql",
        &q,
        "--table",
        &format!("customers={}", p(&input)),
        "-o",
        p(&out),
    ]));
    let b = read(&out);
    assert_eq!(b.num_columns(), 3);
    let pred = b
        .column_by_name("prediction")
        .unwrap()
        .as_primitive::<Float64Type>()
        .values()
        .to_vec();
    assert_eq!(pred, expected(Typed::Regressor));
    let ids = b.column_by_name("id").unwrap().as_primitive::<Int64Type>();
    assert_eq!(
        ids.values().to_vec(),
        (0..CITY.len() as i64).collect::<Vec<_>>()
    );
    // The same through the scalar UDF over the dictionary column.
    let q = format!(
        "SELECT mle_predict('{}', city, x, store) AS y FROM customers ORDER BY id",
        p(&reg)
    );
    ok(&mle(&[
        "sql",
        &q,
        "--table",
        &format!("customers={}", p(&input)),
        "-o",
        p(&out),
    ]));
    let b = read(&out);
    assert_eq!(b.column(0).data_type(), &DataType::Float64);
    let y = b.column(0).as_primitive::<Float64Type>().values().to_vec();
    assert_eq!(y, expected(Typed::Regressor));
    // A missing feature is a plan-time error naming it.
    let q = format!("SELECT * FROM mle_score('{}', 'other')", p(&reg));
    let other = dir.path().join("other.parquet");
    write_input(&other, "town", Arc::new(StringArray::from(CITY.to_vec())));
    fails(
        &mle(&["sql", &q, "--table", &format!("other={}", p(&other))]),
        &["mle_score", "the input has no column city"],
    );
}

#[test]
fn bench_times_category_codes_and_names_a_string_column_it_cannot_time() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path(), "reg.mle", Typed::Regressor);
    // Codes for the string category (bound as codes), by name.
    let codes = dir.path().join("codes.parquet");
    let code: Vec<Option<i64>> = CITY
        .iter()
        .map(|c| c.and_then(|c| CITIES.iter().position(|k| *k == c).map(|i| i as i64)))
        .collect();
    write_input(&codes, "city", Arc::new(Int64Array::from(code)));
    let out = ok(&mle(&[
        "bench",
        "-m",
        p(&model),
        "--input",
        p(&codes),
        "--iterations",
        "20",
    ]));
    assert!(
        out.contains("3 features") && out.contains("rows/s"),
        "{out}"
    );
    // Strings cannot be timed as numeric rows: the column, its feature and kind are named.
    let strings = dir.path().join("strings.parquet");
    write_input(&strings, "city", Arc::new(StringArray::from(CITY.to_vec())));
    fails(
        &mle(&["bench", "-m", p(&model), "--input", p(&strings)]),
        &[
            "column \"city\"",
            "category feature \"city\"",
            "Utf8",
            "mle score",
        ],
    );
}
