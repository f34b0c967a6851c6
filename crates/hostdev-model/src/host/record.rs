//! The record of what a host file made (`/var/lib/hostdev/host-managed.json`):
//! the devices apply may remove when the file drops them, and those an
//! apply is making now.
//!
//! Owns: the record's shape and its rules (pend before making, claim once
//! made, forget once removed). Must not: read or write it (hostdev-store's
//! `ManagedStore` does), or decide what an apply did (hostdev-core does).

use crate::names::Uuid;
use crate::pci::PciAddress;
use crate::vdpa::VdpaName;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The devices a host file made (`/var/lib/hostdev/host-managed.json`):
/// apply removes only these when the file no longer has them, never a
/// device someone defined by hand.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Managed {
    /// mdev UUIDs.
    #[serde(default)]
    pub mdev: BTreeSet<Uuid>,
    /// PFs whose VF count it set.
    #[serde(default)]
    pub pf: BTreeSet<PciAddress>,
    /// VFs it gave a vGPU type.
    #[serde(default)]
    pub vgpu: BTreeSet<PciAddress>,
    /// vDPA devices.
    #[serde(default)]
    pub vdpa: BTreeSet<VdpaName>,
    /// What an apply is about to make, recorded before it makes it (so a
    /// killed apply leaves a trace): never a reason to remove anything. An
    /// apply moves what it made to the sets above and drops the rest; what
    /// a killed one left is claimed by the next only where the device is
    /// exactly as the file wants it.
    #[serde(default, skip_serializing_if = "Pending::is_empty")]
    pub pending: Pending,
}

/// Devices an apply is making (see [`Managed::pending`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pending {
    /// mdev UUIDs.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub mdev: BTreeSet<Uuid>,
    /// PFs.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub pf: BTreeSet<PciAddress>,
    /// VFs.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub vgpu: BTreeSet<PciAddress>,
    /// vDPA devices.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub vdpa: BTreeSet<VdpaName>,
}

impl Pending {
    /// Nothing is being made.
    pub fn is_empty(&self) -> bool {
        self.mdev.is_empty() && self.pf.is_empty() && self.vgpu.is_empty() && self.vdpa.is_empty()
    }
}

impl Managed {
    /// Records that an apply is about to make the device `id` of `kind`
    /// (`mdev`, `sriov`, `vgpu`, `vdpa`), unless the file made it already.
    pub fn pend(&mut self, kind: &str, id: &str) {
        match kind {
            "mdev" => {
                if let Ok(u) = id.parse() {
                    if !self.mdev.contains(&u) {
                        self.pending.mdev.insert(u);
                    }
                }
            }
            "sriov" => {
                if let Ok(a) = id.parse() {
                    if !self.pf.contains(&a) {
                        self.pending.pf.insert(a);
                    }
                }
            }
            "vgpu" => {
                if let Ok(a) = id.parse() {
                    if !self.vgpu.contains(&a) {
                        self.pending.vgpu.insert(a);
                    }
                }
            }
            _ => {
                if let Ok(n) = id.parse() {
                    if !self.vdpa.contains(&n) {
                        self.pending.vdpa.insert(n);
                    }
                }
            }
        }
    }

    /// The device `id` of `kind` is the file's: made by it (its step was
    /// done), or exactly as the file wants it after an apply that pended
    /// it was killed. No-op unless it is pending.
    pub fn claim(&mut self, kind: &str, id: &str) {
        match kind {
            "mdev" => {
                if let Ok(u) = id.parse() {
                    if self.pending.mdev.remove(&u) {
                        self.mdev.insert(u);
                    }
                }
            }
            "sriov" => {
                if let Ok(a) = id.parse() {
                    if self.pending.pf.remove(&a) {
                        self.pf.insert(a);
                    }
                }
            }
            "vgpu" => {
                if let Ok(a) = id.parse() {
                    if self.pending.vgpu.remove(&a) {
                        self.vgpu.insert(a);
                    }
                }
            }
            _ => {
                if let Ok(n) = id.parse() {
                    if self.pending.vdpa.remove(&n) {
                        self.vdpa.insert(n);
                    }
                }
            }
        }
    }

    /// Forgets the device `id` of `kind` (the file removed it).
    pub fn forget(&mut self, kind: &str, id: &str) {
        match kind {
            "mdev" => {
                if let Ok(u) = id.parse() {
                    self.mdev.remove(&u);
                }
            }
            "sriov" => {
                if let Ok(a) = id.parse() {
                    self.pf.remove(&a);
                }
            }
            "vgpu" => {
                if let Ok(a) = id.parse() {
                    self.vgpu.remove(&a);
                }
            }
            _ => {
                if let Ok(n) = id.parse() {
                    self.vdpa.remove(&n);
                }
            }
        }
    }
}
