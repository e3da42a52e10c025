//! The input stage allocates nothing once warm: a typed row (strings, numbers, booleans,
//! missing values) allocates nothing per call, and a batch with string and dictionary columns
//! allocates exactly what the same batch of numbers allocates for a model without Lookups
//! (the codes, the dictionary map and the view of the columns are reused). Proved with a
//! counting global allocator (`mle_testkit::CountingAlloc`, counting only this thread).

mod exec_util;

use std::sync::Arc;

use exec_util::*;
use mle_exec::{
    Batch, ColumnData, DictColumn, DictKeys, Model, RunOptions, Session, StrColumn, StrData, Value,
};
use mle_format::tree::{Comparison, Precision, TreeEnsembleSpec};
use mle_format::{Attr, DType, ModelBuilder, Node, WriteOptions};
use mle_testkit::{allocations_during, CountingAlloc};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Features `city` (strings), `x`, `store` (integers); with `lookups` false, the same trees
/// over plain numbers.
fn model(lookups: bool) -> Arc<Model> {
    let meta = mle_format::Metadata::new(
        "test",
        "lookup",
        mle_format::Task::Regression,
        vec!["city".into(), "x".into(), "store".into()],
        DType::F64,
        &[("y", DType::F64)],
    );
    let mut b = ModelBuilder::new(meta);
    b.add_vocabulary(
        "city",
        &["Paris", "Zürich", "a category longer than twelve bytes"],
    )
    .unwrap();
    b.add_integer_vocabulary("store", &[10, 20, 30]).unwrap();
    b.set_inputs(vec![vi("X", DType::F64, &[-1, 3])]);
    let mut tail = "X";
    if lookups {
        b.push_node(
            Node::new("l0", "Lookup", &["X"], &["X1"])
                .with("feature", Attr::Int(0))
                .with("bytes", tensor("city.bytes"))
                .with("offsets", tensor("city.offsets")),
        );
        b.push_node(
            Node::new("l1", "Lookup", &["X1"], &["X2"])
                .with("feature", Attr::Int(2))
                .with("values", tensor("store")),
        );
        tail = "X2";
    }
    let mut s = TreeEnsembleSpec::new(1, 1, Comparison::Le, Precision::F64);
    let r = s.categorical_split(0, &[0b10], 1, 2, 0);
    s.leaf(&[1.0]);
    let r2 = s.categorical_split(2, &[0b100], 3, 4, 0);
    s.leaf(&[2.0]);
    s.leaf(&[3.0]);
    s.push_tree(r, 0, 1.0);
    let _ = r2; // the right subtree of tree 0
    s.write(&mut b, "t", tail, "y").unwrap();
    b.set_outputs(vec![vi("y", DType::F64, &[-1, 1])]);
    let bytes = b.to_bytes(&WriteOptions::default()).unwrap();
    Arc::new(Model::from_bytes(&bytes, "m.mle").unwrap())
}

#[test]
fn a_typed_row_allocates_nothing_once_warm() {
    let m = model(true);
    let mut s = Session::new(m);
    let rows: [[Value<'_>; 3]; 4] = [
        [Value::Str("Zürich"), Value::Num(1.0), Value::Num(30.0)],
        [
            Value::Str("a category longer than twelve bytes"),
            Value::Bool(true),
            Value::Num(2.5),
        ],
        [Value::Missing, Value::Missing, Value::Missing],
        [
            Value::Str("unknown city"),
            Value::Num(f64::NAN),
            Value::Bool(false),
        ],
    ];
    for r in &rows {
        s.predict_row_typed(r).unwrap();
    }
    s.predict_row(&[1.0, 0.0, 20.0]).unwrap();
    s.predict_row_f32(&[1.0, 0.0, 20.0]).unwrap();
    for r in &rows {
        let (y, n) = allocations_during(|| s.predict_row_typed(r).map(|o| o.outputs.len()));
        assert_eq!(n, 0, "predict_row_typed({r:?}) allocated {n} times");
        y.unwrap();
    }
    let (_, n) = allocations_during(|| s.predict_row(&[1.0, 0.0, 20.0]).is_ok());
    assert_eq!(n, 0, "predict_row allocated");
    let (_, n) = allocations_during(|| s.predict_row_f32(&[1.0, 0.0, 20.0]).is_ok());
    assert_eq!(n, 0, "predict_row_f32 allocated");
}

#[test]
fn the_lookup_stage_of_a_batch_allocates_nothing_once_warm() {
    let n = 1500;
    let cities = [
        "Paris",
        "Zürich",
        "a category longer than twelve bytes",
        "Rome",
    ];
    let mut offs = vec![0i32];
    let mut bytes = Vec::new();
    for r in 0..n {
        bytes.extend_from_slice(cities[r % 4].as_bytes());
        offs.push(bytes.len() as i32);
    }
    let s = StrColumn {
        data: StrData::Utf8 {
            offsets: &offs,
            bytes: &bytes,
        },
        validity: None,
        len: n,
    };
    let (dbytes, doffs) = mle_format::vocab::encode(&cities).unwrap();
    let doffs: Vec<i32> = doffs.iter().map(|&o| o as i32).collect();
    let keys: Vec<u8> = (0..n).map(|r| (r % 4) as u8).collect();
    let d = DictColumn {
        keys: DictKeys::U8(&keys),
        validity: None,
        values: StrColumn {
            data: StrData::Utf8 {
                offsets: &doffs,
                bytes: &dbytes,
            },
            validity: None,
            len: 4,
        },
    };
    let x: Vec<f64> = (0..n).map(|r| r as f64).collect();
    let store: Vec<f64> = (0..n).map(|r| [10.0, 20.0, 30.0, 40.0][r % 4]).collect();
    let codes: Vec<f64> = (0..n).map(|r| [0.0, 1.0, 2.0, f64::NAN][r % 4]).collect();
    let store_codes: Vec<f64> = (0..n).map(|r| [0.0, 1.0, 2.0, f64::NAN][r % 4]).collect();

    let typed = model(true);
    let plain = model(false);
    let b_str = Batch::from_columns(vec![
        ColumnData::Str(s),
        ColumnData::F64(&x),
        ColumnData::F64(&store),
    ])
    .unwrap();
    let b_dict = Batch::from_columns(vec![
        ColumnData::Dict(d),
        ColumnData::F64(&x),
        ColumnData::F64(&store),
    ])
    .unwrap();
    let b_num = Batch::from_columns(vec![
        ColumnData::F64(&codes),
        ColumnData::F64(&x),
        ColumnData::F64(&store_codes),
    ])
    .unwrap();
    let mut st = Session::new(typed);
    let mut sp = Session::new(plain);
    let opts = RunOptions::default();
    let want = sp.predict_batch(&b_num, opts).unwrap().clone();
    for b in [&b_str, &b_dict, &b_str] {
        assert_eq!(st.predict_batch(b, opts).unwrap(), &want);
    }
    let (_, base) = allocations_during(|| sp.predict_batch(&b_num, opts).is_ok());
    for (what, b) in [("strings", &b_str), ("dictionary", &b_dict)] {
        let (ok, got) = allocations_during(|| st.predict_batch(b, opts).is_ok());
        assert!(ok);
        assert_eq!(
            got, base,
            "{what}: {got} allocations, the same batch of numbers without Lookups makes {base}"
        );
    }
}
