//! The cache of static mdev type facts in `/run/hostdev/type-cache.json`
//! (tmpfs: gone at reboot). A missing or unreadable cache is an empty one;
//! entries are checked against sysfs inode numbers by the reader.

use crate::atomic::write_atomic;
use crate::{HostLock, StoreError};
use hostdev_model::format::TypeCache;
use std::path::{Path, PathBuf};

/// Where the type cache lives under a root prefix.
#[derive(Debug, Clone)]
pub struct TypeCacheStore {
    path: PathBuf,
}

impl TypeCacheStore {
    /// The cache of the host whose filesystem root is `root`.
    pub fn new(root: &Path) -> Self {
        TypeCacheStore {
            path: root.join("run/hostdev/type-cache.json"),
        }
    }

    /// The cached facts; empty when absent or unreadable.
    pub fn load(&self) -> TypeCache {
        std::fs::read(&self.path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Replaces the cache atomically.
    pub fn save(&self, lock: &HostLock, cache: &TypeCache) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(cache).map_err(|e| StoreError::Write {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        write_atomic(lock, &self.path, &bytes)
    }
}
