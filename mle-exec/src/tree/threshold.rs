//! Exact threshold rewrites used by the fast tree kernels.
//!
//! The `TreeEnsemble` contract (docs/OPS.md) compares the input, rounded to the node's
//! `input_precision`, with an f64 threshold using `<` or `<=`. The fast kernels instead compare
//! every split as `x <= t'` with `t'` already in the input precision, so that one comparison of
//! two values of the same type decides the branch. These functions compute `t'`; for every
//! non-NaN `x` of the precision the rewritten test has the same outcome as the original
//! (`mle-exec/tests/tree_threshold.rs` checks this at the edges: ±0, subnormals, ±∞, values
//! between two f32, values beyond the f32 range). A NaN `x` never reaches the comparison:
//! it is a missing value and follows the node's default direction.
//!
//! Why they hold, for `x` of type `P` (f32 or f64) and an f64 threshold `t`:
//! - `x <= t  ⇔  x <= down_P(t)`, where `down_P(t)` is the largest `P` value `≤ t`: no `P` value
//!   lies strictly between `down_P(t)` and `t`.
//! - `x < t  ⇔  x < up_P(t)`, where `up_P(t)` is the smallest `P` value `≥ t`, and for non-NaN
//!   `x`, `x < u ⇔ x <= pred_P(u)` (the next smaller `P` value). When `up_P(t) = -∞` nothing is
//!   below it, and the result is NaN, which makes `x <= NaN` false for every `x`.
//! - A NaN threshold compares false either way and stays NaN.

/// The f32 threshold `t'` such that, for every non-NaN f32 `x`, `x <= t'` equals
/// `(x as f64) < t` when `lt`, or `(x as f64) <= t` otherwise.
pub fn le_threshold_f32(t: f64, lt: bool) -> f32 {
    if t.is_nan() {
        return f32::NAN;
    }
    if lt {
        let up = up_f32(t);
        if up == f32::NEG_INFINITY {
            f32::NAN
        } else {
            pred_f32(up)
        }
    } else {
        down_f32(t)
    }
}

/// The f64 threshold `t'` such that, for every non-NaN f64 `x`, `x <= t'` equals `x < t`
/// when `lt`, or `x <= t` otherwise.
pub fn le_threshold_f64(t: f64, lt: bool) -> f64 {
    if t.is_nan() {
        return f64::NAN;
    }
    if lt {
        if t == f64::NEG_INFINITY {
            f64::NAN
        } else {
            pred_f64(t)
        }
    } else {
        t
    }
}

/// The largest f32 not above `t` (`t` not NaN).
pub fn down_f32(t: f64) -> f32 {
    let c = t as f32; // round to nearest, ±∞ on overflow
    if (c as f64) > t {
        pred_f32(c)
    } else {
        c
    }
}

/// The smallest f32 not below `t` (`t` not NaN).
pub fn up_f32(t: f64) -> f32 {
    let c = t as f32;
    if (c as f64) < t {
        succ_f32(c)
    } else {
        c
    }
}

/// The next f32 below `v` (`v` finite or +∞).
fn pred_f32(v: f32) -> f32 {
    if v == 0.0 {
        -f32::from_bits(1)
    } else if v > 0.0 {
        f32::from_bits(v.to_bits() - 1)
    } else {
        f32::from_bits(v.to_bits() + 1)
    }
}

/// The next f32 above `v` (`v` finite or -∞).
fn succ_f32(v: f32) -> f32 {
    if v == 0.0 {
        f32::from_bits(1)
    } else if v > 0.0 {
        f32::from_bits(v.to_bits() + 1)
    } else {
        f32::from_bits(v.to_bits() - 1)
    }
}

/// The next f64 below `v` (`v` finite or +∞).
fn pred_f64(v: f64) -> f64 {
    if v == 0.0 {
        -f64::from_bits(1)
    } else if v > 0.0 {
        f64::from_bits(v.to_bits() - 1)
    } else {
        f64::from_bits(v.to_bits() + 1)
    }
}
