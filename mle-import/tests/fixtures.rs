//! Imports every model of `tests/fixtures/{xgboost,lightgbm}` (made by the real frameworks,
//! `scripts/make_fixtures.py`) and compares the predictions with the framework's own, for
//! f64 and f32 inputs, rows with NaNs, categorical splits and rows on split thresholds:
//! identical class decisions, max relative error <= 1e-5 (absolute 1e-6 near zero).
//!
//! Each fixture runs twice: through the reference interpreter of `common` (OPS.md read
//! literally) and through `mle-exec`.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::*;
use mle_exec::{Batch, Model, OutputData, RunOptions, Session};
use mle_format::{ClassLabels, Task};

/// `(model file, expected file)` for every fixture of `framework` with model extension `ext`.
fn fixtures(framework: &str, ext: &str) -> Vec<(PathBuf, PathBuf)> {
    let dir = fixtures_dir().join(framework);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| {
            let p = e.ok()?.path();
            let stem = p
                .file_name()?
                .to_str()?
                .strip_suffix(".expected.json")?
                .to_string();
            Some((dir.join(format!("{stem}.{ext}")), p))
        })
        .collect();
    out.sort();
    assert!(
        out.len() >= 15,
        "too few {framework} fixtures in {}",
        dir.display()
    );
    out
}

fn check_metadata(file: &mle_format::MleFile, exp: &Expected) {
    let m = file.metadata();
    let task = match exp.task.as_str() {
        "regression" => Task::Regression,
        "binary" => Task::Binary,
        "multiclass" => Task::Multiclass,
        "ranking" => Task::Ranking,
        t => panic!("task {t}"),
    };
    assert_eq!(m.task, task, "{}", exp.name);
    assert_eq!(m.n_features(), exp.n_features, "{}", exp.name);
    if task.is_classifier() {
        let c = exp.output[0].len();
        assert_eq!(
            m.output.class_labels,
            Some(ClassLabels::Int((0..c as i64).collect()))
        );
        assert_eq!(m.output.names, ["label", "probabilities"]);
    } else {
        assert_eq!(m.output.names, ["prediction"]);
    }
}

fn round_f32(rows: &[Vec<f64>]) -> Vec<Vec<f64>> {
    rows.iter()
        .map(|r| r.iter().map(|&x| x as f32 as f64).collect())
        .collect()
}

fn run_reference(framework: &str, ext: &str) {
    for (model, expected) in fixtures(framework, ext) {
        let exp = load_expected(&expected);
        let bytes = import_to_bytes(&model);
        let file = open(&bytes, &exp.name);
        check_metadata(&file, &exp);
        for (rows, output, label, kind) in [
            (exp.rows.clone(), &exp.output, &exp.label, "f64"),
            (round_f32(&exp.rows), &exp.output_f32, &exp.label_f32, "f32"),
        ] {
            let what = format!("{} ({kind} rows, reference)", model.display());
            let r = reference_predict(&file, &rows);
            match &r.prediction {
                Some(p) => assert_close(&what, p, output),
                None => {
                    assert_close(&what, r.probabilities.as_ref().unwrap(), output);
                    assert_eq!(r.label.as_ref(), label.as_ref(), "{what}: class decisions");
                }
            }
        }
    }
}

fn run_exec(framework: &str, ext: &str) {
    for (model, expected) in fixtures(framework, ext) {
        let exp = load_expected(&expected);
        let bytes = import_to_bytes(&model);
        let m = Arc::new(
            Model::from_bytes(&bytes, &exp.name)
                .unwrap_or_else(|e| panic!("{}: compile: {e}", model.display())),
        );
        let mut s = Session::new(m);
        let n = exp.rows.len();
        let f = exp.n_features;
        let flat64: Vec<f64> = exp.rows.iter().flatten().copied().collect();
        let flat32: Vec<f32> = flat64.iter().map(|&x| x as f32).collect();
        let b64 = Batch::from_row_major_f64(&flat64, n, f).unwrap();
        let b32 = Batch::from_row_major_f32(&flat32, n, f).unwrap();
        for (batch, output, label, kind) in [
            (b64, &exp.output, &exp.label, "f64"),
            (b32, &exp.output_f32, &exp.label_f32, "f32"),
        ] {
            let what = format!("{} ({kind} input, mle-exec)", model.display());
            let out = s
                .predict_batch(&batch, RunOptions::default())
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(out.n_rows, n);
            if let Some(p) = out.get("prediction") {
                let OutputData::F64(p) = &p.data else {
                    panic!("{what}: prediction is not f64")
                };
                assert_close(&what, p, output);
            } else {
                let p = out.get("probabilities").expect("probabilities");
                let OutputData::F64(p) = &p.data else {
                    panic!("{what}: probabilities are not f64")
                };
                assert_close(&what, p, output);
                let l = out.get("label").expect("label");
                let OutputData::I64(l) = &l.data else {
                    panic!("{what}: label is not i64")
                };
                assert_eq!(Some(l), label.as_ref(), "{what}: class decisions");
            }
        }
    }
}

#[test]
fn xgboost_json_matches_xgboost_reference() {
    run_reference("xgboost", "json");
}

#[test]
fn xgboost_ubjson_matches_xgboost_reference() {
    run_reference("xgboost", "ubj");
}

#[test]
fn lightgbm_text_matches_lightgbm_reference() {
    run_reference("lightgbm", "txt");
}

#[test]
fn xgboost_json_matches_xgboost_in_mle_exec() {
    run_exec("xgboost", "json");
}

#[test]
fn xgboost_ubjson_matches_xgboost_in_mle_exec() {
    run_exec("xgboost", "ubj");
}

#[test]
fn lightgbm_text_matches_lightgbm_in_mle_exec() {
    run_exec("lightgbm", "txt");
}

#[test]
fn json_and_ubjson_of_one_model_import_identically() {
    for (json, _) in fixtures("xgboost", "json") {
        let ubj = json.with_extension("ubj");
        let a = mle_import::import_file(&json, None).unwrap();
        let b = mle_import::import_file(&ubj, None).unwrap();
        let opts = mle_format::WriteOptions::default();
        assert_eq!(
            a.to_bytes(&opts).unwrap(),
            b.to_bytes(&opts).unwrap(),
            "{}",
            json.display()
        );
    }
}

#[test]
fn categorical_fixtures_have_categorical_splits() {
    for path in [
        fixtures_dir().join("xgboost/cat_regression.json"),
        fixtures_dir().join("xgboost/cat_binary.ubj"),
        fixtures_dir().join("lightgbm/cat_regression.txt"),
        fixtures_dir().join("lightgbm/cat_binary.txt"),
    ] {
        let bytes = import_to_bytes(&path);
        let f = open(&bytes, "cat");
        let flags = f.tensor_as::<u8>("trees.flags").unwrap();
        let n_cat = flags.iter().filter(|&&x| x & 4 != 0).count();
        assert!(
            n_cat > 0,
            "{}: no categorical split imported",
            path.display()
        );
        assert!(f.graph().tensor("trees.cat_bits").is_some());
    }
}

#[test]
fn metadata_names_features_and_framework() {
    let bytes = import_to_bytes(&fixtures_dir().join("xgboost/reg_squarederror.json"));
    let m = open(&bytes, "m").metadata().clone();
    assert_eq!(m.framework, "xgboost");
    assert!(
        m.framework_version.starts_with("3."),
        "{}",
        m.framework_version
    );
    assert_eq!(m.model_type, "gbtree");
    assert_eq!(m.input.feature_names[..3], ["x0", "x1", "x2"]);
    assert_eq!(m.input.dtype, mle_format::DType::F32);

    let bytes = import_to_bytes(&fixtures_dir().join("xgboost/binary_logistic.json"));
    let m = open(&bytes, "m").metadata().clone();
    assert_eq!(m.input.feature_names[..2], ["f0", "f1"]);

    let bytes = import_to_bytes(&fixtures_dir().join("lightgbm/rf_binary.txt"));
    let f = open(&bytes, "m");
    let m = f.metadata();
    assert_eq!(m.framework, "lightgbm");
    assert_eq!(m.framework_version, "v4");
    assert_eq!(m.model_type, "rf");
    assert_eq!(m.input.feature_names[0], "Column_0");
    assert_eq!(m.input.dtype, mle_format::DType::F64);
    let node = &f.graph().nodes[0];
    assert_eq!(
        node.attr("aggregate"),
        Some(&mle_format::Attr::Str("average".into()))
    );
}

/// The LightGBM fixtures' edge rows make f64 comparison matter: the framework's predictions
/// for the rows rounded to f32 differ from those for the f64 rows, and both are matched above.
#[test]
fn lightgbm_fixtures_tell_f64_from_f32_comparisons() {
    let differing = fixtures("lightgbm", "txt")
        .iter()
        .filter(|(_, e)| {
            let exp = load_expected(e);
            exp.output != exp.output_f32
        })
        .count();
    assert!(
        differing >= 10,
        "only {differing} LightGBM fixtures depend on f64 precision"
    );
}
