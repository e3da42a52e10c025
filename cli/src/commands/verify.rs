//! `mle verify`: check a model file end to end (header, checksums, graph, executor plan) and,
//! under a trust policy (`--public-key` or `MLE_TRUSTED_KEYS`), its signature.
//!
//! Without a policy, a valid unsigned file passes (the output says `unsigned`), so that the
//! command also serves to check files before they are signed; a deployment gate sets a policy.

use std::path::PathBuf;

use anyhow::{Context, Result};
use mle_exec::Model;
use mle_format::{MleFile, ReadOptions};

use crate::util::TrustArgs;

/// Arguments of `mle verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model file (.mle).
    model: PathBuf,
    #[command(flatten)]
    trust: TrustArgs,
}

/// Runs `mle verify`.
pub fn run(a: Args) -> Result<()> {
    let failed = || format!("{} failed verification", a.model.display());
    let policy = a.trust.policy()?;
    let (file, sig) = match &policy {
        Some(p) => {
            let (file, i) = p.open(&a.model).with_context(failed)?;
            let key = p
                .keys()
                .get(i)
                .map(|(k, _)| k.display().to_string())
                .unwrap_or_default();
            (file, format!("signature valid for {key}"))
        }
        None => {
            let file = MleFile::open(&a.model, &ReadOptions::default()).with_context(failed)?;
            let sig = if file.header().signed() {
                "signed (signature not checked: no --public-key or MLE_TRUSTED_KEYS)"
            } else {
                "unsigned"
            };
            (file, sig.to_string())
        }
    };
    let model = Model::compile(file).with_context(failed)?;
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
