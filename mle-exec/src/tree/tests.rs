//! The f32 records of f64-precision models and the NaN-free step against the f64 path, and
//! every kernel against the reference interpreter of docs/OPS.md (`mle_testkit::reference`),
//! bit for bit, on random trees whose thresholds sit exactly at, and one f32 step around, the
//! inputs.

use mle_format::tree::flags::{MISSING_LEFT, NAN_IS_ZERO, ZERO_IS_MISSING};
use mle_format::tree::{Comparison, Precision, TreeEnsembleSpec};
use mle_testkit::reference::Trees;
use mle_testkit::Rng;

use super::TreeEnsemble;
use crate::batch::{Batch, ColumnData};

const NF: usize = 5;

/// Values the inputs and thresholds are drawn from: a few f32 values, their f32 neighbours,
/// and f64 values between two f32 (not representable in f32).
fn pool() -> Vec<f64> {
    let mut p = vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.1f32 as f64,
        2.5,
        -3.75,
        1e-40f32 as f64,
        -1e-40f32 as f64,
        f32::MAX as f64,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ];
    for v in p.clone() {
        let f = v as f32;
        p.push(f32::from_bits(f.to_bits() + 1) as f64);
        p.push((f as f64 + f32::from_bits(f.to_bits() + 1) as f64) / 2.0);
    }
    p
}

fn ensemble(seed: u64, lt: bool) -> TreeEnsemble {
    ensemble_spec(seed, lt, 12, 7, &[0, MISSING_LEFT, NAN_IS_ZERO]).2
}

/// Up to `max_trees` random trees of random depths up to `max_depth`, split flags drawn from
/// `split_flags`; the spec, its reference interpreter (docs/OPS.md, read from the written
/// file) and the compiled ensemble.
fn ensemble_spec(
    seed: u64,
    lt: bool,
    max_trees: usize,
    max_depth: usize,
    split_flags: &[u8],
) -> (TreeEnsembleSpec, Trees, TreeEnsemble) {
    let mut rng = Rng(seed * 7919 + 1);
    let pool = pool();
    let cmp = if lt { Comparison::Lt } else { Comparison::Le };
    let mut s = TreeEnsembleSpec::new(1, 1, cmp, Precision::F64);
    for _ in 0..1 + rng.below(max_trees) {
        s.roots.push(s.n_nodes() as u32);
        // Breadth-first random tree: node i's children are appended when it splits.
        let mut open = vec![(s.n_nodes(), 0u32)];
        s.leaf(&[0.0]);
        while let Some((i, d)) = open.pop() {
            if d > rng.below(max_depth) as u32 {
                // Not dyadic, so that a different order of the sum shows in the bits.
                s.leaf_values[i] = rng.below(100_000) as f64 * 0.0137 - 600.0;
                continue;
            }
            s.feature[i] = rng.below(NF) as i32;
            s.threshold[i] = pool[rng.below(pool.len())];
            s.flags[i] = split_flags[rng.below(split_flags.len())];
            for side in 0..2 {
                let c = s.leaf(&[0.0]);
                if side == 0 {
                    s.left[i] = c;
                } else {
                    s.right[i] = c;
                }
                open.push((c as usize, d + 1));
            }
        }
    }
    let file = mle_testkit::tree::file(&s, NF);
    let node = file.graph().nodes[0].clone();
    let ens = TreeEnsemble::compile(&node, &file, NF).unwrap();
    let reference = Trees::from_node(&file, &node);
    (s, reference, ens)
}

/// `rows` random rows of NF values drawn from `pool` (one in `nan_rate` NaN; none when 0), as
/// f32 and the same values widened to f64.
fn inputs(rng: &mut Rng, pool: &[f64], rows: usize, nan_rate: usize) -> (Vec<f32>, Vec<f64>) {
    let x32: Vec<f32> = (0..rows * NF)
        .map(|_| {
            if nan_rate > 0 && rng.below(nan_rate) == 0 {
                f32::NAN
            } else {
                pool[rng.below(pool.len())] as f32
            }
        })
        .collect();
    let x64 = x32.iter().map(|&v| v as f64).collect();
    (x32, x64)
}

#[test]
fn f32_records_and_nan_free_blocks_equal_the_f64_path() {
    let pool = pool();
    for seed in 0..200u64 {
        let ens = ensemble(seed, seed % 2 == 0);
        assert_eq!(ens.kernel_name(), "fast-f64");
        let mut rng = Rng(seed + 17);
        let rows = [1usize, 3, 4, 70, 600][seed as usize % 5];
        // Half the seeds have no NaN at all (the NaN-free step), the others a few.
        let nan_rate = if seed % 4 < 2 { 0 } else { 8 };
        let (x32, x64) = inputs(&mut rng, &pool, rows, nan_rate);
        let b32 = Batch::from_row_major_f32(&x32, rows, NF).unwrap();
        let b64 = Batch::from_row_major_f64(&x64, rows, NF).unwrap();
        assert!(b32
            .columns()
            .iter()
            .all(|c| matches!(c.data, ColumnData::F32(_))));
        let mut s = ens.scratch();
        let (mut o32, mut o64) = (vec![f64::NAN; rows], vec![f64::NAN; rows]);
        ens.predict_batch(&b32, 0..rows, &mut o32, &mut s);
        ens.predict_batch(&b64, 0..rows, &mut o64, &mut s);
        for r in 0..rows {
            let (mut a, mut b) = ([f64::NAN], [f64::NAN]);
            ens.predict_row_f32(&x32[r * NF..(r + 1) * NF], &mut a);
            ens.predict_row_f64(&x64[r * NF..(r + 1) * NF], &mut b);
            let want = b[0].to_bits();
            for (what, got) in [
                ("f32 batch", o32[r]),
                ("f64 batch", o64[r]),
                ("f32 row", a[0]),
            ] {
                assert_eq!(
                    got.to_bits(),
                    want,
                    "seed {seed} row {r}: {what} {got} vs {}",
                    b[0]
                );
            }
        }
    }
}

/// Many trees of varied depths (several row windows, groups sorted by depth, padding slots),
/// fast and general kernels: the row and batch paths, f32 and f64 inputs, equal the reference
/// traversal bit for bit, with NaN, zeros and values exactly at thresholds.
#[test]
fn many_trees_of_varied_depth_equal_the_reference() {
    let pool = pool();
    for seed in 0..40u64 {
        // Every fourth ensemble has zero-is-missing splits: the general kernel; one in four
        // sends no NaN left (the NaN-free kernels then also run blocks with NaN).
        let general = seed % 4 == 3;
        let split_flags: &[u8] = match seed % 4 {
            3 => &[0, MISSING_LEFT, NAN_IS_ZERO, ZERO_IS_MISSING | MISSING_LEFT],
            1 => &[0],
            _ => &[0, MISSING_LEFT, NAN_IS_ZERO],
        };
        let (spec, reference, ens) =
            ensemble_spec(seed + 1000, seed % 2 == 0, 300, 11, split_flags);
        assert_eq!(
            ens.kernel_name(),
            if general { "general" } else { "fast-f64" }
        );
        let mut rng = Rng(seed + 99);
        let rows = [1usize, 5, 64, 200, 13, 600][seed as usize % 6];
        let nan_rate = [0, 3, 10][seed as usize % 3];
        let (x32, x64) = inputs(&mut rng, &pool, rows, nan_rate);
        let b32 = Batch::from_row_major_f32(&x32, rows, NF).unwrap();
        let b64 = Batch::from_row_major_f64(&x64, rows, NF).unwrap();
        let mut s = ens.scratch();
        let (mut o32, mut o64) = (vec![f64::NAN; rows], vec![f64::NAN; rows]);
        ens.predict_batch(&b32, 0..rows, &mut o32, &mut s);
        ens.predict_batch(&b64, 0..rows, &mut o64, &mut s);
        for r in 0..rows {
            let want = reference.row(&x64[r * NF..(r + 1) * NF])[0];
            let (mut a, mut b) = ([f64::NAN], [f64::NAN]);
            ens.predict_row_f32(&x32[r * NF..(r + 1) * NF], &mut a);
            ens.predict_row_f64(&x64[r * NF..(r + 1) * NF], &mut b);
            for (what, got) in [
                ("f32 batch", o32[r]),
                ("f64 batch", o64[r]),
                ("f32 row", a[0]),
                ("f64 row", b[0]),
            ] {
                assert_eq!(
                    got.to_bits(),
                    want.to_bits(),
                    "seed {seed} ({} trees) row {r}: {what} {got} vs reference {want}",
                    spec.n_trees()
                );
            }
        }
    }
}

/// The integer keys of the x86-64 batch kernel order inputs as f32 `<=` does, with `-0.0` as
/// `+0.0`, NaN above everything, and a NaN threshold below every input.
#[test]
fn keys_order_as_the_float_comparison() {
    use super::kernel::{key, threshold_key};
    let mut vals: Vec<f32> = vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        f32::MIN_POSITIVE,
        -f32::MIN_POSITIVE,
        1e-45,
        -1e-45,
        f32::MAX,
        f32::MIN,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ];
    let mut rng = Rng(5);
    for _ in 0..300 {
        let v = f32::from_bits(rng.next_u64() as u32);
        if !v.is_nan() {
            vals.push(v);
        }
    }
    for &x in &vals {
        for &t in &vals {
            assert_eq!(
                key(x) as i32 <= threshold_key(t) as i32,
                x <= t,
                "{x:e} <= {t:e}"
            );
        }
        for nan in [f32::NAN, -f32::NAN, f32::from_bits(0x7f80_0001)] {
            assert!(key(nan) as i32 > threshold_key(x) as i32, "NaN vs {x:e}");
            assert!(key(x) as i32 > threshold_key(nan) as i32, "{x:e} vs NaN");
        }
    }
}
