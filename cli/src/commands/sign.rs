//! `mle sign`: sign a model file with a secret key.

use std::path::PathBuf;

use anyhow::{Context, Result};

/// Arguments of `mle sign`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model file (.mle).
    model: PathBuf,
    /// The secret key file (from `mle keygen`).
    #[arg(long)]
    secret_key: PathBuf,
    /// Write the signed model here (default: replace MODEL in place, atomically).
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
}

/// Runs `mle sign`.
pub fn run(a: Args) -> Result<()> {
    let key = mle_format::read_secret_key(&a.secret_key)
        .with_context(|| format!("cannot read secret key {}", a.secret_key.display()))?;
    let bytes =
        std::fs::read(&a.model).with_context(|| format!("cannot read {}", a.model.display()))?;
    let name = a.model.display().to_string();
    let signed = mle_format::sign_bytes(&bytes, &key, &name)
        .with_context(|| format!("cannot sign {name}"))?;
    let out = a.output.as_ref().unwrap_or(&a.model);
    mle_format::write_atomic(out, &signed)
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!(
        "signed {name} -> {} (public key {})",
        out.display(),
        mle_format::sign::key_to_hex(&key.verifying_key().to_bytes()).trim()
    );
    Ok(())
}
