//! Malformed ensembles give typed errors at compile time, naming what is wrong.

mod tree_util;

use mle_exec::ExecError;
use mle_format::{tree::attr, Attr, Node};
use tree_util::*;

/// Sets the string attribute `key` to `value` (a value the typed spec cannot hold).
fn set_str(key: &'static str, value: &'static str) -> impl FnOnce(&mut Node) {
    move |n| {
        n.attrs.insert(key.into(), Attr::Str(value.into()));
    }
}

/// A valid two-tree ensemble on 3 features: nodes 0..3 and 3..8.
fn valid() -> Spec {
    let mut s = spec("le", "f64");
    s.stump(2, 0.5, DL, 1.0, 2.0);
    s.split(0, 1.0, 4, 5, 0); // 3
    s.leaf(&[3.0]); // 4
    s.split(1, 2.0, 6, 7, 0); // 5
    s.leaf(&[4.0]); // 6
    s.leaf(&[5.0]); // 7
    s.roots.push(3);
    s
}

#[track_caller]
fn invalid(s: &Spec, n_features: usize, needle: &str) {
    invalid_with(s, n_features, |_| {}, needle);
}

/// As [`invalid`], with the node edited before it is written.
#[track_caller]
fn invalid_with(s: &Spec, n_features: usize, edit: impl FnOnce(&mut Node), needle: &str) {
    match s.compile_with(n_features, edit) {
        Err(ExecError::InvalidGraph { detail, node, .. }) => {
            assert_eq!(node, "trees");
            assert!(
                detail.contains(needle),
                "{detail:?} does not mention {needle:?}"
            );
        }
        Err(e) => panic!("expected InvalidGraph mentioning {needle:?}, got {e}"),
        Ok(_) => panic!("expected InvalidGraph mentioning {needle:?}, compiled"),
    }
}

#[test]
fn the_valid_ensemble_compiles() {
    let s = valid();
    let ens = s.compile(3).unwrap();
    assert_eq!(ens.n_trees(), 2);
    let out = predict_all(&ens, &[vec![0.0, 0.0, 0.0], vec![2.0, 3.0, f64::NAN]]);
    assert_eq!(out, [vec![1.0 + 3.0], vec![1.0 + 5.0]]);
}

#[test]
fn backward_self_and_out_of_range_children() {
    let mut s = valid();
    s.left[5] = 3; // back to an ancestor: a cycle
    invalid(&s, 3, "must point forward");
    let mut s = valid();
    s.right[5] = 5; // self loop
    invalid(&s, 3, "must point forward");
    let mut s = valid();
    s.right[0] = 100;
    invalid(&s, 3, "must point forward");
    let mut s = valid();
    s.roots[1] = 8;
    invalid(&s, 3, "root 8 outside");
}

#[test]
fn shared_nodes_are_refused() {
    // Two parents of one node (forward, so no cycle) would duplicate subtrees; refused.
    let mut s = valid();
    s.left[3] = 6; // node 6 is also node 5's left child
    invalid(&s, 3, "reached twice");
    // Two trees with one root.
    let mut s = valid();
    s.roots[1] = 0;
    invalid(&s, 3, "reached twice");
}

#[test]
fn feature_out_of_range() {
    invalid(&valid(), 2, "feature 2 outside 0..2");
    let mut s = valid();
    s.feature[5] = -1;
    invalid(&s, 3, "feature -1");
    // Leaves' features are ignored.
    let mut s = valid();
    s.feature[1] = 99;
    s.compile(3).unwrap();
}

#[test]
fn wrong_tensor_lengths() {
    let mut s = valid();
    s.threshold.pop();
    invalid(&s, 3, "\"threshold\" has 7 elements, expected 8");
    let mut s = valid();
    s.left.push(0);
    invalid(&s, 3, "\"left\"");
    let mut s = valid();
    s.right.pop();
    invalid(&s, 3, "\"right\"");
    let mut s = valid();
    s.flags.pop();
    invalid(&s, 3, "\"flags\"");
    let mut s = valid();
    s.leaf_values.pop();
    invalid(&s, 3, "\"leaf_values\"");
    let mut s = valid();
    s.weights = Some(vec![1.0]);
    invalid(&s, 3, "\"tree_weights\"");
    let mut s = valid();
    s.targets = Some(vec![0, 0, 0]);
    invalid(&s, 3, "\"tree_targets\"");
}

#[test]
fn too_deep() {
    let mut s = spec("le", "f64");
    for i in 0..200u32 {
        s.split(0, 0.0, 2 * i + 2, 2 * i + 1, 0);
        s.leaf(&[1.0]);
    }
    s.leaf(&[2.0]);
    s.roots.push(0);
    invalid(&s, 1, "depth exceeds the limit of 128");
    // 128 deep is fine.
    let mut s = spec("le", "f64");
    for i in 0..128u32 {
        s.split(0, 0.0, 2 * i + 2, 2 * i + 1, 0);
        s.leaf(&[1.0]);
    }
    s.leaf(&[2.0]);
    s.roots.push(0);
    s.compile(1).unwrap();
}

#[test]
fn targets_and_shapes() {
    let mut s = valid();
    s.n_targets = 2;
    s.base_scores = vec![0.0; 2];
    s.targets = Some(vec![0, 2]);
    invalid(&s, 3, "tree_targets[1] = 2 outside 0..2");
    let mut s = valid();
    s.n_targets = 0;
    invalid(&s, 3, "n_targets is 0");
    let mut s = valid();
    s.n_targets = 1 << 40;
    invalid(&s, 3, "n_targets is");
    let mut s = valid();
    s.n_targets = 2;
    s.leaf_dim = 3;
    invalid(&s, 3, "leaf_dim is 3");
    let mut s = valid();
    s.base_scores = vec![0.0, 1.0];
    invalid(&s, 3, "base_scores has 2 values");
}

#[test]
fn flags_and_strings() {
    let mut s = valid();
    s.flags[0] |= 0x40;
    invalid(&s, 3, "undefined bits");
    let s = valid();
    invalid_with(
        &s,
        3,
        set_str(attr::COMPARISON, "gt"),
        "\"comparison\" is \"gt\"",
    );
    invalid_with(
        &s,
        3,
        set_str(attr::INPUT_PRECISION, "f16"),
        "input_precision",
    );
    invalid_with(&s, 3, set_str(attr::AGGREGATE, "max"), "aggregate");
}

#[test]
fn categorical_offsets() {
    let mut s = valid();
    s.flags[0] |= CAT;
    // Missing bitsets.
    invalid(&s, 3, "missing tensor attribute \"cat_offsets\"");
    let sets = |offsets: Vec<u32>, bits: Vec<u32>| Some(CategorySets { offsets, bits });
    s.categories = sets(vec![0, 1, 1, 1, 1, 1, 1, 1], vec![1]);
    invalid(&s, 3, "\"cat_offsets\" has 8 elements, expected 9");
    s.categories = sets(vec![0, 2, 1, 1, 1, 1, 1, 1, 1], vec![1, 2]);
    invalid(&s, 3, "cat_offsets[2] = 1");
    s.categories = sets(vec![0, 3, 3, 3, 3, 3, 3, 3, 3], vec![1, 2]);
    invalid(&s, 3, "cat_offsets[1] = 3");
    s.categories = sets(vec![0, 1, 1, 1, 1, 1, 1, 1, 1], vec![1]);
    invalid_with(
        &s,
        3,
        set_str(attr::CATEGORICAL_MEMBERS, "up"),
        "categorical_members",
    );
    s.categorical_members = Members::Right;
    s.compile(3).unwrap();
}

#[test]
fn wrong_dtype_is_a_format_error() {
    // `feature` must be i32; a u32 tensor under that name is refused by the reader.
    let s = valid();
    let bytes = s.to_bytes(3);
    let file =
        mle_format::MleFile::from_bytes(&bytes, "t.mle", &mle_format::ReadOptions::default())
            .unwrap();
    let mut node = file.graph().nodes[0].clone();
    let left = node.attr(attr::LEFT).cloned().expect("the left tensor");
    node.attrs.insert(attr::FEATURE.into(), left);
    match mle_exec::tree::TreeEnsemble::compile(&node, &file, 3) {
        Err(ExecError::Format(e)) => assert!(e.to_string().contains("expected i32"), "{e}"),
        other => panic!("expected a format error, got {:?}", other.map(|_| ())),
    }
    node.attrs
        .insert("feature".into(), mle_format::Attr::Int(3));
    assert!(matches!(
        mle_exec::tree::TreeEnsemble::compile(&node, &file, 3),
        Err(ExecError::InvalidGraph { .. })
    ));
}
