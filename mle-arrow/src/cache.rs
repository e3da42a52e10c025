//! The one model cache of every front end (SQL UDFs, the Polars plugin, the Python runtime,
//! the CLI).
//!
//! - **Key**: the canonical path and the trust policy (the public key a signature must verify
//!   against, or none). A model loaded without a key never satisfies a lookup that requires
//!   one.
//! - **File identity**: device, inode, modification time and size ([`FileIdentity`]). Every
//!   lookup re-reads the path's metadata (one `stat`); an entry whose identity differs is
//!   loaded again, so a file replaced by rename, rewritten in place, or a new file that
//!   reuses the inode number of a deleted one is picked up by the next lookup.
//! - **Re-checked after load**: the identity recorded is the opened handle's; after compiling,
//!   the handle is checked again. If the file was rewritten in place while it was read (the
//!   handle's modification time or size changed: a torn read) the load is retried, at most
//!   [`LOAD_ATTEMPTS`] times. A file replaced by rename meanwhile leaves the opened version
//!   whole: that version is returned (it was the path's when the lookup began) and cached
//!   under its own identity, so the next lookup sees the path's new identity and loads it.
//! - **Bounded**: at most `capacity` models ([`DEFAULT_CAPACITY`] for [`ModelCache::global`]),
//!   the least recently used dropped first; each model keeps a bounded pool of idle executor
//!   sessions ([`SessionPool`], at most [`MAX_IDLE_SESSIONS`]).
//! - **Poison-tolerant**: every critical section is a single insert, remove or lookup, so a
//!   lock poisoned by a panicking thread still guards consistent data and is used as is.
//! - **Regular files only** (see [`crate::file`]): a FIFO, a directory or a device is a
//!   [`CacheError::NotRegularFile`] naming the path, never a hang.
//! - **Pins**: a front end that must score one query with one version of a model (the Polars
//!   plugin, whose expression is built before it runs) pins it ([`ModelCache::pin`]) and
//!   passes the token along; [`ModelCache::get_pinned`] returns that version or fails.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use mle_exec::{Model, Session};
use mle_format::{MleFile, PublicKey, ReadOptions};
use thiserror::Error;

use crate::file::{open_regular, stat_regular, FileIdentity};
use crate::output::OutputKind;

/// Models kept by [`ModelCache::global`].
pub const DEFAULT_CAPACITY: usize = 16;
/// Most idle sessions kept per model (about one per concurrent thread of a host).
pub const MAX_IDLE_SESSIONS: usize = 64;
/// Loads of one lookup when the file keeps being rewritten in place while it is read.
pub const LOAD_ATTEMPTS: usize = 3;
/// Most pinned models kept at once, the least recently used dropped first.
pub const PIN_CAPACITY: usize = 64;

/// An error finding or loading a model through the cache.
#[derive(Debug, Error)]
pub enum CacheError {
    /// The path cannot be resolved, inspected or opened.
    #[error("cannot open model file {path:?}")]
    Io {
        /// The path as given.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The path names a FIFO, a directory, a device or a socket.
    #[error("model path {path:?} is {kind}, not a regular file")]
    NotRegularFile {
        /// The path as given.
        path: PathBuf,
        /// What it is ("a FIFO", "a directory", ...).
        kind: &'static str,
    },
    /// The file is not a valid model (corrupt, wrong signature, unsupported graph).
    #[error("cannot load model {path:?}")]
    Load {
        /// The path as given.
        path: PathBuf,
        /// Why (boxed: the executor's error is large and this one travels by value).
        #[source]
        source: Box<mle_exec::ExecError>,
    },
    /// The file was replaced every time it was read.
    #[error("model file {path:?} kept changing while it was read ({attempts} attempts)")]
    Unstable {
        /// The path as given.
        path: PathBuf,
        /// Loads tried.
        attempts: usize,
    },
    /// A pin token that [`ModelCache::pin`] did not make.
    #[error("pin: {token:?} is not a model pin token (\"<id>:<file version>\")")]
    PinToken {
        /// The token (at most 80 characters of it).
        token: String,
    },
    /// The pinned version is no longer held and the file is now another version.
    #[error("model file {path:?} changed after it was pinned")]
    PinnedVersionGone {
        /// The path as given.
        path: PathBuf,
    },
}

impl CacheError {
    /// The executor error behind a [`CacheError::Load`].
    pub fn load_error(&self) -> Option<&mle_exec::ExecError> {
        match self {
            CacheError::Load { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

/// A lock that survives a panic in another holder (see the module docs).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A bounded pool of idle executor sessions of one model: a thread takes one (or a new one)
/// for a batch and gives it back, so scratch buffers are reused without being shared.
pub struct SessionPool {
    model: Arc<Model>,
    idle: Mutex<Vec<Session>>,
    max_idle: usize,
}

impl std::fmt::Debug for SessionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionPool")
            .field("idle", &self.idle())
            .field("max_idle", &self.max_idle)
            .finish()
    }
}

impl SessionPool {
    /// A pool for `model` keeping at most `max_idle` idle sessions.
    pub fn new(model: Arc<Model>, max_idle: usize) -> SessionPool {
        SessionPool {
            model,
            idle: Mutex::new(Vec::new()),
            max_idle,
        }
    }

    /// An idle session, or a new one.
    pub fn take(&self) -> Session {
        lock(&self.idle)
            .pop()
            .unwrap_or_else(|| Session::new(self.model.clone()))
    }

    /// Returns a session to the pool (dropped when the pool is full).
    pub fn give_back(&self, session: Session) {
        let mut idle = lock(&self.idle);
        if idle.len() < self.max_idle {
            idle.push(session);
        }
    }

    /// Runs `f` with a session taken from the pool and given back after.
    pub fn with_session<T>(&self, f: impl FnOnce(&mut Session) -> T) -> T {
        let mut session = self.take();
        let out = f(&mut session);
        self.give_back(session);
        out
    }

    /// Number of idle sessions.
    pub fn idle(&self) -> usize {
        lock(&self.idle).len()
    }
}

/// A compiled model held by the cache, with its file identity and session pool.
pub struct CachedModel {
    path: PathBuf,
    shown: String,
    identity: FileIdentity,
    model: Arc<Model>,
    sessions: SessionPool,
}

impl std::fmt::Debug for CachedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedModel")
            .field("path", &self.path)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl CachedModel {
    /// The compiled model.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// The canonical path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path as given by the lookup that loaded it (for messages).
    pub fn display(&self) -> &str {
        &self.shown
    }

    /// The version of the file this model was read from.
    pub fn identity(&self) -> FileIdentity {
        self.identity
    }

    /// What the model returns under the output contract ([`OutputKind::of_model`]).
    pub fn output_kind(&self) -> crate::Result<OutputKind> {
        OutputKind::of_model(&self.model)
    }

    /// The model's session pool.
    pub fn sessions(&self) -> &SessionPool {
        &self.sessions
    }

    /// Runs `f` with a session of this model (see [`SessionPool::with_session`]).
    pub fn with_session<T>(&self, f: impl FnOnce(&mut Session) -> T) -> T {
        self.sessions.with_session(f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    path: PathBuf,
    public_key: Option<[u8; 32]>,
}

struct Entry {
    model: Arc<CachedModel>,
    last_used: u64,
}

#[derive(Default)]
struct Entries {
    map: HashMap<Key, Entry>,
    tick: u64,
}

struct Pin {
    model: Arc<CachedModel>,
    path: String,
    public_key: Option<[u8; 32]>,
    last_used: u64,
}

#[derive(Default)]
struct Pins {
    map: HashMap<u64, Pin>,
    tick: u64,
    next_id: u64,
}

/// A bounded, thread-safe, poison-tolerant cache of compiled models (see the module docs).
pub struct ModelCache {
    entries: Mutex<Entries>,
    pins: Mutex<Pins>,
    capacity: usize,
}

impl std::fmt::Debug for ModelCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelCache")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

fn evict_lru<K: Clone + Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    keep: usize,
    last_used: impl Fn(&V) -> u64,
) {
    while map.len() > keep {
        let oldest = map
            .iter()
            .min_by_key(|(_, v)| last_used(v))
            .map(|(k, _)| k.clone());
        match oldest {
            Some(k) => {
                map.remove(&k);
            }
            None => break,
        }
    }
}

impl ModelCache {
    /// An empty cache holding at most `capacity` models (at least 1).
    pub fn new(capacity: usize) -> ModelCache {
        ModelCache {
            entries: Mutex::new(Entries::default()),
            pins: Mutex::new(Pins::default()),
            capacity: capacity.max(1),
        }
    }

    /// The process-wide cache shared by every front end in the process.
    pub fn global() -> &'static ModelCache {
        static CACHE: OnceLock<ModelCache> = OnceLock::new();
        CACHE.get_or_init(|| ModelCache::new(DEFAULT_CAPACITY))
    }

    /// Most models held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of cached models.
    pub fn len(&self) -> usize {
        lock(&self.entries).map.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of pinned models.
    pub fn pinned(&self) -> usize {
        lock(&self.pins).map.len()
    }

    /// The compiled model at `path`, loaded (or reloaded) when the file is not the version
    /// cached. With a public key, the file must carry a valid signature by that key.
    pub fn get(
        &self,
        path: &Path,
        public_key: Option<&PublicKey>,
    ) -> Result<Arc<CachedModel>, CacheError> {
        let canonical = std::fs::canonicalize(path).map_err(|source| CacheError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let key = Key {
            path: canonical,
            public_key: public_key.map(|k| k.to_bytes()),
        };
        for _ in 0..LOAD_ATTEMPTS {
            let identity = stat_regular(&key.path, path)?;
            if let Some(hit) = self.lookup(&key, identity) {
                return Ok(hit);
            }
            // Load outside the lock: other models stay available while this one compiles.
            // Two threads missing at once both load; the later insert wins, which is harmless.
            let (file, opened) = open_regular(&key.path, path)?;
            let io = |source| CacheError::Io {
                path: path.to_path_buf(),
                source,
            };
            let handle = file.try_clone().map_err(io)?;
            let load = |source: mle_exec::ExecError| CacheError::Load {
                path: path.to_path_buf(),
                source: Box::new(source),
            };
            let opts = ReadOptions {
                public_key: public_key.copied(),
            };
            let mle = MleFile::from_file(file, path, &opts).map_err(|e| load(e.into()))?;
            let model = Arc::new(Model::compile(mle).map_err(load)?);
            // Rewritten in place while it was read: what was read may be torn; read again.
            if FileIdentity::of(&handle.metadata().map_err(io)?) != opened {
                continue;
            }
            let cached = Arc::new(CachedModel {
                path: key.path.clone(),
                shown: path.display().to_string(),
                identity: opened,
                sessions: SessionPool::new(model.clone(), MAX_IDLE_SESSIONS),
                model,
            });
            self.insert(key, cached.clone());
            return Ok(cached);
        }
        Err(CacheError::Unstable {
            path: path.to_path_buf(),
            attempts: LOAD_ATTEMPTS,
        })
    }

    fn lookup(&self, key: &Key, identity: FileIdentity) -> Option<Arc<CachedModel>> {
        let mut guard = lock(&self.entries);
        guard.tick += 1;
        let tick = guard.tick;
        let e = guard.map.get_mut(key)?;
        if e.model.identity != identity {
            return None;
        }
        e.last_used = tick;
        Some(e.model.clone())
    }

    fn insert(&self, key: Key, model: Arc<CachedModel>) {
        let mut guard = lock(&self.entries);
        guard.tick += 1;
        let last_used = guard.tick;
        // One entry per (path, key): the new version replaces the old one.
        guard.map.insert(key, Entry { model, last_used });
        evict_lru(&mut guard.map, self.capacity, |e| e.last_used);
    }

    /// Drops every cached model and pin (models in use stay alive with their users).
    pub fn clear(&self) {
        lock(&self.entries).map.clear();
        lock(&self.pins).map.clear();
    }

    /// Pins the current version of the model at `path` (loading it) and returns a token,
    /// `"<id>:<file version>"`: every [`ModelCache::get_pinned`] with the token returns this
    /// compiled model, even after the file is replaced.
    pub fn pin(&self, path: &str, public_key: Option<&PublicKey>) -> Result<String, CacheError> {
        let model = self.get(Path::new(path), public_key)?;
        let version = model.identity.version();
        let mut guard = lock(&self.pins);
        guard.tick += 1;
        guard.next_id += 1;
        let (id, last_used) = (guard.next_id, guard.tick);
        guard.map.insert(
            id,
            Pin {
                model,
                path: path.to_string(),
                public_key: public_key.map(|k| k.to_bytes()),
                last_used,
            },
        );
        evict_lru(&mut guard.map, PIN_CAPACITY, |p| p.last_used);
        Ok(format!("{id}:{version}"))
    }

    /// The model pinned by `token` (see [`ModelCache::pin`]). A pin no longer held (dropped as
    /// least recently used, or made in another process) is reloaded from `path` only if the
    /// file is still the pinned version; otherwise [`CacheError::PinnedVersionGone`] — never
    /// a mix of two versions.
    pub fn get_pinned(
        &self,
        path: &str,
        public_key: Option<&PublicKey>,
        token: &str,
    ) -> Result<Arc<CachedModel>, CacheError> {
        let (id, version) = token
            .split_once(':')
            .and_then(|(id, v)| id.parse::<u64>().ok().map(|id| (id, v)))
            .ok_or_else(|| CacheError::PinToken {
                token: token.chars().take(80).collect(),
            })?;
        let key_bytes = public_key.map(|k| k.to_bytes());
        {
            let mut guard = lock(&self.pins);
            guard.tick += 1;
            let tick = guard.tick;
            if let Some(p) = guard.map.get_mut(&id) {
                if p.path == path
                    && p.public_key == key_bytes
                    && p.model.identity.version() == version
                {
                    p.last_used = tick;
                    return Ok(p.model.clone());
                }
            }
        }
        let model = self.get(Path::new(path), public_key)?;
        if model.identity.version() != version {
            return Err(CacheError::PinnedVersionGone {
                path: PathBuf::from(path),
            });
        }
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_is_recovered_not_reported() {
        let cache = Arc::new(ModelCache::new(4));
        let c = cache.clone();
        // A thread panics while it holds the cache's lock: the mutex is poisoned.
        let joined = std::thread::spawn(move || {
            let _guard = c.entries.lock();
            panic!("a host thread panics while it holds the cache lock");
        })
        .join();
        assert!(joined.is_err());
        assert!(cache.entries.is_poisoned());
        // Lookups and inserts go on: every critical section leaves the map consistent.
        assert_eq!(cache.len(), 0);
        let err = cache
            .get(Path::new("/nonexistent/model.mle"), None)
            .unwrap_err();
        assert!(matches!(err, CacheError::Io { .. }), "{err}");
        assert_eq!(cache.pinned(), 0);
    }
}
