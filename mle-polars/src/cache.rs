//! A process-wide, bounded cache of compiled models, keyed by canonical path, modification
//! time, size and the verifying key.
//!
//! Polars calls the plugin once per chunk (and its output-type function several times per
//! query), so each call looks the model up here instead of reading and compiling the file.
//! Rewriting a model file (a new mtime or size) loads the new version on the next call.
//! Each entry also keeps a small pool of [`Session`]s so that repeated calls reuse the
//! executor's buffers.
//!
//! A query sees one model version: the Python wrapper *pins* the model when the expression is
//! built ([`pin`]) and passes the returned token in the plugin's kwargs; every chunk of the
//! query then uses that compiled model ([`get_pinned`]), even if the file is replaced while the
//! query runs. Pins are bounded ([`PIN_CAPACITY`], least recently used dropped); a dropped pin
//! is reloaded only if the file is still the pinned version, otherwise the query fails with
//! [`PluginError::ModelChanged`] — never a mix of two models.
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
    /// Device and inode (Unix): an atomic replacement by rename gets a new inode even when
    /// size and modification time happen to match.
    file_id: (u64, u64),
    public_key: Option<[u8; 32]>,
}

impl Key {
    /// The file version as text (the identity part of a pin token).
    fn version(&self) -> String {
        let nanos = self
            .mtime
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        format!(
            "{}.{}.{}.{}",
            self.size, nanos, self.file_id.0, self.file_id.1
        )
    }
}

#[cfg(unix)]
fn file_id(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn file_id(_meta: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
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
    get_versioned(path, public_key).map(|(m, _)| m)
}

/// How many times a load is retried when the file changes while it is read.
const LOAD_ATTEMPTS: usize = 3;

fn stat_key(path: &str, public_key: Option<&PublicKey>) -> Result<Key, PluginError> {
    let io = |source| {
        PluginError::from(FormatError::Io {
            path: PathBuf::from(path),
            source,
        })
    };
    let canonical = std::fs::canonicalize(path).map_err(io)?;
    let meta = std::fs::metadata(&canonical).map_err(io)?;
    Ok(Key {
        path: canonical,
        mtime: meta.modified().ok(),
        size: meta.len(),
        file_id: file_id(&meta),
        public_key: public_key.map(|k| k.to_bytes()),
    })
}

/// The model and the file version it was read from.
fn get_versioned(
    path: &str,
    public_key: Option<&PublicKey>,
) -> Result<(Arc<CachedModel>, Key), PluginError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let key = stat_key(path, public_key)?;
        {
            let mut guard = lock(&CACHE);
            let cache = guard.get_or_insert_with(Cache::default);
            cache.tick += 1;
            let tick = cache.tick;
            if let Some(e) = cache.entries.get_mut(&key) {
                e.last_used = tick;
                return Ok((e.model.clone(), key));
            }
        }
        // Load outside the lock: compiling a large model must not stall other models' chunks.
        // Two threads missing at once both load; the second insert wins, which is harmless.
        let opts = ReadOptions {
            public_key: public_key.copied(),
        };
        let model = Arc::new(Model::load(path, &opts).map_err(|e| match e {
            mle_exec::ExecError::Format(FormatError::Io { source, .. }) => {
                PluginError::from(FormatError::Io {
                    path: PathBuf::from(path),
                    source,
                })
            }
            other => PluginError::Exec(other),
        })?);
        // The file may have been replaced between the stat and the read: then the model
        // belongs to another version than `key`; read again (a bounded number of times).
        if stat_key(path, public_key)? != key {
            if attempt < LOAD_ATTEMPTS {
                continue;
            }
            return Err(PluginError::ModelChanged {
                model: path.to_string(),
                when: "kept changing while it was read",
            });
        }
        let cached = Arc::new(CachedModel {
            model,
            display: path.to_string(),
            sessions: Mutex::new(Vec::new()),
        });
        insert(key.clone(), cached.clone());
        return Ok((cached, key));
    }
}

fn insert(key: Key, cached: Arc<CachedModel>) {
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
            model: cached,
            last_used: tick,
        },
    );
}

/// Most pinned models kept at once (each pin is one expression built from Python).
pub const PIN_CAPACITY: usize = 64;

struct Pin {
    model: Arc<CachedModel>,
    version: String,
    last_used: u64,
}

#[derive(Default)]
struct Pins {
    pins: HashMap<u64, Pin>,
    tick: u64,
    next_id: u64,
}

static PINS: Mutex<Option<Pins>> = Mutex::new(None);

/// Pins the current version of the model at `path` (loading and compiling it) and returns a
/// token (`"<id>:<file version>"`) for the plugin's kwargs: every call carrying the token uses
/// this compiled model.
pub fn pin(path: &str, public_key: Option<&PublicKey>) -> Result<String, PluginError> {
    let (model, key) = get_versioned(path, public_key)?;
    let version = key.version();
    let mut guard = lock(&PINS);
    let pins = guard.get_or_insert_with(Pins::default);
    pins.tick += 1;
    pins.next_id += 1;
    let (id, tick) = (pins.next_id, pins.tick);
    while pins.pins.len() >= PIN_CAPACITY {
        let oldest = pins
            .pins
            .iter()
            .min_by_key(|(_, p)| p.last_used)
            .map(|(k, _)| *k);
        match oldest {
            Some(k) => {
                pins.pins.remove(&k);
            }
            None => break,
        }
    }
    pins.pins.insert(
        id,
        Pin {
            model,
            version: version.clone(),
            last_used: tick,
        },
    );
    Ok(format!("{id}:{version}"))
}

/// The model pinned by `token` (see [`pin`]). A pin no longer held (dropped as least recently
/// used, or made in another process) is reloaded from `path` only if the file is still the
/// pinned version; otherwise [`PluginError::ModelChanged`].
pub fn get_pinned(
    path: &str,
    public_key: Option<&PublicKey>,
    token: &str,
) -> Result<Arc<CachedModel>, PluginError> {
    let (id, version) = token
        .split_once(':')
        .and_then(|(id, v)| id.parse::<u64>().ok().map(|id| (id, v)))
        .ok_or_else(|| PluginError::PinToken {
            token: token.chars().take(80).collect(),
        })?;
    {
        let mut guard = lock(&PINS);
        let pins = guard.get_or_insert_with(Pins::default);
        pins.tick += 1;
        let tick = pins.tick;
        if let Some(p) = pins.pins.get_mut(&id) {
            if p.version == version && p.model.display() == path {
                p.last_used = tick;
                return Ok(p.model.clone());
            }
        }
    }
    let (model, key) = get_versioned(path, public_key)?;
    if key.version() != version {
        return Err(PluginError::ModelChanged {
            model: path.to_string(),
            when: "changed after the expression was built",
        });
    }
    Ok(model)
}

/// Number of pinned models (for tests).
pub fn pinned() -> usize {
    lock(&PINS).as_ref().map_or(0, |p| p.pins.len())
}

/// Number of models currently cached (for tests).
pub fn len() -> usize {
    lock(&CACHE).as_ref().map_or(0, |c| c.entries.len())
}
