//! How an integer-coded categorical split reads values that are not plain category codes
//! (docs/OPS.md § `TreeEnsemble`, `categorical_rule`), one test per rule, on real XGBoost
//! and LightGBM models: `tests/fixtures/categorical/*` (made by the frameworks with `make.py`
//! there), each with probe rows and the framework's own predictions. Every probe is scored by
//! `mle-exec` (batch and single rows) and by the test kit's reference interpreter (OPS.md read
//! literally), and must match the framework within 1e-5 relative (1e-6 absolute).
//!
//! Each test also checks that its rule is visible in the fixtures (the framework's answer for
//! the probe differs from the one another rule would give), so a fixture that could not tell
//! the rules apart fails instead of passing silently.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::*;
use mle_exec::{Batch, ColumnData, Model, OutputData, RunOptions, Session};
use mle_format::tree::attr;
use mle_format::Attr;
use serde_json::Value;

struct Probe {
    x: [f64; 2],
    group: String,
    want: f64,
}

struct Fixture {
    name: String,
    framework: String,
    probes: Vec<Probe>,
    /// Predictions: mle-exec batch, mle-exec rows, reference interpreter.
    got: [Vec<f64>; 3],
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/categorical")
}

fn num(v: &Value) -> f64 {
    match v {
        Value::String(s) if s == "nan" => f64::NAN,
        Value::String(s) if s == "inf" => f64::INFINITY,
        Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
        v => v.as_f64().expect("a number"),
    }
}

fn load(name: &str) -> Fixture {
    let path = dir().join(format!("{name}.expected.json"));
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let probes: Vec<Probe> = doc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| Probe {
            x: [num(&r["x"][0]), num(&r["x"][1])],
            group: r["group"].as_str().unwrap().to_string(),
            want: num(&r["want"]),
        })
        .collect();
    let model_path = dir().join(doc["model"].as_str().unwrap());
    let bytes = import_to_bytes(&model_path);
    let file = open(&bytes, name);
    let framework = doc["framework"].as_str().unwrap().to_string();
    // The importer states the framework's rule.
    let node = file
        .graph()
        .nodes
        .iter()
        .find(|n| n.op == "TreeEnsemble")
        .unwrap();
    assert_eq!(
        node.attr(attr::CATEGORICAL_RULE),
        Some(&Attr::Str(framework.clone())),
        "{name}"
    );
    let model = Arc::new(Model::from_bytes(&bytes, name).unwrap());
    let c0: Vec<f64> = probes.iter().map(|p| p.x[0]).collect();
    let c1: Vec<f64> = probes.iter().map(|p| p.x[1]).collect();
    let batch = Batch::from_columns(vec![ColumnData::F64(&c0), ColumnData::F64(&c1)]).unwrap();
    let mut s = Session::new(model);
    let pred = |d: &OutputData| match d {
        OutputData::F64(v) => v.clone(),
        OutputData::F32(v) => v.iter().map(|&x| x as f64).collect(),
        OutputData::I64(_) => panic!("a regressor"),
    };
    let out = s.predict_batch(&batch, RunOptions::default()).unwrap();
    let batch_pred = pred(&out.get("prediction").unwrap().data);
    let row_pred: Vec<f64> = probes
        .iter()
        .map(|p| pred(&s.predict_row(&p.x).unwrap().get("prediction").unwrap().data)[0])
        .collect();
    let rows: Vec<Vec<f64>> = probes.iter().map(|p| p.x.to_vec()).collect();
    let reference = reference_predict(&file, &rows).prediction.unwrap();
    Fixture {
        name: name.to_string(),
        framework,
        probes,
        got: [batch_pred, row_pred, reference],
    }
}

const XGBOOST: [&str; 3] = ["xgb_partition", "xgb_partition_ubj", "xgb_onehot"];
const LIGHTGBM: [&str; 3] = ["lgb_default", "lgb_no_missing", "lgb_zero_as_missing"];

/// Checks every probe of `group` in each fixture against the framework; returns, per
/// fixture, the probes of the group with their index.
fn check_group(names: &[&str], group: &str) -> Vec<(Fixture, Vec<usize>)> {
    let mut out = Vec::new();
    for name in names {
        let f = load(name);
        let idx: Vec<usize> = (0..f.probes.len())
            .filter(|&i| f.probes[i].group == group)
            .collect();
        assert!(!idx.is_empty(), "{name}: no probe of group {group}");
        for &i in &idx {
            let p = &f.probes[i];
            for (how, got) in ["mle-exec batch", "mle-exec row", "reference"]
                .iter()
                .zip(&f.got)
            {
                let (g, w) = (got[i], p.want);
                let tol = (1e-5 * w.abs()).max(1e-6);
                assert!(
                    (g - w).abs() <= tol,
                    "{} ({}), {group}, x = {:?}: {how} gives {g}, the framework {w}",
                    f.name,
                    f.framework,
                    p.x
                );
            }
        }
        out.push((f, idx));
    }
    out
}

/// The framework's prediction for the probe with category value `c` and the same numeric
/// value as probe `i`.
fn want_at(f: &Fixture, i: usize, c: f64) -> f64 {
    let x1 = f.probes[i].x[1];
    f.probes
        .iter()
        .find(|p| p.x[0].to_bits() == c.to_bits() && p.x[1].to_bits() == x1.to_bits())
        .map(|p| p.want)
        .unwrap_or_else(|| panic!("{}: no probe ({c}, {x1})", f.name))
}

/// Every probe of the group equals the framework's answer at category value `c`.
fn all_like(checked: &[(Fixture, Vec<usize>)], c: f64) -> bool {
    checked
        .iter()
        .all(|(f, idx)| idx.iter().all(|&i| f.probes[i].want == want_at(f, i, c)))
}

/// Some probe of the group differs from the framework's answer at category value `c`.
fn some_unlike(checked: &[(Fixture, Vec<usize>)], c: f64) -> bool {
    !all_like(checked, c)
}

#[test]
fn plain_codes_match_both_frameworks() {
    check_group(&XGBOOST, "categories");
    check_group(&LIGHTGBM, "categories");
}

#[test]
fn xgboost_a_value_in_minus_one_to_zero_is_no_category() {
    let c = check_group(&XGBOOST, "negative_fraction");
    // Like any negative value (non-member side), unlike category 0 (LightGBM's reading).
    assert!(
        all_like(&c, -1.0),
        "XGBoost sends (-1, 0) where it sends -1"
    );
    assert!(
        some_unlike(&c, 0.0),
        "the fixtures cannot tell (-1, 0) from category 0"
    );
}

#[test]
fn xgboost_minus_zero_is_category_zero() {
    // -0.0, and -1e-50 which is -0.0 once rounded to f32.
    let c = check_group(&XGBOOST, "minus_zero");
    assert!(all_like(&c, 0.0));
    assert!(some_unlike(&c, -1.0));
}

#[test]
fn xgboost_negative_values_are_no_category() {
    let c = check_group(&XGBOOST, "negative");
    assert!(
        all_like(&c, 1000.0),
        "negative values go where a category beyond the bitset goes"
    );
}

#[test]
fn xgboost_fractions_are_truncated() {
    let c = check_group(&XGBOOST, "fraction");
    for (f, idx) in &c {
        for &i in idx {
            assert_eq!(
                f.probes[i].want,
                want_at(f, i, f.probes[i].x[0].trunc()),
                "{}",
                f.name
            );
        }
    }
}

#[test]
fn xgboost_values_beyond_the_bitset_and_huge_values_are_no_category() {
    let c = check_group(&XGBOOST, "beyond_bitset");
    assert!(all_like(&c, -1.0));
    let c = check_group(&XGBOOST, "huge");
    assert!(all_like(&c, -1.0));
}

#[test]
fn xgboost_nan_follows_the_default_direction() {
    let c = check_group(&XGBOOST, "nan");
    // Trained with NaN: its direction is learned, and differs from the non-member side
    // somewhere.
    assert!(some_unlike(&c, -1.0) || some_unlike(&c, 0.0));
}

#[test]
fn lightgbm_a_value_in_minus_one_to_zero_is_category_zero() {
    let c = check_group(&LIGHTGBM, "negative_fraction");
    assert!(
        all_like(&c, 0.0),
        "LightGBM truncates (-1, 0) to category 0"
    );
    assert!(
        some_unlike(&c, -1.0),
        "the fixtures cannot tell category 0 from the non-member side"
    );
    let c = check_group(&LIGHTGBM, "minus_zero");
    assert!(all_like(&c, 0.0));
}

#[test]
fn lightgbm_values_of_minus_one_and_below_are_no_category() {
    let c = check_group(&LIGHTGBM, "negative");
    assert!(all_like(&c, 1000.0));
}

#[test]
fn lightgbm_fractions_are_truncated() {
    let c = check_group(&LIGHTGBM, "fraction");
    for (f, idx) in &c {
        for &i in idx {
            assert_eq!(
                f.probes[i].want,
                want_at(f, i, f.probes[i].x[0].trunc()),
                "{}",
                f.name
            );
        }
    }
}

#[test]
fn lightgbm_nan_goes_to_the_non_member_side_under_every_missing_type() {
    let c = check_group(&LIGHTGBM, "nan");
    assert!(all_like(&c, 1000.0));
}

#[test]
fn lightgbm_values_beyond_the_bitset_huge_and_infinite_values_are_no_category() {
    for group in ["beyond_bitset", "huge", "infinite"] {
        let c = check_group(&LIGHTGBM, group);
        assert!(all_like(&c, -1.0), "{group}");
    }
}
