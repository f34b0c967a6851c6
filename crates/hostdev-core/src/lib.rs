//! hostdev's operations on mediated devices.
//!
//! Owns: what `list`, `types`, `define`, `undefine`, `modify`, `start`, `stop`,
//! `start-parent-mdevs` and `autostart` do, generic over the kernel interface
//! ([`MdevSysfs`]) so that the same code runs against the real kernel, the
//! simulated lab and the in-memory fake. Returns typed errors ([`CoreError`]).
//! Must not: print, exit, parse command lines or choose an output format.
#![deny(missing_docs)]

mod autostart;
pub mod callouts;
mod error;
mod list;
mod ops;
pub mod vdpa;
pub mod vgpu;

pub use autostart::{AutostartReport, DeviceOutcome};
pub use callouts::Callouts;
pub use error::CoreError;
pub use list::{ListQuery, Listing};
pub use ops::{DefineRequest, JsonInput, ModifyRequest, StartRequest, Started};

use hostdev_store::{HostLock, MdevStore, TypeCacheStore};
use hostdev_sysfs::MdevSysfs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One host: its kernel interface, its definition store and its callouts.
#[derive(Debug)]
pub struct Host<S> {
    /// The kernel's mdev interface.
    pub sysfs: S,
    /// The definition store.
    pub store: MdevStore,
    /// Callout and notifier scripts.
    pub callouts: Callouts,
    /// How long `start` waits for a created device to become ready.
    pub ready_timeout: Duration,
    /// Cache of static type facts (`None` disables it).
    pub type_cache: Option<TypeCacheStore>,
    lock_path: PathBuf,
}

impl<S: MdevSysfs> Host<S> {
    /// A host whose files live under `root` (`/` in production).
    pub fn new(sysfs: S, root: &Path, callouts: Callouts) -> Self {
        Host {
            sysfs,
            store: MdevStore::new(root),
            callouts,
            ready_timeout: Duration::from_secs(10),
            type_cache: Some(TypeCacheStore::new(root)),
            lock_path: HostLock::path_under(root),
        }
    }

    /// Takes the host-wide lock if it is free (for optional writes).
    pub fn try_lock(&self) -> Option<HostLock> {
        HostLock::try_acquire(&self.lock_path).ok().flatten()
    }

    /// Takes the host-wide lock for a read-modify-write.
    pub fn lock(&self) -> Result<HostLock, CoreError> {
        Ok(HostLock::acquire(&self.lock_path)?)
    }
}
