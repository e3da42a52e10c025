//! `mle score`: stream a Parquet file through a model, row group by row group.
//!
//! Three stages overlap, joined by bounded queues: a reader thread decodes the next batch of
//! the feature columns (one batch ahead), the main thread scores the current one (on
//! `--threads` executor threads) and a writer thread encodes the new columns of those before.
//! The input's columns are not decoded and encoded again: each output row group is the
//! input's row group, its column chunks copied byte for byte, plus the new columns. Copying a
//! row group's chunks takes the writer a while, so the scored columns may queue up to
//! [`QUEUED_OUTPUT_BYTES`] meanwhile (the scorer does not wait on the copy). At most that, two
//! decoded batches and one row group's new columns (encoded) are in memory at any time,
//! whatever the file's size.

use std::fs::File;
use std::io::{BufReader, BufWriter, IsTerminal, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::mpsc::{channel, sync_channel};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use datafusion::parquet::arrow::arrow_writer::{
    compute_leaves, ArrowColumnWriter, ArrowRowGroupWriterFactory,
};
use datafusion::parquet::arrow::{
    add_encoded_arrow_schema_to_metadata, ArrowSchemaConverter, ProjectionMask,
};
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::column::writer::ColumnCloseResult;
use datafusion::parquet::errors::Result as ParquetResult;
use datafusion::parquet::file::metadata::PageIndexPolicy;
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::file::reader::{ChunkReader, Length};
use datafusion::parquet::file::writer::SerializedFileWriter;
use datafusion::parquet::schema::types::Type;
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
    let not_parquet = || format!("{} is not a readable Parquet file", a.input.display());
    // With the page index, when the file has one: it is copied with the column chunks.
    let arrow_meta = ArrowReaderMetadata::load(
        &file,
        ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional),
    )
    .with_context(not_parquet)?;
    let pq_meta = arrow_meta.metadata().clone();
    let total_rows = u64::try_from(pq_meta.file_metadata().num_rows()).unwrap_or(0);
    let in_schema = arrow_meta.schema().clone();
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
    for f in &new_fields {
        if in_schema.index_of(f.name()).is_ok() {
            bail!(
                "{} already has a column named {:?}; rename it before scoring",
                a.input.display(),
                f.name()
            );
        }
        out_fields.push(f.clone());
    }
    let out_schema = Arc::new(Schema::new_with_metadata(
        out_fields,
        in_schema.metadata().clone(),
    ));
    // The output's Parquet schema: the input's own column types (so that its column chunks
    // can be copied as they are), then the new columns'.
    let in_root = pq_meta.file_metadata().schema_descr().root_schema();
    let new_pq = ArrowSchemaConverter::new()
        .convert(&Schema::new(new_fields.clone()))
        .context("cannot map the model's outputs to Parquet types")?;
    let mut pq_fields = in_root.get_fields().to_vec();
    pq_fields.extend(new_pq.root_schema().get_fields().iter().cloned());
    let pq_root = Type::group_type_builder(in_root.name())
        .with_fields(pq_fields)
        .build()
        .context("cannot build the output's Parquet schema")?;
    // Page indexes (offsets and column statistics of each page): the output has them on
    // every column chunk or on none (parquet's writer refuses a mix). When every input chunk
    // has one, they are copied with the chunks and the new columns get theirs; else none.
    let offset_index = pq_meta
        .offset_index()
        .filter(|groups| {
            groups.len() == pq_meta.num_row_groups()
                && groups
                    .iter()
                    .zip(pq_meta.row_groups())
                    .all(|(g, rg)| g.len() == rg.num_columns())
        })
        .cloned();
    let column_index = offset_index
        .as_ref()
        .and_then(|_| pq_meta.column_index().cloned());
    let mut props =
        WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::default()));
    if offset_index.is_none() {
        props = props
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .set_offset_index_disabled(true);
    }
    let mut props = props.build();
    add_encoded_arrow_schema_to_metadata(&out_schema, &mut props);
    let (pending, out) = PendingOutput::create(&a.output)?;
    let output_name = a.output.display().to_string();
    // Large writes: parquet's own buffer is 8 KiB, and most of the output is copied chunks.
    let out = BufWriter::with_capacity(IO_BUFFER_BYTES, out);
    let mut writer = SerializedFileWriter::new(out, Arc::new(pq_root), Arc::new(props))
        .with_context(|| format!("cannot write Parquet to {output_name}"))?;
    let factory = ArrowRowGroupWriterFactory::new(&writer, out_schema.clone());
    let in_leaves = pq_meta.file_metadata().schema_descr().num_columns();

    // Only the feature columns are decoded: the projection keeps them in file order.
    let mut projected = feature_idx.clone();
    projected.sort_unstable();
    projected.dedup();
    let local_idx: Vec<usize> = feature_idx
        .iter()
        .map(|i| projected.binary_search(i).unwrap_or_default())
        .collect();
    let mask = ProjectionMask::roots(arrow_meta.parquet_schema(), projected.iter().copied());
    let n_groups = pq_meta.num_row_groups();
    let reader_file = file
        .try_clone()
        .with_context(|| format!("cannot read {}", a.input.display()))?;
    let batch_size = a.batch_size;
    let reader_meta = arrow_meta.clone();

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
    // The reader: the feature columns of each row group in turn, batch by batch, then the
    // row group's end (batches never span two row groups).
    let (tx, rx) = sync_channel::<Result<Piece<RecordBatch>>>(1);
    let decoder = std::thread::spawn(move || {
        for rg in 0..n_groups {
            let reader = match reader_file
                .try_clone()
                .map_err(anyhow::Error::from)
                .and_then(|f| {
                    ParquetRecordBatchReaderBuilder::new_with_metadata(f, reader_meta.clone())
                        .with_projection(mask.clone())
                        .with_row_groups(vec![rg])
                        .with_batch_size(batch_size)
                        .build()
                        .map_err(anyhow::Error::from)
                }) {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            for batch in reader {
                if tx
                    .send(batch.map(Piece::Batch).map_err(Into::into))
                    .is_err()
                {
                    return;
                }
            }
            if tx.send(Ok(Piece::End)).is_err() {
                return;
            }
        }
    });

    // The writer: encodes the new columns of each scored batch; at a row group's end, copies
    // the input row group's column chunks and appends the new ones. It stops at its first
    // error (the scorer then sees the queue closed and asks it why).
    let (wtx, wrx) = channel::<(Piece<Vec<ArrayRef>>, usize)>();
    let queued = Arc::new(ByteBudget::new(QUEUED_OUTPUT_BYTES));
    let writer_queued = queued.clone();
    // Its own open file (a clone would share the reader's file position).
    let in_file = CopySource(open_input(&a.input)?);
    drop(file);
    let write_meta = pq_meta.clone();
    let encoder = std::thread::spawn(move || -> Result<()> {
        // However the writer ends, the scorer must not wait for room any more.
        let _closed = writer_queued.closer();
        let cannot_write = || format!("cannot write Parquet to {output_name}");
        let mut rg = 0;
        let mut open: Option<Vec<ArrowColumnWriter>> = None;
        let new_writers = |rg: usize| -> Result<Vec<ArrowColumnWriter>> {
            let mut w = factory
                .create_column_writers(rg)
                .with_context(cannot_write)?;
            Ok(w.split_off(in_leaves.min(w.len())))
        };
        for (piece, bytes) in wrx {
            writer_queued.release(bytes);
            match piece {
                Piece::Batch(arrays) => {
                    let writers = match &mut open {
                        Some(w) => w,
                        None => open.insert(new_writers(rg)?),
                    };
                    let mut leaves = writers.iter_mut();
                    for (field, array) in new_fields.iter().zip(&arrays) {
                        for leaf in compute_leaves(field, array).with_context(cannot_write)? {
                            leaves
                                .next()
                                .context("more output columns than the schema has")?
                                .write(&leaf)
                                .with_context(cannot_write)?;
                        }
                    }
                }
                Piece::End => {
                    let writers = match open.take() {
                        Some(w) => w,
                        None => new_writers(rg)?,
                    };
                    let group = write_meta
                        .row_groups()
                        .get(rg)
                        .with_context(|| format!("{input_name}: no row group {rg}"))?;
                    let mut out = writer.next_row_group().with_context(cannot_write)?;
                    for (c, chunk) in group.columns().iter().enumerate() {
                        let close = ColumnCloseResult {
                            bytes_written: u64::try_from(chunk.compressed_size()).unwrap_or(0),
                            rows_written: u64::try_from(group.num_rows()).unwrap_or(0),
                            metadata: chunk.clone(),
                            bloom_filter: None,
                            column_index: column_index
                                .as_ref()
                                .and_then(|g| g.get(rg)?.get(c).cloned()),
                            offset_index: offset_index
                                .as_ref()
                                .and_then(|g| g.get(rg)?.get(c).cloned()),
                        };
                        out.append_column(&in_file, close).with_context(|| {
                            format!("cannot copy {}'s columns to {output_name}", input_name)
                        })?;
                    }
                    for w in writers {
                        w.close()
                            .and_then(|c| c.append_to_row_group(&mut out))
                            .with_context(cannot_write)?;
                    }
                    out.close().with_context(cannot_write)?;
                    rg += 1;
                }
            }
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
        for piece in rx {
            let batch = match piece.with_context(|| format!("cannot read {}", a.input.display()))? {
                Piece::Batch(b) => b,
                Piece::End => {
                    if wtx.send((Piece::End, 0)).is_err() {
                        break;
                    }
                    continue;
                }
            };
            let bound = BoundColumns::bind_at(&batch, &local_idx, &features)
                .with_context(|| format!("cannot bind the columns of {}", a.input.display()))?;
            let view = bound.batch()?;
            let outputs = session
                .predict_batch_owned(&view, opts)
                .with_context(|| format!("model {} failed", a.model.display()))?;
            let arrays = output_arrays(&kind, meta, outputs)?;
            let mut columns: Vec<ArrayRef> = vec![arrays.prediction];
            columns.extend(arrays.probabilities);
            if a.explain {
                columns.push(
                    explain_batch_array(&mut session, &view, opts)
                        .with_context(|| format!("model {} failed", a.model.display()))?,
                );
            }
            let n_rows = batch.num_rows() as u64;
            let bytes = columns.iter().map(|c| c.get_array_memory_size()).sum();
            if !queued.acquire(bytes) || wtx.send((Piece::Batch(columns), bytes)).is_err() {
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

/// The buffer of the output file and of reads of the input's chunks to copy.
const IO_BUFFER_BYTES: usize = 1 << 20;

/// The input file, as the source of the column chunks copied to the output: reads of
/// [`IO_BUFFER_BYTES`] (parquet's reader of a `File` reads 8 KiB at a time).
struct CopySource(File);

impl Length for CopySource {
    fn len(&self) -> u64 {
        Length::len(&self.0)
    }
}

impl ChunkReader for CopySource {
    type T = BufReader<File>;

    fn get_read(&self, start: u64) -> ParquetResult<BufReader<File>> {
        let mut f = self.0.try_clone()?;
        f.seek(SeekFrom::Start(start))?;
        Ok(BufReader::with_capacity(IO_BUFFER_BYTES, f))
    }

    fn get_bytes(&self, start: u64, length: usize) -> ParquetResult<Bytes> {
        self.0.get_bytes(start, length)
    }
}

/// How many bytes of scored columns may wait for the writer (one batch always may).
const QUEUED_OUTPUT_BYTES: usize = 32 << 20;

/// A count of bytes in a queue, bounded: the scorer takes room for each batch it sends (and
/// waits while there is none), the writer gives it back as it takes the batch.
struct ByteBudget {
    state: Mutex<Queued>,
    changed: Condvar,
    limit: usize,
}

struct Queued {
    bytes: usize,
    closed: bool,
}

impl ByteBudget {
    fn new(limit: usize) -> Self {
        ByteBudget {
            state: Mutex::new(Queued {
                bytes: 0,
                closed: false,
            }),
            changed: Condvar::new(),
            limit,
        }
    }

    /// Waits for room for `bytes` (always there when nothing is queued) and takes it; false
    /// when the receiving side has gone.
    fn acquire(&self, bytes: usize) -> bool {
        let mut q = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while !q.closed && q.bytes > 0 && q.bytes.saturating_add(bytes) > self.limit {
            q = self.changed.wait(q).unwrap_or_else(PoisonError::into_inner);
        }
        q.bytes = q.bytes.saturating_add(bytes);
        !q.closed
    }

    fn release(&self, bytes: usize) {
        let mut q = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        q.bytes = q.bytes.saturating_sub(bytes);
        self.changed.notify_all();
    }

    /// A guard that closes the budget when dropped: waiting senders are woken and refused.
    fn closer(&self) -> BudgetCloser<'_> {
        BudgetCloser(self)
    }
}

struct BudgetCloser<'a>(&'a ByteBudget);

impl Drop for BudgetCloser<'_> {
    fn drop(&mut self) {
        let mut q = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        q.closed = true;
        self.0.changed.notify_all();
    }
}

/// What flows between `mle score`'s stages: a batch, or the end of the current row group.
enum Piece<T> {
    Batch(T),
    End,
}

#[cfg(test)]
mod tests {
    use super::ByteBudget;
    use std::sync::mpsc::channel;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn a_full_budget_waits_for_release_and_always_admits_one_batch() {
        let budget = Arc::new(ByteBudget::new(100));
        // Larger than the limit, but nothing is queued: admitted.
        assert!(budget.acquire(150));
        let (done, waited) = channel();
        let b = budget.clone();
        let sender = std::thread::spawn(move || {
            let ok = b.acquire(10);
            let _ = done.send(ok);
        });
        // No room until the first batch is taken.
        assert!(waited.recv_timeout(Duration::from_millis(200)).is_err());
        budget.release(150);
        assert_eq!(waited.recv_timeout(Duration::from_secs(10)), Ok(true));
        let _ = sender.join();
        // 10 queued: 90 more fit without waiting.
        assert!(budget.acquire(90));
        budget.release(100);
    }

    #[test]
    fn a_closed_budget_wakes_and_refuses_waiting_senders() {
        let budget = Arc::new(ByteBudget::new(100));
        assert!(budget.acquire(100));
        let (done, waited) = channel();
        let b = budget.clone();
        let sender = std::thread::spawn(move || {
            let _ = done.send(b.acquire(1));
        });
        assert!(waited.recv_timeout(Duration::from_millis(200)).is_err());
        drop(budget.closer());
        assert_eq!(waited.recv_timeout(Duration::from_secs(10)), Ok(false));
        let _ = sender.join();
        assert!(!budget.acquire(1));
    }
}
