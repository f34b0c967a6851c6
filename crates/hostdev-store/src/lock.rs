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

    /// Blocks until the lock at `path` is held.
    pub fn acquire(path: &Path) -> Result<HostLock, StoreError> {
        let err = |source| StoreError::Lock {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(err)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(err)?;
        flock(&file, FlockOperation::LockExclusive).map_err(|e| err(e.into()))?;
        Ok(HostLock {
            _file: file,
            path: path.to_path_buf(),
        })
    }

    /// Where the lock lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
