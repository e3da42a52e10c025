//! The single-row path allocates nothing once the session is warm, for a model mixing every
//! kind of step: tree ensembles (on the input and on an intermediate value, multi-target),
//! classical ops, casts, fused dense layers, softmax, argmax. Proved with a counting global
//! allocator (`mle_testkit::CountingAlloc`, counting only on the test's own thread).

mod exec_util;

use std::sync::Arc;

use exec_util::*;
use mle_exec::{Batch, Model, OutputData, RunOptions, Session};
use mle_format::tree::{flags, Comparison, Precision, TreeEnsembleSpec};
use mle_format::{Attr, DType, ModelBuilder, Node, WriteOptions};
use mle_testkit::{allocations_during, CountingAlloc};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Allocation calls `f` makes on this thread.
fn count<R>(f: impl FnOnce() -> R) -> (R, usize) {
    allocations_during(f)
}

/// Writes the one-split tree `x[feature] <= threshold → leaves[0] | leaves[1]` (vector
/// leaves, a missing value goes left) as the `TreeEnsemble` node `name`.
fn stump(
    b: &mut ModelBuilder,
    name: &str,
    input: &str,
    feature: i32,
    threshold: f64,
    leaves: [&[f64]; 2],
) {
    let nt = leaves[0].len();
    let mut s = TreeEnsembleSpec::new(nt, nt, Comparison::Le, Precision::F64);
    let root = s.split(feature, threshold, 1, 2, flags::MISSING_LEFT);
    s.leaf(leaves[0]);
    s.leaf(leaves[1]);
    s.push_tree(root, 0, 1.0);
    s.write(b, name, input, name).expect("a valid stump");
}

fn model() -> Model {
    let w1: Vec<f32> = (0..12).map(|i| (i as f32 - 5.5) / 4.0).collect(); // [4, 3]
    let w2: Vec<f32> = (0..8).map(|i| (i as f32 - 3.5) / 2.0).collect(); // [2, 4]
    let tensors: Vec<(&str, T)> = vec![
        ("fill", T::F64(vec![3], vec![0.0, 0.0, 0.0])),
        ("w1", T::F32(vec![4, 3], w1)),
        ("w2", T::F32(vec![2, 4], w2)),
    ];
    let mut b = builder(
        3,
        DType::F64,
        vec![],
        tensors,
        vec![
            vi("ta", DType::F64, &[-1, 1]),
            vi("tb", DType::F64, &[-1, 2]),
            vi("p", DType::F32, &[-1, 2]),
            vi("label", DType::I64, &[-1]),
        ],
    );
    stump(&mut b, "ta", "X", 0, 0.0, [&[1.0], &[2.0]]);
    b.push_node(
        Node::new("imp", "Imputer", &["X"], &["xi"]).with("values", Attr::Tensor("fill".into())),
    );
    stump(&mut b, "tb", "xi", 1, 0.5, [&[1.0, -1.0], &[3.0, -3.0]]);
    for node in [
        Node::new("cast", "Cast", &["xi"], &["x32"]).with("to", Attr::Str("f32".into())),
        Node::new("g1", "Gemm", &["x32"], &["h0"]).with("weight", Attr::Tensor("w1".into())),
        Node::new("relu", "Relu", &["h0"], &["h"]),
        Node::new("g2", "Gemm", &["h"], &["o"]).with("weight", Attr::Tensor("w2".into())),
        Node::new("sm", "Softmax", &["o"], &["p"]),
        Node::new("am", "ArgMax", &["tb"], &["label"]),
    ] {
        b.push_node(node);
    }
    let bytes = b.to_bytes(&WriteOptions::default()).unwrap();
    Model::from_bytes(&bytes, "test.mle").unwrap()
}

/// The model computed by hand.
fn reference(x: &[f64]) -> Vec<Vec<f64>> {
    let ta = if x[0].is_nan() || x[0] <= 0.0 {
        1.0
    } else {
        2.0
    };
    let xi: Vec<f64> = x
        .iter()
        .map(|v| if v.is_nan() { 0.0 } else { *v })
        .collect();
    let tb = if xi[1] <= 0.5 {
        vec![1.0, -1.0]
    } else {
        vec![3.0, -3.0]
    };
    let h: Vec<f64> = (0..4)
        .map(|i| {
            (0..3)
                .map(|j| xi[j] as f32 as f64 * ((i * 3 + j) as f64 - 5.5) / 4.0)
                .sum::<f64>()
                .max(0.0)
        })
        .collect();
    let o: Vec<f64> = (0..2)
        .map(|i| {
            (0..4)
                .map(|j| h[j] * ((i * 4 + j) as f64 - 3.5) / 2.0)
                .sum()
        })
        .collect();
    let m = o[0].max(o[1]);
    let s = (o[0] - m).exp() + (o[1] - m).exp();
    let p = vec![(o[0] - m).exp() / s, (o[1] - m).exp() / s];
    let label = if tb[1] > tb[0] { 1.0 } else { 0.0 };
    vec![vec![ta], tb, p, vec![label]]
}

#[test]
fn predict_row_allocates_nothing_after_warm_up() {
    let model = Arc::new(model());
    let mut rng = Rng(99);
    let rows: Vec<Vec<f64>> = (0..64).map(|_| data(&mut rng, 1, 3, true)).collect();
    let rows32: Vec<Vec<f32>> = rows
        .iter()
        .map(|r| r.iter().map(|&v| v as f32).collect())
        .collect();
    let mut s = Session::new(model.clone());
    s.predict_row(&rows[0]).unwrap();
    s.predict_row_f32(&rows32[0]).unwrap();
    let (sum, allocs) = count(|| {
        let mut sum = 0.0;
        for (r, r32) in rows.iter().zip(&rows32) {
            let out = s.predict_row(r).unwrap();
            if let OutputData::F64(v) = &out.outputs[0].data {
                sum += v[0];
            }
            let out = s.predict_row_f32(r32).unwrap();
            if let OutputData::F64(v) = &out.outputs[1].data {
                sum += v[0];
            }
        }
        sum
    });
    assert!(sum > 0.0);
    assert_eq!(
        allocs, 0,
        "{allocs} heap allocations in 128 warm predict_row calls"
    );
    // A batch in between does not break it (buffers are only ever grown).
    let x: Vec<f64> = rows.concat();
    let batch = Batch::from_row_major_f64(&x, 64, 3).unwrap();
    // The counter does count: the batch path builds per-call job lists.
    let (_, batch_allocs) = count(|| s.predict_batch(&batch, RunOptions::default()).map(|_| ()));
    assert!(batch_allocs > 0, "the counting allocator saw nothing");
    let (_, allocs) = count(|| s.predict_row(&rows[1]).map(|_| ()));
    assert_eq!(allocs, 0);
}

#[test]
fn the_mixed_model_matches_its_reference_every_way() {
    let model = Arc::new(model());
    let mut rng = Rng(7);
    for n in BATCHES {
        let x = data(&mut rng, n, 3, true);
        check_model(&model, &x, n, &reference, 2e-6, true);
    }
}
