//! Steps whose inputs share memory: one value read twice by one step (`Add(x, x)`, `Mul(x, x)`,
//! `Concat(x, x)`), and tree ensembles fed from the arena (an input that is not the graph
//! input, or an alias of it) rather than from the batch. Tests build in debug, so every step
//! also runs the executor's disjointness assertion (output and scratch never overlap an
//! input); the values are checked exactly against plain formulas.

use std::sync::Arc;

use mle_exec::{Batch, ColumnData, Model, OutputData, RunOptions, Session};
use mle_format::tree::{flags, Comparison, Precision, TreeEnsembleSpec};
use mle_format::{Attr, DType, Metadata, ModelBuilder, Node, Task, ValueInfo, WriteOptions};

/// Rows of the batch runs: several chunks (496 rows each at most) and a partial last one.
const ROWS: usize = 1100;

fn builder(f: usize, dtype: DType, outputs: &[(&str, DType)]) -> ModelBuilder {
    let names = (0..f).map(|j| format!("f{j}")).collect();
    let mut b = ModelBuilder::new(Metadata::new(
        "test",
        "aliasing",
        Task::Regression,
        names,
        dtype,
        outputs,
    ));
    b.set_inputs(vec![ValueInfo {
        name: "X".into(),
        dtype,
        shape: vec![-1, f as i64],
    }]);
    b
}

fn out(name: &str, dtype: DType, width: i64) -> ValueInfo {
    let shape = if width == 0 {
        vec![-1]
    } else {
        vec![-1, width]
    };
    ValueInfo {
        name: name.into(),
        dtype,
        shape,
    }
}

fn load(b: &ModelBuilder) -> Arc<Model> {
    let bytes = b.to_bytes(&WriteOptions::default()).unwrap();
    Arc::new(Model::from_bytes(&bytes, "aliasing.mle").unwrap())
}

/// Deterministic values with NaNs, zeros and negatives, row-major `[n, f]`.
fn data(n: usize, f: usize) -> Vec<f64> {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    (0..n * f)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            match i % 11 {
                3 => f64::NAN,
                7 => 0.0,
                _ => ((s >> 11) as f64 / (1u64 << 53) as f64) * 8.0 - 4.0,
            }
        })
        .collect()
}

fn same(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

fn f64s(o: &OutputData) -> Vec<f64> {
    match o {
        OutputData::F32(v) => v.iter().map(|&x| x as f64).collect(),
        OutputData::F64(v) => v.clone(),
        OutputData::I64(v) => v.iter().map(|&x| x as f64).collect(),
    }
}

/// Runs `model` on `x` (`[n, f]` row-major) by columns, row-major, one thread and two, and row
/// by row; every output must equal `want(name, row)` (row-major values of that row).
fn check(
    model: &Arc<Model>,
    x: &[f64],
    n: usize,
    f: usize,
    want: &dyn Fn(&str, &[f64]) -> Vec<f64>,
) {
    let cols: Vec<Vec<f64>> = (0..f)
        .map(|j| (0..n).map(|r| x[r * f + j]).collect())
        .collect();
    let cols32: Vec<Vec<f32>> = cols
        .iter()
        .map(|c| c.iter().map(|&v| v as f32).collect())
        .collect();
    let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let f32_exact = x.iter().all(|&v| v.is_nan() || v as f32 as f64 == v);
    let mut batches = vec![
        Batch::from_columns(cols.iter().map(|c| ColumnData::F64(c)).collect()).unwrap(),
        Batch::from_row_major_f64(x, n, f).unwrap(),
    ];
    if f32_exact {
        batches.push(
            Batch::from_columns(cols32.iter().map(|c| ColumnData::F32(c)).collect()).unwrap(),
        );
        batches.push(Batch::from_row_major_f32(&x32, n, f).unwrap());
    }
    let mut s = Session::new(model.clone());
    for (bi, batch) in batches.iter().enumerate() {
        for threads in [1, 2] {
            let outs = s.predict_batch(batch, RunOptions { threads }).unwrap();
            for o in &outs.outputs {
                let got = f64s(&o.data);
                let w = o.info.width.max(1);
                assert_eq!(got.len(), n * w, "{}", o.info.name);
                for r in 0..n {
                    let exp = want(&o.info.name, &x[r * f..(r + 1) * f]);
                    for (k, (&g, &e)) in got[r * w..(r + 1) * w].iter().zip(&exp).enumerate() {
                        assert!(
                            same(g, e),
                            "{} batch {bi} threads {threads} row {r} col {k}: {g} != {e}",
                            o.info.name
                        );
                    }
                }
            }
        }
    }
    for r in 0..n.min(40) {
        let row = &x[r * f..(r + 1) * f];
        let outs = s.predict_row(row).unwrap().clone();
        let outs32 = f32_exact.then(|| {
            let row32: Vec<f32> = row.iter().map(|&v| v as f32).collect();
            s.predict_row_f32(&row32).unwrap().clone()
        });
        for outs in std::iter::once(&outs).chain(outs32.as_ref()) {
            for o in &outs.outputs {
                let exp = want(&o.info.name, row);
                let got = f64s(&o.data);
                assert_eq!(got.len(), exp.len(), "{}", o.info.name);
                for (k, (&g, &e)) in got.iter().zip(&exp).enumerate() {
                    assert!(same(g, e), "{} row {r} col {k}: {g} != {e}", o.info.name);
                }
            }
        }
    }
}

fn binary_model(dtype: DType, f: usize) -> Arc<Model> {
    let w = f as i64;
    let mut b = builder(
        f,
        dtype,
        &[
            ("add", dtype),
            ("mul", dtype),
            ("sub", dtype),
            ("div", dtype),
            ("cat", dtype),
            ("hh", dtype),
        ],
    );
    for (op, name) in [
        ("Add", "add"),
        ("Mul", "mul"),
        ("Sub", "sub"),
        ("Div", "div"),
    ] {
        b.push_node(Node::new(name, op, &["X", "X"], &[name]));
    }
    b.push_node(Node::new("cat", "Concat", &["X", "X"], &["cat"]).with("axis", Attr::Int(1)));
    // An intermediate value read twice (its buffer is planned, not the input's).
    b.push_node(Node::new("h", "Relu", &["X"], &["h"]));
    b.push_node(Node::new("hh", "Mul", &["h", "h"], &["hh"]));
    b.set_outputs(vec![
        out("add", dtype, w),
        out("mul", dtype, w),
        out("sub", dtype, w),
        out("div", dtype, w),
        out("cat", dtype, 2 * w),
        out("hh", dtype, w),
    ]);
    load(&b)
}

/// `op(x, x)` elementwise, rounded as the model computes (f32 or f64).
#[allow(clippy::eq_op)] // `x - x` and `x / x` on purpose: the step under test reads x twice.
fn binary_want(dtype: DType) -> impl Fn(&str, &[f64]) -> Vec<f64> {
    move |name, row| {
        let r = |v: f64| {
            if dtype == DType::F32 {
                v as f32 as f64
            } else {
                v
            }
        };
        let x: Vec<f64> = row.iter().map(|&v| r(v)).collect();
        match name {
            "add" => x.iter().map(|&v| r(v + v)).collect(),
            "mul" => x.iter().map(|&v| r(v * v)).collect(),
            "sub" => x.iter().map(|&v| r(v - v)).collect(),
            "div" => x.iter().map(|&v| r(v / v)).collect(),
            "cat" => x.iter().chain(&x).copied().collect(),
            "hh" => x
                .iter()
                .map(|&v| {
                    let h = if v.is_nan() { v } else { v.max(0.0) };
                    r(h * h)
                })
                .collect(),
            other => panic!("unexpected output {other}"),
        }
    }
}

#[test]
fn one_value_read_twice_by_one_step_f64() {
    let (n, f) = (ROWS, 3);
    let x = data(n, f);
    check(
        &binary_model(DType::F64, f),
        &x,
        n,
        f,
        &binary_want(DType::F64),
    );
}

#[test]
fn one_value_read_twice_by_one_step_f32() {
    let (n, f) = (ROWS, 3);
    let x: Vec<f64> = data(n, f).iter().map(|&v| v as f32 as f64).collect();
    check(
        &binary_model(DType::F32, f),
        &x,
        n,
        f,
        &binary_want(DType::F32),
    );
}

/// Two trees, targets 0 and 1: tree 0 splits on feature 0 at 1.0, tree 1 on feature 1 at
/// -0.5 (NaN goes left in tree 1, right in tree 0); leaves 10/20 and 1/2.
fn two_trees() -> TreeEnsembleSpec {
    let mut s = TreeEnsembleSpec::new(2, 1, Comparison::Le, Precision::F64);
    let root = s.split(0, 1.0, 1, 2, 0);
    s.leaf(&[10.0]);
    s.leaf(&[20.0]);
    s.push_tree(root, 0, 1.0);
    let root = s.split(1, -0.5, 4, 5, flags::MISSING_LEFT);
    s.leaf(&[1.0]);
    s.leaf(&[2.0]);
    s.push_tree(root, 1, 1.0);
    s
}

fn two_trees_want(x0: f64, x1: f64) -> Vec<f64> {
    let t0 = if x0 <= 1.0 { 10.0 } else { 20.0 };
    let t1 = if x1.is_nan() || x1 <= -0.5 { 1.0 } else { 2.0 };
    vec![t0, t1]
}

#[test]
fn tree_ensembles_fed_from_the_arena() {
    let (n, f) = (ROWS, 2);
    let x = data(n, f);
    let mut b = builder(
        f,
        DType::F64,
        &[
            ("direct", DType::F64),
            ("alias", DType::F64),
            ("scaled", DType::F64),
            ("twice", DType::F64),
        ],
    );
    let spec = two_trees();
    // From the batch itself.
    spec.write(&mut b, "t_direct", "X", "direct").unwrap();
    // From an alias of the graph input: read from the arena, the input's own buffer.
    b.push_node(Node::new("id", "Identity", &["X"], &["xi"]));
    spec.write(&mut b, "t_alias", "xi", "alias").unwrap();
    // From a computed value: y = (x - 0.5) * 2, read from its arena buffer.
    b.add_tensor("off", &[2], &[0.5f64, 0.5]).unwrap();
    b.add_tensor("scale", &[2], &[2.0f64, 2.0]).unwrap();
    b.push_node(
        Node::new("sc", "Scaler", &["X"], &["xs"])
            .with("offset", Attr::Tensor("off".into()))
            .with("scale", Attr::Tensor("scale".into())),
    );
    spec.write(&mut b, "t_scaled", "xs", "scaled").unwrap();
    // A tree output added to itself.
    b.push_node(Node::new("tw", "Add", &["scaled", "scaled"], &["twice"]));
    b.set_outputs(vec![
        out("direct", DType::F64, 2),
        out("alias", DType::F64, 2),
        out("scaled", DType::F64, 2),
        out("twice", DType::F64, 2),
    ]);
    let model = load(&b);
    let want = |name: &str, row: &[f64]| -> Vec<f64> {
        let (x0, x1) = (row[0], row[1]);
        match name {
            "direct" | "alias" => two_trees_want(x0, x1),
            "scaled" => two_trees_want((x0 - 0.5) * 2.0, (x1 - 0.5) * 2.0),
            "twice" => two_trees_want((x0 - 0.5) * 2.0, (x1 - 0.5) * 2.0)
                .iter()
                .map(|v| v + v)
                .collect(),
            other => panic!("unexpected output {other}"),
        }
    };
    check(&model, &x, n, f, &want);
}
