//! Property test: random forests (random shapes, node orders, flags, thresholds on the edges of
//! the inputs, categorical splits, targets, weights, aggregation) against the reference
//! interpreter of `mle_testkit` (docs/OPS.md), on f32 and f64 inputs, through the batch path (columns, row-major,
//! ranges not starting at 0, sizes around the block boundaries) and the row path.

mod tree_util;

use mle_exec::tree::TreeEnsemble;
use mle_exec::{Batch, ColumnData};
use tree_util::*;

struct Forest {
    spec: Spec,
    n_features: usize,
    /// Values that inputs are drawn from, per feature (thresholds and their neighbours).
    pool: Vec<Vec<f64>>,
}

fn near(t: f64, rng: &mut Rng) -> f64 {
    match rng.below(6) {
        0 => t,
        1 => t as f32 as f64,
        2 => f64::from_bits(t.to_bits().wrapping_add(1)),
        3 => {
            let a = t as f32;
            (a as f64 + f32::from_bits(a.to_bits().wrapping_add(1)) as f64) / 2.0
        }
        4 => f32::from_bits((t as f32).to_bits().wrapping_sub(1)) as f64,
        _ => t + rng.unit() - 0.5,
    }
}

/// Builds one tree recursively; returns the root's index. Node ids are assigned by `order`:
/// pre-order (children right after the parent) or with a gap (children placed later).
#[allow(clippy::too_many_arguments)]
fn tree(
    s: &mut Spec,
    f: &mut Forest,
    rng: &mut Rng,
    depth: usize,
    max_depth: usize,
    flag_kinds: &[u8],
    categorical: bool,
    cat: &mut (Vec<u32>, Vec<u32>),
) -> u32 {
    let nt = s.leaf_dim;
    let me = s.n_nodes();
    if depth >= max_depth || (depth > 0 && rng.chance(0.2)) {
        let vals: Vec<f64> = (0..nt)
            .map(|_| (rng.unit() * 8.0 - 4.0).round() / 4.0 + rng.unit())
            .collect();
        s.leaf(&vals);
        cat.0.push(cat.1.len() as u32);
        return me as u32;
    }
    let feat = rng.below(f.n_features);
    let mut fl = flag_kinds[rng.below(flag_kinds.len())];
    if rng.chance(0.5) {
        fl |= DL;
    }
    let t = if rng.chance(0.1) {
        [0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY, 1e39][rng.below(5)]
    } else {
        let base = (rng.unit() * 8.0 - 4.0) * 10f64.powi(rng.below(5) as i32 - 2);
        near(base, rng)
    };
    let is_cat = categorical && rng.chance(0.4);
    let node = s.split(
        feat as i32,
        t,
        0,
        0,
        if is_cat { CAT | (fl & DL) } else { fl },
    );
    cat.0.push(cat.1.len() as u32);
    if is_cat {
        let words = rng.below(3);
        for _ in 0..words {
            cat.1.push(rng.next_u64() as u32);
        }
        for _ in 0..3 {
            f.pool[feat].push(rng.below(words * 32 + 4) as f64 - 1.0 + rng.unit() * 0.9);
        }
    } else {
        f.pool[feat].push(t);
        f.pool[feat].push(near(t, rng));
    }
    let l = tree(
        s,
        f,
        rng,
        depth + 1,
        max_depth,
        flag_kinds,
        categorical,
        cat,
    );
    let r = tree(
        s,
        f,
        rng,
        depth + 1,
        max_depth,
        flag_kinds,
        categorical,
        cat,
    );
    let n = node as usize;
    // The first subtree built follows its parent in the arrays; make it the right child half
    // the time so that the layout (left child next) has to reorder.
    if rng.chance(0.5) {
        s.left[n] = l;
        s.right[n] = r;
    } else {
        s.left[n] = r;
        s.right[n] = l;
    }
    node
}

fn forest(seed: u64) -> Forest {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let n_features = 1 + rng.below(12);
    let mut f = Forest {
        spec: spec(["lt", "le"][rng.below(2)], ["f32", "f64"][rng.below(2)]),
        n_features,
        pool: vec![vec![0.0, -0.0, f64::NAN, 1.0, -1.0]; n_features],
    };
    let mut s = f.spec.clone();
    let n_targets = 1 + rng.below(3);
    s.n_targets = n_targets;
    s.base_scores = vec![0.0; n_targets];
    s.leaf_dim = if n_targets > 1 && rng.chance(0.3) {
        n_targets
    } else {
        1
    };
    let flag_kinds: &[u8] = match rng.below(4) {
        0 => &[0],                                                  // XGBoost / sklearn style
        1 => &[0, NAN_ZERO], // LightGBM without zero-as-missing: fast kernel
        2 => &[0, NAN_ZERO, ZERO_MISSING, NAN_ZERO | ZERO_MISSING], // general kernel
        _ => &[NAN_ZERO],
    };
    let categorical = rng.chance(0.25);
    let n_trees = rng.below(30);
    let mut cat = (Vec::new(), Vec::new());
    let max_depth = rng.below(10);
    for _ in 0..n_trees {
        let d = rng.below(max_depth + 1);
        let root = tree(
            &mut s,
            &mut f,
            &mut rng,
            0,
            d,
            flag_kinds,
            categorical,
            &mut cat,
        );
        s.roots.push(root);
    }
    cat.0.push(cat.1.len() as u32);
    if categorical {
        s.categories = Some(CategorySets {
            offsets: cat.0,
            bits: cat.1,
        });
        s.categorical_members = [Members::Left, Members::Right][rng.below(2)];
    }
    if s.leaf_dim == 1 && n_targets > 1 {
        s.targets = Some((0..n_trees).map(|_| rng.below(n_targets) as u32).collect());
    }
    if rng.chance(0.5) {
        s.weights = Some((0..n_trees).map(|_| rng.unit() * 2.0 - 0.5).collect());
    }
    if rng.chance(0.5) {
        // Multiples of 2^-10: base scores travel as JSON numbers, and serde_json without its
        // `float_roundtrip` feature can misread the last bit of an arbitrary f64.
        s.base_scores = (0..n_targets)
            .map(|_| rng.below(1024) as f64 / 1024.0 - 0.5)
            .collect();
    }
    if rng.chance(0.3) {
        s.aggregate = Aggregate::Average;
    }
    f.spec = s;
    f
}

fn rows(f: &Forest, n: usize, rng: &mut Rng) -> Vec<Vec<f64>> {
    (0..n)
        .map(|_| {
            (0..f.n_features)
                .map(|j| {
                    let p = &f.pool[j];
                    if rng.chance(0.1) {
                        rng.unit() * 20.0 - 10.0
                    } else {
                        p[rng.below(p.len())]
                    }
                })
                .collect()
        })
        .collect()
}

fn check_batch_f64(ens: &TreeEnsemble, f: &Forest, x: &[Vec<f64>], start: usize, n: usize) {
    let reference = f.spec.reference();
    let nf = f.n_features;
    let nt = ens.n_targets();
    let cols: Vec<Vec<f64>> = (0..nf).map(|j| x.iter().map(|r| r[j]).collect()).collect();
    let batch = Batch::from_columns(cols.iter().map(|c| ColumnData::F64(c)).collect()).unwrap();
    let mut out = vec![f64::NAN; n * nt];
    let mut s = ens.scratch();
    ens.predict_batch(&batch, start..start + n, &mut out, &mut s);
    for i in 0..n {
        let want = reference.row(&x[start + i]);
        assert_same(
            &out[i * nt..(i + 1) * nt],
            &want,
            &format!("f64 batch row {}", start + i),
        );
    }
    // The row path on a few rows.
    for i in (0..n).step_by(97) {
        let mut o = vec![0.0; nt];
        ens.predict_row_f64(&x[start + i], &mut o);
        assert_same(&o, &out[i * nt..(i + 1) * nt], "f64 row path");
    }
}

fn check_batch_f32(ens: &TreeEnsemble, f: &Forest, x: &[Vec<f64>], start: usize, n: usize) {
    let reference = f.spec.reference();
    let nf = f.n_features;
    let nt = ens.n_targets();
    let x32: Vec<Vec<f32>> = x
        .iter()
        .map(|r| r.iter().map(|&v| v as f32).collect())
        .collect();
    let flat: Vec<f32> = x32.iter().flatten().copied().collect();
    let batch = Batch::from_row_major_f32(&flat, x32.len(), nf).unwrap();
    let mut out = vec![f64::NAN; n * nt];
    let mut s = ens.scratch();
    ens.predict_batch(&batch, start..start + n, &mut out, &mut s);
    for i in 0..n {
        let widened: Vec<f64> = x32[start + i].iter().map(|&v| v as f64).collect();
        let want = reference.row(&widened);
        assert_same(
            &out[i * nt..(i + 1) * nt],
            &want,
            &format!("f32 batch row {}", start + i),
        );
    }
    for i in (0..n).step_by(89) {
        let mut o = vec![0.0; nt];
        ens.predict_row_f32(&x32[start + i], &mut o);
        assert_same(&o, &out[i * nt..(i + 1) * nt], "f32 row path");
    }
}

#[test]
fn random_forests_match_the_reference() {
    let sizes = [1usize, 2, 3, 4, 5, 63, 64, 65, 129, 511, 512, 513, 1000];
    let mut kernels = std::collections::BTreeMap::new();
    for seed in 0..120u64 {
        let f = forest(seed);
        let ens = f
            .spec
            .compile(f.n_features)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        *kernels.entry(ens.kernel_name()).or_insert(0) += 1;
        let mut rng = Rng(seed + 1000);
        let n = sizes[seed as usize % sizes.len()];
        let start = rng.below(8);
        let x = rows(&f, start + n + rng.below(3), &mut rng);
        check_batch_f64(&ens, &f, &x, start, n);
        check_batch_f32(&ens, &f, &x, start, n);
    }
    // Every kernel was exercised.
    assert_eq!(kernels.len(), 3, "{kernels:?}");
}

#[test]
fn results_do_not_depend_on_how_rows_are_split() {
    let f = forest(4242);
    let ens = f.spec.compile(f.n_features).unwrap();
    let mut rng = Rng(5);
    let x = rows(&f, 1500, &mut rng);
    let nt = ens.n_targets();
    let flat: Vec<f64> = x.iter().flatten().copied().collect();
    let batch = Batch::from_row_major_f64(&flat, x.len(), f.n_features).unwrap();
    let mut whole = vec![0.0; x.len() * nt];
    let mut s = ens.scratch();
    ens.predict_batch(&batch, 0..x.len(), &mut whole, &mut s);
    let mut pieces = vec![0.0; x.len() * nt];
    let mut r = 0;
    for len in [1, 7, 64, 300, 1, 513, 614] {
        ens.predict_batch(
            &batch,
            r..r + len,
            &mut pieces[r * nt..(r + len) * nt],
            &mut s,
        );
        r += len;
    }
    assert_eq!(r, x.len());
    assert_same(&whole, &pieces, "split batch");
}
