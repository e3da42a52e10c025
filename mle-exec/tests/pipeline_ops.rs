//! The pipeline ops (docs/OPS.md, "Pipeline ops"): `Gather`, `OneHot`, `CategoryMap`,
//! `MissingIndicator`, `Bucketize`, `Polynomial`, `Log1p` / `Expm1`, and `Lookup` with
//! `unknown = "code"` in front of the encoders, against values derived by hand; typed rows
//! and string batches agree; malformed attributes are refused at compile time.

mod exec_util;

use std::sync::Arc;

use exec_util::*;
use mle_exec::{Batch, Column, ColumnData, ExecError, Model, RunOptions, Session, Value};
use mle_format::{Attr, DType, FeatureKind, FeatureSpec, ModelBuilder, Node, WriteOptions};

const CITIES: [&str; 3] = ["Paris", "Rome", "Oslo"];

fn ints(v: &[i64]) -> Attr {
    Attr::Ints(v.to_vec())
}

/// Features `city` (string categories, Lookup with `unknown`), `x`, `y` (floats). Output
/// `out` = Concat(OneHot(city), CategoryMap(city), MissingIndicator(x, y), Bucketize(x),
/// Polynomial(x, y), Log1p(Gather(y))).
fn model(unknown: &str, broken: Option<(&str, &str, Attr)>) -> Result<Arc<Model>, ExecError> {
    let names = vec!["city".to_string(), "x".to_string(), "y".to_string()];
    let meta = mle_format::Metadata::new(
        "test",
        "pipeline",
        mle_format::Task::Regression,
        names,
        DType::F64,
        &[("out", DType::F64)],
    );
    let mut b = ModelBuilder::new(meta);
    let city = b.add_vocabulary("vocab.city", &CITIES).unwrap();
    b.set_input_features(vec![
        FeatureSpec::category("city", city),
        FeatureSpec::new("x", FeatureKind::Float),
        FeatureSpec::new("y", FeatureKind::Float),
    ])
    .unwrap();
    // OneHot: Paris → 0, Rome dropped, Oslo → 1; missing → 2, unknown → 3.
    b.add_tensor("slots", &[3], &[0i32, -1, 1]).unwrap();
    // CategoryMap: two columns per code.
    b.add_tensor("table", &[3, 2], &[10.0f64, -1.0, 20.0, -2.0, 30.0, -3.0])
        .unwrap();
    b.add_tensor("cm.missing", &[2], &[f64::NAN, 7.0]).unwrap();
    b.add_tensor("cm.unknown", &[2], &[99.0f64, 8.0]).unwrap();
    // Bucketize x on edges [0, 1, 1, 5] (one feature of the gathered [x]).
    b.add_tensor("edges", &[4], &[0.0f64, 1.0, 1.0, 5.0])
        .unwrap();
    b.add_tensor("edge_offsets", &[2], &[0u32, 4]).unwrap();
    b.add_tensor("edges.unsorted", &[4], &[0.0f64, 2.0, 1.0, 5.0])
        .unwrap();
    // Polynomial over [x, y]: 1, x·y, y·y·x.
    b.add_tensor("terms", &[5], &[0u32, 1, 1, 1, 0]).unwrap();
    b.add_tensor("term_offsets", &[4], &[0u32, 0, 2, 5])
        .unwrap();
    b.add_tensor("terms.bad", &[5], &[0u32, 1, 1, 1, 7])
        .unwrap();
    b.set_inputs(vec![vi("X", DType::F64, &[-1, 3])]);
    let mut nodes = vec![
        Node::new("lk", "Lookup", &["X"], &["X1"])
            .with("feature", Attr::Int(0))
            .with("bytes", tensor("vocab.city.bytes"))
            .with("offsets", tensor("vocab.city.offsets"))
            .with("unknown", Attr::Str(unknown.into())),
        Node::new("oh", "OneHot", &["X1"], &["oh"])
            .with("feature", Attr::Int(0))
            .with("n_columns", Attr::Int(4))
            .with("slots", tensor("slots"))
            .with("missing", Attr::Int(2))
            .with("unknown", Attr::Int(3)),
        Node::new("cm", "CategoryMap", &["X1"], &["cm"])
            .with("feature", Attr::Int(0))
            .with("table", tensor("table"))
            .with("missing", tensor("cm.missing"))
            .with("unknown", tensor("cm.unknown")),
        Node::new("mi", "MissingIndicator", &["X1"], &["mi"]).with("columns", ints(&[1, 2])),
        Node::new("num", "Gather", &["X1"], &["num"]).with("columns", ints(&[1, 2])),
        Node::new("gx", "Gather", &["X1"], &["gx"]).with("columns", ints(&[1])),
        Node::new("bk", "Bucketize", &["gx"], &["bk"])
            .with("edges", tensor("edges"))
            .with("edge_offsets", tensor("edge_offsets")),
        Node::new("poly", "Polynomial", &["num"], &["poly"])
            .with("terms", tensor("terms"))
            .with("term_offsets", tensor("term_offsets")),
        Node::new("gy", "Gather", &["X1"], &["gy"]).with("columns", ints(&[2])),
        Node::new("lg", "Log1p", &["gy"], &["lg"]),
        Node::new("ex", "Expm1", &["lg"], &["ex"]),
        Node::new(
            "cat",
            "Concat",
            &["oh", "cm", "mi", "bk", "poly", "lg", "ex"],
            &["out"],
        )
        .with("axis", Attr::Int(1)),
    ];
    if let Some((node, key, value)) = broken {
        for n in &mut nodes {
            if n.name == node {
                n.attrs.insert(key.to_string(), value.clone());
            }
        }
    }
    for n in nodes {
        b.push_node(n);
    }
    b.set_outputs(vec![vi("out", DType::F64, &[-1, 14])]);
    let bytes = b.to_bytes(&WriteOptions::default()).unwrap();
    Model::from_bytes(&bytes, "pipeline.mle").map(Arc::new)
}

/// The expected output row for (city, x, y) by the op semantics.
fn want(city: Option<&str>, x: f64, y: f64) -> Vec<f64> {
    let code = city.map(|c| CITIES.iter().position(|k| *k == c));
    let mut oh = [0.0; 4];
    let cm = match code {
        Some(Some(c)) => {
            if let Some(s) = [Some(0), None, Some(1)][c] {
                oh[s] = 1.0;
            }
            [10.0 * (c + 1) as f64, -((c + 1) as f64)]
        }
        None => {
            oh[2] = 1.0;
            [f64::NAN, 7.0]
        }
        Some(None) => {
            oh[3] = 1.0;
            [99.0, 8.0]
        }
    };
    let ind = |v: f64| if v.is_nan() { 1.0 } else { 0.0 };
    let bucket = if x.is_nan() {
        f64::NAN
    } else {
        [0.0, 1.0, 1.0, 5.0].iter().filter(|&&e| e <= x).count() as f64
    };
    let mut row = oh.to_vec();
    row.extend_from_slice(&cm);
    row.extend_from_slice(&[ind(x), ind(y), bucket, 1.0, x * y, y * y * x]);
    row.push(y.ln_1p());
    row.push(y.ln_1p().exp_m1());
    row
}

fn same(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

const CITY: [Option<&str>; 6] = [
    Some("Paris"),
    Some("Rome"),
    Some("Oslo"),
    None,
    Some("Lima"),
    Some("Paris"),
];
const X: [f64; 6] = [-0.5, 0.0, 1.0, f64::NAN, 4.999, 5.0];
const Y: [f64; 6] = [2.0, f64::NAN, -0.5, 3.0, 0.0, 1e-12];

/// Utf8 offsets, bytes and validity bits of a column of at most 8 strings.
fn utf8(strs: &[Option<&str>]) -> (Vec<i32>, Vec<u8>, Vec<u8>) {
    let mut offs = vec![0i32];
    let mut bytes = Vec::new();
    let mut bits = vec![0u8; 1];
    for (i, v) in strs.iter().enumerate() {
        if let Some(s) = v {
            bytes.extend_from_slice(s.as_bytes());
            bits[0] |= 1 << i;
        }
        offs.push(bytes.len() as i32);
    }
    (offs, bytes, bits)
}

fn str_column<'a>(offsets: &'a [i32], bytes: &'a [u8], bits: &'a [u8]) -> mle_exec::StrColumn<'a> {
    mle_exec::StrColumn {
        data: mle_exec::StrData::Utf8 { offsets, bytes },
        validity: Some(mle_exec::Validity { bits, offset: 0 }),
        len: offsets.len() - 1,
    }
}

fn column(data: ColumnData<'_>) -> Column<'_> {
    Column {
        data,
        offset: 0,
        stride: 1,
    }
}

#[test]
fn encoders_after_a_coded_lookup_match_the_semantics() {
    let m = model("code", None).unwrap();
    // A string batch.
    let (offs, bytes, bits) = utf8(&CITY);
    let city = column(ColumnData::Str(str_column(&offs, &bytes, &bits)));
    let num = |d: &'static [f64]| column(ColumnData::F64(d));
    let batch = Batch::from_strided(vec![city, num(&X), num(&Y)], 6).unwrap();
    for threads in [1, 2] {
        let mut s = Session::new(m.clone());
        let out = s.predict_batch(&batch, RunOptions { threads }).unwrap();
        let got = as_f64(&out.get("out").unwrap().data);
        for r in 0..6 {
            let w = want(CITY[r], X[r], Y[r]);
            let g = &got[r * 14..(r + 1) * 14];
            assert!(
                g.iter().zip(&w).all(|(a, b)| same(*a, *b)),
                "row {r} ({:?}, {}, {}): {g:?} vs {w:?}",
                CITY[r],
                X[r],
                Y[r]
            );
        }
    }
    // Typed rows give the same values.
    let mut s = Session::new(m.clone());
    for r in 0..6 {
        let c = match CITY[r] {
            Some(c) => Value::Str(c),
            None => Value::Missing,
        };
        let out = s
            .predict_row_typed(&[c, Value::Num(X[r]), Value::Num(Y[r])])
            .unwrap();
        let got = as_f64(&out.get("out").unwrap().data);
        let w = want(CITY[r], X[r], Y[r]);
        assert!(
            got.iter().zip(&w).all(|(a, b)| same(*a, *b)),
            "row {r}: {got:?} vs {w:?}"
        );
    }
}

#[test]
fn unknown_error_names_the_column_and_the_value() {
    let m = model("error", None).unwrap();
    let mut s = Session::new(m);
    let err = s
        .predict_row_typed(&[Value::Str("Lima"), Value::Num(1.0), Value::Num(1.0)])
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("city") && msg.contains("\"Lima\""), "{msg}");
}

/// `missing = "error"` (scikit-learn's encoders under `handle_unknown="error"` when fit saw no
/// missing value): a NULL string, a NULL dictionary key or value, a NaN code and a missing
/// typed row value are each an error naming the column, batches and rows alike; without
/// one, the model gives the values of `missing = "missing"`.
#[test]
fn missing_error_names_the_column_in_every_path() {
    let strict = model(
        "error",
        Some(("lk", "missing", Attr::Str("error".to_string()))),
    )
    .unwrap();
    let lax = model("error", None).unwrap();
    let is_missing_error = |e: ExecError| {
        let msg = e.to_string();
        assert!(
            msg.contains("city") && msg.contains("missing value") && msg.contains("\"lk\""),
            "{msg}"
        );
    };
    let eq = |a: Vec<f64>, b: Vec<f64>| {
        assert!(
            a.len() == b.len() && a.iter().zip(&b).all(|(p, q)| same(*p, *q)),
            "{a:?} vs {b:?}"
        )
    };
    let num = |d: &'static [f64]| column(ColumnData::F64(d));
    const XS: [f64; 3] = [1.0, 2.0, 3.0];
    let run = |m: &Arc<Model>, city: Column<'_>| {
        let batch = Batch::from_strided(vec![city, num(&XS), num(&XS)], 3).unwrap();
        let mut s = Session::new(m.clone());
        s.predict_batch(&batch, RunOptions { threads: 1 })
            .map(|o| as_f64(&o.get("out").unwrap().data).to_vec())
    };
    // Strings: with a NULL an error, without one the lax model's values.
    let (o, b, v) = utf8(&[Some("Rome"), None, Some("Oslo")]);
    is_missing_error(run(&strict, column(ColumnData::Str(str_column(&o, &b, &v)))).unwrap_err());
    let (o, b, v) = utf8(&[Some("Rome"), Some("Paris"), Some("Oslo")]);
    let c = || column(ColumnData::Str(str_column(&o, &b, &v)));
    eq(run(&strict, c()).unwrap(), run(&lax, c()).unwrap());
    // A dictionary: a NULL key, then a key to a NULL value.
    let (o, b, v) = utf8(&[Some("Oslo"), None, Some("Rome")]);
    let values = str_column(&o, &b, &v);
    let kbits = [0b101u8];
    let dict = |keys: &'static [i32], validity| {
        column(ColumnData::Dict(mle_exec::DictColumn {
            keys: mle_exec::DictKeys::I32(keys),
            validity,
            values,
        }))
    };
    let null_key = Some(mle_exec::Validity {
        bits: &kbits,
        offset: 0,
    });
    is_missing_error(run(&strict, dict(&[2, 0, 2], null_key)).unwrap_err());
    is_missing_error(run(&strict, dict(&[2, 1, 0], None)).unwrap_err());
    eq(
        run(&strict, dict(&[2, 0, 2], None)).unwrap(),
        run(&lax, dict(&[2, 0, 2], None)).unwrap(),
    );
    // Codes given as numbers: a NaN is an error, codes pass unchanged.
    const NAN_CODES: [f64; 3] = [0.0, f64::NAN, 2.0];
    const CODES: [f64; 3] = [0.0, 1.0, 2.5];
    is_missing_error(run(&strict, num(&NAN_CODES)).unwrap_err());
    eq(
        run(&strict, num(&CODES)).unwrap(),
        run(&lax, num(&CODES)).unwrap(),
    );
    // Rows.
    let mut s = Session::new(strict.clone());
    is_missing_error(
        s.predict_row_typed(&[Value::Missing, Value::Num(1.0), Value::Num(1.0)])
            .unwrap_err(),
    );
    is_missing_error(s.predict_row(&[f64::NAN, 1.0, 1.0]).unwrap_err());
    let row = s
        .predict_row_typed(&[Value::Str("Rome"), Value::Num(1.0), Value::Num(2.0)])
        .map(|o| as_f64(&o.get("out").unwrap().data).to_vec())
        .unwrap();
    let mut l = Session::new(lax);
    let want = l
        .predict_row_typed(&[Value::Str("Rome"), Value::Num(1.0), Value::Num(2.0)])
        .map(|o| as_f64(&o.get("out").unwrap().data).to_vec())
        .unwrap();
    eq(row, want);
    // A rule that does not exist is refused at compile time.
    let err = model(
        "error",
        Some(("lk", "missing", Attr::Str("zero".to_string()))),
    )
    .err();
    let msg = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.contains("lk") && msg.contains("missing"), "{msg}");
}

#[test]
fn malformed_pipeline_ops_are_refused_at_compile_time() {
    let cases: Vec<(&str, &str, Attr, &str)> = vec![
        ("num", "columns", ints(&[1, 3]), "column 3"),
        ("mi", "columns", ints(&[-1]), "column -1"),
        ("oh", "feature", Attr::Int(3), "column 3"),
        ("oh", "n_columns", Attr::Int(2), "slot"),
        ("oh", "missing", Attr::Int(4), "slot 4"),
        ("oh", "slots", tensor("table"), "i32"),
        ("cm", "table", tensor("edges"), "shape"),
        ("cm", "missing", tensor("edges"), "expected [2]"),
        ("bk", "edge_offsets", tensor("term_offsets"), "offsets"),
        ("bk", "edges", tensor("edges.unsorted"), "sorted"),
        ("poly", "terms", tensor("terms.bad"), "column 7"),
        ("poly", "term_offsets", tensor("edge_offsets"), "offsets"),
    ];
    for (node, key, value, needle) in cases {
        let err = model("code", Some((node, key, value))).err();
        let msg = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.contains(node) && msg.contains(needle),
            "{node}.{key}: {msg:?} should name the node and {needle:?}"
        );
    }
}
