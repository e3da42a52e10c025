//! Any byte sequence yields a model or a typed error: truncation at every length, every
//! single-byte change (with and without repaired checksums), random header fields and random
//! models (proptest). A counting allocator bounds the memory a load may take relative to the
//! file's size, so no header field can size an allocation unchecked.

mod common;

use common::*;
use mle_format::header::HEADER_SIZE;
use mle_format::reader::{DECOMPRESS_SLACK, MAX_COMPRESSION_RATIO};
use mle_format::*;
use mle_testkit::{peak_during, CountingAlloc};
use proptest::prelude::*;

/// Counts live and peak heap bytes of the current thread.
#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Heap bytes a load may take on top of what was live before it: the aligned copy of the file,
/// the parsed JSON (a small multiple of the JSON's size), the decompressed weights (bounded by
/// the ratio cap on the stored size), a zstd context, and a constant for error messages.
fn allowed_peak(file_len: usize) -> usize {
    let ratio = MAX_COMPRESSION_RATIO as usize;
    file_len * (16 + ratio) + DECOMPRESS_SLACK as usize + (256 << 10)
}

/// Loads `bytes` (and reads every tensor when it loads), checking the allocation bound.
/// Returns whether it loaded.
fn load_bounded(bytes: &[u8], opts: &ReadOptions) -> bool {
    let (ok, peak) = peak_during(|| match MleFile::from_bytes(bytes, "fuzz.mle", opts) {
        Ok(f) => {
            touch_all(&f);
            true
        }
        Err(e) => {
            // Every error renders as one line naming the file.
            let msg = e.to_string();
            assert!(msg.starts_with("fuzz.mle: "), "{msg}");
            assert!(!msg.contains('\n'), "{msg}");
            false
        }
    });
    assert!(
        peak <= allowed_peak(bytes.len()),
        "loading {} bytes allocated {peak} bytes (limit {})",
        bytes.len(),
        allowed_peak(bytes.len())
    );
    ok
}

fn samples() -> Vec<(&'static str, Vec<u8>)> {
    let key = test_key(11);
    let mk = |compression, quantization, signed: bool| {
        let opts = WriteOptions {
            compression,
            quantization,
            signing_key: signed.then(|| key.clone()),
        };
        sample_builder().to_bytes(&opts).unwrap()
    };
    vec![
        ("plain", mk(None, None, false)),
        ("compressed+int8", mk(Some(1), Some(QuantMode::Int8), false)),
        ("signed+fp16", mk(None, Some(QuantMode::Fp16), true)),
    ]
}

#[test]
fn truncation_at_every_length_is_a_typed_error() {
    for (what, bytes) in samples() {
        assert!(load_bounded(&bytes, &ReadOptions::default()), "{what}");
        for len in 0..bytes.len() {
            let loaded = load_bounded(&bytes[..len], &ReadOptions::default());
            assert!(!loaded, "{what}: a file truncated to {len} bytes loaded");
            let err = MleFile::from_bytes(&bytes[..len], "t", &ReadOptions::default()).unwrap_err();
            assert!(
                matches!(err, FormatError::Truncated { .. }),
                "{what} at {len}: {err}"
            );
        }
        // Trailing garbage is refused too (the sections must end where the file ends).
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(!load_bounded(&longer, &ReadOptions::default()));
    }
}

#[test]
fn every_single_byte_change_is_a_model_or_a_typed_error() {
    for (what, good) in samples() {
        let h = Header::parse(&good, "m").unwrap();
        let mut bytes = good.clone();
        let mut loaded = [0usize; 2];
        for pos in 0..bytes.len() {
            let orig = bytes[pos];
            let mut values = vec![
                0x00,
                0xFF,
                orig ^ 0x01,
                orig ^ 0x80,
                orig.wrapping_add(1),
                b'"',
                b'9',
            ];
            values.sort_unstable();
            values.dedup();
            for v in values.into_iter().filter(|&v| v != orig) {
                bytes[pos] = v;
                // As is: the checksums catch it (or the change is harmless).
                loaded[0] += load_bounded(&bytes, &ReadOptions::default()) as usize;
                // With repaired checksums: the structural validation must catch it.
                fix_crcs(&mut bytes, &h, pos);
                loaded[1] += load_bounded(&bytes, &ReadOptions::default()) as usize;
                bytes.copy_from_slice(&good);
            }
        }
        // CRC32 detects every error burst of up to 32 bits, so without repair no single-byte
        // change loads (version bytes fail the version check instead).
        assert_eq!(loaded[0], 0, "{what}: a changed byte went unnoticed");
        eprintln!(
            "{what}: {} single-byte changes load once the CRCs are repaired",
            loaded[1]
        );
    }
}

#[test]
fn inflated_raw_size_is_refused_before_allocating() {
    let opts = WriteOptions {
        compression: Some(1),
        ..Default::default()
    };
    let mut bytes = sample_builder().to_bytes(&opts).unwrap();
    for raw in [u64::MAX, 1 << 40, 1 << 31] {
        bytes[104..112].copy_from_slice(&raw.to_le_bytes());
        fix_header_crc(&mut bytes);
        let err = MleFile::from_bytes(&bytes, "z", &ReadOptions::default()).unwrap_err();
        assert!(
            matches!(
                err,
                FormatError::Corrupted {
                    section: Section::Weights,
                    ..
                }
            ),
            "{err}"
        );
        assert!(!load_bounded(&bytes, &ReadOptions::default()));
    }
}

/// Offsets and widths of every header field.
const FIELDS: &[(usize, usize)] = &[
    (4, 2),
    (6, 2),
    (8, 4),
    (12, 4),
    (16, 8),
    (24, 8),
    (32, 8),
    (40, 8),
    (48, 8),
    (56, 8),
    (64, 8),
    (72, 8),
    (80, 8),
    (88, 4),
    (92, 4),
    (96, 4),
    (100, 4),
    (104, 8),
    (112, 12),
];

fn interesting() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(u64::MAX),
        Just(1 << 63),
        0u64..4096,
        any::<u64>(),
        (0u64..64).prop_map(|s| 1u64 << s),
    ]
}

prop_compose! {
    fn tensor_strategy()(dtype in 0usize..8, dims in prop::collection::vec(0u64..6, 0..4), seed in any::<u64>())
        -> (DType, Vec<u64>, u64) {
        let dt = [DType::F32, DType::F64, DType::F16, DType::I8, DType::I32, DType::I64, DType::U8, DType::U32][dtype];
        (dt, dims, seed)
    }
}

fn add_random(b: &mut ModelBuilder, name: &str, dt: DType, shape: &[u64], seed: u64, weight: bool) {
    let n: u64 = shape.iter().product();
    let bytes: Vec<u8> = (0..n * dt.size() as u64)
        .map(|i| {
            (seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(i.wrapping_mul(1442695040888963407))
                >> 56) as u8
        })
        .collect();
    macro_rules! add {
        ($t:ty) => {{
            let v: Vec<$t> = bytes
                .chunks_exact(std::mem::size_of::<$t>())
                .map(|c| <$t>::from_le_bytes(c.try_into().unwrap()))
                .collect();
            b.add_tensor(name, shape, &v).unwrap()
        }};
    }
    match dt {
        DType::F32 if weight => {
            let v: Vec<f32> = (0..n)
                .map(|i| ((seed ^ i) % 2001) as f32 / 100.0 - 10.0)
                .collect();
            b.add_weight(name, shape, &v).unwrap()
        }
        DType::F32 => add!(f32),
        DType::F64 => add!(f64),
        DType::F16 => {
            let v: Vec<half::f16> = bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]))
                .collect();
            b.add_tensor(name, shape, &v).unwrap()
        }
        DType::I8 => add!(i8),
        DType::I32 => add!(i32),
        DType::I64 => add!(i64),
        DType::U8 => add!(u8),
        DType::U32 => add!(u32),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// Random graphs and tensors under random options round-trip exactly (or within the
    /// quantization bound for weights).
    #[test]
    fn random_models_round_trip(
        tensors in prop::collection::vec((tensor_strategy(), any::<bool>()), 0..8),
        n_nodes in 0usize..6,
        compression in prop::option::of(1i32..4),
        quant in 0usize..3,
        signed in any::<bool>(),
    ) {
        let mut b = ModelBuilder::new(sample_metadata());
        let mut names = Vec::new();
        for (i, ((dt, shape, seed), weight)) in tensors.iter().enumerate() {
            let name = format!("t{i}");
            add_random(&mut b, &name, *dt, shape, *seed, *weight);
            names.push(name);
        }
        let mut nodes = Vec::new();
        for k in 0..n_nodes {
            let mut node = Node::new(format!("n{k}"), "Identity", &["X"], &["Y"])
                .with("i", Attr::Int(k as i64 - 3))
                .with("fs", Attr::Floats(vec![0.5, -1e300]))
                .with("ss", Attr::Strs(vec!["a\"b".into(), "é".into()]));
            if let Some(t) = names.get(k) {
                node = node.with("w", Attr::Tensor(t.clone()));
            }
            nodes.push(node.clone());
            b.push_node(node);
        }
        let key = test_key(12);
        let opts = WriteOptions {
            compression,
            quantization: [None, Some(QuantMode::Fp16), Some(QuantMode::Int8)][quant],
            signing_key: signed.then(|| key.clone()),
        };
        let bytes = b.to_bytes(&opts).unwrap();
        prop_assert_eq!(bytes.len() as u64, Header::parse(&bytes, "p").unwrap().file_size);
        let read_opts = ReadOptions { public_key: signed.then(|| key.verifying_key()) };
        let f = MleFile::from_bytes(&bytes, "p", &read_opts).unwrap();
        prop_assert_eq!(&f.graph().nodes, &nodes);
        for (i, ((dt, shape, seed), weight)) in tensors.iter().enumerate() {
            let name = &names[i];
            let v = f.tensor(name).unwrap();
            prop_assert_eq!(&v.desc.shape, shape);
            prop_assert_eq!(v.bytes.as_ptr() as usize % 64, 0);
            if *dt == DType::F32 && *weight && quant != 0 {
                let n: u64 = shape.iter().product();
                let orig: Vec<f32> = (0..n).map(|i| ((seed ^ i) % 2001) as f32 / 100.0 - 10.0).collect();
                let got = f.tensor_f32(name).unwrap();
                let tol = if quant == 1 { 10.0 * 2f32.powi(-11) } else { 10.0 / 127.0 / 2.0 * 1.0001 };
                for (a, e) in got.iter().zip(&orig) {
                    prop_assert!((a - e).abs() <= tol, "{} vs {}", a, e);
                }
            } else {
                let mut b2 = ModelBuilder::new(sample_metadata());
                add_random(&mut b2, "x", *dt, shape, *seed, *weight);
                let expect = b2.to_bytes(&WriteOptions::default()).unwrap();
                let e = MleFile::from_bytes(&expect, "e", &ReadOptions::default()).unwrap();
                prop_assert_eq!(v.bytes, e.tensor("x").unwrap().bytes);
            }
        }
    }

    /// Random values in random header fields (with the header CRC repaired or not) give a
    /// model or a typed error within the allocation bound.
    #[test]
    fn random_header_fields_never_panic(
        sample in 0usize..3,
        edits in prop::collection::vec((0usize..FIELDS.len(), interesting()), 1..4),
        repair in any::<bool>(),
    ) {
        let mut bytes = samples().swap_remove(sample).1;
        for (field, value) in edits {
            let (at, width) = FIELDS[field];
            let v = value.to_le_bytes();
            for k in 0..width {
                bytes[at + k] = v[k % 8];
            }
        }
        if repair {
            fix_header_crc(&mut bytes);
        }
        load_bounded(&bytes, &ReadOptions::default());
        let _ = verify_bytes(&bytes, &test_key(11).verifying_key(), "p");
    }

    /// Arbitrary bytes behind a valid magic never panic.
    #[test]
    fn random_bytes_never_panic(tail in prop::collection::vec(any::<u8>(), 0..600)) {
        let mut bytes = b"MLE\0".to_vec();
        bytes.extend_from_slice(&tail);
        prop_assert!(!load_bounded(&bytes, &ReadOptions::default()));
        if bytes.len() >= HEADER_SIZE {
            fix_header_crc(&mut bytes);
            load_bounded(&bytes, &ReadOptions::default());
        }
    }
}

/// Writes the seed corpus of the fuzz target (run by `scripts/fuzz.sh`).
#[test]
#[ignore = "writes the fuzz seed corpus; run by scripts/fuzz.sh"]
fn write_fuzz_seeds() {
    let dir = std::env::var("MLE_FUZZ_SEEDS").expect("set MLE_FUZZ_SEEDS to the corpus directory");
    std::fs::create_dir_all(&dir).unwrap();
    for (what, bytes) in samples() {
        std::fs::write(
            std::path::Path::new(&dir).join(format!("seed-{what}.mle")),
            bytes,
        )
        .unwrap();
    }
}
