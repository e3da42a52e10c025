//! Round trips: every dtype, every flag combination, empty and large tensors, alignment and
//! zero-copy borrowing, quantization error bounds, atomic writes.

mod common;

use common::*;
use mle_format::header::{REQUIRED_COMPRESSED, REQUIRED_QUANTIZED};
use mle_format::*;
use mle_testkit::SplitMix64;

fn read(bytes: &[u8], key: Option<&SecretKey>) -> MleFile {
    let opts = ReadOptions {
        public_key: key.map(|k| k.verifying_key()),
    };
    MleFile::from_bytes(bytes, "test.mle", &opts).unwrap()
}

/// Uniform in [-1, 1) times a magnitude spread over several decades.
fn weight(rng: &mut SplitMix64) -> f32 {
    let u = (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
    let decade = (rng.next_u64() % 7) as i32 - 4;
    u * 10f32.powi(decade)
}

#[test]
fn every_dtype_round_trips_exactly() {
    let b = sample_builder();
    let f = read(&b.to_bytes(&WriteOptions::default()).unwrap(), None);
    assert_eq!(f.metadata(), &sample_metadata());
    assert_eq!(
        f.tensor_as::<f32>("coef").unwrap(),
        &[0.5, -1.25, 3.0, -0.001, 2.5, 100.0]
    );
    assert_eq!(f.tensor_as::<f64>("intercept").unwrap(), &[0.25, -0.75]);
    assert_eq!(
        f.tensor_as::<half::f16>("f16").unwrap(),
        &[half::f16::from_f32(1.5), half::f16::ONE, half::f16::ZERO]
    );
    assert_eq!(f.tensor_as::<i8>("i8").unwrap(), &[-128, -1, 0, 127]);
    assert_eq!(f.tensor_as::<i32>("i32").unwrap(), &[i32::MIN, 7]);
    assert_eq!(f.tensor_as::<i64>("i64").unwrap(), &[i64::MAX]);
    assert_eq!(f.tensor_as::<u8>("u8").unwrap(), &[0, 1, 2, 3, 255]);
    assert_eq!(f.tensor_as::<u32>("u32").unwrap(), &[0, 9, u32::MAX]);
    assert_eq!(f.tensor_as::<f32>("empty").unwrap(), &[] as &[f32]);
    assert_eq!(f.tensor("empty").unwrap().desc.shape, vec![0, 4]);
    // Unquantized f16 and f64 widen through tensor_f32.
    assert_eq!(&*f.tensor_f32("f16").unwrap(), &[1.5, 1.0, 0.0]);
    assert_eq!(&*f.tensor_f32("intercept").unwrap(), &[0.25, -0.75]);
    // Wrong dtype and missing names are typed errors.
    assert!(matches!(
        f.tensor_as::<f64>("coef"),
        Err(FormatError::Tensor { .. })
    ));
    assert!(matches!(f.tensor("nope"), Err(FormatError::Tensor { .. })));
    assert!(matches!(
        f.tensor_f32("u32"),
        Err(FormatError::Tensor { .. })
    ));
    assert_eq!(f.graph().nodes.len(), 3);
    assert_eq!(
        f.graph().nodes[0].attr("coef"),
        Some(&Attr::Tensor("coef".into()))
    );
}

#[test]
fn every_flag_combination_round_trips() {
    let b = sample_builder();
    let key = test_key(7);
    let original = [0.5f32, -1.25, 3.0, -0.001, 2.5, 100.0];
    for compression in [None, Some(3)] {
        for quantization in [None, Some(QuantMode::Fp16), Some(QuantMode::Int8)] {
            for signed in [false, true] {
                let what = format!("{compression:?} {quantization:?} signed={signed}");
                let opts = WriteOptions {
                    compression,
                    quantization,
                    signing_key: signed.then(|| key.clone()),
                };
                let bytes = b.to_bytes(&opts).unwrap();
                let f = read(&bytes, signed.then_some(&key));
                let h = f.header();
                assert_eq!(h.compressed(), compression.is_some(), "{what}");
                assert_eq!(
                    h.required_flags & REQUIRED_COMPRESSED != 0,
                    compression.is_some()
                );
                assert_eq!(
                    h.required_flags & REQUIRED_QUANTIZED != 0,
                    quantization.is_some()
                );
                assert_eq!(h.signed(), signed, "{what}");
                assert_eq!(f.metadata(), &sample_metadata(), "{what}");
                assert_eq!(f.graph().nodes.len(), 3);
                // Exact tensors stay exact whatever the options.
                assert_eq!(
                    f.tensor_as::<f64>("intercept").unwrap(),
                    &[0.25, -0.75],
                    "{what}"
                );
                assert_eq!(
                    f.tensor_as::<u32>("u32").unwrap(),
                    &[0, 9, u32::MAX],
                    "{what}"
                );
                assert_eq!(
                    f.tensor_as::<i8>("i8").unwrap(),
                    &[-128, -1, 0, 127],
                    "{what}"
                );
                let coef = f.tensor_f32("coef").unwrap();
                let coef_desc = &f.tensor("coef").unwrap().desc;
                match quantization {
                    None => {
                        assert_eq!(&*coef, &original, "{what}");
                        assert_eq!(coef_desc.dtype, DType::F32);
                    }
                    Some(QuantMode::Fp16) => {
                        assert_eq!(coef_desc.dtype, DType::F16);
                        assert_eq!(coef_desc.quantization, Some(Quantization::Fp16));
                        for (a, e) in coef.iter().zip(original) {
                            assert!(
                                (a - e).abs() <= e.abs() * 2f32.powi(-11),
                                "{what}: {a} vs {e}"
                            );
                        }
                    }
                    Some(QuantMode::Int8) => {
                        assert_eq!(coef_desc.dtype, DType::I8);
                        let scales = f.tensor_as::<f32>("coef.__scales").unwrap();
                        assert_eq!(scales, &[3.0 / 127.0, 100.0 / 127.0], "{what}");
                        for (i, (a, e)) in coef.iter().zip(original).enumerate() {
                            assert!(
                                (a - e).abs() <= scales[i / 3] / 2.0 * 1.0001,
                                "{what}: {a} vs {e}"
                            );
                        }
                    }
                }
                if signed {
                    f.verify(&key.verifying_key()).unwrap();
                    verify_bytes(&bytes, &key.verifying_key(), "test.mle").unwrap();
                } else {
                    assert!(matches!(
                        f.verify(&key.verifying_key()),
                        Err(FormatError::SignatureMissing { .. })
                    ));
                }
                touch_all(&f);
            }
        }
    }
}

#[test]
fn sign_bytes_signs_and_resigns_an_existing_file() {
    let plain = sample_builder().to_bytes(&WriteOptions::default()).unwrap();
    let (k1, k2) = (test_key(1), test_key(2));
    let s1 = sign_bytes(&plain, &k1, "m").unwrap();
    assert_eq!(s1.len(), plain.len() + 64);
    verify_bytes(&s1, &k1.verifying_key(), "m").unwrap();
    // Re-signing replaces the signature rather than appending a second one.
    let s2 = sign_bytes(&s1, &k2, "m").unwrap();
    assert_eq!(s2.len(), s1.len());
    verify_bytes(&s2, &k2.verifying_key(), "m").unwrap();
    assert!(matches!(
        verify_bytes(&s2, &k1.verifying_key(), "m"),
        Err(FormatError::SignatureInvalid { .. })
    ));
    // The builder's own signing gives the same bytes as signing afterwards (deterministic).
    let opts = WriteOptions {
        signing_key: Some(k1.clone()),
        ..Default::default()
    };
    assert_eq!(sample_builder().to_bytes(&opts).unwrap(), s1);
}

#[test]
fn uncompressed_tensors_are_borrowed_from_the_mapping_and_aligned() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.mle");
    sample_builder()
        .write(&path, &WriteOptions::default())
        .unwrap();
    let f = MleFile::open(&path, &ReadOptions::default()).unwrap();
    assert!(f.is_zero_copy());
    let file = f.file_bytes().as_ptr_range();
    for t in &f.graph().tensors {
        let v = f.tensor(&t.name).unwrap();
        let p = v.bytes.as_ptr();
        assert_eq!(p as usize % 64, 0, "{} not 64-byte aligned", t.name);
        assert!(
            file.start <= p && p <= file.end,
            "{} not inside the mapping",
            t.name
        );
    }
    let coef = f.tensor_as::<f32>("coef").unwrap();
    let borrowed = f.tensor_f32("coef").unwrap();
    assert!(matches!(borrowed, std::borrow::Cow::Borrowed(_)));
    assert!(file.start <= coef.as_ptr().cast() && coef.as_ptr().cast() < file.end);

    // Compressed: decompressed once into aligned memory outside the mapping.
    let path_z = dir.path().join("z.mle");
    let opts = WriteOptions {
        compression: Some(1),
        ..Default::default()
    };
    sample_builder().write(&path_z, &opts).unwrap();
    let z = MleFile::open(&path_z, &ReadOptions::default()).unwrap();
    assert!(!z.is_zero_copy());
    let zfile = z.file_bytes().as_ptr_range();
    for t in &z.graph().tensors {
        let p = z.tensor(&t.name).unwrap().bytes.as_ptr();
        assert_eq!(p as usize % 64, 0, "{} not 64-byte aligned", t.name);
        assert!(!(zfile.start <= p && p < zfile.end));
    }
    assert_eq!(z.tensor_as::<f32>("coef").unwrap(), coef);
}

#[test]
fn large_tensors_round_trip_through_a_file() {
    const N: usize = 10_000_000;
    let data: Vec<f32> = (0..N).map(|i| (i as f32).sin()).collect();
    let mut b = ModelBuilder::new(sample_metadata());
    b.add_tensor("small", &[3], &[1u8, 2, 3]).unwrap();
    b.add_weight("big", &[1000, 10_000], &data).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.mle");
    let written = b.write(&path, &WriteOptions::default()).unwrap();
    assert!(written > (N * 4) as u64);
    let f = MleFile::open(&path, &ReadOptions::default()).unwrap();
    let big = f.tensor_as::<f32>("big").unwrap();
    assert_eq!(big.len(), N);
    assert!(big == data.as_slice());
    assert_eq!(big.as_ptr() as usize % 64, 0);
    assert_eq!(f.tensor_as::<u8>("small").unwrap(), &[1, 2, 3]);
}

#[test]
fn highly_compressible_weights_stay_readable() {
    // 40 MB of zeros compresses far beyond the reader's ratio cap; the writer pads the stream
    // with skippable frames so the file is still accepted.
    const N: usize = 10_000_000;
    let zeros = vec![0f32; N];
    let mut b = ModelBuilder::new(sample_metadata());
    b.add_tensor("zeros", &[N as u64], &zeros).unwrap();
    let opts = WriteOptions {
        compression: Some(3),
        ..Default::default()
    };
    let bytes = b.to_bytes(&opts).unwrap();
    let stored = MleFile::from_bytes(&bytes, "z", &ReadOptions::default()).unwrap();
    let (_, stored_size) = stored.header().sections[2];
    assert!(
        stored_size * reader::MAX_COMPRESSION_RATIO + reader::DECOMPRESS_SLACK >= (N * 4) as u64
    );
    assert!(
        stored_size < (N * 4 / 200) as u64,
        "padding larger than needed: {stored_size}"
    );
    assert!(stored
        .tensor_as::<f32>("zeros")
        .unwrap()
        .iter()
        .all(|&x| x == 0.0));
    assert_eq!(stored.tensor_as::<f32>("zeros").unwrap().len(), N);
}

#[test]
fn fp16_error_bound_holds() {
    let mut rng = SplitMix64(1);
    let w: Vec<f32> = (0..4096).map(|_| weight(&mut rng)).collect();
    let mut b = ModelBuilder::new(sample_metadata());
    b.add_weight("w", &[64, 64], &w).unwrap();
    let opts = WriteOptions {
        quantization: Some(QuantMode::Fp16),
        ..Default::default()
    };
    let f = read(&b.to_bytes(&opts).unwrap(), None);
    let r = f.tensor_f32("w").unwrap();
    for (&a, &e) in r.iter().zip(&w) {
        // Round to nearest: half an ulp, i.e. 2^-11 relative for normal f16 values and an
        // absolute 2^-25 in the subnormal range (|x| < 2^-14).
        let bound = if e.abs() >= 2f32.powi(-14) {
            e.abs() * 2f32.powi(-11)
        } else {
            2f32.powi(-25)
        };
        assert!((a - e).abs() <= bound, "{a} vs {e}");
    }
    // Values beyond the f16 range are refused rather than written as infinity.
    let mut b = ModelBuilder::new(sample_metadata());
    b.add_weight("w", &[2], &[1.0, 70000.0]).unwrap();
    assert!(matches!(b.to_bytes(&opts), Err(FormatError::Build(_))));
}

#[test]
fn int8_error_bound_holds_per_channel() {
    let mut rng = SplitMix64(2);
    let (rows, cols) = (32usize, 50usize);
    let mut w: Vec<f32> = (0..rows * cols).map(|_| weight(&mut rng)).collect();
    w[cols..2 * cols].fill(0.0); // an all-zero channel
    let mut b = ModelBuilder::new(sample_metadata());
    b.add_weight("w", &[rows as u64, cols as u64], &w).unwrap();
    let opts = WriteOptions {
        quantization: Some(QuantMode::Int8),
        ..Default::default()
    };
    let f = read(&b.to_bytes(&opts).unwrap(), None);
    let scales = f.tensor_as::<f32>("w.__scales").unwrap();
    assert_eq!(scales.len(), rows);
    let r = f.tensor_f32("w").unwrap();
    for c in 0..rows {
        let row = &w[c * cols..(c + 1) * cols];
        let m = row.iter().fold(0f32, |m, x| m.max(x.abs()));
        let s = if m > 0.0 { m / 127.0 } else { 1.0 };
        assert_eq!(scales[c], s);
        for (j, &e) in row.iter().enumerate() {
            let a = r[c * cols + j];
            // Documented bound: half a quantization step of the channel (plus f32 rounding).
            assert!(
                (a - e).abs() <= s / 2.0 * (1.0 + 1e-5),
                "channel {c}: {a} vs {e}"
            );
        }
    }
    // The largest magnitude of each channel comes back exactly up to f32 rounding.
    assert!(r[cols..2 * cols].iter().all(|&x| x == 0.0));
}

#[test]
fn scale_tensor_name_clash_is_a_build_error() {
    let mut b = ModelBuilder::new(sample_metadata());
    b.add_weight("w", &[1, 2], &[1.0, 2.0]).unwrap();
    b.add_tensor("w.__scales", &[1], &[1.0f32]).unwrap();
    let opts = WriteOptions {
        quantization: Some(QuantMode::Int8),
        ..Default::default()
    };
    assert!(matches!(b.to_bytes(&opts), Err(FormatError::Build(_))));
    assert!(b.to_bytes(&WriteOptions::default()).is_ok());
}

#[test]
fn builder_rejects_inconsistent_tensors() {
    let mut b = ModelBuilder::new(sample_metadata());
    assert!(matches!(
        b.add_tensor("a", &[2, 2], &[1u8, 2, 3]),
        Err(FormatError::Build(_))
    ));
    b.add_tensor("a", &[1], &[1u8]).unwrap();
    assert!(matches!(
        b.add_tensor("a", &[1], &[1u8]),
        Err(FormatError::Build(_))
    ));
    assert!(matches!(
        b.add_tensor("b", &[u64::MAX, 2], &[1u8]),
        Err(FormatError::Build(_))
    ));
}

#[test]
fn atomic_write_leaves_no_temporary_and_keeps_the_target_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.mle");
    let first = sample_builder();
    first.write(&path, &WriteOptions::default()).unwrap();
    let names = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(), ["model.mle"]);
    let before = std::fs::read(&path).unwrap();

    // A model that fails to serialize leaves the target untouched.
    let mut bad = ModelBuilder::new(sample_metadata());
    bad.add_weight("w", &[1], &[1e9]).unwrap();
    let fp16 = WriteOptions {
        quantization: Some(QuantMode::Fp16),
        ..Default::default()
    };
    assert!(bad.write(&path, &fp16).is_err());
    assert_eq!(std::fs::read(&path).unwrap(), before);

    // A rename that fails (the target is a non-empty directory) removes the temporary.
    let blocked = dir.path().join("blocked.mle");
    std::fs::create_dir(&blocked).unwrap();
    std::fs::write(blocked.join("keep"), b"x").unwrap();
    let err = first.write(&blocked, &WriteOptions::default()).unwrap_err();
    assert!(matches!(err, FormatError::Io { .. }), "{err}");
    assert_eq!(names(), ["blocked.mle", "model.mle"]);
    assert_eq!(std::fs::read(blocked.join("keep")).unwrap(), b"x");

    // Replacing a model that is open keeps the open mapping on the old file.
    let open = MleFile::open(&path, &ReadOptions::default()).unwrap();
    let mut other = ModelBuilder::new(sample_metadata());
    other.add_tensor("coef", &[1], &[42f32]).unwrap();
    other.write(&path, &WriteOptions::default()).unwrap();
    assert_eq!(open.tensor_as::<f32>("coef").unwrap().len(), 6);
    let reopened = MleFile::open(&path, &ReadOptions::default()).unwrap();
    assert_eq!(reopened.tensor_as::<f32>("coef").unwrap(), &[42.0]);
    assert_eq!(names(), ["blocked.mle", "model.mle"]);
}

#[test]
fn key_files_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let key = generate_key().unwrap();
    let (sk, pk) = (dir.path().join("k.sec"), dir.path().join("k.pub"));
    std::fs::write(&sk, sign::key_to_hex(&key.to_bytes())).unwrap();
    std::fs::write(&pk, sign::key_to_hex(&key.verifying_key().to_bytes())).unwrap();
    assert_eq!(read_secret_key(&sk).unwrap().to_bytes(), key.to_bytes());
    assert_eq!(read_public_key(&pk).unwrap(), key.verifying_key());
    // Raw 32-byte files are accepted too.
    std::fs::write(&pk, key.verifying_key().to_bytes()).unwrap();
    assert_eq!(read_public_key(&pk).unwrap(), key.verifying_key());
    for bad in [&b"abc"[..], &[b'z'; 64][..], &[0u8; 4097][..]] {
        std::fs::write(&pk, bad).unwrap();
        assert!(matches!(
            read_public_key(&pk),
            Err(FormatError::BadKey { .. })
        ));
    }
    assert!(matches!(
        read_public_key(dir.path().join("missing")),
        Err(FormatError::Io { .. })
    ));
}
