//! Fuzz the whole load path: any byte sequence read as a `.mle` file, compiled by the executor,
//! then run on one row of NaN, zero and pseudo-random features (single-row path) and on a
//! three-row batch. Each step must give a result or a typed error: no panic, no hang, no
//! allocation beyond libFuzzer's RSS limit.
//!
//! Every section CRC and the header CRC are repaired first (as in `read_model_crc_fixed`), so
//! that mutations of the JSON and the weights reach graph validation, compilation and the
//! kernels instead of stopping at a checksum; `read_model` covers the checksums themselves.
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

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Rewrites the section CRCs the header's table allows, then the header CRC.
fn repair_crcs(bytes: &mut [u8]) {
    if bytes.len() < 128 {
        return;
    }
    for i in 0..4 {
        let (Some(off), Some(size)) = (u64_at(bytes, 24 + 16 * i), u64_at(bytes, 32 + 16 * i))
        else {
            continue;
        };
        let range = usize::try_from(off)
            .ok()
            .zip(usize::try_from(size).ok())
            .and_then(|(o, s)| Some(o..o.checked_add(s)?));
        if let Some(crc) = range.and_then(|r| bytes.get(r)).map(crc32fast::hash) {
            bytes[88 + 4 * i..92 + 4 * i].copy_from_slice(&crc.to_le_bytes());
        }
    }
    let crc = crc32fast::hash(&bytes[..124]);
    bytes[124..128].copy_from_slice(&crc.to_le_bytes());
}

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.to_vec();
    repair_crcs(&mut bytes);
    let Ok(file) = MleFile::from_bytes(&bytes, "fuzz.mle", &ReadOptions::default()) else {
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
    let cols: Vec<Vec<f64>> = (0..n)
        .map(|j| rows.iter().map(|r| r[j]).collect())
        .collect();
    let Ok(batch) = Batch::from_columns(cols.iter().map(|c| ColumnData::F64(c)).collect()) else {
        return;
    };
    if let Ok(out) = session.predict_batch(&batch, RunOptions::default()) {
        assert_eq!(out.n_rows, 3);
    }
});
