//! Helpers shared by the commands.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use mle_exec::Model;
use mle_format::{PublicKey, ReadOptions};

/// Loads and compiles a model, optionally requiring a signature by the key in `public_key`.
pub fn load_model(path: &Path, public_key: Option<&Path>) -> Result<Arc<Model>> {
    let opts = ReadOptions {
        public_key: read_public_key(public_key)?,
    };
    let model = Model::load(path, &opts)
        .with_context(|| format!("cannot load model {}", path.display()))?;
    Ok(Arc::new(model))
}

/// Reads an optional public key file.
pub fn read_public_key(path: Option<&Path>) -> Result<Option<PublicKey>> {
    path.map(|p| {
        mle_format::read_public_key(p)
            .with_context(|| format!("cannot read public key {}", p.display()))
    })
    .transpose()
}

/// Opens an input file for reading, naming it in the error.
pub fn open_input(path: &Path) -> Result<File> {
    File::open(path).with_context(|| format!("cannot open {}", path.display()))
}

/// Creates an output file, naming it in the error.
pub fn create_output(path: &Path) -> Result<File> {
    File::create(path).with_context(|| format!("cannot create {}", path.display()))
}

/// Formats a count with thousands separators.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Formats a byte count (`1.5 MiB`).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
