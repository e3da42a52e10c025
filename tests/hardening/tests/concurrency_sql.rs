//! 32 threads score while the model file is replaced 100 times by atomic rename: half through
//! SQL (`mle_predict` in DataFusion, the process-wide model cache), half through the Rust API
//! (`Model::load` per batch). The two models differ by an offset of 1000, so every result
//! batch tells which model produced it: each must be wholly one of the two, and no error may
//! occur (replacement by rename has no error window: the path always names a complete file).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Float64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use mle_exec::{Batch, ColumnData, Model, OutputData, RunOptions, Session};
use mle_format::{write_atomic, ReadOptions};
use mle_hardening::swap::{model_of, models, replace_loop};

const ROWS_PER_BATCH: usize = 256;
const BATCHES: usize = 4;

fn columns(batch: usize) -> (Vec<f64>, Vec<f64>) {
    let r = batch * ROWS_PER_BATCH..(batch + 1) * ROWS_PER_BATCH;
    (
        r.clone().map(|i| i as f64 * 0.25).collect(),
        r.map(|i| (i % 11) as f64 - 5.0).collect(),
    )
}

/// A session with `t(a, b)`: 4 batches of 256 rows in 2 partitions.
fn context() -> SessionContext {
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(2));
    mle_sql::register(&ctx);
    let schema = Arc::new(Schema::new(vec![
        Field::new("a", DataType::Float64, false),
        Field::new("b", DataType::Float64, false),
    ]));
    let batches: Vec<RecordBatch> = (0..BATCHES)
        .map(|k| {
            let (a, b) = columns(k);
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Float64Array::from(a)),
                    Arc::new(Float64Array::from(b)),
                ],
            )
            .unwrap()
        })
        .collect();
    let parts = vec![batches[..2].to_vec(), batches[2..].to_vec()];
    ctx.register_table("t", Arc::new(MemTable::try_new(schema, parts).unwrap()))
        .unwrap();
    ctx
}

/// Runs one query; returns the model (0/1) of each result batch, checking each is whole.
async fn sql_query(ctx: &SessionContext, q: &str) -> Result<Vec<u32>, String> {
    let batches = ctx
        .sql(q)
        .await
        .map_err(|e| e.to_string())?
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    let mut rows = 0;
    let mut out = Vec::new();
    for b in &batches {
        if b.num_rows() == 0 {
            continue;
        }
        let col = |i: usize| b.column(i).as_primitive::<Float64Type>().values().to_vec();
        let y = b.column(2).as_primitive::<Float64Type>();
        assert_eq!(y.null_count(), 0);
        out.push(model_of(&col(0), &col(1), y.values())?);
        rows += b.num_rows();
    }
    assert_eq!(rows, ROWS_PER_BATCH * BATCHES);
    Ok(out)
}

#[test]
fn sql_and_rust_api_32_threads_while_the_file_is_replaced_100_times() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.mle");
    write_atomic(&path, &models()[0]).unwrap();
    let q = format!(
        "SELECT a, b, mle_predict('{}', a, b) AS y FROM t",
        path.display()
    );
    let done = AtomicBool::new(false);
    let swaps = AtomicUsize::new(0);
    let seen = [AtomicUsize::new(0), AtomicUsize::new(0)];
    let (queries, mixed_queries) = (AtomicUsize::new(0), AtomicUsize::new(0));
    std::thread::scope(|s| {
        for t in 0..32 {
            let (path, q, done, seen) = (&path, &q, &done, &seen);
            let (queries, mixed_queries) = (&queries, &mixed_queries);
            s.spawn(move || {
                let mut n = 0;
                if t % 2 == 0 {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap();
                    let ctx = context();
                    while !done.load(Ordering::SeqCst) || n < 3 {
                        let per_batch = rt
                            .block_on(sql_query(&ctx, q))
                            .unwrap_or_else(|e| panic!("SQL thread {t}: {e}"));
                        for &k in &per_batch {
                            seen[k as usize].fetch_add(1, Ordering::SeqCst);
                        }
                        queries.fetch_add(1, Ordering::SeqCst);
                        if per_batch.iter().any(|&k| k != per_batch[0]) {
                            mixed_queries.fetch_add(1, Ordering::SeqCst);
                        }
                        n += 1;
                    }
                } else {
                    let (a, b) = columns(0);
                    while !done.load(Ordering::SeqCst) || n < 3 {
                        let model = Model::load(path, &ReadOptions::default())
                            .unwrap_or_else(|e| panic!("Rust thread {t}: {e}"));
                        let mut session = Session::new(Arc::new(model));
                        let batch =
                            Batch::from_columns(vec![ColumnData::F64(&a), ColumnData::F64(&b)])
                                .unwrap();
                        let out = session
                            .predict_batch(&batch, RunOptions::default())
                            .unwrap();
                        let OutputData::F64(y) = &out.outputs[0].data else {
                            panic!("not f64")
                        };
                        let k =
                            model_of(&a, &b, y).unwrap_or_else(|e| panic!("Rust thread {t}: {e}"));
                        seen[k as usize].fetch_add(1, Ordering::SeqCst);
                        n += 1;
                    }
                }
            });
        }
        s.spawn(|| replace_loop(&path, 100, &done, &swaps));
    });
    assert_eq!(swaps.load(Ordering::SeqCst), 100);
    let (s0, s1) = (
        seen[0].load(Ordering::SeqCst),
        seen[1].load(Ordering::SeqCst),
    );
    assert!(
        s0 > 0 && s1 > 0,
        "model A {s0} batches, model B {s1} batches"
    );
    let (nq, mixed) = (
        queries.load(Ordering::SeqCst),
        mixed_queries.load(Ordering::SeqCst),
    );
    eprintln!(
        "{nq} SQL queries, {mixed} saw the replacement between their batches; {s0} + {s1} batches"
    );
    // A query resolves its model once, at planning: all its batches come from one model.
    assert_eq!(
        mixed, 0,
        "{mixed} of {nq} queries mixed the two models across batches"
    );
}
