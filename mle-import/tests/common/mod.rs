//! Shared helpers: fixture loading, tolerance checks, and the graphs the importers write run
//! through the test kit's reference interpreter (a direct reading of `docs/OPS.md`, row by
//! row), used beside `mle-exec` so that a disagreement points at the importer or at the
//! executor.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use mle_format::{MleFile, ReadOptions, WriteOptions};
use serde_json::Value;

pub fn fixtures_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("../tests/fixtures")
}

/// The framework's predictions for one fixture model.
pub struct Expected {
    pub name: String,
    pub task: String,
    pub n_features: usize,
    pub rows: Vec<Vec<f64>>,
    /// (output, label) for f64 rows.
    pub output: Vec<Vec<f64>>,
    pub label: Option<Vec<i64>>,
    pub margin: Vec<Vec<f64>>,
    /// For the rows rounded to f32.
    pub output_f32: Vec<Vec<f64>>,
    pub label_f32: Option<Vec<i64>>,
}

fn matrix(v: &Value) -> Vec<Vec<f64>> {
    v.as_array()
        .expect("matrix")
        .iter()
        .map(|r| {
            r.as_array()
                .expect("row")
                .iter()
                .map(|x| x.as_f64().unwrap_or(f64::NAN))
                .collect()
        })
        .collect()
}

fn labels(v: Option<&Value>) -> Option<Vec<i64>> {
    v.map(|v| {
        v.as_array()
            .expect("labels")
            .iter()
            .map(|x| x.as_i64().expect("label"))
            .collect()
    })
}

pub fn load_expected(path: &Path) -> Expected {
    let text = std::fs::read_to_string(path).expect("read expected");
    let d: Value = serde_json::from_str(&text).expect("expected json");
    let output = matrix(&d["output"]);
    let label = labels(d.get("label"));
    Expected {
        name: path.file_name().unwrap().to_string_lossy().into_owned(),
        task: d["task"].as_str().unwrap().to_string(),
        n_features: d["n_features"].as_u64().unwrap() as usize,
        rows: matrix(&d["rows"]),
        margin: matrix(&d["margin"]),
        output_f32: d
            .get("output_f32")
            .map(matrix)
            .unwrap_or_else(|| output.clone()),
        label_f32: labels(d.get("label_f32")).or_else(|| label.clone()),
        output,
        label,
    }
}

/// Max relative error with an absolute floor of 1e-6 near zero: `|a - b| <= max(1e-6, 1e-5 |b|)`.
pub fn assert_close(what: &str, got: &[f64], want: &[Vec<f64>]) {
    let want: Vec<f64> = want.iter().flatten().copied().collect();
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: {} values, expected {}",
        got.len(),
        want.len()
    );
    let mut worst = 0.0f64;
    for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
        let err = (g - w).abs();
        let tol = (1e-5 * w.abs()).max(1e-6);
        assert!(
            err <= tol,
            "{what}: value {i}: got {g}, framework {w} (error {err:e} > {tol:e})"
        );
        worst = worst.max(err / w.abs().max(1e-6 / 1e-5));
    }
    eprintln!(
        "{what}: {} values, max relative error {worst:.2e}",
        got.len()
    );
}

/// Imports a fixture model file and serializes it to `.mle` bytes.
pub fn import_to_bytes(path: &Path) -> Vec<u8> {
    let b = mle_import::import_file(path, None)
        .unwrap_or_else(|e| panic!("import {}: {e}", path.display()));
    b.to_bytes(&WriteOptions::default()).expect("to_bytes")
}

pub fn open(bytes: &[u8], name: &str) -> MleFile {
    MleFile::from_bytes(bytes, name, &ReadOptions::default()).expect("read back")
}

/// Outputs of the reference interpreter: by output name, row-major.
pub struct RefOut {
    pub prediction: Option<Vec<f64>>,
    pub probabilities: Option<Vec<f64>>,
    pub label: Option<Vec<i64>>,
}

/// Runs the graph row by row through `mle_testkit::reference` (docs/OPS.md). The caller
/// rounds the rows to f32 for f32 inputs; `input_precision` is applied as each node says.
pub fn reference_predict(f: &MleFile, rows: &[Vec<f64>]) -> RefOut {
    let values = mle_testkit::reference::run(f, rows);
    RefOut {
        prediction: values.get("prediction").map(|v| v.data.clone()),
        probabilities: values.get("probabilities").map(|v| v.data.clone()),
        label: values
            .get("label")
            .map(|v| v.data.iter().map(|&x| x as i64).collect()),
    }
}
