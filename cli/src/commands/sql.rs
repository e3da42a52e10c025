//! `mle sql`: run a query in DataFusion with `mle_predict` and `mle_predict_proba` registered.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::execution::context::SessionContext;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::prelude::{ParquetReadOptions, SessionConfig};
use futures::StreamExt;

use crate::util::{create_output, read_public_key};

/// Arguments of `mle sql`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The SQL query. Tables are those given with --table, or a Parquet path in quotes
    /// (`FROM 'data.parquet'`).
    query: String,
    /// Register a Parquet file as a table: NAME=FILE.parquet (repeatable).
    #[arg(long = "table", short = 't', value_name = "NAME=FILE")]
    tables: Vec<String>,
    /// Write the result to this Parquet file instead of printing a table.
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    /// Require every model to be signed by this public key.
    #[arg(long)]
    public_key: Option<PathBuf>,
    /// Partitions DataFusion runs in parallel (default: the number of cores).
    #[arg(long)]
    threads: Option<usize>,
}

/// Runs `mle sql`.
pub fn run(a: Args) -> Result<()> {
    let public_key = read_public_key(a.public_key.as_deref())?;
    let mut tables = Vec::with_capacity(a.tables.len());
    for t in &a.tables {
        let Some((name, file)) = t.split_once('=') else {
            bail!("--table {t:?} must be NAME=FILE.parquet");
        };
        if name.is_empty() || file.is_empty() {
            bail!("--table {t:?} must be NAME=FILE.parquet");
        }
        if !std::path::Path::new(file).is_file() {
            bail!("--table {name}: no such file {file}");
        }
        tables.push((name.to_string(), file.to_string()));
    }
    let threads = match a.threads {
        Some(0) => bail!("--threads must be at least 1"),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let config = SessionConfig::new().with_target_partitions(threads);
        let ctx = SessionContext::new_with_config(config).enable_url_table();
        mle_sql::register_trusted(&ctx, public_key);
        for (name, file) in &tables {
            ctx.register_parquet(name.as_str(), file.as_str(), ParquetReadOptions::default())
                .await
                .with_context(|| format!("cannot register {file} as table {name}"))?;
        }
        let df = ctx.sql(&a.query).await.context("query failed")?;
        match &a.output {
            Some(path) => {
                let schema = df.schema().inner().clone();
                let mut stream = df.execute_stream().await.context("query failed")?;
                let props = WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::default()))
                    .build();
                let file = create_output(path)?;
                let mut writer = ArrowWriter::try_new(file, schema, Some(props))
                    .with_context(|| format!("cannot write Parquet to {}", path.display()))?;
                let mut rows = 0usize;
                while let Some(batch) = stream.next().await {
                    let batch = batch.context("query failed")?;
                    rows += batch.num_rows();
                    writer
                        .write(&batch)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                }
                writer
                    .close()
                    .with_context(|| format!("cannot finish {}", path.display()))?;
                eprintln!("wrote {rows} rows to {}", path.display());
            }
            None => {
                let batches = df.collect().await.context("query failed")?;
                let table = pretty_format_batches(&batches).context("cannot format the result")?;
                let mut out = std::io::stdout().lock();
                writeln!(out, "{table}")?;
                out.flush()?;
            }
        }
        Ok(())
    })
}
