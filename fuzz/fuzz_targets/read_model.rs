//! Fuzz the reader: any byte sequence must give a model or a typed error, and every tensor of
//! a model that loads must be readable through every accessor without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mle_format::{MleFile, ReadOptions};

fuzz_target!(|data: &[u8]| {
    let Ok(file) = MleFile::from_bytes(data, "fuzz.mle", &ReadOptions::default()) else {
        return;
    };
    let _ = file.metadata().n_features();
    for desc in &file.graph().tensors {
        if let Ok(view) = file.tensor(&desc.name) {
            assert_eq!(view.bytes.len() as u64, desc.length);
            assert_eq!(view.bytes.as_ptr() as usize % 64, 0);
        }
        if let Ok(values) = file.tensor_f32(&desc.name) {
            std::hint::black_box(values.iter().copied().sum::<f32>());
        }
        let _ = file.tensor_as::<u8>(&desc.name);
    }
});
