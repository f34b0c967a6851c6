//! The one way the core takes the host-wide lock: every read-modify-write of a
//! definition, of any kind, holds it, so hostdev processes never interleave.

use crate::CoreError;
use hostdev_store::HostLock;
use std::path::{Path, PathBuf};

/// Where the host-wide lock of one root lives.
#[derive(Debug, Clone)]
pub struct Locker {
    path: PathBuf,
}

impl Locker {
    /// The lock of the host whose files live under `root`.
    pub fn under(root: &Path) -> Self {
        Locker {
            path: HostLock::path_under(root),
        }
    }

    /// The pools' lock of the host under `root`: serializes pool kernel work
    /// (on-demand create/remove, filling, reconcile); always taken before
    /// the host lock, never after.
    pub fn pools_under(root: &Path) -> Self {
        Locker {
            path: root.join("run/lock/hostdev-pools.lock"),
        }
    }

    /// The lock one `apply` of a host file holds throughout (each step
    /// also takes the host lock for its own writes).
    pub fn apply_under(root: &Path) -> Self {
        Locker {
            path: root.join("run/lock/hostdev-apply.lock"),
        }
    }

    /// A lock file of its own at `path` (the DRA lock).
    pub fn at(path: PathBuf) -> Self {
        Locker { path }
    }

    /// Takes the lock, waiting for other holders.
    pub fn lock(&self) -> Result<HostLock, CoreError> {
        Ok(HostLock::acquire(&self.path)?)
    }

    /// Takes the lock if it is free (for optional writes such as caches).
    pub fn try_lock(&self) -> Option<HostLock> {
        HostLock::try_acquire(&self.path).ok().flatten()
    }
}
