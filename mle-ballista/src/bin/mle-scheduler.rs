//! `mle-scheduler`: a Ballista scheduler whose sessions know `mle_predict` and
//! `mle_predict_proba`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use mle_ballista::SchedulerOptions;

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
    let opts = SchedulerOptions {
        bind_host: args.bind_host,
        bind_port: args.bind_port,
        external_host: args.external_host,
        public_key: mle_ballista::read_public_key(args.public_key.as_deref())?,
        executor_timeout_seconds: args.executor_timeout_seconds,
        expire_dead_executor_interval_seconds: args.expire_dead_executor_interval_seconds,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Ballista's own scheduler binary: deep plans recurse while being (de)serialized.
        .thread_stack_size(32 * 1024 * 1024)
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(mle_ballista::run_scheduler(opts))?;
    Ok(())
}
