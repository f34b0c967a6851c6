//! The cache of probe answers in `/var/lib/hostdev/probe-cache.json`: what a
//! type answered when last opened, under which driver, module version and
//! kernel. A missing or unreadable cache is an empty one.
//!
//! Owns: reading and atomically replacing the file. Must not: decide whether
//! an entry still holds (hostdev-model's `ProbeCache::get` compares the
//! identity the caller read).

use crate::atomic::write_atomic;
use crate::{HostLock, StoreError};
use hostdev_model::probe::ProbeCache;
use std::path::{Path, PathBuf};

/// Where the probe cache lives under a root prefix.
#[derive(Debug, Clone)]
pub struct ProbeCacheStore {
    path: PathBuf,
}

impl ProbeCacheStore {
    /// The cache of the host whose filesystem root is `root`.
    pub fn new(root: &Path) -> Self {
        ProbeCacheStore {
            path: root.join("var/lib/hostdev/probe-cache.json"),
        }
    }

    /// The cached answers; empty when absent or unreadable.
    pub fn load(&self) -> ProbeCache {
        std::fs::read(&self.path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Replaces the cache atomically.
    pub fn save(&self, lock: &HostLock, cache: &ProbeCache) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(cache).map_err(|e| StoreError::Write {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        write_atomic(lock, &self.path, &bytes)
    }
}
