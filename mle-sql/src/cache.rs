//! A process-wide cache of compiled models, keyed by canonical path, file identity
//! (modification time, size, inode) and trust policy.
//!
//! DataFusion asks for a UDF's return type several times while planning and then calls the UDF
//! once per batch in every partition; all of them share one compiled model through this cache.
//! Every lookup re-reads the file's metadata (one `stat`), so a model file replaced between two
//! queries (or two batches) is loaded again. The cache holds at most `capacity` models and
//! evicts the least recently used.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use mle_arrow::OutputKind;
use mle_exec::{Model, Session};
use mle_format::{PublicKey, ReadOptions};

use crate::error::SqlError;

/// Models kept by the global cache.
pub const DEFAULT_CAPACITY: usize = 16;

/// What identifies one version of a file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Result<Stamp, SqlError> {
    let m = std::fs::metadata(path).map_err(|source| SqlError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if !m.is_file() {
        return Err(SqlError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let inode = 0;
    Ok(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
        inode,
    })
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    path: PathBuf,
    public_key: Option<[u8; 32]>,
}

/// A compiled model with its output kind and a pool of reusable executor sessions.
pub struct CachedModel {
    /// The path as canonicalized.
    pub path: PathBuf,
    /// The compiled model.
    pub model: Arc<Model>,
    /// What `mle_predict` / `mle_predict_proba` return for it.
    pub kind: OutputKind,
    sessions: Mutex<Vec<Session>>,
}

impl std::fmt::Debug for CachedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedModel")
            .field("path", &self.path)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl CachedModel {
    /// Runs `f` with a session taken from the pool (or a new one), and returns it to the pool.
    /// Each partition thread holds its own session while it runs, so scratch buffers are
    /// reused across batches without sharing them between threads.
    pub fn with_session<T>(&self, f: impl FnOnce(&mut Session) -> T) -> T {
        let taken = self.sessions.lock().ok().and_then(|mut p| p.pop());
        let mut session = taken.unwrap_or_else(|| Session::new(self.model.clone()));
        let out = f(&mut session);
        if let Ok(mut p) = self.sessions.lock() {
            p.push(session);
        }
        out
    }
}

struct Entry {
    stamp: Stamp,
    model: Arc<CachedModel>,
    last_used: u64,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<Key, Entry>,
    tick: u64,
}

/// A bounded, thread-safe cache of compiled models.
pub struct ModelCache {
    inner: Mutex<Inner>,
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

impl ModelCache {
    /// An empty cache holding at most `capacity` models (at least 1).
    pub fn new(capacity: usize) -> ModelCache {
        ModelCache {
            inner: Mutex::new(Inner::default()),
            capacity: capacity.max(1),
        }
    }

    /// The process-wide cache shared by every registered UDF.
    pub fn global() -> &'static ModelCache {
        static CACHE: OnceLock<ModelCache> = OnceLock::new();
        CACHE.get_or_init(|| ModelCache::new(DEFAULT_CAPACITY))
    }

    /// Number of cached models.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.entries.len()).unwrap_or(0)
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The compiled model at `path`, loading (or reloading) it when the file changed. With a
    /// public key, the file must carry a valid signature by that key.
    pub fn get(
        &self,
        path: &Path,
        public_key: Option<&PublicKey>,
    ) -> Result<Arc<CachedModel>, SqlError> {
        let canonical = std::fs::canonicalize(path).map_err(|source| SqlError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let stamp = stamp(&canonical)?;
        let key = Key {
            path: canonical.clone(),
            public_key: public_key.map(|k| k.to_bytes()),
        };
        {
            let mut inner = self.inner.lock().map_err(|_| SqlError::Poisoned)?;
            inner.tick += 1;
            let tick = inner.tick;
            if let Some(e) = inner.entries.get_mut(&key) {
                if e.stamp == stamp {
                    e.last_used = tick;
                    return Ok(e.model.clone());
                }
            }
        }
        // Load outside the lock: other models stay available while this one compiles.
        let opts = ReadOptions {
            public_key: public_key.copied(),
        };
        let model = Model::load(&canonical, &opts).map_err(|source| SqlError::Load {
            path: path.to_path_buf(),
            source,
        })?;
        let kind = OutputKind::of_model(&model).map_err(|source| SqlError::Outputs {
            path: path.to_path_buf(),
            source,
        })?;
        let cached = Arc::new(CachedModel {
            path: canonical,
            model: Arc::new(model),
            kind,
            sessions: Mutex::new(Vec::new()),
        });
        let mut inner = self.inner.lock().map_err(|_| SqlError::Poisoned)?;
        inner.tick += 1;
        let tick = inner.tick;
        inner.entries.insert(
            key,
            Entry {
                stamp,
                model: cached.clone(),
                last_used: tick,
            },
        );
        while inner.entries.len() > self.capacity {
            let oldest = inner
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    inner.entries.remove(&k);
                }
                None => break,
            }
        }
        Ok(cached)
    }
}
