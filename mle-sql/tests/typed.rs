//! Typed features in SQL: `mle_predict` / `mle_predict_proba` over Utf8, LargeUtf8, Utf8View and
//! dictionary columns (NULLs, unseen categories, numeric codes), kinds and arity checked at plan
//! time, and the table function `mle_score('model.mle', 'table')` binding by name and streaming
//! a table of several batches and partitions. Expected values come from the test kit's
//! hand-derived oracle ([`mle_testkit::typed`]), never from the executor.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, AsArray, DictionaryArray, Float64Array, Int64Array, LargeStringArray, RecordBatch,
    StringArray, StringViewArray,
};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int16Type, Int64Type, UInt8Type};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use mle_testkit::typed::{Typed, CLASSES};

/// Rows: (id, city, x, store).
const CITY: [Option<&str>; 8] = [
    Some("Zürich"),
    Some("Paris"),
    None,
    Some("Atlantis"),
    Some("Zürich"),
    Some("a city with a rather long name"),
    Some("Oslo"),
    Some("zürich"),
];
const X: [Option<f64>; 8] = [
    Some(0.1),
    Some(0.9),
    None,
    Some(0.5),
    Some(2.0),
    Some(-1.0),
    Some(0.49),
    Some(7.0),
];
const STORE: [Option<i64>; 8] = [
    Some(300),
    Some(0),
    Some(300),
    None,
    Some(7),
    Some(300),
    Some(1000),
    Some(-3),
];

fn expected(t: Typed) -> Vec<f64> {
    (0..CITY.len())
        .map(|i| t.margin(CITY[i], X[i], STORE[i].map(|v| v as f64)))
        .collect()
}

struct Models {
    _dir: tempfile::TempDir,
    reg: PathBuf,
    clf: PathBuf,
    strict: PathBuf,
}

fn models() -> Models {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: Vec<u8>| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    Models {
        reg: write("reg.mle", Typed::Regressor.bytes("missing")),
        clf: write("clf.mle", Typed::Classifier.bytes("missing")),
        strict: write("strict.mle", Typed::Regressor.bytes("error")),
        _dir: dir,
    }
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

fn city_layouts() -> Vec<(&'static str, ArrayRef)> {
    let d32: DictionaryArray<Int16Type> = CITY.iter().copied().collect();
    let d8: DictionaryArray<UInt8Type> = CITY.iter().copied().collect();
    vec![
        ("Utf8", Arc::new(StringArray::from(CITY.to_vec()))),
        ("LargeUtf8", Arc::new(LargeStringArray::from(CITY.to_vec()))),
        ("Utf8View", Arc::new(StringViewArray::from(CITY.to_vec()))),
        ("Dictionary(Int16, Utf8)", Arc::new(d32)),
        ("Dictionary(UInt8, Utf8)", Arc::new(d8)),
    ]
}

/// The table `t(id, city, x, store)` with `city` as given, split into `parts` partitions of
/// batches of at most 3 rows.
fn table(ctx: &SessionContext, name: &str, city: ArrayRef, parts: usize) {
    let id: ArrayRef = Arc::new(Int64Array::from((0..CITY.len() as i64).collect::<Vec<_>>()));
    let x: ArrayRef = Arc::new(Float64Array::from(X.to_vec()));
    let store: ArrayRef = Arc::new(Int64Array::from(STORE.to_vec()));
    let batch =
        RecordBatch::try_from_iter(vec![("id", id), ("store", store), ("city", city), ("x", x)])
            .unwrap();
    let mut partitions = vec![Vec::new(); parts];
    for (k, start) in (0..batch.num_rows()).step_by(3).enumerate() {
        let len = 3.min(batch.num_rows() - start);
        partitions[k % parts].push(batch.slice(start, len));
    }
    let mem = MemTable::try_new(batch.schema(), partitions).unwrap();
    let _ = ctx.deregister_table(name);
    ctx.register_table(name, Arc::new(mem)).unwrap();
}

fn ctx(partitions: usize) -> SessionContext {
    let ctx =
        SessionContext::new_with_config(SessionConfig::new().with_target_partitions(partitions));
    mle_sql::register(&ctx);
    ctx
}

async fn collect(ctx: &SessionContext, q: &str) -> Vec<RecordBatch> {
    ctx.sql(q)
        .await
        .unwrap_or_else(|e| panic!("{q}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{q}: {e}"))
}

async fn sql_err(ctx: &SessionContext, q: &str) -> String {
    match ctx.sql(q).await {
        Err(e) => e.to_string(),
        Ok(df) => match df.collect().await {
            Err(e) => e.to_string(),
            Ok(_) => panic!("query succeeded but should fail: {q}"),
        },
    }
}

/// (id, value) pairs of column `col` as f64, sorted by id.
fn by_id(batches: &[RecordBatch], col: &str) -> Vec<f64> {
    let mut rows: Vec<(i64, f64)> = Vec::new();
    for b in batches {
        let id = b.column_by_name("id").unwrap().as_primitive::<Int64Type>();
        let v = b.column_by_name(col).unwrap().as_primitive::<Float64Type>();
        rows.extend((0..b.num_rows()).map(|i| (id.value(i), v.value(i))));
    }
    rows.sort_by_key(|r| r.0);
    assert_eq!(rows.len(), CITY.len());
    rows.into_iter().map(|r| r.1).collect()
}

#[tokio::test]
async fn mle_predict_takes_every_string_layout_with_nulls_and_unseen_categories() {
    let m = models();
    let ctx = ctx(2);
    for (what, city) in city_layouts() {
        table(&ctx, "t", city, 2);
        let q = format!(
            "SELECT id, mle_predict('{}', city, x, store) AS y FROM t",
            p(&m.reg)
        );
        assert_eq!(
            by_id(&collect(&ctx, &q).await, "y"),
            expected(Typed::Regressor),
            "{what}"
        );
    }
    // Numeric codes for the string category, and a string literal broadcast.
    table(&ctx, "t", Arc::new(StringArray::from(CITY.to_vec())), 1);
    let q = format!(
        "SELECT id, mle_predict('{}', CAST(1 AS INT), x, store) AS y, mle_predict('{}', 'Zürich', x, store) AS z FROM t",
        p(&m.reg),
        p(&m.reg)
    );
    let batches = collect(&ctx, &q).await;
    let want: Vec<f64> = (0..CITY.len())
        .map(|i| Typed::Regressor.margin(Some("Zürich"), X[i], STORE[i].map(|v| v as f64)))
        .collect();
    assert_eq!(by_id(&batches, "y"), want);
    assert_eq!(by_id(&batches, "z"), want);
}

#[tokio::test]
async fn mle_predict_proba_and_labels_of_a_typed_classifier() {
    let m = models();
    let ctx = ctx(2);
    let d: DictionaryArray<Int16Type> = CITY.iter().copied().collect();
    table(&ctx, "t", Arc::new(d), 2);
    let q = format!(
        "SELECT id, mle_predict('{c}', city, x, store) AS label, mle_predict_proba('{c}', city, x, store) AS p FROM t ORDER BY id",
        c = p(&m.clf)
    );
    let batches = collect(&ctx, &q).await;
    let b = datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    let labels = b.column_by_name("label").unwrap().as_string::<i32>();
    let proba = b.column_by_name("p").unwrap().as_fixed_size_list();
    let pv = proba.values().as_primitive::<Float64Type>();
    for i in 0..CITY.len() {
        let mgn = Typed::Classifier.margin(CITY[i], X[i], STORE[i].map(|v| v as f64));
        assert_eq!(labels.value(i), Typed::label(mgn), "row {i}");
        assert!(
            (pv.value(2 * i + 1) - Typed::p(mgn)).abs() < 1e-12,
            "row {i}"
        );
        assert!(
            (pv.value(2 * i) - (1.0 - Typed::p(mgn))).abs() < 1e-12,
            "row {i}"
        );
    }
}

#[tokio::test]
async fn kinds_and_arity_are_checked_at_plan_time_naming_the_argument_and_feature() {
    let m = models();
    let ctx = ctx(1);
    table(&ctx, "t", Arc::new(StringArray::from(CITY.to_vec())), 1);
    let reg = p(&m.reg);
    // A string for the float feature.
    let e = sql_err(
        &ctx,
        &format!("SELECT mle_predict('{reg}', city, city, store) FROM t"),
    )
    .await;
    assert!(
        e.contains("argument 3 (city) for feature \"x\"")
            && e.contains("has type Utf8, which is not numeric; a float feature takes"),
        "{e}"
    );
    // A string for the integer categories.
    let e = sql_err(
        &ctx,
        &format!("SELECT mle_predict('{reg}', city, x, city) FROM t"),
    )
    .await;
    assert!(
        e.contains("argument 4 (city) for feature \"store\"")
            && e.contains("a category (integer categories) feature takes numeric columns"),
        "{e}"
    );
    // A list for the string category.
    let e = sql_err(
        &ctx,
        &format!("SELECT mle_predict('{reg}', CAST('2024-01-01' AS DATE), x, store) FROM t"),
    )
    .await;
    assert!(
        e.contains("for feature \"city\"")
            && e.contains(
                "which is neither a string nor a number; a category feature takes string columns"
            ),
        "{e}"
    );
    let e = sql_err(
        &ctx,
        &format!("SELECT mle_predict('{reg}', city, x) FROM t"),
    )
    .await;
    assert!(
        e.contains("takes 3 feature arguments after the path, but 2 were given")
            && e.contains("its features are: city, x, store"),
        "{e}"
    );
    // Plan-time: nothing ran (an EXPLAIN fails the same way).
    let e = sql_err(
        &ctx,
        &format!("EXPLAIN SELECT mle_predict('{reg}', city, city, store) FROM t"),
    )
    .await;
    assert!(e.contains("for feature \"x\""), "{e}");
    // unknown = error: an unseen category fails the query, naming the value and the feature.
    let e = sql_err(
        &ctx,
        &format!(
            "SELECT mle_predict('{}', city, x, store) FROM t",
            p(&m.strict)
        ),
    )
    .await;
    assert!(e.contains("Atlantis") && e.contains("city"), "{e}");
}

#[tokio::test]
async fn mle_score_returns_the_table_plus_outputs_bound_by_name_streaming_every_partition() {
    let m = models();
    for parts in [1, 3] {
        let ctx = ctx(parts);
        for (what, city) in city_layouts() {
            table(&ctx, "customers", city, parts);
            let q = format!("SELECT * FROM mle_score('{}', 'customers')", p(&m.reg));
            let batches = collect(&ctx, &q).await;
            let names: Vec<String> = batches[0]
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            assert_eq!(names, ["id", "store", "city", "x", "prediction"], "{what}");
            // The input's own types pass through unchanged.
            let city_type = batches[0].schema().field(2).data_type().clone();
            assert!(
                matches!(
                    city_type,
                    DataType::Utf8
                        | DataType::LargeUtf8
                        | DataType::Utf8View
                        | DataType::Dictionary(..)
                ),
                "{what}: {city_type}"
            );
            assert!(batches.len() >= 3, "{what}: streamed batch by batch");
            assert_eq!(
                by_id(&batches, "prediction"),
                expected(Typed::Regressor),
                "{what}, {parts} partitions"
            );
        }
    }
}

#[tokio::test]
async fn mle_score_of_a_classifier_runs_the_model_once_for_labels_and_probabilities() {
    let m = models();
    let ctx = ctx(2);
    table(&ctx, "t", Arc::new(StringViewArray::from(CITY.to_vec())), 2);
    let clf = p(&m.clf);
    let q = format!(
        "SELECT id, prediction, probabilities FROM mle_score('{clf}', 't') WHERE id >= 0 ORDER BY id"
    );
    let batches = collect(&ctx, &q).await;
    let b = datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    assert_eq!(b.num_rows(), CITY.len());
    let labels = b.column_by_name("prediction").unwrap().as_string::<i32>();
    let proba = b
        .column_by_name("probabilities")
        .unwrap()
        .as_fixed_size_list();
    let pv = proba.values().as_primitive::<Float64Type>();
    for i in 0..CITY.len() {
        let mgn = Typed::Classifier.margin(CITY[i], X[i], STORE[i].map(|v| v as f64));
        assert_eq!(labels.value(i), Typed::label(mgn), "row {i}");
        assert!(CLASSES.contains(&labels.value(i)));
        assert!(
            (pv.value(2 * i + 1) - Typed::p(mgn)).abs() < 1e-12,
            "row {i}"
        );
    }
    // One model call in the physical plan for both output columns.
    let plan = collect(&ctx, &format!("EXPLAIN {q}")).await;
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&plan)
        .unwrap()
        .to_string();
    let physical = text
        .split("physical_plan")
        .nth(1)
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(
        physical.matches("mle_score(/").count(),
        1,
        "the model runs once per row:\n{text}"
    );
}

#[tokio::test]
async fn mle_score_plan_errors_name_missing_features_kinds_tables_and_clashes() {
    let m = models();
    let ctx = ctx(1);
    let reg = p(&m.reg);
    let id: ArrayRef = Arc::new(Int64Array::from(vec![1]));
    let x: ArrayRef = Arc::new(Float64Array::from(vec![1.0]));
    let small = RecordBatch::try_from_iter(vec![("id", id.clone()), ("x", x.clone())]).unwrap();
    ctx.register_batch("small", small).unwrap();
    let e = sql_err(&ctx, &format!("SELECT * FROM mle_score('{reg}', 'small')")).await;
    assert!(
        e.contains("mle_score: table \"small\" for model")
            && e.contains("the input has no columns city, store (the input has: id, x)"),
        "{e}"
    );
    let wrong = RecordBatch::try_from_iter(vec![
        (
            "city",
            Arc::new(StringArray::from(vec!["Paris"])) as ArrayRef,
        ),
        ("x", Arc::new(StringArray::from(vec!["1.0"])) as ArrayRef),
        ("store", Arc::new(Int64Array::from(vec![0])) as ArrayRef),
    ])
    .unwrap();
    ctx.register_batch("wrong", wrong).unwrap();
    let e = sql_err(&ctx, &format!("SELECT * FROM mle_score('{reg}', 'wrong')")).await;
    assert!(
        e.contains("column \"x\" (feature \"x\") has type Utf8, which is not numeric"),
        "{e}"
    );
    let clash = RecordBatch::try_from_iter(vec![
        (
            "city",
            Arc::new(StringArray::from(vec!["Paris"])) as ArrayRef,
        ),
        ("x", x),
        ("store", Arc::new(Int64Array::from(vec![0])) as ArrayRef),
        ("prediction", id),
    ])
    .unwrap();
    ctx.register_batch("clash", clash).unwrap();
    let e = sql_err(&ctx, &format!("SELECT * FROM mle_score('{reg}', 'clash')")).await;
    assert!(
        e.contains("already has a column named \"prediction\""),
        "{e}"
    );
    let e = sql_err(&ctx, &format!("SELECT * FROM mle_score('{reg}', 'nope')")).await;
    assert!(e.contains("no table \"nope\" is registered"), "{e}");
    let e = sql_err(
        &ctx,
        "SELECT * FROM mle_score('/no/such/model.mle', 'small')",
    )
    .await;
    assert!(e.contains("/no/such/model.mle"), "{e}");
    let e = sql_err(&ctx, &format!("SELECT * FROM mle_score('{reg}')")).await;
    assert!(e.contains("takes 2 arguments"), "{e}");
    let e = sql_err(&ctx, &format!("SELECT * FROM mle_score('{reg}', 1)")).await;
    assert!(e.contains("table name as a string literal"), "{e}");
    // An aggregate over the result is planned the same way.
    let q = format!("SELECT count(*) AS n FROM mle_score('{reg}', 'wrong') LIMIT 1");
    assert!(sql_err(&ctx, &q).await.contains("not numeric"));
}

#[tokio::test]
async fn literals_broadcast_next_to_columns_and_alone_and_empty_tables_give_no_rows() {
    let m = models();
    let ctx = ctx(2);
    table(&ctx, "t", Arc::new(StringArray::from(CITY.to_vec())), 2);
    let reg = p(&m.reg);
    // A string literal and a NULL next to a column (batches of 3 and 2 rows).
    let q = format!("SELECT id, mle_predict('{reg}', 'Zürich', NULL, store) AS y FROM t");
    let want: Vec<f64> = (0..CITY.len())
        .map(|i| Typed::Regressor.margin(Some("Zürich"), None, STORE[i].map(|v| v as f64)))
        .collect();
    assert_eq!(by_id(&collect(&ctx, &q).await, "y"), want);
    // Only literals: one value per row of the table.
    let q = format!("SELECT id, mle_predict('{reg}', 'Oslo', 0.75, 300) AS y FROM t");
    let m1 = Typed::Regressor.margin(Some("Oslo"), Some(0.75), Some(300.0));
    assert_eq!(by_id(&collect(&ctx, &q).await, "y"), vec![m1; CITY.len()]);
    // A literal next to a column of a table with no rows, and of one row.
    let q = format!("SELECT mle_predict('{reg}', 'Zürich', x, store) AS y FROM t WHERE id < 0");
    let rows: usize = collect(&ctx, &q).await.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 0);
    let q = format!("SELECT mle_predict('{reg}', 'Zürich', x, store) AS y FROM t WHERE id = 4");
    let batches = collect(&ctx, &q).await;
    let got: Vec<f64> = batches
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Float64Type>().values().to_vec())
        .collect();
    assert_eq!(
        got,
        vec![Typed::Regressor.margin(Some("Zürich"), X[4], STORE[4].map(|v| v as f64))]
    );
}

#[tokio::test]
async fn mle_explain_gives_the_hand_derived_contributions_and_mle_predict_leaf_the_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("explained.mle");
    std::fs::write(&path, Typed::Regressor.bytes_with_covers("missing")).unwrap();
    let ctx = ctx(2);
    table(&ctx, "t", Arc::new(StringArray::from(CITY.to_vec())), 2);
    let q = format!(
        "SELECT id, mle_explain('{m}', city, x, store) AS e, mle_predict_leaf('{m}', city, x, store) AS l FROM t ORDER BY id",
        m = p(&path)
    );
    let batches = collect(&ctx, &q).await;
    let b = datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    let e = b.column_by_name("e").unwrap().as_struct();
    let names: Vec<&str> = e.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["city", "x", "store", "bias"]);
    let l = b.column_by_name("l").unwrap().as_fixed_size_list();
    assert_eq!(l.value_length(), 3, "one leaf per tree");
    let leaves = l
        .values()
        .as_primitive::<datafusion::arrow::datatypes::Int32Type>();
    for i in 0..CITY.len() {
        let store = STORE[i].map(|v| v as f64);
        let want = Typed::Regressor.contributions(CITY[i], X[i], store);
        let got: Vec<f64> = (0..4)
            .map(|k| e.column(k).as_primitive::<Float64Type>().value(i))
            .collect();
        // TreeSHAP sums its path weights in its own order: equal to the hand-derived
        // values up to rounding (bit-for-bit equality with Python is in test_explain.py).
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "row {i}: {got:?} vs {want:?}");
        }
        // The contributions add up to the prediction.
        let margin = Typed::Regressor.margin(CITY[i], X[i], store);
        assert!((got.iter().sum::<f64>() - margin).abs() < 1e-12, "row {i}");
        // Each tree is a stump: leaf 1 (left) when the row goes left, else 2.
        let left = [
            CITY[i] == Some("Zürich"),
            !matches!(X[i], Some(v) if v >= 0.5),
            STORE[i] == Some(300),
        ];
        for (k, went_left) in left.iter().enumerate() {
            let leaf = leaves.value(i * 3 + k);
            assert_eq!(leaf, if *went_left { 1 } else { 2 }, "row {i} tree {k}");
        }
    }
}

#[tokio::test]
async fn mle_explain_refuses_at_plan_time_a_model_without_covers_and_bad_arguments() {
    let m = models();
    let dir = tempfile::tempdir().unwrap();
    let explained = dir.path().join("explained.mle");
    std::fs::write(&explained, Typed::Regressor.bytes_with_covers("missing")).unwrap();
    let ctx = ctx(1);
    table(&ctx, "t", Arc::new(StringArray::from(CITY.to_vec())), 1);
    let e = sql_err(
        &ctx,
        &format!("SELECT mle_explain('{}', city, x, store) FROM t", p(&m.reg)),
    )
    .await;
    assert!(e.contains("mle_explain") && e.contains("cover"), "{e}");
    let e = sql_err(
        &ctx,
        &format!("SELECT mle_explain('{}', city, x) FROM t", p(&explained)),
    )
    .await;
    assert!(e.contains("mle_explain") && e.contains('3'), "{e}");
    let e = sql_err(
        &ctx,
        &format!(
            "SELECT mle_predict_leaf('{}', city, x, store) FROM t",
            p(&dir.path().join("absent.mle"))
        ),
    )
    .await;
    assert!(
        e.contains("mle_predict_leaf") && e.contains("absent.mle"),
        "{e}"
    );
}
