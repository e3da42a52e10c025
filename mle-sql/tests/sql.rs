//! `mle_predict` / `mle_predict_proba` in DataFusion, against the executor (bit for bit) and
//! against the frameworks' own predictions (XGBoost, LightGBM) on real data with NULLs.
//!
//! Models and data: `datasets/` (made by `datasets/make_datasets.py`, which also stores each
//! framework's predictions in `datasets/models/<name>.expected.parquet`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Float32Type, Float64Type, Int64Type, Schema};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use mle_arrow::{columns_by_name, OutputArrays, OutputKind};
use mle_exec::{Model, RunOptions, Session};
use mle_format::{
    Attr, DType, Metadata, ModelBuilder, Node, ReadOptions, Task, ValueInfo, WriteOptions,
};

fn repo() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn dataset(name: &str) -> PathBuf {
    repo().join("datasets").join(format!("{name}.parquet"))
}

fn model_path(name: &str) -> PathBuf {
    repo().join("datasets/models").join(format!("{name}.mle"))
}

fn read_parquet(path: &Path) -> RecordBatch {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let r = ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = r.map(|b| b.unwrap()).collect();
    datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

/// The executor's outputs on a whole Parquet file (columns bound by feature name).
fn executor(model: &Path, data: &Path) -> OutputArrays {
    let model = Arc::new(Model::load(model, &ReadOptions::default()).unwrap());
    let kind = OutputKind::of_model(&model).unwrap();
    let batch = read_parquet(data);
    let features = model.metadata().input.feature_names.clone();
    let idx = columns_by_name(&batch.schema(), &features).unwrap();
    let cols: Vec<ArrayRef> = idx.iter().map(|&i| batch.column(i).clone()).collect();
    let mut s = Session::new(model.clone());
    mle_arrow::predict_arrays(&mut s, &kind, &cols, &features, RunOptions::default()).unwrap()
}

fn ctx(partitions: usize) -> SessionContext {
    let ctx =
        SessionContext::new_with_config(SessionConfig::new().with_target_partitions(partitions));
    mle_sql::register(&ctx);
    ctx
}

async fn sql(ctx: &SessionContext, q: &str) -> datafusion::common::Result<ArrayRef> {
    let batches = ctx.sql(q).await?.collect().await?;
    let cols: Vec<ArrayRef> = batches.iter().map(|b| b.column(0).clone()).collect();
    let refs: Vec<&dyn Array> = cols.iter().map(|c| c.as_ref()).collect();
    Ok(datafusion::arrow::compute::concat(&refs)?)
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

/// `mle_predict('<model>', f1, f2, ...)` over the model's features.
fn call(func: &str, model: &Path, features: &[String]) -> String {
    format!(
        "{func}('{}', {})",
        model.display(),
        features
            .iter()
            .map(|f| format!("\"{f}\""))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn features_of(model: &Path) -> Vec<String> {
    Model::load(model, &ReadOptions::default())
        .unwrap()
        .metadata()
        .input
        .feature_names
        .clone()
}

async fn register(ctx: &SessionContext, table: &str, data: &Path) {
    ctx.register_parquet(table, data.to_str().unwrap(), ParquetReadOptions::default())
        .await
        .unwrap();
}

fn assert_has_nulls(data: &Path, features: &[String]) {
    let b = read_parquet(data);
    let nulls: usize = features
        .iter()
        .map(|f| b.column_by_name(f).unwrap().null_count())
        .sum();
    assert!(nulls > 0, "{} should hold missing values", data.display());
}

fn assert_close(got: f64, want: f64, what: &str) {
    let tol = 1e-5 * want.abs().max(1.0);
    assert!(
        (got - want).abs() <= tol,
        "{what}: got {got}, framework {want} (tolerance {tol})"
    );
}

fn f64_values(a: &ArrayRef) -> Vec<f64> {
    match a.data_type() {
        DataType::Float64 => a.as_primitive::<Float64Type>().values().to_vec(),
        DataType::Float32 => a
            .as_primitive::<Float32Type>()
            .values()
            .iter()
            .map(|&v| v as f64)
            .collect(),
        DataType::Int64 => a
            .as_primitive::<Int64Type>()
            .values()
            .iter()
            .map(|&v| v as f64)
            .collect(),
        t => panic!("unexpected type {t}"),
    }
}

#[tokio::test]
async fn regressor_sql_equals_executor_bitwise_and_lightgbm_within_fp32_bound() {
    let (model, data) = (model_path("diabetes"), dataset("diabetes"));
    let features = features_of(&model);
    assert_has_nulls(&data, &features);
    let ctx = ctx(1);
    register(&ctx, "t", &data).await;
    let got = sql(
        &ctx,
        &format!("SELECT {} FROM t", call("mle_predict", &model, &features)),
    )
    .await
    .unwrap();
    let exec = executor(&model, &data);
    assert_eq!(got.data_type(), exec.prediction.data_type());
    assert_eq!(&got, &exec.prediction, "SQL and executor differ");
    let expected = read_parquet(&repo().join("datasets/models/diabetes.expected.parquet"));
    let want = f64_values(expected.column_by_name("prediction").unwrap());
    let got = f64_values(&got);
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_close(*g, *w, &format!("row {i}"));
    }
}

async fn check_classifier(name: &str) {
    let (model, data) = (model_path(name), dataset(name));
    let features = features_of(&model);
    assert_has_nulls(&data, &features);
    let ctx = ctx(1);
    register(&ctx, "t", &data).await;
    let labels = sql(
        &ctx,
        &format!("SELECT {} FROM t", call("mle_predict", &model, &features)),
    )
    .await
    .unwrap();
    let proba = sql(
        &ctx,
        &format!(
            "SELECT {} FROM t",
            call("mle_predict_proba", &model, &features)
        ),
    )
    .await
    .unwrap();
    let exec = executor(&model, &data);
    assert_eq!(
        &labels, &exec.prediction,
        "{name}: labels differ from the executor"
    );
    assert_eq!(
        &proba,
        exec.probabilities.as_ref().unwrap(),
        "{name}: probabilities differ from the executor"
    );
    let expected = read_parquet(&repo().join(format!("datasets/models/{name}.expected.parquet")));
    assert_eq!(
        f64_values(&labels),
        f64_values(expected.column_by_name("prediction").unwrap()),
        "{name}: class decisions differ from the framework"
    );
    let list = proba.as_fixed_size_list();
    let n_classes = list.value_length() as usize;
    for k in 0..n_classes {
        let want = f64_values(expected.column_by_name(&format!("proba_{k}")).unwrap());
        for (i, w) in want.iter().enumerate() {
            let row = list.value(i);
            let g = f64_values(&row)[k];
            assert_close(g, *w, &format!("{name}: row {i} class {k}"));
        }
    }
}

#[tokio::test]
async fn binary_classifier_xgboost_matches_executor_and_framework() {
    check_classifier("breast_cancer").await;
}

#[tokio::test]
async fn multiclass_classifier_lightgbm_matches_executor_and_framework() {
    check_classifier("iris").await;
}

#[tokio::test]
async fn multiclass_classifier_xgboost_matches_executor_and_framework() {
    check_classifier("wine").await;
}

#[tokio::test]
async fn partitions_in_parallel_give_the_same_predictions() {
    let (model, data) = (model_path("breast_cancer"), dataset("breast_cancer"));
    let features = features_of(&model);
    let ctx = ctx(4);
    // Four copies of the file: DataFusion scans them in parallel partitions.
    let dir = tempfile::tempdir().unwrap();
    for i in 0..4 {
        std::fs::copy(&data, dir.path().join(format!("part{i}.parquet"))).unwrap();
    }
    register(&ctx, "t", dir.path()).await;
    let got = sql(
        &ctx,
        &format!(
            "SELECT {} FROM t",
            call("mle_predict_proba", &model, &features)
        ),
    )
    .await
    .unwrap();
    let exec = executor(&model, &data);
    let key = |a: &ArrayRef| {
        let l = a.as_fixed_size_list();
        let mut v: Vec<Vec<u64>> = (0..l.len())
            .map(|i| {
                f64_values(&l.value(i))
                    .iter()
                    .map(|x| x.to_bits())
                    .collect()
            })
            .collect();
        v.sort();
        v
    };
    let mut want = key(exec.probabilities.as_ref().unwrap());
    want = want
        .into_iter()
        .flat_map(|r| std::iter::repeat_n(r, 4))
        .collect();
    assert_eq!(key(&got), want);
}

/// `prediction = 0.5·a − 2·b + c0` over features `a`, `b` (exactly representable weights).
fn linear_model(intercept: f32) -> Vec<u8> {
    let meta = Metadata::new(
        "test",
        "LinearRegression",
        Task::Regression,
        vec!["a".into(), "b".into()],
        DType::F64,
        &[("prediction", DType::F64)],
    );
    let mut b = ModelBuilder::new(meta);
    b.add_weight("coef", &[1, 2], &[0.5, -2.0]).unwrap();
    b.add_weight("intercept", &[1], &[intercept]).unwrap();
    b.push_node(
        Node::new("linear", "LinearModel", &["X"], &["prediction"])
            .with("coef", Attr::Tensor("coef".into()))
            .with("intercept", Attr::Tensor("intercept".into())),
    );
    b.set_inputs(vec![ValueInfo {
        name: "X".into(),
        dtype: DType::F64,
        shape: vec![-1, 2],
    }]);
    b.set_outputs(vec![ValueInfo {
        name: "prediction".into(),
        dtype: DType::F64,
        shape: vec![-1, 1],
    }]);
    b.to_bytes(&WriteOptions::default()).unwrap()
}

fn small_table(ctx: &SessionContext) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("a", DataType::Float64, true),
        Field::new("b", DataType::Int32, true),
        Field::new("name", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Float64Array::from(vec![Some(2.0), Some(4.0), None])),
            Arc::new(datafusion::arrow::array::Int32Array::from(vec![
                Some(1),
                None,
                Some(3),
            ])),
            Arc::new(StringArray::from(vec!["x", "y", "z"])),
        ],
    )
    .unwrap();
    ctx.register_batch("t", batch).unwrap();
}

#[tokio::test]
async fn replaced_model_file_is_picked_up_by_the_next_query() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("linear.mle");
    std::fs::write(&path, linear_model(3.0)).unwrap();
    let ctx = ctx(1);
    small_table(&ctx);
    let q = format!("SELECT mle_predict('{}', a, b) FROM t", path.display());
    let first = f64_values(&sql(&ctx, &q).await.unwrap());
    assert_eq!(first[0], 0.5 * 2.0 - 2.0 * 1.0 + 3.0);
    mle_format::write_atomic(&path, &linear_model(10.0)).unwrap();
    let second = f64_values(&sql(&ctx, &q).await.unwrap());
    assert_eq!(second[0], 0.5 * 2.0 - 2.0 * 1.0 + 10.0);
}

#[tokio::test]
async fn nulls_and_integer_columns_are_missing_values_and_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("linear.mle");
    std::fs::write(&path, linear_model(3.0)).unwrap();
    let ctx = ctx(1);
    small_table(&ctx);
    let got = f64_values(
        &sql(
            &ctx,
            &format!("SELECT mle_predict('{}', a, b) FROM t", path.display()),
        )
        .await
        .unwrap(),
    );
    assert_eq!(got[0], 2.0);
    // A NULL is NaN to the model: a linear model propagates it.
    assert!(got[1].is_nan() && got[2].is_nan(), "{got:?}");
    let lit = f64_values(
        &sql(
            &ctx,
            &format!(
                "SELECT mle_predict('{}', 1.5, CAST(2 AS TINYINT))",
                path.display()
            ),
        )
        .await
        .unwrap(),
    );
    assert_eq!(lit, vec![0.75 - 4.0 + 3.0]);
}

#[tokio::test]
async fn planning_errors_name_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("linear.mle");
    std::fs::write(&path, linear_model(3.0)).unwrap();
    let corrupt = dir.path().join("corrupt.mle");
    let mut bytes = linear_model(3.0);
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&corrupt, bytes).unwrap();
    let garbage = dir.path().join("garbage.mle");
    std::fs::write(&garbage, b"this is not a model").unwrap();
    let p = path.display();
    let ctx = ctx(1);
    small_table(&ctx);

    let e = sql_err(&ctx, &format!("SELECT mle_predict('{p}', a) FROM t")).await;
    assert!(
        e.contains("takes 2 feature arguments after the path, but 1 was given")
            && e.contains("its features are: a, b"),
        "{e}"
    );
    let e = sql_err(&ctx, &format!("SELECT mle_predict('{p}', a, b, a) FROM t")).await;
    assert!(e.contains("but 3 were given"), "{e}");

    let e = sql_err(&ctx, &format!("SELECT mle_predict('{p}', a, name) FROM t")).await;
    assert!(
        e.contains("argument 3 (name) for feature \"b\"")
            && e.contains("has type Utf8, which is not numeric"),
        "{e}"
    );

    let e = sql_err(&ctx, "SELECT mle_predict(name, a, b) FROM t").await;
    assert!(
        e.contains("the first argument must be the model path as a string literal"),
        "{e}"
    );
    let e = sql_err(&ctx, "SELECT mle_predict(42, a, b) FROM t").await;
    assert!(
        e.contains("the first argument must be the model path as a string literal, found Int64 42"),
        "{e}"
    );
    let e = sql_err(&ctx, "SELECT mle_predict() FROM t").await;
    assert!(e.contains("missing the model path"), "{e}");

    let missing = dir.path().join("nope.mle");
    let e = sql_err(
        &ctx,
        &format!("SELECT mle_predict('{}', a, b) FROM t", missing.display()),
    )
    .await;
    assert!(
        e.contains("cannot open model file")
            && e.contains("nope.mle")
            && e.contains("No such file"),
        "{e}"
    );
    let e = sql_err(
        &ctx,
        &format!("SELECT mle_predict('{}', a, b) FROM t", corrupt.display()),
    )
    .await;
    assert!(
        e.contains("cannot load model") && e.contains("corrupt.mle"),
        "{e}"
    );
    assert!(
        e.contains("checksum mismatch") || e.contains("corrupted"),
        "{e}"
    );
    let e = sql_err(
        &ctx,
        &format!("SELECT mle_predict('{}', a, b) FROM t", garbage.display()),
    )
    .await;
    assert!(
        e.contains("garbage.mle") && (e.contains("truncated") || e.contains("magic")),
        "{e}"
    );

    let e = sql_err(
        &ctx,
        &format!("SELECT mle_predict_proba('{p}', a, b) FROM t"),
    )
    .await;
    assert!(e.contains("is not a classifier"), "{e}");
}

#[tokio::test]
async fn trust_policy_refuses_unsigned_models() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("linear.mle");
    std::fs::write(&path, linear_model(3.0)).unwrap();
    let key = mle_format::generate_key().unwrap();
    let ctx = SessionContext::new();
    mle_sql::register_trusted(&ctx, Some(key.verifying_key()));
    small_table(&ctx);
    let q = format!("SELECT mle_predict('{}', a, b) FROM t", path.display());
    let e = sql_err(&ctx, &q).await;
    assert!(e.contains("not signed"), "{e}");
    let signed = mle_format::sign_bytes(&linear_model(3.0), &key, "linear.mle").unwrap();
    mle_format::write_atomic(&path, &signed).unwrap();
    let got = f64_values(&sql(&ctx, &q).await.unwrap());
    assert_eq!(got[0], 2.0);
}
