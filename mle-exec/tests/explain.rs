//! `Session::explain_batch` and `Session::apply_batch` on random ensembles (every
//! `TreeEnsemble` feature: `lt`/`le`, f32/f64 precision, missing directions, zero-as-missing,
//! NaN-as-zero, categorical splits under both rules and sides, tree targets, vector leaves,
//! tree weights, `average`, base scores, repeated features on a path, zero covers, paths too
//! wide for a table) against the Shapley values by definition (`mle_testkit::reference`'s
//! brute force over feature subsets), and always against the prediction: contributions plus
//! bias add up to the margin. Leaf indices equal the reference interpreter's leaves. Also:
//! the Lookup input stage (string columns), refusals, and no allocation per call once warm.

use std::sync::Arc;

use mle_exec::{
    Batch, ColumnData, ExecError, Model, OutputData, RunOptions, Session, StrColumn, StrData,
    Unexplainable,
};
use mle_format::tree::{
    flags, Aggregate, CategoricalRule, Comparison, Members, Precision, TreeAnnotations,
    TreeEnsembleSpec,
};
use mle_format::{Attr, DType, Metadata, ModelBuilder, Node, Task, ValueInfo, WriteOptions};
use mle_testkit::reference::Trees;
use mle_testkit::tree::{builder_annotated, random_covers};
use mle_testkit::typed::{Typed, CITIES, STORES};
use mle_testkit::{allocations_during, CountingAlloc, Rng};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Appends a random tree (depth up to `max_depth`, stopping early at random) and returns its
/// root.
fn random_tree(
    s: &mut TreeEnsembleSpec,
    rng: &mut Rng,
    depth: u32,
    max_depth: u32,
    nf: usize,
    categorical: bool,
) -> u32 {
    let d = s.leaf_dim;
    if depth == max_depth || (depth > 0 && rng.chance(0.2)) {
        let v: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
        return s.leaf(&v);
    }
    let f = rng.below(nf) as i32;
    let mut fl = if rng.chance(0.5) {
        flags::MISSING_LEFT
    } else {
        0
    };
    let me = if categorical && rng.chance(0.3) {
        let words = [rng.next_u64() as u32 & 0x3f];
        s.categorical_split(f, &words, 0, 0, fl)
    } else {
        if rng.chance(0.15) {
            fl |= flags::ZERO_IS_MISSING;
        } else if rng.chance(0.15) {
            fl |= flags::NAN_IS_ZERO;
        }
        let t = [0.0, 0.5, -0.5, 1.0, 2.5, rng.normal()][rng.below(6)];
        s.split(f, t, 0, 0, fl)
    };
    let l = random_tree(s, rng, depth + 1, max_depth, nf, categorical);
    let r = random_tree(s, rng, depth + 1, max_depth, nf, categorical);
    s.left[me as usize] = l;
    s.right[me as usize] = r;
    me
}

struct Case {
    spec: TreeEnsembleSpec,
    covers: Vec<f64>,
    nf: usize,
}

fn random_case(rng: &mut Rng, nf: usize, max_depth: u32, zero_covers: f64) -> Case {
    let n_targets = if rng.chance(0.4) { 3 } else { 1 };
    let leaf_dim = if n_targets > 1 && rng.chance(0.4) {
        n_targets
    } else {
        1
    };
    let cmp = if rng.chance(0.5) {
        Comparison::Lt
    } else {
        Comparison::Le
    };
    let prec = if rng.chance(0.5) {
        Precision::F32
    } else {
        Precision::F64
    };
    let mut s = TreeEnsembleSpec::new(n_targets, leaf_dim, cmp, prec);
    let categorical = rng.chance(0.5);
    for k in 0..rng.usize(1, 6) {
        let root = random_tree(&mut s, rng, 0, max_depth, nf, categorical);
        let target = if leaf_dim == 1 {
            (k % n_targets) as u32
        } else {
            0
        };
        let w = if rng.chance(0.3) {
            rng.f64(0.2, 2.0)
        } else {
            1.0
        };
        s.push_tree(root, target, w);
    }
    if rng.chance(0.3) {
        s.aggregate = Aggregate::Average;
    }
    s.base_scores = (0..n_targets).map(|_| rng.normal()).collect();
    if s.categories.is_some() {
        if rng.chance(0.5) {
            s.categorical_members = Members::Right;
        }
        if rng.chance(0.5) {
            s.categorical_rule = CategoricalRule::XgBoost;
        }
    }
    let covers = random_covers(&s, rng, zero_covers);
    Case {
        spec: s,
        covers,
        nf,
    }
}

fn model_of(c: &Case) -> Arc<Model> {
    let ann = TreeAnnotations {
        node_cover: Some(c.covers.clone()),
        leaf_ids: None,
    };
    let b = builder_annotated(&c.spec, &ann, c.nf, DType::F64);
    let bytes = b.to_bytes(&WriteOptions::default()).unwrap();
    Arc::new(Model::from_bytes(&bytes, "random.mle").unwrap())
}

fn random_rows(rng: &mut Rng, n: usize, nf: usize) -> Vec<f64> {
    (0..n * nf)
        .map(|_| {
            [
                f64::NAN,
                0.0,
                -0.0,
                1e-36,
                0.5,
                -0.5,
                1.0,
                2.5,
                3.0,
                -1.0,
                rng.normal(),
                rng.normal() * 3.0,
            ][rng.below(12)]
        })
        .collect()
}

/// Explains `rows` and checks them against the brute force (when `brute`), the prediction,
/// the reference leaves and another thread count.
fn check(c: &Case, rows: &[f64], brute: bool, what: &str) {
    let model = model_of(c);
    let n = rows.len() / c.nf;
    let batch = Batch::from_row_major_f64(rows, n, c.nf).unwrap();
    let mut s = Session::new(model.clone());
    let pred = match &s
        .predict_batch(&batch, RunOptions::default())
        .unwrap()
        .outputs[0]
        .data
    {
        OutputData::F64(v) => v.clone(),
        other => panic!("{other:?}"),
    };
    let e = s
        .explain_batch(&batch, RunOptions::default())
        .unwrap()
        .clone();
    let nt = c.spec.n_targets;
    let w = c.nf + 1;
    assert_eq!(e.values.len(), n * nt * w);
    let file = mle_format::MleFile::from_bytes(
        &builder_annotated(
            &c.spec,
            &TreeAnnotations {
                node_cover: Some(c.covers.clone()),
                leaf_ids: None,
            },
            c.nf,
            DType::F64,
        )
        .to_bytes(&WriteOptions::default())
        .unwrap(),
        "r",
        &Default::default(),
    )
    .unwrap();
    let trees = Trees::from_file(&file);
    for r in 0..n {
        let x = &rows[r * c.nf..(r + 1) * c.nf];
        let scale = pred[r * nt..(r + 1) * nt]
            .iter()
            .fold(1.0f64, |m, v| m.max(v.abs()));
        for t in 0..nt {
            let got = e.row(r, t).unwrap();
            let sum: f64 = got.iter().sum();
            let want = pred[r * nt + t];
            assert!(
                (sum - want).abs() <= 1e-9 * scale,
                "{what}: row {r} target {t}: contributions add up to {sum}, the prediction is {want}"
            );
        }
        if brute {
            let want = trees.shapley_row(x, c.nf);
            let got = &e.values[r * nt * w..(r + 1) * nt * w];
            for (i, (g, b)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - b).abs() <= 1e-9 * scale,
                    "{what}: row {r} value {i}: {g} vs the definition's {b}\nrow {x:?}"
                );
            }
        }
    }
    let e3 = s.explain_batch(&batch, RunOptions { threads: 3 }).unwrap();
    mle_testkit::assert_same_bits(&e.values, &e3.values, what);
    let leaves = s
        .apply_batch(&batch, RunOptions::default())
        .unwrap()
        .clone();
    assert_eq!(leaves.n_trees, c.spec.n_trees());
    for r in 0..n {
        let x = &rows[r * c.nf..(r + 1) * c.nf];
        for k in 0..c.spec.n_trees() {
            let want = trees.leaf_of(k, x) as i32 - c.spec.roots[k] as i32;
            assert_eq!(
                leaves.values[r * leaves.n_trees + k],
                want,
                "{what}: row {r} tree {k}"
            );
        }
    }
}

#[test]
fn random_ensembles_match_the_definition_and_add_up() {
    let mut rng = Rng(7);
    for i in 0..120 {
        let zero = if i % 4 == 3 { 0.3 } else { 0.0 };
        let c = random_case(&mut rng, 5, 5, zero);
        let rows = random_rows(&mut rng, 70, 5);
        check(&c, &rows, true, &format!("case {i}"));
    }
}

#[test]
fn wide_paths_use_the_unwinding_and_match() {
    // A caterpillar tree: 13 distinct features on the deepest path (beyond the table's 12),
    // so its deep leaves run Lundberg's unwinding; plus deep random trees for additivity.
    let nf = 13;
    let mut s = TreeEnsembleSpec::new(1, 1, Comparison::Le, Precision::F64);
    let mut rng = Rng(3);
    let mut prev: Option<u32> = None;
    let mut root = 0;
    for f in 0..nf as i32 {
        let me = s.split(
            f,
            0.0,
            0,
            0,
            if f % 2 == 0 { flags::MISSING_LEFT } else { 0 },
        );
        let leaf = s.leaf(&[rng.normal()]);
        s.left[me as usize] = leaf;
        match prev {
            Some(p) => s.right[p as usize] = me,
            None => root = me,
        }
        prev = Some(me);
    }
    let last = s.leaf(&[rng.normal()]);
    if let Some(p) = prev {
        s.right[p as usize] = last;
    }
    s.push_tree(root, 0, 1.0);
    let covers = random_covers(&s, &mut rng, 0.0);
    let c = Case {
        spec: s,
        covers,
        nf,
    };
    let mut rows = random_rows(&mut rng, 16, nf);
    // Rows reaching the deepest leaves (every feature > 0).
    for r in 0..10 {
        for j in 0..nf {
            rows[r * nf + j] = 1.0 + j as f64;
        }
        if r > 0 {
            rows[r * nf + r] = -1.0;
        }
    }
    check(&c, &rows, true, "caterpillar");
    for seed in 0..4 {
        let mut rng = Rng(100 + seed);
        let c = random_case(&mut rng, 24, 10, if seed % 2 == 0 { 0.0 } else { 0.2 });
        let rows = random_rows(&mut rng, 30, 24);
        check(&c, &rows, false, &format!("deep {seed}"));
    }
}

#[test]
fn string_categories_contribute_under_their_feature_name() {
    let bytes = Typed::Regressor.bytes_with_covers("missing");
    let model = Arc::new(Model::from_bytes(&bytes, "typed.mle").unwrap());
    let cities = ["Zürich", "Paris", "nowhere", "Zürich"];
    let mut offsets = vec![0i32];
    let mut data = Vec::new();
    for c in cities {
        data.extend_from_slice(c.as_bytes());
        offsets.push(data.len() as i32);
    }
    let city = StrColumn {
        data: StrData::Utf8 {
            offsets: &offsets,
            bytes: &data,
        },
        validity: None,
        len: 4,
    };
    let x = [0.7, 0.1, f64::NAN, 0.5];
    let store = [300.0, 2.0, 300.0, -3.0];
    let batch = Batch::from_columns(vec![
        ColumnData::Str(city),
        ColumnData::F64(&x),
        ColumnData::F64(&store),
    ])
    .unwrap();
    let mut s = Session::new(model.clone());
    let e = s.explain_batch(&batch, RunOptions::default()).unwrap();
    assert_eq!(e.feature_names, ["city", "x", "store"]);
    for r in 0..4 {
        let want = Typed::Regressor.contributions(Some(cities[r]), Some(x[r]), Some(store[r]));
        let got = e.row(r, 0).unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-12, "row {r}: {got:?} vs {want:?}");
        }
    }
    let _ = (CITIES, STORES);
    // The same model without covers: leaves yes, explanations no.
    let bytes = Typed::Regressor.bytes("missing");
    let model = Arc::new(Model::from_bytes(&bytes, "typed.mle").unwrap());
    let mut s = Session::new(model.clone());
    let l = s.apply_batch(&batch, RunOptions::default()).unwrap();
    // Per row (tree city, tree x, tree store; 1 = left leaf, 2 = right): Zürich in, 0.7 high,
    // 300 in; Paris out, 0.1 low, 2 out; unknown out, NaN low (missing left), 300 in;
    // Zürich in, 0.5 high, -3 out.
    assert_eq!(l.values, [1, 2, 1, 2, 1, 2, 2, 1, 1, 1, 2, 2]);
    let err = s.explain_batch(&batch, RunOptions::default()).unwrap_err();
    assert!(
        matches!(
            &err,
            ExecError::NotExplainable { model, reason: Unexplainable::NoCovers { node } }
                if model == "typed.mle" && node == "trees"
        ),
        "{err}"
    );
    assert!(model.explain_info().is_err());
    assert_eq!(model.apply_info().unwrap().n_trees, 3);
}

fn meta(nf: usize) -> Metadata {
    Metadata::new(
        "test",
        "m",
        Task::Regression,
        (0..nf).map(|i| format!("f{i}")).collect(),
        DType::F64,
        &[("prediction", DType::F64)],
    )
}

fn vi(name: &str, width: i64) -> ValueInfo {
    ValueInfo {
        name: name.into(),
        dtype: DType::F64,
        shape: vec![-1, width],
    }
}

fn stump() -> (TreeEnsembleSpec, TreeAnnotations) {
    let mut s = TreeEnsembleSpec::new(1, 1, Comparison::Le, Precision::F64);
    let r = s.split(0, 0.5, 1, 2, 0);
    s.leaf(&[1.0]);
    s.leaf(&[2.0]);
    s.push_tree(r, 0, 1.0);
    let ann = TreeAnnotations {
        node_cover: Some(vec![4.0, 1.0, 3.0]),
        leaf_ids: Some(vec![0, 7, 9]),
    };
    (s, ann)
}

fn refusal(b: ModelBuilder) -> Unexplainable {
    let bytes = b.to_bytes(&WriteOptions::default()).unwrap();
    let model = Arc::new(Model::from_bytes(&bytes, "m.mle").unwrap());
    let rows = [0.0, 1.0];
    let batch = Batch::from_row_major_f64(&rows, 1, 2).unwrap();
    let mut s = Session::new(model);
    let e = s.explain_batch(&batch, RunOptions::default()).unwrap_err();
    assert!(e.to_string().starts_with("m.mle: cannot explain: "), "{e}");
    match e {
        ExecError::NotExplainable { reason, .. } => reason,
        other => panic!("{other:?}"),
    }
}

#[test]
fn other_graphs_are_refused_naming_why() {
    // A linear model.
    let mut b = ModelBuilder::new(meta(2));
    b.add_tensor("coef", &[1, 2], &[1.0f64, 2.0]).unwrap();
    b.add_tensor("intercept", &[1], &[0.5f64]).unwrap();
    b.set_inputs(vec![vi("X", 2)]);
    b.push_node(
        Node::new("lin", "LinearModel", &["X"], &["prediction"])
            .with("coef", Attr::Tensor("coef".into()))
            .with("intercept", Attr::Tensor("intercept".into())),
    );
    b.set_outputs(vec![vi("prediction", 1)]);
    assert_eq!(refusal(b), Unexplainable::NoTrees);

    // Two ensembles added together.
    let (s, ann) = stump();
    let mut b = ModelBuilder::new(meta(2));
    b.set_inputs(vec![vi("X", 2)]);
    s.write_annotated(&ann, &mut b, "a", "X", "ya").unwrap();
    s.write_annotated(&ann, &mut b, "b", "X", "yb").unwrap();
    b.push_node(Node::new("sum", "Add", &["ya", "yb"], &["prediction"]));
    b.set_outputs(vec![vi("prediction", 1)]);
    assert_eq!(refusal(b), Unexplainable::SeveralEnsembles { count: 2 });

    // An ensemble over scaled inputs.
    let mut b = ModelBuilder::new(meta(2));
    b.add_tensor("offset", &[2], &[1.0f64, 0.0]).unwrap();
    b.add_tensor("scale", &[2], &[2.0f64, 1.0]).unwrap();
    b.set_inputs(vec![vi("X", 2)]);
    b.push_node(
        Node::new("scale", "Scaler", &["X"], &["Xs"])
            .with("offset", Attr::Tensor("offset".into()))
            .with("scale", Attr::Tensor("scale".into())),
    );
    s.write_annotated(&ann, &mut b, "trees", "Xs", "prediction")
        .unwrap();
    b.set_outputs(vec![vi("prediction", 1)]);
    assert_eq!(
        refusal(b),
        Unexplainable::TransformedInput {
            node: "trees".into()
        }
    );

    // An ensemble plus a linear term on the inputs.
    let mut b = ModelBuilder::new(meta(2));
    b.add_tensor("coef", &[1, 2], &[1.0f64, 2.0]).unwrap();
    b.set_inputs(vec![vi("X", 2)]);
    s.write_annotated(&ann, &mut b, "trees", "X", "m").unwrap();
    b.push_node(
        Node::new("lin", "LinearModel", &["X"], &["l"]).with("coef", Attr::Tensor("coef".into())),
    );
    b.push_node(Node::new("sum", "Add", &["m", "l"], &["prediction"]));
    b.set_outputs(vec![vi("prediction", 1)]);
    assert_eq!(
        refusal(b),
        Unexplainable::OtherReader {
            node: "lin".into(),
            op: "LinearModel".into()
        }
    );

    // Post-transforms are fine; leaf ids are the file's.
    let mut b = ModelBuilder::new(meta(2));
    b.set_inputs(vec![vi("X", 2)]);
    s.write_annotated(&ann, &mut b, "trees", "X", "m").unwrap();
    b.push_node(Node::new("sig", "Sigmoid", &["m"], &["prediction"]));
    b.set_outputs(vec![vi("prediction", 1)]);
    let model = Arc::new(
        Model::from_bytes(&b.to_bytes(&WriteOptions::default()).unwrap(), "m.mle").unwrap(),
    );
    let rows = [0.0, 9.0, 1.0, 9.0];
    let batch = Batch::from_row_major_f64(&rows, 2, 2).unwrap();
    let mut sess = Session::new(model);
    let e = sess.explain_batch(&batch, RunOptions::default()).unwrap();
    // Mean 1.75: row 0 goes left (1.0), row 1 right (2.0); feature 1 never splits.
    assert_eq!(e.values, [-0.75, 0.0, 1.75, 0.25, 0.0, 1.75]);
    let l = sess.apply_batch(&batch, RunOptions::default()).unwrap();
    assert_eq!(l.values, [7, 9]);
    // An empty batch.
    let empty = Batch::from_row_major_f64(&[], 0, 2).unwrap();
    assert_eq!(
        sess.explain_batch(&empty, RunOptions::default())
            .unwrap()
            .values
            .len(),
        0
    );
}

#[test]
fn compile_refuses_invalid_annotations() {
    let (s, _) = stump();
    for (ann_key, tensor, detail) in [
        ("node_cover", vec![1.0f64, -1.0, 0.0], "node_cover[1] = -1"),
        (
            "node_cover",
            vec![1.0f64, f64::INFINITY, 0.0],
            "node_cover[1] = inf",
        ),
        (
            "node_cover",
            vec![1.0f64, 1.0],
            "has 2 elements, expected 3",
        ),
    ] {
        let mut b = ModelBuilder::new(meta(2));
        b.set_inputs(vec![vi("X", 2)]);
        let node = s.add_unchecked(&mut b, "trees", "X", "prediction").unwrap();
        b.add_tensor("bad", &[tensor.len() as u64], &tensor)
            .unwrap();
        b.push_node(node.with(ann_key, Attr::Tensor("bad".into())));
        b.set_outputs(vec![vi("prediction", 1)]);
        let bytes = b.to_bytes(&WriteOptions::default()).unwrap();
        let e = Model::from_bytes(&bytes, "m.mle").unwrap_err().to_string();
        assert!(e.contains(detail), "{e}");
    }
    let mut b = ModelBuilder::new(meta(2));
    b.set_inputs(vec![vi("X", 2)]);
    let node = s.add_unchecked(&mut b, "trees", "X", "prediction").unwrap();
    b.add_tensor("bad", &[3], &[0i32, -2, 1]).unwrap();
    b.push_node(node.with("leaf_ids", Attr::Tensor("bad".into())));
    b.set_outputs(vec![vi("prediction", 1)]);
    let bytes = b.to_bytes(&WriteOptions::default()).unwrap();
    let e = Model::from_bytes(&bytes, "m.mle").unwrap_err().to_string();
    assert!(e.contains("leaf_ids[1] = -2"), "{e}");
}

#[test]
fn warm_calls_allocate_nothing() {
    let mut rng = Rng(11);
    // Shallow trees (tables) and one deep tree (paths beyond the table: the unwinding).
    let mut s = TreeEnsembleSpec::new(3, 1, Comparison::Lt, Precision::F32);
    for k in 0..9 {
        let depth = if k == 0 { 13 } else { 6 };
        let root = random_tree(&mut s, &mut rng, 0, depth, 20, true);
        s.push_tree(root, k % 3, 1.0);
    }
    let covers = random_covers(&s, &mut rng, 0.05);
    let c = Case {
        spec: s,
        covers,
        nf: 20,
    };
    let model = model_of(&c);
    let rows = random_rows(&mut rng, 300, 20);
    let batch = Batch::from_row_major_f64(&rows, 300, 20).unwrap();
    let mut sess = Session::new(model);
    sess.explain_batch(&batch, RunOptions::default()).unwrap();
    sess.apply_batch(&batch, RunOptions::default()).unwrap();
    let (_, n) = allocations_during(|| {
        sess.explain_batch(&batch, RunOptions::default()).unwrap();
    });
    assert_eq!(n, 0, "explain_batch allocated {n} times once warm");
    let (_, n) = allocations_during(|| {
        sess.apply_batch(&batch, RunOptions::default()).unwrap();
    });
    assert_eq!(n, 0, "apply_batch allocated {n} times once warm");
    // A larger batch grows the output once, not per row.
    let rows = random_rows(&mut rng, 1200, 20);
    let batch = Batch::from_row_major_f64(&rows, 1200, 20).unwrap();
    let (_, n) = allocations_during(|| {
        sess.explain_batch(&batch, RunOptions::default()).unwrap();
    });
    assert!(n <= 2, "explain_batch allocated {n} times for 1,200 rows");
}
