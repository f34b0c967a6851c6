//! Caches kept as one JSON file each: static mdev type facts in
//! `/run/hostdev/type-cache.json` (tmpfs: gone at reboot; entries are checked
//! against sysfs inode numbers by the reader) and probe answers in
//! `/var/lib/hostdev/probe-cache.json` (entries hold while their driver
//! identity reads the same; hostdev-model's `ProbeCache::get` compares).
//!
//! Owns: reading (a missing or unreadable cache is an empty one) and
//! atomically replacing the file. Must not: decide whether an entry still
//! holds.

use crate::atomic::write_atomic;
use crate::{HostLock, StoreError};
use hostdev_model::format::TypeCache;
use hostdev_model::probe::ProbeCache;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

/// One cache file of `T`.
#[derive(Debug, Clone)]
pub struct CacheFile<T> {
    path: PathBuf,
    _t: PhantomData<fn() -> T>,
}

/// The type cache of a host.
pub type TypeCacheStore = CacheFile<TypeCache>;
/// The probe cache of a host.
pub type ProbeCacheStore = CacheFile<ProbeCache>;

impl CacheFile<TypeCache> {
    /// The type cache of the host whose filesystem root is `root`.
    pub fn new(root: &Path) -> Self {
        CacheFile::at(root.join("run/hostdev/type-cache.json"))
    }
}

impl CacheFile<ProbeCache> {
    /// The probe cache of the host whose filesystem root is `root`.
    pub fn new(root: &Path) -> Self {
        CacheFile::at(root.join("var/lib/hostdev/probe-cache.json"))
    }
}

/// The devices a host file made.
pub type ManagedStore = CacheFile<hostdev_model::host::Managed>;

impl CacheFile<hostdev_model::host::Managed> {
    /// The record of the host whose filesystem root is `root`.
    pub fn new(root: &Path) -> Self {
        CacheFile::at(root.join("var/lib/hostdev/host-managed.json"))
    }

    /// The record; empty when there is none yet. Unlike a cache it is not
    /// rebuilt when lost (only it says which devices the file made), so one
    /// that cannot be read or parsed is an error, never an empty record.
    pub fn load_record(&self) -> Result<hostdev_model::host::Managed, StoreError> {
        let bad = |reason: String| StoreError::Definition {
            path: self.path.clone(),
            reason,
        };
        let bytes =
            hostdev_fs::read_regular_within(&self.path, hostdev_fs::Limits::own_file(MAX_RECORD))
                .map_err(|e| bad(format!("it cannot be read: {e}")))?;
        match bytes {
            None => Ok(Default::default()),
            Some(b) => serde_json::from_slice(&b)
                .map_err(|e| bad(hostdev_model::quote::quote(&e.to_string()))),
        }
    }

    /// Where the record is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The largest record read: 65 536 mdevs, VFs and vDPA names fit in a few MB.
const MAX_RECORD: u64 = 32 << 20;

impl<T: Serialize + DeserializeOwned + Default> CacheFile<T> {
    fn at(path: PathBuf) -> Self {
        CacheFile {
            path,
            _t: PhantomData,
        }
    }

    /// The cached entries; empty when absent or unreadable.
    pub fn load(&self) -> T {
        std::fs::read(&self.path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Replaces the cache atomically.
    pub fn save(&self, lock: &HostLock, cache: &T) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(cache).map_err(|e| StoreError::Write {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        write_atomic(lock, &self.path, &bytes)
    }
}
