//! The feature-major kernel over f64 inputs of an f64-precision ensemble (thresholds and
//! inputs as ranks, `TreeEnsemble::fm_ranks`) against the reference interpreter, bit for bit:
//! hundreds of thresholds per feature of every kind (f32 values, f64 values between two f32s,
//! sklearn-style midpoints, ±0, subnormals, ±f32::MAX and beyond, ±∞), inputs equal to each
//! threshold and one ulp (f64 and f32) either side, `<` and `<=`, NaN with and without a node
//! that sends it left, f64 columns and a mix of f32 and f64 columns, in blocks of every size.

mod tree_util;

use mle_exec::{Batch, Column, ColumnData};
use tree_util::*;

/// Inputs around `t`: itself, one f64 ulp either side, its f32 rounding and that value's f32
/// neighbours.
fn around(t: f64) -> Vec<f64> {
    let a = t as f32;
    vec![
        t,
        next_up64(t),
        next_down64(t),
        a as f64,
        next_up32(a) as f64,
        next_down32(a) as f64,
    ]
}

/// One stump per threshold on each of `n_features` features, leaves distinct.
fn ensemble(cmp: &str, flags: u8, thr: &[Vec<f64>]) -> Spec {
    let mut s = spec(cmp, "f64");
    let mut k = 0.0;
    for (f, list) in thr.iter().enumerate() {
        for &t in list {
            k += 1.0;
            s.stump(f as i32, t, flags, k / 1024.0, -k / 512.0);
        }
    }
    s
}

fn check(spec: &Spec, rows: &[Vec<f64>], f32_first: bool, what: &str) {
    let nf = rows[0].len();
    let ens = spec.compile(nf).unwrap();
    assert_eq!(ens.kernel_name(), "fast-f64", "{what}");
    let reference = spec.reference();
    let cols: Vec<Vec<f64>> = (0..nf)
        .map(|j| rows.iter().map(|r| r[j]).collect())
        .collect();
    let col0_32: Vec<f32> = cols[0].iter().map(|&v| v as f32).collect();
    let mut columns: Vec<Column<'_>> = cols
        .iter()
        .map(|c| Column {
            data: ColumnData::F64(c),
            offset: 0,
            stride: 1,
        })
        .collect();
    if f32_first {
        columns[0].data = ColumnData::F32(&col0_32);
    }
    let batch = Batch::from_strided(columns, rows.len()).unwrap();
    let mut s = ens.scratch();
    // Ranges of every size around the blocks (8 rows, 512 rows) and not starting at 0.
    for (start, n) in [
        (0, rows.len()),
        (3, 8),
        (5, 7),
        (1, 513),
        (17, rows.len() - 17),
    ] {
        let mut out = vec![f64::NAN; n];
        ens.predict_batch(&batch, start..start + n, &mut out, &mut s);
        for (i, o) in out.iter().enumerate() {
            let mut x = rows[start + i].clone();
            if f32_first {
                x[0] = x[0] as f32 as f64;
            }
            let want = reference.row(&x);
            assert_same(
                std::slice::from_ref(o),
                &want,
                &format!("{what}: row {} = {x:?}", start + i),
            );
        }
    }
}

#[test]
fn f64_inputs_on_ranks_equal_the_f64_comparison() {
    let mut rng = Rng(0x5eedf64);
    let nf = 3;
    // About 300 thresholds per feature (tree_threshold's kinds), in a different order each.
    let kinds: Vec<f64> = thresholds(14).into_iter().filter(|t| !t.is_nan()).collect();
    let thr: Vec<Vec<f64>> = (0..nf)
        .map(|j| {
            let mut l = kinds.clone();
            let k = j * 37 % l.len();
            l.rotate_left(k);
            l
        })
        .collect();
    // Rows: every input around every threshold of its feature, the other features drawn from
    // their own inputs; a few NaN in the variants that allow them.
    let pools: Vec<Vec<f64>> = thr
        .iter()
        .map(|l| l.iter().flat_map(|&t| around(t)).collect())
        .collect();
    let n_rows = pools.iter().map(Vec::len).max().unwrap();
    let rows = |nan: bool, rng: &mut Rng| -> Vec<Vec<f64>> {
        (0..n_rows)
            .map(|r| {
                (0..nf)
                    .map(|j| {
                        if nan && rng.chance(0.02) {
                            f64::NAN
                        } else if r < pools[j].len() {
                            pools[j][r]
                        } else {
                            pools[j][rng.below(pools[j].len())]
                        }
                    })
                    .collect()
            })
            .collect()
    };
    let plain = rows(false, &mut rng);
    let with_nan = rows(true, &mut rng);
    for cmp in ["lt", "le"] {
        // NaN goes right (no node sends it left): blocks with a NaN stay on the ranks.
        let s = ensemble(cmp, 0, &thr);
        check(&s, &plain, false, &format!("{cmp}, f64 columns"));
        check(
            &s,
            &with_nan,
            false,
            &format!("{cmp}, f64 columns with NaN"),
        );
        check(&s, &plain, true, &format!("{cmp}, f32 and f64 columns"));
        // LightGBM's NaN-is-zero (folded into the default direction).
        let s = ensemble(cmp, NAN_ZERO, &thr);
        check(&s, &with_nan, false, &format!("{cmp}, NaN is zero"));
        // Nodes that send NaN left: blocks without NaN on the ranks, the others not.
        let s = ensemble(cmp, DL, &thr);
        check(&s, &plain, false, &format!("{cmp}, NaN left, no NaN"));
        check(&s, &with_nan, false, &format!("{cmp}, NaN left, with NaN"));
    }
}

/// Features of one, two and a few thresholds, and one of many crowded into a few ulps (one
/// bucket of the rank index holds them all), with inputs around each and far outside.
#[test]
fn short_and_crowded_threshold_lists_rank_exactly() {
    let crowd: Vec<f64> = (0..40).map(|i| 1.0 + i as f64 * f64::EPSILON).collect();
    let thr: Vec<Vec<f64>> = vec![
        vec![0.5],
        vec![-0.0, 3.0],
        vec![-1e300, -2.5, 1e-310, 7.0, f64::INFINITY],
        crowd,
    ];
    let pools: Vec<Vec<f64>> = thr
        .iter()
        .map(|l| {
            let mut p: Vec<f64> = l.iter().flat_map(|&t| around(t)).collect();
            p.extend([f64::NEG_INFINITY, -1e308, -0.0, 0.0, 1e308, f64::INFINITY]);
            p
        })
        .collect();
    // Enough rows for `check`'s ranges (up to 530), each pool cycled with its own step.
    let n_rows = 640;
    let rows: Vec<Vec<f64>> = (0..n_rows)
        .map(|r| {
            pools
                .iter()
                .enumerate()
                .map(|(j, p)| p[(r * (2 * j + 1)) % p.len()])
                .collect()
        })
        .collect();
    for cmp in ["lt", "le"] {
        let s = ensemble(cmp, 0, &thr);
        check(&s, &rows, false, &format!("{cmp}, short and crowded lists"));
    }
}
