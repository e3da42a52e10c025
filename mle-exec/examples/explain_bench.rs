//! Times `Session::explain_batch` and `Session::apply_batch` on one thread (used by
//! `benches/compare/explain.py`, which writes the model and the rows):
//!
//! ```text
//! cargo run --release -p mle-exec --example explain_bench -- MODEL.mle ROWS.f64 N_FEATURES [RUNS]
//! ```
//!
//! `ROWS.f64` holds the rows row-major as little-endian f64 (NaN = missing). Prints one JSON
//! line: the best and median seconds per call of each.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use mle_exec::{Batch, Model, RunOptions, Session};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("explain_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn stats(mut t: Vec<f64>) -> (f64, f64) {
    t.sort_by(f64::total_cmp);
    (
        t.first().copied().unwrap_or(0.0),
        t.get(t.len() / 2).copied().unwrap_or(0.0),
    )
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let [_, model, rows, nf, rest @ ..] = args.as_slice() else {
        return Err("usage: explain_bench MODEL.mle ROWS.f64 N_FEATURES [RUNS]".into());
    };
    let nf: usize = nf.parse().map_err(|e| format!("N_FEATURES {nf:?}: {e}"))?;
    let runs: usize = match rest.first() {
        Some(r) => r.parse().map_err(|e| format!("RUNS {r:?}: {e}"))?,
        None => 10,
    };
    let bytes = std::fs::read(rows).map_err(|e| format!("{rows}: {e}"))?;
    let x: Vec<f64> = bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect();
    if nf == 0 || x.len() % nf != 0 {
        return Err(format!("{rows}: {} values are not rows of {nf}", x.len()));
    }
    let n = x.len() / nf;
    let model = Model::load(model, &Default::default()).map_err(|e| e.to_string())?;
    let mut s = Session::new(Arc::new(model));
    let batch = Batch::from_row_major_f64(&x, n, nf).map_err(|e| e.to_string())?;
    let build = Instant::now();
    s.model().explain_info().map_err(|e| e.to_string())?;
    let build = build.elapsed().as_secs_f64();
    let opts = RunOptions { threads: 1 };
    let mut time = |f: &mut dyn FnMut(&mut Session) -> Result<(), String>| {
        f(&mut s)?; // warm: the explainer is built on first use
        let mut t = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t0 = Instant::now();
            f(&mut s)?;
            t.push(t0.elapsed().as_secs_f64());
        }
        Ok::<_, String>(stats(t))
    };
    let (eb, em) = time(&mut |s| {
        s.explain_batch(&batch, opts)
            .map(|_| ())
            .map_err(|e| e.to_string())
    })?;
    let (ab, am) = time(&mut |s| {
        s.apply_batch(&batch, opts)
            .map(|_| ())
            .map_err(|e| e.to_string())
    })?;
    println!(
        "{{\"rows\": {n}, \"explainer_build_s\": {build}, \"explain_best_s\": {eb}, \"explain_median_s\": {em}, \"apply_best_s\": {ab}, \"apply_median_s\": {am}}}"
    );
    Ok(())
}
