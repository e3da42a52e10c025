//! Running a plan over one chunk of rows: gathering the input into the arena, the steps, and
//! writing outputs row-major.

use mle_format::DType;

use crate::batch::{Batch, Column, ColumnData};
use crate::kernels as k;
use crate::plan::{Kernel, Operand, Plan, ValueId};
use crate::real::Real;
use crate::tree::TreeScratch;

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

/// Typed views of arena regions. Regions of buffers live at the same step never overlap (the
/// memory planner's invariant), so a step's output view never aliases its input views.
struct Mem {
    base: *mut u8,
    n: usize,
    len_bytes: usize,
}

impl Mem {
    /// The region of value `v` as `&mut [T]`.
    ///
    /// # Safety
    /// `T` must be the value's dtype, and no other live reference may overlap the region.
    #[allow(clippy::mut_from_ref)]
    unsafe fn val<'m, T>(&self, plan: &Plan, v: ValueId) -> &'m mut [T] {
        let val = &plan.values[v];
        let off = plan.buf_off[val.buf].unwrap_or(0) * self.n;
        let len = val.width * self.n;
        debug_assert_eq!(std::mem::size_of::<T>(), val.dtype.size());
        assert!(off + len * std::mem::size_of::<T>() <= self.len_bytes);
        // SAFETY: in bounds (asserted), 8-byte aligned (offsets are multiples of 8), and the
        // caller guarantees the dtype and exclusivity.
        unsafe { std::slice::from_raw_parts_mut(self.base.add(off).cast::<T>(), len) }
    }

    /// A step's scratch region of `len` elements of `T`.
    ///
    /// # Safety
    /// As [`Mem::val`].
    #[allow(clippy::mut_from_ref)]
    unsafe fn scratch<'m, T>(&self, plan: &Plan, buf: usize, len: usize) -> &'m mut [T] {
        let off = plan.buf_off[buf].unwrap_or(0) * self.n;
        assert!(off + len * std::mem::size_of::<T>() <= self.len_bytes);
        // SAFETY: as above.
        unsafe { std::slice::from_raw_parts_mut(self.base.add(off).cast::<T>(), len) }
    }
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
    let mem = Mem {
        base: w.arena.as_mut_ptr().cast::<u8>(),
        n,
        len_bytes: w.arena.len() * 8,
    };
    let row_major = match *src {
        Source::Batch(b, row0) if plan.gather_x && plan.n_features > 1 => {
            row_major(b).map(|d| (d, row0))
        }
        _ => None,
    };
    if let Some((data, row0)) = row_major {
        let (x, f) = (plan.x, plan.n_features);
        // SAFETY: X's dtype is checked; only this view is live.
        unsafe {
            match plan.values[x].dtype {
                DType::F32 => gather_rows(mem.val::<f32>(plan, x), data, row0, f, n),
                _ => gather_rows(mem.val::<f64>(plan, x), data, row0, f, n),
            }
        }
    } else if plan.gather_x {
        let x = plan.x;
        for j in 0..plan.n_features {
            // SAFETY: X's dtype is checked; only this view is live.
            unsafe {
                match plan.values[x].dtype {
                    DType::F32 => gather(&mut mem.val::<f32>(plan, x)[j * n..], src, j, n),
                    _ => gather(&mut mem.val::<f64>(plan, x)[j * n..], src, j, n),
                }
            }
        }
    }
    for step in &plan.steps {
        let out = step.output;
        let odt = plan.values[out].dtype;
        let in0 = step.inputs.first().copied().unwrap_or(out);
        let idt = plan.values[in0].dtype;
        // SAFETY (every block below): the dtypes match the match arms (fixed at compile time),
        // and the output region is disjoint from the input and scratch regions (they are all
        // live at this step).
        unsafe {
            match &step.kernel {
                Kernel::DenseF32(d) => {
                    k::dense_f32(d, mem.val::<f32>(plan, in0), mem.val(plan, out), n)
                }
                Kernel::DenseF64(d) => {
                    k::dense(d, mem.val::<f64>(plan, in0), mem.val(plan, out), n)
                }
                Kernel::Binary { op, b, map, .. } => {
                    let bv = match b {
                        Operand::Value(v) => Some(*v),
                        Operand::Const(_) => None,
                    };
                    let cst: &[f64] = match b {
                        Operand::Const(c) => c,
                        Operand::Value(_) => &[],
                    };
                    if odt == DType::F32 {
                        let b = bv.map(|v| &*mem.val::<f32>(plan, v)).ok_or(cst);
                        k::binary(
                            *op,
                            mem.val::<f32>(plan, in0),
                            b,
                            map,
                            mem.val(plan, out),
                            n,
                        )
                    } else {
                        let b = bv.map(|v| &*mem.val::<f64>(plan, v)).ok_or(cst);
                        k::binary(
                            *op,
                            mem.val::<f64>(plan, in0),
                            b,
                            map,
                            mem.val(plan, out),
                            n,
                        )
                    }
                }
                Kernel::Unary(act) => {
                    if odt == DType::F32 {
                        k::unary(*act, mem.val::<f32>(plan, in0), mem.val(plan, out))
                    } else {
                        k::unary(*act, mem.val::<f64>(plan, in0), mem.val(plan, out))
                    }
                }
                Kernel::Softmax {
                    outer,
                    len,
                    inner,
                    log,
                } => {
                    let s = step.scratch.unwrap_or(0);
                    if odt == DType::F32 {
                        let sc = mem.scratch::<f32>(plan, s, 2 * n);
                        k::softmax(
                            *outer,
                            *len,
                            *inner,
                            *log,
                            mem.val::<f32>(plan, in0),
                            mem.val(plan, out),
                            sc,
                            n,
                        )
                    } else {
                        let sc = mem.scratch::<f64>(plan, s, 2 * n);
                        k::softmax(
                            *outer,
                            *len,
                            *inner,
                            *log,
                            mem.val::<f64>(plan, in0),
                            mem.val(plan, out),
                            sc,
                            n,
                        )
                    }
                }
                Kernel::LayerNorm {
                    outer,
                    len,
                    weight,
                    bias,
                    eps,
                } => {
                    let s = step.scratch.unwrap_or(0);
                    let (wt, bs) = (weight.as_deref(), bias.as_deref());
                    if odt == DType::F32 {
                        let sc = mem.scratch::<f32>(plan, s, 2 * n);
                        k::layer_norm(
                            *outer,
                            *len,
                            wt,
                            bs,
                            *eps,
                            mem.val::<f32>(plan, in0),
                            mem.val(plan, out),
                            sc,
                            n,
                        )
                    } else {
                        let sc = mem.scratch::<f64>(plan, s, 2 * n);
                        k::layer_norm(
                            *outer,
                            *len,
                            wt,
                            bs,
                            *eps,
                            mem.val::<f64>(plan, in0),
                            mem.val(plan, out),
                            sc,
                            n,
                        )
                    }
                }
                Kernel::ChannelAffine {
                    channels,
                    inner,
                    scale,
                    shift,
                } => {
                    if odt == DType::F32 {
                        k::channel_affine(
                            *channels,
                            *inner,
                            scale,
                            shift,
                            mem.val::<f32>(plan, in0),
                            mem.val(plan, out),
                            n,
                        )
                    } else {
                        k::channel_affine(
                            *channels,
                            *inner,
                            scale,
                            shift,
                            mem.val::<f64>(plan, in0),
                            mem.val(plan, out),
                            n,
                        )
                    }
                }
                Kernel::Concat { outer, blocks } => match odt {
                    DType::F32 => concat_typed::<f32>(
                        plan,
                        &mem,
                        step.inputs.as_slice(),
                        *outer,
                        blocks,
                        out,
                        n,
                    ),
                    DType::F64 => concat_typed::<f64>(
                        plan,
                        &mem,
                        step.inputs.as_slice(),
                        *outer,
                        blocks,
                        out,
                        n,
                    ),
                    _ => concat_typed::<i64>(
                        plan,
                        &mem,
                        step.inputs.as_slice(),
                        *outer,
                        blocks,
                        out,
                        n,
                    ),
                },
                Kernel::Cast => match (idt, odt) {
                    (DType::F32, DType::F64) => {
                        cast(mem.val::<f32>(plan, in0), mem.val::<f64>(plan, out), |v| {
                            v as f64
                        })
                    }
                    (DType::F64, DType::F32) => {
                        cast(mem.val::<f64>(plan, in0), mem.val::<f32>(plan, out), |v| {
                            v as f32
                        })
                    }
                    (DType::I64, DType::F32) => {
                        cast(mem.val::<i64>(plan, in0), mem.val::<f32>(plan, out), |v| {
                            v as f32
                        })
                    }
                    (DType::I64, DType::F64) => {
                        cast(mem.val::<i64>(plan, in0), mem.val::<f64>(plan, out), |v| {
                            v as f64
                        })
                    }
                    _ => {}
                },
                Kernel::Scaler { offset, scale } => {
                    k::scaler(offset, scale, mem.val(plan, in0), mem.val(plan, out), n)
                }
                Kernel::Imputer { values, missing } => {
                    k::imputer(values, *missing, mem.val(plan, in0), mem.val(plan, out), n)
                }
                Kernel::Normalizer(norm) => {
                    let sc = mem.scratch::<f64>(plan, step.scratch.unwrap_or(0), n);
                    let width = plan.values[in0].width;
                    k::normalizer(*norm, width, mem.val(plan, in0), mem.val(plan, out), sc, n)
                }
                Kernel::BinaryToProba => {
                    k::binary_to_proba(mem.val(plan, in0), mem.val(plan, out), n)
                }
                Kernel::ArgMax { classes } => {
                    if idt == DType::F32 {
                        k::argmax(*classes, mem.val::<f32>(plan, in0), mem.val(plan, out), n)
                    } else {
                        k::argmax(*classes, mem.val::<f64>(plan, in0), mem.val(plan, out), n)
                    }
                }
                Kernel::Threshold(t) => {
                    if idt == DType::F32 {
                        k::threshold(*t, mem.val::<f32>(plan, in0), mem.val(plan, out), n)
                    } else {
                        k::threshold(*t, mem.val::<f64>(plan, in0), mem.val(plan, out), n)
                    }
                }
                Kernel::Tree {
                    ens,
                    slot,
                    from_input,
                } => {
                    let t = ens.n_targets();
                    let y: &mut [f64] = mem.val(plan, out);
                    let direct = t == 1 || n == 1;
                    let tmp: &mut [f64] = if direct {
                        &mut *y
                    } else {
                        &mut w.tree_tmp[..n * t]
                    };
                    let scratch = &mut w.trees[*slot];
                    if *from_input {
                        match *src {
                            Source::Batch(b, row0) => {
                                ens.predict_batch(b, row0..row0 + n, tmp, scratch)
                            }
                            Source::RowF64(r) => ens.predict_row_f64(r, tmp),
                            Source::RowF32(r) => ens.predict_row_f32(r, tmp),
                        }
                    } else {
                        let f = plan.values[in0].width;
                        if n == 1 {
                            if idt == DType::F32 {
                                ens.predict_row_f32(mem.val::<f32>(plan, in0), tmp)
                            } else {
                                ens.predict_row_f64(mem.val::<f64>(plan, in0), tmp)
                            }
                        } else {
                            let cols: Vec<Column<'_>> = (0..f)
                                .map(|j| Column {
                                    data: if idt == DType::F32 {
                                        ColumnData::F32(&*mem.val::<f32>(plan, in0))
                                    } else {
                                        ColumnData::F64(&*mem.val::<f64>(plan, in0))
                                    },
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
                    if !direct {
                        // Row-major [n, t] → feature-major [t, n].
                        for r in 0..n {
                            for c in 0..t {
                                y[c * n + r] = w.tree_tmp[r * t + c];
                            }
                        }
                    }
                }
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

/// # Safety
/// `T` is the dtype of every input and of `out`.
#[allow(clippy::too_many_arguments)]
unsafe fn concat_typed<T: Copy>(
    plan: &Plan,
    mem: &Mem,
    inputs: &[ValueId],
    outer: usize,
    blocks: &[usize],
    out: ValueId,
    n: usize,
) {
    let y: &mut [T] = unsafe { mem.val(plan, out) };
    let mut pos = 0;
    for o in 0..outer {
        for (&v, &b) in inputs.iter().zip(blocks) {
            // SAFETY: inputs are disjoint from the output (both live at this step).
            let x: &[T] = unsafe { mem.val(plan, v) };
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
    let mem = Mem {
        base: w.arena.as_mut_ptr().cast::<u8>(),
        n,
        len_bytes: w.arena.len() * 8,
    };
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
    // SAFETY: the output dtype matches the OutSlice variant (both from the plan); no other view
    // of the arena is live.
    unsafe {
        match dst {
            OutSlice::F32(d) => copy(mem.val::<f32>(plan, v), d, width, n, row_off),
            OutSlice::F64(d) => copy(mem.val::<f64>(plan, v), d, width, n, row_off),
            OutSlice::I64(d) => copy(mem.val::<i64>(plan, v), d, width, n, row_off),
        }
    }
}
