//! `mle verify`: check a model file end to end (header, checksums, graph, executor plan) and,
//! with a key, its signature.

use std::path::PathBuf;

use anyhow::{Context, Result};
use mle_exec::Model;
use mle_format::{MleFile, ReadOptions};

use crate::util::read_public_key;

/// Arguments of `mle verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model file (.mle).
    model: PathBuf,
    /// Require a valid signature by this public key.
    #[arg(long)]
    public_key: Option<PathBuf>,
}

/// Runs `mle verify`.
pub fn run(a: Args) -> Result<()> {
    let key = read_public_key(a.public_key.as_deref())?;
    let opts = ReadOptions { public_key: key };
    let file = MleFile::open(&a.model, &opts)
        .with_context(|| format!("{} failed verification", a.model.display()))?;
    let signed = file.header().signed();
    let model = Model::compile(file)
        .with_context(|| format!("{} failed verification", a.model.display()))?;
    let sig = match (&a.public_key, signed) {
        (Some(k), _) => format!("signature valid for {}", k.display()),
        (None, true) => "signed (signature not checked: no --public-key)".to_string(),
        (None, false) => "unsigned".to_string(),
    };
    println!(
        "ok: {}: checksums valid, graph compiles ({} features -> {}), {sig}",
        a.model.display(),
        model.n_features(),
        model
            .outputs()
            .iter()
            .map(|o| o.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
