//! The unified inventory behind `hostdevctl list`: every device of every kind
//! in one list. A kind whose kernel interface is missing (no vdpa module, an
//! unreadable PCI tree) is reported as unavailable; the others are shown.

use crate::system::Devices;
use crate::CoreError;
use crate::Interfaces;
use hostdev_api::{Inventory, Kind};
use hostdev_sysfs::MdevSysfs;

/// What the inventory's mdev rows depend on, read without reading them: the
/// definition tree's generation and the running devices' fingerprint. Equal
/// fingerprints taken before two inventories mean equal mdev rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MdevFingerprint {
    definitions: u64,
    devices: u64,
}

impl<K: Interfaces> Devices<K> {
    /// Every device hostdev manages, kind by kind in the inventory's order
    /// (mdevs, then vDPA, then vGPU VFs).
    pub fn inventory(&self) -> Result<Inventory, CoreError> {
        self.inventory_with(self.other_kinds())
    }

    /// The rows of every kind but mdev (always read: they are few). The
    /// mdev rows, thousands on a large host, are the ones a reply is kept
    /// for while [`Devices::mdev_fingerprint`] is unchanged.
    pub fn other_kinds(&self) -> Inventory {
        let mut inv = Inventory::default();
        for k in self.listed().filter(|k| k.kind() != Kind::Mdev) {
            // These kinds report a missing kernel interface as unavailable.
            if let Err(e) = k.inventory(&mut inv) {
                inv.unavailable.push(hostdev_api::Unavailable {
                    kind: k.kind(),
                    reason: e.chain(),
                });
            }
        }
        inv
    }

    /// The inventory: mdevs read now, then `others` (from
    /// [`Devices::other_kinds`]).
    pub fn inventory_with(&self, others: Inventory) -> Result<Inventory, CoreError> {
        let mut inv = Inventory::default();
        self.kind(Kind::Mdev).inventory(&mut inv)?;
        inv.devices.extend(others.devices);
        inv.problems.extend(others.problems);
        inv.unavailable.extend(others.unavailable);
        Ok(inv)
    }

    /// What the mdev rows depend on; `None` when the store or sysfs cannot
    /// tell (no memo, a tree inotify does not cover, a filesystem without
    /// inode numbers).
    pub fn mdev_fingerprint(&self) -> Option<MdevFingerprint> {
        Some(MdevFingerprint {
            definitions: self.mdev.store.generation()?,
            devices: self.mdev.sysfs.devices_fingerprint()?,
        })
    }
}
