//! Dense and linear benchmarks of the executor (criterion).
//!
//! - `mlp`: a 28→256→256→2 MLP (Gemm+ReLU, Gemm+ReLU, Gemm, Softmax) at batch 1 (the
//!   single-row path, f32 and f64 rows) and batch 10,000 (columnar f32 input, 1 and 2 threads),
//!   plus row-major f32 input (numpy's layout) and a naive row-at-a-time loop over the same
//!   weights as a baseline;
//! - `linear`: a logistic regression on 28 features (Scaler → LinearModel → Sigmoid →
//!   BinaryToProba, Threshold) at batch 1 and 10,000 (f64 columns, and row-major f32).
//!
//! Run: `nice cargo bench -p mle-exec --bench dense`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mle_exec::{Batch, ColumnData, Model, RunOptions, Session};
use mle_format::*;
use mle_testkit::Rng;

const F: usize = 28;
const H: usize = 256;

/// `n` values uniform in `[-scale, scale)` (f32).
fn scaled(r: &mut Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| r.signed_f32() * scale).collect()
}

fn meta(outputs: &[ValueInfo], dtype: DType) -> Metadata {
    let outs: Vec<(&str, DType)> = outputs.iter().map(|o| (o.name.as_str(), o.dtype)).collect();
    Metadata::new(
        "bench",
        "bench",
        Task::Binary,
        (0..F).map(|i| format!("f{i}")).collect(),
        dtype,
        &outs,
    )
}

fn vi(name: &str, dtype: DType, shape: &[i64]) -> ValueInfo {
    ValueInfo {
        name: name.into(),
        dtype,
        shape: shape.to_vec(),
    }
}

struct Mlp {
    w1: Vec<f32>,
    b1: Vec<f32>,
    w2: Vec<f32>,
    b2: Vec<f32>,
    w3: Vec<f32>,
    b3: Vec<f32>,
}

fn mlp_weights() -> Mlp {
    let mut r = Rng(42);
    Mlp {
        w1: scaled(&mut r, H * F, 0.2),
        b1: scaled(&mut r, H, 0.1),
        w2: scaled(&mut r, H * H, 0.06),
        b2: scaled(&mut r, H, 0.1),
        w3: scaled(&mut r, 2 * H, 0.06),
        b3: scaled(&mut r, 2, 0.1),
    }
}

fn mlp_model(m: &Mlp) -> Arc<Model> {
    let outs = vec![vi("probabilities", DType::F32, &[-1, 2])];
    let mut b = ModelBuilder::new(meta(&outs, DType::F32));
    let t = |s: &str| Attr::Tensor(s.into());
    b.add_weight("w1", &[H as u64, F as u64], &m.w1).unwrap();
    b.add_weight("b1", &[H as u64], &m.b1).unwrap();
    b.add_weight("w2", &[H as u64, H as u64], &m.w2).unwrap();
    b.add_weight("b2", &[H as u64], &m.b2).unwrap();
    b.add_weight("w3", &[2, H as u64], &m.w3).unwrap();
    b.add_weight("b3", &[2], &m.b3).unwrap();
    b.set_inputs(vec![vi("X", DType::F32, &[-1, F as i64])]);
    b.push_node(
        Node::new("l1", "Gemm", &["X"], &["a1"])
            .with("weight", t("w1"))
            .with("bias", t("b1")),
    );
    b.push_node(Node::new("r1", "Relu", &["a1"], &["h1"]));
    b.push_node(
        Node::new("l2", "Gemm", &["h1"], &["a2"])
            .with("weight", t("w2"))
            .with("bias", t("b2")),
    );
    b.push_node(Node::new("r2", "Relu", &["a2"], &["h2"]));
    b.push_node(
        Node::new("l3", "Gemm", &["h2"], &["o"])
            .with("weight", t("w3"))
            .with("bias", t("b3")),
    );
    b.push_node(Node::new("sm", "Softmax", &["o"], &["probabilities"]));
    b.set_outputs(outs);
    let bytes = b.to_bytes(&WriteOptions::default()).unwrap();
    Arc::new(Model::from_bytes(&bytes, "mlp.mle").unwrap())
}

/// The same MLP, one row at a time with plain loops (the baseline).
#[allow(clippy::needless_range_loop)]
fn naive_mlp(m: &Mlp, x: &[f32], h1: &mut [f32], h2: &mut [f32], out: &mut [f32; 2]) {
    for i in 0..H {
        let mut s = m.b1[i];
        for j in 0..F {
            s += m.w1[i * F + j] * x[j];
        }
        h1[i] = s.max(0.0);
    }
    for i in 0..H {
        let mut s = m.b2[i];
        for j in 0..H {
            s += m.w2[i * H + j] * h1[j];
        }
        h2[i] = s.max(0.0);
    }
    let mut o = [0f32; 2];
    for (i, oi) in o.iter_mut().enumerate() {
        let mut s = m.b3[i];
        for j in 0..H {
            s += m.w3[i * H + j] * h2[j];
        }
        *oi = s;
    }
    let mx = o[0].max(o[1]);
    let e = [(o[0] - mx).exp(), (o[1] - mx).exp()];
    out[0] = e[0] / (e[0] + e[1]);
    out[1] = e[1] / (e[0] + e[1]);
}

fn linear_model() -> Arc<Model> {
    let outs = vec![
        vi("label", DType::I64, &[-1]),
        vi("probabilities", DType::F64, &[-1, 2]),
    ];
    let mut b = ModelBuilder::new(meta(&outs, DType::F64));
    let mut r = Rng(7);
    let f64s = |v: Vec<f32>| v.into_iter().map(|x| x as f64).collect::<Vec<f64>>();
    b.add_tensor("offset", &[F as u64], &f64s(scaled(&mut r, F, 1.0)))
        .unwrap();
    b.add_tensor("scale", &[F as u64], &f64s(scaled(&mut r, F, 1.0)))
        .unwrap();
    b.add_tensor("coef", &[1, F as u64], &f64s(scaled(&mut r, F, 1.0)))
        .unwrap();
    b.add_tensor("intercept", &[1], &[0.1f64]).unwrap();
    let t = |s: &str| Attr::Tensor(s.into());
    b.set_inputs(vec![vi("X", DType::F64, &[-1, F as i64])]);
    b.push_node(
        Node::new("sc", "Scaler", &["X"], &["xs"])
            .with("offset", t("offset"))
            .with("scale", t("scale")),
    );
    b.push_node(
        Node::new("lin", "LinearModel", &["xs"], &["m"])
            .with("coef", t("coef"))
            .with("intercept", t("intercept")),
    );
    b.push_node(Node::new("sig", "Sigmoid", &["m"], &["p"]));
    b.push_node(Node::new(
        "b2p",
        "BinaryToProba",
        &["p"],
        &["probabilities"],
    ));
    b.push_node(
        Node::new("th", "Threshold", &["p"], &["label"]).with("threshold", Attr::Float(0.5)),
    );
    b.set_outputs(outs);
    let bytes = b.to_bytes(&WriteOptions::default()).unwrap();
    Arc::new(Model::from_bytes(&bytes, "linear.mle").unwrap())
}

fn columns(n: usize) -> (Vec<Vec<f32>>, Vec<Vec<f64>>) {
    let mut r = Rng(3);
    let c32: Vec<Vec<f32>> = (0..F).map(|_| scaled(&mut r, n, 2.0)).collect();
    let c64 = c32
        .iter()
        .map(|c| c.iter().map(|&v| v as f64).collect())
        .collect();
    (c32, c64)
}

fn bench_mlp(c: &mut Criterion) {
    let w = mlp_weights();
    let model = mlp_model(&w);
    let mut g = c.benchmark_group("mlp_28_256_256_2");
    let (c32, c64) = columns(10_000);
    let row32: Vec<f32> = c32.iter().map(|c| c[0]).collect();
    let row64: Vec<f64> = c64.iter().map(|c| c[0]).collect();
    let mut s = Session::new(model.clone());
    g.throughput(Throughput::Elements(1));
    g.bench_function("row_f32", |b| {
        b.iter(|| black_box(s.predict_row_f32(black_box(&row32)).unwrap().n_rows))
    });
    g.bench_function("row_f64", |b| {
        b.iter(|| black_box(s.predict_row(black_box(&row64)).unwrap().n_rows))
    });
    let (mut h1, mut h2, mut out) = (vec![0f32; H], vec![0f32; H], [0f32; 2]);
    g.bench_function("naive_row", |b| {
        b.iter(|| {
            naive_mlp(&w, black_box(&row32), &mut h1, &mut h2, &mut out);
            black_box(out[0])
        })
    });
    let n = 10_000;
    let batch = Batch::from_columns(c32.iter().map(|c| ColumnData::F32(c)).collect()).unwrap();
    g.throughput(Throughput::Elements(n as u64));
    for threads in [1, 2] {
        g.bench_with_input(
            BenchmarkId::new("batch_10000", format!("{threads}t")),
            &threads,
            |b, &t| {
                b.iter(|| {
                    black_box(
                        s.predict_batch(&batch, RunOptions { threads: t })
                            .unwrap()
                            .n_rows,
                    )
                })
            },
        );
    }
    let rows: Vec<f32> = (0..n).flat_map(|r| c32.iter().map(move |c| c[r])).collect();
    // Row-major f32, as numpy hands it over (C-contiguous [n, 28]).
    let rm = Batch::from_row_major_f32(&rows, n, F).unwrap();
    g.bench_function("batch_10000_row_major/1t", |b| {
        b.iter(|| black_box(s.predict_batch(&rm, RunOptions::default()).unwrap().n_rows))
    });
    g.bench_function("naive_rows_10000", |b| {
        b.iter(|| {
            let mut acc = 0f32;
            for r in rows.chunks_exact(F) {
                naive_mlp(&w, r, &mut h1, &mut h2, &mut out);
                acc += out[0];
            }
            black_box(acc)
        })
    });
    g.finish();
}

fn bench_linear(c: &mut Criterion) {
    let model = linear_model();
    let mut g = c.benchmark_group("logistic_regression_28");
    let (_, c64) = columns(10_000);
    let row: Vec<f64> = c64.iter().map(|c| c[0]).collect();
    let mut s = Session::new(model.clone());
    g.throughput(Throughput::Elements(1));
    g.bench_function("row_f64", |b| {
        b.iter(|| black_box(s.predict_row(black_box(&row)).unwrap().n_rows))
    });
    let batch = Batch::from_columns(c64.iter().map(|c| ColumnData::F64(c)).collect()).unwrap();
    g.throughput(Throughput::Elements(10_000));
    let rows: Vec<f32> = (0..10_000)
        .flat_map(|r| c64.iter().map(move |c| c[r] as f32))
        .collect();
    let rm = Batch::from_row_major_f32(&rows, 10_000, F).unwrap();
    g.bench_function("batch_10000_row_major_f32/1t", |b| {
        b.iter(|| black_box(s.predict_batch(&rm, RunOptions::default()).unwrap().n_rows))
    });
    for threads in [1, 2] {
        g.bench_with_input(
            BenchmarkId::new("batch_10000", format!("{threads}t")),
            &threads,
            |b, &t| {
                b.iter(|| {
                    black_box(
                        s.predict_batch(&batch, RunOptions { threads: t })
                            .unwrap()
                            .n_rows,
                    )
                })
            },
        );
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = bench_mlp, bench_linear
}
criterion_main!(benches);
