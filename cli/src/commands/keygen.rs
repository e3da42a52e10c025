//! `mle keygen`: a new ED25519 key pair as two hex key files.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use mle_format::sign::key_to_hex;

/// Arguments of `mle keygen`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write the secret (signing) key; created with mode 0600.
    #[arg(long)]
    secret_key: PathBuf,
    /// Where to write the public (verifying) key.
    #[arg(long)]
    public_key: PathBuf,
    /// Overwrite existing key files.
    #[arg(long)]
    force: bool,
}

fn write_new(path: &Path, text: &str, secret: bool, force: bool) -> Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true);
    if force {
        o.create(true).truncate(true);
    } else {
        o.create_new(true);
    }
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let _ = secret;
    let mut f = o.open(path).with_context(|| {
        if path.exists() && !force {
            format!(
                "{} already exists (use --force to overwrite it)",
                path.display()
            )
        } else {
            format!("cannot create {}", path.display())
        }
    })?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Runs `mle keygen`.
pub fn run(a: Args) -> Result<()> {
    if a.secret_key == a.public_key {
        bail!("--secret-key and --public-key must be different files");
    }
    let key = mle_format::generate_key().context("cannot generate a key")?;
    write_new(&a.secret_key, &key_to_hex(&key.to_bytes()), true, a.force)?;
    write_new(
        &a.public_key,
        &key_to_hex(&key.verifying_key().to_bytes()),
        false,
        a.force,
    )?;
    println!(
        "wrote secret key {} and public key {}",
        a.secret_key.display(),
        a.public_key.display()
    );
    Ok(())
}
