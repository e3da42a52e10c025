//! # mle-ballista
//!
//! Runs `mle_predict` / `mle_predict_proba` (from [`mle_sql`]) on an
//! [Apache DataFusion Ballista](https://datafusion.apache.org/ballista/) cluster.
//!
//! Ballista ships plans, not functions: a custom scalar UDF works only when every process of
//! the cluster knows it. This crate provides
//!
//! - the `mle-scheduler` and `mle-executor` binaries, Ballista's scheduler and executor with
//!   the UDFs registered from one session builder ([`session_state`]), so that scheduler and
//!   executors agree;
//! - [`connect`], which returns a client [`SessionContext`] for a running cluster with the UDFs
//!   registered (Ballista's `SessionContext::remote` does not carry them over).
//!
//! ## Where models are read
//!
//! The model path in `mle_predict('path', ...)` is read by three processes: the client and the
//! scheduler open it while planning (the UDF's return type depends on the model, and that type
//! travels in the physical plan), and every executor opens it when its first task calls the
//! UDF (then keeps the compiled model in `mle-arrow`'s process-wide model cache, the one every
//! front end uses, reloading it when the file changes; only regular files are opened). The path must therefore name the same file on every machine: an absolute path on
//! a shared filesystem (NFS, a synchronised directory, a container volume). Relative paths
//! resolve against each process's own working directory.
//!
//! A client that cannot read the model fails while planning with the UDF's own error (file,
//! cause). An executor that cannot read it (or refuses it: see `--public-key`) fails the job
//! with the executor's error text, which names the executor's host and the model path.
//!
//! ## Trust policy
//!
//! `mle-executor --public-key KEY` makes an executor refuse models not signed by `KEY`, whatever
//! the client or the scheduler accept; give the same option to the scheduler (and pass the key
//! to [`connect`]) to refuse such models while planning.

#![warn(missing_docs)]

mod serve;

pub use serve::{run_executor, run_scheduler, ExecutorOptions, SchedulerOptions};

use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ballista::prelude::SessionContextExt;
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::error::DataFusionError;
use datafusion::execution::context::SessionState;
use datafusion::execution::FunctionRegistry;
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
};
use datafusion::prelude::{SessionConfig, SessionContext};
use mle_format::PublicKey;
use mle_sql::UdfOptions;
use thiserror::Error;

/// Ballista's default scheduler port.
pub const DEFAULT_SCHEDULER_PORT: u16 = 50050;

/// Errors of this crate.
#[derive(Debug, Error)]
pub enum ClusterError {
    /// The cluster address is not `df://HOST:PORT`.
    #[error("invalid cluster address {url:?}: {reason} (expected df://HOST:PORT)")]
    BadUrl {
        /// The address as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No scheduler answers at the address.
    #[error("cannot reach the Ballista scheduler at {addr} (from {url:?}): {reason}; start one with `mle-scheduler` or `scripts/cluster.sh start`")]
    Unreachable {
        /// The address as given.
        url: String,
        /// The resolved `host:port`.
        addr: String,
        /// The connection error.
        reason: String,
    },
    /// A public key file cannot be read.
    #[error("cannot read public key {path:?}")]
    PublicKey {
        /// The key file.
        path: PathBuf,
        /// Why.
        #[source]
        source: mle_format::FormatError,
    },
    /// The work directory cannot be created.
    #[error("cannot create the work directory {path:?}")]
    WorkDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The listen address is not an IP address and port.
    #[error("invalid listen address {addr}: {reason}")]
    ListenAddress {
        /// The address as given.
        addr: String,
        /// Why it is invalid.
        reason: String,
    },
    /// An executor was asked to run 0 tasks at a time.
    #[error("the executor concurrency must be at least 1")]
    ZeroConcurrency,
    /// A scheduler or executor failed to start or stopped with an error.
    #[error("{what}")]
    Ballista {
        /// What failed.
        what: String,
        /// Ballista's error.
        #[source]
        source: ballista_core::error::BallistaError,
    },
    /// An error from DataFusion or Ballista.
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
}

/// The UDF options for a trust policy: when `public_key` is set, every model must carry a
/// valid signature by it.
pub fn udf_options(public_key: Option<PublicKey>) -> UdfOptions {
    UdfOptions {
        public_key,
        ..UdfOptions::default()
    }
}

/// Reads an optional public key file (raw 32 bytes or hex, as `mle keygen` writes it).
pub fn read_public_key(path: Option<&Path>) -> Result<Option<PublicKey>, ClusterError> {
    path.map(|p| {
        mle_format::read_public_key(p).map_err(|source| ClusterError::PublicKey {
            path: p.to_path_buf(),
            source,
        })
    })
    .transpose()
}

/// The session state of a scheduler or executor: Ballista's default session (its optimizer
/// rules and functions) with `mle_predict` and `mle_predict_proba` added.
///
/// The scheduler uses it as its session builder, the executors derive their function registry
/// from it, so both resolve the UDFs to the same implementation and options.
pub fn session_state(
    config: SessionConfig,
    opts: UdfOptions,
) -> datafusion::error::Result<SessionState> {
    let mut state = ballista_core::utils::default_session_builder(config)?;
    for udf in mle_sql::udfs(opts) {
        state.register_udf(Arc::new(udf))?;
    }
    Ok(state)
}

/// [`session_state`] as a Ballista scheduler session builder.
pub fn session_builder(opts: UdfOptions) -> ballista_scheduler::scheduler_server::SessionBuilder {
    Arc::new(move |config| session_state(config, opts))
}

/// The executor function registry: every function of [`session_state`] (DataFusion's and
/// Ballista's built-ins, and the two UDFs), with the UDFs' run-time errors prefixed by
/// `executor` (for example `executor 10.0.0.7:50051`) so that a failed job names the machine
/// that could not read or run the model.
pub fn function_registry(
    opts: UdfOptions,
    executor: &str,
) -> datafusion::error::Result<ballista_core::registry::BallistaFunctionRegistry> {
    let state = session_state(ballista_core::utils::default_config_producer(), opts)?;
    let mut registry = ballista_core::registry::BallistaFunctionRegistry::from(&state);
    for udf in mle_sql::udfs(opts) {
        let name = udf.name().to_string();
        let wrapped = ScalarUDF::new_from_impl(OnExecutor {
            inner: udf,
            executor: executor.to_string(),
        });
        registry.scalar_functions.insert(name, Arc::new(wrapped));
    }
    Ok(registry)
}

/// A UDF as run by an executor: identical to the wrapped one (name, types, results) except
/// that its errors name the executor.
#[derive(Debug, PartialEq, Eq, Hash)]
struct OnExecutor {
    inner: ScalarUDF,
    executor: String,
}

impl ScalarUDFImpl for OnExecutor {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> datafusion::error::Result<Vec<DataType>> {
        self.inner.inner().coerce_types(arg_types)
    }

    fn return_type(&self, arg_types: &[DataType]) -> datafusion::error::Result<DataType> {
        self.inner.inner().return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> datafusion::error::Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        self.inner.invoke_with_args(args).map_err(|e| {
            let msg = match e {
                DataFusionError::Execution(m) => m,
                other => other.to_string(),
            };
            DataFusionError::Execution(format!("executor {}: {msg}", self.executor))
        })
    }
}

/// Parses `df://HOST:PORT` (any scheme; the port defaults to 50050) into `(host, port)`.
pub fn parse_cluster_url(url: &str) -> Result<(String, u16), ClusterError> {
    let bad = |reason: &str| ClusterError::BadUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let rest = url
        .split_once("://")
        .map(|(_, r)| r)
        .ok_or_else(|| bad("missing the scheme"))?;
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() {
        return Err(bad("missing the host"));
    }
    if rest.contains('/') {
        return Err(bad("unexpected path after the host"));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
            let port = p
                .parse::<u16>()
                .map_err(|_| bad(&format!("port {p:?} is not a number from 0 to 65535")))?;
            (h, port)
        }
        _ => (rest, DEFAULT_SCHEDULER_PORT),
    };
    if host.is_empty() {
        return Err(bad("missing the host"));
    }
    Ok((host.to_string(), port))
}

/// Returns a client session for the Ballista cluster whose scheduler listens at `url`
/// (`df://HOST:PORT`), with `mle_predict` and `mle_predict_proba` registered using `opts`.
///
/// Checks first that the scheduler accepts connections (within 5 seconds), so a wrong address
/// fails here rather than at the first query. Tables registered on the returned context
/// (`register_parquet`, ...) must name paths every executor can read.
pub async fn connect(url: &str, opts: UdfOptions) -> Result<SessionContext, ClusterError> {
    connect_with_config(url, default_client_config(), opts).await
}

/// The session configuration [`connect`] uses: Ballista's defaults.
pub fn default_client_config() -> SessionConfig {
    use ballista::prelude::SessionConfigExt;
    SessionConfig::new_with_ballista()
}

/// [`connect`] with an explicit session configuration (for example more target partitions
/// than the client has cores, so that every executor gets work); start from
/// [`default_client_config`].
pub async fn connect_with_config(
    url: &str,
    config: SessionConfig,
    opts: UdfOptions,
) -> Result<SessionContext, ClusterError> {
    let (host, port) = parse_cluster_url(url)?;
    let addr = format!("{host}:{port}");
    check_reachable(url, &host, port).await?;
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .build();
    let ctx = SessionContext::remote_with_state(&format!("df://{addr}"), state).await?;
    // Ballista's client state does not keep UDFs registered before `remote_with_state`.
    mle_sql::register_with(&ctx, opts);
    Ok(ctx)
}

/// Fails unless `host:port` accepts a TCP connection within 5 seconds.
async fn check_reachable(url: &str, host: &str, port: u16) -> Result<(), ClusterError> {
    let addr = format!("{host}:{port}");
    let unreachable = |reason: String| ClusterError::Unreachable {
        url: url.to_string(),
        addr: addr.clone(),
        reason,
    };
    let sockets: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| unreachable(e.to_string()))?
        .collect();
    let mut last = String::from("the host name has no address");
    for s in sockets {
        match tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(s)).await
        {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "timed out after 5 s".to_string(),
        }
    }
    Err(unreachable(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cluster_urls() {
        assert_eq!(
            parse_cluster_url("df://10.0.0.1:5000").unwrap(),
            ("10.0.0.1".to_string(), 5000)
        );
        assert_eq!(
            parse_cluster_url("df://sched/").unwrap(),
            ("sched".to_string(), DEFAULT_SCHEDULER_PORT)
        );
        for bad in [
            "sched:1",
            "df://",
            "df://h:x",
            "df://h:70000",
            "df://h:1/db",
            "df://:1",
        ] {
            assert!(
                matches!(parse_cluster_url(bad), Err(ClusterError::BadUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn registry_has_the_udfs_and_builtins() {
        let reg = function_registry(UdfOptions::default(), "test").unwrap();
        assert!(reg.udf("mle_predict").is_ok());
        assert!(reg.udf("mle_predict_proba").is_ok());
        assert!(reg.udf("abs").is_ok());
    }
}
