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
pub(crate) fn scaler(offset: &[f64], scale: &[f64], x: &[f64], y: &mut [f64], n: usize) {
    for (f, (&o, &s)) in offset.iter().zip(scale).enumerate() {
        let r = f * n..(f + 1) * n;
        for (d, &v) in y[r.clone()].iter_mut().zip(&x[r]) {
            *d = (v - o) * s;
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
