//! Fuzz the CatBoost JSON importer, then everything downstream of it: the imported graph
//! written to `.mle` bytes, read back, compiled and run on typed rows (NaN, zeros, known and
//! unknown category strings). The importer may refuse any input with a typed error; once it
//! accepts a model, writing, reading and compiling it must succeed too.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use mle_exec::{Model, Session, Value};
use mle_format::{MleFile, ReadOptions, WriteOptions};

fuzz_target!(|data: &[u8]| {
    let Ok(builder) = mle_import::import_catboost(data, "fuzz.json") else {
        return;
    };
    let bytes = match builder.to_bytes(&WriteOptions::default()) {
        Ok(b) => b,
        // The writer's own caps (e.g. tensor sizes) may refuse what the importer built.
        Err(_) => return,
    };
    let file = MleFile::from_bytes(&bytes, "fuzz.mle", &ReadOptions::default())
        .expect("a file the writer produced must read back");
    let model = Model::compile(file).expect("a model the importer built must compile");
    let n = model.n_features();
    if n > 1 << 16 {
        return;
    }
    let mut session = Session::new(Arc::new(model));
    let mixed: Vec<f64> = (0..n).map(|i| (i as f64 - 3.0) * 0.37).collect();
    for row in [vec![f64::NAN; n], vec![0.0; n], mixed] {
        let _ = std::hint::black_box(session.predict_row(&row).map(|o| o.n_rows));
    }
    for s in ["paris", "", "unseen"] {
        let row: Vec<Value<'_>> = (0..n).map(|_| Value::Str(s)).collect();
        let _ = std::hint::black_box(session.predict_row_typed(&row).map(|o| o.n_rows));
    }
});
