//! Kernels over feature-major chunks: a value of width `w` for `n` rows is `w` rows of `n`
//! contiguous elements (element `(r, j)` at `j·n + r`). Inner loops run over rows, contiguous
//! and branch-light, so they vectorize; no kernel allocates.

use crate::plan::{Act, BinOp, Dense, Norm};
use crate::real::Real;

/// Below this many rows the dense kernel uses its own dot-product loops (no packing, no
/// allocation) instead of the blocked GEMM.
const GEMM_MIN_ROWS: usize = 8;

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
    dot_by(a, b, |v| v)
}

/// `Σ a[i] · conv(b[i])` in eight lanes (term `i` added to lane `i mod 8`, in order; the
/// lanes summed pairwise): the one summation order of a single row's dot product, whether
/// the row was gathered first ([`dot`], [`dot_cols`]) or is read where it lies
/// ([`dense_rows`]).
#[inline(always)]
fn dot_by<S: Copy, T: Real>(a: &[T], b: &[S], conv: impl Fn(S) -> T) -> T {
    let mut acc = [T::ZERO; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * conv(y[l]);
        }
    }
    // The last terms; lanes past them add +0.0 to a lane that started at +0.0, so is never
    // -0.0: unchanged (as in the AVX kernel's masked tail).
    let t: [T; 8] = std::array::from_fn(|l| match (ra.get(l), rb.get(l)) {
        (Some(&x), Some(&y)) => x * conv(y),
        _ => T::ZERO,
    });
    for l in 0..8 {
        acc[l] += t[l];
    }
    lanes_sum(&acc)
}

/// The pairwise sum of [`dot_by`]'s eight lanes.
#[inline(always)]
fn lanes_sum<T: Real>(acc: &[T; 8]) -> T {
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// Dense layers with at most this many outputs (linear models, output layers) compute each
/// row's dot product in [`dot`]'s order, feature-major ([`dot_cols`]) or, as a plan's first
/// step, from row-major input rows where they lie ([`dense_rows`]): the blocked GEMM's tiles
/// would be mostly padding, and every layout gives the same bits.
pub(crate) const ROWS_MAX_OUTPUTS: usize = 8;

/// `y[r] = dot(w, x[:, r])` for feature-major `x` (`w.len()` rows of `n`), `R` rows at a
/// time with the eight lanes of [`dot`] in registers.
fn dot_cols<T: Real, const R: usize>(w: &[T], x: &[T], y: &mut [T], n: usize) {
    let y = &mut y[..n];
    let full = n / R * R;
    for (b, out) in y[..full].chunks_exact_mut(R).enumerate() {
        out.copy_from_slice(&dot_cols_block::<T, R>(w, x, n, b * R));
    }
    // The last rows, one at a time.
    for (r, out) in y.iter_mut().enumerate().skip(full) {
        *out = dot_cols_block::<T, 1>(w, x, n, r)[0];
    }
}

#[inline(always)]
fn dot_cols_block<T: Real, const R: usize>(w: &[T], x: &[T], n: usize, r0: usize) -> [T; R] {
    let mut acc = [[T::ZERO; R]; 8];
    let lane = |a: &mut [T; R], kk: usize, wv: T| {
        let xs = &x[kk * n + r0..][..R];
        for (aj, &v) in a.iter_mut().zip(xs) {
            *aj += wv * v;
        }
    };
    let chunks = w.chunks_exact(8);
    let rem = chunks.remainder();
    for (c, wc) in chunks.enumerate() {
        for (l, a) in acc.iter_mut().enumerate() {
            lane(a, c * 8 + l, wc[l]);
        }
    }
    let base = w.len() - rem.len();
    for (l, a) in acc.iter_mut().enumerate() {
        if let Some(&wv) = rem.get(l) {
            lane(a, base + l, wv);
        }
    }
    std::array::from_fn(|j| lanes_sum(&std::array::from_fn(|l| acc[l][j])))
}

/// The dense layer over `n` rows of a row-major `[n, k]` matrix `rows` (a batch's own
/// buffer, converted element by element with `conv`): one dot product per row and output,
/// in [`dot`]'s order, so a batch gives each row what that row alone gives. Output
/// feature-major like every kernel (`y[mi·n + r]`). For layers of a few outputs (linear
/// models): the row is read once, from L1, and the feature-major copy of the input is never
/// written.
pub(crate) fn dense_rows<S: Copy, T: Real>(
    d: &Dense<T>,
    rows: &[S],
    y: &mut [T],
    n: usize,
    conv: impl Fn(S) -> T + Copy,
) {
    let (m, k) = (d.m, d.k);
    let y = &mut y[..m * n];
    if k == 0 {
        y.fill(T::ZERO);
    } else {
        for (r, row) in rows[..n * k].chunks_exact(k).enumerate() {
            for (mi, wrow) in d.w.chunks_exact(k).enumerate() {
                y[mi * n + r] = dot_by(wrow, row, conv);
            }
        }
    }
    epilogues(d, y, n)
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
        } else if m <= ROWS_MAX_OUTPUTS {
            // Few outputs (linear models, output layers): each row's dot product in `dot`'s
            // order, as `dense_rows` computes it from row-major input.
            for (yr, wrow) in yg.chunks_exact_mut(n).zip(d.w.chunks_exact(k)) {
                if std::mem::size_of::<T>() == 4 {
                    dot_cols::<T, 4>(wrow, xg, yr, n);
                } else {
                    dot_cols::<T, 2>(wrow, xg, yr, n);
                }
            }
        } else if n < GEMM_MIN_ROWS {
            // Few rows: each output row accumulates `w[mi, ki] · X[ki, :]` over contiguous
            // input rows (vectorized across rows, no packing).
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
        epilogues(d, yg, n);
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

/// [`dense_rows`] of an f64 layer over f32 rows: in AVX registers when the CPU has AVX.
pub(crate) fn dense_rows_f64_from_f32(d: &Dense<f64>, rows: &[f32], y: &mut [f64], n: usize) {
    #[cfg(target_arch = "x86_64")]
    if d.k > 0 && std::arch::is_x86_feature_detected!("avx") {
        let y = &mut y[..d.m * n];
        // SAFETY: AVX detected; the kernel checks the slice lengths.
        unsafe { rows_avx::dense_f32(&d.w, d.m, d.k, rows, y, n) };
        return epilogues(d, y, n);
    }
    dense_rows(d, rows, y, n, f64::from)
}

/// [`dense_rows`] of an f64 layer over f64 rows: in AVX registers when the CPU has AVX.
pub(crate) fn dense_rows_f64(d: &Dense<f64>, rows: &[f64], y: &mut [f64], n: usize) {
    #[cfg(target_arch = "x86_64")]
    if d.k > 0 && std::arch::is_x86_feature_detected!("avx") {
        let y = &mut y[..d.m * n];
        // SAFETY: as above.
        unsafe { rows_avx::dense_f64(&d.w, d.m, d.k, rows, y, n) };
        return epilogues(d, y, n);
    }
    dense_rows(d, rows, y, n, |v| v)
}

/// Bias and activation of a dense layer's `m` feature-major output rows.
fn epilogues<T: Real>(d: &Dense<T>, y: &mut [T], n: usize) {
    if d.bias.is_some() || d.act != Act::None {
        for mi in 0..d.m {
            let b = d.bias.as_ref().map_or(T::ZERO, |b| b[mi]);
            epilogue(&mut y[mi * n..(mi + 1) * n], b, d.act);
        }
    }
}

/// [`dense_rows`] for f64 layers in AVX registers: [`dot_by`]'s operations in its order
/// (lanes 0–3 and 4–7 as two vectors, multiply then add, no FMA; the last terms masked), so
/// the same bits as the portable loop.
#[cfg(target_arch = "x86_64")]
mod rows_avx {
    use std::arch::x86_64::*;

    /// Lane masks of the last `k mod 8` terms (all ones: the lane is a term), as 64-bit
    /// lanes (f64 loads) and 32-bit lanes (f32 loads).
    #[derive(Clone, Copy)]
    struct Tail {
        lo: __m256i,
        hi: __m256i,
        lo32: __m128i,
        hi32: __m128i,
    }

    #[inline(always)]
    unsafe fn tail_masks(rem: usize) -> Tail {
        let l = |i: usize| if i < rem { -1i32 } else { 0 };
        // SAFETY: plain register construction.
        unsafe {
            Tail {
                lo: _mm256_set_epi64x(l(3).into(), l(2).into(), l(1).into(), l(0).into()),
                hi: _mm256_set_epi64x(l(7).into(), l(6).into(), l(5).into(), l(4).into()),
                lo32: _mm_set_epi32(l(3), l(2), l(1), l(0)),
                hi32: _mm_set_epi32(l(7), l(6), l(5), l(4)),
            }
        }
    }

    macro_rules! dense_avx {
        ($name:ident, $s:ty, $load:ident, $load_tail:ident) => {
            /// `y[mi·n + r] = dot(w[mi], rows[r])` for `n` rows of `k` (no bias, no
            /// activation).
            ///
            /// # Safety
            /// AVX available.
            #[target_feature(enable = "avx")]
            pub(super) unsafe fn $name(
                w: &[f64],
                m: usize,
                k: usize,
                rows: &[$s],
                y: &mut [f64],
                n: usize,
            ) {
                assert!(k > 0 && w.len() >= m * k && rows.len() >= n * k && y.len() >= m * n);
                let (full, rem) = (k / 8 * 8, k % 8);
                // SAFETY (whole body): every pointer below stays inside `w` (`mi·k + c + 8 ≤
                // (mi + 1)·k` for full chunks), `rows` (`r·k + c + 8 ≤ (r + 1)·k`) and `y`
                // (`mi·n + r < m·n`) by the assert; the tail loads are masked to `rem` terms.
                unsafe {
                    let t = tail_masks(rem);
                    for r in 0..n {
                        let row = rows.as_ptr().add(r * k);
                        for mi in 0..m {
                            let wr = w.as_ptr().add(mi * k);
                            let (mut lo, mut hi) = (_mm256_setzero_pd(), _mm256_setzero_pd());
                            let mut c = 0;
                            while c < full {
                                let (xl, xh) = $load(row.add(c));
                                let (wl, wh) = load_f64(wr.add(c));
                                lo = _mm256_add_pd(lo, _mm256_mul_pd(wl, xl));
                                hi = _mm256_add_pd(hi, _mm256_mul_pd(wh, xh));
                                c += 8;
                            }
                            if rem > 0 {
                                // Masked lanes load 0.0: they add 0·0 = +0.0 to a lane that
                                // started at +0.0, so is never -0.0: unchanged.
                                let (xl, xh) = $load_tail(row.add(full), t);
                                let (wl, wh) = load_tail_f64(wr.add(full), t);
                                lo = _mm256_add_pd(lo, _mm256_mul_pd(wl, xl));
                                hi = _mm256_add_pd(hi, _mm256_mul_pd(wh, xh));
                            }
                            // (l0 + l4, l1 + l5, l2 + l6, l3 + l7), then pairwise.
                            let v = _mm256_add_pd(lo, hi);
                            let a = _mm256_castpd256_pd128(v);
                            let b = _mm256_extractf128_pd::<1>(v);
                            let s01 = _mm_add_sd(a, _mm_unpackhi_pd(a, a));
                            let s23 = _mm_add_sd(b, _mm_unpackhi_pd(b, b));
                            *y.get_unchecked_mut(mi * n + r) = _mm_cvtsd_f64(_mm_add_sd(s01, s23));
                        }
                    }
                }
            }
        };
    }

    /// Eight f64 values as two vectors.
    #[inline(always)]
    unsafe fn load_f64(p: *const f64) -> (__m256d, __m256d) {
        // SAFETY: the caller's (eight values readable at `p`).
        unsafe { (_mm256_loadu_pd(p), _mm256_loadu_pd(p.add(4))) }
    }

    /// The first lanes of eight f64 values (masked lanes are not read).
    #[inline(always)]
    unsafe fn load_tail_f64(p: *const f64, t: Tail) -> (__m256d, __m256d) {
        // SAFETY: the caller's (the unmasked lanes readable at `p`).
        unsafe {
            (
                _mm256_maskload_pd(p, t.lo),
                _mm256_maskload_pd(p.add(4), t.hi),
            )
        }
    }

    /// Eight f32 values widened to two f64 vectors.
    #[inline(always)]
    unsafe fn load_f32(p: *const f32) -> (__m256d, __m256d) {
        // SAFETY: the caller's (eight values readable at `p`).
        unsafe {
            (
                _mm256_cvtps_pd(_mm_loadu_ps(p)),
                _mm256_cvtps_pd(_mm_loadu_ps(p.add(4))),
            )
        }
    }

    /// The first lanes of eight f32 values, widened (masked lanes are not read).
    #[inline(always)]
    unsafe fn load_tail_f32(p: *const f32, t: Tail) -> (__m256d, __m256d) {
        // SAFETY: the caller's (the unmasked lanes readable at `p`).
        unsafe {
            (
                _mm256_cvtps_pd(_mm_maskload_ps(p, t.lo32)),
                _mm256_cvtps_pd(_mm_maskload_ps(p.add(4), t.hi32)),
            )
        }
    }

    dense_avx!(dense_f32, f32, load_f32, load_tail_f32);
    dense_avx!(dense_f64, f64, load_f64, load_tail_f64);
}

/// The f32 dense layer: the AVX2+FMA kernels when the layer was packed, else [`dense`].
pub(crate) fn dense_f32(d: &Dense<f32>, x: &[f32], y: &mut [f32], n: usize) {
    #[cfg(target_arch = "x86_64")]
    if let (Some(p), true) = (&d.packed, d.m > ROWS_MAX_OUTPUTS) {
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

    /// Every layout of a few-output dense layer gives the same bits: rows read in place by
    /// the AVX kernel and by the portable loop, feature-major columns (`dot_cols`) and a
    /// single row (`dot`), for every tail length, with NaN, ±inf, ±0 and huge values.
    #[test]
    fn few_output_dense_is_bitwise_the_same_in_every_layout() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let special = [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.0,
            -0.0,
            1e300,
            -1e300,
        ];
        for k in [1usize, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 28, 31] {
            for m in [1usize, 2, 3, 8] {
                let n = 13;
                let mut pick = |i: usize| {
                    let v = rng(&mut seed) as f64;
                    if i % 11 == 3 {
                        special[(i / 11) % special.len()]
                    } else {
                        v
                    }
                };
                let w: Vec<f64> = (0..m * k)
                    .map(|i| if i % 5 == 1 { -0.0 } else { pick(i) })
                    .collect();
                let rows64: Vec<f64> = (0..n * k).map(|i| pick(i + 7)).collect();
                let rows32: Vec<f32> = rows64.iter().map(|&v| v as f32).collect();
                let d = Dense {
                    w: w.clone(),
                    bias: None,
                    m,
                    k,
                    groups: 1,
                    act: Act::None,
                    packed: None,
                };
                // Bits, NaNs as one (their sign and payload are not specified by Rust).
                let bits = |v: &[f64]| {
                    v.iter()
                        .map(|x| if x.is_nan() { u64::MAX } else { x.to_bits() })
                        .collect::<Vec<_>>()
                };
                for wide in [false, true] {
                    let rows: Vec<f64> = if wide {
                        rows64.clone()
                    } else {
                        rows32.iter().map(|&v| f64::from(v)).collect()
                    };
                    let mut portable = vec![0.0; m * n];
                    dense_rows(&d, &rows, &mut portable, n, |v| v);
                    let mut fast = vec![0.0; m * n];
                    if wide {
                        dense_rows_f64(&d, &rows64, &mut fast, n);
                    } else {
                        dense_rows_f64_from_f32(&d, &rows32, &mut fast, n);
                    }
                    assert_eq!(bits(&portable), bits(&fast), "k={k} m={m} wide={wide}");
                    let cols: Vec<f64> = (0..k * n).map(|i| rows[(i % n) * k + i / n]).collect();
                    let mut fm = vec![0.0; m * n];
                    dense(&d, &cols, &mut fm, n);
                    assert_eq!(bits(&portable), bits(&fm), "columns, k={k} m={m}");
                    for r in 0..n {
                        let mut one = vec![0.0; m];
                        dense(&d, &rows[r * k..(r + 1) * k], &mut one, 1);
                        let got: Vec<f64> = (0..m).map(|mi| portable[mi * n + r]).collect();
                        assert_eq!(bits(&one), bits(&got), "row {r}, k={k} m={m}");
                    }
                }
            }
        }
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
