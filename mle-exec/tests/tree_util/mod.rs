//! Shared helpers of the tree-ensemble tests: ensembles as `mle_format::tree::TreeEnsembleSpec`
//! written through `mle_testkit::tree`, compiled by the executor, and checked against the
//! reference interpreter of `mle_testkit::reference` (docs/OPS.md); every executor path run on
//! the same rows.
#![allow(dead_code, unused_imports)]

use mle_exec::tree::TreeEnsemble;
use mle_exec::{Batch, ExecError};
use mle_format::tree::{Comparison, Precision};
use mle_format::{DType, MleFile, Node};
use mle_testkit::reference::Trees;

pub use mle_format::tree::flags::{
    CATEGORICAL as CAT, LEAF, MISSING_LEFT as DL, NAN_IS_ZERO as NAN_ZERO,
    ZERO_IS_MISSING as ZERO_MISSING,
};
pub use mle_format::tree::{
    Aggregate, CategoricalRule, CategorySets, Members, TreeEnsembleSpec as Spec,
};
pub use mle_testkit::assert_same_bits as assert_same;
pub use mle_testkit::Rng;

/// An empty ensemble (no nodes, no trees, one target) with the given `comparison` and
/// `input_precision`.
pub fn spec(comparison: &str, precision: &str) -> Spec {
    Spec::new(
        1,
        1,
        Comparison::parse(comparison).expect("a comparison"),
        Precision::parse(precision).expect("a precision"),
    )
}

/// What the tree tests do with an ensemble.
pub trait SpecExt {
    /// Appends a one-split tree `x[f] ? t → (lo | hi)` and returns its root.
    fn stump(&mut self, feature: i32, threshold: f64, flags: u8, lo: f64, hi: f64) -> u32;
    /// The ensemble as a model over `n_features` f64 inputs.
    fn to_bytes(&self, n_features: usize) -> Vec<u8>;
    /// [`to_bytes`](SpecExt::to_bytes), read back.
    fn file(&self, n_features: usize) -> MleFile;
    /// Writes, reads back and compiles.
    fn compile(&self, n_features: usize) -> Result<TreeEnsemble, ExecError>;
    /// Like [`compile`](SpecExt::compile), with the node edited before it is written (for
    /// attribute values the typed spec cannot hold).
    fn compile_with(
        &self,
        n_features: usize,
        edit: impl FnOnce(&mut Node),
    ) -> Result<TreeEnsemble, ExecError>;
    /// The reference interpreter of the written ensemble.
    fn reference(&self) -> Trees;
}

impl SpecExt for Spec {
    fn stump(&mut self, feature: i32, threshold: f64, flags: u8, lo: f64, hi: f64) -> u32 {
        mle_testkit::tree::push_stump(self, feature, threshold, flags, lo, hi)
    }

    fn to_bytes(&self, n_features: usize) -> Vec<u8> {
        mle_testkit::tree::bytes(self, n_features)
    }

    fn file(&self, n_features: usize) -> MleFile {
        mle_testkit::tree::file(self, n_features)
    }

    fn compile(&self, n_features: usize) -> Result<TreeEnsemble, ExecError> {
        self.compile_with(n_features, |_| {})
    }

    fn compile_with(
        &self,
        n_features: usize,
        edit: impl FnOnce(&mut Node),
    ) -> Result<TreeEnsemble, ExecError> {
        let b = mle_testkit::tree::builder_with(self, n_features, DType::F64, edit);
        let file = mle_testkit::tree::read(&b.to_bytes(&Default::default())?);
        let node = file.graph().nodes[0].clone();
        TreeEnsemble::compile(&node, &file, n_features)
    }

    fn reference(&self) -> Trees {
        // The interpreter reads only the node; the model around it is as wide as the largest
        // split feature needs.
        let widest = self.feature.iter().map(|&f| f.max(0) as usize + 1).max();
        Trees::from_file(&self.file(widest.unwrap_or(1)))
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

/// The next f32 above `v` (NaN and +∞ unchanged).
pub fn next_up32(v: f32) -> f32 {
    if v.is_nan() || v == f32::INFINITY {
        v
    } else if v == 0.0 {
        f32::from_bits(1)
    } else if v > 0.0 {
        f32::from_bits(v.to_bits() + 1)
    } else {
        f32::from_bits(v.to_bits() - 1)
    }
}

/// The next f32 below `v`.
pub fn next_down32(v: f32) -> f32 {
    -next_up32(-v)
}

/// The next f64 above `v` (NaN and +∞ unchanged).
pub fn next_up64(v: f64) -> f64 {
    if v.is_nan() || v == f64::INFINITY {
        v
    } else if v == 0.0 {
        f64::from_bits(1)
    } else if v > 0.0 {
        f64::from_bits(v.to_bits() + 1)
    } else {
        f64::from_bits(v.to_bits() - 1)
    }
}

/// The next f64 below `v`.
pub fn next_down64(v: f64) -> f64 {
    -next_up64(-v)
}

/// Thresholds of every kind, plus `n` random ones across magnitudes.
pub fn thresholds(n: usize) -> Vec<f64> {
    let mut base: Vec<f64> = vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.5,
        0.1,
        -0.1,
        1e-46,
        -1e-46,
        1.0e-45,
        f32::from_bits(1) as f64,
        f32::MIN_POSITIVE as f64,
        f32::MAX as f64,
        -(f32::MAX as f64),
        1e39,
        -1e39,
        1e300,
        -1e300,
        f64::MAX,
        f64::MIN,
        f64::MIN_POSITIVE,
        f64::from_bits(1),
        -f64::from_bits(1),
        f64::INFINITY,
        f64::NEG_INFINITY,
        16777217.0,
        -16777217.0,
    ];
    // f32::MAX plus half an ulp: the rounding boundary to infinity.
    base.push(f32::MAX as f64 + 2f64.powi(103));
    base.push(f32::MAX as f64 + 2f64.powi(103) - 2f64.powi(80));
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..n {
        let mag = 10f64.powf(rng.unit() * 80.0 - 40.0);
        let v = if rng.chance(0.5) { mag } else { -mag };
        base.push(v);
        base.push(v as f32 as f64);
        let a = v as f32;
        base.push((a as f64 + next_up32(a) as f64) / 2.0); // sklearn-style midpoint
        base.push(next_up64(a as f64));
        base.push(next_down64(a as f64));
    }
    let mut all = Vec::new();
    for t in base {
        all.push(t);
        all.push(next_up64(t));
        all.push(next_down64(t));
    }
    all
}
