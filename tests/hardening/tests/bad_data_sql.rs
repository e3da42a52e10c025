//! Bad data through SQL: zero-row tables, NaN/±Inf/huge values and NULLs, wrong column types,
//! and corrupt, truncated or empty Parquet files. Each gives a correct result or a clear
//! error; none panics.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, Float64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{Field, Float64Type, Schema};
use datafusion::datasource::MemTable;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use mle_format::write_atomic;
use mle_hardening::swap::models;

fn model(dir: &Path) -> String {
    let p = dir.join("m.mle");
    write_atomic(&p, &models()[0]).unwrap(); // y = a + b
    p.display().to_string()
}

fn table(ctx: &SessionContext, cols: Vec<(&str, ArrayRef)>) {
    let schema = Arc::new(Schema::new(
        cols.iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch =
        RecordBatch::try_new(schema.clone(), cols.into_iter().map(|(_, a)| a).collect()).unwrap();
    ctx.register_table(
        "t",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()),
    )
    .unwrap();
}

async fn query(ctx: &SessionContext, q: &str) -> Result<Vec<RecordBatch>, String> {
    async { ctx.sql(q).await?.collect().await }
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn zero_row_table_gives_zero_rows() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let ctx = SessionContext::new();
    mle_sql::register(&ctx);
    let empty: ArrayRef = Arc::new(Float64Array::from(Vec::<f64>::new()));
    table(&ctx, vec![("a", empty.clone()), ("b", empty)]);
    let out = query(&ctx, &format!("SELECT mle_predict('{m}', a, b) FROM t"))
        .await
        .unwrap();
    assert_eq!(out.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
}

#[tokio::test]
async fn nan_inf_huge_and_null_values_follow_ieee_and_missing_semantics() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let ctx = SessionContext::new();
    mle_sql::register(&ctx);
    let a = vec![
        Some(f64::NAN),
        Some(f64::INFINITY),
        Some(f64::INFINITY),
        Some(1e308),
        Some(-0.0),
        None,
        Some(f64::MIN_POSITIVE),
    ];
    let b = vec![
        Some(1.0),
        Some(1.0),
        Some(f64::NEG_INFINITY),
        Some(1e308),
        Some(0.0),
        Some(2.0),
        Some(f64::MIN_POSITIVE),
    ];
    table(
        &ctx,
        vec![
            ("a", Arc::new(Float64Array::from(a.clone())) as ArrayRef),
            ("b", Arc::new(Float64Array::from(b.clone())) as ArrayRef),
        ],
    );
    let out = query(&ctx, &format!("SELECT mle_predict('{m}', a, b) FROM t"))
        .await
        .unwrap();
    let got: Vec<f64> = out
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Float64Type>().values().to_vec())
        .collect();
    assert_eq!(got.len(), a.len());
    for (i, ((x, y), g)) in a.iter().zip(&b).zip(&got).enumerate() {
        // A linear model has no missing-value rule: NULL is NaN, and NaN propagates.
        let want = x.unwrap_or(f64::NAN) + y.unwrap_or(f64::NAN);
        assert!(
            (want.is_nan() && g.is_nan()) || want == *g,
            "row {i}: {x:?} + {y:?} gave {g}, expected {want}"
        );
    }
}

#[tokio::test]
async fn wrong_column_type_is_a_planning_error_naming_the_feature() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let ctx = SessionContext::new();
    mle_sql::register(&ctx);
    table(
        &ctx,
        vec![
            ("a", Arc::new(Float64Array::from(vec![1.0])) as ArrayRef),
            ("b", Arc::new(StringArray::from(vec!["x"])) as ArrayRef),
        ],
    );
    let e = query(&ctx, &format!("SELECT mle_predict('{m}', a, b) FROM t"))
        .await
        .unwrap_err();
    assert!(e.contains("not numeric") && e.contains("\"f1\""), "{e}");
}

fn write_parquet(path: &Path, rows: usize) -> Vec<u8> {
    let a: ArrayRef = Arc::new(Float64Array::from(
        (0..rows).map(|i| i as f64).collect::<Vec<_>>(),
    ));
    let b: ArrayRef = Arc::new(Float64Array::from(vec![1.0; rows]));
    let batch = RecordBatch::try_from_iter(vec![("a", a), ("b", b)]).unwrap();
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    std::fs::write(path, &buf).unwrap();
    buf
}

async fn parquet_query(path: &Path, m: &str) -> Result<Vec<f64>, String> {
    let ctx = SessionContext::new();
    mle_sql::register(&ctx);
    ctx.register_parquet("p", path.to_str().unwrap(), ParquetReadOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let out = query(&ctx, &format!("SELECT mle_predict('{m}', a, b) FROM p")).await?;
    Ok(out
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Float64Type>().values().to_vec())
        .collect())
}

#[tokio::test]
async fn parquet_valid_corrupt_truncated_and_empty() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let good = dir.path().join("good.parquet");
    let bytes = write_parquet(&good, 100);
    let got = parquet_query(&good, &m).await.unwrap();
    assert_eq!(got, (0..100).map(|i| i as f64 + 1.0).collect::<Vec<_>>());

    // Zero rows in a valid file.
    let zero = dir.path().join("zero.parquet");
    write_parquet(&zero, 0);
    assert_eq!(parquet_query(&zero, &m).await.unwrap(), Vec::<f64>::new());

    // Truncated at several points, garbage, and an empty file: errors, not panics.
    for (name, data) in [
        ("half.parquet", bytes[..bytes.len() / 2].to_vec()),
        ("no_footer.parquet", bytes[..bytes.len() - 8].to_vec()),
        ("garbage.parquet", vec![0x5a; 4096]),
        ("empty.parquet", Vec::new()),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, &data).unwrap();
        let r = parquet_query(&p, &m).await;
        assert!(r.is_err(), "{name}: {r:?}");
    }

    // Corrupt column data with an intact footer: an error, or (if the page checksum is absent
    // and the bytes still decode) finite numbers, never a panic.
    let mut corrupt = bytes.clone();
    for x in corrupt.iter_mut().skip(8).take(64) {
        *x ^= 0xff;
    }
    let p = dir.path().join("corrupt.parquet");
    std::fs::write(&p, &corrupt).unwrap();
    let _ = parquet_query(&p, &m).await;
}
