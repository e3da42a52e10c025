//! The `TreeEnsemble` operator: validated at compile time, laid out for speed, run over blocks
//! of rows or one row at a time.
//!
//! # Semantics
//!
//! Exactly `docs/OPS.md` § `TreeEnsemble`. A numeric split with input `x`:
//! 1. bit 4 (NaN is zero) and `x` NaN → `x = 0.0`;
//! 2. `x` NaN, or (bit 3) `|x| <= 1e-35` (LightGBM's zero band), is missing and goes left when bit 1 is set, else right;
//! 3. otherwise `x` rounded to `input_precision` is compared with the f64 threshold by
//!    `comparison` (`lt`: left when `x < t`; `le`: left when `x <= t`).
//!
//! A categorical split (bit 2): NaN follows bit 1; otherwise `c` is `x` (rounded to
//! `input_precision`) truncated toward zero; a negative `c` (with `categorical_rule =
//! xgboost`: a negative `x`, so `-1 < x < 0` too), a `c` beyond the node's bitset, or a
//! non-member goes to the non-member side; a member goes to the side named by
//! `categorical_members`.
//!
//! Output: `Y[n, t] = agg_t(Σ_k tree_weights[k] · leaf(k, n)[t]) + base_scores[t]`, the sum taken
//! in tree order starting from 0.0 in f64, whatever the batch size, block sizes or thread count
//! (so results are bit-identical between the batch and row paths). With `aggregate = average`
//! each target is divided by the number of trees adding to it (`n_trees` for vector leaves); a
//! target no tree adds to is not divided.
//!
//! # Layout and kernels
//!
//! At compile time every tree is laid out depth first (the left child immediately follows its
//! parent) into compact records: f32 threshold + feature + (left, right) children (16 bytes)
//! for `input_precision = f32`, f64 threshold (24 bytes) for `f64`. Children are byte offsets
//! into the record array, so a step adds them to the array's address with no scaling. The
//! comparison is rewritten into `x <= t'` with `t'` in the input precision ([`threshold`]
//! proves the rewrite exact), and LightGBM's "NaN is zero" (bit 4) is folded into the default
//! direction (`NaN` goes where `0.0` goes), so the common models (XGBoost, scikit-learn,
//! LightGBM without categorical features or zero-as-missing) run a kernel whose step is a load
//! of the node's feature, threshold and children, a load of the input, one compare and one
//! conditional move (inline asm on x86-64: LLVM compiles the same select written in Rust into
//! a data-dependent branch that mispredicted about a third of the steps, or into a load indexed
//! by the outcome, which lengthens every step's dependency chain by a load). Models of `f64`
//! precision also get f32 records (`t'` rewritten for f32 inputs, exact because an f32 widens
//! to f64 exactly), used when every input column is f32: the usual case of a float32 NumPy
//! array. A block of rows (or a row) without NaN runs the step without the NaN test; with a
//! NaN, the step reads the node's "NaN goes left" bit from a side array. Leaves point to
//! themselves, so a tree is walked in exactly its depth of steps with no leaf test. Models with
//! categorical splits or bit 3 run a general kernel that follows the contract literally on f64
//! inputs. Leaf values (times the tree weight) are kept in a separate array.
//!
//! (An AVX2 variant fetching nodes, inputs and children with `vpgatherdd`, 8 rows per vector,
//! was measured slower than this scalar step on the Zen 3 benchmark machine and dropped.)
//!
//! On x86-64, f32 records in blocks of 8 rows or more without a NaN that some node sends left
//! run a third batch kernel (`kernel::walk8`): the block is gathered feature-major as integer
//! keys ordered as f32 `<=` orders the values (`kernel::key`: `-0.0` as `+0.0`, NaN above
//! everything), the records get the feature as a byte offset into that block and the
//! threshold as a key, and eight rows walk a tree with their node offsets in registers: six
//! instructions a step (feature, input, integer compare with the threshold in memory, both
//! children, conditional move), with no load or store of the walk's state. The scalar step
//! above is bound by instruction issue (about 10 instructions a step, the lane state loaded
//! and stored each time); this one by the latency of eight chains.
//!
//! Models of `f64` precision given inputs that are not all f32 (f64 Parquet or NumPy columns)
//! run the same kernel over *ranks*: at compile time each feature's distinct thresholds are
//! sorted, a record's threshold becomes its rank `i` in that list (`fm_ranks`), and the gather
//! replaces each input by the number of its feature's thresholds below it, NaN as the key above
//! everything. `x <= t_i` exactly when that count is `<= i`, so the integer compare decides
//! every split as the f64 one does, with no tie left to resolve. The count comes from a bucket
//! table over the value's range (`RankIndex`): the thresholds of lower buckets, plus those of
//! the input's own bucket below it, compared in f64 (two compares when no bucket holds more
//! than two thresholds, the usual case for histogram-binned models; a binary search in the
//! bucket otherwise).
//!
//! The batch kernel gathers a super-block of rows into a dense row-major scratch block (in the
//! input precision), then for each cache-sized group of trees walks blocks of 64 rows through
//! one tree at a time, keeping the 64 rows' node indices in a small array (64 independent
//! dependency chains for the CPU to overlap). The single-row kernel walks `ROW_TREES` (12) trees at
//! a time for the same reason, with the trees of each window of `ROW_WINDOW` (96) sorted by depth
//! (a group walks to its deepest tree), and adds the leaves in tree order as soon as a prefix of
//! the window is known. Neither allocates.

mod compile;
mod kernel;
#[cfg(test)]
mod tests;
pub mod threshold;

use std::ops::Range;

use crate::batch::Batch;
use crate::error::ExecError;

/// Largest tree depth accepted (longest root-to-leaf path in edges).
pub const MAX_DEPTH: usize = 128;
/// Largest `n_targets` accepted.
pub const MAX_TARGETS: usize = 1 << 16;

/// Node flag bits of the `flags` tensor (docs/OPS.md); defined once, in `mle-format`.
pub use mle_format::tree::flags;

/// Rows walked together through one tree by the batch kernel.
pub(crate) const LANES: usize = 64;
/// Rows gathered into the scratch block at a time.
pub(crate) const SUPER_ROWS: usize = 512;
/// Values between two features of a row in the feature-major scratch block: a super-block
/// of rows plus one cache line, so that a row's features fall in different L1 sets (at 2,048
/// bytes apart, they would share two of the 64 sets and evict each other).
pub(crate) const FM_ROWS: usize = SUPER_ROWS + 16;
/// Bytes between two features of a row in the feature-major scratch block.
pub(crate) const FM_STRIDE: usize = FM_ROWS * 4;
/// Trees walked together by the single-row kernel.
pub(crate) const ROW_TREES: usize = 12;
/// Consecutive trees the row kernel reorders (by depth) before summing their leaves in order
/// (a multiple of [`ROW_TREES`]).
pub(crate) const ROW_WINDOW: usize = 8 * ROW_TREES;

/// Up to [`ROW_TREES`] trees of one row window walked together by the row kernel, to the
/// deepest of them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RowGroup {
    /// Root of each tree (padding slots repeat a root of the group).
    pub roots: [u32; ROW_TREES],
    /// Position of each tree in its window ([`ROW_WINDOW`] for a padding slot).
    pub pos: [u8; ROW_TREES],
    /// Steps to walk.
    pub depth: u32,
    /// After this group, the window's first `ready` trees all have their leaves.
    pub ready: u8,
}

/// A window of consecutive trees for the row kernel: trees `trees`, walked by the row groups
/// `groups` (trees sorted by depth, so that a group's trees have similar depths).
#[derive(Clone, Debug)]
pub(crate) struct RowWindow {
    pub trees: Range<usize>,
    pub groups: Range<usize>,
}

/// One laid-out node. `child` is (left, right) as *byte offsets* into the node's record array
/// (so a step adds the offset to the array's address, with no scaling): the left child is the
/// next record, a leaf points to itself twice (and has a NaN threshold and feature 0). The
/// kernels index `child` with the comparison's outcome (a load, not a select: LLVM turns a
/// select of a loaded value into an unpredictable branch). Roots are kept as record indices.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rec<T> {
    pub thr: T,
    pub feat: u32,
    pub child: [u32; 2],
}

/// Largest number of laid-out nodes: byte offsets of [`Rec<f64>`] records stay within `u32`.
pub(crate) const MAX_NODES: usize = (u32::MAX / 32) as usize;

/// Per-node data of the general kernel.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ext {
    pub flags: u8,
    pub cat_lo: u32,
    pub cat_hi: u32,
}

/// The laid-out nodes, by kernel.
pub(crate) enum Nodes {
    /// Fast kernel, `input_precision = f32`.
    F32(Vec<Rec<f32>>),
    /// Fast kernel, `input_precision = f64`; `f32`: the same splits rewritten for f32 inputs
    /// (exact: an f32 input widened to f64 is compared with the f64 threshold, and
    /// [`threshold::le_threshold_f32`] rewrites that test into an f32 one), used when every
    /// input column is f32.
    F64 {
        recs: Vec<Rec<f64>>,
        f32: Vec<Rec<f32>>,
    },
    /// General kernel (categorical splits or zero-is-missing): original thresholds and flags.
    General {
        recs: Vec<Rec<f64>>,
        ext: Vec<Ext>,
        cat_bits: Vec<u32>,
    },
}

/// A compiled tree ensemble; immutable and shareable across threads.
pub struct TreeEnsemble {
    pub(crate) n_features: usize,
    /// Row width of the scratch block: `max(n_features, 1)`.
    pub(crate) width: usize,
    pub(crate) n_targets: usize,
    pub(crate) leaf_dim: usize,
    pub(crate) nodes: Nodes,
    /// The f32 records (of `Nodes::F32`, or `f32` of `Nodes::F64`) with each feature index
    /// replaced by its byte offset in a feature-major block (`feature * FM_STRIDE`) and each
    /// threshold by its integer key (`kernel::threshold_key`, bits kept in the f32 field), for
    /// the x86-64 batch kernel (`kernel::walk8`); empty where that kernel does not run.
    pub(crate) fm: Vec<Rec<f32>>,
    /// The f64 records (of `Nodes::F64`) for the same kernel over inputs that are not all
    /// f32: each threshold replaced by its rank among its feature's distinct thresholds
    /// (`ranks`), and each input by the number of its feature's thresholds below it
    /// (`kernel::gather_ranks`), so that the integer compare decides exactly as the f64 one;
    /// empty where that kernel does not run.
    pub(crate) fm_ranks: Vec<Rec<f32>>,
    /// Per feature `f`, its distinct `x <= t'` thresholds in ascending order,
    /// `ranks[rank_index[f].lo..rank_index[f].hi]`, then [`RANK_PAD`] `+inf`.
    pub(crate) ranks: Vec<f64>,
    /// Per feature, the index that finds an input's rank without a search over all of its
    /// thresholds (`kernel::gather_ranks`); empty with `ranks`.
    pub(crate) rank_index: Vec<RankIndex>,
    /// The buckets of every `RankIndex`: `rank_buckets[first + b]` is the number of the
    /// feature's thresholds whose order key is below bucket `b`'s lowest key.
    pub(crate) rank_buckets: Vec<u32>,
    /// Some node sends NaN left (fast kernels pick the variant without the NaN test otherwise).
    pub(crate) any_dl: bool,
    /// Per laid-out node: a NaN input goes left (fast kernels, blocks with a NaN).
    pub(crate) dl: Vec<bool>,
    pub(crate) f32_precision: bool,
    pub(crate) lt: bool,
    pub(crate) members_left: bool,
    /// `categorical_rule = xgboost`: a negative input is not a category (else `trunc(x) < 0`).
    pub(crate) negative_invalid: bool,
    /// Leaf values times the tree weight, `leaf_dim` per laid-out node.
    pub(crate) leaf: Vec<f64>,
    pub(crate) roots: Vec<u32>,
    /// Steps to walk each tree (its depth).
    pub(crate) depth: Vec<u32>,
    /// Target each tree adds to (leaf_dim 1).
    pub(crate) target: Vec<u32>,
    /// Consecutive trees whose nodes fit in cache together.
    pub(crate) groups: Vec<Range<usize>>,
    /// Tree windows of the row kernel.
    pub(crate) row_windows: Vec<RowWindow>,
    /// Tree groups of the row kernel, by window.
    pub(crate) row_groups: Vec<RowGroup>,
    /// Per target: divide by this after summing (`average`), or 0.0 to leave the sum.
    pub(crate) divisor: Vec<f64>,
    pub(crate) base: Vec<f64>,
}

impl std::fmt::Debug for TreeEnsemble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeEnsemble")
            .field("n_trees", &self.roots.len())
            .field("n_nodes", &self.n_laid_out_nodes())
            .field("n_features", &self.n_features)
            .field("n_targets", &self.n_targets)
            .field("kernel", &self.kernel_name())
            .field("max_depth", &self.depth.iter().max().copied().unwrap_or(0))
            .field(
                "mean_depth",
                &(self.depth.iter().map(|&d| d as f64).sum::<f64>()
                    / self.depth.len().max(1) as f64),
            )
            .finish()
    }
}

/// A feature's thresholds `ranks[lo..hi]` (ascending, distinct) cut into buckets by value:
/// [`RankIndex::bucket`] maps a value to its bucket, non-decreasing in the value (a clamp, a
/// subtraction and a product by a positive scale, each monotone in f64 arithmetic).
/// `rank_buckets[first + b]` counts the thresholds of buckets below `b`: each is below any
/// value of bucket `b` (were it not, its bucket would not be lower), and each threshold of a
/// higher bucket is above it. An input's rank is that count plus its bucket's thresholds below
/// it, compared in f64: exact.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RankIndex {
    pub(crate) lo: u32,
    pub(crate) hi: u32,
    /// The smallest and largest finite thresholds (a value is clamped to them); both 0 when
    /// `scale` is.
    pub(crate) min: f64,
    pub(crate) max: f64,
    /// Buckets per unit of value: finite, and 0 when the finite thresholds are one value or
    /// none, or span more than f64 can (`max - min` overflows).
    pub(crate) scale: f64,
    /// Offset of bucket 0 in `rank_buckets`; the feature has `buckets + 1` entries there (the
    /// last is `hi - lo`).
    pub(crate) first: u32,
    pub(crate) buckets: u32,
    /// No bucket holds more than [`RANK_PAD`] thresholds.
    pub(crate) narrow: bool,
}

impl RankIndex {
    /// The bucket of `v` (not NaN), `< self.buckets`.
    #[inline(always)]
    pub(crate) fn bucket(&self, v: f64) -> usize {
        ((v.max(self.min).min(self.max) - self.min) * self.scale) as usize
    }
}

/// The `+inf` after each feature's thresholds in `TreeEnsemble::ranks`: an input's bucket
/// start plus this many can always be read. Thresholds past an input's bucket are above the
/// input, so comparing with them adds nothing to its rank.
pub(crate) const RANK_PAD: usize = 2;

/// Per-thread scratch of the batch kernel; allocate once with [`TreeEnsemble::scratch`] and
/// reuse across calls.
#[derive(Debug, Clone, Default)]
pub struct TreeScratch {
    pub(crate) x32: Vec<f32>,
    /// Feature-major input keys of the x86-64 batch kernel.
    pub(crate) keys: Vec<u32>,
    pub(crate) x64: Vec<f64>,
}

impl TreeEnsemble {
    /// Validates a `TreeEnsemble` node of `file` against `n_features` input columns and lays
    /// it out for the kernels. Every malformed array (wrong length or dtype, child out of range
    /// or pointing backward, a node reached twice, feature out of range, tree deeper than
    /// [`MAX_DEPTH`], bad categorical offsets, bad targets) is an [`ExecError::InvalidGraph`]
    /// naming the model, the node and the bound; a missing tensor is an [`ExecError::Format`].
    pub fn compile(
        node: &mle_format::Node,
        file: &mle_format::MleFile,
        n_features: usize,
    ) -> Result<TreeEnsemble, ExecError> {
        compile::compile(node, file, n_features)
    }

    /// Columns of the output (`n_targets`).
    pub fn n_targets(&self) -> usize {
        self.n_targets
    }

    /// Number of input features the ensemble was compiled for.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Number of trees.
    pub fn n_trees(&self) -> usize {
        self.roots.len()
    }

    /// Which kernel runs this ensemble (`"fast-f32"`, `"fast-f64"` or `"general"`); for
    /// diagnostics and benchmarks.
    pub fn kernel_name(&self) -> &'static str {
        match self.nodes {
            Nodes::F32(_) => "fast-f32",
            Nodes::F64 { .. } => "fast-f64",
            Nodes::General { .. } => "general",
        }
    }

    fn n_laid_out_nodes(&self) -> usize {
        match &self.nodes {
            Nodes::F32(r) => r.len(),
            Nodes::F64 { recs, .. } => recs.len(),
            Nodes::General { recs, .. } => recs.len(),
        }
    }

    /// Scratch for [`TreeEnsemble::predict_batch`], sized once for the largest block.
    pub fn scratch(&self) -> TreeScratch {
        let n = SUPER_ROWS * self.width;
        let keys = if self.fm.is_empty() {
            Vec::new()
        } else {
            vec![0; FM_ROWS * self.width]
        };
        match self.nodes {
            Nodes::F32(_) => TreeScratch {
                x32: vec![0.0; n],
                x64: Vec::new(),
                keys,
            },
            Nodes::F64 { .. } => TreeScratch {
                x32: vec![0.0; n],
                x64: vec![0.0; n],
                keys,
            },
            _ => TreeScratch {
                x32: Vec::new(),
                x64: vec![0.0; n],
                keys,
            },
        }
    }

    /// Predicts rows `rows` of `x` (whose first `n_features` columns are the features, f32 or
    /// f64, NaN meaning missing) into `out`, row-major `[rows.len(), n_targets]`, overwriting
    /// it. Allocation-free when `scratch` came from [`TreeEnsemble::scratch`] of this ensemble.
    ///
    /// # Panics
    /// When `x` has fewer than `n_features` columns, `rows` is not within `x`'s rows, or `out`
    /// is shorter than `rows.len() * n_targets` (the caller checks these once per batch).
    pub fn predict_batch(
        &self,
        x: &Batch<'_>,
        rows: Range<usize>,
        out: &mut [f64],
        scratch: &mut TreeScratch,
    ) {
        assert!(
            x.n_columns() >= self.n_features,
            "TreeEnsemble::predict_batch: {} columns, {} features expected",
            x.n_columns(),
            self.n_features
        );
        assert!(
            rows.start <= rows.end && rows.end <= x.n_rows(),
            "TreeEnsemble::predict_batch: rows {rows:?} outside a batch of {} rows",
            x.n_rows()
        );
        let need = rows.len() * self.n_targets;
        assert!(
            out.len() >= need,
            "TreeEnsemble::predict_batch: output holds {} values, {need} needed",
            out.len()
        );
        kernel::predict_batch(self, x, rows, &mut out[..need], scratch);
    }

    /// Predicts one row of f64 features (`row.len() >= n_features`) into `out`
    /// (`out.len() >= n_targets`, overwritten). No heap allocation.
    ///
    /// # Panics
    /// When `row` or `out` is too short.
    pub fn predict_row_f64(&self, row: &[f64], out: &mut [f64]) {
        self.check_row(row.len(), out.len());
        kernel::predict_row(self, &row[..self.n_features], &mut out[..self.n_targets]);
    }

    /// Predicts one row of f32 features; as [`TreeEnsemble::predict_row_f64`].
    pub fn predict_row_f32(&self, row: &[f32], out: &mut [f64]) {
        self.check_row(row.len(), out.len());
        kernel::predict_row_f32(self, &row[..self.n_features], &mut out[..self.n_targets]);
    }

    fn check_row(&self, row: usize, out: usize) {
        assert!(
            row >= self.n_features && out >= self.n_targets,
            "TreeEnsemble::predict_row: row of {row} values and output of {out} for {} features and {} targets",
            self.n_features,
            self.n_targets
        );
    }
}
