//! Fuzz typed input features: any byte sequence read as a `.mle` file (every CRC the section
//! table allows repaired first, so that mutations of the metadata and of the vocabulary
//! tensors reach the schema checks), then `input_features()` and every category of every
//! vocabulary touched; then the file is compiled (building the `Lookup` op's hash index over
//! its vocabularies) and, when it compiles, scored: one typed row per kind of value (a known
//! category, an unknown string, a number, missing) and a two-row batch of string columns.
//! Seeds: files with string and integer vocabularies, and models whose Lookups compile
//! (`scripts/fuzz.sh read_vocabulary`). A file that loads must hold only valid, distinct,
//! bounded categories (checked again here, independently of the reader).
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use mle_format::vocab::MAX_CATEGORY_BYTES;
use mle_exec::{Batch, Column, ColumnData, Model, RunOptions, Session, StrColumn, StrData, Value};
use mle_format::{Categories, InputKind, MleFile, ReadOptions};

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

/// Every category of every feature, checked against the rules of FORMAT.md.
pub fn touch(file: &MleFile) {
    let features = file
        .input_features()
        .expect("input_features must succeed on a file that opened");
    for f in &features {
        let InputKind::Category(c) = f.kind else {
            continue;
        };
        match c {
            Categories::Strings(v) => {
                let mut seen = HashSet::new();
                let mut total = 0;
                for (i, s) in v.iter().enumerate() {
                    assert_eq!(v.get(i), Some(s));
                    assert!(s.len() <= MAX_CATEGORY_BYTES);
                    assert!(seen.insert(s), "duplicate category {i} in a file that opened");
                    total += s.len();
                }
                assert_eq!(seen.len(), v.len());
                assert_eq!(total, v.bytes().len());
                assert_eq!(v.get(v.len()), None);
            }
            Categories::Integers(v) => {
                let distinct: HashSet<i64> = v.values().iter().copied().collect();
                assert_eq!(distinct.len(), v.len());
            }
        }
    }
}

/// Compiles `file` and scores typed rows and a string batch; errors are fine, panics are not.
fn score(file: MleFile) {
    let Ok(model) = Model::compile(file) else {
        return;
    };
    let n = model.n_features();
    if n > 64 {
        return;
    }
    let mut session = Session::new(std::sync::Arc::new(model));
    for v in [
        Value::Str("a"),
        Value::Str("an unknown category"),
        Value::Num(2.0),
        Value::Num(-0.5),
        Value::Bool(true),
        Value::Missing,
    ] {
        let row = vec![v; n];
        let _ = session.predict_row_typed(&row);
    }
    let offsets = [0i32, 1, 3];
    let bytes = b"a\xc3\xa9";
    let strings = StrColumn {
        data: StrData::Utf8 {
            offsets: &offsets,
            bytes,
        },
        validity: None,
        len: 2,
    };
    let columns = (0..n)
        .map(|_| Column {
            data: ColumnData::Str(strings),
            offset: 0,
            stride: 1,
        })
        .collect();
    if let Ok(batch) = Batch::from_strided(columns, 2) {
        let _ = session.predict_batch(&batch, RunOptions::default());
    }
}

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.to_vec();
    repair_crcs(&mut bytes);
    if let Ok(file) = MleFile::from_bytes(&bytes, "fuzz.mle", &ReadOptions::default()) {
        touch(&file);
        score(file);
    }
    // The bytes as given too (checksums and all).
    if let Ok(file) = MleFile::from_bytes(data, "fuzz.mle", &ReadOptions::default()) {
        touch(&file);
    }
});
