//! Structured fuzzing of vocabularies: a valid model with a string vocabulary (feature `c`)
//! and an integer vocabulary (feature `n`), whose vocabulary tensors are replaced by contents
//! derived from the input — categories cut from the input by lengths (consistent offsets), or
//! raw offsets over raw bytes, optionally one category around the 64 KiB length limit — framed
//! with correct checksums and read back. Whether the file opens is checked against an
//! independent statement of the rules of FORMAT.md; a file that opens has every category
//! touched.
#![no_main]

use std::collections::HashSet;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mle_format::header::{HEADER_SIZE, VERSION_MAJOR};
use mle_format::vocab::MAX_CATEGORY_BYTES;
use mle_format::{
    Categories, DType, FeatureKind, FeatureSpec, Header, InputKind, Metadata, MleFile,
    ModelBuilder, ReadOptions, Task, WriteOptions,
};

/// The metadata section of a valid model whose features are `c` (strings in `c.bytes` and
/// `c.offsets`), `n` (integers in `n`) and `x` (float).
fn metadata_json() -> &'static [u8] {
    static JSON: OnceLock<Vec<u8>> = OnceLock::new();
    JSON.get_or_init(|| {
        let names = vec!["c".to_string(), "n".to_string(), "x".to_string()];
        let meta = Metadata::new("fuzz", "m", Task::Regression, names, DType::F64, &[]);
        let mut b = ModelBuilder::new(meta);
        let c = b.add_vocabulary("c", &["a"]).expect("valid vocabulary");
        let n = b.add_integer_vocabulary("n", &[1]).expect("valid vocabulary");
        b.set_input_features(vec![
            FeatureSpec::category("c", c),
            FeatureSpec::category("n", n),
            FeatureSpec::new("x", FeatureKind::Float),
        ])
        .expect("valid features");
        let bytes = b.to_bytes(&WriteOptions::default()).expect("valid model");
        let h = Header::parse(&bytes, "seed").expect("valid header");
        let (off, size) = h.sections[0];
        bytes[off as usize..(off + size) as usize].to_vec()
    })
}

/// A file holding exactly these three tensors, with correct checksums.
fn assemble(bytes: &[u8], offsets: &[u32], values: &[i64]) -> Vec<u8> {
    let meta = metadata_json();
    let mut blob = Vec::new();
    let mut descs = Vec::new();
    let parts: [(&str, &str, usize, Vec<u8>); 3] = [
        ("c.bytes", "u8", bytes.len(), bytes.to_vec()),
        ("c.offsets", "u32", offsets.len(), offsets.iter().flat_map(|o| o.to_le_bytes()).collect()),
        ("n", "i64", values.len(), values.iter().flat_map(|v| v.to_le_bytes()).collect()),
    ];
    for (name, dtype, n, data) in parts {
        blob.resize(blob.len().div_ceil(64) * 64, 0);
        descs.push(format!(
            r#"{{"name":"{name}","dtype":"{dtype}","shape":[{n}],"offset":{},"length":{}}}"#,
            blob.len(),
            data.len()
        ));
        blob.extend_from_slice(&data);
    }
    let mut graph =
        format!(r#"{{"inputs":[],"outputs":[],"nodes":[],"tensors":[{}]}}"#, descs.join(","))
            .into_bytes();
    let pad = (64 - (HEADER_SIZE + meta.len() + graph.len()) % 64) % 64;
    graph.resize(graph.len() + pad, b' ');
    let mut h = Header {
        major: VERSION_MAJOR,
        minor: 1,
        weights_raw_size: blob.len() as u64,
        ..Header::default()
    };
    let mut off = HEADER_SIZE as u64;
    for (i, part) in [meta, &graph[..], &blob[..]].iter().enumerate() {
        h.sections[i] = (off, part.len() as u64);
        h.crcs[i] = crc32fast::hash(part);
        off += part.len() as u64;
    }
    h.sections[3] = (off, 0);
    h.file_size = off;
    [&h.to_bytes()[..], meta, &graph, &blob].concat()
}

/// The rules of FORMAT.md, stated independently of the reader.
fn expected_valid(bytes: &[u8], offsets: &[u32], values: &[i64]) -> bool {
    let Some((&first, _)) = offsets.split_first() else {
        return false;
    };
    if first != 0 || offsets.last().map(|&l| l as usize) != Some(bytes.len()) {
        return false;
    }
    let mut seen = HashSet::new();
    for w in offsets.windows(2) {
        let (a, b) = (w[0] as usize, w[1] as usize);
        if b < a || b > bytes.len() || b - a > MAX_CATEGORY_BYTES {
            return false;
        }
        match std::str::from_utf8(&bytes[a..b]) {
            Ok(s) if seen.insert(s) => {}
            _ => return false,
        }
    }
    let distinct: HashSet<&i64> = values.iter().collect();
    distinct.len() == values.len()
}

fuzz_target!(|data: &[u8]| {
    let [mode, k, n_int, rest @ ..] = data else {
        return;
    };
    let (k, n_int) = (usize::from(*k), usize::from(*n_int % 8));
    let (ints, rest) = rest.split_at(n_int.min(rest.len()));
    // Small values, so that duplicates are common.
    let values: Vec<i64> = ints.iter().map(|&b| i64::from(b as i8)).collect();
    let (bytes, offsets) = if mode & 1 == 0 {
        // Categories cut from the pool by the lengths: consistent offsets.
        let (lens, mut pool) = rest.split_at(k.min(rest.len()));
        let mut bytes = Vec::new();
        let mut offsets = vec![0u32];
        for (i, &len) in lens.iter().enumerate() {
            let (cat, tail) = pool.split_at(usize::from(len % 16).min(pool.len()));
            pool = tail;
            bytes.extend_from_slice(cat);
            if i == 0 && mode & 2 != 0 {
                // Around the limit: 64 KiB - 2 .. 64 KiB + 1 bytes.
                let target = MAX_CATEGORY_BYTES - 2 + usize::from(mode >> 6);
                bytes.resize(target.max(bytes.len()), b'z');
            }
            offsets.push(bytes.len() as u32);
        }
        (bytes, offsets)
    } else {
        // Raw offsets (k + 1 of them, possibly fewer when the input is short) over raw bytes.
        let n = (k + 1).min(rest.len() / 4);
        let (raw, bytes) = rest.split_at(4 * n);
        let offsets = raw
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        (bytes.to_vec(), offsets)
    };
    let file = assemble(&bytes, &offsets, &values);
    let loaded = MleFile::from_bytes(&file, "fuzz.mle", &ReadOptions::default());
    assert_eq!(
        loaded.is_ok(),
        expected_valid(&bytes, &offsets, &values),
        "offsets {offsets:?}, {} bytes, values {values:?}: {:?}",
        bytes.len(),
        loaded.as_ref().err()
    );
    let Ok(file) = loaded else {
        return;
    };
    let features = file.input_features().expect("opened, so the features resolve");
    let InputKind::Category(Categories::Strings(v)) = features[0].kind else {
        panic!("feature c is a string category");
    };
    assert_eq!(v.len(), offsets.len() - 1);
    for (i, s) in v.iter().enumerate() {
        let (a, b) = (offsets[i] as usize, offsets[i + 1] as usize);
        assert_eq!(s.as_bytes(), &bytes[a..b]);
    }
    let InputKind::Category(Categories::Integers(iv)) = features[1].kind else {
        panic!("feature n is an integer category");
    };
    assert_eq!(iv.values(), &values[..]);
});
