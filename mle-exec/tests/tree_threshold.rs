//! The fast kernels compare `x <= t'` with `t'` precomputed in the input precision. These tests
//! check that rewrite against the contract's comparison (`x` rounded to the precision, compared
//! with the f64 threshold by `<` or `<=`) at the edges: every threshold kind (f32 values,
//! midpoints between f32 neighbours, f64 values just off an f32, ±0, subnormals, beyond the
//! f32 range, ±∞, NaN) against inputs on and around it.

mod tree_util;

use mle_exec::tree::threshold::{down_f32, le_threshold_f32, le_threshold_f64, up_f32};
use mle_testkit::Rng;
use tree_util::{next_down32, next_down64, next_up32, next_up64, thresholds};

fn f32_neighbours(v: f32, k: u32) -> Vec<f32> {
    let mut out = vec![v];
    let (mut lo, mut hi) = (v, v);
    for _ in 0..k {
        lo = next_down32(lo);
        hi = next_up32(hi);
        out.push(lo);
        out.push(hi);
    }
    out
}

#[test]
fn f32_rewrite_equals_f32_input_against_f64_threshold() {
    let specials = [
        0.0f32,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MAX,
        -f32::MAX,
        f32::from_bits(1),
        -f32::from_bits(1),
    ];
    let mut checked = 0usize;
    for t in thresholds(2000) {
        let around = if t.is_nan() {
            vec![0.0f32]
        } else {
            f32_neighbours(t as f32, 4)
        };
        for lt in [false, true] {
            let t2 = le_threshold_f32(t, lt);
            for &x in around.iter().chain(&specials) {
                if x.is_nan() {
                    continue;
                }
                let want = if lt { (x as f64) < t } else { (x as f64) <= t };
                assert_eq!(x <= t2, want, "x={x:e} t={t:e} lt={lt} t'={t2:e}");
                checked += 1;
            }
        }
    }
    assert!(checked > 100_000);
    assert!(le_threshold_f32(f64::NAN, false).is_nan());
    assert!(le_threshold_f32(f64::NAN, true).is_nan());
}

#[test]
fn f64_inputs_rounded_to_f32_give_the_same_decision() {
    // With input_precision f32, an f64 input is rounded first; the rewrite is applied to the
    // rounded value. Check f64 inputs just around thresholds and around f32 rounding midpoints.
    let mut rng = Rng(7);
    for t in thresholds(500) {
        if t.is_nan() {
            continue;
        }
        let mut xs = vec![t, next_up64(t), next_down64(t)];
        let a = t as f32;
        let mid_up = (a as f64 + next_up32(a) as f64) / 2.0;
        let mid_dn = (a as f64 + next_down32(a) as f64) / 2.0;
        for m in [mid_up, mid_dn] {
            xs.extend([m, next_up64(m), next_down64(m)]);
        }
        xs.push(t + (rng.unit() - 0.5) * t.abs() * 1e-7);
        for lt in [false, true] {
            let t2 = le_threshold_f32(t, lt);
            for &x in &xs {
                if x.is_nan() {
                    continue;
                }
                let r = x as f32 as f64;
                let want = if lt { r < t } else { r <= t };
                assert_eq!((x as f32) <= t2, want, "x={x:e} t={t:e} lt={lt}");
            }
        }
    }
}

#[test]
fn f64_rewrite_equals_f64_comparison() {
    for t in thresholds(2000) {
        let mut xs = vec![
            0.0,
            -0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
            f64::MIN,
        ];
        if !t.is_nan() {
            let (mut lo, mut hi) = (t, t);
            xs.push(t);
            for _ in 0..4 {
                lo = next_down64(lo);
                hi = next_up64(hi);
                xs.extend([lo, hi]);
            }
        }
        for lt in [false, true] {
            let t2 = le_threshold_f64(t, lt);
            for &x in &xs {
                let want = if lt { x < t } else { x <= t };
                assert_eq!(x <= t2, want, "x={x:e} t={t:e} lt={lt}");
            }
        }
    }
}

#[test]
fn down_and_up_bracket_the_threshold() {
    for t in thresholds(2000) {
        if t.is_nan() {
            continue;
        }
        let (d, u) = (down_f32(t), up_f32(t));
        assert!(d as f64 <= t && u as f64 >= t, "t={t:e} d={d:e} u={u:e}");
        // Adjacent (or equal): nothing of f32 lies strictly between.
        assert!(d == u || next_up32(d) == u, "t={t:e} d={d:e} u={u:e}");
    }
}
