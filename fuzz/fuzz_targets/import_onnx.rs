//! Fuzz the ONNX importer (prost decoding of the `ModelProto` subset, tensor decoding, graph
//! translation), then write, read back, compile and run one row of NaN, zero and mixed
//! features, a 3-row batch, and typed rows (strings for string/category features, among them
//! unseen ones; NULLs). External data is refused (no model directory is given).
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use mle_exec::{Batch, Model, RunOptions, Session, Value};
use mle_format::{FeatureKind, MleFile, ReadOptions, WriteOptions};
use mle_import::onnx::{import, OnnxOptions};

fuzz_target!(|data: &[u8]| {
    let Ok(builder) = import(data, &OnnxOptions::named("fuzz.onnx")) else {
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
    if n > 1 << 12 {
        return;
    }
    let text: Vec<bool> = model
        .metadata()
        .input
        .features
        .iter()
        .map(|f| matches!(f.kind, FeatureKind::Category | FeatureKind::String))
        .collect();
    let mut session = Session::new(Arc::new(model));
    let mixed: Vec<f64> = (0..n).map(|i| (i as f64 - 3.0) * 0.37).collect();
    for row in [vec![f64::NAN; n], vec![0.0; n], mixed.clone()] {
        let _ = std::hint::black_box(session.predict_row(&row).map(|o| o.n_rows));
    }
    let rows: Vec<f64> = mixed.iter().chain(&vec![f64::NAN; n]).chain(&vec![1e30; n]).copied().collect();
    if let Ok(b) = Batch::from_row_major_f64(&rows, 3, n) {
        let _ = std::hint::black_box(session.predict_batch(&b, RunOptions::default()).map(|o| o.n_rows));
    }
    for s in ["small", "", "unseen"] {
        let row: Vec<Value<'_>> = (0..n)
            .map(|i| match text.get(i) {
                Some(true) => Value::Str(s),
                _ => Value::Num(i as f64 * 0.5),
            })
            .collect();
        let _ = std::hint::black_box(session.predict_row_typed(&row).map(|o| o.n_rows));
    }
    let missing: Vec<Value<'_>> = (0..n).map(|_| Value::Missing).collect();
    let _ = std::hint::black_box(session.predict_row_typed(&missing).map(|o| o.n_rows));
});
