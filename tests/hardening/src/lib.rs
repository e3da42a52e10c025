//! Helpers of the hardening tests: take a `.mle` file apart and put hand-edited sections back
//! together with valid framing and checksums (so that a hostile change reaches the validation
//! behind the CRCs), and small models with known outputs. The counting allocator the tests
//! install is the test kit's (`mle_testkit::CountingAlloc`).

use mle_format::header::{
    ALIGNMENT, HEADER_SIZE, REQUIRED_COMPRESSED, VERSION_MAJOR, VERSION_MINOR,
};
use mle_format::tree::{attr, Comparison, Precision, TreeEnsembleSpec};
use mle_format::{Attr, DType, Header, Metadata, ModelBuilder, Node, Task, ValueInfo};

/// The sections of a file as stored.
#[derive(Debug, Clone)]
pub struct Parts {
    /// Metadata JSON.
    pub meta: serde_json::Value,
    /// Graph JSON.
    pub graph: serde_json::Value,
    /// Weights blob (decompressed).
    pub weights: Vec<u8>,
}

/// Splits an unsigned, uncompressed file into its sections.
pub fn split(bytes: &[u8]) -> Parts {
    let h = Header::parse(bytes, "split").expect("a valid file");
    let sec = |i: usize| {
        let (o, s) = h.sections[i];
        &bytes[o as usize..(o + s) as usize]
    };
    Parts {
        meta: serde_json::from_slice(sec(0)).expect("metadata JSON"),
        graph: serde_json::from_slice(sec(1)).expect("graph JSON"),
        weights: sec(2).to_vec(),
    }
}

/// Assembles a file from raw section bytes with correct offsets, CRCs and header CRC.
/// `weights_stored` is written as is; `raw_size` (when compressed) is the declared
/// decompressed size.
pub fn assemble_raw(
    meta: &[u8],
    graph: &[u8],
    weights_stored: &[u8],
    raw_size: Option<u64>,
) -> Vec<u8> {
    let mut out = vec![0u8; HEADER_SIZE];
    out.extend_from_slice(meta);
    let graph_off = out.len() as u64;
    out.extend_from_slice(graph);
    while out.len() as u64 % ALIGNMENT != 0 {
        out.push(b' ');
    }
    let graph_size = out.len() as u64 - graph_off;
    let weights_off = out.len() as u64;
    out.extend_from_slice(weights_stored);
    let end = out.len() as u64;
    let h = Header {
        major: VERSION_MAJOR,
        minor: VERSION_MINOR,
        required_flags: if raw_size.is_some() {
            REQUIRED_COMPRESSED
        } else {
            0
        },
        optional_flags: 0,
        file_size: end,
        sections: [
            (HEADER_SIZE as u64, meta.len() as u64),
            (graph_off, graph_size),
            (weights_off, weights_stored.len() as u64),
            (end, 0),
        ],
        crcs: [
            crc32fast::hash(meta),
            crc32fast::hash(&out[graph_off as usize..weights_off as usize]),
            crc32fast::hash(weights_stored),
            crc32fast::hash(&[]),
        ],
        weights_raw_size: raw_size.unwrap_or(weights_stored.len() as u64),
    };
    out[..HEADER_SIZE].copy_from_slice(&h.to_bytes());
    out
}

/// Assembles an uncompressed file from parts.
pub fn assemble(p: &Parts) -> Vec<u8> {
    assemble_raw(
        &serde_json::to_vec(&p.meta).expect("JSON"),
        &serde_json::to_vec(&p.graph).expect("JSON"),
        &p.weights,
        None,
    )
}

/// Rewrites the header (recomputing its CRC) of a complete file.
pub fn patch_header(bytes: &mut [u8], f: impl FnOnce(&mut Header)) {
    let mut h = Header::parse(bytes, "patch").expect("a valid file");
    f(&mut h);
    bytes[..HEADER_SIZE].copy_from_slice(&h.to_bytes());
}

/// Metadata of a regressor over `n` f64 features with one `prediction` output.
pub fn regression_meta(n: usize) -> Metadata {
    Metadata::new(
        "hardening",
        "test",
        Task::Regression,
        (0..n).map(|i| format!("f{i}")).collect(),
        DType::F64,
        &[("prediction", DType::F64)],
    )
}

/// A linear regressor `y = coef · x + intercept` over `coef.len()` features.
pub fn linear_model(coef: &[f64], intercept: f64) -> ModelBuilder {
    let n = coef.len();
    let mut b = ModelBuilder::new(regression_meta(n));
    b.add_tensor("coef", &[1, n as u64], coef).expect("coef");
    b.add_tensor("intercept", &[1], &[intercept])
        .expect("intercept");
    b.set_inputs(vec![ValueInfo {
        name: "X".into(),
        dtype: DType::F64,
        shape: vec![-1, n as i64],
    }]);
    b.push_node(
        Node::new("lin", "LinearModel", &["X"], &["prediction"])
            .with("coef", Attr::Tensor("coef".into()))
            .with("intercept", Attr::Tensor("intercept".into())),
    );
    b.set_outputs(vec![ValueInfo {
        name: "prediction".into(),
        dtype: DType::F64,
        shape: vec![-1],
    }]);
    b
}

/// A `TreeEnsemble` given by its arrays (docs/OPS.md), as a builder over `n_features` inputs:
/// `lt` on f64 inputs, summed, no base scores. `leaf_values` has one value per node
/// (leaf_dim 1). Written unchecked (hostile arrays reach the executor's validation), without
/// the `base_scores` attribute (zeros by default), so the file stays small for any
/// `n_targets`.
#[allow(clippy::too_many_arguments)]
pub fn tree_model(
    n_features: usize,
    n_targets: i64,
    roots: &[u32],
    feature: &[i32],
    threshold: &[f64],
    left: &[u32],
    right: &[u32],
    flags: &[u8],
    leaf_values: &[f64],
) -> ModelBuilder {
    let mut spec = TreeEnsembleSpec::new(1, 1, Comparison::Lt, Precision::F64);
    spec.n_targets = usize::try_from(n_targets).expect("a non-negative n_targets");
    spec.base_scores = Vec::new();
    spec.roots = roots.to_vec();
    spec.feature = feature.to_vec();
    spec.threshold = threshold.to_vec();
    spec.left = left.to_vec();
    spec.right = right.to_vec();
    spec.flags = flags.to_vec();
    spec.leaf_values = leaf_values.to_vec();
    let mut b = ModelBuilder::new(regression_meta(n_features));
    let mut node = spec
        .add_unchecked(&mut b, "trees", "X", "prediction")
        .expect("tree tensors");
    node.attrs.remove(attr::BASE_SCORES);
    b.push_node(node);
    b.set_inputs(vec![ValueInfo {
        name: "X".into(),
        dtype: DType::F64,
        shape: vec![-1, n_features as i64],
    }]);
    let shape = if n_targets == 1 {
        vec![-1]
    } else {
        vec![-1, n_targets]
    };
    b.set_outputs(vec![ValueInfo {
        name: "prediction".into(),
        dtype: DType::F64,
        shape,
    }]);
    b
}

/// Two distinguishable models and a writer replacing one by the other (concurrency tests).
pub mod swap {
    use std::path::Path;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use mle_format::{write_atomic, WriteOptions};

    use super::linear_model;

    /// The offset (0 or 1000) every row of one batch shows, or a description of the mix.
    pub fn model_of(a: &[f64], b: &[f64], y: &[f64]) -> Result<u32, String> {
        let mut seen = None;
        for ((&a, &b), &y) in a.iter().zip(b).zip(y) {
            let off = y - (a + b);
            let k = if off.abs() < 1e-9 {
                0
            } else if (off - 1000.0).abs() < 1e-9 {
                1
            } else {
                return Err(format!("row gives {y} for a={a}, b={b}: neither model"));
            };
            if *seen.get_or_insert(k) != k {
                return Err("one batch mixes both models".into());
            }
        }
        seen.ok_or_else(|| "empty result".into())
    }

    /// The two models: `y = a + b` and `y = a + b + 1000`, as file bytes.
    pub fn models() -> [Vec<u8>; 2] {
        [0.0, 1000.0].map(|icpt| {
            linear_model(&[1.0, 1.0], icpt)
                .to_bytes(&WriteOptions::default())
                .expect("write")
        })
    }

    /// Replaces `path` `n` times by atomic rename, alternating the two models, then sets `done`.
    pub fn replace_loop(path: &Path, n: usize, done: &AtomicBool, swaps: &AtomicUsize) {
        let m = models();
        for i in 0..n {
            write_atomic(path, &m[(i + 1) % 2]).expect("write_atomic");
            swaps.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        done.store(true, Ordering::SeqCst);
    }
}
