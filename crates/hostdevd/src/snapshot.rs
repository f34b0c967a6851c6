//! One look at the whole host — inventory, mdev types, vGPU PFs, vDPA
//! management devices — and what follows from comparing two looks: devices
//! added and removed, parents that appeared, drift. Owns: reading the host
//! through the core and those comparisons. Must not: change the host.

use hostdev_core::api::events::DeviceRef;
use hostdev_core::api::{DeviceState, DriftKind, Inventory, Kind, PfTypes, StartPolicy};
use hostdev_core::Interfaces;
use hostdev_core::{CoreError, Devices};
use hostdev_model::format::TypeInfo;
use hostdev_model::ParentName;
use std::collections::BTreeSet;

/// The host at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Every device and definition.
    pub inventory: Inventory,
    /// mdev parents and their types.
    pub mdev_types: Vec<(ParentName, Vec<TypeInfo>)>,
    /// PFs with VFs and their vGPU types.
    pub vgpu_types: Vec<PfTypes>,
    /// vDPA management devices.
    pub mgmtdevs: Vec<String>,
    /// How the host differs from its definitions (see [`Snapshot::drift_of`]).
    pub drift: BTreeSet<(DeviceRef, DriftKind)>,
}

impl Snapshot {
    /// Reads the host; a kind whose interface is missing contributes nothing.
    pub fn take<K: Interfaces>(sys: &Devices<K>) -> Result<Snapshot, CoreError> {
        let mut s = Snapshot {
            inventory: sys.inventory()?,
            mdev_types: sys.mdev.types(None)?,
            vgpu_types: sys.vgpu.types(None).unwrap_or_default(),
            mgmtdevs: sys
                .vdpa
                .mgmtdevs()
                .map(|ms| ms.into_iter().map(|m| m.name.to_string()).collect())
                .unwrap_or_default(),
            drift: BTreeSet::new(),
        };
        // Read after the inventory: a device a pool made since is then
        // owned by a record this read sees.
        let mut owned = sys.pool_owned().unwrap_or_else(|e| {
            tracing::warn!(error = %e.chain(), "pool state cannot be read; pool devices may show as drift");
            BTreeSet::new()
        });
        // And what Kubernetes' claims hold (their records, read after the
        // inventory too: a record is written before its device is made).
        owned.extend(sys.dra_owned());
        s.drift = s.drift_of(&owned);
        Ok(s)
    }

    /// Every parent, PF and management device present.
    pub fn parents(&self) -> BTreeSet<(Kind, String)> {
        let mut out = BTreeSet::new();
        out.extend(
            self.mdev_types
                .iter()
                .map(|(p, _)| (Kind::Mdev, p.to_string())),
        );
        out.extend(
            self.vgpu_types
                .iter()
                .map(|p| (Kind::Vgpu, p.pf.to_string())),
        );
        out.extend(self.mgmtdevs.iter().map(|m| (Kind::Vdpa, m.clone())));
        out
    }

    /// Devices present now.
    pub fn running(&self) -> BTreeSet<DeviceRef> {
        self.inventory
            .devices
            .iter()
            .filter(|d| d.state == DeviceState::Running)
            .map(|d| DeviceRef {
                kind: d.kind,
                id: d.id.clone(),
                parent: d.parent.clone(),
            })
            .collect()
    }

    /// How the host differs from its definitions: an auto-start definition
    /// whose device is missing while its parent is there, a running device
    /// nobody defined and no pool or DRA claim made (`owned`: pools and
    /// claims make devices without definitions). Computed once, by
    /// [`Snapshot::take`].
    fn drift_of(&self, owned: &BTreeSet<String>) -> BTreeSet<(DeviceRef, DriftKind)> {
        let parents = self.parents();
        let mut out = BTreeSet::new();
        for d in &self.inventory.devices {
            let r = || DeviceRef {
                kind: d.kind,
                id: d.id.clone(),
                parent: d.parent.clone(),
            };
            match (d.start, d.state) {
                (Some(StartPolicy::Auto), DeviceState::Stopped)
                    if parents.contains(&(d.kind, d.parent.clone())) =>
                {
                    out.insert((r(), DriftKind::AutoNotRunning));
                }
                (None, DeviceState::Running) if !owned.contains(&d.id) => {
                    out.insert((r(), DriftKind::Undefined));
                }
                _ => {}
            }
        }
        out
    }
}
