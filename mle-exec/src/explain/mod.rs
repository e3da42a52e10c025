//! Explanations of tree models: exact path-dependent TreeSHAP contributions
//! ([`crate::Session::explain_batch`]) and leaf indices ([`crate::Session::apply_batch`]).
//!
//! # What is explained
//!
//! A graph whose one `TreeEnsemble` reads the model's input features (directly, or after the
//! `Lookup` input stage) and whose every other step reads only what the ensemble computes
//! (post-transforms: `Sigmoid`, `Softmax`, `BinaryToProba`, `ArgMax`, ...). Contributions are
//! of the ensemble's output `Y[n, t]` — the raw margin, before any post-transform, base scores
//! included — like XGBoost's `pred_contribs` and LightGBM's `pred_contrib`. Anything else
//! (linear models, networks, several ensembles, a transformed input) is refused with
//! [`Unexplainable`] naming why.
//!
//! # Semantics
//!
//! For each tree and leaf `l` with value `v_l` (times the tree weight, divided as the
//! prediction is under `aggregate = average`), the path from the root to `l` has distinct split
//! features `P` (a feature split on twice is one element: zero fractions multiply, and the row
//! satisfies it when it satisfies every split on it). The zero fraction of an edge is
//! `cover(child) / cover(parent)` (0 when the parent's cover is 0), `z_j` its product over the
//! edges of feature `j`, and `o_j = 1` when the row's decisions (the `TreeEnsemble` rules:
//! missing directions, categorical splits, zero-as-missing, NaN-as-zero, `comparison`,
//! `input_precision`) follow the path at every split on `j`. The leaf's game is
//! `g(S) = v_l Π_{j ∈ S} o_j Π_{j ∈ P \ S} z_j`; its Shapley values summed over leaves and trees
//! are the contributions, and the bias column is `base_scores[t] + Σ v_l Π_j z_j` (the
//! cover-weighted mean of the leaves). So for every row `Σ contributions + bias = Y` exactly
//! (up to rounding), whatever the covers. This is the algorithm of XGBoost's and LightGBM's
//! TreeSHAP (Lundberg et al. 2020, Algorithm 2).
//!
//! # Algorithm
//!
//! Per leaf at compile time, with `d = |P|` (at most [`TABLE_MAX_FEATURES`]) and every `z_j > 0`:
//! the table `A(H) = Σ_{S ⊆ H} w(|S|) Π_{j ∉ S} z_j` over all `2^d` hot sets `H`
//! (`w(s) = s!(d-1-s)!/d!`). Because `o_j` is 0 or 1, a row with hot set `H` gets
//! `φ_j = -v A(H)` for a feature it does not satisfy and `φ_j = v (1 - z_j)/z_j · A(H \ {j})`
//! for one it does: `O(d)` per leaf and row (the table idea of Fast TreeSHAP v2, Yang 2021),
//! against `O(d²)` for Lundberg's path unwinding. A row's hot sets come from one pre-order pass
//! over the tree: each split's decision adds its feature's bit (its slot on the path, the same
//! for every leaf below) to the "cold" mask of the child the row does not take. Leaves with a
//! wider path, a zero fraction of 0, or beyond the table budget run Lundberg's `O(d²)`
//! extension/unwinding on their path instead (a leaf with `z_j = 0` for a feature the row does
//! not satisfy has a zero game and is skipped). Nothing allocates per row: each worker thread
//! keeps its row buffer and masks across calls.

mod build;

use std::sync::{Mutex, PoisonError};

use mle_format::tree::flags::{CATEGORICAL, LEAF, MISSING_LEFT, NAN_IS_ZERO, ZERO_IS_MISSING};
use rayon::prelude::*;
use thiserror::Error;

use crate::batch::Batch;
use crate::error::ExecError;
use crate::plan::{Kernel, Plan};
use crate::{Model, RunOptions};

/// Most distinct features on one root-to-leaf path of an explained tree (hot sets are 64-bit
/// masks); a wider path refuses explanations ([`Unexplainable::PathTooWide`]).
pub const MAX_PATH_FEATURES: usize = 64;
/// Most distinct features on a path whose leaf gets a TreeSHAP table (`2^d` values); wider
/// paths use Lundberg's unwinding.
pub const TABLE_MAX_FEATURES: usize = 12;
/// Table bytes always allowed; beyond, the plan budget (`MAX_PLAN_BYTES +
/// PLAN_BYTES_PER_FILE_BYTE × file size`) bounds them.
pub(crate) const TABLE_MIN_BUDGET: usize = 16 << 20;
pub(crate) const NO_TABLE: u32 = u32::MAX;
/// LightGBM's zero band (`kZeroThreshold`), as the tree kernels read it.
const ZERO_BAND: f64 = 1e-35f32 as f64;
/// Rows per unit of work handed to a thread.
const CHUNK: usize = 64;

/// Why a model cannot be explained (or its leaves indexed).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Unexplainable {
    /// The graph has no `TreeEnsemble` (linear models, networks, ...).
    #[error("the graph has no TreeEnsemble: only tree models are explained (linear models and networks are not)")]
    NoTrees,
    /// More than one `TreeEnsemble`.
    #[error("the graph has {count} TreeEnsembles, explanations take exactly one")]
    SeveralEnsembles {
        /// How many.
        count: usize,
    },
    /// The ensemble reads a transformed input, not the input features.
    #[error("TreeEnsemble {node:?} reads a computed value, not the input features (after Lookups): contributions would be of that value's columns")]
    TransformedInput {
        /// The ensemble's node.
        node: String,
    },
    /// Another step reads the input features besides the ensemble.
    #[error("step {node:?} ({op}) reads the input features besides the TreeEnsemble: the output is not the ensemble's alone")]
    OtherReader {
        /// The step's node.
        node: String,
        /// Its operator.
        op: String,
    },
    /// The ensemble has no `node_cover`.
    #[error("TreeEnsemble {node:?} has no node covers (attribute node_cover): re-export or re-import the model with a version that writes them")]
    NoCovers {
        /// The ensemble's node.
        node: String,
    },
    /// A path with more distinct features than [`MAX_PATH_FEATURES`].
    #[error("TreeEnsemble {node:?}: a path of tree {tree} splits on {features} distinct features, more than {max}", max = MAX_PATH_FEATURES)]
    PathTooWide {
        /// The ensemble's node.
        node: String,
        /// The tree.
        tree: usize,
        /// Distinct features on the path.
        features: usize,
    },
    /// The ensemble's arrays could not be read (a malformed node the compiler let through).
    #[error("{detail}")]
    Invalid {
        /// What failed.
        detail: String,
    },
}

/// What an explanation or leaf-index call returns, known before any row is run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplainInfo {
    /// Input features (contribution columns, before the bias).
    pub n_features: usize,
    /// Outputs of the ensemble (`n_targets`: 1, or the classes of a multiclass model).
    pub n_outputs: usize,
    /// Trees (columns of the leaf indices).
    pub n_trees: usize,
    /// One name per feature (the metadata's, or `f0`, `f1`, ... when it has none).
    pub feature_names: Vec<String>,
}

/// Per-row feature contributions ([`crate::Session::explain_batch`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Explanation {
    /// `n_rows × n_outputs × (n_features + 1)` values, row-major: for each row and output, one
    /// contribution per feature then the bias (XGBoost's `pred_contribs` layout).
    pub values: Vec<f64>,
    /// Rows.
    pub n_rows: usize,
    /// Outputs per row (1 for regression and binary models, the classes of a multiclass one).
    pub n_outputs: usize,
    /// Features (columns per output, before the bias).
    pub n_features: usize,
    /// One name per feature.
    pub feature_names: Vec<String>,
}

impl Explanation {
    /// The `n_features + 1` values (contributions, then bias) of `row` and `output`.
    pub fn row(&self, row: usize, output: usize) -> Option<&[f64]> {
        let w = self.n_features + 1;
        let at = (row.checked_mul(self.n_outputs)?.checked_add(output)?).checked_mul(w)?;
        if row >= self.n_rows || output >= self.n_outputs {
            return None;
        }
        self.values.get(at..at + w)
    }
}

/// The leaf each row reaches in each tree ([`crate::Session::apply_batch`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeafIndices {
    /// `n_rows × n_trees` leaf numbers, row-major, as the source framework numbers them
    /// (`docs/OPS.md`, `leaf_ids`).
    pub values: Vec<i32>,
    /// Rows.
    pub n_rows: usize,
    /// Trees.
    pub n_trees: usize,
}

/// One laid-out node (pre-order within its tree; children are indices within the tree).
#[derive(Debug, Clone, Copy)]
pub(crate) struct XNode {
    pub thr: f64,
    pub feat: u32,
    pub flags: u8,
    /// Bit of this split's feature in the hot/cold masks of the leaves below.
    pub slot: u8,
    /// Left child; on a leaf: the leaf's index within the tree.
    pub left: u32,
    pub right: u32,
    pub cat_lo: u32,
    pub cat_hi: u32,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Tree {
    pub nodes: u32,
    pub n_nodes: u32,
    pub leaves: u32,
    pub target: u32,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Leaf {
    /// Distinct features on the path.
    pub d: u32,
    /// Offset of the path's features in [`Shap`]'s path arrays.
    pub path: u32,
    /// Offset of the TreeSHAP table, or [`NO_TABLE`].
    pub table: u32,
    /// Slots whose zero fraction is 0.
    pub zero_mask: u64,
    /// Offset of the `leaf_dim` values in [`Explainer::values`].
    pub value: u32,
    /// The framework's number of the leaf.
    pub id: i32,
}

/// The TreeSHAP data (needs covers).
#[derive(Debug)]
pub(crate) struct Shap {
    pub path_feat: Vec<u32>,
    pub path_z: Vec<f64>,
    /// `(1 - z) / z` per path element (0 where `z = 0`).
    pub path_c: Vec<f64>,
    pub tables: Vec<f64>,
    /// Per target: base score plus every tree's expected value.
    pub bias: Vec<f64>,
    pub max_path: usize,
}

/// A model's ensemble laid out for explanations and leaf indices.
#[derive(Debug)]
pub(crate) struct Explainer {
    pub n_features: usize,
    pub n_targets: usize,
    pub leaf_dim: usize,
    pub lt: bool,
    pub f32_precision: bool,
    pub members_left: bool,
    pub negative_invalid: bool,
    pub nodes: Vec<XNode>,
    pub trees: Vec<Tree>,
    pub leaves: Vec<Leaf>,
    /// Leaf values times tree weight (and divided under `average`), `leaf_dim` per leaf.
    pub values: Vec<f64>,
    pub cat_bits: Vec<u32>,
    pub max_tree_nodes: usize,
    pub shap: Result<Shap, Unexplainable>,
}

/// Finds the one explainable `TreeEnsemble` of `model` and builds its explainer.
pub(crate) fn analyze(model: &Model) -> Result<Explainer, Unexplainable> {
    let plan: &Plan = &model.plan;
    let file = &model.file;
    let trees: Vec<_> = plan
        .steps
        .iter()
        .filter(|s| matches!(s.kernel, Kernel::Tree { .. }))
        .collect();
    let step = match trees.as_slice() {
        [] => return Err(Unexplainable::NoTrees),
        [s] => *s,
        more => {
            return Err(Unexplainable::SeveralEnsembles { count: more.len() });
        }
    };
    let origin = |mut v: usize| {
        while let Some(a) = plan.values.get(v).and_then(|x| x.alias_of) {
            v = a;
        }
        v
    };
    if step.inputs.first().map(|&v| origin(v)) != Some(plan.x) {
        return Err(Unexplainable::TransformedInput {
            node: step.node.clone(),
        });
    }
    let op_of = |name: &str| {
        file.graph()
            .nodes
            .iter()
            .find(|n| n.name == name)
            .map(|n| n.op.clone())
            .unwrap_or_default()
    };
    for s in &plan.steps {
        if std::ptr::eq(s, step) {
            continue;
        }
        if s.inputs.iter().any(|&v| origin(v) == plan.x) {
            return Err(Unexplainable::OtherReader {
                node: s.node.clone(),
                op: op_of(&s.node),
            });
        }
    }
    let node = file
        .graph()
        .nodes
        .iter()
        .find(|n| n.name == step.node)
        .ok_or_else(|| Unexplainable::Invalid {
            detail: format!("node {:?} not in the graph", step.node),
        })?;
    let budget = crate::MAX_PLAN_BYTES.saturating_add(
        file.file_bytes()
            .len()
            .saturating_mul(crate::PLAN_BYTES_PER_FILE_BYTE),
    );
    build::build(node, file, plan.n_features, budget).map_err(|e| Unexplainable::Invalid {
        detail: e.to_string(),
    })
}

/// Per-thread scratch: one row of features, the cold masks of one tree, Lundberg's weights.
#[derive(Debug, Default)]
pub(crate) struct XWorker {
    x: Vec<f64>,
    cold: Vec<u64>,
    pw: Vec<f64>,
}

/// A session's explanation buffers, reused across calls.
#[derive(Debug, Default)]
pub(crate) struct ExplainScratch {
    pub workers: Vec<XWorker>,
    pub explanation: Explanation,
    pub leaves: LeafIndices,
}

impl Explainer {
    /// The `TreeEnsemble` decision at split `n` for input `x` (docs/OPS.md, the general
    /// kernel's reading).
    #[inline(always)]
    fn goes_left(&self, n: &XNode, x: f64) -> bool {
        let round = |v: f64| {
            if self.f32_precision {
                v as f32 as f64
            } else {
                v
            }
        };
        let dl = n.flags & MISSING_LEFT != 0;
        if n.flags & CATEGORICAL != 0 {
            if x.is_nan() {
                return dl;
            }
            let r = round(x);
            let c = if self.negative_invalid && r < 0.0 {
                -1.0
            } else {
                r.trunc()
            };
            let words = self
                .cat_bits
                .get(n.cat_lo as usize..n.cat_hi as usize)
                .unwrap_or(&[]);
            let member = c >= 0.0
                && c < (words.len() * 32) as f64
                && words
                    .get(c as usize / 32)
                    .is_some_and(|w| (w >> (c as usize % 32)) & 1 == 1);
            member == self.members_left
        } else {
            let mut v = x;
            if n.flags & NAN_IS_ZERO != 0 && v.is_nan() {
                v = 0.0;
            }
            if v.is_nan() || (n.flags & ZERO_IS_MISSING != 0 && v.abs() <= ZERO_BAND) {
                dl
            } else if self.lt {
                round(v) < n.thr
            } else {
                round(v) <= n.thr
            }
        }
    }

    fn worker(&self) -> XWorker {
        XWorker {
            x: vec![0.0; self.n_features],
            cold: vec![0; self.max_tree_nodes.max(1)],
            pw: vec![0.0; MAX_PATH_FEATURES + 2],
        }
    }

    /// Contributions of one row `x` into `out` (`n_targets × (n_features + 1)`, overwritten).
    fn explain_row(&self, shap: &Shap, x: &[f64], out: &mut [f64], w: &mut XWorker) {
        out.fill(0.0);
        let width = self.n_features + 1;
        for tree in &self.trees {
            let n0 = tree.nodes as usize;
            let nodes = self
                .nodes
                .get(n0..n0 + tree.n_nodes as usize)
                .unwrap_or(&[]);
            let cold = &mut w.cold[..nodes.len()];
            cold[0] = 0;
            for (i, n) in nodes.iter().enumerate() {
                let c = cold[i];
                if n.flags & LEAF != 0 {
                    let leaf = &self.leaves[tree.leaves as usize + n.left as usize];
                    self.add_leaf(shap, leaf, c, tree.target as usize, width, out, &mut w.pw);
                } else {
                    let v = x.get(n.feat as usize).copied().unwrap_or(f64::NAN);
                    let left = self.goes_left(n, v);
                    let bit = 1u64.checked_shl(n.slot as u32).unwrap_or(0);
                    let (cl, cr) = if left { (c, c | bit) } else { (c | bit, c) };
                    if let Some(s) = cold.get_mut(n.left as usize) {
                        *s = cl;
                    }
                    if let Some(s) = cold.get_mut(n.right as usize) {
                        *s = cr;
                    }
                }
            }
        }
        for (t, b) in shap.bias.iter().enumerate() {
            out[t * width + self.n_features] += b;
        }
    }

    /// One leaf's Shapley values for a row whose cold mask on the leaf's path is `cold`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn add_leaf(
        &self,
        shap: &Shap,
        leaf: &Leaf,
        cold: u64,
        target: usize,
        width: usize,
        out: &mut [f64],
        pw: &mut [f64],
    ) {
        let d = leaf.d as usize;
        if d == 0 {
            return;
        }
        let p0 = leaf.path as usize;
        let feats = &shap.path_feat[p0..p0 + d];
        let full = if d >= 64 { u64::MAX } else { (1u64 << d) - 1 };
        let hot = full & !cold;
        let v0 = leaf.value as usize;
        let vals = &self.values[v0..v0 + self.leaf_dim];
        if leaf.table != NO_TABLE {
            let t0 = leaf.table as usize;
            let table = &shap.tables[t0..t0 + (1usize << d)];
            let cs = &shap.path_c[p0..p0 + d];
            let h = hot as usize;
            let a = table[h];
            if let [v] = vals {
                let row = &mut out[target * width..(target + 1) * width];
                for (j, (&f, &c)) in feats.iter().zip(cs).enumerate() {
                    let bit = 1usize << j;
                    let val = if h & bit != 0 { c * table[h ^ bit] } else { -a };
                    row[f as usize] += v * val;
                }
            } else {
                for (j, (&f, &c)) in feats.iter().zip(cs).enumerate() {
                    let bit = 1usize << j;
                    let val = if h & bit != 0 { c * table[h ^ bit] } else { -a };
                    for (t, &v) in vals.iter().enumerate() {
                        out[t * width + f as usize] += v * val;
                    }
                }
            }
            return;
        }
        if cold & leaf.zero_mask != 0 {
            // z_j = 0 and o_j = 0 for some feature: g(S) = 0 for every S.
            return;
        }
        // Lundberg's extension of the path (a dummy element, then the d features) ...
        let zs = &shap.path_z[p0..p0 + d];
        let o = |j: usize| ((hot >> j) & 1) as f64;
        pw[0] = 1.0;
        for (j, &z) in zs.iter().enumerate() {
            let u = j + 1;
            let oj = o(j);
            pw[u] = 0.0;
            for i in (0..u).rev() {
                pw[i + 1] += oj * pw[i] * (i + 1) as f64 / (u + 1) as f64;
                pw[i] = z * pw[i] * (u - i) as f64 / (u + 1) as f64;
            }
        }
        // ... and the unwound sum of each.
        let dd = d;
        for (j, (&f, &z)) in feats.iter().zip(zs).enumerate() {
            let oj = o(j);
            let mut total = 0.0;
            if oj != 0.0 {
                let mut next = pw[dd];
                for i in (0..dd).rev() {
                    let tmp = next * (dd + 1) as f64 / ((i + 1) as f64 * oj);
                    total += tmp;
                    next = pw[i] - tmp * z * (dd - i) as f64 / (dd + 1) as f64;
                }
            } else {
                for i in (0..dd).rev() {
                    total += pw[i] / (z * (dd - i) as f64 / (dd + 1) as f64);
                }
            }
            let scale = total * (oj - z);
            if let [v] = vals {
                out[target * width + f as usize] += v * scale;
            } else {
                for (t, &v) in vals.iter().enumerate() {
                    out[t * width + f as usize] += v * scale;
                }
            }
        }
    }

    /// The leaf numbers of one row into `out` (`n_trees`).
    fn apply_row(&self, x: &[f64], out: &mut [i32]) {
        for (tree, o) in self.trees.iter().zip(out.iter_mut()) {
            let n0 = tree.nodes as usize;
            let nodes = self
                .nodes
                .get(n0..n0 + tree.n_nodes as usize)
                .unwrap_or(&[]);
            let mut i = 0usize;
            // Children point forward: at most n_nodes steps.
            while let Some(n) = nodes.get(i) {
                if n.flags & LEAF != 0 {
                    *o = self
                        .leaves
                        .get(tree.leaves as usize + n.left as usize)
                        .map_or(0, |l| l.id);
                    break;
                }
                let v = x.get(n.feat as usize).copied().unwrap_or(f64::NAN);
                i = if self.goes_left(n, v) {
                    n.left
                } else {
                    n.right
                } as usize;
            }
        }
    }
}

/// Gathers row `r` of `batch` (its first `x.len()` columns) into `x`.
#[inline(always)]
fn gather(batch: &Batch<'_>, r: usize, x: &mut [f64]) {
    for (v, c) in x.iter_mut().zip(batch.columns()) {
        *v = c.get_f64(r);
    }
}

/// Threads for `n_chunks` units of work, creating or reusing the session's pool as
/// [`crate::RunOptions::threads`] says.
pub(crate) fn threads(
    opts: RunOptions,
    n_chunks: usize,
    pool: &mut Option<(usize, rayon::ThreadPool)>,
) -> Result<usize, ExecError> {
    let threads = match opts.threads {
        0 => rayon::current_num_threads(),
        t => t,
    }
    .clamp(1, n_chunks.max(1));
    if opts.threads > 1 && threads > 1 && pool.as_ref().map(|p| p.0) != Some(threads) {
        let p = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| ExecError::Threads(e.to_string()))?;
        *pool = Some((threads, p));
    }
    Ok(threads)
}

/// Runs `f(worker, first_row, out_chunk)` over chunks of [`CHUNK`] rows of `out`
/// (`per_row` values a row) on `threads` workers.
fn run_chunks<T: Send>(
    workers: &mut [XWorker],
    pool: &Option<(usize, rayon::ThreadPool)>,
    opts: RunOptions,
    out: &mut [T],
    per_row: usize,
    f: impl Fn(&mut XWorker, usize, &mut [T]) + Sync,
) {
    let per_row = per_row.max(1);
    let queue = Mutex::new(out.chunks_mut(CHUNK * per_row).enumerate());
    let run = |w: &mut XWorker| loop {
        let next = queue.lock().unwrap_or_else(PoisonError::into_inner).next();
        let Some((c, chunk)) = next else { break };
        f(w, c * CHUNK, chunk);
    };
    if let [w] = workers {
        run(w);
    } else if let (true, Some((_, p))) = (opts.threads > 1, pool) {
        p.install(|| workers.par_iter_mut().for_each(run));
    } else {
        workers.par_iter_mut().for_each(run);
    }
}

impl ExplainScratch {
    /// Contributions of every row of `batch` (numeric columns: after the input stage).
    pub(crate) fn explain(
        &mut self,
        ex: &Explainer,
        shap: &Shap,
        batch: &Batch<'_>,
        opts: RunOptions,
        pool: &mut Option<(usize, rayon::ThreadPool)>,
    ) -> Result<(), ExecError> {
        let n = batch.n_rows();
        let per_row = ex.n_targets * (ex.n_features + 1);
        let threads = threads(opts, n.div_ceil(CHUNK), pool)?;
        while self.workers.len() < threads {
            self.workers.push(ex.worker());
        }
        let e = &mut self.explanation;
        e.n_rows = n;
        e.n_outputs = ex.n_targets;
        e.n_features = ex.n_features;
        e.values.resize(n * per_row, 0.0);
        run_chunks(
            &mut self.workers[..threads],
            pool,
            opts,
            &mut e.values,
            per_row,
            |w, row0, chunk| {
                let mut x = std::mem::take(&mut w.x);
                for (k, out) in chunk.chunks_mut(per_row).enumerate() {
                    gather(batch, row0 + k, &mut x);
                    ex.explain_row(shap, &x, out, w);
                }
                w.x = x;
            },
        );
        Ok(())
    }

    /// Leaf numbers of every row of `batch`.
    pub(crate) fn apply(
        &mut self,
        ex: &Explainer,
        batch: &Batch<'_>,
        opts: RunOptions,
        pool: &mut Option<(usize, rayon::ThreadPool)>,
    ) -> Result<(), ExecError> {
        let n = batch.n_rows();
        let per_row = ex.trees.len();
        let threads = threads(opts, n.div_ceil(CHUNK), pool)?;
        while self.workers.len() < threads {
            self.workers.push(ex.worker());
        }
        let l = &mut self.leaves;
        l.n_rows = n;
        l.n_trees = per_row;
        l.values.resize(n * per_row, 0);
        if per_row == 0 {
            return Ok(());
        }
        run_chunks(
            &mut self.workers[..threads],
            pool,
            opts,
            &mut l.values,
            per_row,
            |w, row0, chunk| {
                for (k, out) in chunk.chunks_mut(per_row).enumerate() {
                    gather(batch, row0 + k, &mut w.x);
                    ex.apply_row(&w.x, out);
                }
            },
        );
        Ok(())
    }
}
