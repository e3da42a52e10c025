//! Running a plan over one chunk of rows: gathering the input into the arena, the steps, and
//! writing outputs row-major.

use std::marker::PhantomData;

use mle_format::DType;

use crate::batch::{Batch, Column, ColumnData};
use crate::kernels as k;
use crate::plan::{Kernel, Operand, Plan, Step, ValueId};
use crate::real::Real;
use crate::tree::{TreeEnsemble, TreeScratch};

/// Per-thread state: the arena (reused across calls) and the tree kernels' scratch.
pub(crate) struct Worker {
    arena: Vec<u64>,
    trees: Vec<TreeScratch>,
    tree_tmp: Vec<f64>,
}

impl Worker {
    pub(crate) fn new(plan: &Plan) -> Worker {
        let mut trees = Vec::with_capacity(plan.n_tree_steps);
        for s in &plan.steps {
            if let Kernel::Tree { ens, .. } = &s.kernel {
                trees.push(ens.scratch());
            }
        }
        Worker {
            arena: Vec::new(),
            trees,
            tree_tmp: Vec::new(),
        }
    }

    /// Grows the buffers for chunks of up to `n` rows (never shrinks: no allocation once warm).
    pub(crate) fn ensure(&mut self, plan: &Plan, n: usize) {
        let words = plan.arena_per_row / 8 * n;
        if self.arena.len() < words {
            self.arena.resize(words, 0);
        }
        let tmp = plan.tree_tmp_per_row * n;
        if self.tree_tmp.len() < tmp {
            self.tree_tmp.resize(tmp, 0.0);
        }
    }
}

/// Where the rows of a chunk come from.
pub(crate) enum Source<'s, 'a> {
    /// Rows `row0..row0 + n` of a batch.
    Batch(&'s Batch<'a>, usize),
    /// One row of f64 features.
    RowF64(&'s [f64]),
    /// One row of f32 features.
    RowF32(&'s [f32]),
}

/// Output destination of one chunk (row-major).
pub(crate) enum OutSlice<'a> {
    F32(&'a mut [f32]),
    F64(&'a mut [f64]),
    I64(&'a mut [i64]),
}

/// An element type of arena values, tied to its dtype (checked by every view).
pub(crate) trait Elt: Copy + 'static {
    /// The dtype of values of this element type.
    const DTYPE: DType;
}

impl Elt for f32 {
    const DTYPE: DType = DType::F32;
}

impl Elt for f64 {
    const DTYPE: DType = DType::F64;
}

impl Elt for i64 {
    const DTYPE: DType = DType::I64;
}

/// Typed views of the arena regions of one chunk of `n` rows.
///
/// Every view checks (hard asserts) that it lies inside the arena and that its element type is
/// the value's dtype. What the type system cannot see is exclusivity, the contract of the
/// `unsafe` view functions, which every step meets by construction (**the planner invariant**):
/// buffers live at the same step never share bytes (the memory planner places them apart), and
/// a step's inputs, output and scratch are all live at that step; so a step's output and
/// scratch are disjoint from its inputs and from each other. Inputs are read-only views (two
/// inputs may be the same value, `Add(x, x)`), only the output and the scratch are `&mut`;
/// [`Mem::assert_disjoint`] checks the invariant for every step in debug builds.
struct Mem<'a> {
    base: *mut u8,
    n: usize,
    len_bytes: usize,
    _arena: PhantomData<&'a mut [u64]>,
}

impl<'a> Mem<'a> {
    /// Views of `arena` for chunks of `n` rows; every view lives at most as long as the borrow.
    fn new(arena: &'a mut [u64], n: usize) -> Mem<'a> {
        Mem {
            base: arena.as_mut_ptr().cast::<u8>(),
            n,
            len_bytes: std::mem::size_of_val(arena),
            _arena: PhantomData,
        }
    }

    /// Byte offset and element count of value `v` as `T`, checked against the arena and the
    /// value's dtype.
    #[inline(always)]
    fn region<T: Elt>(&self, plan: &Plan, v: ValueId) -> (usize, usize) {
        let val = &plan.values[v];
        assert!(
            val.dtype == T::DTYPE,
            "view of a {} value as {}",
            val.dtype,
            T::DTYPE
        );
        let off = plan.buf_off[val.buf].unwrap_or(0) * self.n;
        let len = val.width * self.n;
        assert!(off + len * std::mem::size_of::<T>() <= self.len_bytes);
        (off, len)
    }

    /// The region of value `v`, read-only.
    ///
    /// # Safety
    /// No `&mut` view overlapping the region is live while the returned slice is.
    #[inline(always)]
    unsafe fn input<T: Elt>(&self, plan: &Plan, v: ValueId) -> &'a [T] {
        let (off, len) = self.region::<T>(plan, v);
        // SAFETY: in bounds and of the value's dtype (checked by `region`), 8-byte aligned
        // (offsets are multiples of 8 bytes per row); the caller guarantees no overlapping
        // `&mut` view is live.
        unsafe { std::slice::from_raw_parts(self.base.add(off).cast::<T>(), len) }
    }

    /// The region of value `v`, writable.
    ///
    /// # Safety
    /// No other view overlapping the region is live while the returned slice is.
    #[allow(clippy::mut_from_ref)]
    #[inline(always)]
    unsafe fn output<T: Elt>(&self, plan: &Plan, v: ValueId) -> &'a mut [T] {
        let (off, len) = self.region::<T>(plan, v);
        // SAFETY: as in `input`; the caller guarantees exclusivity.
        unsafe { std::slice::from_raw_parts_mut(self.base.add(off).cast::<T>(), len) }
    }

    /// A step's first input (read-only) and its output (writable).
    ///
    /// # Safety
    /// The planner invariant: the output region is disjoint from the input's (see [`Mem`]),
    /// and no other `&mut` view of either is live.
    #[inline(always)]
    unsafe fn io<I: Elt, O: Elt>(&self, plan: &Plan, step: &Step) -> (&'a [I], &'a mut [O]) {
        let in0 = first_input(step);
        // SAFETY: the caller's contract (disjoint regions, no other `&mut` view).
        unsafe { (self.input(plan, in0), self.output(plan, step.output)) }
    }

    /// A step's scratch region of `len` elements of `T`.
    ///
    /// # Safety
    /// The planner invariant (the scratch is disjoint from the step's inputs and output), and
    /// no other view of the scratch is live.
    #[allow(clippy::mut_from_ref)]
    #[inline(always)]
    unsafe fn scratch<T: Elt>(&self, plan: &Plan, step: &Step, len: usize) -> &'a mut [T] {
        let buf = step.scratch.unwrap_or(0);
        let off = plan.buf_off[buf].unwrap_or(0) * self.n;
        assert!(len * std::mem::size_of::<T>() <= plan.buf_size[buf] * self.n);
        assert!(off + len * std::mem::size_of::<T>() <= self.len_bytes);
        // SAFETY: in bounds of the arena and of the scratch buffer (asserted), 8-byte aligned;
        // the caller guarantees exclusivity.
        unsafe { std::slice::from_raw_parts_mut(self.base.add(off).cast::<T>(), len) }
    }

    /// Checks the planner invariant for `step`: its output's and scratch's regions overlap
    /// none of its inputs' regions nor each other (regions of whole buffers; inputs read
    /// straight from the batch, not from the arena, are skipped).
    #[cfg(debug_assertions)]
    fn assert_disjoint(&self, plan: &Plan, step: &Step) {
        let region =
            |buf: usize| plan.buf_off[buf].map(|o| o * self.n..(o + plan.buf_size[buf]) * self.n);
        let overlap = |a: &std::ops::Range<usize>, b: &std::ops::Range<usize>| {
            !a.is_empty() && !b.is_empty() && a.start < b.end && b.start < a.end
        };
        let from_input = matches!(
            step.kernel,
            Kernel::Tree {
                from_input: true,
                ..
            }
        );
        let ins = step
            .inputs
            .iter()
            .filter(|&&v| !(from_input && v == plan.x))
            .filter_map(|&v| region(plan.values[v].buf));
        // Allocation-free (the single-row path allocates nothing, in debug builds too).
        let out = region(plan.values[step.output].buf);
        let scratch = step.scratch.and_then(region);
        for w in out.iter().chain(&scratch) {
            for r in ins.clone() {
                assert!(
                    !overlap(w, &r),
                    "step {}: the writable region {w:?} overlaps the input region {r:?}",
                    step.node
                );
            }
        }
        if let (Some(o), Some(s)) = (&out, &scratch) {
            assert!(
                !overlap(o, s),
                "step {}: the output region {o:?} overlaps the scratch region {s:?}",
                step.node
            );
        }
    }
}

/// A step's first input. Every lowering gives a step at least one input; checked, because an
/// input defaulting to the output would alias it.
#[inline(always)]
fn first_input(step: &Step) -> ValueId {
    match step.inputs.first() {
        Some(&v) => v,
        None => panic!("step {} has no input", step.node),
    }
}

/// Evaluates `$body` with `$T` the element type of float dtype `$dt` (`f32`, else `f64`): one
/// body, monomorphized for each precision.
macro_rules! with_float {
    ($dt:expr, $T:ident => $body:expr) => {
        if $dt == DType::F32 {
            type $T = f32;
            $body
        } else {
            type $T = f64;
            $body
        }
    };
}

fn gather<T: Real>(dst: &mut [T], src: &Source<'_, '_>, j: usize, n: usize) {
    match *src {
        Source::Batch(b, row0) => {
            let Column {
                data,
                offset,
                stride,
            } = b.columns()[j];
            let start = offset + row0 * stride;
            match data {
                ColumnData::F32(d) => {
                    copy_strided(dst, &d[start..], stride, n, |v| T::from_f64(v as f64))
                }
                ColumnData::F64(d) => copy_strided(dst, &d[start..], stride, n, T::from_f64),
                // Never reached: the lookup stage replaces string columns by their codes, and
                // a string column for a feature without a Lookup is refused before.
                ColumnData::Str(_) | ColumnData::Dict(_) => dst[..n].fill(T::from_f64(f64::NAN)),
            }
        }
        Source::RowF64(r) => dst[0] = T::from_f64(r[j]),
        Source::RowF32(r) => dst[0] = T::from_f64(r[j] as f64),
    }
}

/// The matrix behind `b` when every column `j` is column `j` of one row-major `[n, F]` slice
/// (`Batch::from_row_major_*`, numpy's C-contiguous input).
fn row_major<'a>(b: &Batch<'a>) -> Option<ColumnData<'a>> {
    let cols = b.columns();
    let f = cols.len();
    let first = cols.first()?.data;
    let same = |d: &ColumnData<'_>| match (d, &first) {
        (ColumnData::F32(a), ColumnData::F32(z)) => std::ptr::eq(*a, *z),
        (ColumnData::F64(a), ColumnData::F64(z)) => std::ptr::eq(*a, *z),
        _ => false,
    };
    let ok = cols
        .iter()
        .enumerate()
        .all(|(j, c)| c.offset == j && c.stride == f && same(&c.data));
    ok.then_some(first)
}

/// Rows `row0..row0 + n` of a row-major `[_, f]` matrix into feature-major `dst` (`f` rows of
/// `n`), eight rows at a time: the eight rows (a few hundred bytes) stay in L1 while each
/// feature gets eight consecutive values, one 64-byte store run per feature. (A pass per
/// feature would read the whole chunk again for every feature; eight features per pass over
/// all rows made eight store streams a row pitch apart, which alias the loads.)
fn gather_rows<T: Real>(dst: &mut [T], data: ColumnData<'_>, row0: usize, f: usize, n: usize) {
    #[inline(always)]
    fn run<S: Copy, T>(dst: &mut [T], src: &[S], f: usize, n: usize, conv: impl Fn(S) -> T) {
        if f == 0 || n == 0 {
            return;
        }
        let src = &src[..n * f];
        let dst = &mut dst[..f * n];
        let mut blocks = src.chunks_exact(8 * f);
        let mut r0 = 0;
        for blk in &mut blocks {
            let rows: [&[S]; 8] = std::array::from_fn(|k| &blk[k * f..(k + 1) * f]);
            for (j, col) in dst.chunks_exact_mut(n).enumerate() {
                for (o, row) in col[r0..r0 + 8].iter_mut().zip(&rows) {
                    *o = conv(row[j]);
                }
            }
            r0 += 8;
        }
        for (r, row) in blocks.remainder().chunks_exact(f).enumerate() {
            for (col, &v) in dst.chunks_exact_mut(n).zip(row) {
                col[r0 + r] = conv(v);
            }
        }
    }
    match data {
        ColumnData::F32(d) => run(dst, &d[row0 * f..], f, n, |v| T::from_f64(v as f64)),
        ColumnData::F64(d) => run(dst, &d[row0 * f..], f, n, T::from_f64),
        // `row_major` returns numeric data only.
        ColumnData::Str(_) | ColumnData::Dict(_) => dst[..f * n].fill(T::from_f64(f64::NAN)),
    }
}

#[inline(always)]
fn copy_strided<S: Copy, T>(dst: &mut [T], src: &[S], stride: usize, n: usize, f: impl Fn(S) -> T) {
    let dst = &mut dst[..n];
    if stride == 1 {
        for (d, &s) in dst.iter_mut().zip(&src[..n]) {
            *d = f(s);
        }
    } else if stride == 0 {
        for d in dst {
            *d = f(src[0]);
        }
    } else {
        for (d, &s) in dst.iter_mut().zip(src.iter().step_by(stride)) {
            *d = f(s);
        }
    }
}

/// Runs every step of `plan` over `n` rows of `src`, leaving the outputs in the arena.
pub(crate) fn run_chunk(plan: &Plan, w: &mut Worker, src: &Source<'_, '_>, n: usize) {
    w.ensure(plan, n);
    let mem = Mem::new(&mut w.arena, n);
    let direct = if plan.direct_x {
        direct_rows(src, plan.n_features)
    } else {
        None
    };
    if direct.is_none() {
        gather_x(plan, &mem, src, n);
    }
    for (i, step) in plan.steps.iter().enumerate() {
        #[cfg(debug_assertions)]
        mem.assert_disjoint(plan, step);
        if let (0, Some(rows)) = (i, direct) {
            dense_step_rows(plan, &mem, step, rows, n);
            continue;
        }
        match &step.kernel {
            Kernel::Tree {
                ens,
                slot,
                from_input,
            } => {
                let scratch = &mut w.trees[*slot];
                tree_step(
                    plan,
                    &mem,
                    step,
                    ens,
                    scratch,
                    &mut w.tree_tmp,
                    *from_input,
                    src,
                    n,
                )
            }
            kernel => run_step(plan, &mem, step, kernel, n),
        }
    }
}

/// A chunk's input rows as one row-major numeric matrix, borrowed where they lie.
#[derive(Clone, Copy)]
enum Rows<'a> {
    F32(&'a [f32]),
    F64(&'a [f64]),
}

/// The rows of `src` as one row-major matrix (from the chunk's first row), when they are one.
fn direct_rows<'s>(src: &Source<'s, '_>, f: usize) -> Option<Rows<'s>> {
    match *src {
        Source::Batch(b, row0) => match row_major(b)? {
            ColumnData::F32(d) => d.get(row0 * f..).map(Rows::F32),
            ColumnData::F64(d) => d.get(row0 * f..).map(Rows::F64),
            ColumnData::Str(_) | ColumnData::Dict(_) => None,
        },
        Source::RowF32(r) => Some(Rows::F32(r)),
        Source::RowF64(r) => Some(Rows::F64(r)),
    }
}

/// The plan's first step, a Dense layer (`Plan::direct_x`), over row-major input rows.
fn dense_step_rows(plan: &Plan, mem: &Mem<'_>, step: &Step, rows: Rows<'_>, n: usize) {
    match &step.kernel {
        Kernel::DenseF32(d) => {
            // SAFETY: the only view of the arena while it is live (X is not read).
            let y = unsafe { mem.output::<f32>(plan, step.output) };
            match rows {
                Rows::F32(s) => k::dense_rows(d, s, y, n, |v| v),
                Rows::F64(s) => k::dense_rows(d, s, y, n, |v| v as f32),
            }
        }
        Kernel::DenseF64(d) => {
            // SAFETY: as above.
            let y = unsafe { mem.output::<f64>(plan, step.output) };
            match rows {
                Rows::F32(s) => k::dense_rows_f64_from_f32(d, s, y, n),
                Rows::F64(s) => k::dense_rows_f64(d, s, y, n),
            }
        }
        // `Plan::direct_x` holds for a Dense first step only.
        _ => unreachable!("direct_x on a step that is not Dense"),
    }
}

/// Copies the rows of `src` into the graph input's region (when some step reads it there).
fn gather_x(plan: &Plan, mem: &Mem<'_>, src: &Source<'_, '_>, n: usize) {
    if !plan.gather_x {
        return;
    }
    let (x, f) = (plan.x, plan.n_features);
    let xdt = plan.values[x].dtype;
    match *src {
        Source::Batch(b, row0) if f > 1 => {
            if let Some(data) = row_major(b) {
                with_float!(xdt, T => {
                    // SAFETY: the only view of the arena while it is live.
                    let dst = unsafe { mem.output::<T>(plan, x) };
                    gather_rows(dst, data, row0, f, n)
                });
                return;
            }
        }
        _ => {}
    }
    with_float!(xdt, T => {
        // SAFETY: the only view of the arena while it is live.
        let dst = unsafe { mem.output::<T>(plan, x) };
        for j in 0..f {
            gather(&mut dst[j * n..], src, j, n);
        }
    })
}

/// Runs one step other than a tree step.
fn run_step(plan: &Plan, mem: &Mem<'_>, step: &Step, kernel: &Kernel, n: usize) {
    let odt = plan.values[step.output].dtype;
    let in0 = step.inputs.first().copied().unwrap_or(step.output);
    let idt = plan.values[in0].dtype;
    match kernel {
        Kernel::DenseF32(d) => {
            // SAFETY: the planner invariant (output disjoint from the input); dtypes checked.
            let (x, y) = unsafe { mem.io::<f32, f32>(plan, step) };
            k::dense_f32(d, x, y, n)
        }
        Kernel::DenseF64(d) => {
            // SAFETY: as above.
            let (x, y) = unsafe { mem.io::<f64, f64>(plan, step) };
            k::dense(d, x, y, n)
        }
        Kernel::Binary { op, b, map, .. } => with_float!(odt, T => {
            // SAFETY: the planner invariant; both inputs are read-only views (they may be the
            // same value), only the output is writable.
            let (a, y) = unsafe { mem.io::<T, T>(plan, step) };
            let b = match b {
                // SAFETY: as above (an input, read-only).
                Operand::Value(v) => Ok(unsafe { mem.input::<T>(plan, *v) }),
                Operand::Const(c) => Err(c.as_slice()),
            };
            k::binary(*op, a, b, map, y, n)
        }),
        Kernel::Unary(act) => with_float!(odt, T => {
            // SAFETY: the planner invariant (output disjoint from the input); dtypes checked.
            let (x, y) = unsafe { mem.io::<T, T>(plan, step) };
            k::unary(*act, x, y)
        }),
        Kernel::Softmax {
            outer,
            len,
            inner,
            log,
        } => with_float!(odt, T => {
            // SAFETY: the planner invariant (input, output and scratch pairwise disjoint).
            let ((x, y), sc) =
                unsafe { (mem.io::<T, T>(plan, step), mem.scratch::<T>(plan, step, 2 * n)) };
            k::softmax(*outer, *len, *inner, *log, x, y, sc, n)
        }),
        Kernel::LayerNorm {
            outer,
            len,
            weight,
            bias,
            eps,
        } => with_float!(odt, T => {
            // SAFETY: the planner invariant (input, output and scratch pairwise disjoint).
            let ((x, y), sc) =
                unsafe { (mem.io::<T, T>(plan, step), mem.scratch::<T>(plan, step, 2 * n)) };
            k::layer_norm(*outer, *len, weight.as_deref(), bias.as_deref(), *eps, x, y, sc, n)
        }),
        Kernel::ChannelAffine {
            channels,
            inner,
            scale,
            shift,
        } => with_float!(odt, T => {
            // SAFETY: the planner invariant (output disjoint from the input); dtypes checked.
            let (x, y) = unsafe { mem.io::<T, T>(plan, step) };
            k::channel_affine(*channels, *inner, scale, shift, x, y, n)
        }),
        Kernel::Concat { outer, blocks } => match odt {
            DType::F32 => concat::<f32>(plan, mem, step, *outer, blocks, n),
            DType::F64 => concat::<f64>(plan, mem, step, *outer, blocks, n),
            _ => concat::<i64>(plan, mem, step, *outer, blocks, n),
        },
        Kernel::Cast => match (idt, odt) {
            (DType::F32, DType::F64) => {
                // SAFETY: the planner invariant (output disjoint from the input); dtypes checked.
                let (x, y) = unsafe { mem.io::<f32, f64>(plan, step) };
                cast(x, y, |v| v as f64)
            }
            (DType::F64, DType::F32) => {
                // SAFETY: as above.
                let (x, y) = unsafe { mem.io::<f64, f32>(plan, step) };
                cast(x, y, |v| v as f32)
            }
            (DType::I64, DType::F32) => {
                // SAFETY: as above.
                let (x, y) = unsafe { mem.io::<i64, f32>(plan, step) };
                cast(x, y, |v| v as f32)
            }
            (DType::I64, DType::F64) => {
                // SAFETY: as above.
                let (x, y) = unsafe { mem.io::<i64, f64>(plan, step) };
                cast(x, y, |v| v as f64)
            }
            _ => {}
        },
        Kernel::Scaler {
            offset,
            scale,
            divide,
            bias,
        } => {
            // SAFETY: the planner invariant (output disjoint from the input); dtypes checked.
            let (x, y) = unsafe { mem.io(plan, step) };
            k::scaler(offset, scale, *divide, bias.as_deref(), x, y, n)
        }
        Kernel::Imputer { values, missing } => {
            // SAFETY: as above.
            let (x, y) = unsafe { mem.io(plan, step) };
            k::imputer(values, *missing, x, y, n)
        }
        Kernel::Normalizer(norm) => {
            let width = plan.values[in0].width;
            // SAFETY: the planner invariant (input, output and scratch pairwise disjoint).
            let ((x, y), sc) = unsafe { (mem.io(plan, step), mem.scratch::<f64>(plan, step, n)) };
            k::normalizer(*norm, width, x, y, sc, n)
        }
        Kernel::BinaryToProba => {
            // SAFETY: the planner invariant (output disjoint from the input); dtypes checked.
            let (x, y) = unsafe { mem.io(plan, step) };
            k::binary_to_proba(x, y, n)
        }
        Kernel::ArgMax { classes } => with_float!(idt, T => {
            // SAFETY: as above.
            let (x, y) = unsafe { mem.io::<T, i64>(plan, step) };
            k::argmax(*classes, x, y, n)
        }),
        Kernel::Threshold(t) => with_float!(idt, T => {
            // SAFETY: as above.
            let (x, y) = unsafe { mem.io::<T, i64>(plan, step) };
            k::threshold(*t, x, y, n)
        }),
        Kernel::Gather { columns } => match idt {
            DType::F32 => {
                // SAFETY: the planner invariant (output disjoint from the input); dtypes checked.
                let (x, y) = unsafe { mem.io::<f32, f32>(plan, step) };
                k::gather(columns, x, y, n)
            }
            DType::F64 => {
                // SAFETY: as above.
                let (x, y) = unsafe { mem.io::<f64, f64>(plan, step) };
                k::gather(columns, x, y, n)
            }
            _ => {
                // SAFETY: as above.
                let (x, y) = unsafe { mem.io::<i64, i64>(plan, step) };
                k::gather(columns, x, y, n)
            }
        },
        Kernel::OneHot {
            feature,
            slots,
            missing,
            unknown,
        } => {
            // SAFETY: the planner invariant (output disjoint from the input); dtypes checked.
            let (x, y) = unsafe { mem.io(plan, step) };
            k::one_hot(*feature, slots, *missing, *unknown, x, y, n)
        }
        Kernel::CategoryMap {
            feature,
            width,
            table,
            missing,
            unknown,
        } => {
            // SAFETY: as above.
            let (x, y) = unsafe { mem.io(plan, step) };
            k::category_map(*feature, *width, table, missing, unknown, x, y, n)
        }
        Kernel::MissingIndicator { columns, missing } => {
            // SAFETY: as above.
            let (x, y) = unsafe { mem.io(plan, step) };
            k::missing_indicator(columns, *missing, x, y, n)
        }
        Kernel::Bucketize { edges, offsets } => {
            // SAFETY: as above.
            let (x, y) = unsafe { mem.io(plan, step) };
            k::bucketize(edges, offsets, x, y, n)
        }
        Kernel::Polynomial { terms, offsets } => {
            // SAFETY: as above.
            let (x, y) = unsafe { mem.io(plan, step) };
            k::polynomial(terms, offsets, x, y, n)
        }
        // Run by `tree_step`.
        Kernel::Tree { .. } => {}
    }
}

/// A `TreeEnsemble` step: from the batch itself (`from_input`) or from an arena value.
#[allow(clippy::too_many_arguments)]
fn tree_step(
    plan: &Plan,
    mem: &Mem<'_>,
    step: &Step,
    ens: &TreeEnsemble,
    scratch: &mut TreeScratch,
    tree_tmp: &mut [f64],
    from_input: bool,
    src: &Source<'_, '_>,
    n: usize,
) {
    let t = ens.n_targets();
    // SAFETY: the planner invariant (the output is disjoint from the arena input, if any);
    // the output is the only writable view.
    let y: &mut [f64] = unsafe { mem.output(plan, step.output) };
    let direct = t == 1 || n == 1;
    let tmp: &mut [f64] = if direct {
        &mut *y
    } else {
        &mut tree_tmp[..n * t]
    };
    if from_input {
        match *src {
            Source::Batch(b, row0) => ens.predict_batch(b, row0..row0 + n, tmp, scratch),
            Source::RowF64(r) => ens.predict_row_f64(r, tmp),
            Source::RowF32(r) => ens.predict_row_f32(r, tmp),
        }
    } else {
        let in0 = first_input(step);
        let idt = plan.values[in0].dtype;
        let f = plan.values[in0].width;
        // The input, read-only: one view shared by every column below.
        // SAFETY: the planner invariant (disjoint from the output, the only writable view).
        let data = unsafe {
            if idt == DType::F32 {
                ColumnData::F32(mem.input::<f32>(plan, in0))
            } else {
                ColumnData::F64(mem.input::<f64>(plan, in0))
            }
        };
        match (n, data) {
            (1, ColumnData::F32(x)) => ens.predict_row_f32(x, tmp),
            (1, ColumnData::F64(x)) => ens.predict_row_f64(x, tmp),
            _ => {
                let cols: Vec<Column<'_>> = (0..f)
                    .map(|j| Column {
                        data,
                        offset: j * n,
                        stride: 1,
                    })
                    .collect();
                match Batch::from_strided(cols, n) {
                    Ok(b) => ens.predict_batch(&b, 0..n, tmp, scratch),
                    // Impossible: the arena region holds f·n values.
                    Err(_) => tmp.fill(f64::NAN),
                }
            }
        }
    }
    if !direct {
        // Row-major [n, t] → feature-major [t, n].
        for r in 0..n {
            for c in 0..t {
                y[c * n + r] = tree_tmp[r * t + c];
            }
        }
    }
}

#[inline]
fn cast<S: Copy, T>(x: &[S], y: &mut [T], f: impl Fn(S) -> T) {
    for (d, &s) in y.iter_mut().zip(x) {
        *d = f(s);
    }
}

/// `Concat` of the step's inputs (all of dtype `T`, checked by the views).
fn concat<T: Elt>(
    plan: &Plan,
    mem: &Mem<'_>,
    step: &Step,
    outer: usize,
    blocks: &[usize],
    n: usize,
) {
    // SAFETY: the planner invariant (the output is disjoint from every input); the inputs are
    // read-only views (they may repeat a value).
    let y: &mut [T] = unsafe { mem.output(plan, step.output) };
    let mut pos = 0;
    for o in 0..outer {
        for (&v, &b) in step.inputs.iter().zip(blocks) {
            // SAFETY: as above.
            let x: &[T] = unsafe { mem.input(plan, v) };
            let len = b * n;
            y[pos..pos + len].copy_from_slice(&x[o * len..(o + 1) * len]);
            pos += len;
        }
    }
}

/// Copies graph output `k` of the last chunk (`n` rows) into `dst` rows `row_off..`.
pub(crate) fn extract(
    plan: &Plan,
    w: &mut Worker,
    k: usize,
    n: usize,
    dst: OutSlice<'_>,
    row_off: usize,
) {
    let v = plan.outputs[k];
    let width = plan.values[v].width;
    let mem = Mem::new(&mut w.arena, n);
    #[inline(always)]
    fn copy<T: Copy>(src: &[T], dst: &mut [T], width: usize, n: usize, row_off: usize) {
        let dst = &mut dst[row_off * width..(row_off + n) * width];
        if width == 1 {
            dst.copy_from_slice(&src[..n]);
        } else {
            for j in 0..width {
                for (r, &s) in src[j * n..(j + 1) * n].iter().enumerate() {
                    dst[r * width + j] = s;
                }
            }
        }
    }
    // SAFETY (each): the only view of the arena while it is live (the view checks the dtype
    // against the OutSlice variant's element type).
    match dst {
        OutSlice::F32(d) => copy(unsafe { mem.input::<f32>(plan, v) }, d, width, n, row_off),
        OutSlice::F64(d) => copy(unsafe { mem.input::<f64>(plan, v) }, d, width, n, row_off),
        OutSlice::I64(d) => copy(unsafe { mem.input::<i64>(plan, v) }, d, width, n, row_off),
    }
}
