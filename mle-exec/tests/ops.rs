//! Every operator against a plain reference written here: random shapes, batches of 0, 1, 7,
//! 37 and 1100 rows (several chunks, partial last chunk), NaN inputs, f32 and f64 input
//! columns, columnar and strided row-major input, single rows, and 1/0/3 threads.

mod exec_util;

use std::sync::Arc;

use exec_util::*;
use mle_exec::Model;
use mle_format::{Attr, DType, Node, QuantMode, WriteOptions};

const TOL32: f64 = 2e-5;
const TOL64: f64 = 1e-12;

fn r32(x: f64) -> f64 {
    x as f32 as f64
}

/// Runs `check_model` over all batch sizes, with NaN in the data.
fn run_all(
    model: Model,
    f: usize,
    reference: &dyn Fn(&[f64]) -> Vec<Vec<f64>>,
    tol: f64,
    seed: u64,
) {
    let model = Arc::new(model);
    let mut rng = Rng(seed);
    for n in BATCHES {
        for nan in [false, true] {
            let x = data(&mut rng, n, f, nan);
            check_model(&model, &x, n, reference, tol, true);
        }
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn act_ref(name: &str, x: f64) -> f64 {
    match name {
        "Relu" => {
            if x < 0.0 {
                0.0
            } else {
                x
            }
        }
        "LeakyRelu" => {
            if x >= 0.0 {
                x
            } else {
                0.2 * x
            }
        }
        "Sigmoid" => sigmoid(x),
        "Tanh" => x.tanh(),
        "GeluErf" => 0.5 * x * (1.0 + libm_erf(x / 2f64.sqrt())),
        "GeluTanh" => {
            0.5 * x
                * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh())
        }
        "Silu" => x * sigmoid(x),
        "Clip" => x.clamp(-1.0, 0.5), // NaN stays NaN
        "Exp" => x.exp(),
        _ => unreachable!(),
    }
}

/// erf, written independently of the executor's `libm`: the Maclaurin series for |x| ≤ 2.5,
/// and the continued fraction of erfc beyond.
fn libm_erf(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x.abs() > 2.5 {
        let z = x.abs();
        let mut f = z;
        for k in (1..80).rev() {
            f = z + (k as f64 / 2.0) / f;
        }
        let erfc = (-z * z).exp() / std::f64::consts::PI.sqrt() / f;
        return (1.0 - erfc).copysign(x);
    }
    let mut sum = 0.0;
    let mut term = x;
    let mut k = 0.0;
    while k < 200.0 {
        let t = term / (2.0 * k + 1.0);
        sum += t;
        if t.abs() < 1e-17 * sum.abs().max(1e-300) {
            break;
        }
        k += 1.0;
        term *= -x * x / k;
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

#[test]
fn reference_erf_is_accurate() {
    // Known values of erf.
    for (x, want) in [
        (0.5, 0.520_499_877_813_046_5),
        (1.0, 0.842_700_792_949_714_9),
        (2.0, 0.995_322_265_018_952_7),
        (3.0, 0.999_977_909_503_001_4),
        (-4.0, -0.999_999_984_582_742_1),
    ] {
        assert!(
            (libm_erf(x) - want).abs() < 1e-14,
            "erf({x}) = {}",
            libm_erf(x)
        );
    }
}

fn act_node(name: &str, input: &str, output: &str) -> Node {
    let op = match name {
        "GeluErf" | "GeluTanh" => "Gelu",
        o => o,
    };
    let mut n = Node::new(format!("{name}_node"), op, &[input], &[output]);
    match name {
        "LeakyRelu" => n = n.with("alpha", Attr::Float(0.2)),
        "GeluErf" => n = n.with("approximate", Attr::Str("none".into())),
        "GeluTanh" => n = n.with("approximate", Attr::Str("tanh".into())),
        "Clip" => {
            n = n
                .with("min", Attr::Float(-1.0))
                .with("max", Attr::Float(0.5))
        }
        _ => {}
    }
    n
}

const ACTS: [&str; 9] = [
    "Relu",
    "LeakyRelu",
    "Sigmoid",
    "Tanh",
    "GeluErf",
    "GeluTanh",
    "Silu",
    "Clip",
    "Exp",
];

#[test]
fn gemm_with_bias_transposes_and_fused_activations() {
    let mut rng = Rng(11);
    for trial in 0..6 {
        let k = rng.usize(1, 40);
        let m = rng.usize(1, 40);
        let trans_b = trial % 2 == 0;
        let with_bias = trial % 3 != 2;
        let act = ["Relu", "Tanh", "GeluErf", "Sigmoid", "LeakyRelu", "Silu"][trial];
        let w = rng.vec32(m * k, -1.0, 1.0); // logical [m, k]
        let stored: Vec<f32> = if trans_b {
            w.clone()
        } else {
            (0..k * m).map(|i| w[(i % m) * k + i / m]).collect() // [k, m]
        };
        let b = rng.vec32(m, -1.0, 1.0);
        let mut gemm = Node::new("g", "Gemm", &["X"], &["h"])
            .with("weight", tensor("w"))
            .with("trans_b", Attr::Int(trans_b as i64));
        let mut tensors = vec![(
            "w",
            T::F32(
                if trans_b {
                    vec![m as u64, k as u64]
                } else {
                    vec![k as u64, m as u64]
                },
                stored,
            ),
        )];
        if with_bias {
            gemm = gemm.with("bias", tensor("b"));
            tensors.push(("b", T::F32(vec![m as u64], b.clone())));
        }
        let model = build(
            k,
            DType::F32,
            vec![gemm, act_node(act, "h", "y")],
            tensors,
            vec![vi("y", DType::F32, &[-1, m as i64])],
        )
        .unwrap();
        assert_eq!(model.n_steps(), 1, "Gemm + {act} fuse into one step");
        let reference = |x: &[f64]| {
            let y = (0..m)
                .map(|i| {
                    let mut s = if with_bias { b[i] as f64 } else { 0.0 };
                    for j in 0..k {
                        s += r32(x[j]) * w[i * k + j] as f64;
                    }
                    act_ref(act, s)
                })
                .collect();
            vec![y]
        };
        run_all(model, k, &reference, TOL32, 100 + trial as u64);
    }
}

#[test]
fn mlp_with_constant_add_folded_into_the_bias() {
    let mut rng = Rng(5);
    let (k, h, m) = (9, 33, 3);
    let w1 = rng.vec32(h * k, -0.5, 0.5);
    let c = rng.vec32(h, -1.0, 1.0);
    let w2 = rng.vec32(m * h, -0.5, 0.5);
    let b2 = rng.vec32(m, -1.0, 1.0);
    let model = build(
        k,
        DType::F32,
        vec![
            Node::new("g1", "Gemm", &["X"], &["a"]).with("weight", tensor("w1")),
            Node::new("add", "Add", &["a"], &["a2"]).with("b", tensor("c")),
            Node::new("relu", "Relu", &["a2"], &["h"]),
            Node::new("g2", "Gemm", &["h"], &["o"])
                .with("weight", tensor("w2"))
                .with("bias", tensor("b2")),
            Node::new("sm", "Softmax", &["o"], &["p"]),
        ],
        vec![
            ("w1", T::F32(vec![h as u64, k as u64], w1.clone())),
            ("c", T::F32(vec![1, h as u64], c.clone())),
            ("w2", T::F32(vec![m as u64, h as u64], w2.clone())),
            ("b2", T::F32(vec![m as u64], b2.clone())),
        ],
        vec![vi("p", DType::F32, &[-1, m as i64])],
    )
    .unwrap();
    assert_eq!(model.n_steps(), 3, "Gemm+Add+Relu fuse; Gemm; Softmax");
    let reference = |x: &[f64]| {
        let hid: Vec<f64> = (0..h)
            .map(|i| {
                let s: f64 = (0..k)
                    .map(|j| r32(x[j]) * w1[i * k + j] as f64)
                    .sum::<f64>()
                    + c[i] as f64;
                s.max(0.0)
            })
            .collect();
        let o: Vec<f64> = (0..m)
            .map(|i| (0..h).map(|j| hid[j] * w2[i * h + j] as f64).sum::<f64>() + b2[i] as f64)
            .collect();
        let mx = o.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = o.iter().map(|v| (v - mx).exp()).collect();
        let s: f64 = e.iter().sum();
        let p = if x.iter().any(|v| v.is_nan()) {
            vec![f64::NAN; m]
        } else {
            e.iter().map(|v| v / s).collect()
        };
        vec![p]
    };
    run_all(model, k, &reference, TOL32, 77);
}

#[test]
fn matmul_over_the_last_axis_of_a_rank3_value() {
    let mut rng = Rng(3);
    let w = rng.vec32(4 * 5, -1.0, 1.0); // [K=4, M=5]
    let model = build(
        12,
        DType::F32,
        vec![
            Node::new("r", "Reshape", &["X"], &["x3"]).with("shape", Attr::Ints(vec![-1, 3, -1])),
            Node::new("mm", "MatMul", &["x3"], &["y3"]).with("weight", tensor("w")),
            Node::new("fl", "Flatten", &["y3"], &["y"]),
        ],
        vec![("w", T::F32(vec![4, 5], w.clone()))],
        vec![vi("y", DType::F32, &[-1, 15])],
    )
    .unwrap();
    let reference = |x: &[f64]| {
        let mut y = vec![0.0; 15];
        for s in 0..3 {
            for mi in 0..5 {
                y[s * 5 + mi] = (0..4)
                    .map(|k| r32(x[s * 4 + k]) * w[k * 5 + mi] as f64)
                    .sum();
            }
        }
        vec![y]
    };
    run_all(model, 12, &reference, TOL32, 9);
}

#[test]
fn elementwise_binary_ops_with_broadcasting() {
    let mut rng = Rng(21);
    for (oi, op) in ["Add", "Sub", "Mul", "Div"].into_iter().enumerate() {
        let f64op = |a: f64, b: f64| match op {
            "Add" => a + b,
            "Sub" => a - b,
            "Mul" => a * b,
            _ => a / b,
        };
        for dt in [DType::F32, DType::F64] {
            let rd = |x: f64| if dt == DType::F32 { r32(x) } else { x };
            let tol = if dt == DType::F32 { TOL32 } else { TOL64 };
            let f = 12;
            // Constant of shape [F], [1, F], [] and [3, 1] (against [N, 3, 4]).
            let cf = rng.vec32(f, 0.5, 2.0);
            let cs = rng.vec32(1, 0.5, 2.0);
            let c31 = rng.vec32(3, 0.5, 2.0);
            let outs = vec![
                vi("a", dt, &[-1, 12]),
                vi("b", dt, &[-1, 12]),
                vi("c", dt, &[-1, 12]),
                vi("d", dt, &[-1, 3, 4]),
                vi("e", dt, &[-1, 12]),
            ];
            let model = build(
                f,
                dt,
                vec![
                    Node::new("n1", op, &["X"], &["a"]).with("b", tensor("cf")),
                    Node::new("n2", op, &["X"], &["b"]).with("b", tensor("c1f")),
                    Node::new("n3", op, &["X"], &["c"]).with("b", tensor("cs")),
                    Node::new("rs", "Reshape", &["X"], &["x3"])
                        .with("shape", Attr::Ints(vec![-1, 3, 4])),
                    Node::new("n4", op, &["x3"], &["d"]).with("b", tensor("c31")),
                    Node::new("sg", "Sigmoid", &["X"], &["sx"]),
                    Node::new("n5", op, &["X", "sx"], &["e"]),
                ],
                vec![
                    ("cf", T::F32(vec![f as u64], cf.clone())),
                    ("c1f", T::F32(vec![1, f as u64], cf.clone())),
                    ("cs", T::F32(vec![], cs.clone())),
                    ("c31", T::F32(vec![3, 1], c31.clone())),
                ],
                outs,
            )
            .unwrap();
            let reference = |x: &[f64]| {
                let x: Vec<f64> = x.iter().map(|&v| rd(v)).collect();
                let a: Vec<f64> = (0..f).map(|j| f64op(x[j], cf[j] as f64)).collect();
                let c: Vec<f64> = (0..f).map(|j| f64op(x[j], cs[0] as f64)).collect();
                let d: Vec<f64> = (0..f).map(|j| f64op(x[j], c31[j / 4] as f64)).collect();
                let e: Vec<f64> = (0..f).map(|j| f64op(x[j], rd(sigmoid(x[j])))).collect();
                vec![a.clone(), a, c, d, e]
            };
            run_all(model, f, &reference, tol, 300 + oi as u64);
        }
    }
}

#[test]
fn activations_in_f32_and_f64() {
    for (i, act) in ACTS.into_iter().enumerate() {
        for dt in [DType::F32, DType::F64] {
            let f = 1 + i % 5;
            // Exp is a classical op: it computes (and returns) f64.
            let odt = if act == "Exp" { DType::F64 } else { dt };
            let model = build(
                f,
                dt,
                vec![act_node(act, "X", "y")],
                vec![],
                vec![vi("y", odt, &[-1, f as i64])],
            )
            .unwrap();
            let tol = if dt == DType::F32 { TOL32 } else { 1e-9 };
            let reference = |x: &[f64]| {
                vec![x
                    .iter()
                    .map(|&v| {
                        let v = if dt == DType::F32 { r32(v) } else { v };
                        act_ref(act, v)
                    })
                    .collect()]
            };
            run_all(model, f, &reference, tol, 500 + i as u64);
        }
    }
}

fn softmax_ref(v: &[f64], log: bool) -> Vec<f64> {
    let mx = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if v.iter().any(|x| x.is_nan()) {
        return vec![f64::NAN; v.len()];
    }
    let s: f64 = v.iter().map(|x| (x - mx).exp()).sum();
    v.iter()
        .map(|x| {
            if log {
                x - mx - s.ln()
            } else {
                (x - mx).exp() / s
            }
        })
        .collect()
}

#[test]
fn softmax_and_log_softmax_on_any_axis() {
    for dt in [DType::F32, DType::F64] {
        let rd = |x: f64| if dt == DType::F32 { r32(x) } else { x };
        let tol = if dt == DType::F32 { TOL32 } else { 1e-12 };
        let model = build(
            12,
            dt,
            vec![
                Node::new("s", "Softmax", &["X"], &["p"]),
                Node::new("l", "LogSoftmax", &["X"], &["lp"]).with("axis", Attr::Int(1)),
                Node::new("r", "Reshape", &["X"], &["x3"])
                    .with("shape", Attr::Ints(vec![-1, 3, 4])),
                Node::new("s3", "Softmax", &["x3"], &["p3"]).with("axis", Attr::Int(1)),
                Node::new("l3", "LogSoftmax", &["x3"], &["lp3"]).with("axis", Attr::Int(-1)),
            ],
            vec![],
            vec![
                vi("p", dt, &[-1, 12]),
                vi("lp", dt, &[-1, 12]),
                vi("p3", dt, &[-1, 3, 4]),
                vi("lp3", dt, &[-1, 3, 4]),
            ],
        )
        .unwrap();
        let reference = |x: &[f64]| {
            let x: Vec<f64> = x.iter().map(|&v| rd(v)).collect();
            let mut p3 = vec![0.0; 12];
            for i in 0..4 {
                let col: Vec<f64> = (0..3).map(|a| x[a * 4 + i]).collect();
                for (a, v) in softmax_ref(&col, false).into_iter().enumerate() {
                    p3[a * 4 + i] = v;
                }
            }
            let mut lp3 = Vec::new();
            for a in 0..3 {
                lp3.extend(softmax_ref(&x[a * 4..a * 4 + 4], true));
            }
            vec![softmax_ref(&x, false), softmax_ref(&x, true), p3, lp3]
        };
        run_all(model, 12, &reference, tol, 600);
    }
}

#[test]
fn layer_norm_and_batch_norm() {
    let mut rng = Rng(8);
    for dt in [DType::F32, DType::F64] {
        let rd = |x: f64| if dt == DType::F32 { r32(x) } else { x };
        let tol = if dt == DType::F32 { 1e-4 } else { 1e-9 };
        let f = 10;
        let lw = rng.vec32(5, 0.5, 1.5);
        let lb = rng.vec32(5, -1.0, 1.0);
        let (mean, var) = (rng.vec32(f, -1.0, 1.0), rng.vec32(f, 0.1, 2.0));
        let (bw, bb) = (rng.vec32(f, 0.5, 1.5), rng.vec32(f, -1.0, 1.0));
        let model = build(
            f,
            dt,
            vec![
                Node::new("r", "Reshape", &["X"], &["x3"])
                    .with("shape", Attr::Ints(vec![-1, 2, 5])),
                Node::new("ln", "LayerNorm", &["x3"], &["l"])
                    .with("weight", tensor("lw"))
                    .with("bias", tensor("lb"))
                    .with("epsilon", Attr::Float(1e-3)),
                Node::new("ln2", "LayerNorm", &["X"], &["l2"]),
                Node::new("bn", "BatchNorm", &["X"], &["b"])
                    .with("mean", tensor("mean"))
                    .with("var", tensor("var"))
                    .with("weight", tensor("bw"))
                    .with("bias", tensor("bb")),
            ],
            vec![
                ("lw", T::F32(vec![5], lw.clone())),
                ("lb", T::F32(vec![5], lb.clone())),
                ("mean", T::F32(vec![f as u64], mean.clone())),
                ("var", T::F32(vec![f as u64], var.clone())),
                ("bw", T::F32(vec![f as u64], bw.clone())),
                ("bb", T::F32(vec![f as u64], bb.clone())),
            ],
            vec![
                vi("l", dt, &[-1, 2, 5]),
                vi("l2", dt, &[-1, 10]),
                vi("b", dt, &[-1, 10]),
            ],
        )
        .unwrap();
        let ln = |v: &[f64], w: Option<&[f32]>, b: Option<&[f32]>, eps: f64| -> Vec<f64> {
            let m = v.iter().sum::<f64>() / v.len() as f64;
            let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64;
            v.iter()
                .enumerate()
                .map(|(i, x)| {
                    (x - m) / (var + eps).sqrt() * w.map_or(1.0, |w| w[i] as f64)
                        + b.map_or(0.0, |b| b[i] as f64)
                })
                .collect()
        };
        let reference = |x: &[f64]| {
            let x: Vec<f64> = x.iter().map(|&v| rd(v)).collect();
            let mut l = ln(&x[..5], Some(&lw), Some(&lb), 1e-3);
            l.extend(ln(&x[5..], Some(&lw), Some(&lb), 1e-3));
            let l2 = ln(&x, None, None, 1e-5);
            let b = (0..f)
                .map(|c| {
                    (x[c] - mean[c] as f64) / (var[c] as f64 + 1e-5).sqrt() * bw[c] as f64
                        + bb[c] as f64
                })
                .collect();
            vec![l, l2, b]
        };
        run_all(model, f, &reference, tol, 700);
    }
}

#[test]
fn concat_cast_identity_flatten() {
    let model = build(
        5,
        DType::F64,
        vec![
            Node::new("s", "Sigmoid", &["X"], &["sx"]),
            Node::new("c", "Concat", &["X", "sx", "X"], &["cat"]),
            Node::new("i", "Identity", &["cat"], &["cat2"]),
            Node::new("cast", "Cast", &["cat2"], &["c32"]).with("to", Attr::Str("f32".into())),
            Node::new("r", "Reshape", &["X"], &["x3"]).with("shape", Attr::Ints(vec![-1, 5, 1])),
            Node::new("c3", "Concat", &["x3", "x3"], &["cat3"]).with("axis", Attr::Int(-1)),
            Node::new("fl", "Flatten", &["cat3"], &["flat"]),
        ],
        vec![],
        vec![
            vi("c32", DType::F32, &[-1, 15]),
            vi("flat", DType::F64, &[-1, 10]),
        ],
    )
    .unwrap();
    let reference = |x: &[f64]| {
        let mut a: Vec<f64> = x.to_vec();
        a.extend(x.iter().map(|&v| sigmoid(v)));
        a.extend(x);
        let a = a.into_iter().map(r32).collect();
        let b = x.iter().flat_map(|&v| [v, v]).collect();
        vec![a, b]
    };
    run_all(model, 5, &reference, 1e-12, 800);
}

#[test]
fn scaler_imputer_normalizer() {
    let mut rng = Rng(31);
    let f = 6;
    let off = rng.vec(f, -1.0, 1.0);
    let sc = rng.vec(f, 0.5, 2.0);
    let fill = rng.vec(f, -1.0, 1.0);
    for in_dt in [DType::F64, DType::F32] {
        let rd = |x: f64| if in_dt == DType::F32 { r32(x) } else { x };
        let model = build(
            f,
            in_dt,
            vec![
                Node::new("imp", "Imputer", &["X"], &["xi"]).with("values", tensor("fill")),
                Node::new("imp0", "Imputer", &["X"], &["xz"])
                    .with("values", tensor("fill"))
                    .with("missing", Attr::Float(0.0)),
                Node::new("sc", "Scaler", &["xi"], &["xs"])
                    .with("offset", tensor("off"))
                    .with("scale", tensor("sc")),
                Node::new("n1", "Normalizer", &["X"], &["l1"]).with("norm", Attr::Str("l1".into())),
                Node::new("n2", "Normalizer", &["X"], &["l2"]).with("norm", Attr::Str("l2".into())),
                Node::new("nm", "Normalizer", &["X"], &["mx"])
                    .with("norm", Attr::Str("max".into())),
                Node::new("zero", "Mul", &["X"], &["z"]).with("b", tensor("zeros")),
                Node::new("nz", "Normalizer", &["z"], &["zn"]),
            ],
            vec![
                ("off", T::F64(vec![f as u64], off.clone())),
                ("sc", T::F64(vec![f as u64], sc.clone())),
                ("fill", T::F64(vec![f as u64], fill.clone())),
                ("zeros", T::F64(vec![f as u64], vec![0.0; f])),
            ],
            vec![
                vi("xs", DType::F64, &[-1, f as i64]),
                vi("xz", DType::F64, &[-1, f as i64]),
                vi("l1", DType::F64, &[-1, f as i64]),
                vi("l2", DType::F64, &[-1, f as i64]),
                vi("mx", DType::F64, &[-1, f as i64]),
                vi("zn", in_dt, &[-1, f as i64]),
            ],
        )
        .unwrap();
        let reference = |x: &[f64]| {
            let x: Vec<f64> = x.iter().map(|&v| rd(v)).collect();
            let xi: Vec<f64> = (0..f)
                .map(|j| if x[j].is_nan() { fill[j] } else { x[j] })
                .collect();
            let xs = (0..f).map(|j| (xi[j] - off[j]) * sc[j]).collect();
            let xz = (0..f)
                .map(|j| {
                    if x[j].is_nan() || x[j] == 0.0 {
                        fill[j]
                    } else {
                        x[j]
                    }
                })
                .collect();
            let norm = |n: f64| -> Vec<f64> {
                let n = if n == 0.0 { 1.0 } else { n };
                x.iter().map(|v| v / n).collect()
            };
            let l1 = norm(x.iter().map(|v| v.abs()).sum());
            let l2 = norm(x.iter().map(|v| v * v).sum::<f64>().sqrt());
            let mx = if x.iter().any(|v| v.is_nan()) {
                vec![f64::NAN; f]
            } else {
                norm(x.iter().map(|v| v.abs()).fold(0.0, f64::max))
            };
            // A zero row stays zero; a NaN anywhere makes the norm (and the row) NaN.
            let zn = if x.iter().any(|v| v.is_nan()) {
                vec![f64::NAN; f]
            } else {
                vec![0.0; f]
            };
            vec![xs, xz, l1, l2, mx, zn]
        };
        run_all(model, f, &reference, 1e-12, 900);
    }
}

#[test]
fn linear_models_and_classifier_heads() {
    let mut rng = Rng(41);
    let f = 7;
    let c = 4;
    let coef = rng.vec(c * f, -1.0, 1.0);
    let icpt = rng.vec(c, -1.0, 1.0);
    let off = rng.vec(f, -1.0, 1.0);
    let sc = rng.vec(f, 0.5, 2.0);
    let coef1 = rng.vec(f, -1.0, 1.0);
    let model = build(
        f,
        DType::F64,
        vec![
            // Multinomial: scaler folded into the linear model.
            Node::new("sc", "Scaler", &["X"], &["xs"])
                .with("offset", tensor("off"))
                .with("scale", tensor("sc")),
            Node::new("lin", "LinearModel", &["xs"], &["m"])
                .with("coef", tensor("coef"))
                .with("intercept", tensor("icpt")),
            Node::new("sm", "Softmax", &["m"], &["probabilities"]),
            Node::new("am", "ArgMax", &["probabilities"], &["label"]),
            // Binary: margin → sigmoid → [1-p, p]; threshold on the margin.
            Node::new("lin1", "LinearModel", &["X"], &["m1"]).with("coef", tensor("coef1")),
            Node::new("sg", "Sigmoid", &["m1"], &["p1"]),
            Node::new("b2p", "BinaryToProba", &["p1"], &["proba1"]),
            Node::new("th", "Threshold", &["m1"], &["label1"]).with("threshold", Attr::Float(0.0)),
            // Poisson-style: exp of the margin.
            Node::new("ex", "Exp", &["m1"], &["mean1"]),
        ],
        vec![
            ("off", T::F64(vec![f as u64], off.clone())),
            ("sc", T::F64(vec![f as u64], sc.clone())),
            ("coef", T::F64(vec![c as u64, f as u64], coef.clone())),
            ("icpt", T::F64(vec![c as u64], icpt.clone())),
            ("coef1", T::F64(vec![1, f as u64], coef1.clone())),
        ],
        vec![
            vi("label", DType::I64, &[-1]),
            vi("probabilities", DType::F64, &[-1, c as i64]),
            vi("proba1", DType::F64, &[-1, 2]),
            vi("label1", DType::I64, &[-1]),
            vi("mean1", DType::F64, &[-1]),
        ],
    )
    .unwrap();
    // Scaler+LinearModel fused; Softmax; ArgMax; LinearModel+Sigmoid fused... m1 has 3 uses, so no.
    assert_eq!(model.n_steps(), 8);
    let reference = |x: &[f64]| {
        let m: Vec<f64> = (0..c)
            .map(|t| {
                icpt[t]
                    + (0..f)
                        .map(|j| (x[j] - off[j]) * sc[j] * coef[t * f + j])
                        .sum::<f64>()
            })
            .collect();
        let p = softmax_ref(&m, false);
        let mut best = 0;
        for k in 1..c {
            if p[k] > p[best] || (p[best].is_nan() && !p[k].is_nan()) {
                best = k;
            }
        }
        let m1: f64 = (0..f).map(|j| x[j] * coef1[j]).sum();
        let p1 = sigmoid(m1);
        vec![
            vec![best as f64],
            p,
            vec![1.0 - p1, p1],
            vec![if m1 > 0.0 { 1.0 } else { 0.0 }],
            vec![m1.exp()],
        ]
    };
    run_all(model, f, &reference, 1e-9, 1000);
}

#[test]
fn affine_divides_and_adds_a_bias_rounded_as_written() {
    let mut rng = Rng(43);
    let f = 6;
    let off = rng.vec(f, -1.0, 1.0);
    let div = rng.vec(f, 0.1, 3.0);
    let sc = rng.vec(f, 0.1, 3.0);
    let bias = rng.vec(f, -1.0, 1.0);
    let model = build(
        f,
        DType::F64,
        vec![
            // scikit-learn's StandardScaler: X -= mean_; X /= scale_.
            Node::new("sd", "Affine", &["X"], &["std"])
                .with("offset", tensor("off"))
                .with("divisor", tensor("div")),
            // MinMaxScaler: X *= scale_; X += min_.
            Node::new("mm", "Affine", &["X"], &["minmax"])
                .with("scale", tensor("sc"))
                .with("bias", tensor("bias")),
        ],
        vec![
            ("off", T::F64(vec![f as u64], off.clone())),
            ("div", T::F64(vec![f as u64], div.clone())),
            ("sc", T::F64(vec![f as u64], sc.clone())),
            ("bias", T::F64(vec![f as u64], bias.clone())),
        ],
        vec![
            vi("std", DType::F64, &[-1, f as i64]),
            vi("minmax", DType::F64, &[-1, f as i64]),
        ],
    )
    .unwrap();
    let reference = |x: &[f64]| {
        vec![
            (0..f).map(|j| (x[j] - off[j]) / div[j]).collect(),
            (0..f).map(|j| x[j] * sc[j] + bias[j]).collect(),
        ]
    };
    // Bit for bit: a tree after the scaler compares these doubles.
    run_all(model, f, &reference, 0.0, 1001);

    let both = build(
        f,
        DType::F64,
        vec![Node::new("sd", "Affine", &["X"], &["y"])
            .with("scale", tensor("sc"))
            .with("divisor", tensor("div"))],
        vec![
            ("div", T::F64(vec![f as u64], div)),
            ("sc", T::F64(vec![f as u64], sc)),
        ],
        vec![vi("y", DType::F64, &[-1, f as i64])],
    );
    let err = both
        .expect_err("scale and divisor together are refused")
        .to_string();
    assert!(err.contains("divisor") && err.contains("sd"), "{err}");
}

#[test]
fn argmax_first_maximum_and_nan_never_wins() {
    let model = Arc::new(
        build(
            3,
            DType::F64,
            vec![Node::new("am", "ArgMax", &["X"], &["i"])],
            vec![],
            vec![vi("i", DType::I64, &[-1])],
        )
        .unwrap(),
    );
    let nan = f64::NAN;
    let cases: [([f64; 3], f64); 6] = [
        ([1.0, 3.0, 3.0], 1.0),
        ([nan, 0.5, 0.1], 1.0),
        ([nan, nan, -1.0], 2.0),
        ([nan, nan, nan], 0.0),
        ([2.0, nan, 5.0], 2.0),
        ([-1.0, -1.0, -1.0], 0.0),
    ];
    let x: Vec<f64> = cases.iter().flat_map(|c| c.0).collect();
    let reference = |row: &[f64]| {
        let same = |a: f64, b: f64| (a.is_nan() && b.is_nan()) || a as f32 == b as f32;
        let i = cases
            .iter()
            .position(|c| c.0.iter().zip(row).all(|(&a, &b)| same(a, b)))
            .unwrap();
        vec![vec![cases[i].1]]
    };
    check_model(&model, &x, cases.len(), &reference, 0.0, true);
}

#[test]
fn quantized_weights_are_dequantized_at_compile_time() {
    let mut rng = Rng(51);
    let (k, m) = (17, 9);
    let w = rng.vec32(m * k, -1.0, 1.0);
    for (mode, tol) in [(QuantMode::Fp16, TOL32), (QuantMode::Int8, TOL32)] {
        let b = builder(
            k,
            DType::F32,
            vec![Node::new("g", "Gemm", &["X"], &["y"]).with("weight", tensor("w"))],
            vec![("w", T::F32(vec![m as u64, k as u64], w.clone()))],
            vec![vi("y", DType::F32, &[-1, m as i64])],
        );
        let opts = WriteOptions {
            quantization: Some(mode),
            ..Default::default()
        };
        let model = Model::from_bytes(&b.to_bytes(&opts).unwrap(), "q.mle").unwrap();
        // The weights the file holds, dequantized independently of the executor.
        let wq: Vec<f32> = match mode {
            QuantMode::Fp16 => w.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect(),
            QuantMode::Int8 => {
                let (q, s) = mle_format::quant::quantize_int8(&w, &[m as u64, k as u64]);
                mle_format::quant::dequantize_int8(&q, &s)
            }
        };
        assert!(
            wq.iter().zip(&w).any(|(a, b)| a != b),
            "quantization changed something"
        );
        let reference = |x: &[f64]| {
            vec![(0..m)
                .map(|i| (0..k).map(|j| r32(x[j]) * wq[i * k + j] as f64).sum())
                .collect()]
        };
        run_all(model, k, &reference, tol, 1100);
    }
}

#[test]
fn graph_input_as_output_and_declared_dtype_conversion() {
    let model = build(
        3,
        DType::F64,
        vec![Node::new("s", "Sigmoid", &["X"], &["p"])],
        vec![],
        vec![vi("X", DType::F64, &[-1, 3]), vi("p", DType::F32, &[-1, 3])],
    )
    .unwrap();
    assert_eq!(model.outputs()[1].dtype, DType::F32);
    let reference = |x: &[f64]| vec![x.to_vec(), x.iter().map(|&v| r32(sigmoid(v))).collect()];
    run_all(model, 3, &reference, 1e-12, 1200);
}

#[test]
fn peak_memory_reflects_the_plan_and_reuses_buffers() {
    // A chain of 6 elementwise ops on 100 f64 features: without reuse it would need 7 buffers;
    // liveness needs 2 at a time (plus the input gathered at the start).
    let nodes: Vec<Node> = (0..6)
        .map(|i| {
            let input = if i == 0 {
                "X".to_string()
            } else {
                format!("v{i}")
            };
            Node::new(
                format!("n{i}"),
                "Tanh",
                &[input.as_str()],
                &[format!("v{}", i + 1).as_str()],
            )
        })
        .collect();
    let model = build(
        100,
        DType::F64,
        nodes,
        vec![],
        vec![vi("v6", DType::F64, &[-1, 100])],
    )
    .unwrap();
    let per_row = model.peak_memory_bytes(1);
    assert_eq!(per_row, 2 * 100 * 8, "two live 100×f64 buffers per row");
    assert_eq!(model.peak_memory_bytes(10), 10 * per_row);
    let big = model.peak_memory_bytes(1 << 30);
    assert_eq!(
        big,
        model.chunk_rows() * per_row,
        "batches are processed in chunks"
    );
}

#[test]
fn one_vs_rest_linear_classifier() {
    let mut rng = Rng(61);
    let (f, c) = (5, 3);
    let coef = rng.vec(c * f, -1.0, 1.0);
    let icpt = rng.vec(c, -0.5, 0.5);
    let model = build(
        f,
        DType::F32,
        vec![
            Node::new("lin", "LinearModel", &["X"], &["m"])
                .with("coef", tensor("coef"))
                .with("intercept", tensor("icpt")),
            Node::new("sg", "Sigmoid", &["m"], &["s"]),
            Node::new("nrm", "Normalizer", &["s"], &["probabilities"])
                .with("norm", Attr::Str("l1".into())),
            Node::new("am", "ArgMax", &["probabilities"], &["label"]),
        ],
        vec![
            ("coef", T::F64(vec![c as u64, f as u64], coef.clone())),
            ("icpt", T::F64(vec![c as u64], icpt.clone())),
        ],
        vec![
            vi("label", DType::I64, &[-1]),
            vi("probabilities", DType::F64, &[-1, c as i64]),
        ],
    )
    .unwrap();
    let reference = |x: &[f64]| {
        // The graph input is f32: the framework saw f32-rounded features.
        let s: Vec<f64> = (0..c)
            .map(|t| sigmoid(icpt[t] + (0..f).map(|j| r32(x[j]) * coef[t * f + j]).sum::<f64>()))
            .collect();
        let total: f64 = s.iter().sum();
        let p: Vec<f64> = s.iter().map(|v| v / total).collect();
        let mut best = 0;
        for k in 1..c {
            if p[k] > p[best] || (p[best].is_nan() && !p[k].is_nan()) {
                best = k;
            }
        }
        vec![vec![best as f64], p]
    };
    run_all(model, f, &reference, 1e-12, 1300);
}

/// The test kit's reference interpreter of docs/OPS.md (`mle_testkit::reference`, the oracle
/// of the tree and importer tests) agrees with the executor on a graph of classical ops and
/// post-transforms, so that its non-tree ops can be trusted as references too.
#[test]
fn the_test_kit_interpreter_agrees_on_classical_graphs() {
    let mut rng = Rng(51);
    let f = 5;
    let c = 3;
    let fill = rng.vec(f, -1.0, 1.0);
    let off = rng.vec(f, -1.0, 1.0);
    let sc = rng.vec(f, 0.5, 2.0);
    let coef = rng.vec(c * f, -1.0, 1.0);
    let icpt = rng.vec(c, -1.0, 1.0);
    let coef1 = rng.vec(f, -1.0, 1.0);
    let b = builder(
        f,
        DType::F64,
        vec![
            Node::new("imp", "Imputer", &["X"], &["xi"]).with("values", tensor("fill")),
            Node::new("sc", "Scaler", &["xi"], &["xs"])
                .with("offset", tensor("off"))
                .with("scale", tensor("sc")),
            Node::new("n2", "Normalizer", &["xs"], &["xn"]).with("norm", Attr::Str("l2".into())),
            Node::new("lin", "LinearModel", &["xn"], &["m"])
                .with("coef", tensor("coef"))
                .with("intercept", tensor("icpt")),
            Node::new("sm", "Softmax", &["m"], &["probabilities"]),
            Node::new("am", "ArgMax", &["probabilities"], &["label"]),
            Node::new("lin1", "LinearModel", &["xi"], &["m1"]).with("coef", tensor("coef1")),
            Node::new("sg", "Sigmoid", &["m1"], &["p1"]),
            Node::new("b2p", "BinaryToProba", &["p1"], &["proba1"]),
            Node::new("th", "Threshold", &["p1"], &["label1"]).with("threshold", Attr::Float(0.5)),
            Node::new("ex", "Exp", &["m1"], &["mean1"]),
            Node::new("c32", "Cast", &["xs"], &["xs32"]).with("to", Attr::Str("f32".into())),
            Node::new("c64", "Cast", &["xs32"], &["xs64"]).with("to", Attr::Str("f64".into())),
        ],
        vec![
            ("fill", T::F64(vec![f as u64], fill)),
            ("off", T::F64(vec![f as u64], off)),
            ("sc", T::F64(vec![f as u64], sc)),
            ("coef", T::F64(vec![c as u64, f as u64], coef)),
            ("icpt", T::F64(vec![c as u64], icpt)),
            ("coef1", T::F64(vec![1, f as u64], coef1)),
        ],
        vec![
            vi("label", DType::I64, &[-1]),
            vi("probabilities", DType::F64, &[-1, c as i64]),
            vi("proba1", DType::F64, &[-1, 2]),
            vi("label1", DType::I64, &[-1]),
            vi("mean1", DType::F64, &[-1]),
            vi("xs64", DType::F64, &[-1, f as i64]),
        ],
    );
    let bytes = b.to_bytes(&WriteOptions::default()).unwrap();
    let file = mle_format::MleFile::from_bytes(&bytes, "kit.mle", &Default::default()).unwrap();
    let model = Model::from_bytes(&bytes, "kit.mle").unwrap();
    let names: Vec<String> = model.outputs().iter().map(|o| o.name.clone()).collect();
    let reference = |x: &[f64]| {
        let v = mle_testkit::reference::run(&file, &[x.to_vec()]);
        names.iter().map(|n| v[n].data.clone()).collect()
    };
    run_all(model, f, &reference, 1e-9, 1100);
}
