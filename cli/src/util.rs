//! Helpers shared by the commands.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use mle_arrow::cache::{CacheError, CachedModel, ModelCache};
use mle_exec::ExecError;
use mle_format::{FormatError, MleFile, PublicKey, ReadOptions};

/// Loads and compiles a model through the shared cache (`mle-arrow`: regular files only, file
/// identity checked), under `policy` when one is set (see [`TrustPolicy::load`]).
pub fn load_model(path: &Path, policy: Option<&TrustPolicy>) -> Result<Arc<CachedModel>> {
    match policy {
        Some(p) => p.load(path).map(|(m, _)| m),
        None => ModelCache::global()
            .get(path, None)
            .map_err(|e| cache_error(path, e)),
    }
}

/// A cache error as the CLI reports it: `cannot load model PATH`, caused by what is wrong.
fn cache_error(path: &Path, e: CacheError) -> anyhow::Error {
    let context = format!("cannot load model {}", path.display());
    match e {
        CacheError::Load { source, .. } => anyhow::Error::new(*source).context(context),
        CacheError::Io { source, .. } => anyhow::Error::new(source).context(context),
        other => anyhow::Error::new(other).context(context),
    }
}

/// The signature problem behind a cache error, if that is what it is.
fn signature_error(e: &CacheError) -> Option<&FormatError> {
    match e.load_error() {
        Some(ExecError::Format(f @ FormatError::SignatureInvalid { .. }))
        | Some(ExecError::Format(f @ FormatError::SignatureMissing { .. })) => Some(f),
        _ => None,
    }
}

/// Opens an input file for reading, naming it in the error.
pub fn open_input(path: &Path) -> Result<File> {
    File::open(path).with_context(|| format!("cannot open {}", path.display()))
}

/// An output file written under a temporary name next to its destination and renamed over it
/// by [`PendingOutput::commit`]: a failed run leaves no partial file and an existing output
/// untouched. Dropped without a commit, the temporary file is removed.
#[derive(Debug)]
pub struct PendingOutput {
    tmp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl PendingOutput {
    /// Creates the temporary file for `dest`, naming `dest` in the error.
    pub fn create(dest: &Path) -> Result<(PendingOutput, File)> {
        let name = dest
            .file_name()
            .with_context(|| format!("cannot create {}: not a file name", dest.display()))?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tmp-{}", std::process::id()));
        let tmp = dest.with_file_name(tmp_name);
        let file =
            File::create(&tmp).with_context(|| format!("cannot create {}", dest.display()))?;
        Ok((
            PendingOutput {
                tmp,
                dest: dest.to_path_buf(),
                committed: false,
            },
            file,
        ))
    }

    /// Renames the finished temporary file to the destination.
    pub fn commit(mut self) -> Result<()> {
        std::fs::rename(&self.tmp, &self.dest)
            .with_context(|| format!("cannot create {}", self.dest.display()))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for PendingOutput {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
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

/// The environment variable naming trusted public-key files, separated like `PATH` (`:` on
/// Unix, `;` on Windows). Used when no `--public-key` is given.
pub const TRUSTED_KEYS_ENV: &str = "MLE_TRUSTED_KEYS";

const TRUST_HELP: &str =
    "Require models to be signed by this public key (repeatable: any one of the keys). \
Without the flag, the keys listed in MLE_TRUSTED_KEYS are required instead.";

const TRUST_LONG_HELP: &str = "Require models to be signed by this public key file (64 hex \
characters, as written by `mle keygen`). Repeat the flag to trust several keys: a model signed \
by any one of them is accepted. An unsigned, wrongly signed or modified model is refused with an \
error naming the file.

Without the flag, MLE_TRUSTED_KEYS sets the same policy: a list of public-key files separated \
like PATH (':' on Unix, ';' on Windows), e.g. MLE_TRUSTED_KEYS=/etc/mle/release.pub:/etc/mle/old.pub. \
The flag, when given, replaces the variable. Unset or empty: no policy (any valid model loads).";

/// The `--public-key` flag shared by every command that loads a model.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TrustArgs {
    #[arg(long = "public-key", value_name = "KEY", help = TRUST_HELP, long_help = TRUST_LONG_HELP)]
    public_keys: Vec<PathBuf>,
}

/// Where a trust policy came from (for error messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicySource {
    /// `--public-key`.
    Flag,
    /// [`TRUSTED_KEYS_ENV`].
    Env,
}

/// The trusted keys: a model must carry a valid signature by one of them.
#[derive(Debug, Clone)]
pub struct TrustPolicy {
    keys: Vec<(PathBuf, PublicKey)>,
    source: PolicySource,
}

impl TrustArgs {
    /// The policy from `--public-key`, or else from [`TRUSTED_KEYS_ENV`]; `None` when neither
    /// names a key.
    pub fn policy(&self) -> Result<Option<TrustPolicy>> {
        self.policy_from(std::env::var_os(TRUSTED_KEYS_ENV))
    }

    fn policy_from(&self, env: Option<std::ffi::OsString>) -> Result<Option<TrustPolicy>> {
        let (paths, source) = if !self.public_keys.is_empty() {
            (self.public_keys.clone(), PolicySource::Flag)
        } else {
            let paths: Vec<PathBuf> = env
                .as_deref()
                .map(|v| {
                    std::env::split_paths(v)
                        .filter(|p| !p.as_os_str().is_empty())
                        .collect()
                })
                .unwrap_or_default();
            (paths, PolicySource::Env)
        };
        if paths.is_empty() {
            return Ok(None);
        }
        let mut keys = Vec::with_capacity(paths.len());
        for p in paths {
            let key = mle_format::read_public_key(&p).with_context(|| match source {
                PolicySource::Flag => format!("cannot read public key {}", p.display()),
                PolicySource::Env => format!(
                    "cannot read public key {} (listed in {TRUSTED_KEYS_ENV})",
                    p.display()
                ),
            })?;
            keys.push((p, key));
        }
        Ok(Some(TrustPolicy { keys, source }))
    }
}

impl TrustPolicy {
    /// The trusted keys with the files they were read from.
    pub fn keys(&self) -> &[(PathBuf, PublicKey)] {
        &self.keys
    }

    /// `"a.pub, b.pub from MLE_TRUSTED_KEYS"`.
    pub fn describe(&self) -> String {
        let files: Vec<String> = self
            .keys
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect();
        let from = match self.source {
            PolicySource::Flag => "--public-key",
            PolicySource::Env => TRUSTED_KEYS_ENV,
        };
        format!("{} from {from}", files.join(", "))
    }

    /// Opens `path` requiring a valid signature by one of the keys; returns the file and the
    /// index of the key that verified it. A file that is unsigned, signed by another key or
    /// modified after signing is refused with an error naming it and the policy.
    pub fn open(&self, path: &Path) -> Result<(MleFile, usize)> {
        self.first_key(path, |key| {
            let opts = ReadOptions {
                public_key: Some(*key),
            };
            mle_arrow::open_model_file(path, &opts)
        })
    }

    /// Loads and compiles `path` through the shared cache requiring a valid signature by one
    /// of the keys; returns the model and the index of the key that verified it.
    pub fn load(&self, path: &Path) -> Result<(Arc<CachedModel>, usize)> {
        self.first_key(path, |key| ModelCache::global().get(path, Some(key)))
    }

    /// The result of `f` with the first key whose signature check passes.
    fn first_key<T>(
        &self,
        path: &Path,
        f: impl Fn(&PublicKey) -> Result<T, CacheError>,
    ) -> Result<(T, usize)> {
        let refused = || {
            format!(
                "refused model {}: a signature by a trusted key is required ({})",
                path.display(),
                self.describe()
            )
        };
        let mut last = None;
        for (i, (_, key)) in self.keys.iter().enumerate() {
            match f(key) {
                Ok(v) => return Ok((v, i)),
                Err(e) => match signature_error(&e) {
                    // Signed, but not by this key (or modified): try the next key.
                    Some(FormatError::SignatureInvalid { .. }) => last = Some(e),
                    Some(_) => return Err(cache_error(path, e).context(refused())),
                    None => return Err(cache_error(path, e)),
                },
            }
        }
        match last {
            Some(e) => Err(cache_error(path, e).context(refused())),
            None => bail!("{}: the trust policy has no keys", path.display()),
        }
    }
}

/// Opens a model file without compiling it (regular files only), under `policy` when one is
/// set.
pub fn open_model_file(path: &Path, policy: Option<&TrustPolicy>) -> Result<MleFile> {
    match policy {
        Some(p) => p.open(path).map(|(f, _)| f),
        None => mle_arrow::open_model_file(path, &ReadOptions::default())
            .map_err(|e| cache_error(path, e)),
    }
}
