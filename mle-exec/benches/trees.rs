//! Tree-ensemble kernels against a naive one-row-at-a-time recursive traversal of the same
//! trees, in the same run.
//!
//! Ensembles: random full trees on 28 features, XGBoost style (`lt`, f32 inputs, random
//! default directions): 500 trees of depth 6 and 100 trees of depth 8. Batches of 1, 1,000 and
//! 100,000 rows (row-major f32), 1 thread and 2 threads (rayon over row chunks), and the
//! single-row latency of `predict_row_f32`.
//!
//! Run: `nice cargo bench -p mle-exec --bench trees`; the ratios are in `docs/BENCHMARKS.md`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use mle_exec::tree::TreeEnsemble;
use mle_exec::Batch;
use mle_format::tree::TreeEnsembleSpec;
use mle_format::{DType, MleFile, ReadOptions, WriteOptions};
use mle_testkit::Rng;
use rayon::prelude::*;

const N_FEATURES: usize = 28;

/// The SoA arrays of docs/OPS.md, as the naive traversal reads them.
type Soa = TreeEnsembleSpec;

fn random_forest(n_trees: usize, depth: u32, seed: u64) -> Soa {
    mle_testkit::tree::random_full_forest(&mut Rng(seed), n_trees, depth, N_FEATURES)
}

fn compile(s: &Soa) -> TreeEnsemble {
    let bytes = mle_testkit::tree::builder_with(s, N_FEATURES, DType::F32, |_| {})
        .to_bytes(&WriteOptions::default())
        .unwrap();
    let file = MleFile::from_bytes(&bytes, "bench.mle", &ReadOptions::default()).unwrap();
    let node = file.graph().nodes[0].clone();
    TreeEnsemble::compile(&node, &file, N_FEATURES).unwrap()
}

/// The naive traversal: one row at a time, each tree walked recursively over the SoA arrays.
fn naive_leaf(s: &Soa, i: usize, x: &[f32]) -> usize {
    if s.flags[i] & 1 != 0 {
        return i;
    }
    let v = x[s.feature[i] as usize];
    let left = if v.is_nan() {
        s.flags[i] & 2 != 0
    } else {
        (v as f64) < s.threshold[i]
    };
    naive_leaf(s, if left { s.left[i] } else { s.right[i] } as usize, x)
}

fn naive(s: &Soa, x: &[f32], out: &mut [f64]) {
    for (row, o) in x.chunks_exact(N_FEATURES).zip(out.iter_mut()) {
        let mut sum = 0.0;
        for &r in &s.roots {
            sum += s.leaf_values[naive_leaf(s, r as usize, row)];
        }
        *o = sum;
    }
}

fn inputs(rows: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng(seed);
    (0..rows * N_FEATURES)
        .map(|_| {
            if rng.next_u64() % 50 == 0 {
                f32::NAN
            } else {
                rng.normal() as f32
            }
        })
        .collect()
}

fn predict_threads(ens: &TreeEnsemble, batch: &Batch<'_>, out: &mut [f64], threads: usize) {
    let n = batch.n_rows();
    if threads <= 1 {
        let mut s = ens.scratch();
        ens.predict_batch(batch, 0..n, out, &mut s);
        return;
    }
    let chunk = n.div_ceil(threads).max(1);
    out.par_chunks_mut(chunk).enumerate().for_each(|(c, o)| {
        let mut s = ens.scratch();
        let r0 = c * chunk;
        ens.predict_batch(batch, r0..r0 + o.len(), o, &mut s);
    });
}

fn bench(c: &mut Criterion) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    for (name, n_trees, depth) in [("500x6", 500, 6), ("100x8", 100, 8)] {
        let soa = random_forest(n_trees, depth, 42 + depth as u64);
        let ens = compile(&soa);
        let mut g = c.benchmark_group(format!("trees_{name}"));
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
        for rows in [1usize, 1_000, 100_000] {
            let x = inputs(rows, 7);
            let batch = Batch::from_row_major_f32(&x, rows, N_FEATURES).unwrap();
            let mut out = vec![0.0; rows];
            let mut want = vec![0.0; rows];
            naive(&soa, &x, &mut want);
            predict_threads(&ens, &batch, &mut out, 1);
            assert_eq!(out, want, "block kernel differs from the naive traversal");
            g.throughput(Throughput::Elements(rows as u64));
            g.bench_with_input(BenchmarkId::new("block_1t", rows), &rows, |b, _| {
                b.iter(|| predict_threads(&ens, black_box(&batch), &mut out, 1))
            });
            if rows > 1 {
                g.bench_with_input(BenchmarkId::new("block_2t", rows), &rows, |b, _| {
                    b.iter(|| {
                        pool.install(|| predict_threads(&ens, black_box(&batch), &mut out, 2))
                    })
                });
            }
            g.bench_with_input(BenchmarkId::new("naive_1t", rows), &rows, |b, _| {
                b.iter(|| naive(&soa, black_box(&x), &mut want))
            });
        }
        let x = inputs(1, 9);
        let mut o = [0.0f64; 1];
        g.throughput(Throughput::Elements(1));
        g.bench_function("row_f32", |b| {
            b.iter(|| ens.predict_row_f32(black_box(&x), &mut o))
        });
        let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        g.bench_function("row_f64", |b| {
            b.iter(|| ens.predict_row_f64(black_box(&x64), &mut o))
        });
        g.finish();
    }
}

/// CPU time of the calling thread in ns (`CLOCK_THREAD_CPUTIME_ID`): unlike wall time it
/// excludes time the thread waits for a core, so ratios stay meaningful on a loaded machine.
/// (`/proc/thread-self/schedstat` was used before: on this VM it advanced in 4 ms ticks while
/// the thread ran, quantizing 10,000-row figures to multiples of 400 ns/row.)
fn thread_cpu_ns() -> u64 {
    #[repr(C)]
    struct Timespec {
        sec: i64,
        nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clk: i32, ts: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: clock_gettime writes one timespec (two 64-bit fields on x86_64/aarch64 Linux).
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.sec as u64 * 1_000_000_000 + ts.nsec as u64
}

/// Median CPU ns per call of `f` over `reps` calls.
fn cpu_median(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<u64> = (0..reps)
        .map(|_| {
            let a = thread_cpu_ns();
            f();
            thread_cpu_ns() - a
        })
        .collect();
    t.sort_unstable();
    t[reps / 2] as f64
}

/// Least CPU ns per call of `f` over `reps` calls: on a loaded machine the least disturbed.
fn cpu_min(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..reps)
        .map(|_| {
            let a = thread_cpu_ns();
            f();
            thread_cpu_ns() - a
        })
        .min()
        .unwrap_or(0) as f64
}

/// `TREES_CPU=1 cargo bench -p mle-exec --bench trees`: a table of single-thread CPU time
/// (block kernel, naive traversal, their ratio) instead of the criterion run.
fn cpu_report() {
    println!("| ensemble | rows | block ns/row | naive ns/row | naive / block |");
    println!("|---|---:|---:|---:|---:|");
    for (name, n_trees, depth) in [("500x6", 500, 6), ("100x8", 100, 8)] {
        let soa = random_forest(n_trees, depth, 42 + depth as u64);
        let ens = compile(&soa);
        for rows in [1usize, 1_000, 100_000] {
            let x = inputs(rows, 7);
            let batch = Batch::from_row_major_f32(&x, rows, N_FEATURES).unwrap();
            let mut out = vec![0.0; rows];
            let mut want = vec![0.0; rows];
            // One row is too short for the clock: time 10,000 calls.
            let calls = if rows == 1 { 10_000 } else { 1 };
            let reps = if rows == 1000 { 31 } else { 5 };
            // Interleave the two so that both see the same machine state.
            let mut b = Vec::new();
            let mut n = Vec::new();
            for _ in 0..3 {
                b.push(
                    cpu_median(reps, || {
                        for _ in 0..calls {
                            predict_threads(&ens, black_box(&batch), &mut out, 1)
                        }
                    }) / calls as f64,
                );
                n.push(
                    cpu_median(reps, || {
                        for _ in 0..calls {
                            naive(&soa, black_box(&x), &mut want)
                        }
                    }) / calls as f64,
                );
            }
            assert_eq!(out, want);
            b.sort_by(f64::total_cmp);
            n.sort_by(f64::total_cmp);
            let (b, n) = (b[1] / rows as f64, n[1] / rows as f64);
            println!("| {name} | {rows} | {b:.0} | {n:.0} | {:.2} |", n / b);
        }
        let x = inputs(1, 9);
        let mut o = [0.0f64; 1];
        let mut r = (0..3)
            .map(|_| {
                cpu_median(1, || {
                    for _ in 0..10_000 {
                        ens.predict_row_f32(black_box(&x), &mut o);
                    }
                }) / 10_000.0
            })
            .collect::<Vec<_>>();
        r.sort_by(f64::total_cmp);
        println!("| {name} | predict_row_f32 | {:.0} ns | | |", r[1]);
    }
}

/// `TREES_MLE=dir TREES_X=rows.f32 cargo bench -p mle-exec --bench trees`: single-thread CPU
/// time per row of every `*.mle` in `dir` (its first `TreeEnsemble` node, and the whole model
/// through a `Session`), on 10,000 rows of row-major f32 features read from `TREES_X` (raw
/// little-endian f32, as many columns as the model's features), and the `Session` single-row
/// latency. For the real models of `benches/compare` (exported with `mle_runtime`). Each
/// figure is the least of `TREES_REPS` (default 10) runs: the machine is shared.
fn mle_report(dir: &str) {
    use mle_exec::{Model, RunOptions, Session};
    use std::sync::Arc;
    let raw = std::fs::read(std::env::var("TREES_X").expect("TREES_X: a raw f32 file")).unwrap();
    let xs: Vec<f32> = raw
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "mle"))
        .collect();
    paths.sort();
    // TREES_REPS=1 (and TREES_ONLY=name) for a quick run under valgrind.
    let reps: usize = std::env::var("TREES_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let only = std::env::var("TREES_ONLY").unwrap_or_default();
    paths.retain(|p| p.to_string_lossy().contains(&only));
    println!(
        "| model | ensemble | kernel ns/row | session ns/row | kernel row ns | kernel row ns, 100 rows | session row ns |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for p in paths {
        let model = Arc::new(Model::load(&p, &ReadOptions::default()).unwrap());
        let f = model.n_features();
        let rows = (xs.len() / f).min(10_000);
        let x = &xs[..rows * f];
        let batch = Batch::from_row_major_f32(x, rows, f).unwrap();
        let file = model.file();
        let Some(node) = file.graph().nodes.iter().find(|n| n.op == "TreeEnsemble") else {
            continue;
        };
        let ens = TreeEnsemble::compile(node, file, f).unwrap();
        let mut out = vec![0.0; rows * ens.n_targets()];
        let mut s = Session::new(model.clone());
        let mut k = Vec::new();
        let mut sn = Vec::new();
        for _ in 0..reps.min(3) {
            k.push(cpu_min(reps, || {
                predict_threads(&ens, black_box(&batch), &mut out, 1)
            }));
            sn.push(cpu_min(reps, || {
                black_box(s.predict_batch(&batch, RunOptions { threads: 1 }).unwrap());
            }));
        }
        k.sort_by(f64::total_cmp);
        sn.sort_by(f64::total_cmp);
        let (k, sn) = (k[k.len() / 2], sn[sn.len() / 2]);
        let row = &x[..f];
        let calls = if reps == 1 { 100 } else { 10_000 };
        let lat = cpu_min(reps, || {
            for _ in 0..calls {
                black_box(s.predict_row_f32(black_box(row)).unwrap());
            }
        }) / calls as f64;
        let mut o = vec![0.0; ens.n_targets()];
        let klat = cpu_min(reps, || {
            for _ in 0..calls {
                ens.predict_row_f32(black_box(row), &mut o);
            }
        }) / calls as f64;
        // The same, cycling over 100 different rows (the walks change paths every call).
        let nr = rows.min(100);
        let rlat = cpu_min(reps, || {
            for c in 0..calls {
                let r = c % nr;
                ens.predict_row_f32(black_box(&x[r * f..(r + 1) * f]), &mut o);
            }
        }) / calls as f64;
        println!(
            "| {} | {ens:?} | {:.0} | {:.0} | {klat:.0} | {rlat:.0} | {lat:.0} |",
            p.file_name().unwrap().to_string_lossy(),
            k / rows as f64,
            sn / rows as f64
        );
    }
}

criterion_group!(benches, bench);

fn main() {
    if let Ok(dir) = std::env::var("TREES_MLE") {
        mle_report(&dir);
        return;
    }
    if std::env::var_os("TREES_CPU").is_some() {
        cpu_report();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
