//! `mle bench`: latency at batch size 1 and throughput at a large batch.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use mle_arrow::{BoundColumns, ColumnClass, Features};
use mle_exec::{Batch, ColumnData, RunOptions};

use crate::util::{load_model, open_input, thousands, TrustArgs};

/// Arguments of `mle bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model file (.mle).
    #[arg(long, short = 'm')]
    model: PathBuf,
    /// Take rows from this Parquet file (columns named like the model's features).
    #[arg(long, conflicts_with = "rows")]
    input: Option<PathBuf>,
    /// Use this many rows of random features instead of a file.
    #[arg(long)]
    rows: Option<usize>,
    /// Executor threads for the throughput run.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Single-row predictions timed for the latency percentiles.
    #[arg(long, default_value_t = 2000)]
    iterations: usize,
    #[command(flatten)]
    trust: TrustArgs,
}

/// A small deterministic generator (xorshift64*) for synthetic features.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted.get(i).copied().unwrap_or(0.0)
}

/// The benchmark's rows, row-major.
enum Rows {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

/// Runs `mle bench`.
pub fn run(a: Args) -> Result<()> {
    if a.threads == 0 || a.iterations == 0 {
        bail!("--threads and --iterations must be at least 1");
    }
    let cached = load_model(&a.model, a.trust.policy()?.as_ref())?;
    let model = cached.model().clone();
    let features = Features::of(model.metadata());
    let nf = features.len();
    // Row-major features: f32 when every feature column of the file is Float32 (what
    // `mle score` runs on such a file), else f64.
    let (rows, data): (usize, Rows) = match (&a.input, a.rows) {
        (Some(path), _) => {
            let builder = ParquetRecordBatchReaderBuilder::try_new(open_input(path)?)
                .with_context(|| format!("{} is not a readable Parquet file", path.display()))?;
            let schema = builder.schema().clone();
            let idx = features.columns_by_name(&schema).with_context(|| {
                format!("{} does not have the model's features", path.display())
            })?;
            // The timed rows are numbers: a string or dictionary column (for a string or
            // category feature) cannot be one; `mle score` scores such files.
            for (feature, &i) in features.iter().zip(&idx) {
                let field = schema.field(i);
                if mle_arrow::column_class(field.data_type()) == Some(ColumnClass::Strings) {
                    bail!(
                        "mle bench --input times numeric rows, but column {:?} of {} (for {} feature {:?}) has type {}; give category codes instead, or score the file with `mle score`",
                        field.name(),
                        path.display(),
                        feature.kind_label(),
                        feature.name,
                        field.data_type()
                    );
                }
            }
            let (mut d32, mut d64) = (Vec::new(), Vec::new());
            let mut all_f32 = true;
            let mut rows = 0;
            for batch in builder.build()? {
                let batch = batch.with_context(|| format!("cannot read {}", path.display()))?;
                let bound = BoundColumns::bind_at(&batch, &idx, &features)?;
                let view = bound.batch()?;
                all_f32 &= view
                    .columns()
                    .iter()
                    .all(|c| matches!(c.data, ColumnData::F32(_)));
                for r in 0..view.n_rows() {
                    d64.extend(view.columns().iter().map(|c| c.get_f64(r)));
                }
                rows += view.n_rows();
            }
            if all_f32 {
                // Exact: these values were f32.
                d32.extend(d64.iter().map(|&v| v as f32));
                (rows, Rows::F32(d32))
            } else {
                (rows, Rows::F64(d64))
            }
        }
        (None, rows) => {
            let rows = rows.unwrap_or(100_000);
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
            let data = (0..rows * nf).map(|_| rng.next_f64() * 2.0 - 1.0).collect();
            (rows, Rows::F64(data))
        }
    };
    if rows == 0 {
        bail!("no rows to benchmark");
    }
    let mut session = cached.sessions().take();

    // Latency: one row at a time, cycling through the data.
    let mut lat = Vec::with_capacity(a.iterations);
    for i in 0..a.iterations.min(1_000_000) {
        let r = i % rows;
        let t = Instant::now();
        match &data {
            Rows::F32(d) => session.predict_row_f32(d.get(r * nf..(r + 1) * nf).unwrap_or(&[])),
            Rows::F64(d) => session.predict_row(d.get(r * nf..(r + 1) * nf).unwrap_or(&[])),
        }
        .context("single-row prediction failed")?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    lat.sort_by(f64::total_cmp);

    // Throughput: the whole data as one batch, repeated for at least ~1 s.
    let batch = match &data {
        Rows::F32(d) => Batch::from_row_major_f32(d, rows, nf)?,
        Rows::F64(d) => Batch::from_row_major_f64(d, rows, nf)?,
    };
    let opts = RunOptions { threads: a.threads };
    session.predict_batch(&batch, opts)?; // warm-up
    let start = Instant::now();
    let mut runs = 0u64;
    while runs == 0 || (start.elapsed().as_secs_f64() < 1.0 && runs < 1000) {
        session.predict_batch(&batch, opts)?;
        runs += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let rate = (rows as u64 * runs) as f64 / secs;
    let dtype = match data {
        Rows::F32(_) => "f32",
        Rows::F64(_) => "f64",
    };
    println!("{}: {} features, {dtype} rows", a.model.display(), nf);
    println!(
        "  latency (batch 1, {} runs): p50 {:.1} µs, p90 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.9),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(0.0)
    );
    println!(
        "  throughput (batch {}, {} thread{}, {runs} runs): {} rows/s",
        thousands(rows as u64),
        a.threads,
        if a.threads == 1 { "" } else { "s" },
        thousands(rate as u64)
    );
    Ok(())
}
