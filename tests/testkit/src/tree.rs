//! `TreeEnsemble` models for tests and benches, built on
//! [`mle_format::tree::TreeEnsembleSpec`] (the one writer of the node): a model around a spec,
//! stumps, an ensemble from per-tree node lists, and random full trees.
//!
//! The models are written with [`TreeEnsembleSpec::add_unchecked`], so tests of invalid
//! ensembles reach the executor's validation; a test that needs an attribute the typed spec
//! cannot express (an unknown `comparison`, no `base_scores`) edits the node with
//! [`builder_with`].

use mle_format::tree::{flags, Comparison, Precision, TreeAnnotations, TreeEnsembleSpec};
use mle_format::{
    DType, Metadata, MleFile, ModelBuilder, Node, ReadOptions, Task, ValueInfo, WriteOptions,
};

use crate::rng::Rng;

/// The node's name in the models built here.
pub const NODE: &str = "trees";

/// A regressor over `n_features` inputs (`X`, of `dtype`) whose one node is `spec`
/// (named [`NODE`], output `prediction`, shape `[-1, n_targets]`), after `edit` has adjusted
/// the node.
pub fn builder_with(
    spec: &TreeEnsembleSpec,
    n_features: usize,
    dtype: DType,
    edit: impl FnOnce(&mut Node),
) -> ModelBuilder {
    let meta = Metadata::new(
        "test",
        "TreeEnsemble",
        Task::Regression,
        (0..n_features).map(|i| format!("f{i}")).collect(),
        dtype,
        &[("prediction", DType::F64)],
    );
    let mut b = ModelBuilder::new(meta);
    let mut node = spec
        .add_unchecked(&mut b, NODE, "X", "prediction")
        .expect("the spec's tensors are written");
    edit(&mut node);
    b.push_node(node);
    b.set_inputs(vec![ValueInfo {
        name: "X".into(),
        dtype,
        shape: vec![-1, n_features as i64],
    }]);
    b.set_outputs(vec![ValueInfo {
        name: "prediction".into(),
        dtype: DType::F64,
        shape: vec![-1, spec.n_targets as i64],
    }]);
    b
}

/// [`builder_with`] with f64 inputs and the node as the spec writes it.
pub fn builder(spec: &TreeEnsembleSpec, n_features: usize) -> ModelBuilder {
    builder_with(spec, n_features, DType::F64, |_| {})
}

/// The bytes of [`builder`]'s model.
pub fn bytes(spec: &TreeEnsembleSpec, n_features: usize) -> Vec<u8> {
    builder(spec, n_features)
        .to_bytes(&WriteOptions::default())
        .expect("the model is written")
}

/// [`builder`]'s model, read back.
pub fn file(spec: &TreeEnsembleSpec, n_features: usize) -> MleFile {
    read(&bytes(spec, n_features))
}

/// Reads model bytes (default options).
pub fn read(bytes: &[u8]) -> MleFile {
    MleFile::from_bytes(bytes, "test.mle", &ReadOptions::default()).expect("the model reads back")
}

/// Appends a one-split tree `x[feature] ? threshold → (lo | hi)` (leaf_dim 1) and returns its
/// root.
pub fn push_stump(
    spec: &mut TreeEnsembleSpec,
    feature: i32,
    threshold: f64,
    fl: u8,
    lo: f64,
    hi: f64,
) -> u32 {
    let root = spec.n_nodes() as u32;
    spec.split(feature, threshold, root + 1, root + 2, fl);
    spec.leaf(&[lo]);
    spec.leaf(&[hi]);
    spec.roots.push(root);
    root
}

/// [`builder`] with the explanation annotations `ann` (`node_cover`, `leaf_ids`) written next
/// to the spec (validated: a test of invalid annotations edits the file instead).
pub fn builder_annotated(
    spec: &TreeEnsembleSpec,
    ann: &TreeAnnotations,
    n_features: usize,
    dtype: DType,
) -> ModelBuilder {
    let meta = Metadata::new(
        "test",
        "TreeEnsemble",
        Task::Regression,
        (0..n_features).map(|i| format!("f{i}")).collect(),
        dtype,
        &[("prediction", DType::F64)],
    );
    let mut b = ModelBuilder::new(meta);
    spec.write_annotated(ann, &mut b, NODE, "X", "prediction")
        .expect("a valid spec and annotations");
    b.set_inputs(vec![ValueInfo {
        name: "X".into(),
        dtype,
        shape: vec![-1, n_features as i64],
    }]);
    b.set_outputs(vec![ValueInfo {
        name: "prediction".into(),
        dtype: DType::F64,
        shape: vec![-1, spec.n_targets as i64],
    }]);
    b
}

/// Covers for every node of `spec`: each leaf a random count in `1..=20` (0 with probability
/// `zero`), each internal node the sum of its children's (children point forward, so a
/// backward pass sees children first), as a training set would give.
pub fn random_covers(spec: &TreeEnsembleSpec, rng: &mut Rng, zero: f64) -> Vec<f64> {
    let n = spec.n_nodes();
    let mut c = vec![0.0; n];
    for i in (0..n).rev() {
        c[i] = if spec.flags[i] & flags::LEAF != 0 {
            if rng.chance(zero) {
                0.0
            } else {
                rng.usize(1, 21) as f64
            }
        } else {
            c[spec.left[i] as usize] + c[spec.right[i] as usize]
        };
    }
    c
}

/// One node of a tree given as a list, children numbered within the tree.
#[derive(Debug, Clone, PartialEq)]
pub enum TreeNode {
    /// A numeric split: `feature`, `threshold`, the children's positions in the list, and
    /// the flags ([`flags::MISSING_LEFT`] and the missing-value bits).
    Split(i32, f64, u32, u32, u8),
    /// A leaf with `leaf_dim` values.
    Leaf(Vec<f64>),
}

/// Appends `nodes` (one tree, children numbered within it) as a tree adding to `target` with
/// `weight`, and returns its root.
pub fn push_tree(spec: &mut TreeEnsembleSpec, nodes: &[TreeNode], target: u32, weight: f64) -> u32 {
    let base = spec.n_nodes() as u32;
    for n in nodes {
        match n {
            TreeNode::Split(feature, threshold, l, r, fl) => {
                spec.split(*feature, *threshold, base + l, base + r, *fl);
            }
            TreeNode::Leaf(v) => {
                spec.leaf(v);
            }
        }
    }
    spec.push_tree(base, target, weight);
    base
}

/// An ensemble of the given trees (each a node list, see [`push_tree`]; target 0, weight 1).
pub fn ensemble(
    comparison: Comparison,
    precision: Precision,
    trees: &[Vec<TreeNode>],
) -> TreeEnsembleSpec {
    let mut spec = TreeEnsembleSpec::new(1, 1, comparison, precision);
    for t in trees {
        push_tree(&mut spec, t, 0, 1.0);
    }
    spec
}

/// `n_trees` random full trees of `depth` over `n_features` (XGBoost style: `lt`, f32
/// precision, f32-valued thresholds from [`Rng::normal`], a random default direction per
/// split, a value drawn on every node). Nodes are numbered depth-first, left subtree first.
pub fn random_full_forest(
    rng: &mut Rng,
    n_trees: usize,
    depth: u32,
    n_features: usize,
) -> TreeEnsembleSpec {
    fn build(s: &mut TreeEnsembleSpec, rng: &mut Rng, d: u32, depth: u32, nf: usize) -> u32 {
        let me = s.feature.len() as u32;
        s.feature.push((rng.next_u64() % nf as u64) as i32);
        s.threshold.push(rng.normal() as f32 as f64);
        s.left.push(0);
        s.right.push(0);
        s.leaf_values.push(rng.unit() - 0.5);
        if d == depth {
            s.flags.push(flags::LEAF);
            return me;
        }
        s.flags.push(if rng.next_u64() % 2 == 0 {
            flags::MISSING_LEFT
        } else {
            0
        });
        let l = build(s, rng, d + 1, depth, nf);
        let r = build(s, rng, d + 1, depth, nf);
        s.left[me as usize] = l;
        s.right[me as usize] = r;
        me
    }
    let mut s = TreeEnsembleSpec::new(1, 1, Comparison::Lt, Precision::F32);
    for _ in 0..n_trees {
        let root = build(&mut s, rng, 0, depth, n_features);
        s.roots.push(root);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::Trees;

    #[test]
    fn node_lists_number_children_within_the_tree() {
        let stump = vec![
            TreeNode::Split(0, 0.5, 1, 2, flags::MISSING_LEFT),
            TreeNode::Leaf(vec![1.0]),
            TreeNode::Leaf(vec![2.0]),
        ];
        let s = ensemble(Comparison::Lt, Precision::F64, &[stump.clone(), stump]);
        assert_eq!(s.roots, [0, 3]);
        assert_eq!(s.left, [1, 0, 0, 4, 0, 0]);
        assert_eq!(s.right, [2, 0, 0, 5, 0, 0]);
        s.validate().expect("a valid ensemble");
        let t = Trees::from_file(&file(&s, 1));
        assert_eq!(t.row(&[0.0]), [2.0]);
        assert_eq!(t.row(&[1.0]), [4.0]);
        assert_eq!(t.row(&[f64::NAN]), [2.0]);
    }

    #[test]
    fn random_full_trees_are_full_and_valid() {
        let s = random_full_forest(&mut Rng(42), 3, 4, 5);
        s.validate().expect("a valid ensemble");
        assert_eq!(s.n_trees(), 3);
        assert_eq!(s.n_nodes(), 3 * 31);
        let leaves = s.flags.iter().filter(|&&f| f & flags::LEAF != 0).count();
        assert_eq!(leaves, 3 * 16);
    }
}
