//! `mle-executor`: a Ballista executor that can run `mle_predict` and `mle_predict_proba`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use mle_ballista::ExecutorOptions;

/// A Ballista executor with the MLE Runtime UDFs.
#[derive(Debug, Parser)]
#[command(name = "mle-executor", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind_host: String,
    /// Host name advertised to the scheduler and other executors (defaults to --bind-host).
    #[arg(long)]
    external_host: Option<String>,
    /// Arrow Flight port (shuffle and result data).
    #[arg(long, default_value_t = 50051)]
    port: u16,
    /// gRPC port (task launch).
    #[arg(long, default_value_t = 50052)]
    grpc_port: u16,
    /// Scheduler host.
    #[arg(long, default_value = "127.0.0.1")]
    scheduler_host: String,
    /// Scheduler port.
    #[arg(long, default_value_t = mle_ballista::DEFAULT_SCHEDULER_PORT)]
    scheduler_port: u16,
    /// Directory for shuffle files (created if missing). Required: Ballista's default
    /// temporary directory is removed as soon as it is created.
    #[arg(long)]
    work_dir: PathBuf,
    /// Tasks run at the same time (defaults to the number of cores).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Refuse models not signed by this public key.
    #[arg(long)]
    public_key: Option<PathBuf>,
    /// Seconds between heartbeats to the scheduler.
    #[arg(long, default_value_t = 60)]
    heartbeat_interval_seconds: u64,
    /// Seconds to keep trying to reach the scheduler at start-up (0: fail at once).
    #[arg(long, default_value_t = 30)]
    scheduler_connect_timeout_seconds: u16,
}

fn main() -> Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    let opts = ExecutorOptions {
        bind_host: args.bind_host,
        external_host: args.external_host,
        port: args.port,
        grpc_port: args.grpc_port,
        scheduler_host: args.scheduler_host,
        scheduler_port: args.scheduler_port,
        work_dir: args.work_dir,
        concurrency: args.concurrency,
        public_key: mle_ballista::read_public_key(args.public_key.as_deref())?,
        heartbeat_interval_seconds: args.heartbeat_interval_seconds,
        scheduler_connect_timeout_seconds: args.scheduler_connect_timeout_seconds,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(mle_ballista::run_executor(opts))?;
    Ok(())
}
