//! `mle`: score Parquet files with `.mle` models, query them with SQL, and manage model files.
//!
//! Every failure prints `error: <what>` and its causes (`Caused by:`) on stderr and exits with
//! status 1 (2 for a usage error); a closed pipe on stdout ends the program quietly.

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod balanced_scan;
mod cluster;
mod commands;
mod util;

/// Run MLE models over Parquet files and SQL.
#[derive(Debug, Parser)]
#[command(
    name = "mle",
    version,
    about,
    long_about = None,
    propagate_version = true,
    after_help = "Environment:\n  MLE_TRUSTED_KEYS  Public-key files separated like PATH (':' on Unix, ';' on Windows).\n                    When set (and no --public-key is given), score, sql, inspect, bench\n                    and verify refuse any model not signed by one of these keys."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Score a Parquet file: write its columns plus `prediction` (and `probabilities`).
    Score(commands::score::Args),
    /// Run a SQL query with `mle_predict` / `mle_predict_proba` / `mle_score` over Parquet files.
    Sql(commands::sql::Args),
    /// Show a model's metadata, inputs, outputs and graph summary.
    Inspect(commands::inspect::Args),
    /// Check a model file (checksums, graph) and, under a trust policy, its signature.
    Verify(commands::verify::Args),
    /// Create an ED25519 key pair for signing models.
    Keygen(commands::keygen::Args),
    /// Sign a model with a secret key.
    Sign(commands::sign::Args),
    /// Convert an XGBoost JSON or LightGBM text model into a `.mle` file.
    Convert(commands::convert::Args),
    /// Measure latency (batch of 1) and throughput (large batches) of a model.
    Bench(commands::bench::Args),
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Score(a) => commands::score::run(a),
        Command::Sql(a) => commands::sql::run(a),
        Command::Inspect(a) => commands::inspect::run(a),
        Command::Verify(a) => commands::verify::run(a),
        Command::Keygen(a) => commands::keygen::run(a),
        Command::Sign(a) => commands::sign::run(a),
        Command::Convert(a) => commands::convert::run(a),
        Command::Bench(a) => commands::bench::run(a),
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn main() -> ExitCode {
    // A bug must not print a backtrace at the user: one line, and a distinct exit status.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let _ = writeln!(
            std::io::stderr(),
            "error: internal error (please report it): {msg}{at}"
        );
    }));
    let cli = Cli::parse();
    match std::panic::catch_unwind(|| run(cli)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "error: {e}");
            for cause in e.chain().skip(1) {
                let _ = writeln!(err, "  Caused by: {cause}");
            }
            ExitCode::FAILURE
        }
        Err(_) => ExitCode::from(101),
    }
}
