//! Kubernetes Dynamic Resource Allocation, decided here: what this node
//! offers ([`publish`]: counter sets and devices with their attributes),
//! what an allocated device name means and how it is made and removed
//! ([`prepare`]), and the record of what was prepared for each claim
//! ([`record`]: written before the kernel is asked, so a crash at any
//! instant is undone by whoever next takes the DRA lock).
//!
//! Owns: the DRA model (one counter set per mdev parent with `units` its
//! types draw on, one type at a time through compatibility groups; one
//! counter set per NVIDIA PF's VFs, a VF taken by one (VF, type) device),
//! device and counter names, the claim records under
//! `/var/lib/hostdev/dra/claims/`, the learned type capacities in
//! `/var/lib/hostdev/dra/capacity.json`. Must not: know Kubernetes' objects
//! or gRPC (the driver maps these answers), or touch a device no claim
//! record names.

mod error;
mod health;
mod names;
mod prepare;
mod publish;
mod record;
mod vdpa;

pub use error::DraError;

use crate::{CoreError, Locker};
use std::path::{Path, PathBuf};

/// Where DRA state lives under a root prefix.
pub(crate) fn state_dir(root: &Path) -> PathBuf {
    root.join("var/lib/hostdev/dra")
}

/// The DRA lock: held by every prepare and unprepare for its whole length
/// (and by recovery), so a record in transit seen by its holder was left
/// by a process that died. Taken before the host lock, never after.
pub(crate) fn dra_lock(root: &Path) -> Result<hostdev_store::HostLock, CoreError> {
    Locker::at(root.join("run/lock/hostdev-dra.lock")).lock()
}

/// At most this many devices in one prepare (a claim's `results` limit).
pub const MAX_CLAIM_DEVICES: usize = 32;
/// At most this many devices are published per (parent, type).
pub const MAX_SLOTS_PER_TYPE: u64 = 32;
