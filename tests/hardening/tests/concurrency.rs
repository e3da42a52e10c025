//! Many threads score while the model file is replaced by atomic rename, alternating between
//! two models whose outputs tell them apart (`y = a + b` and `y = a + b + 1000`). Every result
//! must come from one of the two models, whole: per batch, all rows from the same model.
//!
//! The Rust API side loads the file afresh for each batch (`Model::load`, which maps it); the
//! reader keeps its mapping of whichever inode it opened, so a rename never changes a loaded
//! model. The SQL side is in `concurrency_sql.rs`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use mle_exec::{Batch, ColumnData, Model, OutputData, RunOptions, Session};
use mle_format::{write_atomic, ReadOptions};
use mle_hardening::swap::{model_of, models, replace_loop};

#[test]
fn rust_api_32_threads_while_the_file_is_replaced_100_times() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.mle");
    write_atomic(&path, &models()[0]).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let rows = 1000;
    let a: Arc<Vec<f64>> = Arc::new((0..rows).map(|i| i as f64 * 0.5).collect());
    let b: Arc<Vec<f64>> = Arc::new((0..rows).map(|i| (i % 7) as f64 - 3.0).collect());
    std::thread::scope(|s| {
        for t in 0..32 {
            let (path, done, seen, a, b) = (&path, &done, &seen, &a, &b);
            s.spawn(move || {
                let mut batches = 0;
                // Each thread keeps scoring until the writer is done, and at least 5 batches.
                while !done.load(Ordering::SeqCst) || batches < 5 {
                    let model = Arc::new(
                        Model::load(path, &ReadOptions::default()).unwrap_or_else(|e| {
                            panic!("thread {t}: load failed during replacement: {e}")
                        }),
                    );
                    // Half the threads use the batch path (2 worker threads), half single rows.
                    let mut session = Session::new(model);
                    let y: Vec<f64> = if t % 2 == 0 {
                        let batch =
                            Batch::from_columns(vec![ColumnData::F64(a), ColumnData::F64(b)])
                                .unwrap();
                        let out = session
                            .predict_batch(&batch, RunOptions { threads: 2 })
                            .unwrap();
                        match &out.outputs[0].data {
                            OutputData::F64(v) => v.clone(),
                            other => panic!("{other:?}"),
                        }
                    } else {
                        (0..50)
                            .map(|i| {
                                match &session.predict_row(&[a[i], b[i]]).unwrap().outputs[0].data {
                                    OutputData::F64(v) => v[0],
                                    other => panic!("{other:?}"),
                                }
                            })
                            .collect()
                    };
                    let k = model_of(a, b, &y).unwrap_or_else(|e| panic!("thread {t}: {e}"));
                    seen[k as usize].fetch_add(1, Ordering::SeqCst);
                    batches += 1;
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
    // Both models were observed: the replacement really happened under the readers.
    assert!(
        s0 > 0 && s1 > 0,
        "model A {s0} batches, model B {s1} batches"
    );
}

#[test]
fn a_loaded_model_survives_replacement_and_unlink() {
    // A model mapped before the file is replaced (and then deleted) keeps its own bytes.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.mle");
    let m = models();
    write_atomic(&path, &m[0]).unwrap();
    let model = Arc::new(Model::load(&path, &ReadOptions::default()).unwrap());
    assert!(model.file().is_zero_copy());
    write_atomic(&path, &m[1]).unwrap();
    std::fs::remove_file(&path).unwrap();
    let mut s = Session::new(model);
    let out = s.predict_row(&[2.0, 3.0]).unwrap();
    assert_eq!(out.outputs[0].data, OutputData::F64(vec![5.0]));
}
