//! Like `read_model`, but first repairs every CRC the header's section table allows, so that
//! mutations get past the checksums and exercise the structural validation behind them (JSON,
//! section tiling, decompression, tensor descriptors, quantization).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mle_format::{MleFile, ReadOptions};

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.to_vec();
    if bytes.len() >= 128 {
        for i in 0..4 {
            let (Some(off), Some(size)) =
                (u64_at(&bytes, 24 + 16 * i), u64_at(&bytes, 32 + 16 * i))
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
    let Ok(file) = MleFile::from_bytes(&bytes, "fuzz.mle", &ReadOptions::default()) else {
        return;
    };
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
