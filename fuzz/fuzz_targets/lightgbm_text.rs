//! Fuzz the LightGBM text importer, then write, read back, compile and run one row of NaN,
//! zero and mixed features. Inputs that are not UTF-8 are checked lossily, so every byte
//! sequence reaches the parser.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use mle_exec::{Model, Session};
use mle_format::{MleFile, ReadOptions, WriteOptions};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(builder) = mle_import::import_lightgbm(&text, "fuzz.txt") else {
        return;
    };
    let Ok(bytes) = builder.to_bytes(&WriteOptions::default()) else {
        return;
    };
    let file = MleFile::from_bytes(&bytes, "fuzz.mle", &ReadOptions::default())
        .expect("a file the writer produced must read back");
    let Ok(model) = Model::compile(file) else {
        return;
    };
    let n = model.n_features();
    if n > 1 << 16 {
        return;
    }
    let mut session = Session::new(Arc::new(model));
    let mixed: Vec<f64> = (0..n).map(|i| (i as f64 - 3.0) * 0.37).collect();
    for row in [vec![f64::NAN; n], vec![0.0; n], mixed] {
        let _ = std::hint::black_box(session.predict_row(&row).map(|o| o.n_rows));
    }
});
