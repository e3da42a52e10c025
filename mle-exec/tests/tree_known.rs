//! Hand-built tree ensembles with known answers: each framework's comparison at exactly the
//! threshold, f32/f64 threshold edges, missing values, categorical splits, aggregation.

mod tree_util;

use tree_util::*;

/// `x[0]` through a one-split tree with leaves -1 (left) and +1 (right), f64 inputs, every path.
fn side(s: &Spec, x: f64) -> f64 {
    let ens = s.compile(1).unwrap();
    let out = predict_all(&ens, &[vec![x]]);
    assert_same(&out[0], &s.reference().row(&[x]), "reference");
    out[0][0]
}

/// As [`side`] with an f32 input.
fn side32(s: &Spec, x: f32) -> f64 {
    let ens = s.compile(1).unwrap();
    let out = predict_all_f32(&ens, &[vec![x]]);
    assert_same(&out[0], &s.reference().row(&[x as f64]), "reference");
    out[0][0]
}

fn stump(cmp: &str, prec: &str, t: f64, flags: u8) -> Spec {
    let mut s = spec(cmp, prec);
    s.stump(0, t, flags, -1.0, 1.0);
    s
}

const L: f64 = -1.0;
const R: f64 = 1.0;

#[test]
fn lt_versus_le_exactly_at_the_threshold() {
    for prec in ["f32", "f64"] {
        let xgb = stump("lt", prec, 0.5, 0);
        let lgb = stump("le", prec, 0.5, 0);
        assert_eq!(side(&xgb, 0.5), R, "{prec}: 0.5 < 0.5 is false");
        assert_eq!(side(&lgb, 0.5), L, "{prec}: 0.5 <= 0.5 is true");
        assert_eq!(side32(&xgb, 0.5), R);
        assert_eq!(side32(&lgb, 0.5), L);
        let below = f32::from_bits(0.5f32.to_bits() - 1);
        assert_eq!(side32(&xgb, below), L);
        assert_eq!(side32(&lgb, 0.500_000_06), R);
    }
}

#[test]
fn xgboost_rounds_f64_inputs_to_f32_before_comparing() {
    // XGBoost: f32(x) < 1.0. 1 - 2^-30 is below 1.0 in f64 but rounds to 1.0f32.
    let x = 1.0 - 2f64.powi(-30);
    assert_eq!(side(&stump("lt", "f32", 1.0, 0), x), R);
    // Compared in f64 (LightGBM style) it is below.
    assert_eq!(side(&stump("lt", "f64", 1.0, 0), x), L);
    // The next f32 below 1.0 is below.
    assert_eq!(side(&stump("lt", "f32", 1.0, 0), 1.0 - 2f64.powi(-24)), L);
}

#[test]
fn sklearn_f64_threshold_between_two_f32() {
    // a = 1.0f32, b = the next f32; sklearn's threshold is their midpoint, an f64 value.
    let a = 1.0f64;
    let b = 1.0 + 2f64.powi(-23);
    let t = 1.0 + 2f64.powi(-24);
    let sk = stump("le", "f32", t, 0);
    assert_eq!(side32(&sk, a as f32), L);
    assert_eq!(side32(&sk, b as f32), R);
    // f64 inputs are rounded to f32 first: just above the midpoint rounds up to b...
    assert_eq!(side(&sk, t + 2f64.powi(-40)), R);
    // ...just below rounds down to a, and the midpoint itself rounds to even (a).
    assert_eq!(side(&sk, t - 2f64.powi(-40)), L);
    assert_eq!(side(&sk, t), L);
    // LightGBM / HistGradientBoosting compare in f64: the same inputs on the same threshold.
    let lgb = stump("le", "f64", t, 0);
    assert_eq!(side(&lgb, t + 2f64.powi(-40)), R);
    assert_eq!(side(&lgb, t), L);
    assert_eq!(side(&lgb, t - 2f64.powi(-40)), L);
    assert_eq!(side32(&lgb, a as f32), L);
    assert_eq!(side32(&lgb, b as f32), R);
    // An f32 threshold below an f64 input that rounds onto it: lt with f32 precision.
    let xgb = stump("lt", "f32", b, 0);
    assert_eq!(
        side(&xgb, b - 2f64.powi(-40)),
        R,
        "rounds up to b, b < b is false"
    );
    assert_eq!(side(&xgb, a + 2f64.powi(-40)), L, "rounds down to a");
}

#[test]
fn thresholds_beyond_the_f32_range_and_at_zero() {
    let big = stump("le", "f32", 1e39, 0);
    assert_eq!(side32(&big, f32::MAX), L);
    assert_eq!(side32(&big, f32::INFINITY), R);
    assert_eq!(side(&big, 1e38), L);
    assert_eq!(side(&big, 1e300), R, "1e300 rounds to +inf in f32");
    let neg = stump("lt", "f32", -1e39, 0);
    assert_eq!(side32(&neg, f32::NEG_INFINITY), L);
    assert_eq!(side32(&neg, -f32::MAX), R);
    let inf = stump("lt", "f64", f64::INFINITY, 0);
    assert_eq!(side(&inf, f64::MAX), L);
    assert_eq!(side(&inf, f64::INFINITY), R);
    let ninf = stump("lt", "f32", f64::NEG_INFINITY, 0);
    assert_eq!(side(&ninf, f64::NEG_INFINITY), R, "nothing is below -inf");
    assert_eq!(side32(&ninf, -f32::MAX), R);
    let ninf_le = stump("le", "f64", f64::NEG_INFINITY, 0);
    assert_eq!(side(&ninf_le, f64::NEG_INFINITY), L);
    // Signed zeros and subnormals.
    let z = stump("lt", "f32", 0.0, 0);
    assert_eq!(side32(&z, -0.0), R, "-0.0 < 0.0 is false");
    assert_eq!(side32(&z, -f32::from_bits(1)), L);
    assert_eq!(side(&z, -1e-300), R, "-1e-300 rounds to -0.0 in f32");
    assert_eq!(side(&stump("lt", "f64", 0.0, 0), -1e-300), L);
    let nz = stump("le", "f64", -0.0, 0);
    assert_eq!(side(&nz, 0.0), L, "0.0 <= -0.0");
    assert_eq!(side(&nz, f64::from_bits(1)), R);
    let sub = stump("le", "f32", 1e-46, 0); // between 0 and the smallest f32 subnormal
    assert_eq!(side32(&sub, 0.0), L);
    assert_eq!(side32(&sub, f32::from_bits(1)), R);
    assert_eq!(side(&sub, 1e-46), L, "1e-46 rounds to 0 in f32");
    assert_eq!(side(&stump("le", "f64", 1e-46, 0), 1.1e-46), R);
}

#[test]
fn missing_values_default_left_or_right() {
    for prec in ["f32", "f64"] {
        for cmp in ["lt", "le"] {
            assert_eq!(side(&stump(cmp, prec, 0.5, DL), f64::NAN), L);
            assert_eq!(side(&stump(cmp, prec, 0.5, 0), f64::NAN), R);
            assert_eq!(side(&stump(cmp, prec, -0.5, DL), f64::NAN), L);
            assert_eq!(side32(&stump(cmp, prec, 0.5, 0), f32::NAN), R);
            assert_eq!(side32(&stump(cmp, prec, 0.5, DL), f32::NAN), L);
            // Non-missing values ignore the default direction.
            assert_eq!(side(&stump(cmp, prec, 0.5, DL), 2.0), R);
        }
    }
}

#[test]
fn zero_is_missing() {
    // LightGBM MissingType::Zero: 0.0 and NaN follow the default direction.
    for prec in ["f32", "f64"] {
        let left = stump("le", prec, -1.0, DL | ZERO_MISSING); // 0.0 would compare right
        assert_eq!(side(&left, 0.0), L);
        assert_eq!(side(&left, -0.0), L);
        assert_eq!(side(&left, f64::NAN), L);
        assert_eq!(side(&left, 1e-300), L, "|x| <= 1e-35 is LightGBM's zero");
        assert_eq!(side(&left, -1e-36), L, "|x| <= 1e-35 is LightGBM's zero");
        assert_eq!(side(&left, 1e-30), R, "beyond the zero band: compared");
        assert_eq!(side(&left, -2.0), L);
        let right = stump("le", prec, 1.0, ZERO_MISSING); // 0.0 would compare left
        assert_eq!(side(&right, 0.0), R);
        assert_eq!(side(&right, f64::NAN), R);
        assert_eq!(side(&right, 0.5), L);
        assert_eq!(side32(&right, 0.0), R);
    }
}

#[test]
fn nan_is_zero() {
    // LightGBM MissingType::None: NaN becomes 0.0 and is compared; bit 1 does not matter.
    for prec in ["f32", "f64"] {
        assert_eq!(side(&stump("le", prec, 0.5, NAN_ZERO), f64::NAN), L);
        assert_eq!(side(&stump("le", prec, -0.5, NAN_ZERO | DL), f64::NAN), R);
        assert_eq!(
            side(&stump("le", prec, 0.0, NAN_ZERO), f64::NAN),
            L,
            "0 <= 0"
        );
        assert_eq!(
            side(&stump("lt", prec, 0.0, NAN_ZERO | DL), f64::NAN),
            R,
            "0 < 0"
        );
        assert_eq!(side32(&stump("lt", prec, 0.0, NAN_ZERO | DL), f32::NAN), R);
        assert_eq!(side(&stump("lt", prec, 0.0, NAN_ZERO), 5.0), R);
        // With zero-is-missing too, NaN becomes 0.0, which is missing.
        let both = stump("le", prec, -1.0, NAN_ZERO | ZERO_MISSING | DL);
        assert_eq!(side(&both, f64::NAN), L);
        assert_eq!(side(&both, 0.0), L);
        assert_eq!(side(&both, -3.0), L);
        assert_eq!(side(&both, 3.0), R);
    }
}

/// One categorical split on feature 0 with categories {0, 3, 40}.
fn categorical(members: &str, flags: u8, prec: &str) -> Spec {
    let mut s = stump("le", prec, 0.0, CAT | flags);
    let mut offsets = vec![0u32; s.n_nodes() + 1];
    offsets[1] = 2;
    offsets[2] = 2;
    offsets[3] = 2;
    s.categories = Some(CategorySets {
        offsets,
        bits: vec![0b1001, 1 << 8],
    });
    s.categorical_members = Members::parse(members).unwrap();
    s
}

#[test]
fn categorical_rule_xgboost_reads_minus_one_to_zero_as_no_category() {
    for prec in ["f32", "f64"] {
        let mut xgb = categorical("right", 0, prec);
        xgb.categorical_rule = CategoricalRule::XgBoost;
        let lgb = categorical("right", 0, prec);
        for (x, member_xgb, member_lgb) in [
            (-0.5, false, true),
            (-1e-30, false, true),
            (-0.999, false, true),
            (-0.0, true, true),
            (0.0, true, true),
            (0.7, true, true),
            (3.9, true, true),
            (-1.0, false, false),
            (-3.5, false, false),
            (1.0, false, false),
            (64.0, false, false),
        ] {
            assert_eq!(
                side(&xgb, x),
                if member_xgb { R } else { L },
                "{prec} xgboost: {x}"
            );
            assert_eq!(
                side(&lgb, x),
                if member_lgb { R } else { L },
                "{prec} lightgbm: {x}"
            );
            assert_eq!(
                side32(&xgb, x as f32),
                if member_xgb { R } else { L },
                "{prec} xgboost f32: {x}"
            );
        }
        // -1e-50 is -0.0 in f32 (category 0) but negative in f64.
        assert_eq!(
            side(&xgb, -1e-50),
            if prec == "f32" { R } else { L },
            "{prec}: -1e-50"
        );
        assert_eq!(side(&xgb, f64::NAN), R, "NaN follows bit 1");
    }
}

#[test]
fn an_unknown_categorical_rule_is_refused() {
    let s = categorical("right", 0, "f64");
    let bytes = {
        let mut node_b = mle_format::ModelBuilder::new(mle_format::Metadata::new(
            "t",
            "t",
            mle_format::Task::Regression,
            vec!["a".into()],
            mle_format::DType::F64,
            &[("y", mle_format::DType::F64)],
        ));
        let node = s.add_unchecked(&mut node_b, "t", "X", "y").unwrap().with(
            mle_format::tree::attr::CATEGORICAL_RULE,
            mle_format::Attr::Str("sklearn".into()),
        );
        node_b.push_node(node);
        node_b.set_inputs(vec![mle_format::ValueInfo {
            name: "X".into(),
            dtype: mle_format::DType::F64,
            shape: vec![-1, 1],
        }]);
        node_b.set_outputs(vec![mle_format::ValueInfo {
            name: "y".into(),
            dtype: mle_format::DType::F64,
            shape: vec![-1, 1],
        }]);
        node_b.to_bytes(&Default::default()).unwrap()
    };
    let e = mle_exec::Model::from_bytes(&bytes, "rule.mle")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("categorical_rule") && e.contains("sklearn"),
        "{e}"
    );
}

#[test]
fn categorical_members_left_and_right() {
    for prec in ["f32", "f64"] {
        let lgb = categorical("left", 0, prec);
        let xgb = categorical("right", 0, prec);
        for (x, member) in [
            (0.0, true),
            (3.0, true),
            (3.9, true), // truncated toward zero
            (40.0, true),
            (-0.5, true), // truncates to 0
            (1.0, false),
            (2.0, false),
            (39.0, false),
            (41.0, false),
            (-1.0, false), // negative
            (-40.0, false),
            (63.0, false), // in the bitset, not a member
            (64.0, false), // beyond the bitset
            (1e10, false),
            (f64::INFINITY, false),
            (f64::NEG_INFINITY, false),
        ] {
            assert_eq!(
                side(&lgb, x),
                if member { L } else { R },
                "{prec} left: {x}"
            );
            assert_eq!(
                side(&xgb, x),
                if member { R } else { L },
                "{prec} right: {x}"
            );
            assert_eq!(side32(&lgb, x as f32), if member { L } else { R });
        }
        assert_eq!(side(&lgb, f64::NAN), R);
        assert_eq!(side(&categorical("left", DL, prec), f64::NAN), L);
        assert_eq!(side(&categorical("right", DL, prec), f64::NAN), L);
        assert_eq!(side(&categorical("right", 0, prec), f64::NAN), R);
    }
    // f32 precision: 2^24 + 3 as f64 rounds to 2^24 + 4 in f32 before truncation.
    let mut s = stump("le", "f32", 0.0, CAT);
    let big = (1u32 << 24) + 4;
    let words = (big / 32 + 1) as usize;
    let mut bits = vec![0u32; words];
    bits[(big / 32) as usize] |= 1 << (big % 32);
    s.categories = Some(CategorySets {
        offsets: vec![0, words as u32, words as u32, words as u32],
        bits,
    });
    assert_eq!(side(&s, big as f64 - 1.0), L);
    s.input_precision = mle_format::tree::Precision::F64;
    assert_eq!(side(&s, big as f64 - 1.0), R);
}

#[test]
fn categorical_and_numeric_splits_in_one_tree() {
    // root: categorical on f1 {2}; left: numeric f0 <= 0.5; right: leaf 10.
    let mut s = spec("le", "f64");
    s.split(1, 0.0, 1, 4, CAT);
    s.split(0, 0.5, 2, 3, DL);
    s.leaf(&[1.0]);
    s.leaf(&[2.0]);
    s.leaf(&[10.0]);
    s.roots.push(0);
    s.categories = Some(CategorySets {
        offsets: vec![0, 1, 1, 1, 1, 1],
        bits: vec![0b100],
    });
    let ens = s.compile(2).unwrap();
    let rows = vec![
        vec![0.0, 2.0],
        vec![1.0, 2.0],
        vec![f64::NAN, 2.5],
        vec![0.0, 3.0],
        vec![0.0, f64::NAN],
    ];
    let out = predict_all(&ens, &rows);
    let got: Vec<f64> = out.iter().map(|o| o[0]).collect();
    assert_eq!(got, [1.0, 2.0, 1.0, 10.0, 10.0]);
    assert_eq!(ens.kernel_name(), "general");
}

/// Three stumps on feature 0 at 0.0: leaves (lo, hi) = (1, 2), (10, 20), (100, 200).
fn three(aggregate: &str) -> Spec {
    let mut s = spec("lt", "f64");
    s.stump(0, 0.0, 0, 1.0, 2.0);
    s.stump(0, 0.0, 0, 10.0, 20.0);
    s.stump(0, 0.0, 0, 100.0, 200.0);
    s.aggregate = Aggregate::parse(aggregate).unwrap();
    s
}

fn outputs(s: &Spec, x: f64) -> Vec<f64> {
    let ens = s.compile(1).unwrap();
    let out = predict_all(&ens, &[vec![x]]).remove(0);
    assert_same(&out, &s.reference().row(&[x]), "reference");
    out
}

#[test]
fn sum_average_weights_base_scores() {
    assert_eq!(outputs(&three("sum"), -1.0), [111.0]);
    assert_eq!(outputs(&three("sum"), 1.0), [222.0]);
    assert_eq!(outputs(&three("average"), 1.0), [74.0]);
    let mut s = three("sum");
    s.weights = Some(vec![1.0, 0.5, -2.0]);
    s.base_scores = vec![0.25];
    assert_eq!(outputs(&s, 1.0), [2.0 + 10.0 - 400.0 + 0.25]);
    s.aggregate = Aggregate::Average;
    assert_eq!(outputs(&s, -1.0), [(1.0 + 5.0 - 200.0) / 3.0 + 0.25]);
}

#[test]
fn tree_targets_route_trees_to_columns() {
    let mut s = three("sum");
    s.n_targets = 3;
    s.targets = Some(vec![2, 0, 2]);
    s.base_scores = vec![0.5, -0.5, 1.0];
    assert_eq!(outputs(&s, 1.0), [20.5, -0.5, 203.0]);
    s.aggregate = Aggregate::Average;
    // Target 2 averages its two trees; target 1 has no tree and keeps its base score.
    assert_eq!(outputs(&s, -1.0), [10.5, -0.5, 101.0 / 2.0 + 1.0]);
}

#[test]
fn vector_leaves_add_to_every_target() {
    let mut s = spec("le", "f32");
    s.n_targets = 2;
    s.leaf_dim = 2;
    for (a, b) in [(1.0, 2.0), (3.0, 4.0)] {
        let root = s.n_nodes() as u32;
        s.split(0, 0.0, root + 1, root + 2, DL);
        s.leaf(&[a, -a]);
        s.leaf(&[b, -b]);
        s.roots.push(root);
    }
    s.base_scores = vec![100.0, 200.0];
    assert_eq!(outputs(&s, -1.0), [104.0, 196.0]);
    assert_eq!(outputs(&s, f64::NAN), [104.0, 196.0]);
    assert_eq!(outputs(&s, 1.0), [106.0, 194.0]);
    s.aggregate = Aggregate::Average;
    s.weights = Some(vec![3.0, 1.0]);
    assert_eq!(outputs(&s, 1.0), [105.0, 195.0]);
}

#[test]
fn single_leaf_trees_and_no_trees() {
    let mut s = spec("le", "f64");
    s.base_scores = vec![0.5];
    assert_eq!(outputs(&s, 3.0), [0.5], "no trees: the base score");
    let l = s.leaf(&[2.0]);
    s.roots.push(l);
    s.stump(0, 1.0, 0, 10.0, 20.0);
    assert_eq!(outputs(&s, 3.0), [22.5]);
    assert_eq!(outputs(&s, 0.0), [12.5]);
}

#[test]
fn deep_unbalanced_tree() {
    // A left-leaning chain of 100 splits x <= i with leaf i at each right.
    let mut s = spec("le", "f64");
    let depth = 100;
    for i in 0..depth {
        let me = s.n_nodes() as u32;
        // right child (leaf) comes first in the arrays, then the rest of the chain.
        s.split(0, (depth - i) as f64, me + 2, me + 1, 0);
        s.leaf(&[(depth - i) as f64 + 0.5]);
    }
    s.leaf(&[-1.0]);
    s.roots.push(0);
    let ens = s.compile(1).unwrap();
    let rows: Vec<Vec<f64>> = (0..250).map(|i| vec![i as f64 * 0.5 - 10.0]).collect();
    let out = predict_all(&ens, &rows);
    let reference = s.reference();
    for (r, o) in rows.iter().zip(&out) {
        assert_same(o, &reference.row(r), "deep");
    }
}
