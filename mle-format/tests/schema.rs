//! Typed input features and vocabularies (`FORMAT.md`, "Input features"): round trips of every
//! kind, files without `features`, the writer's refusals, and hostile files — each built with
//! correct checksums so that the check under test is the one that fires, each load under a
//! counting allocator.

mod common;

use mle_format::header::{HEADER_SIZE, VERSION_MAJOR};
use mle_format::schema::{NameProblem, SCHEMA_MINOR_VERSION};
use mle_format::vocab::{MAX_CATEGORIES, MAX_CATEGORY_BYTES};
use mle_format::*;
use mle_testkit::{peak_during, CountingAlloc};
use serde_json::json;

/// Counts live and peak heap bytes of the current thread.
#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const CITIES: [&str; 6] = ["Paris", "Zürich", "東京", "", "🙂 smile", "São Paulo"];
const STORES: [i64; 5] = [3, -1, 0, i64::MAX, i64::MIN];

fn names(n: &[&str]) -> Vec<String> {
    n.iter().map(|s| s.to_string()).collect()
}

fn metadata(features: &[&str]) -> Metadata {
    Metadata::new(
        "lightgbm",
        "gbdt",
        Task::Regression,
        names(features),
        DType::F64,
        &[("prediction", DType::F64)],
    )
}

/// A model with one feature of every kind (two categorical: strings and integers).
fn every_kind() -> ModelBuilder {
    let mut b = ModelBuilder::new(metadata(&[
        "age", "visits", "member", "comment", "city", "store",
    ]));
    b.add_tensor("coef", &[2], &[1.0f64, 2.0]).unwrap();
    let city = b.add_vocabulary("vocab.city", &CITIES).unwrap();
    let store = b.add_integer_vocabulary("vocab.store", &STORES).unwrap();
    b.set_input_features(vec![
        FeatureSpec::new("age", FeatureKind::Float),
        FeatureSpec::new("visits", FeatureKind::Integer),
        FeatureSpec::new("member", FeatureKind::Boolean),
        FeatureSpec::new("comment", FeatureKind::String),
        FeatureSpec::category("city", city),
        FeatureSpec::category("store", store),
    ])
    .unwrap();
    b
}

fn read(bytes: &[u8]) -> MleFile {
    MleFile::from_bytes(bytes, "model.mle", &ReadOptions::default()).unwrap()
}

fn strings<'a>(f: &InputFeature<'a>) -> Vocabulary<'a> {
    match f.kind {
        InputKind::Category(Categories::Strings(v)) => v,
        other => panic!("{}: expected string categories, got {other:?}", f.name),
    }
}

fn within(inner: &[u8], outer: &[u8]) -> bool {
    let (a, b) = (
        outer.as_ptr() as usize,
        outer.as_ptr() as usize + outer.len(),
    );
    let p = inner.as_ptr() as usize;
    p >= a && p + inner.len() <= b
}

fn check_every_kind(file: &MleFile) {
    let features = file.input_features().unwrap();
    let kinds: Vec<(&str, FeatureKind)> =
        features.iter().map(|f| (f.name, f.kind.kind())).collect();
    assert_eq!(
        kinds,
        [
            ("age", FeatureKind::Float),
            ("visits", FeatureKind::Integer),
            ("member", FeatureKind::Boolean),
            ("comment", FeatureKind::String),
            ("city", FeatureKind::Category),
            ("store", FeatureKind::Category),
        ]
    );
    let city = strings(&features[4]);
    assert_eq!(city.len(), CITIES.len());
    assert_eq!(city.iter().collect::<Vec<_>>(), CITIES);
    assert_eq!(city.iter().next_back(), Some("São Paulo"));
    for (i, c) in CITIES.iter().enumerate() {
        assert_eq!(city.get(i), Some(*c));
    }
    assert_eq!(city.get(CITIES.len()), None);
    assert_eq!(city.get(usize::MAX), None);
    assert_eq!(city.get(3), Some(""), "the empty string is a category");
    let InputKind::Category(Categories::Integers(store)) = features[5].kind else {
        panic!("store: {:?}", features[5].kind)
    };
    assert_eq!(store.values(), STORES);
    assert_eq!(store.get(4), Some(i64::MIN));
    assert_eq!(store.get(5), None);
    assert_eq!(
        features[5].kind,
        InputKind::Category(Categories::Integers(store))
    );
    let InputKind::Category(c) = features[4].kind else {
        unreachable!()
    };
    assert_eq!((c.len(), c.is_empty()), (6, false));
}

#[test]
fn every_kind_round_trips_and_vocabularies_are_borrowed_from_the_file() {
    let bytes = every_kind().to_bytes(&WriteOptions::default()).unwrap();
    let file = read(&bytes);
    assert_eq!(file.header().minor, SCHEMA_MINOR_VERSION);
    check_every_kind(&file);
    let features = file.input_features().unwrap();
    let city = strings(&features[4]);
    assert!(within(city.bytes(), file.file_bytes()));
    assert!(within(city.get(2).unwrap().as_bytes(), file.file_bytes()));
    assert_eq!(city.offsets(), [0, 5, 12, 18, 18, 28, 38]);
    // The tensors are ordinary tensors too.
    assert_eq!(
        file.tensor_as::<u8>("vocab.city.bytes").unwrap(),
        CITIES.concat().as_bytes()
    );
    assert_eq!(file.tensor_as::<i64>("vocab.store").unwrap(), STORES);
}

#[test]
fn a_mapped_file_serves_categories_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kinds.mle");
    every_kind().write(&path, &WriteOptions::default()).unwrap();
    let file = MleFile::open(&path, &ReadOptions::default()).unwrap();
    assert!(file.is_zero_copy());
    check_every_kind(&file);
    let features = file.input_features().unwrap();
    let city = strings(&features[4]);
    for c in city.iter() {
        assert!(within(c.as_bytes(), file.file_bytes()));
    }
}

#[test]
fn compressed_signed_and_quantized_files_keep_their_schema() {
    let key = common::test_key(3);
    let mut b = every_kind();
    b.add_weight("w", &[2], &[0.5, 1.5]).unwrap();
    for opts in [
        WriteOptions {
            compression: Some(3),
            ..Default::default()
        },
        WriteOptions {
            quantization: Some(QuantMode::Int8),
            signing_key: Some(key.clone()),
            ..Default::default()
        },
    ] {
        let bytes = b.to_bytes(&opts).unwrap();
        let file = MleFile::from_bytes(
            &bytes,
            "m",
            &ReadOptions {
                public_key: opts.signing_key.as_ref().map(|k| k.verifying_key()),
            },
        )
        .unwrap();
        check_every_kind(&file);
    }
}

#[test]
fn metadata_json_has_the_documented_shape() {
    let bytes = every_kind().to_bytes(&WriteOptions::default()).unwrap();
    let h = Header::parse(&bytes, "m").unwrap();
    let (off, size) = h.sections[0];
    let meta: serde_json::Value =
        serde_json::from_slice(&bytes[off as usize..(off + size) as usize]).unwrap();
    assert_eq!(
        meta["input"]["features"],
        json!([
            {"name": "age", "kind": "float"},
            {"name": "visits", "kind": "integer"},
            {"name": "member", "kind": "boolean"},
            {"name": "comment", "kind": "string"},
            {"name": "city", "kind": "category",
             "categories": {"type": "string", "bytes": "vocab.city.bytes",
                            "offsets": "vocab.city.offsets"}},
            {"name": "store", "kind": "category",
             "categories": {"type": "integer", "values": "vocab.store"}},
        ])
    );
    let file = read(&bytes);
    let graph = file.graph();
    let desc = |n: &str| graph.tensors.iter().find(|t| t.name == n).unwrap();
    assert_eq!(
        (
            desc("vocab.city.bytes").dtype,
            &desc("vocab.city.bytes").shape
        ),
        (DType::U8, &vec![38])
    );
    assert_eq!(
        (
            desc("vocab.city.offsets").dtype,
            &desc("vocab.city.offsets").shape
        ),
        (DType::U32, &vec![7])
    );
    assert_eq!(
        (desc("vocab.store").dtype, &desc("vocab.store").shape),
        (DType::I64, &vec![5])
    );
}

#[test]
fn files_without_features_stay_1_0_and_read_as_floats() {
    let bytes = common::sample_builder()
        .to_bytes(&WriteOptions::default())
        .unwrap();
    let file = read(&bytes);
    assert_eq!(
        (file.header().major, file.header().minor),
        (VERSION_MAJOR, 0)
    );
    let (off, size) = file.header().sections[0];
    let text = std::str::from_utf8(&bytes[off as usize..(off + size) as usize]).unwrap();
    assert!(!text.contains("features\""), "{text}");
    let features = file.input_features().unwrap();
    assert_eq!(
        features,
        ["a", "b", "c"].map(|name| InputFeature {
            name,
            kind: InputKind::Float
        })
    );
}

#[test]
fn empty_vocabularies_are_valid() {
    let mut b = ModelBuilder::new(metadata(&["s", "i"]));
    let s = b.add_vocabulary::<&str>("s", &[]).unwrap();
    let i = b.add_integer_vocabulary("i", &[]).unwrap();
    b.set_input_features(vec![
        FeatureSpec::category("s", s),
        FeatureSpec::category("i", i),
    ])
    .unwrap();
    let file = read(&b.to_bytes(&WriteOptions::default()).unwrap());
    let features = file.input_features().unwrap();
    assert!(strings(&features[0]).is_empty());
    assert_eq!(strings(&features[0]).iter().count(), 0);
    let InputKind::Category(c) = features[1].kind else {
        panic!()
    };
    assert!(c.is_empty());
}

#[test]
fn a_category_at_the_length_limit_is_accepted() {
    let long = "é".repeat(MAX_CATEGORY_BYTES / 2);
    let mut b = ModelBuilder::new(metadata(&["c"]));
    let c = b.add_vocabulary("c", &[long.as_str(), "x"]).unwrap();
    b.set_input_features(vec![FeatureSpec::category("c", c)])
        .unwrap();
    let file = read(&b.to_bytes(&WriteOptions::default()).unwrap());
    let features = file.input_features().unwrap();
    assert_eq!(strings(&features[0]).get(0), Some(long.as_str()));
}

#[test]
fn unknown_metadata_fields_are_ignored() {
    // What lets a 1.0 reader open a 1.1 file: unknown fields (there, `input.features`) are
    // ignored at every level of the metadata.
    let bytes = every_kind().to_bytes(&WriteOptions::default()).unwrap();
    let file = read(&bytes);
    let mut meta = serde_json::to_value(file.metadata()).unwrap();
    meta["input"]["future_field"] = json!({"anything": [1, 2]});
    meta["input"]["features"][4]["unseen"] = json!("missing side");
    meta["input"]["features"][4]["categories"]["hash"] = json!("siphash");
    meta["zzz"] = json!(1);
    let again = reassemble(&file, &meta, |_, _| {});
    check_every_kind(&load(&again).unwrap());
}

// ---- the writer's refusals ------------------------------------------------------------

fn build_error(e: FormatError) -> (Option<String>, SchemaError) {
    match e {
        FormatError::BuildSchema { feature, error } => (feature, error),
        other => panic!("expected BuildSchema, got {other:?}"),
    }
}

fn build_vocab_error(e: FormatError) -> VocabError {
    match build_error(e) {
        (None, SchemaError::Vocabulary { error, .. }) => error,
        other => panic!("expected a vocabulary error, got {other:?}"),
    }
}

#[test]
fn the_writer_refuses_bad_vocabularies() {
    let mut b = ModelBuilder::new(metadata(&["c"]));
    let e = build_vocab_error(b.add_vocabulary("v", &["a", "b", "a"]).unwrap_err());
    assert!(
        matches!(e, VocabError::Duplicate { first: 0, second: 2, ref value } if value == "\"a\""),
        "{e:?}"
    );
    let e = build_vocab_error(b.add_vocabulary("v", &["", "x", ""]).unwrap_err());
    assert!(
        matches!(
            e,
            VocabError::Duplicate {
                first: 0,
                second: 2,
                ..
            }
        ),
        "{e:?}"
    );
    let long = "x".repeat(MAX_CATEGORY_BYTES + 1);
    let e = build_vocab_error(b.add_vocabulary("v", &["a", &long]).unwrap_err());
    assert_eq!(
        e,
        VocabError::TooLong {
            index: 1,
            len: MAX_CATEGORY_BYTES + 1,
            limit: MAX_CATEGORY_BYTES
        }
    );
    let e = build_vocab_error(b.add_integer_vocabulary("i", &[5, 7, 5]).unwrap_err());
    assert!(matches!(e, VocabError::Duplicate { first: 0, second: 2, ref value } if value == "5"));
    for (name, problem) in [
        ("", NameProblem::Empty),
        ("a\nb", NameProblem::ControlCharacter),
    ] {
        let (_, e) = build_error(b.add_vocabulary(name, &["a"]).unwrap_err());
        assert_eq!(
            e,
            SchemaError::InvalidVocabularyName {
                name: name.into(),
                problem
            }
        );
        let (_, e) = build_error(b.add_integer_vocabulary(name, &[1]).unwrap_err());
        assert!(matches!(e, SchemaError::InvalidVocabularyName { .. }));
    }
    // Nothing was added by the refusals: the name is still free.
    b.add_vocabulary("v", &["a"]).unwrap();
    assert!(matches!(
        b.add_vocabulary("v", &["b"]),
        Err(FormatError::Build(_))
    ));
    let msg = b.add_vocabulary("w", &["a", "a"]).unwrap_err().to_string();
    assert!(
        msg.starts_with("cannot build model: input schema: tensor \"w.bytes\": categories 0 and 1"),
        "{msg}"
    );
}

#[test]
fn the_writer_refuses_bad_features() {
    let mut b = ModelBuilder::new(metadata(&["a", "b"]));
    let cases: Vec<(Vec<FeatureSpec>, SchemaError)> = vec![
        (
            vec![FeatureSpec::new("a", FeatureKind::Float)],
            SchemaError::FeatureCount {
                features: 1,
                feature_names: 2,
            },
        ),
        (
            vec![
                FeatureSpec::new("a", FeatureKind::Float),
                FeatureSpec::new("c", FeatureKind::Float),
            ],
            SchemaError::NameMismatch {
                index: 1,
                feature: "c".into(),
                feature_name: "b".into(),
            },
        ),
    ];
    for (features, expected) in cases {
        let (feature, e) = build_error(b.set_input_features(features).unwrap_err());
        assert_eq!((feature, e), (None, expected));
    }
    let (feature, e) = build_error(
        b.set_input_features(vec![
            FeatureSpec::new("a", FeatureKind::Unknown("datetime".into())),
            FeatureSpec::new("b", FeatureKind::Float),
        ])
        .unwrap_err(),
    );
    assert_eq!(feature.as_deref(), Some("a"));
    assert_eq!(
        e,
        SchemaError::UnknownKind {
            kind: "datetime".into()
        }
    );
    let (_, e) = build_error(
        b.set_input_features(vec![
            FeatureSpec::new("a", FeatureKind::Category),
            FeatureSpec::new("b", FeatureKind::Float),
        ])
        .unwrap_err(),
    );
    assert_eq!(e, SchemaError::MissingCategories);

    let mut dup = ModelBuilder::new(metadata(&["a", "a"]));
    let (_, e) = build_error(
        dup.set_input_features(vec![
            FeatureSpec::new("a", FeatureKind::Float),
            FeatureSpec::new("a", FeatureKind::Integer),
        ])
        .unwrap_err(),
    );
    assert_eq!(
        e,
        SchemaError::DuplicateName {
            name: "a".into(),
            first: 0,
            second: 1
        }
    );
    let mut empty = ModelBuilder::new(metadata(&[""]));
    let (_, e) = build_error(
        empty
            .set_input_features(vec![FeatureSpec::new("", FeatureKind::Float)])
            .unwrap_err(),
    );
    assert!(matches!(
        e,
        SchemaError::InvalidName {
            index: 0,
            problem: NameProblem::Empty,
            ..
        }
    ));

    // Set past the checks (through the metadata): refused when written, naming the tensor.
    let mut m =
        ModelBuilder::new(
            metadata(&["a"]).with_input_features(vec![FeatureSpec::category(
                "a",
                CategoriesRef::Integer {
                    values: "nowhere".into(),
                },
            )]),
        );
    let (feature, e) = build_error(m.to_bytes(&WriteOptions::default()).unwrap_err());
    assert_eq!(feature.as_deref(), Some("a"));
    assert_eq!(
        e,
        SchemaError::MissingTensor {
            tensor: "nowhere".into()
        }
    );
    m.add_tensor("nowhere", &[2], &[1i32, 2]).unwrap();
    let (_, e) = build_error(m.to_bytes(&WriteOptions::default()).unwrap_err());
    assert_eq!(
        e,
        SchemaError::TensorDtype {
            tensor: "nowhere".into(),
            found: DType::I32,
            expected: DType::I64
        }
    );
}

// ---- hostile files -----------------------------------------------------------------------

/// Loads `bytes` under the counting allocator: the peak must stay within a small multiple of
/// the file's size, and an error must be one line naming the file.
fn load(bytes: &[u8]) -> Result<MleFile, FormatError> {
    let (result, peak) = peak_during(|| {
        MleFile::from_bytes(bytes, "hostile.mle", &ReadOptions::default()).inspect(|f| {
            // Touch every category of every feature, as a consumer would.
            for feat in f.input_features().unwrap() {
                if let InputKind::Category(Categories::Strings(v)) = feat.kind {
                    std::hint::black_box(v.iter().map(str::len).sum::<usize>());
                }
            }
        })
    });
    let limit = 16 * bytes.len() + (256 << 10);
    assert!(
        peak <= limit,
        "loading {} bytes took {peak} (limit {limit})",
        bytes.len()
    );
    if let Err(e) = &result {
        let msg = e.to_string();
        assert!(msg.starts_with("hostile.mle: "), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }
    result
}

/// Frames metadata, graph and an uncompressed weights blob into a file with correct CRCs.
fn assemble(meta: &serde_json::Value, graph: &Graph, blob: &[u8]) -> Vec<u8> {
    let m = serde_json::to_vec(meta).unwrap();
    let mut g = serde_json::to_vec(graph).unwrap();
    let pad = (64 - (HEADER_SIZE + m.len() + g.len()) % 64) % 64;
    g.resize(g.len() + pad, b' ');
    let mut h = Header {
        major: VERSION_MAJOR,
        minor: SCHEMA_MINOR_VERSION,
        weights_raw_size: blob.len() as u64,
        ..Header::default()
    };
    let mut off = HEADER_SIZE as u64;
    for (i, part) in [&m[..], &g[..], blob].iter().enumerate() {
        h.sections[i] = (off, part.len() as u64);
        h.crcs[i] = crc32fast::hash(part);
        off += part.len() as u64;
    }
    h.sections[3] = (off, 0);
    h.file_size = off;
    [&h.to_bytes()[..], &m, &g, blob].concat()
}

/// `file` with new metadata and its graph and weights edited by `edit`, re-framed.
fn reassemble(
    file: &MleFile,
    meta: &serde_json::Value,
    edit: impl FnOnce(&mut Graph, &mut Vec<u8>),
) -> Vec<u8> {
    let mut graph = file.graph().clone();
    let mut blob = file.weights().to_vec();
    edit(&mut graph, &mut blob);
    assemble(meta, &graph, &blob)
}

/// A file whose feature `city` has exactly these vocabulary tensors (`city.bytes`, u8, and
/// `city.offsets`, u32), written as given.
fn vocab_file(bytes: &[u8], offsets: &[u32]) -> Vec<u8> {
    let file = read(&every_kind().to_bytes(&WriteOptions::default()).unwrap());
    let meta = serde_json::to_value(file.metadata()).unwrap();
    let meta = {
        let mut m = meta;
        m["input"]["features"][4]["categories"] =
            json!({"type": "string", "bytes": "city.bytes", "offsets": "city.offsets"});
        m
    };
    reassemble(&file, &meta, |graph, blob| {
        let offsets_bytes: Vec<u8> = offsets.iter().flat_map(|o| o.to_le_bytes()).collect();
        for (name, dtype, data) in [
            ("city.bytes", DType::U8, bytes),
            ("city.offsets", DType::U32, &offsets_bytes[..]),
        ] {
            blob.resize(blob.len().div_ceil(64) * 64, 0);
            graph.tensors.push(TensorDesc {
                name: name.into(),
                dtype,
                shape: vec![(data.len() / dtype.size()) as u64],
                offset: blob.len() as u64,
                length: data.len() as u64,
                quantization: None,
            });
            blob.extend_from_slice(data);
        }
    })
}

fn schema_error(r: Result<MleFile, FormatError>) -> (Option<String>, SchemaError) {
    match r {
        Err(FormatError::Schema {
            file,
            feature,
            error,
        }) => {
            assert_eq!(file, "hostile.mle");
            (feature, error)
        }
        Err(other) => panic!("expected a schema error, got {other}"),
        Ok(_) => panic!("a hostile file loaded"),
    }
}

/// The vocabulary error of feature `city`, and the tensor it names.
fn city_error(bytes: &[u8], offsets: &[u32]) -> (String, VocabError) {
    match schema_error(load(&vocab_file(bytes, offsets))) {
        (Some(f), SchemaError::Vocabulary { tensor, error }) if f == "city" => (tensor, error),
        other => panic!("expected a vocabulary error of city, got {other:?}"),
    }
}

#[test]
fn the_hostile_file_builder_makes_valid_files_from_valid_tensors() {
    // The control of every hostile case below: the same construction with valid tensors loads.
    let f = load(&vocab_file(b"abcd", &[0, 1, 3, 4])).unwrap();
    let features = f.input_features().unwrap();
    assert_eq!(
        strings(&features[4]).iter().collect::<Vec<_>>(),
        ["a", "bc", "d"]
    );
    let f = load(&vocab_file(b"\xc3\xa9x", &[0, 2, 3])).unwrap();
    assert_eq!(strings(&f.input_features().unwrap()[4]).get(0), Some("é"));
}

#[test]
fn invalid_utf8_is_refused() {
    let (tensor, e) = city_error(b"ab\xffd", &[0, 2, 4]);
    assert_eq!(tensor, "city.bytes");
    assert_eq!(
        e,
        VocabError::InvalidUtf8 {
            index: 1,
            valid_up_to: 0
        }
    );
    // Valid as a whole, but the offsets split "é" (c3 a9) between two categories.
    let (_, e) = city_error(b"\xc3\xa9x", &[0, 1, 3]);
    assert_eq!(
        e,
        VocabError::InvalidUtf8 {
            index: 0,
            valid_up_to: 0
        }
    );
    // Overlong encoding and a surrogate.
    let (_, e) = city_error(b"a\xc0\xaf", &[0, 1, 3]);
    assert!(matches!(e, VocabError::InvalidUtf8 { index: 1, .. }));
    let (_, e) = city_error(b"\xed\xa0\x80", &[0, 3]);
    assert!(matches!(e, VocabError::InvalidUtf8 { index: 0, .. }));
}

#[test]
fn duplicate_categories_are_refused() {
    let (tensor, e) = city_error(b"abcab", &[0, 2, 3, 5]);
    assert_eq!(tensor, "city.bytes");
    assert_eq!(
        e,
        VocabError::Duplicate {
            first: 0,
            second: 2,
            value: "\"ab\"".into()
        }
    );
    let (_, e) = city_error(b"x", &[0, 0, 1, 1]);
    assert!(
        matches!(
            e,
            VocabError::Duplicate {
                first: 0,
                second: 2,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn bad_offsets_are_refused() {
    let cases: [(&[u32], VocabError); 6] = [
        (
            &[0, 3, 1, 4],
            VocabError::NotMonotone {
                index: 2,
                offset: 1,
                previous: 3,
            },
        ),
        (
            &[0, 9, 3, 4],
            VocabError::OffsetOutOfRange {
                index: 1,
                offset: 9,
                len: 4,
            },
        ),
        (
            &[0, u32::MAX, 4],
            VocabError::OffsetOutOfRange {
                index: 1,
                offset: u32::MAX,
                len: 4,
            },
        ),
        (&[0, 1, 3], VocabError::LastOffset { last: 3, len: 4 }),
        (&[0, 1, 3, 5], VocabError::LastOffset { last: 5, len: 4 }),
        (&[1, 3, 4], VocabError::FirstOffset { offset: 1 }),
    ];
    for (offsets, expected) in cases {
        let (tensor, e) = city_error(b"abcd", offsets);
        assert_eq!(
            (tensor.as_str(), e),
            ("city.offsets", expected),
            "{offsets:?}"
        );
    }
    let (tensor, e) = city_error(b"", &[]);
    assert_eq!(
        (tensor.as_str(), e),
        ("city.offsets", VocabError::NoOffsets)
    );
    let (_, e) = city_error(b"abcd", &[0]);
    assert_eq!(e, VocabError::LastOffset { last: 0, len: 4 });
}

#[test]
fn a_one_megabyte_category_is_refused() {
    let big = vec![b'x'; 1 << 20];
    let (tensor, e) = city_error(&big, &[0, 1 << 20]);
    assert_eq!(tensor, "city.bytes");
    assert_eq!(
        e,
        VocabError::TooLong {
            index: 0,
            len: 1 << 20,
            limit: MAX_CATEGORY_BYTES
        }
    );
    let mut offsets: Vec<u32> = (0..=16).map(|i| i * (64 << 10)).collect();
    offsets[16] = 1 << 20;
    // Sixteen categories of 64 KiB (at the limit) are fine, except that they are equal.
    let (_, e) = city_error(&big, &offsets);
    assert!(
        matches!(
            e,
            VocabError::Duplicate {
                first: 0,
                second: 1,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn billions_of_claimed_categories_are_refused_before_allocating() {
    let file = read(&every_kind().to_bytes(&WriteOptions::default()).unwrap());
    let meta = serde_json::to_value(file.metadata()).unwrap();
    for claimed in [1_000_000_000u64, 1 << 40, u64::MAX / 4] {
        let bytes = reassemble(&file, &meta, |graph, _| {
            let t = graph
                .tensors
                .iter_mut()
                .find(|t| t.name == "vocab.city.offsets")
                .unwrap();
            t.shape = vec![claimed];
            t.length = claimed * 4;
        });
        // The descriptor claims more bytes than the weights section holds: refused as a
        // corrupted graph, before anything is sized by the count.
        match load(&bytes) {
            Err(FormatError::Corrupted {
                section: Section::Graph,
                detail,
                ..
            }) => assert!(detail.contains("vocab.city.offsets"), "{detail}"),
            other => panic!("{claimed} categories: {other:?}"),
        }
    }
}

#[test]
fn the_category_count_is_capped_before_allocating() {
    // MAX_CATEGORIES + 1 categories (all empty: the count is checked before anything else).
    let offsets = vec![0u32; MAX_CATEGORIES + 2];
    let (r, peak) = peak_during(|| Vocabulary::new(b"", &offsets).map(|v| v.len()));
    assert_eq!(
        r,
        Err(VocabError::TooMany {
            count: MAX_CATEGORIES + 1,
            limit: MAX_CATEGORIES
        })
    );
    assert!(peak < 4096, "{peak}");
    let values = vec![0i64; MAX_CATEGORIES + 1];
    let (r, peak) = peak_during(|| IntVocabulary::new(&values).map(|v| v.len()));
    assert!(matches!(r, Err(VocabError::TooMany { .. })));
    assert!(peak < 4096, "{peak}");
}

#[test]
fn a_compressed_vocabulary_of_a_million_empty_categories_allocates_no_index() {
    // 2^20 zero offsets (4 MiB raw) compress to almost nothing: a file of ~16 KiB (padded to
    // the ratio cap with a skippable frame). The duplicate check stops at the second category,
    // and its index grows with the categories read, not with the count claimed.
    let offsets = vec![0u32; MAX_CATEGORIES];
    let file = read(&vocab_file(b"", &offsets[..2]));
    let meta = serde_json::to_value(file.metadata()).unwrap();
    let mut graph = file.graph().clone();
    let mut blob = file.weights().to_vec();
    let t = graph
        .tensors
        .iter_mut()
        .find(|t| t.name == "city.offsets")
        .unwrap();
    t.offset = (blob.len() as u64).div_ceil(64) * 64;
    t.shape = vec![offsets.len() as u64];
    t.length = 4 * offsets.len() as u64;
    blob.resize(t.offset as usize, 0);
    blob.extend(offsets.iter().flat_map(|o| o.to_le_bytes()));
    let bytes = assemble_compressed(&meta, &graph, &blob);
    assert!(bytes.len() < 32 << 10, "{}", bytes.len());
    let (r, peak) = peak_during(|| {
        MleFile::from_bytes(&bytes, "hostile.mle", &ReadOptions::default()).map(drop)
    });
    match r {
        Err(FormatError::Schema {
            error: SchemaError::Vocabulary { error, .. },
            ..
        }) => assert!(matches!(
            error,
            VocabError::Duplicate {
                first: 0,
                second: 1,
                ..
            }
        )),
        other => panic!("{other:?}"),
    }
    // The decompressed weights, the file's copy and the parsed JSON; no index of 2^20 entries.
    let limit = blob.len() + 16 * bytes.len() + (1 << 20);
    assert!(peak <= limit, "peak {peak}, limit {limit}");
}

/// Like [`assemble`] with the weights compressed (zstd), padded with a skippable frame to the
/// reader's ratio cap as the writer does.
fn assemble_compressed(meta: &serde_json::Value, graph: &Graph, blob: &[u8]) -> Vec<u8> {
    use mle_format::reader::{DECOMPRESS_SLACK, MAX_COMPRESSION_RATIO};
    let mut z = zstd::bulk::compress(blob, 3).unwrap();
    let needed = (blob.len() as u64)
        .saturating_sub(DECOMPRESS_SLACK)
        .div_ceil(MAX_COMPRESSION_RATIO);
    if (z.len() as u64) < needed {
        let content = (needed - z.len() as u64).max(8) as u32;
        z.extend_from_slice(&0x184D_2A50u32.to_le_bytes());
        z.extend_from_slice(&content.to_le_bytes());
        z.resize(z.len() + content as usize, 0);
    }
    let mut bytes = assemble(meta, graph, &z);
    let mut h = Header::parse(&bytes, "t").unwrap();
    h.required_flags |= mle_format::header::REQUIRED_COMPRESSED;
    h.weights_raw_size = blob.len() as u64;
    bytes[..HEADER_SIZE].copy_from_slice(&h.to_bytes());
    bytes
}

#[test]
fn bad_integer_vocabularies_are_refused() {
    let file = read(&every_kind().to_bytes(&WriteOptions::default()).unwrap());
    let meta = serde_json::to_value(file.metadata()).unwrap();
    let bytes = reassemble(&file, &meta, |graph, blob| {
        let t = graph
            .tensors
            .iter()
            .find(|t| t.name == "vocab.store")
            .unwrap();
        let at = t.offset as usize + 8;
        blob[at..at + 8].copy_from_slice(&3i64.to_le_bytes());
    });
    match schema_error(load(&bytes)) {
        (Some(f), SchemaError::Vocabulary { tensor, error }) => {
            assert_eq!((f.as_str(), tensor.as_str()), ("store", "vocab.store"));
            assert_eq!(
                error,
                VocabError::Duplicate {
                    first: 0,
                    second: 1,
                    value: "3".into()
                }
            );
        }
        other => panic!("{other:?}"),
    }
}

/// `every_kind`'s file with its metadata edited.
fn with_meta(edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let file = read(&every_kind().to_bytes(&WriteOptions::default()).unwrap());
    let mut meta = serde_json::to_value(file.metadata()).unwrap();
    edit(&mut meta);
    reassemble(&file, &meta, |_, _| {})
}

#[test]
fn unknown_kinds_are_refused_by_name() {
    let bytes = with_meta(|m| m["input"]["features"][2]["kind"] = json!("datetime"));
    let (feature, e) = schema_error(load(&bytes));
    assert_eq!(feature.as_deref(), Some("member"));
    assert_eq!(
        e,
        SchemaError::UnknownKind {
            kind: "datetime".into()
        }
    );
    let msg = load(&bytes).unwrap_err().to_string();
    assert!(
        msg.starts_with("hostile.mle: input schema: feature \"member\": unknown kind \"datetime\""),
        "{msg}"
    );
    // Kinds are case-sensitive.
    let (_, e) = schema_error(load(&with_meta(|m| {
        m["input"]["features"][0]["kind"] = json!("Float")
    })));
    assert_eq!(
        e,
        SchemaError::UnknownKind {
            kind: "Float".into()
        }
    );
    // A kind that is not a string, and an unknown vocabulary type, are malformed metadata.
    for edit in [
        (|m: &mut serde_json::Value| m["input"]["features"][0]["kind"] = json!(7))
            as fn(&mut serde_json::Value),
        |m| m["input"]["features"][4]["categories"]["type"] = json!("float"),
        |m| m["input"]["features"][4]["categories"] = json!({"type": "string", "bytes": "x"}),
    ] {
        assert!(matches!(
            load(&with_meta(edit)),
            Err(FormatError::Corrupted {
                section: Section::Metadata,
                ..
            })
        ));
    }
}

#[test]
fn names_must_agree_with_feature_names() {
    let bytes = with_meta(|m| m["input"]["feature_names"][4] = json!("town"));
    assert_eq!(
        schema_error(load(&bytes)),
        (
            None,
            SchemaError::NameMismatch {
                index: 4,
                feature: "city".into(),
                feature_name: "town".into()
            }
        )
    );
    let bytes = with_meta(|m| {
        m["input"]["feature_names"].as_array_mut().unwrap().pop();
    });
    assert_eq!(
        schema_error(load(&bytes)).1,
        SchemaError::FeatureCount {
            features: 6,
            feature_names: 5
        }
    );
    let bytes = with_meta(|m| {
        m["input"]["feature_names"][1] = json!("age");
        m["input"]["features"][1]["name"] = json!("age");
    });
    assert_eq!(
        schema_error(load(&bytes)).1,
        SchemaError::DuplicateName {
            name: "age".into(),
            first: 0,
            second: 1
        }
    );
    for (name, problem) in [
        ("", NameProblem::Empty),
        ("a\u{7}", NameProblem::ControlCharacter),
    ] {
        let bytes = with_meta(|m| {
            m["input"]["feature_names"][3] = json!(name);
            m["input"]["features"][3]["name"] = json!(name);
        });
        assert_eq!(
            schema_error(load(&bytes)).1,
            SchemaError::InvalidName {
                index: 3,
                name: name.into(),
                problem
            }
        );
    }
}

#[test]
fn kinds_and_categories_must_match() {
    let (f, e) = schema_error(load(&with_meta(|m| {
        m["input"]["features"][4]
            .as_object_mut()
            .unwrap()
            .remove("categories");
    })));
    assert_eq!(
        (f.as_deref(), e),
        (Some("city"), SchemaError::MissingCategories)
    );
    let (f, e) = schema_error(load(&with_meta(|m| {
        m["input"]["features"][0]["categories"] =
            json!({"type": "integer", "values": "vocab.store"});
    })));
    assert_eq!(
        (f.as_deref(), e),
        (
            Some("age"),
            SchemaError::UnexpectedCategories {
                kind: FeatureKind::Float
            }
        )
    );
}

#[test]
fn vocabulary_tensors_must_exist_with_the_right_dtype_and_rank() {
    let (f, e) = schema_error(load(&with_meta(|m| {
        m["input"]["features"][4]["categories"]["offsets"] = json!("vocab.missing");
    })));
    assert_eq!(
        (f.as_deref(), e),
        (
            Some("city"),
            SchemaError::MissingTensor {
                tensor: "vocab.missing".into()
            }
        )
    );
    // Swapped: the offsets named as the bytes.
    let (_, e) = schema_error(load(&with_meta(|m| {
        m["input"]["features"][4]["categories"] = json!({"type": "string",
            "bytes": "vocab.city.offsets", "offsets": "vocab.city.bytes"});
    })));
    assert_eq!(
        e,
        SchemaError::TensorDtype {
            tensor: "vocab.city.offsets".into(),
            found: DType::U32,
            expected: DType::U8
        }
    );
    let (_, e) = schema_error(load(&with_meta(|m| {
        m["input"]["features"][5]["categories"]["values"] = json!("coef");
    })));
    assert_eq!(
        e,
        SchemaError::TensorDtype {
            tensor: "coef".into(),
            found: DType::F64,
            expected: DType::I64
        }
    );
    // Rank 2 offsets.
    let file = read(&every_kind().to_bytes(&WriteOptions::default()).unwrap());
    let meta = serde_json::to_value(file.metadata()).unwrap();
    let bytes = reassemble(&file, &meta, |graph, _| {
        let t = graph
            .tensors
            .iter_mut()
            .find(|t| t.name == "vocab.city.offsets")
            .unwrap();
        t.shape = vec![7, 1];
    });
    assert_eq!(
        schema_error(load(&bytes)).1,
        SchemaError::TensorShape {
            tensor: "vocab.city.offsets".into(),
            shape: vec![7, 1]
        }
    );
}

/// Writes the seed corpus of the `read_vocabulary` fuzz target (run by `scripts/fuzz.sh`).
#[test]
#[ignore = "writes the fuzz seed corpus; run by scripts/fuzz.sh"]
fn write_fuzz_seeds() {
    let dir = std::env::var("MLE_FUZZ_SEEDS").expect("set MLE_FUZZ_SEEDS to the corpus directory");
    std::fs::create_dir_all(&dir).unwrap();
    let key = common::test_key(5);
    let mut small = ModelBuilder::new(metadata(&["c", "n"]));
    let c = small.add_vocabulary("c", &["a", "é", ""]).unwrap();
    let n = small.add_integer_vocabulary("n", &[1, -2]).unwrap();
    small
        .set_input_features(vec![
            FeatureSpec::category("c", c),
            FeatureSpec::category("n", n),
        ])
        .unwrap();
    let seeds = [
        (
            "kinds",
            every_kind().to_bytes(&WriteOptions::default()).unwrap(),
        ),
        ("small", small.to_bytes(&WriteOptions::default()).unwrap()),
        (
            "kinds-zstd",
            every_kind()
                .to_bytes(&WriteOptions {
                    compression: Some(3),
                    ..Default::default()
                })
                .unwrap(),
        ),
        (
            "kinds-signed",
            every_kind()
                .to_bytes(&WriteOptions {
                    signing_key: Some(key),
                    ..Default::default()
                })
                .unwrap(),
        ),
    ];
    for (what, bytes) in seeds {
        std::fs::write(
            std::path::Path::new(&dir).join(format!("seed-{what}.mle")),
            bytes,
        )
        .unwrap();
    }
}
