//! `mle sql`: run a query in DataFusion with `mle_predict`, `mle_predict_proba` and the table
//! function `mle_score(model, table)` registered.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::common::DataFusionError;
use datafusion::execution::context::SessionContext;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::prelude::{ParquetReadOptions, SessionConfig};
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::ast::{
    visit_expressions, visit_relations, Expr, FunctionArg, FunctionArgExpr, FunctionArguments,
    ObjectName, ObjectNamePart, TableFactor, Value, Visit, Visitor,
};
use futures::StreamExt;
use mle_format::PublicKey;

use crate::balanced_scan::BalancedParquetScan;
use crate::util::{open_input, PendingOutput, TrustArgs, TrustPolicy};

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
    #[command(flatten)]
    trust: TrustArgs,
    /// Partitions DataFusion runs in parallel (default: the number of cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Run the query on a Ballista cluster (mle-scheduler / mle-executor) at df://HOST:PORT;
    /// tables may then be directories, and every path must be readable by every executor.
    /// Needs an mle built with `--features cluster`.
    #[arg(long, value_name = "df://HOST:PORT")]
    cluster: Option<String>,
}

/// Runs `mle sql`.
pub fn run(a: Args) -> Result<()> {
    let refs = query_refs(&a.query);
    let public_key = match a.trust.policy()? {
        Some(policy) => Some(query_key(&refs, &policy)?),
        None => None,
    };
    if let Some(url) = &a.cluster {
        return crate::cluster::run(crate::cluster::ClusterQuery {
            url,
            query: &a.query,
            tables: &a.tables,
            output: a.output.as_deref(),
            partitions: a.threads,
            public_key,
        });
    }
    let mut tables = Vec::with_capacity(a.tables.len());
    for t in &a.tables {
        let Some((name, file)) = t.split_once('=') else {
            bail!("--table {t:?} must be NAME=FILE.parquet");
        };
        if name.is_empty() || file.is_empty() {
            bail!("--table {t:?} must be NAME=FILE.parquet");
        }
        if !Path::new(file).is_file() {
            bail!("--table {name}: no such file {file}");
        }
        check_parquet(Path::new(file))?;
        tables.push((name.to_string(), file.to_string()));
    }
    // Quoted paths in FROM that name files (a directory or URL is left to DataFusion).
    let mut inputs: Vec<String> = tables.iter().map(|(_, f)| f.clone()).collect();
    for r in &refs.relations {
        if Path::new(r).is_file() {
            check_parquet(Path::new(r))?;
            inputs.push(r.clone());
        }
    }
    // Decoding errors during execution do not say which file they come from: name the inputs.
    let failed = |e: DataFusionError| {
        let what = if is_parquet_error(&e) && !inputs.is_empty() {
            format!("query failed reading {}", inputs.join(", "))
        } else {
            "query failed".to_string()
        };
        anyhow::Error::new(e).context(what)
    };
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
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features()
            .with_physical_optimizer_rule(Arc::new(BalancedParquetScan))
            .build();
        let ctx = SessionContext::new_with_state(state).enable_url_table();
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
                let mut stream = df.execute_stream().await.map_err(failed)?;
                let props = WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::default()))
                    .build();
                let (pending, file) = PendingOutput::create(path)?;
                let mut writer = ArrowWriter::try_new(file, schema, Some(props))
                    .with_context(|| format!("cannot write Parquet to {}", path.display()))?;
                let mut rows = 0usize;
                while let Some(batch) = stream.next().await {
                    let batch = batch.map_err(failed)?;
                    rows += batch.num_rows();
                    writer
                        .write(&batch)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                }
                writer
                    .close()
                    .with_context(|| format!("cannot finish {}", path.display()))?;
                pending.commit()?;
                eprintln!("wrote {rows} rows to {}", path.display());
            }
            None => {
                let batches = df.collect().await.map_err(failed)?;
                let table = pretty_format_batches(&batches).context("cannot format the result")?;
                let mut out = std::io::stdout().lock();
                writeln!(out, "{table}")?;
                out.flush()?;
            }
        }
        Ok(())
    })
}

/// What a query names: model paths given as literals to `mle_predict` / `mle_predict_proba`
/// and to the table function `mle_score`, and quoted table names (`FROM 'data.parquet'`). Empty when the query does not parse:
/// DataFusion then reports the syntax error.
#[derive(Debug, Default)]
struct QueryRefs {
    models: Vec<String>,
    relations: Vec<String>,
}

fn query_refs(query: &str) -> QueryRefs {
    let mut refs = QueryRefs::default();
    let Ok(statements) = DFParser::parse_sql(query) else {
        return refs;
    };
    for st in &statements {
        let Statement::Statement(st) = st else {
            continue;
        };
        let _ = visit_expressions(st.as_ref(), |e: &Expr| {
            if let Some(path) = model_literal(e) {
                refs.models.push(path);
            }
            ControlFlow::<()>::Continue(())
        });
        let _ = st
            .as_ref()
            .visit(&mut TableFunctionModels(&mut refs.models));
        let _ = visit_relations(st.as_ref(), |name: &ObjectName| {
            if let [ObjectNamePart::Identifier(id)] = name.0.as_slice() {
                if id.quote_style.is_some() {
                    refs.relations.push(id.value.clone());
                }
            }
            ControlFlow::<()>::Continue(())
        });
    }
    refs
}

/// Collects the model path of every `mle_score('path', 'table')` in a `FROM` clause.
struct TableFunctionModels<'a>(&'a mut Vec<String>);

impl Visitor for TableFunctionModels<'_> {
    type Break = ();

    fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            name,
            args: Some(args),
            ..
        } = t
        {
            let is_score = name
                .0
                .last()
                .is_some_and(|n| n.to_string().eq_ignore_ascii_case(mle_sql::table::NAME));
            if let (true, Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v))))) =
                (is_score, args.args.first())
            {
                if let Value::SingleQuotedString(s) = &v.value {
                    self.0.push(s.clone());
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// The path in `mle_predict('path', ...)` (and `mle_predict_proba`, `mle_explain`,
/// `mle_predict_leaf`).
fn model_literal(e: &Expr) -> Option<String> {
    let Expr::Function(f) = e else {
        return None;
    };
    let name = f.name.0.last()?.to_string().to_ascii_lowercase();
    if ![
        "mle_predict",
        "mle_predict_proba",
        "mle_explain",
        "mle_predict_leaf",
    ]
    .contains(&name.as_str())
    {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    match list.args.first()? {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v))) => match &v.value {
            Value::SingleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// Checks that a Parquet input opens (magic, footer, schema) before DataFusion reads it, so
/// that an empty, truncated or foreign file is reported by name.
fn check_parquet(path: &Path) -> Result<()> {
    let file = open_input(path)?;
    ParquetRecordBatchReaderBuilder::try_new(file)
        .with_context(|| format!("{} is not a readable Parquet file", path.display()))?;
    Ok(())
}

/// True when an execution error came from decoding Parquet (a corrupt page or column chunk).
fn is_parquet_error(e: &DataFusionError) -> bool {
    match e {
        DataFusionError::ParquetError(_) => true,
        DataFusionError::ArrowError(a, _) => {
            matches!(a.as_ref(), ArrowError::ParquetError(_)) || a.to_string().contains("Parquet")
        }
        DataFusionError::Context(_, inner) => is_parquet_error(inner),
        DataFusionError::Shared(inner) => is_parquet_error(inner),
        _ => false,
    }
}

/// The one key the UDFs are registered with under `policy`.
///
/// The UDFs take one key, so the models the query names are checked here first: each must be
/// signed by one of the trusted keys (else the query is refused, naming the file), and all by
/// the same one. The UDFs then require that key at planning time, so a model this scan did not
/// see (or a file replaced since) is still held to the policy.
fn query_key(refs: &QueryRefs, policy: &TrustPolicy) -> Result<PublicKey> {
    let mut chosen: Option<(usize, &str)> = None;
    for path in &refs.models {
        if !Path::new(path).is_file() {
            continue; // the UDF reports the missing file
        }
        let (_, i) = policy.open(Path::new(path))?;
        match &chosen {
            None => chosen = Some((i, path.as_str())),
            Some((j, first)) if *j != i => {
                let name = |k: usize| {
                    policy
                        .keys()
                        .get(k)
                        .map(|(p, _)| p.display().to_string())
                        .unwrap_or_default()
                };
                bail!(
                    "models {first} (signed by {}) and {path} (signed by {}) are signed by different keys; \
                     mle sql runs one query under one key",
                    name(*j),
                    name(i)
                );
            }
            Some(_) => {}
        }
    }
    let i = chosen.map_or(0, |(i, _)| i);
    match policy.keys().get(i) {
        Some((_, k)) => Ok(*k),
        None => bail!("the trust policy has no keys"),
    }
}
