//! Regression tests for plan amplification: a few KiB of graph JSON must not compile into a
//! plan that asks for gigabytes (`MAX_PLAN_BYTES` + `PLAN_BYTES_PER_FILE_BYTE` × file size).
//! Found by the hardening tests (`tests/hardening/tests/hostile_models.rs`, which also bounds
//! the heap with a counting allocator).

use mle_exec::{ExecError, Model};
use mle_format::*;

/// Metadata of a model over `n` unnamed f64 features with no declared outputs.
fn meta(n: usize) -> Metadata {
    let mut m = Metadata::new("test", "test", Task::Regression, vec![], DType::F64, &[]);
    m.input.shape = vec![-1, n as i64];
    m
}

fn compile(b: &ModelBuilder) -> Result<Model, ExecError> {
    Model::from_bytes(&b.to_bytes(&WriteOptions::default()).unwrap(), "amp.mle")
}

fn over_budget(r: Result<Model, ExecError>) {
    match r {
        Err(ExecError::InvalidGraph { model, detail, .. }) => {
            assert_eq!(model, "amp.mle");
            assert!(detail.contains("over the plan budget"), "{detail}");
        }
        Err(e) => panic!("expected the plan budget error, got {e}"),
        Ok(_) => panic!("expected the plan budget error, the graph compiled"),
    }
}

/// `[N,1,1] + [1,a,1] + [1,1,b]`: an `[N, a, b]` value from `a + b` stored floats.
fn outer_broadcast(a: usize, b: usize) -> ModelBuilder {
    let mut m = ModelBuilder::new(meta(1));
    m.add_tensor("ca", &[1, a as u64, 1], &vec![1.0f64; a])
        .unwrap();
    m.add_tensor("cb", &[1, 1, b as u64], &vec![1.0f64; b])
        .unwrap();
    m.set_inputs(vec![ValueInfo {
        name: "X".into(),
        dtype: DType::F64,
        shape: vec![-1, 1],
    }]);
    m.push_node(
        Node::new("r", "Reshape", &["X"], &["x3"]).with("shape", Attr::Ints(vec![-1, 1, 1])),
    );
    m.push_node(Node::new("a", "Add", &["x3"], &["xa"]).with("b", Attr::Tensor("ca".into())));
    m.push_node(Node::new("b", "Add", &["xa"], &["y"]).with("b", Attr::Tensor("cb".into())));
    m.set_outputs(vec![ValueInfo {
        name: "y".into(),
        dtype: DType::F64,
        shape: vec![-1, a as i64, b as i64],
    }]);
    m
}

#[test]
fn outer_product_broadcast_amplification_is_refused() {
    over_budget(compile(&outer_broadcast(4096, 4096)));
    compile(&outer_broadcast(64, 64)).expect("a small outer broadcast compiles");
}

/// `X` concatenated `k` times into `A`, then `A` 16 times into each of `outs` outputs.
fn concat_fanout(f: usize, k: usize, outs: usize) -> ModelBuilder {
    let mut m = ModelBuilder::new(meta(f));
    m.set_inputs(vec![ValueInfo {
        name: "X".into(),
        dtype: DType::F64,
        shape: vec![-1, f as i64],
    }]);
    m.push_node(Node::new("a", "Concat", &vec!["X"; k], &["A"]));
    let mut outputs = Vec::new();
    for o in 0..outs {
        let name = format!("out{o}");
        m.push_node(Node::new(
            format!("c{o}"),
            "Concat",
            &["A"; 16],
            &[name.as_str()],
        ));
        outputs.push(ValueInfo {
            name,
            dtype: DType::F64,
            shape: vec![-1, (16 * k * f) as i64],
        });
    }
    m.set_outputs(outputs);
    m
}

#[test]
fn concat_fanout_amplification_is_refused() {
    // About 60 KiB of JSON asking for 1000 outputs of 1 M f64 each, per row.
    over_budget(compile(&concat_fanout(64, 1024, 1000)));
    compile(&concat_fanout(4, 4, 4)).expect("a small fan-out compiles");
}
