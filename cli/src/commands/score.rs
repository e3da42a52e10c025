//! `mle score`: stream a Parquet file through a model, batch by batch.
//!
//! Three stages overlap, joined by bounded queues of one batch: a reader thread decodes the
//! next batch, the main thread scores the current one (on `--threads` executor threads) and a
//! writer thread encodes the one before. At most a few batches are in memory at any time,
//! whatever the file's size.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use indicatif::{ProgressBar, ProgressStyle};
use mle_arrow::explain::explain_batch_array;
use mle_arrow::{columns_by_name, explain_fields, output_arrays, BoundColumns, Features};
use mle_exec::RunOptions;

use crate::util::{load_model, open_input, thousands, PendingOutput, TrustArgs};

/// Arguments of `mle score`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model file (.mle).
    #[arg(long, short = 'm')]
    model: PathBuf,
    /// The Parquet file to score.
    input: PathBuf,
    /// Where to write the scored Parquet file.
    #[arg(long, short = 'o')]
    output: PathBuf,
    /// Input columns to use as the model's features, in the model's feature order
    /// (default: the columns named like the model's features; extra columns are kept in the
    /// output). String and dictionary columns bind to string and category features.
    #[arg(long, value_delimiter = ',')]
    columns: Option<Vec<String>>,
    /// Executor threads per batch.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Rows per batch (bounds memory use).
    #[arg(long, default_value_t = 65536)]
    batch_size: usize,
    /// Also write each row's feature contributions (exact path-dependent TreeSHAP of the
    /// tree ensemble's raw output) as the struct column `contributions`: one Float64 field
    /// per feature and `bias` (a list per class for multiclass models). Tree models only.
    #[arg(long)]
    explain: bool,
    #[command(flatten)]
    trust: TrustArgs,
}

/// Runs `mle score`.
pub fn run(a: Args) -> Result<()> {
    if a.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    if a.threads == 0 {
        bail!("--threads must be at least 1");
    }
    let cached = load_model(&a.model, a.trust.policy()?.as_ref())?;
    let model = cached.model();
    let meta = model.metadata();
    let kind = cached
        .output_kind()
        .with_context(|| format!("model {} cannot be scored", a.model.display()))?;
    let features = Features::of(meta);
    let feature_names = features.names();

    let file = open_input(&a.input)?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .with_context(|| format!("{} is not a readable Parquet file", a.input.display()))?;
    let total_rows = u64::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
    let in_schema = builder.schema().clone();
    let feature_idx = match &a.columns {
        None => columns_by_name(&in_schema, feature_names).with_context(|| {
            format!(
                "{} does not have the model's feature columns (use --columns to bind others by position)",
                a.input.display()
            )
        })?,
        Some(cols) => {
            if cols.len() != features.len() {
                bail!(
                    "--columns lists {} columns but model {} takes {} features ({})",
                    cols.len(),
                    a.model.display(),
                    features.len(),
                    feature_names.join(", ")
                );
            }
            columns_by_name(&in_schema, cols)
                .with_context(|| format!("bad --columns for {}", a.input.display()))?
        }
    };
    let names: Vec<String> = feature_idx
        .iter()
        .map(|&i| in_schema.field(i).name().clone())
        .collect();
    // Column types are checked against the features' kinds before anything is read or
    // written, so a file with no rows gets the same error as one with many.
    features
        .check_columns(
            names
                .iter()
                .map(String::as_str)
                .zip(feature_idx.iter().map(|&i| in_schema.field(i).data_type())),
        )
        .with_context(|| format!("cannot bind the columns of {}", a.input.display()))?;

    let mut out_fields: Vec<Arc<Field>> = in_schema.fields().iter().cloned().collect();
    let mut new_fields = kind.fields();
    if a.explain {
        // Refused before anything is read or written when the model cannot be explained.
        let info = model
            .explain_info()
            .with_context(|| format!("--explain: model {}", a.model.display()))?;
        let fields = explain_fields(&info)
            .with_context(|| format!("--explain: model {}", a.model.display()))?;
        new_fields.push(Arc::new(Field::new(
            mle_arrow::CONTRIBUTIONS,
            datafusion::arrow::datatypes::DataType::Struct(fields),
            false,
        )));
    }
    for f in new_fields {
        if in_schema.index_of(f.name()).is_ok() {
            bail!(
                "{} already has a column named {:?}; rename it before scoring",
                a.input.display(),
                f.name()
            );
        }
        out_fields.push(f);
    }
    let out_schema = Arc::new(Schema::new_with_metadata(
        out_fields,
        in_schema.metadata().clone(),
    ));
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let (pending, out) = PendingOutput::create(&a.output)?;
    let mut writer = ArrowWriter::try_new(out, out_schema.clone(), Some(props))
        .with_context(|| format!("cannot write Parquet to {}", a.output.display()))?;
    let output_name = a.output.display().to_string();

    let reader = builder
        .with_batch_size(a.batch_size)
        .build()
        .with_context(|| format!("cannot read {}", a.input.display()))?;

    let progress = if std::io::stderr().is_terminal() {
        let pb = ProgressBar::new(total_rows);
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} rows ({per_sec}, eta {eta})",
        ) {
            pb.set_style(style);
        }
        pb
    } else {
        ProgressBar::hidden()
    };

    let start = Instant::now();
    let input_name = a.input.display().to_string();
    let (tx, rx) = sync_channel(1);
    let decoder = std::thread::spawn(move || {
        for batch in reader {
            if tx.send(batch).is_err() {
                break;
            }
        }
    });

    // The writer: encodes and writes each scored batch, then closes the file. It stops at
    // its first error (the scorer then sees the queue closed and asks it why).
    let (wtx, wrx) = sync_channel::<RecordBatch>(1);
    let encoder = std::thread::spawn(move || -> Result<()> {
        for b in wrx {
            writer
                .write(&b)
                .with_context(|| format!("cannot write {output_name}"))?;
        }
        writer
            .close()
            .with_context(|| format!("cannot finish {output_name}"))?;
        Ok(())
    });

    let mut session = cached.sessions().take();
    let opts = RunOptions { threads: a.threads };
    let mut rows: u64 = 0;
    let result = (|| -> Result<()> {
        for batch in rx {
            let batch = batch.with_context(|| format!("cannot read {input_name}"))?;
            let bound = BoundColumns::bind_at(&batch, &feature_idx, &features)
                .with_context(|| format!("cannot bind the columns of {input_name}"))?;
            let view = bound.batch()?;
            let outputs = session
                .predict_batch_owned(&view, opts)
                .with_context(|| format!("model {} failed", a.model.display()))?;
            let arrays = output_arrays(&kind, meta, outputs)?;
            let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
            columns.push(arrays.prediction);
            columns.extend(arrays.probabilities);
            if a.explain {
                columns.push(
                    explain_batch_array(&mut session, &view, opts)
                        .with_context(|| format!("model {} failed", a.model.display()))?,
                );
            }
            let out_batch = RecordBatch::try_new(out_schema.clone(), columns)
                .context("cannot assemble the output batch")?;
            let n_rows = batch.num_rows() as u64;
            if wtx.send(out_batch).is_err() {
                // The writer stopped: its error is returned below.
                break;
            }
            rows += n_rows;
            progress.set_position(rows);
        }
        Ok(())
    })();
    // Dropping the receiver (end of loop or error) stops the decoder; dropping the sender
    // lets the writer finish the file.
    let _ = decoder.join();
    drop(wtx);
    let written = match encoder.join() {
        Ok(r) => r,
        Err(_) => Err(anyhow::anyhow!(
            "the writer of {} panicked",
            a.output.display()
        )),
    };
    result?;
    written?;
    pending.commit()?;
    progress.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    let rate = if secs > 0.0 { rows as f64 / secs } else { 0.0 };
    eprintln!(
        "scored {} rows in {secs:.2} s ({} rows/s) -> {}",
        thousands(rows),
        thousands(rate as u64),
        a.output.display()
    );
    Ok(())
}
