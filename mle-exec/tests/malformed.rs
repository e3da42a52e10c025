//! Malformed graphs give typed errors at compile time — never a panic.

mod exec_util;

use exec_util::*;
use mle_exec::ExecError;
use mle_format::{Attr, DType, Node, ValueInfo};

fn invalid(r: Result<mle_exec::Model, ExecError>, needle: &str) {
    match r {
        Err(ExecError::InvalidGraph { detail, .. }) => {
            assert!(
                detail.contains(needle),
                "detail {detail:?} lacks {needle:?}"
            )
        }
        Err(e) => panic!("expected InvalidGraph ({needle}), got {e}"),
        Ok(_) => panic!("expected InvalidGraph ({needle}), the graph compiled"),
    }
}

fn out(name: &str, w: i64) -> Vec<ValueInfo> {
    vec![vi(name, DType::F32, &[-1, w])]
}

fn w(m: u64, k: u64) -> T {
    T::F32(vec![m, k], vec![0.5; (m * k) as usize])
}

#[test]
fn unknown_operator_is_unsupported() {
    let r = build(
        2,
        DType::F32,
        vec![Node::new("n", "Frobnicate", &["X"], &["y"])],
        vec![],
        out("y", 2),
    );
    match r {
        Err(ExecError::UnsupportedOp { op, node, .. }) => {
            assert_eq!(op, "Frobnicate");
            assert_eq!(node, "n");
        }
        other => panic!("expected UnsupportedOp, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn use_before_definition_and_undefined_values() {
    invalid(
        build(
            2,
            DType::F32,
            vec![
                Node::new("a", "Relu", &["h"], &["y"]),
                Node::new("b", "Relu", &["X"], &["h"]),
            ],
            vec![],
            out("y", 2),
        ),
        "not a graph input nor produced by an earlier node",
    );
    invalid(
        build(
            2,
            DType::F32,
            vec![Node::new("a", "Relu", &["nope"], &["y"])],
            vec![],
            out("y", 2),
        ),
        "\"nope\"",
    );
}

#[test]
fn a_value_produced_twice() {
    invalid(
        build(
            2,
            DType::F32,
            vec![
                Node::new("a", "Relu", &["X"], &["y"]),
                Node::new("b", "Tanh", &["X"], &["y"]),
            ],
            vec![],
            out("y", 2),
        ),
        "produced more than once",
    );
    invalid(
        build(
            2,
            DType::F32,
            vec![Node::new("a", "Relu", &["X"], &["X"])],
            vec![],
            out("X", 2),
        ),
        "produced more than once",
    );
}

#[test]
fn wrong_weight_shapes() {
    // Gemm weight expects K = 3 input features; the input has 2.
    invalid(
        build(
            2,
            DType::F32,
            vec![Node::new("g", "Gemm", &["X"], &["y"]).with("weight", Attr::Tensor("w".into()))],
            vec![("w", w(4, 3))],
            out("y", 4),
        ),
        "needs 3 input features, the input has 2",
    );
    // Bias of the wrong length.
    invalid(
        build(
            3,
            DType::F32,
            vec![Node::new("g", "Gemm", &["X"], &["y"])
                .with("weight", Attr::Tensor("w".into()))
                .with("bias", Attr::Tensor("b".into()))],
            vec![("w", w(4, 3)), ("b", T::F32(vec![5], vec![0.0; 5]))],
            out("y", 4),
        ),
        "expected 4",
    );
    // Scaler offset length.
    invalid(
        build(
            3,
            DType::F64,
            vec![Node::new("s", "Scaler", &["X"], &["y"]).with("offset", Attr::Tensor("o".into()))],
            vec![("o", T::F64(vec![2], vec![0.0; 2]))],
            vec![vi("y", DType::F64, &[-1, 3])],
        ),
        "expected [3]",
    );
    // LinearModel coef for 4 features on a 3-feature input.
    invalid(
        build(
            3,
            DType::F64,
            vec![Node::new("l", "LinearModel", &["X"], &["y"])
                .with("coef", Attr::Tensor("c".into()))],
            vec![("c", T::F64(vec![1, 4], vec![0.0; 4]))],
            vec![vi("y", DType::F64, &[-1, 1])],
        ),
        "expected [T, 3]",
    );
}

#[test]
fn missing_tensors_and_attributes() {
    // The reader or the compiler refuses a reference to a tensor that does not exist.
    match build(
        3,
        DType::F32,
        vec![Node::new("g", "Gemm", &["X"], &["y"]).with("weight", Attr::Tensor("absent".into()))],
        vec![],
        out("y", 4),
    ) {
        Err(e @ (ExecError::Format(_) | ExecError::InvalidGraph { .. })) => {
            assert!(e.to_string().contains("\"absent\""), "{e}")
        }
        other => panic!("expected a typed error, got {:?}", other.map(|_| ())),
    }
    invalid(
        build(
            3,
            DType::F32,
            vec![Node::new("g", "Gemm", &["X"], &["y"])],
            vec![],
            out("y", 4),
        ),
        "`weight` is missing",
    );
    invalid(
        build(
            1,
            DType::F64,
            vec![Node::new("t", "Threshold", &["X"], &["y"])],
            vec![],
            vec![vi("y", DType::I64, &[-1])],
        ),
        "`threshold` is missing",
    );
}

#[test]
fn attributes_of_the_wrong_kind_or_value() {
    invalid(
        build(
            2,
            DType::F32,
            vec![Node::new("l", "LeakyRelu", &["X"], &["y"]).with("alpha", Attr::Str("big".into()))],
            vec![],
            out("y", 2),
        ),
        "`alpha` must be a float, found a string",
    );
    invalid(
        build(
            2,
            DType::F32,
            vec![Node::new("g", "Gemm", &["X"], &["y"]).with("weight", Attr::Int(3))],
            vec![],
            out("y", 2),
        ),
        "must name a tensor",
    );
    invalid(
        build(
            2,
            DType::F64,
            vec![Node::new("n", "Normalizer", &["X"], &["y"]).with("norm", Attr::Str("l3".into()))],
            vec![],
            vec![vi("y", DType::F64, &[-1, 2])],
        ),
        "expected \"l1\", \"l2\" or \"max\"",
    );
    invalid(
        build(
            2,
            DType::F32,
            vec![Node::new("c", "Clip", &["X"], &["y"])
                .with("min", Attr::Float(2.0))
                .with("max", Attr::Float(1.0))],
            vec![],
            out("y", 2),
        ),
        "must not exceed",
    );
}

#[test]
fn shape_errors() {
    // Softmax over the batch axis.
    invalid(
        build(
            2,
            DType::F32,
            vec![Node::new("s", "Softmax", &["X"], &["y"]).with("axis", Attr::Int(0))],
            vec![],
            out("y", 2),
        ),
        "axis 0 is the batch",
    );
    // Concat of [N, 2] and [N, 2, 1].
    invalid(
        build(
            2,
            DType::F32,
            vec![
                Node::new("r", "Reshape", &["X"], &["x3"])
                    .with("shape", Attr::Ints(vec![-1, 2, 1])),
                Node::new("c", "Concat", &["X", "x3"], &["y"]),
            ],
            vec![],
            out("y", 4),
        ),
        "does not match",
    );
    // Non-broadcastable constant.
    invalid(
        build(
            4,
            DType::F32,
            vec![Node::new("a", "Add", &["X"], &["y"]).with("b", Attr::Tensor("b".into()))],
            vec![("b", T::F32(vec![3], vec![1.0; 3]))],
            out("y", 4),
        ),
        "do not broadcast",
    );
    // Reshape to a different element count.
    invalid(
        build(
            6,
            DType::F32,
            vec![Node::new("r", "Reshape", &["X"], &["y"]).with("shape", Attr::Ints(vec![-1, 4]))],
            vec![],
            out("y", 4),
        ),
        "cannot reshape 6",
    );
    // BinaryToProba on a 2-wide input; ArgMax on an i64 input.
    invalid(
        build(
            2,
            DType::F64,
            vec![Node::new("b", "BinaryToProba", &["X"], &["y"])],
            vec![],
            vec![vi("y", DType::F64, &[-1, 2])],
        ),
        "[N] or [N, 1]",
    );
    invalid(
        build(
            2,
            DType::F64,
            vec![
                Node::new("a", "ArgMax", &["X"], &["i"]),
                Node::new("b", "ArgMax", &["i"], &["j"]),
            ],
            vec![],
            vec![vi("j", DType::I64, &[-1])],
        ),
        "expected f32 or f64",
    );
    // Declared output width disagrees with the graph.
    invalid(
        build(
            2,
            DType::F32,
            vec![Node::new("r", "Relu", &["X"], &["y"])],
            vec![],
            out("y", 3),
        ),
        "output declared",
    );
    // i64 graph output declared as float.
    invalid(
        build(
            2,
            DType::F64,
            vec![Node::new("a", "ArgMax", &["X"], &["i"])],
            vec![],
            vec![vi("i", DType::F64, &[-1])],
        ),
        "declared f64",
    );
}

#[test]
fn graph_level_errors() {
    invalid(
        build(
            2,
            DType::F32,
            vec![Node::new("r", "Relu", &["X"], &["y"])],
            vec![],
            vec![vi("z", DType::F32, &[-1, 2])],
        ),
        "not produced by any node",
    );
    invalid(build(2, DType::F32, vec![], vec![], vec![]), "no outputs");
    // Wrong number of inputs and outputs on a node.
    invalid(
        build(
            2,
            DType::F32,
            vec![Node::new("r", "Relu", &["X", "X"], &["y"])],
            vec![],
            out("y", 2),
        ),
        "expected 1 input(s), found 2",
    );
    invalid(
        build(
            2,
            DType::F32,
            vec![Node::new("r", "Relu", &["X"], &["y", "z"])],
            vec![],
            out("y", 2),
        ),
        "exactly 1 output",
    );
    // A graph input that is not [-1, F].
    let mut b = builder(
        2,
        DType::F32,
        vec![Node::new("r", "Relu", &["X"], &["y"])],
        vec![],
        out("y", 2),
    );
    b.set_inputs(vec![vi("X", DType::F32, &[-1, -1])]);
    let bytes = b.to_bytes(&Default::default()).unwrap();
    invalid(
        mle_exec::Model::from_bytes(&bytes, "m.mle"),
        "must be [-1, F]",
    );
}

#[test]
fn wrong_input_width_at_run_time_is_an_input_error() {
    let model = std::sync::Arc::new(
        build(
            3,
            DType::F64,
            vec![Node::new("r", "Relu", &["X"], &["y"])],
            vec![],
            vec![vi("y", DType::F64, &[-1, 3])],
        )
        .unwrap(),
    );
    let mut s = mle_exec::Session::new(model);
    assert!(matches!(
        s.predict_row(&[1.0, 2.0]),
        Err(ExecError::Input(_))
    ));
    let a = [1.0f64; 4];
    let batch = mle_exec::Batch::from_columns(vec![mle_exec::ColumnData::F64(&a); 2]).unwrap();
    assert!(matches!(
        s.predict_batch(&batch, Default::default()),
        Err(ExecError::Input(_))
    ));
}

/// Random graphs from the op set with random wiring and attributes: compiling either works
/// or fails with a typed error, and a compiled graph runs.
#[test]
fn random_graphs_never_panic() {
    let ops = [
        "Gemm",
        "MatMul",
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Relu",
        "LeakyRelu",
        "Sigmoid",
        "Tanh",
        "Gelu",
        "Silu",
        "Softmax",
        "LogSoftmax",
        "LayerNorm",
        "BatchNorm",
        "Clip",
        "Concat",
        "Flatten",
        "Reshape",
        "Identity",
        "Cast",
        "Scaler",
        "Imputer",
        "Normalizer",
        "LinearModel",
        "BinaryToProba",
        "Exp",
        "ArgMax",
        "Threshold",
        "Bogus",
    ];
    let mut rng = Rng(2024);
    let mut compiled = 0;
    for case in 0..400 {
        let f = rng.usize(1, 4);
        let mut names = vec!["X".to_string()];
        let mut nodes = Vec::new();
        for i in 0..rng.usize(1, 5) {
            let op = ops[rng.usize(0, ops.len() - 1)];
            let n_in = if rng.next_u64() % 5 == 0 { 2 } else { 1 };
            let ins: Vec<String> = (0..n_in)
                .map(|_| {
                    if rng.next_u64() % 20 == 0 {
                        "ghost".to_string()
                    } else {
                        names[rng.usize(0, names.len() - 1)].clone()
                    }
                })
                .collect();
            let out = format!("v{i}");
            let refs: Vec<&str> = ins.iter().map(|s| s.as_str()).collect();
            let mut node = Node::new(format!("n{i}"), op, &refs, &[out.as_str()]);
            for key in [
                "weight", "bias", "b", "coef", "offset", "scale", "values", "mean", "var",
            ] {
                if rng.next_u64() % 3 == 0 {
                    node = node.with(
                        key,
                        Attr::Tensor(["t1", "t2", "t3", "missing"][rng.usize(0, 3)].into()),
                    );
                }
            }
            let extra = [
                ("axis", Attr::Int(rng.usize(0, 4) as i64 - 2)),
                ("shape", Attr::Ints(vec![-1, rng.usize(1, 4) as i64, -1])),
                (
                    "to",
                    Attr::Str(["f32", "f64", "i8"][rng.usize(0, 2)].into()),
                ),
                ("threshold", Attr::Float(0.5)),
                ("trans_b", Attr::Int(rng.usize(0, 1) as i64)),
                ("norm", Attr::Str("l1".into())),
                ("alpha", Attr::Str("x".into())),
            ];
            for (k, v) in extra {
                if rng.next_u64() % 3 == 0 {
                    node = node.with(k, v);
                }
            }
            nodes.push(node);
            names.push(out);
        }
        let last = names.last().unwrap().clone();
        let tensors = [
            ("t1", T::F32(vec![f as u64], vec![0.5; f])),
            ("t2", T::F32(vec![2, f as u64], vec![0.25; 2 * f])),
            ("t3", T::F64(vec![f as u64, 2], vec![1.5; 2 * f])),
        ];
        // Every plausible output declaration: most are wrong, one may fit.
        for (dt, w) in [DType::F32, DType::F64, DType::I64]
            .into_iter()
            .flat_map(|d| (0..5).map(move |w| (d, w)))
        {
            let shape = if w == 0 { vec![-1] } else { vec![-1, w] };
            let tensors = tensors
                .iter()
                .map(|(n, t)| {
                    (
                        *n,
                        match t {
                            T::F32(s, d) => T::F32(s.clone(), d.clone()),
                            T::F64(s, d) => T::F64(s.clone(), d.clone()),
                            _ => unreachable!(),
                        },
                    )
                })
                .collect();
            let r = build(
                f,
                [DType::F32, DType::F64][case % 2],
                nodes.clone(),
                tensors,
                vec![vi(&last, dt, &shape)],
            );
            if let Ok(model) = r {
                compiled += 1;
                let model = std::sync::Arc::new(model);
                let mut s = mle_exec::Session::new(model.clone());
                let x = vec![0.5; f * 3];
                let batch = mle_exec::Batch::from_row_major_f64(&x, 3, f).unwrap();
                s.predict_batch(&batch, Default::default()).unwrap();
                s.predict_row(&x[..f]).unwrap();
            }
        }
    }
    assert!(compiled >= 20, "only {compiled} random graphs compiled");
}
