//! Shared helpers of the tree-ensemble tests: an ensemble described by its OPS.md arrays, its
//! `.mle` round trip, a naive recursive reference implementation of the contract, and a
//! small deterministic RNG.
#![allow(dead_code)]

use mle_exec::tree::TreeEnsemble;
use mle_exec::{Batch, ExecError};
use mle_format::{
    Attr, DType, InputSchema, Metadata, MleFile, ModelBuilder, Node, OutputSchema, ReadOptions,
    Task, ValueInfo, WriteOptions,
};

pub const LEAF: u8 = 1;
pub const DL: u8 = 2;
pub const CAT: u8 = 4;
pub const ZERO_MISSING: u8 = 8;
pub const NAN_ZERO: u8 = 16;

/// A `TreeEnsemble` as the arrays of docs/OPS.md.
#[derive(Debug, Clone)]
pub struct Spec {
    pub n_targets: i64,
    pub leaf_dim: i64,
    pub roots: Vec<u32>,
    pub targets: Option<Vec<u32>>,
    pub weights: Option<Vec<f64>>,
    pub feature: Vec<i32>,
    pub threshold: Vec<f64>,
    pub left: Vec<u32>,
    pub right: Vec<u32>,
    pub flags: Vec<u8>,
    pub leaf_values: Vec<f64>,
    pub comparison: String,
    pub precision: String,
    pub aggregate: String,
    pub base_scores: Option<Vec<f64>>,
    /// (cat_offsets, cat_bits, categorical_members)
    pub cat: Option<(Vec<u32>, Vec<u32>, String)>,
}

impl Spec {
    /// An empty ensemble (no nodes, no trees) with the given comparison and precision.
    pub fn new(comparison: &str, precision: &str) -> Spec {
        Spec {
            n_targets: 1,
            leaf_dim: 1,
            roots: vec![],
            targets: None,
            weights: None,
            feature: vec![],
            threshold: vec![],
            left: vec![],
            right: vec![],
            flags: vec![],
            leaf_values: vec![],
            comparison: comparison.into(),
            precision: precision.into(),
            aggregate: "sum".into(),
            base_scores: None,
            cat: None,
        }
    }

    /// Appends a split node; returns its index.
    pub fn split(&mut self, feature: i32, threshold: f64, left: u32, right: u32, flags: u8) -> u32 {
        self.feature.push(feature);
        self.threshold.push(threshold);
        self.left.push(left);
        self.right.push(right);
        self.flags.push(flags);
        let d = self.leaf_dim.max(1) as usize;
        self.leaf_values.extend(std::iter::repeat_n(0.0, d));
        (self.feature.len() - 1) as u32
    }

    /// Appends a leaf with `values` (leaf_dim of them); returns its index.
    pub fn leaf(&mut self, values: &[f64]) -> u32 {
        self.feature.push(0);
        self.threshold.push(0.0);
        self.left.push(0);
        self.right.push(0);
        self.flags.push(LEAF);
        self.leaf_values.extend_from_slice(values);
        (self.feature.len() - 1) as u32
    }

    /// Appends a one-split tree `x[f] ? t → (lo | hi)` and returns its root.
    pub fn stump(&mut self, feature: i32, threshold: f64, flags: u8, lo: f64, hi: f64) -> u32 {
        let root = self.feature.len() as u32;
        self.split(feature, threshold, root + 1, root + 2, flags);
        self.leaf(&[lo]);
        self.leaf(&[hi]);
        self.roots.push(root);
        root
    }

    pub fn n_nodes(&self) -> usize {
        self.feature.len()
    }

    /// The node as an `.mle` graph node plus the builder holding its tensors.
    pub fn to_bytes(&self, n_features: usize) -> Vec<u8> {
        let meta = Metadata {
            framework: "test".into(),
            framework_version: String::new(),
            model_type: "TreeEnsemble".into(),
            task: Task::Regression,
            input: InputSchema {
                feature_names: (0..n_features).map(|i| format!("f{i}")).collect(),
                dtype: DType::F64,
                shape: vec![-1, n_features as i64],
            },
            output: OutputSchema {
                names: vec!["prediction".into()],
                dtypes: vec![DType::F64],
                class_labels: None,
            },
            export_time: String::new(),
            exporter_version: String::new(),
            user: Default::default(),
        };
        let mut b = ModelBuilder::new(meta);
        let n = |v: usize| [v as u64];
        let t = |s: &str| Attr::Tensor(s.to_string());
        b.add_tensor("roots", &n(self.roots.len()), &self.roots)
            .unwrap();
        b.add_tensor("feature", &n(self.feature.len()), &self.feature)
            .unwrap();
        b.add_tensor("threshold", &n(self.threshold.len()), &self.threshold)
            .unwrap();
        b.add_tensor("left", &n(self.left.len()), &self.left)
            .unwrap();
        b.add_tensor("right", &n(self.right.len()), &self.right)
            .unwrap();
        b.add_tensor("flags", &n(self.flags.len()), &self.flags)
            .unwrap();
        b.add_tensor("leaf_values", &n(self.leaf_values.len()), &self.leaf_values)
            .unwrap();
        let mut node = Node::new("trees", "TreeEnsemble", &["X"], &["prediction"])
            .with("n_targets", Attr::Int(self.n_targets))
            .with("leaf_dim", Attr::Int(self.leaf_dim))
            .with("tree_roots", t("roots"))
            .with("feature", t("feature"))
            .with("threshold", t("threshold"))
            .with("left", t("left"))
            .with("right", t("right"))
            .with("flags", t("flags"))
            .with("leaf_values", t("leaf_values"))
            .with("comparison", Attr::Str(self.comparison.clone()))
            .with("input_precision", Attr::Str(self.precision.clone()))
            .with("aggregate", Attr::Str(self.aggregate.clone()));
        if let Some(v) = &self.targets {
            b.add_tensor("targets", &n(v.len()), v).unwrap();
            node = node.with("tree_targets", t("targets"));
        }
        if let Some(v) = &self.weights {
            b.add_tensor("weights", &n(v.len()), v).unwrap();
            node = node.with("tree_weights", t("weights"));
        }
        if let Some(v) = &self.base_scores {
            node = node.with("base_scores", Attr::Floats(v.clone()));
        }
        if let Some((off, bits, members)) = &self.cat {
            b.add_tensor("cat_offsets", &n(off.len()), off).unwrap();
            b.add_tensor("cat_bits", &n(bits.len()), bits).unwrap();
            node = node
                .with("cat_offsets", t("cat_offsets"))
                .with("cat_bits", t("cat_bits"))
                .with("categorical_members", Attr::Str(members.clone()));
        }
        b.push_node(node);
        b.set_inputs(vec![ValueInfo {
            name: "X".into(),
            dtype: DType::F64,
            shape: vec![-1, n_features as i64],
        }]);
        b.set_outputs(vec![ValueInfo {
            name: "prediction".into(),
            dtype: DType::F64,
            shape: vec![-1, self.n_targets],
        }]);
        b.to_bytes(&WriteOptions::default()).unwrap()
    }

    pub fn file(&self, n_features: usize) -> MleFile {
        MleFile::from_bytes(
            &self.to_bytes(n_features),
            "test.mle",
            &ReadOptions::default(),
        )
        .unwrap()
    }

    /// Writes, reads back and compiles.
    pub fn compile(&self, n_features: usize) -> Result<TreeEnsemble, ExecError> {
        let file = self.file(n_features);
        let node = file.graph().nodes[0].clone();
        TreeEnsemble::compile(&node, &file, n_features)
    }

    // ---- the reference implementation: docs/OPS.md, literally, recursively ----

    fn round(&self, v: f64) -> f64 {
        if self.precision == "f32" {
            v as f32 as f64
        } else {
            v
        }
    }

    fn goes_left(&self, i: usize, x: &[f64]) -> bool {
        let fl = self.flags[i];
        let dl = fl & DL != 0;
        let mut v = x[self.feature[i] as usize];
        if fl & CAT != 0 {
            if v.is_nan() {
                return dl;
            }
            let (off, bits, members) = self.cat.as_ref().unwrap();
            let words = &bits[off[i] as usize..off[i + 1] as usize];
            let c = self.round(v).trunc();
            let member = if c < 0.0 || c >= 32.0 * words.len() as f64 {
                false
            } else {
                let c = c as usize;
                words[c / 32] >> (c % 32) & 1 == 1
            };
            return if member {
                members == "left"
            } else {
                members != "left"
            };
        }
        if fl & NAN_ZERO != 0 && v.is_nan() {
            v = 0.0;
        }
        if v.is_nan() || (fl & ZERO_MISSING != 0 && v.abs() <= 1e-35f32 as f64) {
            return dl;
        }
        let t = self.threshold[i];
        if self.comparison == "lt" {
            self.round(v) < t
        } else {
            self.round(v) <= t
        }
    }

    fn leaf_of(&self, i: usize, x: &[f64]) -> usize {
        if self.flags[i] & LEAF != 0 {
            i
        } else if self.goes_left(i, x) {
            self.leaf_of(self.left[i] as usize, x)
        } else {
            self.leaf_of(self.right[i] as usize, x)
        }
    }

    /// The contract's output for one row (f32 inputs passed widened).
    pub fn reference(&self, x: &[f64]) -> Vec<f64> {
        let nt = self.n_targets as usize;
        let ld = self.leaf_dim as usize;
        let mut sum = vec![0.0f64; nt];
        let mut count = vec![0usize; nt];
        for (k, &root) in self.roots.iter().enumerate() {
            let leaf = self.leaf_of(root as usize, x);
            let w = self.weights.as_ref().map_or(1.0, |w| w[k]);
            if ld == 1 {
                let t = self.targets.as_ref().map_or(0, |t| t[k] as usize);
                sum[t] += w * self.leaf_values[leaf];
                count[t] += 1;
            } else {
                for t in 0..nt {
                    sum[t] += w * self.leaf_values[leaf * ld + t];
                    count[t] += 1;
                }
            }
        }
        let base = self.base_scores.clone().unwrap_or(vec![0.0; nt]);
        (0..nt)
            .map(|t| {
                let agg = if self.aggregate == "average" && count[t] > 0 {
                    sum[t] / count[t] as f64
                } else {
                    sum[t]
                };
                agg + base[t]
            })
            .collect()
    }
}

/// Runs every path (row f64, batch of f64 columns, batch of a row-major f64 matrix) on `rows`,
/// checks they agree bit for bit, and returns the outputs.
pub fn predict_all(ens: &TreeEnsemble, rows: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let nt = ens.n_targets();
    let nf = ens.n_features();
    let mut by_row = Vec::new();
    for r in rows {
        let mut o = vec![f64::NAN; nt];
        ens.predict_row_f64(r, &mut o);
        by_row.push(o);
    }
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    let batch = Batch::from_row_major_f64(&flat, rows.len(), nf).unwrap();
    let mut out = vec![f64::NAN; rows.len() * nt];
    let mut s = ens.scratch();
    ens.predict_batch(&batch, 0..rows.len(), &mut out, &mut s);
    let cols: Vec<Vec<f64>> = (0..nf)
        .map(|j| rows.iter().map(|r| r[j]).collect())
        .collect();
    let batch =
        Batch::from_columns(cols.iter().map(|c| mle_exec::ColumnData::F64(c)).collect()).unwrap();
    let mut out2 = vec![f64::NAN; rows.len() * nt];
    ens.predict_batch(&batch, 0..rows.len(), &mut out2, &mut s);
    for (i, r) in by_row.iter().enumerate() {
        assert_same(
            r,
            &out[i * nt..(i + 1) * nt],
            &format!("row {i}: row path vs batch"),
        );
        assert_same(
            r,
            &out2[i * nt..(i + 1) * nt],
            &format!("row {i}: row path vs columns"),
        );
    }
    by_row
}

/// Like [`predict_all`] with f32 inputs.
pub fn predict_all_f32(ens: &TreeEnsemble, rows: &[Vec<f32>]) -> Vec<Vec<f64>> {
    let nt = ens.n_targets();
    let nf = ens.n_features();
    let mut by_row = Vec::new();
    for r in rows {
        let mut o = vec![f64::NAN; nt];
        ens.predict_row_f32(r, &mut o);
        by_row.push(o);
    }
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    let batch = Batch::from_row_major_f32(&flat, rows.len(), nf).unwrap();
    let mut out = vec![f64::NAN; rows.len() * nt];
    let mut s = ens.scratch();
    ens.predict_batch(&batch, 0..rows.len(), &mut out, &mut s);
    for (i, r) in by_row.iter().enumerate() {
        assert_same(
            r,
            &out[i * nt..(i + 1) * nt],
            &format!("row {i}: f32 row path vs batch"),
        );
    }
    by_row
}

/// Bitwise equality of two f64 slices (NaN equals NaN).
pub fn assert_same(a: &[f64], b: &[f64], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
            "{what}: element {i}: {x:?} != {y:?}"
        );
    }
}

/// xorshift64*: deterministic, seedable.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}
