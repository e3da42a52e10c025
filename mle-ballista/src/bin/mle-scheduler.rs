//! `mle-scheduler`: a Ballista scheduler whose sessions know `mle_predict` and
//! `mle_predict_proba`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use clap::Parser;

/// A Ballista scheduler with the MLE Runtime UDFs.
#[derive(Debug, Parser)]
#[command(name = "mle-scheduler", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind_host: String,
    /// Port to listen on (gRPC and Arrow Flight).
    #[arg(long, default_value_t = mle_ballista::DEFAULT_SCHEDULER_PORT)]
    bind_port: u16,
    /// Host name advertised to executors and clients (defaults to --bind-host).
    #[arg(long)]
    external_host: Option<String>,
    /// Refuse, while planning, models not signed by this public key.
    #[arg(long)]
    public_key: Option<PathBuf>,
    /// Seconds without a heartbeat after which an executor is considered dead and its tasks
    /// are rescheduled (keep above the executors' --heartbeat-interval).
    #[arg(long, default_value_t = 180)]
    executor_timeout_seconds: u64,
    /// Seconds between checks for dead executors.
    #[arg(long, default_value_t = 15)]
    expire_dead_executor_interval_seconds: u64,
}

fn main() -> Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Ballista's own scheduler binary: deep plans recurse while being (de)serialized.
        .thread_stack_size(32 * 1024 * 1024)
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let public_key = mle_ballista::read_public_key(args.public_key.as_deref())?;
    let opts = mle_ballista::udf_options(public_key);
    let addr: SocketAddr = format!("{}:{}", args.bind_host, args.bind_port)
        .parse()
        .with_context(|| {
            format!(
                "invalid listen address {}:{} (give an IP address to --bind-host)",
                args.bind_host, args.bind_port
            )
        })?;
    let mut config = SchedulerConfig {
        bind_host: args.bind_host.clone(),
        bind_port: args.bind_port,
        external_host: args.external_host.unwrap_or(args.bind_host),
        executor_timeout_seconds: args.executor_timeout_seconds,
        expire_dead_executor_interval_seconds: args.expire_dead_executor_interval_seconds,
        no_executors_grace_period_seconds: args.executor_timeout_seconds,
        ..SchedulerConfig::default()
    };
    config = config.with_override_session_builder(mle_ballista::session_builder(opts));
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .context("cannot set up the scheduler's cluster state")?;
    start_server(cluster, addr, Arc::new(config))
        .await
        .with_context(|| format!("scheduler on {addr} stopped"))?;
    Ok(())
}
