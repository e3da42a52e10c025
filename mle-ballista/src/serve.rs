//! Running a scheduler or an executor with the UDFs registered: what the `mle-scheduler` and
//! `mle-executor` binaries do, as library functions (for embedding, and for tests that run a
//! cluster inside their own process).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use mle_format::PublicKey;

use crate::{udf_options, ClusterError, DEFAULT_SCHEDULER_PORT};

/// How to run a scheduler ([`run_scheduler`]).
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// IP address to listen on.
    pub bind_host: String,
    /// Port to listen on (gRPC and Arrow Flight).
    pub bind_port: u16,
    /// Host name advertised to executors and clients (`None`: `bind_host`).
    pub external_host: Option<String>,
    /// When set, models not signed by this key are refused while planning.
    pub public_key: Option<PublicKey>,
    /// Seconds without a heartbeat after which an executor is considered dead and its tasks
    /// are rescheduled.
    pub executor_timeout_seconds: u64,
    /// Seconds between checks for dead executors.
    pub expire_dead_executor_interval_seconds: u64,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            bind_host: "127.0.0.1".to_string(),
            bind_port: DEFAULT_SCHEDULER_PORT,
            external_host: None,
            public_key: None,
            executor_timeout_seconds: 180,
            expire_dead_executor_interval_seconds: 15,
        }
    }
}

/// Runs a Ballista scheduler whose sessions know `mle_predict` and `mle_predict_proba` until
/// it stops (Ctrl-C, or an error).
///
/// Deep plans recurse while being (de)serialized: run it on threads with large stacks (the
/// `mle-scheduler` binary uses 32 MiB, as Ballista's own scheduler does).
pub async fn run_scheduler(opts: SchedulerOptions) -> Result<(), ClusterError> {
    let addr: SocketAddr = format!("{}:{}", opts.bind_host, opts.bind_port)
        .parse()
        .map_err(|e: std::net::AddrParseError| ClusterError::ListenAddress {
            addr: format!("{}:{}", opts.bind_host, opts.bind_port),
            reason: format!("{e} (give an IP address as the bind host)"),
        })?;
    let config = SchedulerConfig {
        bind_host: opts.bind_host.clone(),
        bind_port: opts.bind_port,
        external_host: opts.external_host.unwrap_or(opts.bind_host),
        executor_timeout_seconds: opts.executor_timeout_seconds,
        expire_dead_executor_interval_seconds: opts.expire_dead_executor_interval_seconds,
        no_executors_grace_period_seconds: opts.executor_timeout_seconds,
        ..SchedulerConfig::default()
    }
    .with_override_session_builder(crate::session_builder(udf_options(opts.public_key)));
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(|source| ClusterError::Ballista {
            what: "cannot set up the scheduler's cluster state".to_string(),
            source,
        })?;
    start_server(cluster, addr, Arc::new(config))
        .await
        .map_err(|source| ClusterError::Ballista {
            what: format!("scheduler on {addr} stopped"),
            source,
        })
}

/// How to run an executor ([`run_executor`]).
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// IP address to listen on.
    pub bind_host: String,
    /// Host name advertised to the scheduler and other executors (`None`: `bind_host`).
    pub external_host: Option<String>,
    /// Arrow Flight port (shuffle and result data).
    pub port: u16,
    /// gRPC port (task launch).
    pub grpc_port: u16,
    /// Scheduler host.
    pub scheduler_host: String,
    /// Scheduler port.
    pub scheduler_port: u16,
    /// Directory for shuffle files (created if missing). Ballista's default, a temporary
    /// directory, is removed as soon as it is created, so it is required here.
    pub work_dir: PathBuf,
    /// Tasks run at the same time (`None`: the number of cores; must not be 0).
    pub concurrency: Option<usize>,
    /// When set, models not signed by this key are refused (the job fails).
    pub public_key: Option<PublicKey>,
    /// Seconds between heartbeats to the scheduler.
    pub heartbeat_interval_seconds: u64,
    /// Seconds to keep trying to reach the scheduler at start-up (0: fail at once).
    pub scheduler_connect_timeout_seconds: u16,
}

impl ExecutorOptions {
    /// Defaults (Ballista's ports 50051 / 50052, a scheduler on 127.0.0.1:50050) with the
    /// given work directory.
    pub fn new(work_dir: impl Into<PathBuf>) -> Self {
        ExecutorOptions {
            bind_host: "127.0.0.1".to_string(),
            external_host: None,
            port: 50051,
            grpc_port: 50052,
            scheduler_host: "127.0.0.1".to_string(),
            scheduler_port: DEFAULT_SCHEDULER_PORT,
            work_dir: work_dir.into(),
            concurrency: None,
            public_key: None,
            heartbeat_interval_seconds: 60,
            scheduler_connect_timeout_seconds: 30,
        }
    }
}

/// Runs a Ballista executor with `mle_predict` and `mle_predict_proba` in its function
/// registry until it stops (Ctrl-C, the scheduler going away, or an error). Run-time errors of
/// the UDFs name this executor (`executor HOST:PORT: ...`).
pub async fn run_executor(opts: ExecutorOptions) -> Result<(), ClusterError> {
    let udf_opts = udf_options(opts.public_key);
    std::fs::create_dir_all(&opts.work_dir).map_err(|source| ClusterError::WorkDir {
        path: opts.work_dir.clone(),
        source,
    })?;
    let work_dir = opts
        .work_dir
        .to_str()
        .ok_or_else(|| ClusterError::WorkDir {
            path: opts.work_dir.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not valid UTF-8"),
        })?
        .to_string();
    let external_host = opts.external_host.unwrap_or_else(|| opts.bind_host.clone());
    let name = format!("{external_host}:{}", opts.port);
    let registry = crate::function_registry(udf_opts, &name)?;
    let vcores = match opts.concurrency {
        Some(0) => return Err(ClusterError::ZeroConcurrency),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let config = ExecutorProcessConfig {
        bind_host: opts.bind_host,
        external_host: Some(external_host),
        port: opts.port,
        grpc_port: opts.grpc_port,
        scheduler_host: opts.scheduler_host,
        scheduler_port: opts.scheduler_port,
        scheduler_connect_timeout_seconds: opts.scheduler_connect_timeout_seconds,
        vcores,
        work_dir: Some(work_dir),
        executor_heartbeat_interval_seconds: opts.heartbeat_interval_seconds,
        override_function_registry: Some(Arc::new(registry)),
        ..ExecutorProcessConfig::default()
    };
    start_executor_process(Arc::new(config))
        .await
        .map_err(|source| ClusterError::Ballista {
            what: format!("executor {name} stopped"),
            source,
        })
}
