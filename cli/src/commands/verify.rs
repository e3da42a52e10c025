//! `mle verify`: check a model file end to end (header, checksums, graph, executor plan) and,
//! under a trust policy (`--public-key` or `MLE_TRUSTED_KEYS`), its signature.
//!
//! Without a policy, a valid unsigned file passes (the output says `unsigned`), so that the
//! command also serves to check files before they are signed; a deployment gate sets a policy.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::util::{load_model, TrustArgs};

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
    // The model is opened (regular files only, never blocking on a FIFO), checked and
    // compiled through the shared cache, as every front end loads it.
    let (cached, sig) = match &policy {
        Some(p) => {
            let (cached, i) = p.load(&a.model).with_context(failed)?;
            let key = p
                .keys()
                .get(i)
                .map(|(k, _)| k.display().to_string())
                .unwrap_or_default();
            (cached, format!("signature valid for {key}"))
        }
        None => {
            let cached = load_model(&a.model, None).with_context(failed)?;
            let sig = if cached.model().file().header().signed() {
                "signed (signature not checked: no --public-key or MLE_TRUSTED_KEYS)"
            } else {
                "unsigned"
            };
            (cached, sig.to_string())
        }
    };
    let model = cached.model();
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
