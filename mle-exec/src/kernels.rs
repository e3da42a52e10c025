//! Kernels over feature-major chunks: a value of width `w` for `n` rows is `w` rows of `n`
//! contiguous elements (element `(r, j)` at `j·n + r`). Inner loops run over rows, contiguous
//! and branch-light, so they vectorize; no kernel allocates.

use crate::plan::{Act, BinOp, Dense, Norm};
use crate::real::Real;

/// Below this many rows the dense kernel uses its own dot-product loops (no packing, no
/// allocation) instead of the blocked GEMM.
const GEMM_MIN_ROWS: usize = 8;
/// Dense layers with at most this many outputs (linear models, output layers) skip the blocked
/// GEMM, whose micro-kernel tiles would be mostly padding.
const AXPY_MAX_OUTPUTS: usize = 4;

/// Applies `act` (after adding `bias`) to every element of `row`.
#[inline]
pub(crate) fn epilogue<T: Real>(row: &mut [T], bias: T, act: Act) {
    #[inline(always)]
    fn each<T: Real>(row: &mut [T], f: impl Fn(T) -> T) {
        for v in row.iter_mut() {
            *v = f(*v);
        }
    }
    let half = T::from_f64(0.5);
    match act {
        Act::None => {
            if bias != T::ZERO {
                each(row, |x| x + bias)
            }
        }
        Act::Relu => each(row, |x| {
            let x = x + bias;
            if x < T::ZERO {
                T::ZERO
            } else {
                x
            }
        }),
        Act::LeakyRelu(alpha) => {
            let a = T::from_f64(alpha);
            each(row, |x| {
                let x = x + bias;
                if x >= T::ZERO {
                    x
                } else {
                    a * x
                }
            })
        }
        Act::Sigmoid => each(row, |x| sigmoid(x + bias)),
        Act::Tanh => each(row, |x| (x + bias).tanh()),
        Act::GeluErf => {
            let r = T::from_f64(std::f64::consts::FRAC_1_SQRT_2);
            each(row, |x| {
                let x = x + bias;
                half * x * (T::ONE + (x * r).erf())
            })
        }
        Act::GeluTanh => {
            let c = T::from_f64((2.0 / std::f64::consts::PI).sqrt());
            let k = T::from_f64(0.044715);
            each(row, |x| {
                let x = x + bias;
                half * x * (T::ONE + (c * (x + k * x * x * x)).tanh())
            })
        }
        Act::Silu => each(row, |x| {
            let x = x + bias;
            x * sigmoid(x)
        }),
        Act::Clip(lo, hi) => {
            let (lo, hi) = (T::from_f64(lo), T::from_f64(hi));
            each(row, |x| {
                let x = x + bias;
                if x < lo {
                    lo
                } else if x > hi {
                    hi
                } else {
                    x
                }
            })
        }
        Act::Exp => each(row, |x| (x + bias).exp()),
        Act::Log1p => each(row, |x| T::from_f64((x + bias).to_f64().ln_1p())),
        Act::Expm1 => each(row, |x| T::from_f64((x + bias).to_f64().exp_m1())),
    }
}

#[inline(always)]
fn sigmoid<T: Real>(x: T) -> T {
    T::ONE / (T::ONE + (-x).exp())
}

/// Dot product with 8 independent accumulators (vectorizes; fixed summation order).
#[inline]
fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    let mut acc = [T::ZERO; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut tail = T::ZERO;
    for (x, y) in ra.iter().zip(rb) {
        tail += *x * *y;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// `Y[m, n] = W[m, k] · X[k, n] (+ bias, activation)`, per group.
pub(crate) fn dense<T: Real>(d: &Dense<T>, x: &[T], y: &mut [T], n: usize) {
    let (m, k) = (d.m, d.k);
    for g in 0..d.groups {
        let xg = &x[g * k * n..(g + 1) * k * n];
        let yg = &mut y[g * m * n..(g + 1) * m * n];
        if k == 0 {
            yg.fill(T::ZERO);
        } else if n == 1 {
            for (yi, wrow) in yg.iter_mut().zip(d.w.chunks_exact(k)) {
                *yi = dot(wrow, xg);
            }
        } else if n < GEMM_MIN_ROWS || m <= AXPY_MAX_OUTPUTS {
            // Few rows or few outputs: each output row accumulates `w[mi, ki] · X[ki, :]`
            // over contiguous input rows (vectorized across rows, no packing).
            for (mi, wrow) in d.w.chunks_exact(k).enumerate() {
                let yr = &mut yg[mi * n..(mi + 1) * n];
                yr.fill(T::ZERO);
                for (ki, &w) in wrow.iter().enumerate() {
                    for (o, &v) in yr.iter_mut().zip(&xg[ki * n..(ki + 1) * n]) {
                        *o += w * v;
                    }
                }
            }
        } else {
            // SAFETY: W is m×k row-major (len m·k), X is k×n row-major (len k·n), Y is m×n
            // row-major (len m·n); the slices above have exactly these lengths.
            unsafe {
                T::gemm(
                    m,
                    k,
                    n,
                    d.w.as_ptr(),
                    k as isize,
                    1,
                    xg.as_ptr(),
                    n as isize,
                    1,
                    yg.as_mut_ptr(),
                    n as isize,
                    1,
                );
            }
        }
        if d.bias.is_some() || d.act != Act::None {
            for mi in 0..m {
                let b = d.bias.as_ref().map_or(T::ZERO, |b| b[mi]);
                epilogue(&mut yg[mi * n..(mi + 1) * n], b, d.act);
            }
        }
    }
}

/// Elementwise `y = a op b` with a precomputed broadcast map; `b` is a runtime value
/// (`Ok`) or a constant (`Err`).
pub(crate) fn binary<T: Real>(
    op: BinOp,
    a: &[T],
    b: Result<&[T], &[f64]>,
    map: &[(u32, u32)],
    y: &mut [T],
    n: usize,
) {
    #[inline(always)]
    fn rows<T: Real>(y: &mut [T], a: &[T], b: &[T], f: impl Fn(T, T) -> T) {
        for ((o, &x), &z) in y.iter_mut().zip(a).zip(b) {
            *o = f(x, z);
        }
    }
    #[inline(always)]
    fn scalar<T: Real>(y: &mut [T], a: &[T], b: T, f: impl Fn(T, T) -> T) {
        for (o, &x) in y.iter_mut().zip(a) {
            *o = f(x, b);
        }
    }
    for (j, &(ja, jb)) in map.iter().enumerate() {
        let (ja, jb) = (ja as usize, jb as usize);
        let yr = &mut y[j * n..(j + 1) * n];
        let ar = &a[ja * n..(ja + 1) * n];
        match b {
            Ok(bv) => {
                let br = &bv[jb * n..(jb + 1) * n];
                match op {
                    BinOp::Add => rows(yr, ar, br, |x, z| x + z),
                    BinOp::Sub => rows(yr, ar, br, |x, z| x - z),
                    BinOp::Mul => rows(yr, ar, br, |x, z| x * z),
                    BinOp::Div => rows(yr, ar, br, |x, z| x / z),
                }
            }
            Err(c) => {
                let z = T::from_f64(c[jb]);
                match op {
                    BinOp::Add => scalar(yr, ar, z, |x, z| x + z),
                    BinOp::Sub => scalar(yr, ar, z, |x, z| x - z),
                    BinOp::Mul => scalar(yr, ar, z, |x, z| x * z),
                    BinOp::Div => scalar(yr, ar, z, |x, z| x / z),
                }
            }
        }
    }
}

/// Elementwise activation.
pub(crate) fn unary<T: Real>(act: Act, x: &[T], y: &mut [T]) {
    y.copy_from_slice(x);
    epilogue(y, T::ZERO, act);
}

/// Softmax / log-softmax along an axis of `len` elements; `scratch` holds `2n` elements.
#[allow(clippy::too_many_arguments)]
pub(crate) fn softmax<T: Real>(
    outer: usize,
    len: usize,
    inner: usize,
    log: bool,
    x: &[T],
    y: &mut [T],
    scratch: &mut [T],
    n: usize,
) {
    if len == 0 {
        return;
    }
    let (mx, sum) = scratch[..2 * n].split_at_mut(n);
    for o in 0..outer {
        for i in 0..inner {
            let at = |a: usize| ((o * len + a) * inner + i) * n;
            mx.copy_from_slice(&x[at(0)..at(0) + n]);
            for a in 1..len {
                for (m, &v) in mx.iter_mut().zip(&x[at(a)..at(a) + n]) {
                    if v > *m {
                        *m = v;
                    }
                }
            }
            sum.fill(T::ZERO);
            for a in 0..len {
                let (xs, ys) = (&x[at(a)..at(a) + n], &mut y[at(a)..at(a) + n]);
                for (((o, &v), &m), s) in ys.iter_mut().zip(xs).zip(mx.iter()).zip(sum.iter_mut()) {
                    let e = (v - m).exp();
                    *s += e;
                    *o = e;
                }
            }
            if log {
                for s in sum.iter_mut() {
                    *s = s.ln();
                }
                for a in 0..len {
                    let (xs, ys) = (&x[at(a)..at(a) + n], &mut y[at(a)..at(a) + n]);
                    for (((o, &v), &m), &s) in ys.iter_mut().zip(xs).zip(mx.iter()).zip(sum.iter())
                    {
                        *o = v - m - s;
                    }
                }
            } else {
                for a in 0..len {
                    for (o, &s) in y[at(a)..at(a) + n].iter_mut().zip(sum.iter()) {
                        *o = *o / s;
                    }
                }
            }
        }
    }
}

/// Layer norm over the last axis (`len` elements, biased variance); `scratch` holds `2n`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn layer_norm<T: Real>(
    outer: usize,
    len: usize,
    weight: Option<&[f64]>,
    bias: Option<&[f64]>,
    eps: f64,
    x: &[T],
    y: &mut [T],
    scratch: &mut [T],
    n: usize,
) {
    if len == 0 {
        return;
    }
    let (mean, rstd) = scratch[..2 * n].split_at_mut(n);
    let inv_len = T::from_f64(1.0 / len as f64);
    let eps = T::from_f64(eps);
    for o in 0..outer {
        let at = |a: usize| (o * len + a) * n;
        mean.fill(T::ZERO);
        for a in 0..len {
            for (m, &v) in mean.iter_mut().zip(&x[at(a)..at(a) + n]) {
                *m += v;
            }
        }
        for m in mean.iter_mut() {
            *m = *m * inv_len;
        }
        rstd.fill(T::ZERO);
        for a in 0..len {
            for ((s, &v), &m) in rstd.iter_mut().zip(&x[at(a)..at(a) + n]).zip(mean.iter()) {
                let d = v - m;
                *s += d * d;
            }
        }
        for s in rstd.iter_mut() {
            *s = T::ONE / (*s * inv_len + eps).sqrt();
        }
        for a in 0..len {
            let w = T::from_f64(weight.map_or(1.0, |w| w[a]));
            let b = T::from_f64(bias.map_or(0.0, |b| b[a]));
            let (xs, ys) = (&x[at(a)..at(a) + n], &mut y[at(a)..at(a) + n]);
            for (((o, &v), &m), &s) in ys.iter_mut().zip(xs).zip(mean.iter()).zip(rstd.iter()) {
                *o = (v - m) * s * w + b;
            }
        }
    }
}

/// `y = x·scale[c] + shift[c]` per channel.
#[allow(clippy::too_many_arguments)]
pub(crate) fn channel_affine<T: Real>(
    channels: usize,
    inner: usize,
    scale: &[f64],
    shift: &[f64],
    x: &[T],
    y: &mut [T],
    n: usize,
) {
    for c in 0..channels {
        let (s, t) = (T::from_f64(scale[c]), T::from_f64(shift[c]));
        let r = c * inner * n..(c + 1) * inner * n;
        for (o, &v) in y[r.clone()].iter_mut().zip(&x[r]) {
            *o = v * s + t;
        }
    }
}

/// `y = (x − offset[f])·scale[f]`.
pub(crate) fn scaler(
    offset: &[f64],
    scale: &[f64],
    divide: bool,
    bias: Option<&[f64]>,
    x: &[f64],
    y: &mut [f64],
    n: usize,
) {
    for (f, (&o, &s)) in offset.iter().zip(scale).enumerate() {
        let r = f * n..(f + 1) * n;
        let (ys, xs) = (&mut y[r.clone()], &x[r]);
        // One loop per mode, so each is a plain vectorizable pass.
        match (divide, bias.and_then(|b| b.get(f))) {
            (false, None) => ys.iter_mut().zip(xs).for_each(|(d, &v)| *d = (v - o) * s),
            (true, None) => ys.iter_mut().zip(xs).for_each(|(d, &v)| *d = (v - o) / s),
            (false, Some(&b)) => ys
                .iter_mut()
                .zip(xs)
                .for_each(|(d, &v)| *d = (v - o) * s + b),
            (true, Some(&b)) => ys
                .iter_mut()
                .zip(xs)
                .for_each(|(d, &v)| *d = (v - o) / s + b),
        }
    }
}

/// A NaN entry, or one equal to `missing`, becomes `values[f]`.
pub(crate) fn imputer(values: &[f64], missing: f64, x: &[f64], y: &mut [f64], n: usize) {
    for (f, &fill) in values.iter().enumerate() {
        let r = f * n..(f + 1) * n;
        for (d, &v) in y[r.clone()].iter_mut().zip(&x[r]) {
            *d = if v.is_nan() || v == missing { fill } else { v };
        }
    }
}

/// Per-row l1 / l2 / max normalization; a zero row stays zero. `norms` holds `n`.
pub(crate) fn normalizer(
    norm: Norm,
    width: usize,
    x: &[f64],
    y: &mut [f64],
    norms: &mut [f64],
    n: usize,
) {
    let norms = &mut norms[..n];
    norms.fill(0.0);
    for f in 0..width {
        let xs = &x[f * n..(f + 1) * n];
        match norm {
            Norm::L1 => norms.iter_mut().zip(xs).for_each(|(s, &v)| *s += v.abs()),
            Norm::L2 => norms.iter_mut().zip(xs).for_each(|(s, &v)| *s += v * v),
            Norm::Max => norms.iter_mut().zip(xs).for_each(|(s, &v)| {
                let a = v.abs();
                // NaN propagates into the norm.
                if a > *s || a.is_nan() {
                    *s = a
                }
            }),
        }
    }
    if norm == Norm::L2 {
        norms.iter_mut().for_each(|s| *s = s.sqrt());
    }
    norms
        .iter_mut()
        .for_each(|s| *s = if *s == 0.0 { 1.0 } else { *s });
    for f in 0..width {
        let r = f * n..(f + 1) * n;
        for ((d, &v), &s) in y[r.clone()].iter_mut().zip(&x[r]).zip(norms.iter()) {
            *d = v / s;
        }
    }
}

/// `[1 − p, p]`.
pub(crate) fn binary_to_proba(x: &[f64], y: &mut [f64], n: usize) {
    let (y0, y1) = y[..2 * n].split_at_mut(n);
    for ((a, b), &p) in y0.iter_mut().zip(y1.iter_mut()).zip(&x[..n]) {
        *a = 1.0 - p;
        *b = p;
    }
}

/// Index of the first maximum per row; NaN never wins (all NaN gives 0).
pub(crate) fn argmax<T: Real>(classes: usize, x: &[T], y: &mut [i64], n: usize) {
    for (r, out) in y[..n].iter_mut().enumerate() {
        let mut best = x[r];
        let mut idx = 0usize;
        for c in 1..classes {
            let v = x[c * n + r];
            if v > best || (best.is_nan() && !v.is_nan()) {
                best = v;
                idx = c;
            }
        }
        *out = idx as i64;
    }
}

/// `x > threshold ? 1 : 0` (NaN gives 0).
pub(crate) fn threshold<T: Real>(t: f64, x: &[T], y: &mut [i64], n: usize) {
    for (o, &v) in y[..n].iter_mut().zip(&x[..n]) {
        *o = (v.to_f64() > t) as i64;
    }
}

/// Outputs per panel of the batch (GEMM) layout.
const MR: usize = 6;

/// f32 dense weights pre-packed at compile time for the AVX2+FMA kernels (built only when the
/// CPU has both, so holding one means the fast path may run).
///
/// - `gemv`: the single-row layout. Output panels of 8 are grouped in blocks of 8, 4, 2, 1
///   panels (greedy, the same split the kernel walks); a block of `p` panels is stored
///   `[k][8p]`, so one row of input streams through contiguous memory.
/// - `gemm`: the batch layout, `[⌈m/6⌉][k][6]` (six outputs per panel, zero-padded).
/// - `bias`: zero-padded to a multiple of 24 (whole panels of either layout).
///
/// Every output element is `bias + Σₖ w·x` accumulated in `k` order with fused multiply-adds,
/// in both layouts, so a row gives bit-identical results alone or in any batch.
#[derive(Debug, Clone)]
pub(crate) struct Packed {
    gemv: Vec<f32>,
    gemm: Vec<f32>,
    bias: Vec<f32>,
}

/// Whether the AVX2+FMA kernels can run on this CPU (checked once per compiled layer).
pub(crate) fn simd_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Panel blocks of the single-row kernel: `(first panel, panels)` covering `np` panels.
fn gemv_blocks(np: usize) -> impl Iterator<Item = (usize, usize)> {
    let mut pi = 0;
    std::iter::from_fn(move || {
        let left = np - pi;
        let p = match left {
            0 => return None,
            1 => 1,
            2..=3 => 2,
            4..=7 => 4,
            _ => 8,
        };
        pi += p;
        Some((pi - p, p))
    })
}

impl Packed {
    /// Packs `w: [m, k]` row-major and the optional bias; `None` when the CPU lacks AVX2/FMA
    /// or the layer is empty.
    pub(crate) fn new(w: &[f32], bias: Option<&[f32]>, m: usize, k: usize) -> Option<Packed> {
        if !simd_available() || m == 0 || k == 0 || w.len() != m * k {
            return None;
        }
        let np = m.div_ceil(8);
        let at = |r: usize, c: usize| if r < m { w[r * k + c] } else { 0.0 };
        let mut gemv = Vec::with_capacity(np * 8 * k);
        for (p0, p) in gemv_blocks(np) {
            for c in 0..k {
                for r in p0 * 8..(p0 + p) * 8 {
                    gemv.push(at(r, c));
                }
            }
        }
        let mut gemm = Vec::with_capacity(m.div_ceil(MR) * MR * k);
        for r0 in (0..m).step_by(MR) {
            for c in 0..k {
                for r in r0..r0 + MR {
                    gemm.push(at(r, c));
                }
            }
        }
        let mut b = vec![0.0f32; m.div_ceil(24) * 24];
        if let Some(bias) = bias {
            b[..m].copy_from_slice(&bias[..m]);
        }
        Some(Packed {
            gemv,
            gemm,
            bias: b,
        })
    }
}

/// The f32 dense layer: the AVX2+FMA kernels when the layer was packed, else [`dense`].
pub(crate) fn dense_f32(d: &Dense<f32>, x: &[f32], y: &mut [f32], n: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(p) = &d.packed {
        let (m, k) = (d.m, d.k);
        for g in 0..d.groups {
            let xg = &x[g * k * n..(g + 1) * k * n];
            let yg = &mut y[g * m * n..(g + 1) * m * n];
            // SAFETY: `Packed` exists only when AVX2 and FMA were detected; the slices hold
            // exactly k·n inputs and m·n outputs, and the packed arrays match (m, k).
            unsafe {
                if n == 1 {
                    avx2::gemv(p, m, k, xg, yg);
                } else {
                    avx2::gemm(p, m, k, xg, yg, n, d.act == Act::Relu);
                }
            }
            if d.act != Act::None && !(n > 1 && d.act == Act::Relu) {
                epilogue(yg, 0.0, d.act);
            }
        }
        return;
    }
    dense(d, x, y, n)
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{gemv_blocks, Packed, MR};

    /// Rows (batch columns) per GEMM tile: two vectors of 8. With [`MR`] outputs, the tile's
    /// 12 accumulators, 2 input vectors and a broadcast fit the 16 AVX registers.
    const NR: usize = 16;
    /// Inputs per k-block of the GEMM (the packed input block lives on the stack).
    const KC: usize = 256;

    /// `y[m] = W·x + bias` for one row (no activation).
    ///
    /// # Safety
    /// AVX2 and FMA available; `p` packed for `(m, k)`; `x.len() ≥ k`, `y.len() ≥ m`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn gemv(p: &Packed, m: usize, k: usize, x: &[f32], y: &mut [f32]) {
        assert!(x.len() >= k && y.len() >= m && p.gemv.len() >= m.div_ceil(8) * 8 * k);
        let mut off = 0;
        for (p0, np) in gemv_blocks(m.div_ceil(8)) {
            // SAFETY: block `p0` holds k·8·np packed weights from `off`, bias holds 8·(p0+np).
            unsafe {
                let w = p.gemv.as_ptr().add(off);
                let b = p.bias.as_ptr().add(p0 * 8);
                match np {
                    8 => block::<8>(w, b, k, x, y, p0 * 8, m),
                    4 => block::<4>(w, b, k, x, y, p0 * 8, m),
                    2 => block::<2>(w, b, k, x, y, p0 * 8, m),
                    _ => block::<1>(w, b, k, x, y, p0 * 8, m),
                }
            }
            off += np * 8 * k;
        }
    }

    #[inline(always)]
    unsafe fn block<const P: usize>(
        w: *const f32,
        b: *const f32,
        k: usize,
        x: &[f32],
        y: &mut [f32],
        o0: usize,
        m: usize,
    ) {
        // SAFETY (whole body): the caller's bounds; `w` holds k·8P values, `b` 8P.
        unsafe {
            let mut acc = [_mm256_setzero_ps(); P];
            for (j, a) in acc.iter_mut().enumerate() {
                *a = _mm256_loadu_ps(b.add(8 * j));
            }
            let mut wp = w;
            for &xv in &x[..k] {
                let xb = _mm256_set1_ps(xv);
                for (j, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(_mm256_loadu_ps(wp.add(8 * j)), xb, *a);
                }
                wp = wp.add(8 * P);
            }
            for (j, a) in acc.iter().enumerate() {
                let o = o0 + 8 * j;
                if o + 8 <= m {
                    _mm256_storeu_ps(y.as_mut_ptr().add(o), *a);
                } else if o < m {
                    let mut t = [0f32; 8];
                    _mm256_storeu_ps(t.as_mut_ptr(), *a);
                    y[o..m].copy_from_slice(&t[..m - o]);
                }
            }
        }
    }

    /// `Y[m, n] = W·X[k, n] + bias` (feature-major), ReLU fused when `relu`.
    ///
    /// # Safety
    /// AVX2 and FMA available; `p` packed for `(m, k)`; `x.len() ≥ k·n`, `y.len() ≥ m·n`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn gemm(
        p: &Packed,
        m: usize,
        k: usize,
        x: &[f32],
        y: &mut [f32],
        n: usize,
        relu: bool,
    ) {
        assert!(x.len() >= k * n && y.len() >= m * n && p.gemm.len() >= m.div_ceil(MR) * MR * k);
        let mut xp = [0f32; KC * NR];
        let mut r0 = 0;
        while r0 < n {
            let nr = NR.min(n - r0);
            let mut k0 = 0;
            while k0 < k {
                let kc = KC.min(k - k0);
                for kk in 0..kc {
                    let src = &x[(k0 + kk) * n + r0..][..nr];
                    let dst = &mut xp[kk * NR..(kk + 1) * NR];
                    dst[..nr].copy_from_slice(src);
                    dst[nr..].fill(0.0);
                }
                let (first, last) = (k0 == 0, k0 + kc == k);
                let mut m0 = 0;
                while m0 < m {
                    // SAFETY: panel m0/MR holds k·MR values; rows k0..k0+kc of it are read.
                    // `bias` holds ≥ m0 + MR values (padded to 24); `y` rows m0..m0+mr.
                    unsafe {
                        let w = p.gemm.as_ptr().add(m0 * k + k0 * MR);
                        tile(
                            w,
                            kc,
                            xp.as_ptr(),
                            p.bias.as_ptr().add(m0),
                            y,
                            n,
                            r0,
                            nr,
                            m0,
                            (m - m0).min(MR),
                            first,
                            last && relu,
                        );
                    }
                    m0 += MR;
                }
                k0 += kc;
            }
            r0 += nr;
        }
    }

    /// One MR×NR tile: outputs `m0..m0+mr` for rows `r0..r0+nr`, over one k-block.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    unsafe fn tile(
        w: *const f32,
        kc: usize,
        xp: *const f32,
        bias: *const f32,
        y: &mut [f32],
        n: usize,
        r0: usize,
        nr: usize,
        m0: usize,
        mr: usize,
        first: bool,
        relu: bool,
    ) {
        // SAFETY (whole body): as in `gemm`; `xp` holds kc·NR values.
        unsafe {
            let mut c = [[_mm256_setzero_ps(); 2]; MR];
            if first {
                for (i, ci) in c.iter_mut().enumerate() {
                    *ci = [_mm256_set1_ps(*bias.add(i)); 2];
                }
            } else {
                // Constant trip counts everywhere `c` is indexed, so it stays in registers.
                for (i, ci) in c.iter_mut().enumerate() {
                    if i >= mr {
                        continue;
                    }
                    let row = &y[(m0 + i) * n + r0..][..nr];
                    let mut t = [0f32; NR];
                    t[..nr].copy_from_slice(row);
                    for (v, cv) in ci.iter_mut().enumerate() {
                        *cv = _mm256_loadu_ps(t.as_ptr().add(8 * v));
                    }
                }
            }
            let (mut wp, mut xq) = (w, xp);
            for _ in 0..kc {
                let x0 = _mm256_loadu_ps(xq);
                let x1 = _mm256_loadu_ps(xq.add(8));
                for (i, ci) in c.iter_mut().enumerate() {
                    let wb = _mm256_broadcast_ss(&*wp.add(i));
                    ci[0] = _mm256_fmadd_ps(wb, x0, ci[0]);
                    ci[1] = _mm256_fmadd_ps(wb, x1, ci[1]);
                }
                wp = wp.add(MR);
                xq = xq.add(NR);
            }
            if relu {
                // max(0, v) keeps a NaN `v` (the second operand wins on NaN).
                let z = _mm256_setzero_ps();
                for ci in c.iter_mut() {
                    for cv in ci.iter_mut() {
                        *cv = _mm256_max_ps(z, *cv);
                    }
                }
            }
            for (i, ci) in c.iter().enumerate() {
                if i >= mr {
                    continue;
                }
                let row = &mut y[(m0 + i) * n + r0..][..nr];
                if nr == NR {
                    for (v, cv) in ci.iter().enumerate() {
                        _mm256_storeu_ps(row.as_mut_ptr().add(8 * v), *cv);
                    }
                } else {
                    let mut t = [0f32; NR];
                    for (v, cv) in ci.iter().enumerate() {
                        _mm256_storeu_ps(t.as_mut_ptr().add(8 * v), *cv);
                    }
                    row.copy_from_slice(&t[..nr]);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Pipeline ops: column selection and the encoders (feature-major, `n` rows per column).

/// Output column `j` is input column `columns[j]`.
pub(crate) fn gather<T: Copy>(columns: &[usize], x: &[T], y: &mut [T], n: usize) {
    for (j, &c) in columns.iter().enumerate() {
        y[j * n..(j + 1) * n].copy_from_slice(&x[c * n..(c + 1) * n]);
    }
}

/// The position of a code: `Ok(Some(c))` for an integral `0 ≤ x < len`, `Ok(None)` for NaN
/// (missing), `Err(())` for any other value (unknown).
#[inline(always)]
fn code(x: f64, len: usize) -> Result<Option<usize>, ()> {
    if x.is_nan() {
        Ok(None)
    } else if x >= 0.0 && x < len as f64 && x.fract() == 0.0 {
        Ok(Some(x as usize))
    } else {
        Err(())
    }
}

/// `OneHot` of input column `feature` into `y` (`slots.len()` codes; -1: no column).
pub(crate) fn one_hot(
    feature: usize,
    slots: &[i32],
    missing: i32,
    unknown: i32,
    x: &[f64],
    y: &mut [f64],
    n: usize,
) {
    y.fill(0.0);
    let col = &x[feature * n..(feature + 1) * n];
    for (r, &v) in col.iter().enumerate() {
        let slot = match code(v, slots.len()) {
            Ok(Some(c)) => slots[c],
            Ok(None) => missing,
            Err(()) => unknown,
        };
        if let Ok(s) = usize::try_from(slot) {
            y[s * n + r] = 1.0;
        }
    }
}

/// `CategoryMap` of input column `feature` through `table` (`[len, width]`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn category_map(
    feature: usize,
    width: usize,
    table: &[f64],
    missing: &[f64],
    unknown: &[f64],
    x: &[f64],
    y: &mut [f64],
    n: usize,
) {
    let len = table.len().checked_div(width).unwrap_or(0);
    let col = &x[feature * n..(feature + 1) * n];
    for (r, &v) in col.iter().enumerate() {
        let row = match code(v, len) {
            Ok(Some(c)) => &table[c * width..(c + 1) * width],
            Ok(None) => missing,
            Err(()) => unknown,
        };
        for (j, &t) in row.iter().enumerate() {
            y[j * n + r] = t;
        }
    }
}

/// 1 where input column `columns[j]` is NaN or equal to `missing`, else 0.
pub(crate) fn missing_indicator(
    columns: &[usize],
    missing: f64,
    x: &[f64],
    y: &mut [f64],
    n: usize,
) {
    for (j, &c) in columns.iter().enumerate() {
        for (d, &v) in y[j * n..(j + 1) * n].iter_mut().zip(&x[c * n..(c + 1) * n]) {
            *d = if v.is_nan() || v == missing { 1.0 } else { 0.0 };
        }
    }
}

/// Per feature: the number of its (ascending) edges at or below `x`; NaN stays NaN.
pub(crate) fn bucketize(edges: &[f64], offsets: &[usize], x: &[f64], y: &mut [f64], n: usize) {
    for (f, w) in offsets.windows(2).enumerate() {
        let e = &edges[w[0]..w[1]];
        let r = f * n..(f + 1) * n;
        for (d, &v) in y[r.clone()].iter_mut().zip(&x[r]) {
            *d = if v.is_nan() {
                v
            } else {
                e.partition_point(|&t| t <= v) as f64
            };
        }
    }
}

/// Output column `k`: the product, left to right, of the input columns of term `k`.
pub(crate) fn polynomial(terms: &[usize], offsets: &[usize], x: &[f64], y: &mut [f64], n: usize) {
    for (k, w) in offsets.windows(2).enumerate() {
        let out = &mut y[k * n..(k + 1) * n];
        out.fill(1.0);
        for &c in &terms[w[0]..w[1]] {
            for (d, &v) in out.iter_mut().zip(&x[c * n..(c + 1) * n]) {
                *d *= v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(seed: &mut u64) -> f32 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        (*seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }

    /// The packed AVX2 kernels against the portable reference (f64 sums of the same weights):
    /// within the f32 bound, for shapes exercising every panel block, partial tiles, k-blocks
    /// (k > 256), and activations; a row alone equals the same row inside any batch, bitwise.
    #[test]
    fn packed_kernels_match_the_reference_and_rows_match_batches() {
        if !simd_available() {
            eprintln!("no AVX2+FMA: the packed kernels are not used on this CPU");
            return;
        }
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for &(m, k, n) in &[
            (1, 1, 1),
            (2, 28, 3),
            (3, 5, 25),
            (9, 17, 24),
            (64, 28, 49),
            (70, 300, 30),
            (256, 256, 7),
            (130, 513, 2),
        ] {
            for act in [Act::None, Act::Relu, Act::Sigmoid] {
                let w: Vec<f32> = (0..m * k).map(|_| rng(&mut seed)).collect();
                let bias: Vec<f32> = (0..m).map(|_| rng(&mut seed)).collect();
                let mut x: Vec<f32> = (0..k * n).map(|_| rng(&mut seed)).collect();
                x[0] = f32::NAN; // NaN in row 0 only (feature 0 is x[0..n]).
                let packed = Packed::new(&w, Some(&bias), m, k).map(Box::new);
                assert!(packed.is_some());
                let d = Dense {
                    w: w.clone(),
                    bias: Some(bias.clone()),
                    m,
                    k,
                    groups: 1,
                    act,
                    packed,
                };
                let mut y = vec![0f32; m * n];
                dense_f32(&d, &x, &mut y, n);
                let mut y_ref = vec![0f32; m * n];
                let unpacked = Dense {
                    packed: None,
                    ..d.clone()
                };
                dense(&unpacked, &x, &mut y_ref, n);
                for i in 0..m {
                    for r in 0..n {
                        let (a, b) = (y[i * n + r], y_ref[i * n + r]);
                        let scale: f64 = 1.0
                            + (0..k)
                                .map(|c| (w[i * k + c] * x[c * n + r]).abs() as f64)
                                .sum::<f64>();
                        let ok = (a.is_nan() && b.is_nan())
                            || ((a - b).abs() as f64) <= 1e-6 * scale * (k as f64).sqrt() + 1e-7;
                        assert!(ok, "m={m} k={k} n={n} {act:?} out {i} row {r}: {a} vs {b}");
                    }
                }
                // Each row alone gives the same bits.
                for r in 0..n {
                    let xr: Vec<f32> = (0..k).map(|c| x[c * n + r]).collect();
                    let mut yr = vec![0f32; m];
                    dense_f32(&d, &xr, &mut yr, 1);
                    for i in 0..m {
                        assert_eq!(
                            yr[i].to_bits(),
                            y[i * n + r].to_bits(),
                            "m={m} k={k} n={n} {act:?} out {i} row {r}"
                        );
                    }
                }
            }
        }
    }
}
