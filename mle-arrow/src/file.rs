//! Opening model files: regular files only.
//!
//! A model path must name a regular file (after following symbolic links). A FIFO, a
//! directory, a device or a socket is refused with [`CacheError::NotRegularFile`] naming the
//! path — never a read that blocks forever on a FIFO, never the operating system's
//! "No such device" from memory-mapping a directory. The check runs twice: on the path's
//! metadata before opening, and on the opened handle's own metadata, because the path may be
//! swapped for a FIFO in between. The open itself uses `O_NONBLOCK` on Unix, so opening a
//! FIFO that was swapped in returns at once instead of waiting for a writer (the flag changes
//! nothing for regular files).

use std::fs::{File, FileType, Metadata};
use std::path::Path;
use std::time::SystemTime;

use mle_format::{MleFile, ReadOptions};

use crate::cache::CacheError;

/// What identifies one version of a file on disk: device, inode, modification time and
/// size. A file replaced by rename gets a new inode; a file rewritten in place gets a new
/// modification time or size; an inode number reused by a new file differs in one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileIdentity {
    /// Device number (0 where the platform has none).
    pub dev: u64,
    /// Inode number (0 where the platform has none).
    pub ino: u64,
    /// Last modification time, when the file system records one.
    pub modified: Option<SystemTime>,
    /// Size in bytes.
    pub size: u64,
}

impl FileIdentity {
    /// The identity recorded in `meta`.
    pub fn of(meta: &Metadata) -> FileIdentity {
        #[cfg(unix)]
        let (dev, ino) = {
            use std::os::unix::fs::MetadataExt;
            (meta.dev(), meta.ino())
        };
        #[cfg(not(unix))]
        let (dev, ino) = (0, 0);
        FileIdentity {
            dev,
            ino,
            modified: meta.modified().ok(),
            size: meta.len(),
        }
    }

    /// The identity as text, `size.mtime_ns.dev.ino` (the version part of a pin token).
    pub fn version(&self) -> String {
        let nanos = self
            .modified
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        format!("{}.{nanos}.{}.{}", self.size, self.dev, self.ino)
    }
}

/// What a non-regular file is, for error messages ("a FIFO", "a directory", ...).
pub fn describe_file_type(ft: &FileType) -> &'static str {
    if ft.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "a FIFO";
        }
        if ft.is_char_device() {
            return "a character device";
        }
        if ft.is_block_device() {
            return "a block device";
        }
        if ft.is_socket() {
            return "a socket";
        }
    }
    "not a regular file"
}

fn check_regular(meta: &Metadata, path: &Path) -> Result<(), CacheError> {
    if meta.is_file() {
        return Ok(());
    }
    Err(CacheError::NotRegularFile {
        path: path.to_path_buf(),
        kind: describe_file_type(&meta.file_type()),
    })
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The identity of the regular file at `path` (following symbolic links); `shown` names it
/// in errors.
pub fn stat_regular(path: &Path, shown: &Path) -> Result<FileIdentity, CacheError> {
    let meta = std::fs::metadata(path).map_err(io(shown))?;
    check_regular(&meta, shown)?;
    Ok(FileIdentity::of(&meta))
}

/// Opens the regular file at `path` for reading and returns it with the identity of what
/// was opened (from the handle, not the path). `shown` names the file in errors.
pub fn open_regular(path: &Path, shown: &Path) -> Result<(File, FileIdentity), CacheError> {
    // Cheapest check first: a FIFO or a directory is refused before any open.
    stat_regular(path, shown)?;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(io(shown))?;
    let meta = file.metadata().map_err(io(shown))?;
    check_regular(&meta, shown)?;
    Ok((file, FileIdentity::of(&meta)))
}

/// Opens and validates a model file without compiling it (`mle inspect`): regular files
/// only, as every front end. `opts` may require a signature.
pub fn open_model_file(path: &Path, opts: &ReadOptions) -> Result<MleFile, CacheError> {
    let (file, _) = open_regular(path, path)?;
    MleFile::from_file(file, path, opts).map_err(|e| CacheError::Load {
        path: path.to_path_buf(),
        source: Box::new(e.into()),
    })
}
