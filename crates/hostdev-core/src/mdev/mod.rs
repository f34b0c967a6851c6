//! Mediated devices: the [`Host`] (kernel interface, definition store,
//! callouts) and what each mdev operation does.
//!
//! Owns: list/types, define/undefine/modify/start/stop, start-parent-mdevs and
//! mdev autostart, the callout protocol. Must not: print, or know any
//! front-end's flags.

mod autostart;
mod error;
pub use error::MdevError;
pub mod callouts;
mod list;
mod ops;
mod seam;

pub use autostart::{AutostartReport, DeviceOutcome};
pub use callouts::Callouts;
pub use list::Listing;
pub use ops::Started;

use crate::lock::Locker;
use crate::CoreError;
use hostdev_store::{HostLock, MdevStore, TypeCacheStore};
use hostdev_sysfs::MdevSysfs;
use std::path::Path;
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
    locker: Locker,
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
            locker: Locker::under(root),
        }
    }

    /// Takes the host-wide lock if it is free (for optional writes).
    pub fn try_lock(&self) -> Option<HostLock> {
        self.locker.try_lock()
    }

    /// Takes the host-wide lock for a read-modify-write.
    pub fn lock(&self) -> Result<HostLock, CoreError> {
        self.locker.lock()
    }
}
