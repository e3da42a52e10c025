//! Fuzz the whole load path: any byte sequence read as a `.mle` file, compiled by the executor,
//! then run on one row of NaN, zero and pseudo-random features (single-row path) and on a
//! three-row batch. Each step must give a result or a typed error: no panic, no hang, no
//! allocation beyond libFuzzer's RSS limit.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use mle_exec::{Batch, ColumnData, Model, RunOptions, Session};
use mle_format::{MleFile, ReadOptions};

/// Features of the three rows: all NaN, all zero, and values derived from the input bytes
/// (so the fuzzer can steer them, including ±Inf and huge magnitudes).
fn rows(n: usize, data: &[u8]) -> [Vec<f64>; 3] {
    let mut state = data.iter().fold(0x9e37_79b9_7f4a_7c15u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let random = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            match state % 16 {
                0 => f64::INFINITY,
                1 => f64::NEG_INFINITY,
                2 => f64::MAX,
                3 => -0.0,
                _ => (state >> 11) as f64 / (1u64 << 40) as f64 - 4096.0,
            }
        })
        .collect();
    [vec![f64::NAN; n], vec![0.0; n], random]
}

fuzz_target!(|data: &[u8]| {
    let Ok(file) = MleFile::from_bytes(data, "fuzz.mle", &ReadOptions::default()) else {
        return;
    };
    let Ok(model) = Model::compile(file) else {
        return;
    };
    let n = model.n_features();
    // Feature counts come from the file; a model whose row we cannot afford is not run.
    if n > 1 << 16 {
        return;
    }
    let model = Arc::new(model);
    let mut session = Session::new(model.clone());
    let rows = rows(n, data);
    for row in &rows {
        if let Ok(out) = session.predict_row(row) {
            for o in &out.outputs {
                std::hint::black_box(&o.data);
            }
        }
    }
    // The batch path over the same three rows, column-major.
    let cols: Vec<Vec<f64>> = (0..n).map(|j| rows.iter().map(|r| r[j]).collect()).collect();
    let Ok(batch) = Batch::from_columns(cols.iter().map(|c| ColumnData::F64(c)).collect()) else {
        return;
    };
    if let Ok(out) = session.predict_batch(&batch, RunOptions::default()) {
        assert_eq!(out.n_rows, 3);
    }
});
