//! Hostile models built by hand: every one is refused with a typed error (or, where it is a
//! legal model, runs) while the heap stays within a small multiple of the file's size plus a
//! constant, measured by a counting global allocator. Each file has valid framing and
//! checksums, so the change reaches the validation behind the CRCs.

use std::sync::Arc;

use mle_exec::{ExecError, Model, Session};
use mle_format::{
    Attr, DType, FormatError, MleFile, ModelBuilder, Node, ReadOptions, ValueInfo, WriteOptions,
};
use mle_hardening::*;
use mle_testkit::{peak_during, CountingAlloc};
use serde_json::json;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// The documented bound: what a load, compile and one-row prediction of a file may add to the
/// heap. 32 × the file (the aligned copy, parsed JSON, dequantized weights, tree layouts) plus
/// 80 MiB: the executor's per-row plan cap (`mle_exec::MAX_PLAN_BYTES`, 64 MiB) and slack for
/// error strings and hash maps.
fn bound(file_len: usize) -> usize {
    32 * file_len + (80 << 20)
}

/// Loads, compiles and (if it compiles) predicts one row of zeros, checking the memory bound.
fn run_bounded(bytes: &[u8]) -> Result<Vec<f64>, ExecError> {
    let (res, peak) = peak_during(|| {
        let model = Arc::new(Model::from_bytes(bytes, "hostile.mle")?);
        let mut s = Session::new(model.clone());
        let out = s.predict_row(&vec![0.0; model.n_features()])?;
        Ok(match &out.outputs[0].data {
            mle_exec::OutputData::F64(v) => v.clone(),
            mle_exec::OutputData::F32(v) => v.iter().map(|&x| x as f64).collect(),
            mle_exec::OutputData::I64(v) => v.iter().map(|&x| x as f64).collect(),
        })
    });
    assert!(
        peak <= bound(bytes.len()),
        "{} bytes of heap for a {}-byte file (bound {}); result {res:?}",
        peak,
        bytes.len(),
        bound(bytes.len())
    );
    res
}

fn expect_invalid_graph(r: Result<Vec<f64>, ExecError>, needle: &str) {
    match r {
        Err(ExecError::InvalidGraph { model, detail, .. }) => {
            assert_eq!(model, "hostile.mle");
            assert!(
                detail.contains(needle),
                "{detail:?} should mention {needle:?}"
            );
        }
        other => panic!("expected InvalidGraph mentioning {needle:?}, got {other:?}"),
    }
}

fn expect_format(r: Result<Vec<f64>, ExecError>, needle: &str) -> FormatError {
    match r {
        Err(ExecError::Format(e)) => {
            let msg = e.to_string();
            assert!(msg.starts_with("hostile.mle: "), "{msg}");
            assert!(msg.contains(needle), "{msg:?} should mention {needle:?}");
            e
        }
        other => panic!("expected a format error mentioning {needle:?}, got {other:?}"),
    }
}

fn bytes_of(b: &ModelBuilder) -> Vec<u8> {
    b.to_bytes(&WriteOptions::default()).expect("write")
}

const LEAF: u8 = 1;

/// A stump over feature 0 (`x < 0.5 → 1.0 | 2.0`): the base that the cyclic tests corrupt.
fn stump(left: u32, right: u32) -> Vec<u8> {
    bytes_of(&tree_model(
        1,
        1,
        &[0],
        &[0, 0, 0],
        &[0.5, 0.0, 0.0],
        &[left, 0, 0],
        &[right, 0, 0],
        &[0, LEAF, LEAF],
        &[0.0, 1.0, 2.0],
    ))
}

#[test]
fn well_formed_stump_runs() {
    // The control: the same construction, untouched, predicts the left leaf for x = 0.
    assert_eq!(run_bounded(&stump(1, 2)).unwrap(), vec![1.0]);
}

#[test]
fn cyclic_tree_self_loop_is_refused() {
    expect_invalid_graph(run_bounded(&stump(0, 2)), "must point forward");
}

#[test]
fn cyclic_tree_two_node_cycle_is_refused() {
    // 0 → 1 → 0: node 1 is a split whose left child is the root.
    let bytes = bytes_of(&tree_model(
        1,
        1,
        &[0],
        &[0, 0, 0],
        &[0.5, 0.5, 0.0],
        &[1, 0, 0],
        &[2, 2, 0],
        &[0, 0, LEAF],
        &[0.0, 0.0, 2.0],
    ));
    expect_invalid_graph(run_bounded(&bytes), "must point forward");
}

#[test]
fn backward_children_are_refused() {
    // A leaf laid out before its parent: 0 is a leaf, 1 splits into 0 and 2.
    let bytes = bytes_of(&tree_model(
        1,
        1,
        &[1],
        &[0, 0, 0],
        &[0.0, 0.5, 0.0],
        &[0, 0, 0],
        &[0, 2, 0],
        &[LEAF, 0, LEAF],
        &[1.0, 0.0, 2.0],
    ));
    expect_invalid_graph(run_bounded(&bytes), "must point forward");
}

#[test]
fn shared_subtree_diamond_is_refused() {
    // Both children of the root are node 1: a DAG, not a tree (exponential walks otherwise).
    expect_invalid_graph(run_bounded(&stump(1, 1)), "reached twice");
}

#[test]
fn two_trees_sharing_nodes_are_refused() {
    let bytes = bytes_of(&tree_model(
        1,
        1,
        &[0, 1],
        &[0, 0, 0],
        &[0.5, 0.0, 0.0],
        &[1, 0, 0],
        &[2, 0, 0],
        &[0, LEAF, LEAF],
        &[0.0, 1.0, 2.0],
    ));
    expect_invalid_graph(run_bounded(&bytes), "reached twice");
}

/// A chain tree of `depth` splits: split i goes left to a leaf, right to split i+1.
fn chain_tree(depth: usize) -> Vec<u8> {
    let n = 2 * depth + 1;
    let (mut feature, mut threshold, mut left, mut right, mut flags, mut leaf) = (
        vec![0i32; n],
        vec![0.0; n],
        vec![0u32; n],
        vec![0u32; n],
        vec![0u8; n],
        vec![0.0; n],
    );
    for i in 0..depth {
        let s = 2 * i; // split
        left[s] = (s + 1) as u32;
        right[s] = (s + 2) as u32;
        threshold[s] = i as f64;
        flags[s + 1] = LEAF;
        leaf[s + 1] = i as f64;
        feature[s] = 0;
    }
    flags[n - 1] = LEAF;
    leaf[n - 1] = -1.0;
    bytes_of(&tree_model(
        1,
        1,
        &[0],
        &feature,
        &threshold,
        &left,
        &right,
        &flags,
        &leaf,
    ))
}

#[test]
fn tree_of_depth_10000_is_refused_with_bounded_memory() {
    let bytes = chain_tree(10_000);
    expect_invalid_graph(run_bounded(&bytes), "depth exceeds the limit of 128");
}

#[test]
fn tree_at_the_depth_limit_runs() {
    // The control: depth 128 is accepted and walks to the first leaf for x = 0 (0 < 0 is false,
    // so the walk goes right once, then left at threshold 1).
    assert_eq!(run_bounded(&chain_tree(128)).unwrap(), vec![1.0]);
}

/// A one-leaf ensemble with `n_targets` outputs (the file stays tiny whatever the count).
fn wide_ensemble(n_targets: i64) -> Vec<u8> {
    bytes_of(&tree_model(
        1,
        n_targets,
        &[0],
        &[0],
        &[0.0],
        &[0],
        &[0],
        &[LEAF],
        &[3.0],
    ))
}

#[test]
fn a_million_classes_are_refused() {
    expect_invalid_graph(
        run_bounded(&wide_ensemble(1_000_000)),
        "n_targets is 1000000",
    );
}

#[test]
fn the_largest_class_count_runs_in_bounded_memory() {
    // 65 536 targets (the cap) from a file of about 1 KiB: accepted, and the one-row run stays
    // within the bound; target 0 gets the leaf, the others the zero base score.
    let bytes = wide_ensemble(65_536);
    let out = run_bounded(&bytes).unwrap();
    assert_eq!(out.len(), 65_536);
    assert_eq!((out[0], out[1], out[65_535]), (3.0, 0.0, 0.0));
}

#[test]
fn a_million_class_labels_in_metadata_stay_proportional() {
    // The labels are in the file (about 8 MB of JSON), so the memory is proportional: the
    // mismatch with the graph's single output is then refused.
    let mut p = split(&stump(1, 2));
    p.meta["task"] = json!("multiclass");
    p.meta["output"]["class_labels"] = json!({ "int": (0..1_000_000).collect::<Vec<i64>>() });
    let bytes = assemble(&p);
    let r = run_bounded(&bytes);
    // Metadata may be accepted by the format; the executor is indifferent to labels.
    if let Err(e) = &r {
        assert!(e.to_string().starts_with("hostile.mle: "), "{e}");
    }
}

fn first_tensor_patched(f: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut p = split(&stump(1, 2));
    f(&mut p.graph["tensors"][0]);
    assemble(&p)
}

#[test]
fn tensor_shape_product_overflow_is_refused() {
    let bytes = first_tensor_patched(|t| t["shape"] = json!([1u64 << 32, 1u64 << 32, 16]));
    let e = expect_format(run_bounded(&bytes), "overflows");
    assert!(matches!(e, FormatError::Corrupted { .. }), "{e:?}");
}

#[test]
fn tensor_byte_length_overflow_is_refused() {
    // The element count fits in u64, the byte count (×8 for f64) does not.
    let mut p = split(&stump(1, 2));
    let i = p.graph["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .position(|t| t["dtype"] == "f64")
        .unwrap();
    p.graph["tensors"][i]["shape"] = json!([1u64 << 62]);
    let e = expect_format(run_bounded(&assemble(&p)), "byte length overflows");
    assert!(matches!(e, FormatError::Corrupted { .. }), "{e:?}");
}

#[test]
fn tensor_length_mismatch_is_refused() {
    let bytes = first_tensor_patched(|t| {
        let len = t["length"].as_u64().unwrap();
        t["length"] = json!(len + 4);
    });
    expect_format(run_bounded(&bytes), "needs");
}

#[test]
fn tensor_past_the_weights_is_refused() {
    let bytes = first_tensor_patched(|t| t["offset"] = json!(u64::MAX - 63));
    expect_format(run_bounded(&bytes), "exceed the weights section");
}

#[test]
fn tensor_rank_9_is_refused() {
    let bytes = first_tensor_patched(|t| t["shape"] = json!([1, 1, 1, 1, 1, 1, 1, 1, 1]));
    expect_format(run_bounded(&bytes), "rank 9 exceeds 8");
}

#[test]
fn header_claiming_a_1tb_file_is_refused() {
    let mut bytes = stump(1, 2);
    patch_header(&mut bytes, |h| h.file_size = 1 << 40);
    let e = expect_format(run_bounded(&bytes), "truncated");
    assert!(
        matches!(e, FormatError::Truncated { needed, .. } if needed == 1 << 40),
        "{e:?}"
    );
}

#[test]
fn header_claiming_a_1tb_weights_section_is_refused() {
    // Only the weights section claims 1 TB; the file size field is the real one.
    let mut bytes = stump(1, 2);
    patch_header(&mut bytes, |h| {
        h.sections[2].1 = 1 << 40;
        h.weights_raw_size = 1 << 40;
        h.sections[3].0 = h.sections[2].0 + (1 << 40);
    });
    let r = run_bounded(&bytes);
    assert!(matches!(&r, Err(ExecError::Format(_))), "{r:?}");
}

#[test]
fn header_claiming_a_1tb_section_is_refused_through_mmap() {
    // The same through the mmap path: nothing is read or allocated past the real file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.mle");
    let mut bytes = stump(1, 2);
    patch_header(&mut bytes, |h| {
        h.sections[1].1 = 1 << 40;
    });
    std::fs::write(&path, &bytes).unwrap();
    let (r, peak) = peak_during(|| MleFile::open(&path, &ReadOptions::default()));
    let e = r.unwrap_err();
    assert!(e.to_string().contains("big.mle"), "{e}");
    assert!(peak < 1 << 20, "{peak}");
}

#[test]
fn json_section_over_64_mib_is_refused_before_parsing() {
    // A graph section that claims 65 MiB (and really has it: spaces), refused by size alone.
    let p = split(&stump(1, 2));
    let mut graph = serde_json::to_vec(&p.graph).unwrap();
    graph.resize(graph.len() + (65 << 20), b' ');
    let bytes = assemble_raw(
        &serde_json::to_vec(&p.meta).unwrap(),
        &graph,
        &p.weights,
        None,
    );
    expect_format(run_bounded(&bytes), "exceeds the limit of 67108864");
}

#[test]
fn compressed_section_claiming_1tb_raw_is_refused_before_allocating() {
    let p = split(&stump(1, 2));
    let stored = zstd::bulk::compress(&p.weights, 3).unwrap();
    let bytes = assemble_raw(
        &serde_json::to_vec(&p.meta).unwrap(),
        &serde_json::to_vec(&p.graph).unwrap(),
        &stored,
        Some(1 << 40),
    );
    expect_format(run_bounded(&bytes), "exceeds 256x the stored size");
}

#[test]
fn compressed_section_lying_within_the_ratio_cap_is_refused() {
    // Claims exactly the most the cap allows; decompression then finds fewer bytes. The
    // buffer is allocated (that is the cap's purpose) and bounded by 256 × stored + 1 MiB.
    let p = split(&stump(1, 2));
    let stored = zstd::bulk::compress(&p.weights, 3).unwrap();
    let raw = stored.len() as u64 * 256 + (1 << 20);
    let bytes = assemble_raw(
        &serde_json::to_vec(&p.meta).unwrap(),
        &serde_json::to_vec(&p.graph).unwrap(),
        &stored,
        Some(raw),
    );
    expect_format(run_bounded(&bytes), "decompressed to");
}

fn nested(prefix: &[u8], depth: usize, suffix: &[u8]) -> Vec<u8> {
    let mut s = prefix.to_vec();
    s.extend(std::iter::repeat_n(b'[', depth));
    s.extend(std::iter::repeat_n(b']', depth));
    s.extend_from_slice(suffix);
    s
}

#[test]
fn graph_json_nested_100000_deep_is_refused_without_stack_overflow() {
    // The graph's fields are typed, so the nesting is refused at its first bracket.
    let p = split(&stump(1, 2));
    let graph = nested(b"{\"inputs\":", 100_000, b"}");
    let bytes = assemble_raw(
        &serde_json::to_vec(&p.meta).unwrap(),
        &graph,
        &p.weights,
        None,
    );
    let e = expect_format(run_bounded(&bytes), "corrupted graph section: invalid JSON");
    assert!(matches!(
        e,
        FormatError::Corrupted {
            section: mle_format::Section::Graph,
            ..
        }
    ));
}

#[test]
fn metadata_json_nested_100000_deep_is_refused_without_stack_overflow() {
    // `user` metadata holds arbitrary JSON, so the parser really descends: serde_json's
    // recursion limit (128) stops it.
    let mut p = split(&stump(1, 2));
    p.meta["user"] = json!({});
    let mut meta = serde_json::to_vec(&p.meta).unwrap();
    let at = meta.windows(9).position(|w| w == b"\"user\":{}").unwrap() + 8;
    let tail = meta.split_off(at);
    meta.extend_from_slice(b"\"k\":");
    let meta = nested(&meta, 100_000, &tail);
    let bytes = assemble_raw(
        &meta,
        &serde_json::to_vec(&p.graph).unwrap(),
        &p.weights,
        None,
    );
    expect_format(run_bounded(&bytes), "recursion limit exceeded");
}

#[test]
fn metadata_json_nested_100_deep_is_accepted() {
    // The control: the same construction within the limit loads.
    let mut p = split(&stump(1, 2));
    let mut v = json!(1);
    for _ in 0..100 {
        v = json!([v]);
    }
    p.meta["user"] = json!({ "deep": v });
    assert_eq!(run_bounded(&assemble(&p)).unwrap(), vec![1.0]);
}

/// `X[N, 1]` reshaped to `[N, 1, 1]`, plus constants `[1, a, 1]` and `[1, 1, b]`: numpy
/// broadcasting makes an `[N, a, b]` value out of `a + b` stored floats.
fn outer_broadcast(a: usize, b: usize) -> Vec<u8> {
    let mut m = ModelBuilder::new(regression_meta(1));
    m.add_tensor("ca", &[1, a as u64, 1], &vec![1.0f32; a])
        .unwrap();
    m.add_tensor("cb", &[1, 1, b as u64], &vec![1.0f32; b])
        .unwrap();
    m.set_inputs(vec![ValueInfo {
        name: "X".into(),
        dtype: DType::F32,
        shape: vec![-1, 1],
    }]);
    m.push_node(
        Node::new("r", "Reshape", &["X"], &["x3"]).with("shape", Attr::Ints(vec![-1, 1, 1])),
    );
    m.push_node(Node::new("a", "Add", &["x3"], &["xa"]).with("b", Attr::Tensor("ca".into())));
    m.push_node(Node::new("b", "Add", &["xa"], &["xab"]).with("b", Attr::Tensor("cb".into())));
    m.push_node(Node::new("f", "Flatten", &["xab"], &["flat"]));
    m.push_node(Node::new("s", "Softmax", &["flat"], &["prediction"]));
    m.set_outputs(vec![ValueInfo {
        name: "prediction".into(),
        dtype: DType::F32,
        shape: vec![-1, (a * b) as i64],
    }]);
    m.metadata_mut().input.dtype = DType::F32;
    m.metadata_mut().output.dtypes = vec![DType::F32];
    bytes_of(&m)
}

#[test]
fn broadcast_outer_product_amplification_is_refused() {
    // 2 × 4096 floats (32 KiB of weights) ask for 16 M elements per row.
    // Regression test: before the executor's plan budget this compiled into a 128 MiB
    // broadcast table and a 64 MiB row.
    let bytes = outer_broadcast(4096, 4096);
    expect_invalid_graph(run_bounded(&bytes), "over the plan budget");
}

#[test]
fn small_broadcast_runs() {
    // The control: a 4 × 8 outer broadcast is an ordinary model; softmax of equal values.
    let out = run_bounded(&outer_broadcast(4, 8)).unwrap();
    assert_eq!(out.len(), 32);
    assert!(
        out.iter().all(|&p| (p - 1.0 / 32.0).abs() < 1e-6),
        "{out:?}"
    );
}

/// `X[N, f]` concatenated with itself `k` times into `A`, then `A` with itself 16 times into
/// each of `outs` outputs: a few KiB of JSON asking for `outs × 16 × k × f` elements per row.
fn concat_fanout(f: usize, k: usize, outs: usize) -> Vec<u8> {
    let mut m = ModelBuilder::new(regression_meta(f));
    m.set_inputs(vec![ValueInfo {
        name: "X".into(),
        dtype: DType::F64,
        shape: vec![-1, f as i64],
    }]);
    let xs: Vec<&str> = vec!["X"; k];
    m.push_node(Node::new("a", "Concat", &xs, &["A"]));
    let mut outputs = Vec::new();
    for o in 0..outs {
        let name = format!("out{o}");
        let a16: Vec<&str> = vec!["A"; 16];
        m.push_node(Node::new(format!("c{o}"), "Concat", &a16, &[name.as_str()]));
        outputs.push(ValueInfo {
            name,
            dtype: DType::F64,
            shape: vec![-1, (16 * k * f) as i64],
        });
    }
    m.set_outputs(outputs);
    m.metadata_mut().output.names = (0..outs).map(|o| format!("out{o}")).collect();
    m.metadata_mut().output.dtypes = vec![DType::F64; outs];
    bytes_of(&m)
}

#[test]
fn concat_fanout_amplification_is_refused() {
    // About 60 KiB of file asking for 1000 outputs × 1 M f64 per row (8 GB for one row).
    let bytes = concat_fanout(64, 1024, 1000);
    // Regression test: before the executor's plan budget this compiled, and the first
    // predict_row tried to allocate the outputs.
    assert!(bytes.len() < 1 << 20, "{}", bytes.len());
    expect_invalid_graph(run_bounded(&bytes), "over the plan budget");
}

#[test]
fn small_concat_runs() {
    let out = run_bounded(&concat_fanout(2, 2, 2)).unwrap();
    assert_eq!(out, vec![0.0; 64]);
}
