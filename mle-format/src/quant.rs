//! fp16 and int8 quantization of f32 weights.
//!
//! int8 is symmetric per output channel (axis 0): for channel `c` with largest magnitude
//! `m`, `scale = m / 127` (1 when `m` is 0), `q = round(x / scale)` clamped to `[-127, 127]`,
//! and the value read back is `q · scale`. The error per element is at most `scale / 2`.

/// Quantizes `w` (shape `shape`, channels along axis 0) to int8 with per-channel scales.
pub fn quantize_int8(w: &[f32], shape: &[u64]) -> (Vec<i8>, Vec<f32>) {
    let channels = shape.first().copied().unwrap_or(1).max(1) as usize;
    let per = if w.is_empty() { 0 } else { w.len() / channels };
    let mut q = Vec::with_capacity(w.len());
    let mut scales = Vec::with_capacity(channels);
    for c in 0..channels {
        let row = w.get(c * per..(c + 1) * per).unwrap_or(&[]);
        let m = row
            .iter()
            .fold(0f32, |m, &x| if x.is_finite() { m.max(x.abs()) } else { m });
        let scale = if m > 0.0 { m / 127.0 } else { 1.0 };
        scales.push(scale);
        q.extend(
            row.iter()
                .map(|&x| (x / scale).round().clamp(-127.0, 127.0) as i8),
        );
    }
    (q, scales)
}

/// Reverses [`quantize_int8`]: `channels` scales along axis 0.
pub fn dequantize_int8(q: &[i8], scales: &[f32]) -> Vec<f32> {
    let channels = scales.len().max(1);
    let per = q.len() / channels;
    let mut out = Vec::with_capacity(q.len());
    for (c, &s) in scales.iter().enumerate() {
        let row = q.get(c * per..(c + 1) * per).unwrap_or(&[]);
        out.extend(row.iter().map(|&v| f32::from(v) * s));
    }
    out
}
