//! The host-wide lock: one `flock`ed file shared by every hostdev process
//! (CLI, mdevctl personality, udev-started runs). Writers hold it for the whole
//! read-modify-write; readers do not need it because writes are atomic.

use crate::StoreError;
use rustix::fs::{flock, FlockOperation};
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

/// Proof that the host-wide lock is held; released on drop.
#[derive(Debug)]
pub struct HostLock {
    _file: File,
    path: PathBuf,
}

impl HostLock {
    /// The lock file under a root prefix.
    pub fn path_under(root: &Path) -> PathBuf {
        root.join("run/lock/hostdev.lock")
    }

    fn open(path: &Path) -> Result<File, StoreError> {
        let err = |source| StoreError::Lock {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(err)?;
        }
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(err)
    }

    /// Blocks until the lock at `path` is held.
    pub fn acquire(path: &Path) -> Result<HostLock, StoreError> {
        let file = Self::open(path)?;
        flock(&file, FlockOperation::LockExclusive).map_err(|e| StoreError::Lock {
            path: path.to_path_buf(),
            source: e.into(),
        })?;
        Ok(HostLock {
            _file: file,
            path: path.to_path_buf(),
        })
    }

    /// Takes the lock only if nobody holds it (for optional writes such as caches).
    pub fn try_acquire(path: &Path) -> Result<Option<HostLock>, StoreError> {
        let err = |source| StoreError::Lock {
            path: path.to_path_buf(),
            source,
        };
        let file = Self::open(path)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(HostLock {
                _file: file,
                path: path.to_path_buf(),
            })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(err(e.into())),
        }
    }

    /// Where the lock lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
