//! Shared helpers: fixture loading, tolerance checks, and a plain reference interpreter of
//! the graphs the importers write (a direct reading of `docs/OPS.md`, row by row), used
//! beside `mle-exec` so that a disagreement points at the importer or at the executor.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use mle_format::{Attr, MleFile, ReadOptions, WriteOptions};
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

fn tensor_u32(f: &MleFile, a: Option<&Attr>) -> Vec<u32> {
    match a {
        Some(Attr::Tensor(n)) => f.tensor_as::<u32>(n).expect("u32 tensor").to_vec(),
        _ => Vec::new(),
    }
}

fn str_attr(a: Option<&Attr>) -> &str {
    match a {
        Some(Attr::Str(s)) => s,
        _ => "",
    }
}

/// Runs the graph row by row as `docs/OPS.md` describes. `x32` rounds inputs to f32 first
/// (the caller's dtype); `input_precision` is applied as the node says.
pub fn reference_predict(f: &MleFile, rows: &[Vec<f64>]) -> RefOut {
    let g = f.graph();
    let mut values: std::collections::HashMap<String, (Vec<f64>, usize)> = Default::default();
    let n = rows.len();
    for node in &g.nodes {
        let input = node.inputs.first().and_then(|i| values.get(i)).cloned();
        let out: (Vec<f64>, usize) = match node.op.as_str() {
            "TreeEnsemble" => tree_ensemble(f, node, rows),
            "Sigmoid" => {
                let (v, w) = input.unwrap();
                (v.iter().map(|x| 1.0 / (1.0 + (-x).exp())).collect(), w)
            }
            "Exp" => {
                let (v, w) = input.unwrap();
                (v.iter().map(|x| x.exp()).collect(), w)
            }
            "Reshape" | "Identity" => input.unwrap(),
            "Softmax" => {
                let (v, w) = input.unwrap();
                let mut o = Vec::with_capacity(v.len());
                for r in v.chunks(w) {
                    let m = r.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let s: f64 = r.iter().map(|x| (x - m).exp()).sum();
                    o.extend(r.iter().map(|x| (x - m).exp() / s));
                }
                (o, w)
            }
            "BinaryToProba" => {
                let (v, _) = input.unwrap();
                (v.iter().flat_map(|&p| [1.0 - p, p]).collect(), 2)
            }
            "Threshold" => {
                let (v, _) = input.unwrap();
                let t = match node.attr("threshold") {
                    Some(Attr::Float(t)) => *t,
                    _ => 0.5,
                };
                (
                    v.iter().map(|&x| if x > t { 1.0 } else { 0.0 }).collect(),
                    1,
                )
            }
            "ArgMax" => {
                let (v, w) = input.unwrap();
                let mut o = Vec::with_capacity(n);
                for r in v.chunks(w) {
                    let mut best = 0;
                    for (j, &x) in r.iter().enumerate() {
                        if x > r[best] || r[best].is_nan() && !x.is_nan() {
                            best = j;
                        }
                    }
                    o.push(best as f64);
                }
                (o, 1)
            }
            op => panic!("reference interpreter: op {op} not expected in an import"),
        };
        values.insert(node.outputs[0].clone(), out);
    }
    RefOut {
        prediction: values.get("prediction").map(|v| v.0.clone()),
        probabilities: values.get("probabilities").map(|v| v.0.clone()),
        label: values
            .get("label")
            .map(|v| v.0.iter().map(|&x| x as i64).collect()),
    }
}

fn tree_ensemble(f: &MleFile, node: &mle_format::Node, rows: &[Vec<f64>]) -> (Vec<f64>, usize) {
    let t = |k: &str| match node.attr(k) {
        Some(Attr::Tensor(n)) => n.clone(),
        other => panic!("attribute {k}: {other:?}"),
    };
    let feature = f.tensor_as::<i32>(&t("feature")).unwrap();
    let threshold = f.tensor_as::<f64>(&t("threshold")).unwrap();
    let left = f.tensor_as::<u32>(&t("left")).unwrap();
    let right = f.tensor_as::<u32>(&t("right")).unwrap();
    let flags = f.tensor_as::<u8>(&t("flags")).unwrap();
    let leaves = f.tensor_as::<f64>(&t("leaf_values")).unwrap();
    let roots = f.tensor_as::<u32>(&t("tree_roots")).unwrap();
    let targets = tensor_u32(f, node.attr("tree_targets"));
    let weights: Vec<f64> = match node.attr("tree_weights") {
        Some(Attr::Tensor(n)) => f.tensor_as::<f64>(n).unwrap().to_vec(),
        _ => vec![1.0; roots.len()],
    };
    let cat_offsets = tensor_u32(f, node.attr("cat_offsets"));
    let cat_bits = tensor_u32(f, node.attr("cat_bits"));
    let members_left = str_attr(node.attr("categorical_members")) == "left";
    let lt = str_attr(node.attr("comparison")) == "lt";
    let p32 = str_attr(node.attr("input_precision")) == "f32";
    let average = str_attr(node.attr("aggregate")) == "average";
    let n_targets = match node.attr("n_targets") {
        Some(Attr::Int(k)) => *k as usize,
        _ => 1,
    };
    let base = match node.attr("base_scores") {
        Some(Attr::Floats(b)) => b.clone(),
        _ => vec![0.0; n_targets],
    };
    let mut counts = vec![0usize; n_targets];
    for k in 0..roots.len() {
        counts[targets.get(k).copied().unwrap_or(0) as usize] += 1;
    }
    let mut out = Vec::with_capacity(rows.len() * n_targets);
    for row in rows {
        let mut acc = vec![0.0f64; n_targets];
        for (k, &root) in roots.iter().enumerate() {
            let mut i = root as usize;
            while flags[i] & 1 == 0 {
                let fl = flags[i];
                let mut x = row[feature[i] as usize];
                let go_left = if fl & 4 != 0 {
                    if x.is_nan() {
                        fl & 2 != 0
                    } else {
                        let c = x.trunc();
                        let (lo, hi) = (cat_offsets[i] as usize, cat_offsets[i + 1] as usize);
                        let member = c >= 0.0
                            && (c as usize) / 32 < hi - lo
                            && cat_bits[lo + (c as usize) / 32] >> ((c as usize) % 32) & 1 == 1;
                        member == members_left
                    }
                } else {
                    if fl & 16 != 0 && x.is_nan() {
                        x = 0.0;
                    }
                    if x.is_nan() || (fl & 8 != 0 && x.abs() <= 1e-35f32 as f64) {
                        fl & 2 != 0
                    } else {
                        let x = if p32 { x as f32 as f64 } else { x };
                        if lt {
                            x < threshold[i]
                        } else {
                            x <= threshold[i]
                        }
                    }
                };
                i = if go_left { left[i] } else { right[i] } as usize;
            }
            acc[targets.get(k).copied().unwrap_or(0) as usize] += weights[k] * leaves[i];
        }
        for tgt in 0..n_targets {
            let a = if average {
                acc[tgt] / counts[tgt] as f64
            } else {
                acc[tgt]
            };
            out.push(base[tgt] + a);
        }
    }
    (out, n_targets)
}
