//! The batch and single-row kernels.
//!
//! Both walk trees in fixed steps (a tree's depth; leaves point to themselves) over several
//! independent walks at once — rows of a block in the batch kernel, trees of a group in the row
//! kernel — so that the CPU overlaps their memory loads. A split step is monomorphized per
//! kernel ([`Step`]): the fast step is `x <= t' ? i + 1 : right`, with the NaN test compiled in
//! only when some node sends NaN left.

use std::ops::Range;

use super::flags::{CATEGORICAL, LEAF, MISSING_LEFT, NAN_IS_ZERO, ZERO_IS_MISSING};

/// Bit 3 ("zero is missing") treats `|x| <= 1e-35` as zero, as LightGBM's `kZeroThreshold`
/// (`1e-35f`, widened) does.
pub(crate) const ZERO_BAND: f64 = 1e-35f32 as f64;
#[cfg(target_arch = "x86_64")]
use super::FM_ROWS;
use super::{Ext, Nodes, Rec, TreeEnsemble, TreeScratch, LANES, ROW_WINDOW, SUPER_ROWS};
use super::{RankIndex, RANK_PAD};
use crate::batch::{Batch, Column, ColumnData};

/// An input element (f32 or f64) and the conversions the kernels need.
pub(crate) trait Elem: Copy + PartialOrd + Send + Sync + 'static {
    fn to_f32(self) -> f32;
    fn to_f64(self) -> f64;
    fn is_nan(self) -> bool;
}

impl Elem for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
}

impl Elem for f64 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
}

/// A threshold type: the input precision of a fast kernel.
pub(crate) trait Prec: Elem {
    fn from_elem<E: Elem>(e: E) -> Self;
    /// `child[0]` when `v <= t`, else `child[1]` (a NaN `v` goes to `child[1]`).
    ///
    /// On x86-64 a compare and a conditional move: the children are loaded with the
    /// threshold, so a step's dependency chain is load, compare, move. (LLVM compiles the same
    /// select written in Rust either into a branch, which mispredicts, or into a load indexed
    /// by the outcome, which adds a load latency to every step.)
    #[inline(always)]
    fn pick(v: Self, t: Self, child: [u32; 2]) -> u32 {
        let left = v <= t;
        child[!left as usize]
    }
}

/// `Prec` for a float type whose compare-to-flags instruction is `$cmp` (baseline x86-64).
macro_rules! prec {
    ($t:ty, $conv:ident, $cmp:literal) => {
        impl Prec for $t {
            #[inline(always)]
            fn from_elem<E: Elem>(e: E) -> Self {
                e.$conv()
            }

            #[cfg(target_arch = "x86_64")]
            #[inline(always)]
            fn pick(v: Self, t: Self, child: [u32; 2]) -> u32 {
                let mut c = child[0];
                // SAFETY: register-only instructions of baseline x86-64 (SSE/SSE2):
                // `ucomis[sd] t, v` sets CF when t < v or the pair is unordered, i.e. exactly
                // when !(v <= t).
                unsafe {
                    std::arch::asm!(
                        concat!($cmp, " {t}, {v}"),
                        "cmovb {c:e}, {r:e}",
                        t = in(xmm_reg) t,
                        v = in(xmm_reg) v,
                        r = in(reg) child[1],
                        c = inout(reg) c,
                        options(pure, nomem, nostack),
                    );
                }
                c
            }
        }
    };
}
prec!(f32, to_f32, "ucomiss");
prec!(f64, to_f64, "ucomisd");

/// One step of a walk: from node `i` (a byte offset into the record array) to its child for
/// the row whose features start at `x[off]`.
///
/// The fast steps read the record at offset `i` and the row's feature without bounds checks,
/// so `next` and `walk` are `unsafe`: their callers pass only node offsets that compile built
/// (roots through [`Step::id`], and what earlier steps returned) and rows that hold the
/// features.
pub(crate) trait Step: Sync {
    /// Bytes of one record: node `k` (a record index) is at byte offset `k * SIZE`.
    const SIZE: usize;
    /// The child of node offset `i` for the row at `x[off..]`.
    ///
    /// # Safety
    /// `i` is a node offset of the records this step was built on (from the same
    /// [`TreeEnsemble`]): [`Step::id`] of a root of the ensemble, or a value `next` / `walk`
    /// returned for such an offset. `x[off..]` holds at least the ensemble's `n_features`
    /// values.
    unsafe fn next<E: Elem>(&self, i: u32, x: &[E], off: usize) -> u32;
    /// The byte offset of record index `k` (a root).
    #[inline(always)]
    fn id(k: u32) -> u32 {
        k * Self::SIZE as u32
    }
    /// The record index of byte offset `i` (a leaf reached by a walk).
    #[inline(always)]
    fn index(i: u32) -> usize {
        i as usize / Self::SIZE
    }
    /// Walks every node of `lanes` `depth` steps; lane `l` reads the row at `x[l * w..]`
    /// (`x` holds `lanes.len()` rows of width `w`).
    ///
    /// # Safety
    /// Every lane holds a node offset as [`Step::next`] requires, and `w` is at least the
    /// ensemble's `n_features`.
    #[inline(always)]
    unsafe fn walk<E: Elem>(&self, lanes: &mut [u32], x: &[E], w: usize, depth: u32) {
        assert!(x.len() >= lanes.len() * w);
        for _ in 0..depth {
            for (l, i) in lanes.iter_mut().enumerate() {
                // SAFETY: the lane holds a node offset (this function's contract, and `next`
                // returns one again); row `l` lies inside `x` (asserted) and is `w >=
                // n_features` values wide.
                *i = unsafe { self.next(*i, x, l * w) };
            }
        }
    }
}

/// The fast step over records with rewritten thresholds; `DL`: the block has a NaN and some
/// node sends NaN left (`dl`, by record index).
struct Fast<'a, T, const DL: bool> {
    recs: &'a [Rec<T>],
    dl: &'a [bool],
}

impl<T: Prec, const DL: bool> Step for Fast<'_, T, DL> {
    const SIZE: usize = std::mem::size_of::<Rec<T>>();

    #[inline(always)]
    unsafe fn next<E: Elem>(&self, i: u32, x: &[E], off: usize) -> u32 {
        debug_assert!(off <= x.len());
        // SAFETY: `next`'s contract: `i` is a record's offset, and `x` holds the row's
        // n_features values from `off` (a row of at least n_features, predict_row, or a block
        // of rows of width max(n_features, 1) with `off` a row start inside it). With
        // n_features = 0 every tree is a single leaf of depth 0 and no step runs.
        unsafe { self.at(i, x.as_ptr().add(off)) }
    }

    /// As the default, with the row address advanced by pointer and four lanes per iteration
    /// (few live values, so that LLVM keeps the record base and row pointer in registers).
    #[inline(always)]
    unsafe fn walk<E: Elem>(&self, lanes: &mut [u32], x: &[E], w: usize, depth: u32) {
        assert!(x.len() >= lanes.len() * w);
        for _ in 0..depth {
            let mut xr = x.as_ptr();
            let mut quads = lanes.chunks_exact_mut(4);
            for q in &mut quads {
                // SAFETY: the four rows lie inside `x` (the assert above; w >= n_features by
                // `walk`'s contract); the pointer moves at most one row past the last. Lanes
                // hold record offsets (`walk`'s contract; `at` returns one again).
                unsafe {
                    q[0] = self.at(q[0], xr);
                    q[1] = self.at(q[1], xr.add(w));
                    q[2] = self.at(q[2], xr.add(2 * w));
                    q[3] = self.at(q[3], xr.add(3 * w));
                    xr = xr.add(4 * w);
                }
            }
            for i in quads.into_remainder() {
                // SAFETY: as above.
                unsafe {
                    *i = self.at(*i, xr);
                    xr = xr.add(w);
                }
            }
        }
    }
}

impl<T: Prec, const DL: bool> Fast<'_, T, DL> {
    /// One step from record offset `i` for the row at `xr`.
    ///
    /// # Safety
    /// `i` is the byte offset of a laid-out record: a root (Step::id of a record index), a
    /// step's result (a child, or a leaf's own offset: a leaf compares against NaN and takes
    /// its right child, itself); compile() built all of these inside `recs`, as multiples of
    /// size_of::<Rec<T>>() (Rec is repr(C)). `xr` points to at least n_features readable
    /// values (every record's feature is below n_features, checked by compile; leaves hold 0).
    #[inline(always)]
    unsafe fn at<E: Elem>(&self, i: u32, xr: *const E) -> u32 {
        debug_assert!(i as usize % <Self as Step>::SIZE == 0);
        debug_assert!((i as usize) < self.recs.len() * <Self as Step>::SIZE);
        // SAFETY: the contract above.
        unsafe {
            let n = &*self
                .recs
                .as_ptr()
                .cast::<u8>()
                .add(i as usize)
                .cast::<Rec<T>>();
            let v = T::from_elem(*xr.add(n.feat as usize));
            if DL {
                // `dl` has one entry per record (compile).
                let dl = *self.dl.get_unchecked(i as usize / <Self as Step>::SIZE);
                // Branch-free: index the child pair with the outcome (a branch would
                // mispredict half the time).
                let left = (v <= n.thr) | (v.is_nan() & dl);
                n.child[!left as usize]
            } else {
                T::pick(v, n.thr, n.child)
            }
        }
    }
}

/// The general step: the contract of docs/OPS.md followed literally.
struct General<'a, const F32: bool, const LT: bool> {
    recs: &'a [Rec<f64>],
    ext: &'a [Ext],
    bits: &'a [u32],
    members_left: bool,
    /// `categorical_rule = xgboost`: a negative `x` is no category.
    negative_invalid: bool,
}

impl<const F32: bool, const LT: bool> Step for General<'_, F32, LT> {
    const SIZE: usize = std::mem::size_of::<Rec<f64>>();

    /// Bounds-checked: the contract of [`Step::next`] is needed for the right answer, not for
    /// memory safety.
    #[inline(always)]
    unsafe fn next<E: Elem>(&self, i: u32, x: &[E], off: usize) -> u32 {
        let k = Self::index(i);
        let n = self.recs[k];
        let e = self.ext[k];
        if e.flags & LEAF != 0 {
            return i;
        }
        let round = |v: f64| if F32 { v as f32 as f64 } else { v };
        let mut v = x[off + n.feat as usize].to_f64();
        let dl = e.flags & MISSING_LEFT != 0;
        let left = if e.flags & CATEGORICAL != 0 {
            if v.is_nan() {
                dl
            } else {
                let r = round(v);
                // `-1 < x < 0` truncates to -0.0 (>= 0: category 0) unless the rule says a
                // negative input is no category; `-0.0 < 0.0` is false either way.
                let c = if self.negative_invalid && r < 0.0 {
                    -1.0
                } else {
                    r.trunc()
                };
                let words = self
                    .bits
                    .get(e.cat_lo as usize..e.cat_hi as usize)
                    .unwrap_or(&[]);
                let member = c >= 0.0
                    && c < (words.len() * 32) as f64
                    && words
                        .get(c as usize / 32)
                        .is_some_and(|w| (w >> (c as usize % 32)) & 1 == 1);
                member == self.members_left
            }
        } else {
            if e.flags & NAN_IS_ZERO != 0 && v.is_nan() {
                v = 0.0;
            }
            if v.is_nan() || (e.flags & ZERO_IS_MISSING != 0 && v.abs() <= ZERO_BAND) {
                dl
            } else if LT {
                round(v) < n.thr
            } else {
                round(v) <= n.thr
            }
        };
        n.child[!left as usize]
    }
}

/// Calls `$body` with `$s` bound to the ensemble's step, monomorphized.
macro_rules! with_step {
    ($ens:expr, $s:ident, $body:expr) => {
        match &$ens.nodes {
            Nodes::F32(recs) => {
                if $ens.any_dl {
                    let $s = Fast::<f32, true> { recs, dl: &$ens.dl };
                    $body
                } else {
                    let $s = Fast::<f32, false> { recs, dl: &$ens.dl };
                    $body
                }
            }
            Nodes::F64 { recs, .. } => {
                if $ens.any_dl {
                    let $s = Fast::<f64, true> { recs, dl: &$ens.dl };
                    $body
                } else {
                    let $s = Fast::<f64, false> { recs, dl: &$ens.dl };
                    $body
                }
            }
            Nodes::General {
                recs,
                ext,
                cat_bits,
            } => match ($ens.f32_precision, $ens.lt) {
                (false, false) => {
                    let $s = General::<false, false> {
                        recs,
                        ext,
                        bits: cat_bits,
                        members_left: $ens.members_left,
                        negative_invalid: $ens.negative_invalid,
                    };
                    $body
                }
                (false, true) => {
                    let $s = General::<false, true> {
                        recs,
                        ext,
                        bits: cat_bits,
                        members_left: $ens.members_left,
                        negative_invalid: $ens.negative_invalid,
                    };
                    $body
                }
                (true, false) => {
                    let $s = General::<true, false> {
                        recs,
                        ext,
                        bits: cat_bits,
                        members_left: $ens.members_left,
                        negative_invalid: $ens.negative_invalid,
                    };
                    $body
                }
                (true, true) => {
                    let $s = General::<true, true> {
                        recs,
                        ext,
                        bits: cat_bits,
                        members_left: $ens.members_left,
                        negative_invalid: $ens.negative_invalid,
                    };
                    $body
                }
            },
        }
    };
}

/// Binds `$s` to the fast step over `$recs`, with the NaN test compiled in only when `$dl`.
macro_rules! fast_step {
    ($ens:expr, $recs:expr, $dl:expr, $s:ident, $body:expr) => {
        if $dl {
            let $s = Fast::<_, true> {
                recs: $recs,
                dl: &$ens.dl,
            };
            $body
        } else {
            let $s = Fast::<_, false> {
                recs: $recs,
                dl: &$ens.dl,
            };
            $body
        }
    };
}

/// Applies the aggregation and base scores to one row's sums.
#[inline(always)]
fn finish(ens: &TreeEnsemble, out: &mut [f64]) {
    for ((o, &d), &b) in out.iter_mut().zip(&ens.divisor).zip(&ens.base) {
        if d > 0.0 {
            *o /= d;
        }
        *o += b;
    }
}

/// One row through every tree, [`ROW_TREES`] trees at a time; `x` holds the row's features.
///
/// Trees are walked by the row groups of each window (sorted by depth) and their leaves noted
/// by position in the window; after each group, the leaves of the window's trees that are all
/// known from the first on ([`RowGroup::ready`](super::RowGroup)) are added in tree order (the
/// batch kernel's order), so that the chain of additions overlaps the next walks.
///
/// # Safety
/// `s` steps through the records of `ens` (built from `ens.nodes` by [`with_step!`] or
/// [`fast_step!`]), and `x` holds at least `ens.n_features` values.
#[inline(always)]
unsafe fn row_walk<S: Step, E: Elem>(ens: &TreeEnsemble, s: &S, x: &[E], out: &mut [f64]) {
    out.fill(0.0);
    let nt = ens.n_targets;
    // Leaf reached by each tree of the window (padding slots write at ROW_WINDOW).
    let mut li = [0u32; LI_LEN];
    // One target (the common case): the sum stays in a register.
    let mut acc = 0.0f64;
    let single = nt == 1 && ens.leaf_dim == 1;
    for w in &ens.row_windows {
        let mut done = 0usize;
        for g in &ens.row_groups[w.groups.clone()] {
            let mut idx = g.roots.map(S::id);
            for _ in 0..g.depth {
                for i in idx.iter_mut() {
                    // SAFETY: `idx` starts at roots of `ens` (compile's row groups hold roots)
                    // and holds step results after; `s` is built on `ens`'s records and `x`
                    // holds the row (this function's contract).
                    *i = unsafe { s.next(*i, x, 0) };
                }
            }
            for (&p, &i) in g.pos.iter().zip(&idx) {
                // `p <= ROW_WINDOW < LI_LEN` (compile), so the index is always in bounds.
                li[p as usize & (LI_LEN - 1)] = S::index(i) as u32;
            }
            let ready = (g.ready as usize).min(w.trees.len());
            let trees = w.trees.start + done..w.trees.start + ready;
            let new = &li[done..ready];
            done = ready;
            if single {
                for &i in new {
                    acc += ens.leaf[i as usize];
                }
            } else if ens.leaf_dim == 1 {
                for (&i, &t) in new.iter().zip(&ens.target[trees]) {
                    out[t as usize] += ens.leaf[i as usize];
                }
            } else {
                for &i in new {
                    let i = i as usize;
                    for (o, &v) in out.iter_mut().zip(&ens.leaf[i * nt..(i + 1) * nt]) {
                        *o += v;
                    }
                }
            }
        }
    }
    if single {
        out[0] = acc;
    }
    finish(ens, out);
}

/// Length of the row kernel's leaf array: a power of two above [`ROW_WINDOW`], so that a
/// position masked with `LI_LEN - 1` indexes it without a check.
const LI_LEN: usize = (ROW_WINDOW + 1).next_power_of_two();
const _: () = assert!(ROW_WINDOW < 256);

/// One row: the fast kernels take the step without the NaN test when the row has no NaN.
///
/// # Panics
/// When `x` holds fewer than `ens.n_features` values.
pub(super) fn predict_row<E: Elem>(ens: &TreeEnsemble, x: &[E], out: &mut [f64]) {
    assert!(x.len() >= ens.n_features);
    let dl = ens.any_dl && x.iter().any(|v| v.is_nan());
    // SAFETY (each `row_walk`): the step is built from `ens.nodes` by the macro, and `x` holds
    // the row's features (asserted).
    match &ens.nodes {
        Nodes::F32(recs) => {
            fast_step!(ens, recs.as_slice(), dl, s, unsafe {
                row_walk(ens, &s, x, out)
            })
        }
        Nodes::F64 { recs, .. } => {
            fast_step!(ens, recs.as_slice(), dl, s, unsafe {
                row_walk(ens, &s, x, out)
            })
        }
        Nodes::General { .. } => with_step!(ens, s, unsafe { row_walk(ens, &s, x, out) }),
    }
}

/// One f32 row: as [`predict_row`], on the f32 records of an f64-precision model.
pub(super) fn predict_row_f32(ens: &TreeEnsemble, x: &[f32], out: &mut [f64]) {
    match &ens.nodes {
        Nodes::F64 { f32: recs, .. } => {
            assert!(x.len() >= ens.n_features);
            let dl = ens.any_dl && x.iter().any(|v| v.is_nan());
            // SAFETY: the step is built on `ens`'s f32 records by the macro; `x` holds the
            // row's features (asserted).
            fast_step!(ens, recs.as_slice(), dl, s, unsafe {
                row_walk(ens, &s, x, out)
            })
        }
        _ => predict_row(ens, x, out),
    }
}

/// Copies rows `row0..row0 + n` of the first `ens.n_features` columns into `dst`, row-major
/// with row width `ens.width`, converting to `T`; returns whether any copied value is NaN.
fn gather<T: Prec>(
    ens: &TreeEnsemble,
    x: &Batch<'_>,
    row0: usize,
    n: usize,
    dst: &mut [T],
) -> bool {
    let w = ens.width;
    let mut nan = false;
    for (j, col) in x.columns().iter().take(ens.n_features).enumerate() {
        let (off, st) = (col.offset + row0 * col.stride, col.stride);
        let rows = dst[..n * w].chunks_exact_mut(w);
        match col.data {
            ColumnData::F32(d) => {
                for (r, row) in rows.enumerate() {
                    let v = d[off + r * st];
                    nan |= v.is_nan();
                    row[j] = T::from_elem(v);
                }
            }
            ColumnData::F64(d) => {
                for (r, row) in rows.enumerate() {
                    let v = d[off + r * st];
                    nan |= v.is_nan();
                    row[j] = T::from_elem(v);
                }
            }
            // Never reached: the executor hands trees numeric columns only (string columns
            // become codes in its lookup stage first).
            ColumnData::Str(_) | ColumnData::Dict(_) => {
                nan = true;
                for row in rows {
                    row[j] = T::from_elem(f64::NAN);
                }
            }
        }
    }
    if ens.n_features == 0 {
        dst[..n].fill(T::from_elem(f64::NAN));
    }
    nan
}

/// The block kernel over `n` gathered rows `x` into `out` (`n × n_targets`).
///
/// # Safety
/// `s` steps through the records of `ens` (built from `ens.nodes` by [`with_step!`] or
/// [`fast_step!`]).
#[inline(always)]
unsafe fn block_walk<S: Step, E: Elem>(
    ens: &TreeEnsemble,
    s: &S,
    x: &[E],
    n: usize,
    out: &mut [f64],
) {
    let w = ens.width;
    assert!(x.len() >= n * w);
    let nt = ens.n_targets;
    let out = &mut out[..n * nt];
    if n < 4 {
        // Too few rows to overlap: walk several trees at once instead.
        for (xr, o) in x.chunks_exact(w).zip(out.chunks_exact_mut(nt)).take(n) {
            // SAFETY: `s` is built on `ens` (contract); `xr` is one row of `w >= n_features`.
            unsafe { row_walk(ens, s, xr, o) };
        }
        return;
    }
    out.fill(0.0);
    let mut idx = [0u32; LANES];
    for g in &ens.groups {
        for lb in (0..n).step_by(LANES) {
            let nl = LANES.min(n - lb);
            let lanes = &mut idx[..nl];
            let outb = &mut out[lb * nt..(lb + nl) * nt];
            for k in g.clone() {
                lanes.fill(S::id(ens.roots[k]));
                // SAFETY: the lanes hold the offset of a root of `ens`, `s` is built on its
                // records (contract), and rows are `w = max(n_features, 1)` wide.
                unsafe { s.walk(lanes, &x[lb * w..], w, ens.depth[k]) };
                if ens.leaf_dim == 1 {
                    let t = ens.target[k] as usize;
                    for (o, &i) in outb.chunks_exact_mut(nt).zip(lanes.iter()) {
                        o[t] += ens.leaf[S::index(i)];
                    }
                } else {
                    for (o, &i) in outb.chunks_exact_mut(nt).zip(lanes.iter()) {
                        let i = S::index(i);
                        for (a, &v) in o.iter_mut().zip(&ens.leaf[i * nt..(i + 1) * nt]) {
                            *a += v;
                        }
                    }
                }
            }
        }
    }
    for o in out.chunks_exact_mut(nt) {
        finish(ens, o);
    }
}

/// Eight walks of `depth` steps through the records of `TreeEnsemble::fm` (features as byte
/// offsets into a feature-major block, thresholds as [`key`]s); lane `l` reads its row's
/// feature, a [`key`], at `xb + feature_offset + 4 * l`.
///
/// The eight node offsets stay in registers for the whole walk and the comparison is an
/// integer one, so that a step is six instructions (feature, input, compare with the
/// threshold in memory, right child, left child as the next record's offset, conditional move)
/// of which four loads (the scalar kernel's steps are issue-bound; three load ports), with no
/// load or store of the walk's state; its dependency chain is two loads, a compare and a move.
///
/// # Safety
/// Every `lanes[l]` is the byte offset of a record of `recs` (a root, or a step's result);
/// every record's `feat` is `f * FM_STRIDE` for a feature `f`, and `xb + f * FM_STRIDE + 4 * l`
/// (bytes) is a readable 4-byte value for every such `f` and `l < 8`; an internal record's
/// left child is the next record, and a leaf's threshold key is `i32::MIN` (compile's layout).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn walk8(recs: *const u8, xb: *const u32, lanes: &mut [u32; 8], depth: u32) {
    if depth == 0 {
        return;
    }
    let [mut n0, mut n1, mut n2, mut n3, mut n4, mut n5, mut n6, mut n7] = lanes.map(u64::from);
    // One lane's step: `t` = feature offset, then the input key, compared (signed) with the
    // threshold key; `t` = right child, `n` = left child (the next record: `lea`, no load, and
    // the flags kept), then `n` = right when input > threshold. A leaf's threshold key is below
    // every input key, so it always takes its right child, itself.
    macro_rules! lane {
        ($n:literal, $d:literal) => {
            concat!(
                "mov {t:e}, dword ptr [{r} + {",
                $n,
                "} + 4]\n",
                "mov {t:e}, dword ptr [{xb} + {t} + ",
                $d,
                "]\n",
                "cmp {t:e}, dword ptr [{r} + {",
                $n,
                "}]\n",
                "mov {t:e}, dword ptr [{r} + {",
                $n,
                "} + 12]\n",
                "lea {",
                $n,
                ":e}, [{",
                $n,
                "} + {size}]\n",
                "cmovg {",
                $n,
                ":e}, {t:e}\n",
            )
        };
    }
    // SAFETY: the loads are those of the contract above (record fields at a record's offset;
    // inputs at the feature offsets of the records), and each step's result is a record offset
    // again (a child, or a leaf's own offset); registers only otherwise. (`mov` does not
    // change the flags set by `cmp`.)
    unsafe {
        std::arch::asm!(
            "2:",
            lane!("n0", "0"),
            lane!("n1", "4"),
            lane!("n2", "8"),
            lane!("n3", "12"),
            lane!("n4", "16"),
            lane!("n5", "20"),
            lane!("n6", "24"),
            lane!("n7", "28"),
            "dec {d:e}",
            "jnz 2b",
            r = in(reg) recs,
            xb = in(reg) xb,
            d = inout(reg) depth => _,
            t = out(reg) _,
            size = const std::mem::size_of::<Rec<f32>>(),
            n0 = inout(reg) n0,
            n1 = inout(reg) n1,
            n2 = inout(reg) n2,
            n3 = inout(reg) n3,
            n4 = inout(reg) n4,
            n5 = inout(reg) n5,
            n6 = inout(reg) n6,
            n7 = inout(reg) n7,
            options(nostack, readonly),
        );
    }
    *lanes = [n0, n1, n2, n3, n4, n5, n6, n7].map(|v| v as u32);
}

/// An input as an `i32` (bits in a `u32`) ordered as the f32 `<=` orders non-NaN values:
/// `x <= t` exactly when `key(x) <= key(t)` (signed), for `x` and `t` not NaN. `-0.0` maps as
/// `+0.0`; NaN maps above every other value, so it goes right, as the fast records require
/// of a block without the NaN test.
#[inline(always)]
pub(crate) fn key(v: f32) -> u32 {
    if v.is_nan() {
        i32::MAX as u32
    } else {
        let b = (v + 0.0).to_bits();
        b ^ (((b as i32) >> 31) as u32 >> 1)
    }
}

/// A threshold `t'` (of `x <= t'`) as a [`key`]: a NaN threshold sends every input right
/// (`i32::MIN`: no input key is below it).
pub(crate) fn threshold_key(t: f32) -> u32 {
    if t.is_nan() {
        i32::MIN as u32
    } else {
        key(t)
    }
}

/// Copies rows `row0..row0 + n` of the feature columns into `dst` feature-major
/// (`dst[f * FM_ROWS + r]`) as [`key`]s of their f32 values; returns whether any copied
/// value is NaN.
#[cfg(target_arch = "x86_64")]
fn gather_fm(ens: &TreeEnsemble, x: &Batch<'_>, row0: usize, n: usize, dst: &mut [u32]) -> bool {
    let mut nan = false;
    for (col, d) in x
        .columns()
        .iter()
        .take(ens.n_features)
        .zip(dst.chunks_exact_mut(FM_ROWS))
    {
        let (off, st) = (col.offset + row0 * col.stride, col.stride);
        let d = &mut d[..n];
        match col.data {
            ColumnData::F32(v) if st == 1 => {
                for (o, &v) in d.iter_mut().zip(&v[off..off + n]) {
                    nan |= v.is_nan();
                    *o = key(v);
                }
            }
            ColumnData::F32(v) => {
                for (r, o) in d.iter_mut().enumerate() {
                    let v = v[off + r * st];
                    nan |= v.is_nan();
                    *o = key(v);
                }
            }
            ColumnData::F64(v) => {
                for (r, o) in d.iter_mut().enumerate() {
                    let v = v[off + r * st] as f32;
                    nan |= v.is_nan();
                    *o = key(v);
                }
            }
            // Never reached (see `gather`).
            ColumnData::Str(_) | ColumnData::Dict(_) => {
                nan = true;
                d.fill(key(f32::NAN));
            }
        }
    }
    nan
}

/// Copies rows `row0..row0 + n` of the feature columns into `dst` feature-major
/// (`dst[f * FM_ROWS + r]`) as the ranks of `TreeEnsemble::fm_ranks`: the number of the
/// feature's thresholds below the value (in f64; an f32 value widens exactly), `i32::MAX`
/// for NaN; returns whether any copied value is NaN.
#[cfg(target_arch = "x86_64")]
fn gather_ranks(ens: &TreeEnsemble, x: &Batch<'_>, row0: usize, n: usize, dst: &mut [u32]) -> bool {
    /// `list`'s count of values below `v` (NaN: `i32::MAX`), through the feature's buckets
    /// `bk` (see `RankIndex`): the count below `v`'s bucket, then those of the bucket below `v`.
    /// A feature with no threshold has one bucket, empty, and its padding: 0.
    #[inline(always)]
    fn rank<const NARROW: bool>(
        ix: &RankIndex,
        list: &[f64],
        bk: &[u32],
        v: f64,
        nan: &mut bool,
    ) -> u32 {
        // NaN runs through too (clamped to the first bucket, every compare false) and its
        // rank is replaced at the end: no branch on the data.
        let is_nan = v.is_nan();
        *nan |= is_nan;
        let f = (v.max(ix.min).min(ix.max) - ix.min) * ix.scale;
        debug_assert!(f >= 0.0 && (f as usize) < ix.buckets as usize);
        // SAFETY: `v` is clamped to the finite `[min, max]` (NaN gives `min`) and `scale` is
        // finite and >= 0 (compile's `rank_index`), so `f` is finite and >= +0.0, and no more
        // than the same expression at `max`, whose truncation is `buckets - 1`; so it
        // truncates to a u32 below `buckets`. `bk` has `buckets + 1` entries, so `b` and
        // `b + 1` index it; `bk[b] <= hi - lo` and `list` has `hi - lo + RANK_PAD` entries.
        let r = unsafe {
            let b = f.to_int_unchecked::<u32>() as usize;
            let s = *bk.get_unchecked(b) as usize;
            let inside = if NARROW {
                // The bucket's thresholds and those after it (above `v`, or the padding's
                // +inf): independent compares.
                let t = list.get_unchecked(s..s + RANK_PAD);
                t.iter().map(|&t| (t < v) as usize).sum()
            } else {
                let e = *bk.get_unchecked(b + 1) as usize;
                list.get_unchecked(s..e).partition_point(|&t| t < v)
            };
            (s + inside) as u32
        };
        if is_nan {
            i32::MAX as u32
        } else {
            r
        }
    }
    /// One feature column's rows into `d`; whether one is NaN.
    #[inline(always)]
    fn column<const NARROW: bool>(
        ix: &RankIndex,
        list: &[f64],
        bk: &[u32],
        col: &Column<'_>,
        row0: usize,
        d: &mut [u32],
    ) -> bool {
        let mut nan = false;
        let (off, st) = (col.offset + row0 * col.stride, col.stride);
        let n = d.len();
        match col.data {
            ColumnData::F64(v) if st == 1 => {
                for (o, &v) in d.iter_mut().zip(&v[off..off + n]) {
                    *o = rank::<NARROW>(ix, list, bk, v, &mut nan);
                }
            }
            ColumnData::F64(v) => {
                for (r, o) in d.iter_mut().enumerate() {
                    *o = rank::<NARROW>(ix, list, bk, v[off + r * st], &mut nan);
                }
            }
            ColumnData::F32(v) => {
                for (r, o) in d.iter_mut().enumerate() {
                    *o = rank::<NARROW>(ix, list, bk, v[off + r * st] as f64, &mut nan);
                }
            }
            // Never reached (see `gather`).
            ColumnData::Str(_) | ColumnData::Dict(_) => {
                nan = true;
                d.fill(i32::MAX as u32);
            }
        }
        nan
    }
    let mut nan = false;
    for (j, (col, d)) in x
        .columns()
        .iter()
        .take(ens.n_features)
        .zip(dst.chunks_exact_mut(FM_ROWS))
        .enumerate()
    {
        let ix = &ens.rank_index[j];
        let list = &ens.ranks[ix.lo as usize..ix.hi as usize + RANK_PAD];
        let bk = &ens.rank_buckets[ix.first as usize..=(ix.first + ix.buckets) as usize];
        let d = &mut d[..n];
        nan |= if ix.narrow {
            column::<true>(ix, list, bk, col, row0, d)
        } else {
            column::<false>(ix, list, bk, col, row0, d)
        };
    }
    nan
}

/// The block kernel over `n` (>= 8, <= [`SUPER_ROWS`]) rows gathered feature-major into `x`,
/// with the feature-major records `fm` (`ens.fm` over keys, `ens.fm_ranks` over ranks):
/// every tree in turn walks all the rows, eight at a time by [`walk8`].
#[cfg(target_arch = "x86_64")]
fn block_walk_fm(ens: &TreeEnsemble, fm: &[Rec<f32>], x: &[u32], n: usize, out: &mut [f64]) {
    const SIZE: usize = std::mem::size_of::<Rec<f32>>();
    let nt = ens.n_targets;
    let out = &mut out[..n * nt];
    out.fill(0.0);
    assert!(n <= SUPER_ROWS && x.len() >= ens.n_features * FM_ROWS);
    assert!(fm.len() == ens.n_laid_out_nodes());
    let recs = fm.as_ptr().cast::<u8>();
    // Leaf reached by each row (the rows rounded up to eight lanes).
    let mut idx = [0u32; SUPER_ROWS];
    let lanes = &mut idx[..n.div_ceil(8) * 8];
    // Tree by tree over the whole block: a tree's records are read from L2 once per block and
    // reused by every eight rows after (the block's keys, n_features × 2 KiB, stay in L2).
    for k in 0..ens.roots.len() {
        let root = ens.roots[k] * SIZE as u32;
        for (c, l8) in lanes.chunks_exact_mut(8).enumerate() {
            let mut walk = [root; 8];
            // SAFETY: the root is a record's offset; `fm` is `ens.fm` or `ens.fm_ranks` (the
            // callers), laid out by compile like `ens.nodes` (same roots, children as byte
            // offsets of its records, leaves' key i32::MIN; length asserted above) with
            // feature offsets `f * FM_STRIDE`, f < n_features, and lane l reads
            // x[f * FM_ROWS + 8c + l] with 8c + l < SUPER_ROWS (SUPER_ROWS is a multiple of
            // 8), inside `x` (asserted above). Padding lanes read stale rows of the scratch
            // and are not used.
            unsafe { walk8(recs, x.as_ptr().add(8 * c), &mut walk, ens.depth[k]) };
            l8.copy_from_slice(&walk);
        }
        let lanes = &lanes[..n];
        if ens.leaf_dim == 1 {
            let t = ens.target[k] as usize;
            for (o, &i) in out.chunks_exact_mut(nt).zip(lanes) {
                o[t] += ens.leaf[i as usize / SIZE];
            }
        } else {
            for (o, &i) in out.chunks_exact_mut(nt).zip(lanes) {
                let i = i as usize / SIZE;
                for (a, &v) in o.iter_mut().zip(&ens.leaf[i * nt..(i + 1) * nt]) {
                    *a += v;
                }
            }
        }
    }
    for o in out.chunks_exact_mut(nt) {
        finish(ens, o);
    }
}

pub(super) fn predict_batch(
    ens: &TreeEnsemble,
    x: &Batch<'_>,
    rows: Range<usize>,
    out: &mut [f64],
    scratch: &mut TreeScratch,
) {
    let nt = ens.n_targets;
    let w = ens.width;
    let need = SUPER_ROWS * w;
    // The f32 records run when the model's precision is f32, or when it is f64 and every
    // input column is f32 (exact, see `Nodes::F64`).
    let recs32 = match &ens.nodes {
        Nodes::F32(r) => Some(r.as_slice()),
        Nodes::F64 { f32, .. }
            if x.columns()
                .iter()
                .take(ens.n_features)
                .all(|c| matches!(c.data, ColumnData::F32(_))) =>
        {
            Some(f32.as_slice())
        }
        _ => None,
    };
    if recs32.is_some() && scratch.x32.len() < need {
        scratch.x32.resize(need, 0.0);
    } else if recs32.is_none() && scratch.x64.len() < need {
        scratch.x64.resize(need, 0.0);
    }
    let mut r0 = rows.start;
    for o in out.chunks_mut(SUPER_ROWS * nt) {
        let n = o.len() / nt;
        // The feature-major kernel, for blocks of 8 rows or more without a NaN that some
        // node would send left: over f32 keys where the f32 records run, else over ranks
        // (an f64 model whose inputs are not all f32; `fm_ranks` is empty otherwise).
        #[cfg(target_arch = "x86_64")]
        if n >= 8 {
            let fm = if recs32.is_some() {
                &ens.fm
            } else {
                &ens.fm_ranks
            };
            if !fm.is_empty() {
                if scratch.keys.len() < FM_ROWS * w {
                    scratch.keys.resize(FM_ROWS * w, 0);
                }
                let nan = if recs32.is_some() {
                    gather_fm(ens, x, r0, n, &mut scratch.keys)
                } else {
                    gather_ranks(ens, x, r0, n, &mut scratch.keys)
                };
                if !(ens.any_dl && nan) {
                    block_walk_fm(ens, fm, &scratch.keys, n, o);
                    r0 += n;
                    continue;
                }
            }
        }
        if let Some(recs) = recs32 {
            let nan = gather(ens, x, r0, n, &mut scratch.x32);
            // A block without NaN never takes the NaN test: run the step without it.
            // SAFETY: the step is built on `ens`'s f32 records by the macro.
            fast_step!(ens, recs, ens.any_dl && nan, s, unsafe {
                block_walk(ens, &s, &scratch.x32, n, o)
            });
        } else {
            let nan = gather(ens, x, r0, n, &mut scratch.x64);
            // SAFETY (each `block_walk`): the step is built from `ens.nodes` by the macro.
            match &ens.nodes {
                Nodes::F64 { recs, .. } => {
                    fast_step!(ens, recs.as_slice(), ens.any_dl && nan, s, unsafe {
                        block_walk(ens, &s, &scratch.x64, n, o)
                    })
                }
                _ => with_step!(ens, s, unsafe { block_walk(ens, &s, &scratch.x64, n, o) }),
            }
        }
        r0 += n;
    }
}
