//! The `Lookup` op (docs/OPS.md, "Input stage"): string, large string, string view and
//! dictionary columns, broadcast literals, NULLs, unknown categories (missing or error),
//! numbers given to string and integer vocabularies (scikit-learn's exact-match rule), typed
//! rows, the trees reading the codes, thread counts, and every malformed Lookup graph refused
//! at compile time.

mod exec_util;

use std::sync::Arc;

use exec_util::*;
use mle_exec::{
    Batch, Column, ColumnData, DictColumn, DictKeys, ExecError, Model, OutputData, RunOptions,
    Session, StrColumn, StrData, Validity, Value,
};
use mle_format::tree::{flags, Comparison, Precision, TreeEnsembleSpec};
use mle_format::{Attr, DType, FeatureKind, FeatureSpec, ModelBuilder, Node, WriteOptions};

const CITIES: [&str; 4] = ["Paris", "Zürich", "", "a rather long city name"];
const STORES: [i64; 5] = [-3, 0, 2, 300, 1000];

/// Features `city` (string categories), `x` (float), `store` (integer categories):
/// `X → Lookup(city) → X1 → Lookup(store) → X2`; outputs `codes` (X2 itself) and `y`, a tree
/// on the codes: city ∈ {1} (Zürich) → 10 else 20, plus store ∈ {0, 4} → 1 else 2 (NaN right).
fn model_with(unknown: &str, dtype: DType) -> Arc<Model> {
    let bytes = model_bytes(unknown, dtype, &WriteOptions::default());
    Arc::new(Model::from_bytes(&bytes, "lookup.mle").unwrap())
}

/// The file of [`model_with`].
fn model_bytes(unknown: &str, dtype: DType, opts: &WriteOptions) -> Vec<u8> {
    let names = vec!["city".to_string(), "x".to_string(), "store".to_string()];
    let meta = mle_format::Metadata::new(
        "test",
        "lookup",
        mle_format::Task::Regression,
        names,
        dtype,
        &[("codes", DType::F64), ("y", DType::F64)],
    );
    let mut b = ModelBuilder::new(meta);
    let city = b.add_vocabulary("vocab.city", &CITIES).unwrap();
    let store = b.add_integer_vocabulary("vocab.store", &STORES).unwrap();
    b.set_input_features(vec![
        FeatureSpec::category("city", city),
        FeatureSpec::new("x", FeatureKind::Float),
        FeatureSpec::category("store", store),
    ])
    .unwrap();
    b.set_inputs(vec![vi("X", dtype, &[-1, 3])]);
    b.push_node(
        Node::new("lk_city", "Lookup", &["X"], &["X1"])
            .with("feature", Attr::Int(0))
            .with("bytes", tensor("vocab.city.bytes"))
            .with("offsets", tensor("vocab.city.offsets"))
            .with("unknown", Attr::Str(unknown.into())),
    );
    b.push_node(
        Node::new("lk_store", "Lookup", &["X1"], &["X2"])
            .with("feature", Attr::Int(2))
            .with("values", tensor("vocab.store"))
            .with("unknown", Attr::Str(unknown.into())),
    );
    let mut s = TreeEnsembleSpec::new(1, 1, Comparison::Le, Precision::F64);
    let r0 = s.categorical_split(0, &[0b10], 1, 2, 0);
    s.leaf(&[10.0]);
    s.leaf(&[20.0]);
    s.push_tree(r0, 0, 1.0);
    let r1 = s.categorical_split(2, &[0b10001], 4, 5, 0);
    s.leaf(&[1.0]);
    s.leaf(&[2.0]);
    s.push_tree(r1, 0, 1.0);
    s.write(&mut b, "trees", "X2", "y").unwrap();
    b.set_outputs(vec![
        vi("codes", DType::F64, &[-1, 3]),
        vi("y", DType::F64, &[-1, 1]),
    ]);
    b.push_node(Node::new("codes", "Identity", &["X2"], &["codes"]));
    b.to_bytes(opts).unwrap()
}

fn model() -> Arc<Model> {
    model_with("missing", DType::F64)
}

/// The tree's value for codes (city, store).
fn tree(city: f64, store: f64) -> f64 {
    let a = if city == 1.0 { 10.0 } else { 20.0 };
    let b = if store == 0.0 || store == 4.0 {
        1.0
    } else {
        2.0
    };
    a + b
}

fn f64s(d: &OutputData) -> Vec<f64> {
    as_f64(d)
}

/// Runs `batch` and returns (codes row-major [n, 3], y).
fn run(model: &Arc<Model>, batch: &Batch<'_>, threads: usize) -> (Vec<f64>, Vec<f64>) {
    let mut s = Session::new(model.clone());
    let out = s.predict_batch(batch, RunOptions { threads }).unwrap();
    (
        f64s(&out.get("codes").unwrap().data),
        f64s(&out.get("y").unwrap().data),
    )
}

fn same(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

fn col(data: ColumnData<'_>) -> Column<'_> {
    Column {
        data,
        offset: 0,
        stride: 1,
    }
}

/// The strings of `vals` (None = NULL) as Arrow Utf8 offsets, bytes and a validity bitmap.
fn utf8_parts(vals: &[Option<&str>]) -> (Vec<i32>, Vec<u8>, Vec<u8>) {
    let mut offs = vec![0i32];
    let mut bytes = Vec::new();
    let mut bits = vec![0u8; vals.len().div_ceil(8)];
    for (i, v) in vals.iter().enumerate() {
        if let Some(s) = v {
            bytes.extend_from_slice(s.as_bytes());
            bits[i / 8] |= 1 << (i % 8);
        }
        offs.push(bytes.len() as i32);
    }
    (offs, bytes, bits)
}

fn view_of(s: &str, buf: u32, offset: u32) -> u128 {
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&(s.len() as u32).to_le_bytes());
    if s.len() <= 12 {
        b[4..4 + s.len()].copy_from_slice(s.as_bytes());
    } else {
        b[4..8].copy_from_slice(&s.as_bytes()[..4]);
        b[8..12].copy_from_slice(&buf.to_le_bytes());
        b[12..16].copy_from_slice(&offset.to_le_bytes());
    }
    u128::from_le_bytes(b)
}

const ROWS: [Option<&str>; 8] = [
    Some("Zürich"),
    Some("Paris"),
    None,
    Some(""),
    Some("Berlin"),
    Some("a rather long city name"),
    Some("zürich"),
    Some("Zürich"),
];
const WANT_CITY: [f64; 8] = [1.0, 0.0, f64::NAN, 2.0, f64::NAN, 3.0, f64::NAN, 1.0];
const STORE_IN: [f64; 8] = [-3.0, 0.0, -0.0, 2.5, 300.0, f64::NAN, 1e20, 1000.0];
const WANT_STORE: [f64; 8] = [0.0, 1.0, 1.0, f64::NAN, 3.0, f64::NAN, f64::NAN, 4.0];
const XS: [f64; 8] = [0.5, -1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];

fn check(codes: &[f64], y: &[f64], what: &str) {
    for r in 0..8 {
        let want = [WANT_CITY[r], XS[r], WANT_STORE[r]];
        assert!(
            same(&codes[r * 3..r * 3 + 3], &want),
            "{what} row {r}: {:?} vs {want:?}",
            &codes[r * 3..r * 3 + 3]
        );
        assert_eq!(y[r], tree(WANT_CITY[r], WANT_STORE[r]), "{what} row {r}");
    }
}

#[test]
fn every_string_layout_gives_the_same_codes() {
    let model = model();
    let (offs, bytes, bits) = utf8_parts(&ROWS);
    let validity = Some(Validity {
        bits: &bits,
        offset: 0,
    });
    let utf8 = StrColumn {
        data: StrData::Utf8 {
            offsets: &offs,
            bytes: &bytes,
        },
        validity,
        len: 8,
    };
    let loffs: Vec<i64> = offs.iter().map(|&o| o as i64).collect();
    let large = StrColumn {
        data: StrData::LargeUtf8 {
            offsets: &loffs,
            bytes: &bytes,
        },
        ..utf8
    };
    let views: Vec<u128> = ROWS
        .iter()
        .map(|v| {
            let s = v.unwrap_or("");
            let at = bytes
                .windows(s.len().max(1))
                .position(|w| w == s.as_bytes())
                .unwrap_or(0);
            view_of(s, 0, at as u32)
        })
        .collect();
    let buffers: [&[u8]; 1] = [&bytes];
    let view = StrColumn {
        data: StrData::View {
            views: &views,
            buffers: &buffers,
        },
        ..utf8
    };
    // A dictionary with an unused unknown value and a NULL value.
    let dict_vals = [
        Some("Berlin"),
        Some("Zürich"),
        None,
        Some("Paris"),
        Some(""),
        Some("a rather long city name"),
        Some("zürich"),
        Some("never used"),
    ];
    let (doffs, dbytes, dbits) = utf8_parts(&dict_vals);
    let values = StrColumn {
        data: StrData::Utf8 {
            offsets: &doffs,
            bytes: &dbytes,
        },
        validity: Some(Validity {
            bits: &dbits,
            offset: 0,
        }),
        len: dict_vals.len(),
    };
    // Row 2 is NULL by the key's validity (its key, 99, is not checked).
    let keys_i32 = [1i32, 3, 99, 4, 0, 5, 6, 1];
    let kbits = [0b1111_1011u8];
    let dict = DictColumn {
        keys: DictKeys::I32(&keys_i32),
        validity: Some(Validity {
            bits: &kbits,
            offset: 0,
        }),
        values,
    };
    // Row 2 NULL through a NULL dictionary value instead.
    let keys_u8 = [1u8, 3, 2, 4, 0, 5, 6, 1];
    let dict_u8 = DictColumn {
        keys: DictKeys::U8(&keys_u8),
        validity: None,
        values,
    };
    for (what, c) in [
        ("utf8", ColumnData::Str(utf8)),
        ("large", ColumnData::Str(large)),
        ("view", ColumnData::Str(view)),
        ("dict i32", ColumnData::Dict(dict)),
        ("dict u8", ColumnData::Dict(dict_u8)),
    ] {
        let batch = Batch::from_strided(
            vec![
                col(c),
                col(ColumnData::F64(&XS)),
                col(ColumnData::F64(&STORE_IN)),
            ],
            8,
        )
        .unwrap();
        let (codes, y) = run(&model, &batch, 1);
        check(&codes, &y, what);
        for threads in [0, 3] {
            let (c2, y2) = run(&model, &batch, threads);
            assert!(
                same(&codes, &c2) && same(&y, &y2),
                "{what}: threads {threads}"
            );
        }
    }
    // Numbers for the string vocabulary are codes already (unchanged, NaN included); f32
    // columns and a row-major matrix give the same.
    let city_codes: Vec<f64> = WANT_CITY.to_vec();
    let batch = Batch::from_columns(vec![
        ColumnData::F64(&city_codes),
        ColumnData::F64(&XS),
        ColumnData::F64(&STORE_IN),
    ])
    .unwrap();
    let (codes, y) = run(&model, &batch, 1);
    check(&codes, &y, "numeric codes");
    let rm: Vec<f64> = (0..8)
        .flat_map(|r| [city_codes[r], XS[r], STORE_IN[r]])
        .collect();
    let (codes, y) = run(&model, &Batch::from_row_major_f64(&rm, 8, 3).unwrap(), 1);
    check(&codes, &y, "row-major");
    let model32 = model_with("missing", DType::F32);
    let c32: Vec<f32> = city_codes.iter().map(|&v| v as f32).collect();
    let x32: Vec<f32> = XS.iter().map(|&v| v as f32).collect();
    let s32: Vec<f32> = STORE_IN.iter().map(|&v| v as f32).collect();
    let batch = Batch::from_strided(
        vec![
            col(ColumnData::Str(utf8)),
            col(ColumnData::F32(&x32)),
            col(ColumnData::F32(&s32)),
        ],
        8,
    )
    .unwrap();
    let (codes, y) = run(&model32, &batch, 1);
    // 1e20 rounds to an f32 that is still no category.
    check(&codes, &y, "f32 model");
    let batch = Batch::from_columns(vec![
        ColumnData::F32(&c32),
        ColumnData::F32(&x32),
        ColumnData::F32(&s32),
    ])
    .unwrap();
    let (codes, y) = run(&model32, &batch, 1);
    check(&codes, &y, "f32 codes");
}

#[test]
fn long_batches_broadcast_literals_and_sliced_columns() {
    let model = model();
    // 1000 rows (several chunks) cycling through ROWS.
    let n = 1000;
    let rows: Vec<Option<&str>> = (0..n).map(|r| ROWS[r % 8]).collect();
    let (offs, bytes, bits) = utf8_parts(&rows);
    let s = StrColumn {
        data: StrData::Utf8 {
            offsets: &offs,
            bytes: &bytes,
        },
        validity: Some(Validity {
            bits: &bits,
            offset: 0,
        }),
        len: n,
    };
    let xs: Vec<f64> = (0..n).map(|r| XS[r % 8]).collect();
    let st: Vec<f64> = (0..n).map(|r| STORE_IN[r % 8]).collect();
    let batch = Batch::from_strided(
        vec![
            col(ColumnData::Str(s)),
            col(ColumnData::F64(&xs)),
            col(ColumnData::F64(&st)),
        ],
        n,
    )
    .unwrap();
    for threads in [1, 2] {
        let (codes, y) = run(&model, &batch, threads);
        for r in 0..n {
            let k = r % 8;
            assert!(same(&codes[r * 3..r * 3 + 1], &[WANT_CITY[k]]), "row {r}");
            assert_eq!(y[r], tree(WANT_CITY[k], WANT_STORE[k]), "row {r}");
        }
    }
    // A sliced column (offset 3 of the string column) and a broadcast literal (stride 0).
    let sliced = Column {
        data: ColumnData::Str(s),
        offset: 3,
        stride: 1,
    };
    let literal = Column {
        data: ColumnData::Str(s),
        offset: 1, // "Paris"
        stride: 0,
    };
    let store_lit = [300.0];
    let batch = Batch::from_strided(
        vec![
            sliced,
            col(ColumnData::F64(&xs)),
            Column {
                data: ColumnData::F64(&store_lit),
                offset: 0,
                stride: 0,
            },
        ],
        5,
    )
    .unwrap();
    let (codes, _) = run(&model, &batch, 1);
    for r in 0..5 {
        assert!(
            same(
                &[codes[r * 3], codes[r * 3 + 2]],
                &[WANT_CITY[(r + 3) % 8], 3.0]
            ),
            "sliced row {r}"
        );
    }
    let batch = Batch::from_strided(
        vec![
            literal,
            col(ColumnData::F64(&xs)),
            col(ColumnData::F64(&st)),
        ],
        7,
    )
    .unwrap();
    let (codes, y) = run(&model, &batch, 1);
    for r in 0..7 {
        assert_eq!(codes[r * 3], 0.0, "literal row {r}");
        assert_eq!(y[r], tree(0.0, WANT_STORE[r % 8]));
    }
}

#[test]
fn unknown_error_names_the_feature_and_the_value() {
    let model = model_with("error", DType::F64);
    let long = "x".repeat(500);
    let vals = [Some("Paris"), Some(long.as_str())];
    let (offs, bytes, _) = utf8_parts(&vals);
    let s = StrColumn {
        data: StrData::Utf8 {
            offsets: &offs,
            bytes: &bytes,
        },
        validity: None,
        len: 2,
    };
    let xs = [0.0, 0.0];
    let st = [0.0, 2.0];
    let batch = Batch::from_columns(vec![
        ColumnData::Str(s),
        ColumnData::F64(&xs),
        ColumnData::F64(&st),
    ])
    .unwrap();
    let mut session = Session::new(model.clone());
    let e = session
        .predict_batch(&batch, RunOptions::default())
        .unwrap_err();
    let m = e.to_string();
    assert!(matches!(e, ExecError::Input(_)));
    assert!(
        m.contains("feature \"city\"") && m.contains("not one of its 4 categories"),
        "{m}"
    );
    assert!(m.contains("(500 bytes)") && m.len() < 400, "{m}");
    // NULL is missing, never an error; an unused unknown dictionary value is no error, a
    // used one is.
    let vals = [Some("Paris"), Some("Berlin"), None];
    let (doffs, dbytes, dbits) = utf8_parts(&vals);
    let values = StrColumn {
        data: StrData::Utf8 {
            offsets: &doffs,
            bytes: &dbytes,
        },
        validity: Some(Validity {
            bits: &dbits,
            offset: 0,
        }),
        len: 3,
    };
    let keys = [0u16, 2];
    let d = DictColumn {
        keys: DictKeys::U16(&keys),
        validity: None,
        values,
    };
    let batch = Batch::from_columns(vec![
        ColumnData::Dict(d),
        ColumnData::F64(&xs),
        ColumnData::F64(&st),
    ])
    .unwrap();
    let out = session
        .predict_batch(&batch, RunOptions::default())
        .unwrap();
    let codes = f64s(&out.get("codes").unwrap().data);
    assert!(same(&[codes[0], codes[3]], &[0.0, f64::NAN]));
    let keys = [0u16, 1];
    let d = DictColumn {
        keys: DictKeys::U16(&keys),
        validity: None,
        values,
    };
    let batch = Batch::from_columns(vec![
        ColumnData::Dict(d),
        ColumnData::F64(&xs),
        ColumnData::F64(&st),
    ])
    .unwrap();
    let m = session
        .predict_batch(&batch, RunOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("\"Berlin\" is not one of its 4 categories"),
        "{m}"
    );
    // Integer categories: a value not in the vocabulary, by batch and by row.
    let st = [0.0, 2.5];
    let cc = [0.0, 1.0];
    let batch = Batch::from_columns(vec![
        ColumnData::F64(&cc),
        ColumnData::F64(&xs),
        ColumnData::F64(&st),
    ])
    .unwrap();
    let m = session
        .predict_batch(&batch, RunOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("feature \"store\"") && m.contains("value 2.5 is not one of its 5 categories"),
        "{m}"
    );
    let m = session
        .predict_row(&[0.0, 0.0, 7.0])
        .unwrap_err()
        .to_string();
    assert!(m.contains("value 7 is not one of its 5 categories"), "{m}");
    let m = session
        .predict_row_typed(&[Value::Str("Rome"), Value::Num(0.0), Value::Num(0.0)])
        .unwrap_err()
        .to_string();
    assert!(m.contains("\"Rome\" is not one of its 4 categories"), "{m}");
    // The session still works after errors.
    let out = session
        .predict_row_typed(&[Value::Str("Zürich"), Value::Num(0.0), Value::Num(1000.0)])
        .unwrap();
    assert_eq!(f64s(&out.get("y").unwrap().data), [11.0]);
}

#[test]
fn strings_for_integer_categories_or_numeric_features_are_refused() {
    let model = model();
    let (offs, bytes, _) = utf8_parts(&[Some("0"), Some("2")]);
    let s = StrColumn {
        data: StrData::Utf8 {
            offsets: &offs,
            bytes: &bytes,
        },
        validity: None,
        len: 2,
    };
    let xs = [0.0, 0.0];
    let mut session = Session::new(model.clone());
    let batch = Batch::from_columns(vec![
        ColumnData::F64(&xs),
        ColumnData::F64(&xs),
        ColumnData::Str(s),
    ])
    .unwrap();
    let m = session
        .predict_batch(&batch, RunOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("feature \"store\" (column 2) has integer categories"),
        "{m}"
    );
    let batch = Batch::from_columns(vec![
        ColumnData::F64(&xs),
        ColumnData::Str(s),
        ColumnData::F64(&xs),
    ])
    .unwrap();
    let m = session
        .predict_batch(&batch, RunOptions::default())
        .unwrap_err()
        .to_string();
    assert!(m.contains("feature \"x\" (column 1) is numeric"), "{m}");
    let m = session
        .predict_row_typed(&[Value::Str("Paris"), Value::Str("1.5"), Value::Num(0.0)])
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("feature \"x\" (column 1) is numeric") && m.contains("\"1.5\""),
        "{m}"
    );
    let m = session
        .predict_row_typed(&[Value::Str("Paris"), Value::Num(1.5), Value::Str("0")])
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("feature \"store\" (column 2) has integer categories"),
        "{m}"
    );
    let m = session
        .predict_row_typed(&[Value::Missing])
        .unwrap_err()
        .to_string();
    assert!(
        m.contains("the row has 1 values but the model takes 3"),
        "{m}"
    );
}

#[test]
fn typed_rows_agree_with_batches() {
    let model = model();
    let mut session = Session::new(model.clone());
    for r in 0..8 {
        let city = match ROWS[r] {
            Some(s) => Value::Str(s),
            None => Value::Missing,
        };
        let out = session
            .predict_row_typed(&[city, Value::Num(XS[r]), Value::Num(STORE_IN[r])])
            .unwrap();
        let codes = f64s(&out.get("codes").unwrap().data);
        assert!(
            same(&codes, &[WANT_CITY[r], XS[r], WANT_STORE[r]]),
            "row {r}: {codes:?}"
        );
        assert_eq!(
            f64s(&out.get("y").unwrap().data),
            [tree(WANT_CITY[r], WANT_STORE[r])]
        );
        // predict_row / predict_row_f32 with the city's code and the store's raw value.
        let row = [WANT_CITY[r], XS[r], STORE_IN[r]];
        let a = f64s(
            &session
                .predict_row(&row)
                .unwrap()
                .get("codes")
                .unwrap()
                .data,
        );
        assert!(same(&a, &codes), "row {r} f64");
        let row32 = row.map(|v| v as f32);
        let b = f64s(
            &session
                .predict_row_f32(&row32)
                .unwrap()
                .get("codes")
                .unwrap()
                .data,
        );
        assert!(same(&b, &codes), "row {r} f32");
    }
    // Booleans are 0 / 1, to any feature.
    let out = session
        .predict_row_typed(&[Value::Bool(true), Value::Bool(false), Value::Bool(true)])
        .unwrap();
    assert!(same(
        &f64s(&out.get("codes").unwrap().data),
        &[1.0, 0.0, f64::NAN]
    ));
}

/// A graph around a Lookup node `lk` (X → lk → Y → TreeEnsemble).
fn compile_with(nodes: Vec<Node>, tail: &str) -> Result<Model, ExecError> {
    let meta = mle_format::Metadata::new(
        "test",
        "lookup",
        mle_format::Task::Regression,
        vec!["a".into(), "b".into()],
        DType::F64,
        &[("y", DType::F64)],
    );
    let mut b = ModelBuilder::new(meta);
    b.add_vocabulary("v", &["p", "q"]).unwrap();
    b.add_integer_vocabulary("iv", &[1, 2]).unwrap();
    b.add_tensor("dup.bytes", &[2], b"pp").unwrap();
    b.add_tensor("dup.offsets", &[3], &[0u32, 1, 2]).unwrap();
    b.add_tensor("f32", &[2], &[1.0f32, 2.0]).unwrap();
    b.set_inputs(vec![vi("X", DType::F64, &[-1, 2])]);
    for n in nodes {
        b.push_node(n);
    }
    let mut s = TreeEnsembleSpec::new(1, 1, Comparison::Le, Precision::F64);
    let root = s.split(0, 0.5, 1, 2, flags::MISSING_LEFT);
    s.leaf(&[1.0]);
    s.leaf(&[2.0]);
    s.push_tree(root, 0, 1.0);
    s.write(&mut b, "t", tail, "y").unwrap();
    b.set_outputs(vec![vi("y", DType::F64, &[-1, 1])]);
    let bytes = b.to_bytes(&WriteOptions::default()).unwrap();
    Model::from_bytes(&bytes, "bad.mle")
}

fn lk(name: &str, input: &str, out: &str, feature: i64) -> Node {
    Node::new(name, "Lookup", &[input], &[out])
        .with("feature", Attr::Int(feature))
        .with("bytes", tensor("v.bytes"))
        .with("offsets", tensor("v.offsets"))
}

fn refused(nodes: Vec<Node>, tail: &str, want: &str) {
    match compile_with(nodes, tail) {
        Err(e @ ExecError::InvalidGraph { .. }) => {
            let m = e.to_string();
            assert!(m.contains(want), "{m}\n  does not contain {want:?}");
        }
        Err(e) => panic!("expected InvalidGraph containing {want:?}, got {e}"),
        Ok(_) => panic!("accepted a graph that should fail with {want:?}"),
    }
}

#[test]
fn malformed_lookups_are_refused_at_compile_time() {
    compile_with(vec![lk("l0", "X", "Y", 0), lk("l1", "Y", "Z", 1)], "Z").unwrap();
    refused(
        vec![lk("l0", "X", "Y", 2)],
        "Y",
        "attribute `feature` is 2, outside the 2 input features",
    );
    refused(
        vec![lk("l0", "X", "Y", -1)],
        "Y",
        "attribute `feature` is -1",
    );
    refused(
        vec![lk("l0", "X", "Y", 0), lk("l1", "Y", "Z", 0)],
        "Z",
        "feature 0 is looked up twice",
    );
    refused(
        vec![lk("l0", "X", "Y", 0), lk("l1", "X", "Z", 1)],
        "Z",
        "Lookups form one chain",
    );
    refused(
        vec![
            Node::new("id", "Identity", &["X"], &["I"]),
            lk("l0", "I", "Y", 0),
        ],
        "Y",
        "must be the graph input or the output of the Lookup before",
    );
    // A node reading the chain before its end (the raw input, or a middle value).
    refused(
        vec![lk("l0", "X", "Y", 0)],
        "X",
        "reads \"X\", a value of the Lookup chain before its end",
    );
    refused(
        vec![
            lk("l0", "X", "Y", 0),
            lk("l1", "Y", "Z", 1),
            Node::new("id", "Identity", &["Y"], &["W"]),
        ],
        "Z",
        "reads \"Y\"",
    );
    // Vocabulary forms.
    let base = |f: i64| Node::new("l0", "Lookup", &["X"], &["Y"]).with("feature", Attr::Int(f));
    refused(vec![base(0)], "Y", "found none");
    refused(
        vec![base(0).with("bytes", tensor("v.bytes"))],
        "Y",
        "found `bytes`",
    );
    refused(
        vec![lk("l0", "X", "Y", 0).with("values", tensor("iv"))],
        "Y",
        "found `bytes`, `offsets`, `values`",
    );
    refused(
        vec![base(0)
            .with("bytes", tensor("dup.bytes"))
            .with("offsets", tensor("dup.offsets"))],
        "Y",
        "vocabulary: categories 0 and 1 are both \"p\"",
    );
    refused(
        vec![base(0)
            .with("bytes", tensor("v.offsets"))
            .with("offsets", tensor("v.offsets"))],
        "Y",
        "must be a rank-1 u8 tensor",
    );
    refused(
        vec![base(0).with("values", tensor("f32"))],
        "Y",
        "must be a rank-1 i64 tensor",
    );
    refused(
        vec![base(0).with("values", Attr::Int(3))],
        "Y",
        "attribute `values` must name a tensor",
    );
    refused(
        vec![lk("l0", "X", "Y", 0).with("unknown", Attr::Str("ignore".into()))],
        "Y",
        "attribute `unknown` is \"ignore\", expected \"missing\", \"error\" or \"code\"",
    );
    refused(
        vec![lk("l0", "X", "Y", 0).with("feature", Attr::Float(0.0))],
        "Y",
        "`feature` must be an int",
    );
}

/// Writes seeds of the `read_vocabulary` fuzz target: models whose Lookups compile (string and
/// integer vocabularies, `unknown` missing and error, f32 and f64, plain and zstd). Run by
/// `scripts/fuzz.sh read_vocabulary`.
#[test]
#[ignore = "writes the fuzz seed corpus; run by scripts/fuzz.sh"]
fn write_fuzz_seeds() {
    let dir = std::env::var("MLE_FUZZ_SEEDS").expect("set MLE_FUZZ_SEEDS to the corpus directory");
    std::fs::create_dir_all(&dir).unwrap();
    let zstd = WriteOptions {
        compression: Some(3),
        ..Default::default()
    };
    for (what, unknown, dtype, opts) in [
        (
            "lookup-missing-f64",
            "missing",
            DType::F64,
            WriteOptions::default(),
        ),
        (
            "lookup-error-f32",
            "error",
            DType::F32,
            WriteOptions::default(),
        ),
        ("lookup-missing-zstd", "missing", DType::F64, zstd),
    ] {
        let bytes = model_bytes(unknown, dtype, &opts);
        std::fs::write(
            std::path::Path::new(&dir).join(format!("seed-{what}.mle")),
            bytes,
        )
        .unwrap();
    }
}
