//! `mle sql --cluster df://HOST:PORT`: the query runs on an Apache DataFusion Ballista cluster
//! of `mle-scheduler` / `mle-executor` processes (crate `mle-ballista`, cargo feature
//! `cluster`).

use std::path::Path;

use anyhow::Result;
use mle_format::PublicKey;

/// What `mle sql --cluster` runs.
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
pub struct ClusterQuery<'a> {
    /// The scheduler, `df://HOST:PORT`.
    pub url: &'a str,
    /// The SQL query.
    pub query: &'a str,
    /// `NAME=PATH` table arguments (a Parquet file or a directory of them).
    pub tables: &'a [String],
    /// Write the result here (Parquet) instead of printing it.
    pub output: Option<&'a Path>,
    /// Partitions the query is split into (`None`: the client's core count).
    pub partitions: Option<usize>,
    /// The key the client requires models to be signed by while planning.
    pub public_key: Option<PublicKey>,
}

/// Without the `cluster` feature: a clear error.
#[cfg(not(feature = "cluster"))]
pub fn run(q: ClusterQuery<'_>) -> Result<()> {
    anyhow::bail!(
        "cannot run on {}: this mle was built without cluster support; build with --features cluster \
         (cargo build --release -p mle-cli --features cluster)",
        q.url
    )
}

/// Runs the query on the cluster and prints the result or writes it to Parquet.
#[cfg(feature = "cluster")]
pub fn run(q: ClusterQuery<'_>) -> Result<()> {
    use std::io::Write;

    use anyhow::{bail, Context};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::prelude::ParquetReadOptions;

    if q.partitions == Some(0) {
        bail!("--threads must be at least 1");
    }
    // Executors read the tables themselves: register absolute paths, checked here first.
    let mut tables = Vec::with_capacity(q.tables.len());
    for t in q.tables {
        let Some((name, path)) = t
            .split_once('=')
            .filter(|(n, p)| !n.is_empty() && !p.is_empty())
        else {
            bail!("--table {t:?} must be NAME=PATH (a Parquet file or a directory of them)");
        };
        if !Path::new(path).exists() {
            bail!("--table {name}: no such file or directory {path}");
        }
        let abs = std::path::absolute(path)
            .with_context(|| format!("--table {name}: cannot make {path} absolute"))?;
        let abs = abs
            .to_str()
            .with_context(|| format!("--table {name}: {path} is not valid UTF-8"))?
            .to_string();
        tables.push((name.to_string(), abs));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let batches = rt.block_on(async {
        let mut config = mle_ballista::default_client_config();
        if let Some(n) = q.partitions {
            config = config.with_target_partitions(n);
        }
        let opts = mle_ballista::udf_options(q.public_key);
        let ctx = mle_ballista::connect_with_config(q.url, config, opts).await?;
        for (name, path) in &tables {
            ctx.register_parquet(name.as_str(), path.as_str(), ParquetReadOptions::default())
                .await
                .with_context(|| format!("cannot register {path} as table {name}"))?;
        }
        let df = ctx.sql(q.query).await.context("query failed")?;
        let schema = df.schema().inner().clone();
        let batches = df
            .collect()
            .await
            .with_context(|| format!("query failed on the cluster {}", q.url))?;
        anyhow::Ok((schema, batches))
    })?;
    let (schema, batches) = batches;
    match q.output {
        Some(path) => {
            // Written next to the destination, renamed when complete.
            let mut partial = path.as_os_str().to_owned();
            partial.push(".partial");
            let partial = std::path::PathBuf::from(partial);
            let write = || -> Result<usize> {
                let file = std::fs::File::create(&partial)
                    .with_context(|| format!("cannot create {}", partial.display()))?;
                let mut w = ArrowWriter::try_new(file, schema, None)
                    .with_context(|| format!("cannot write Parquet to {}", path.display()))?;
                let mut rows = 0;
                for b in &batches {
                    rows += b.num_rows();
                    w.write(b)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                }
                w.close()
                    .with_context(|| format!("cannot finish {}", path.display()))?;
                std::fs::rename(&partial, path)
                    .with_context(|| format!("cannot move the result to {}", path.display()))?;
                Ok(rows)
            };
            let rows = write().inspect_err(|_| {
                let _ = std::fs::remove_file(&partial);
            })?;
            eprintln!("wrote {rows} rows to {}", path.display());
        }
        None => {
            let table = pretty_format_batches(&batches).context("cannot format the result")?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{table}")?;
            out.flush()?;
        }
    }
    Ok(())
}
