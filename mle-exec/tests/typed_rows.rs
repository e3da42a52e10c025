//! The Rust row API on framework models with string categories: the fixtures in
//! `tests/fixtures/typed` (made by its `make.py`) are LightGBM, XGBoost and
//! HistGradientBoosting models fitted on pandas frames with category columns and exported by
//! `mle_runtime.export_model`, with probe rows (unseen categories, missing strings and
//! numbers) and two answers per row: the framework's own `predict_proba` / `predict`, and the
//! bits `mle_runtime` returned for the same frame. `Session::predict_row_typed` must give the
//! Python bits exactly and the framework's numbers within 1e-5 relative.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mle_exec::{Model, OutputData, Session, Value};
use mle_format::ReadOptions;
use serde_json::Value as Json;

const RTOL: f64 = 1e-5;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/typed")
}

fn f64s(d: &OutputData) -> Vec<f64> {
    match d {
        OutputData::F32(v) => v.iter().map(|&x| x as f64).collect(),
        OutputData::F64(v) => v.clone(),
        OutputData::I64(v) => v.iter().map(|&x| x as f64).collect(),
    }
}

fn check(name: &str) {
    let dir = fixtures();
    let text = std::fs::read_to_string(dir.join(format!("{name}.expected.json"))).unwrap();
    let exp: Json = serde_json::from_str(&text).unwrap();
    let model = exp["model"].as_str().unwrap();
    let model = Arc::new(Model::load(dir.join(model), &ReadOptions::default()).unwrap());
    let output = exp["output"].as_str().unwrap();
    let rows = exp["rows"].as_array().unwrap();
    let framework = exp["framework"].as_array().unwrap();
    let bits: Vec<u64> = exp["python_bits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| u64::from_str_radix(b.as_str().unwrap(), 16).unwrap())
        .collect();
    assert!(rows.len() >= 20, "{name}: too few probe rows");
    let width = bits.len() / rows.len();
    assert_eq!(width * rows.len(), bits.len(), "{name}");

    // The probes exercise missing strings, missing numbers and (but for XGBoost) unseen ones.
    let cells = rows.iter().flat_map(|r| r.as_array().unwrap());
    assert!(
        cells.clone().any(Json::is_null),
        "{name}: no missing values"
    );
    assert!(cells.clone().any(Json::is_string), "{name}: no strings");

    let mut session = Session::new(model);
    let mut row: Vec<Value<'_>> = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        row.clear();
        row.extend(r.as_array().unwrap().iter().map(|v| match v {
            Json::Null => Value::Missing,
            Json::String(s) => Value::Str(s),
            Json::Number(x) => Value::Num(x.as_f64().unwrap()),
            other => panic!("{name}: unexpected cell {other}"),
        }));
        let out = session.predict_row_typed(&row).unwrap();
        let got = f64s(&out.get(output).unwrap().data);
        let want_bits = &bits[i * width..(i + 1) * width];
        let got_bits: Vec<u64> = got.iter().map(|v| v.to_bits()).collect();
        assert_eq!(
            got_bits, want_bits,
            "{name} row {i}: {got:?} (Python's bits differ)"
        );
        let fw: Vec<f64> = framework[i]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(fw.len(), got.len(), "{name} row {i}");
        for (g, w) in got.iter().zip(&fw) {
            assert!(
                (g - w).abs() <= RTOL * w.abs().max(1e-6),
                "{name} row {i}: ours {g}, the framework's {w}"
            );
        }
    }
}

#[test]
fn lightgbm_binary_rows_match_lightgbm_and_python() {
    check("lightgbm_binary");
}

#[test]
fn xgboost_multiclass_rows_match_xgboost_and_python() {
    check("xgboost_multiclass");
}

#[test]
fn hist_gradient_boosting_rows_match_sklearn_and_python() {
    check("hgb_regression");
}
