//! Signatures (every bit flip fails, missing, wrong key), versions and feature flags.

mod common;

use common::*;
use mle_format::header::{HEADER_SIZE, RESERVED_OFFSET, VERSION_MAJOR, VERSION_MINOR};
use mle_format::*;

fn signed_sample(key: &SecretKey) -> Vec<u8> {
    let opts = WriteOptions {
        signing_key: Some(key.clone()),
        ..Default::default()
    };
    sample_builder().to_bytes(&opts).unwrap()
}

fn with_key(key: &SecretKey) -> ReadOptions {
    ReadOptions {
        public_key: Some(key.verifying_key()),
    }
}

#[test]
fn every_single_bit_flip_of_a_signed_file_fails_verification() {
    let key = test_key(3);
    let vk = key.verifying_key();
    for compression in [None, Some(1)] {
        let opts = WriteOptions {
            compression,
            signing_key: Some(key.clone()),
            ..Default::default()
        };
        let good = sample_builder().to_bytes(&opts).unwrap();
        verify_bytes(&good, &vk, "m").unwrap();
        let mut bytes = good.clone();
        for pos in 0..bytes.len() {
            for bit in 0..8 {
                bytes[pos] ^= 1 << bit;
                assert!(
                    verify_bytes(&bytes, &vk, "m").is_err(),
                    "flip of bit {bit} of byte {pos} still verifies"
                );
                assert!(MleFile::from_bytes(&bytes, "m", &with_key(&key)).is_err());
                bytes[pos] ^= 1 << bit;
            }
        }
        assert_eq!(bytes, good);
    }
}

#[test]
fn a_flip_with_checksums_repaired_still_fails_the_signature() {
    // An attacker can recompute CRCs; the signature must still catch the change.
    let key = test_key(4);
    let good = signed_sample(&key);
    let h = Header::parse(&good, "m").unwrap();
    let mut bytes = good.clone();
    // Every 5th byte of the signed body (ED25519 is slow in debug builds).
    for pos in (HEADER_SIZE..h.sections[3].0 as usize).step_by(5) {
        bytes[pos] ^= 0x20;
        fix_crcs(&mut bytes, &h, pos);
        let err = verify_bytes(&bytes, &key.verifying_key(), "m").unwrap_err();
        assert!(
            matches!(err, FormatError::SignatureInvalid { .. }),
            "byte {pos}: {err}"
        );
        bytes.copy_from_slice(&good);
    }
}

#[test]
fn unsigned_file_under_a_required_key_is_signature_missing() {
    let key = test_key(5);
    let bytes = sample_builder().to_bytes(&WriteOptions::default()).unwrap();
    let err = MleFile::from_bytes(&bytes, "plain.mle", &with_key(&key)).unwrap_err();
    assert!(matches!(err, FormatError::SignatureMissing { .. }), "{err}");
    assert!(err.to_string().contains("plain.mle"));
    // Without a key the same file loads.
    MleFile::from_bytes(&bytes, "plain.mle", &ReadOptions::default()).unwrap();
}

#[test]
fn wrong_key_is_signature_invalid() {
    let bytes = signed_sample(&test_key(6));
    let err = MleFile::from_bytes(&bytes, "s.mle", &with_key(&test_key(9))).unwrap_err();
    assert!(matches!(err, FormatError::SignatureInvalid { .. }), "{err}");
    let f = MleFile::from_bytes(&bytes, "s.mle", &ReadOptions::default()).unwrap();
    assert!(matches!(
        f.verify(&test_key(9).verifying_key()),
        Err(FormatError::SignatureInvalid { .. })
    ));
    f.verify(&test_key(6).verifying_key()).unwrap();
}

#[test]
fn signature_stripped_to_unsigned_is_refused_under_a_key() {
    // Clearing the signed flag and dropping the signature section yields a valid unsigned
    // file; the refusing option must still refuse it.
    let key = test_key(8);
    let signed = signed_sample(&key);
    let mut h = Header::parse(&signed, "m").unwrap();
    let end = h.sections[3].0;
    h.optional_flags = 0;
    h.sections[3].1 = 0;
    h.crcs[3] = crc32fast::hash(&[]);
    h.file_size = end;
    let mut stripped = signed[..end as usize].to_vec();
    stripped[..HEADER_SIZE].copy_from_slice(&h.to_bytes());
    MleFile::from_bytes(&stripped, "m", &ReadOptions::default()).unwrap();
    assert!(matches!(
        MleFile::from_bytes(&stripped, "m", &with_key(&key)),
        Err(FormatError::SignatureMissing { .. })
    ));
}

fn set_u16(bytes: &mut [u8], at: usize, v: u16) {
    bytes[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
fn set_u32(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn newer_major_version_is_refused_naming_both_versions() {
    let mut bytes = sample_builder().to_bytes(&WriteOptions::default()).unwrap();
    set_u16(&mut bytes, 4, VERSION_MAJOR + 1);
    set_u16(&mut bytes, 6, 3);
    // Even without a valid header CRC (a future layout may move it) the version is reported.
    let err = MleFile::from_bytes(&bytes, "new.mle", &ReadOptions::default()).unwrap_err();
    match &err {
        FormatError::VersionMismatch {
            file_major,
            file_minor,
            supported_major,
            supported_minor,
            ..
        } => {
            assert_eq!((*file_major, *file_minor), (VERSION_MAJOR + 1, 3));
            assert_eq!(
                (*supported_major, *supported_minor),
                (VERSION_MAJOR, VERSION_MINOR)
            );
        }
        other => panic!("expected VersionMismatch, got {other}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(&format!("{}.3", VERSION_MAJOR + 1)), "{msg}");
    assert!(
        msg.contains(&format!("{VERSION_MAJOR}.{VERSION_MINOR}")),
        "{msg}"
    );
    fix_header_crc(&mut bytes);
    assert!(matches!(
        MleFile::from_bytes(&bytes, "new.mle", &ReadOptions::default()),
        Err(FormatError::VersionMismatch { .. })
    ));
}

#[test]
fn newer_minor_version_stays_readable_and_may_use_reserved_bytes() {
    let mut bytes = sample_builder().to_bytes(&WriteOptions::default()).unwrap();
    bytes[RESERVED_OFFSET] = 0xAB;
    fix_header_crc(&mut bytes);
    // Same minor version: reserved bytes must be zero.
    assert!(matches!(
        MleFile::from_bytes(&bytes, "m", &ReadOptions::default()),
        Err(FormatError::Corrupted {
            section: Section::Header,
            ..
        })
    ));
    set_u16(&mut bytes, 6, VERSION_MINOR + 1);
    fix_header_crc(&mut bytes);
    let f = MleFile::from_bytes(&bytes, "m", &ReadOptions::default()).unwrap();
    assert_eq!(f.header().minor, VERSION_MINOR + 1);
    assert_eq!(f.tensor_as::<u8>("u8").unwrap(), &[0, 1, 2, 3, 255]);
}

#[test]
fn unknown_required_flag_is_rejected_and_unknown_optional_flag_ignored() {
    let good = sample_builder().to_bytes(&WriteOptions::default()).unwrap();
    let mut bytes = good.clone();
    set_u32(&mut bytes, 8, 1 << 7);
    fix_header_crc(&mut bytes);
    let err = MleFile::from_bytes(&bytes, "m", &ReadOptions::default()).unwrap_err();
    match err {
        FormatError::UnsupportedFeature { flags, .. } => assert_eq!(flags, 1 << 7),
        other => panic!("expected UnsupportedFeature, got {other}"),
    }
    let mut bytes = good.clone();
    set_u32(&mut bytes, 12, 0xFFFF_FFFE); // every optional bit but `signed`
    fix_header_crc(&mut bytes);
    let f = MleFile::from_bytes(&bytes, "m", &ReadOptions::default()).unwrap();
    assert_eq!(f.tensor_as::<i64>("i64").unwrap(), &[i64::MAX]);
}

#[test]
fn quantized_tensor_without_the_quantized_flag_is_rejected() {
    let opts = WriteOptions {
        quantization: Some(QuantMode::Int8),
        ..Default::default()
    };
    let mut bytes = sample_builder().to_bytes(&opts).unwrap();
    set_u32(&mut bytes, 8, 0);
    fix_header_crc(&mut bytes);
    let err = MleFile::from_bytes(&bytes, "m", &ReadOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            FormatError::Corrupted {
                section: Section::Graph,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn errors_name_the_file_section_and_bound() {
    let good = sample_builder().to_bytes(&WriteOptions::default()).unwrap();
    let err = MleFile::from_bytes(&good[..100], "short.mle", &ReadOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "short.mle: truncated in the header: the file needs 128 bytes but has 100"
    );
    let err = MleFile::from_bytes(&good[..good.len() - 10], "cut.mle", &ReadOptions::default())
        .unwrap_err();
    assert!(
        matches!(err, FormatError::Truncated { section: Section::Weights, needed, actual, .. }
            if needed == good.len() as u64 && actual == needed - 10),
        "{err}"
    );
    let err = MleFile::from_bytes(b"PK\x03\x04", "zip.mle", &ReadOptions::default()).unwrap_err();
    assert!(matches!(err, FormatError::BadMagic { found, .. } if &found == b"PK\x03\x04"));
    let h = Header::parse(&good, "m").unwrap();
    let mut bytes = good.clone();
    let pos = h.sections[1].0 as usize + 3;
    bytes[pos] ^= 1;
    let err = MleFile::from_bytes(&bytes, "g.mle", &ReadOptions::default()).unwrap_err();
    assert!(matches!(
        err,
        FormatError::ChecksumMismatch {
            section: Section::Graph,
            ..
        }
    ));
    assert!(err
        .to_string()
        .starts_with("g.mle: checksum mismatch in the graph section"));
    let dir = tempfile::tempdir().unwrap();
    let err = MleFile::open(dir.path().join("none.mle"), &ReadOptions::default()).unwrap_err();
    assert!(matches!(err, FormatError::Io { .. }));
    assert!(err.to_string().contains("none.mle"));
}
