//! Explanations of imported models against the frameworks' own: `tests/fixtures/explain/*`
//! (made by XGBoost 3 and LightGBM 4.7 with `make.py` there) hold models, probe rows (NaNs,
//! zeros, categorical codes), the framework's raw margins, its contributions (XGBoost
//! `pred_contribs=True`, LightGBM `pred_contrib=True`) and its leaf indices (`pred_leaf=True`).
//! `Session::explain_batch` must match the contributions within 1e-5 of the output's scale
//! (`max(1, max |margin|)`), add up to the margin for every row, and `Session::apply_batch`
//! must give the same leaves.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use mle_exec::{Batch, ExecError, Model, OutputData, RunOptions, Session, Unexplainable};
use mle_format::tree::{attr, flags};
use mle_format::Attr;
use serde_json::Value;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/explain")
}

struct Fixture {
    name: String,
    model: PathBuf,
    n_features: usize,
    n_outputs: usize,
    n_trees: usize,
    rows: Vec<f64>,
    margin: Vec<f64>,
    contribs: Vec<f64>,
    leaves: Vec<i32>,
}

fn nums(v: &Value, key: &str) -> Vec<f64> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key}"))
        .iter()
        .map(|x| x.as_f64().unwrap_or(f64::NAN))
        .collect()
}

/// LightGBM 4.7 averages a random forest's trees in `predict()` but not in `raw_score=True` nor
/// in `pred_contrib=True` (both sum the trees); the executor's margin is the averaged
/// prediction (`aggregate = average`), and its contributions are divided like it. The
/// framework's raw values of a forest are divided here by the trees per output.
fn lightgbm_forest_divisor(d: &Value) -> f64 {
    let rf = d["model"].as_str().unwrap().starts_with("lgb_rf");
    if rf {
        (d["n_trees"].as_u64().unwrap() / d["n_outputs"].as_u64().unwrap()) as f64
    } else {
        1.0
    }
}

fn load(path: &Path) -> Fixture {
    let d: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let div = lightgbm_forest_divisor(&d);
    let rows: Vec<f64> = d["rows"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter())
        .map(|x| x.as_f64().unwrap_or(f64::NAN))
        .collect();
    Fixture {
        name: path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace(".expected.json", ""),
        model: dir().join(d["model"].as_str().unwrap()),
        n_features: d["n_features"].as_u64().unwrap() as usize,
        n_outputs: d["n_outputs"].as_u64().unwrap() as usize,
        n_trees: d["n_trees"].as_u64().unwrap() as usize,
        rows,
        margin: nums(&d, "margin").iter().map(|x| x / div).collect(),
        contribs: nums(&d, "contribs").iter().map(|x| x / div).collect(),
        leaves: nums(&d, "leaves").iter().map(|&x| x as i32).collect(),
    }
}

fn fixtures() -> Vec<Fixture> {
    let mut v: Vec<Fixture> = std::fs::read_dir(dir())
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            p.to_str()?.ends_with(".expected.json").then(|| load(&p))
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(v.len() >= 10, "too few explain fixtures");
    v
}

fn model_of(f: &Fixture) -> Arc<Model> {
    let bytes = import_to_bytes(&f.model);
    Arc::new(Model::from_bytes(&bytes, &f.name).unwrap())
}

#[test]
fn contributions_and_leaves_match_the_frameworks() {
    for f in fixtures() {
        let model = model_of(&f);
        let n = f.rows.len() / f.n_features;
        let batch = Batch::from_row_major_f64(&f.rows, n, f.n_features).unwrap();
        let info = model.explain_info().unwrap();
        assert_eq!(
            (info.n_features, info.n_outputs, info.n_trees),
            (f.n_features, f.n_outputs, f.n_trees),
            "{}",
            f.name
        );
        let mut s = Session::new(model.clone());
        let e = s
            .explain_batch(&batch, RunOptions::default())
            .unwrap()
            .clone();
        assert_eq!(
            (e.n_rows, e.n_outputs, e.n_features),
            (n, f.n_outputs, f.n_features)
        );
        assert_eq!(e.feature_names, info.feature_names);
        assert_eq!(e.values.len(), f.contribs.len(), "{}", f.name);
        let scale = f.margin.iter().fold(1.0f64, |m, x| m.max(x.abs()));
        let tol = 1e-5 * scale;
        let mut worst = 0.0f64;
        for (i, (g, w)) in e.values.iter().zip(&f.contribs).enumerate() {
            let err = (g - w).abs();
            assert!(
                err <= tol,
                "{}: value {i} (row {}, output {}, column {}): {g} vs the framework's {w}",
                f.name,
                i / (f.n_outputs * (f.n_features + 1)),
                i / (f.n_features + 1) % f.n_outputs,
                i % (f.n_features + 1)
            );
            worst = worst.max(err);
        }
        // They add up to the framework's margin.
        for r in 0..n {
            for o in 0..f.n_outputs {
                let sum: f64 = e.row(r, o).unwrap().iter().sum();
                let want = f.margin[r * f.n_outputs + o];
                assert!(
                    (sum - want).abs() <= tol,
                    "{}: row {r} output {o}: contributions add up to {sum}, margin {want}",
                    f.name
                );
            }
        }
        // Threads give the same bits.
        let e2 = s
            .explain_batch(&batch, RunOptions { threads: 2 })
            .unwrap()
            .clone();
        mle_testkit::assert_same_bits(&e.values, &e2.values, &f.name);
        // Leaves.
        let l = s.apply_batch(&batch, RunOptions::default()).unwrap();
        assert_eq!((l.n_rows, l.n_trees), (n, f.n_trees), "{}", f.name);
        assert_eq!(l.values, f.leaves, "{}: leaf indices", f.name);
        eprintln!(
            "{}: {} contributions, max error {worst:.2e} (scale {scale:.3})",
            f.name,
            e.values.len()
        );
    }
}

/// The fixtures exercise what they are named for: NaN rows, categorical splits, LightGBM's
/// missing types; and the importers wrote covers and leaf ids.
#[test]
fn fixtures_cover_what_they_claim() {
    for f in fixtures() {
        let bytes = import_to_bytes(&f.model);
        let file = open(&bytes, &f.name);
        let node = &file.graph().nodes[0];
        let tensor = |key: &str| match node.attr(key) {
            Some(Attr::Tensor(t)) => t.clone(),
            other => panic!("{}: {key}: {other:?}", f.name),
        };
        let fl = file.tensor_as::<u8>(&tensor(attr::FLAGS)).unwrap().to_vec();
        let cover = file.tensor_as::<f64>(&tensor(attr::NODE_COVER)).unwrap();
        assert_eq!(cover.len(), fl.len());
        assert!(cover.iter().all(|c| c.is_finite() && *c >= 0.0));
        assert!(file.tensor_as::<i32>(&tensor(attr::LEAF_IDS)).is_ok());
        let any = |bit: u8| fl.iter().any(|&x| x & bit != 0 && x & flags::LEAF == 0);
        if f.name.contains("categorical") {
            assert!(any(flags::CATEGORICAL), "{}: no categorical split", f.name);
        }
        if f.name.contains("zero_as_missing") {
            assert!(any(flags::ZERO_IS_MISSING), "{}", f.name);
        }
        if f.name.contains("no_missing") {
            assert!(any(flags::NAN_IS_ZERO), "{}", f.name);
        }
        assert!(f.rows.iter().any(|x| x.is_nan()), "{}: no NaN row", f.name);
    }
}

#[test]
fn lightgbm_contributions_weigh_by_counts_not_hessians() {
    // LightGBM's Tree::TreeSHAP weighs a path by data_count (internal_count / leaf_count).
    // The experiment: the binary model with its counts replaced by its hessian sums
    // (internal_weight / leaf_weight) no longer matches pred_contrib.
    let f = load(&dir().join("lgb_binary.expected.json"));
    let text = std::fs::read_to_string(&f.model).unwrap();
    let (mut iw, mut lw) = (String::new(), String::new());
    let mut swapped = String::new();
    for l in text.lines() {
        if let Some(v) = l.strip_prefix("internal_weight=") {
            iw = v.to_string();
        } else if let Some(v) = l.strip_prefix("leaf_weight=") {
            lw = v.to_string();
        }
        let l = if l.starts_with("internal_count=") {
            format!("internal_count={iw}")
        } else if l.starts_with("leaf_count=") {
            format!("leaf_count={lw}")
        } else {
            l.to_string()
        };
        swapped.push_str(&l);
        swapped.push('\n');
    }
    let bytes = mle_import::import_lightgbm(&swapped, "weights.txt")
        .unwrap()
        .to_bytes(&Default::default())
        .unwrap();
    let model = Arc::new(Model::from_bytes(&bytes, "weights.mle").unwrap());
    let n = f.rows.len() / f.n_features;
    let batch = Batch::from_row_major_f64(&f.rows, n, f.n_features).unwrap();
    let mut s = Session::new(model);
    let e = s.explain_batch(&batch, RunOptions::default()).unwrap();
    let worst = e
        .values
        .iter()
        .zip(&f.contribs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst > 1e-3, "hessian covers match too: {worst:e}");
}

#[test]
fn models_without_covers_are_refused_naming_them() {
    // The same LightGBM model with its counts removed.
    let text = std::fs::read_to_string(dir().join("lgb_regression.txt")).unwrap();
    let stripped: String = text
        .lines()
        .filter(|l| !l.starts_with("internal_count=") && !l.starts_with("leaf_count="))
        .map(|l| format!("{l}\n"))
        .collect();
    let b = mle_import::import_lightgbm(&stripped, "nocover.txt").unwrap();
    let bytes = b.to_bytes(&Default::default()).unwrap();
    let model = Arc::new(Model::from_bytes(&bytes, "nocover.mle").unwrap());
    let rows = [0.5; 5];
    let batch = Batch::from_row_major_f64(&rows, 1, 5).unwrap();
    let mut s = Session::new(model.clone());
    match s.explain_batch(&batch, RunOptions::default()) {
        Err(e @ ExecError::NotExplainable { .. }) => {
            let m = e.to_string();
            assert!(m.starts_with("nocover.mle: cannot explain"), "{m}");
            assert!(m.contains("no node covers"), "{m}");
            assert!(matches!(
                e,
                ExecError::NotExplainable {
                    reason: Unexplainable::NoCovers { .. },
                    ..
                }
            ));
        }
        other => panic!("{other:?}"),
    }
    // Leaf indices need no covers.
    let l = s.apply_batch(&batch, RunOptions::default()).unwrap();
    assert_eq!(l.n_trees, 12);
    // Predictions are unchanged.
    let p = s.predict_batch(&batch, RunOptions::default()).unwrap();
    assert!(matches!(p.outputs[0].data, OutputData::F64(_)));
}
