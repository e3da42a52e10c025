//! A process-wide, bounded cache of compiled models, keyed by canonical path, modification
//! time, size and the verifying key.
//!
//! Polars calls the plugin once per chunk (and its output-type function several times per
//! query), so each call looks the model up here instead of reading and compiling the file.
//! Rewriting a model file (a new mtime or size) loads the new version on the next call.
//! Each entry also keeps a small pool of [`Session`]s so that repeated calls reuse the
//! executor's buffers.
//!
//! Note: this cache lives in the plugin crate for now; `mle-sql` keeps one of its own. The two
//! may be unified into a shared module later.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use mle_exec::{Model, Session};
use mle_format::{FormatError, PublicKey, ReadOptions};

use crate::error::PluginError;

/// Most models kept at once; the least recently used is dropped beyond this.
pub const CAPACITY: usize = 16;
/// Most idle sessions kept per model (about one per concurrent Polars thread).
const MAX_IDLE_SESSIONS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    path: PathBuf,
    mtime: Option<SystemTime>,
    size: u64,
    public_key: Option<[u8; 32]>,
}

/// A compiled model and its idle sessions.
pub struct CachedModel {
    model: Arc<Model>,
    /// The path as the user gave it, for error messages.
    display: String,
    sessions: Mutex<Vec<Session>>,
}

impl CachedModel {
    /// The compiled model.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// The model path as given by the user.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// Runs `f` with a session of this model, taken from the pool (or new) and returned after.
    pub fn with_session<T>(&self, f: impl FnOnce(&mut Session) -> T) -> T {
        let mut session = lock(&self.sessions)
            .pop()
            .unwrap_or_else(|| Session::new(self.model.clone()));
        let out = f(&mut session);
        let mut idle = lock(&self.sessions);
        if idle.len() < MAX_IDLE_SESSIONS {
            idle.push(session);
        }
        out
    }
}

struct Entry {
    model: Arc<CachedModel>,
    last_used: u64,
}

#[derive(Default)]
struct Cache {
    entries: HashMap<Key, Entry>,
    tick: u64,
}

static CACHE: Mutex<Option<Cache>> = Mutex::new(None);

/// A lock that survives a panic in another holder (the data stays consistent: every update
/// is a single insert or remove).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Parses a hex (or raw) ed25519 public key given as a plugin argument.
pub fn parse_public_key(hex: &str) -> Result<PublicKey, PluginError> {
    mle_format::sign::public_key_from_bytes(hex.as_bytes(), Path::new("<public_key argument>"))
        .map_err(PluginError::PublicKey)
}

/// The model at `path`, loaded and compiled once per (file version, key).
pub fn get(path: &str, public_key: Option<&PublicKey>) -> Result<Arc<CachedModel>, PluginError> {
    let io = |source| {
        PluginError::from(FormatError::Io {
            path: PathBuf::from(path),
            source,
        })
    };
    let canonical = std::fs::canonicalize(path).map_err(io)?;
    let meta = std::fs::metadata(&canonical).map_err(io)?;
    let key = Key {
        path: canonical,
        mtime: meta.modified().ok(),
        size: meta.len(),
        public_key: public_key.map(|k| k.to_bytes()),
    };
    {
        let mut guard = lock(&CACHE);
        let cache = guard.get_or_insert_with(Cache::default);
        cache.tick += 1;
        let tick = cache.tick;
        if let Some(e) = cache.entries.get_mut(&key) {
            e.last_used = tick;
            return Ok(e.model.clone());
        }
    }
    // Load outside the lock: compiling a large model must not stall other models' chunks.
    // Two threads missing at once both load; the second insert wins, which is harmless.
    let opts = ReadOptions {
        public_key: public_key.copied(),
    };
    let model = Arc::new(Model::load(path, &opts).map_err(|e| match e {
        mle_exec::ExecError::Format(FormatError::Io { source, .. }) => io(source),
        other => PluginError::Exec(other),
    })?);
    let cached = Arc::new(CachedModel {
        model,
        display: path.to_string(),
        sessions: Mutex::new(Vec::new()),
    });
    let mut guard = lock(&CACHE);
    let cache = guard.get_or_insert_with(Cache::default);
    cache.tick += 1;
    let tick = cache.tick;
    // Drop older versions of the same file, then the least recently used beyond capacity.
    cache
        .entries
        .retain(|k, _| k.path != key.path || k.public_key != key.public_key);
    while cache.entries.len() >= CAPACITY {
        let oldest = cache
            .entries
            .iter()
            .min_by_key(|(_, e)| e.last_used)
            .map(|(k, _)| k.clone());
        match oldest {
            Some(k) => {
                cache.entries.remove(&k);
            }
            None => break,
        }
    }
    cache.entries.insert(
        key,
        Entry {
            model: cached.clone(),
            last_used: tick,
        },
    );
    Ok(cached)
}

/// Number of models currently cached (for tests).
pub fn len() -> usize {
    lock(&CACHE).as_ref().map_or(0, |c| c.entries.len())
}
