//! The unified inventory behind `hostdevctl list`: every device of every kind
//! in one list. A kind whose kernel interface is missing (no vdpa module, an
//! unreadable PCI tree) is reported as unavailable; the others are shown.

use crate::system::Devices;
use crate::CoreError;
use hostdev_api::{DeviceRow, DeviceState, Inventory, Kind, Problem, Target, TypeRef, Unavailable};
use hostdev_model::{StartPolicy, Uuid};
use hostdev_store::LoadProblem;
use hostdev_sysfs::sriov::SriovSysfs;
use hostdev_sysfs::MdevSysfs;
use hostdev_vdpa::VdpaClient;
use std::collections::{HashMap, HashSet};

fn problems(kind: Kind, ps: Vec<LoadProblem>) -> impl Iterator<Item = Problem> {
    ps.into_iter().map(move |p| Problem {
        kind,
        path: p.path,
        reason: p.reason,
    })
}

/// What the inventory's mdev rows depend on, read without reading them: the
/// definition tree's generation and the running devices' fingerprint. Equal
/// fingerprints taken before two inventories mean equal mdev rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MdevFingerprint {
    definitions: u64,
    devices: u64,
}

impl<S: MdevSysfs, V: SriovSysfs, C: VdpaClient> Devices<S, V, C> {
    /// Every device hostdev manages: mdevs, then vDPA, then vGPU VFs.
    pub fn inventory(&self) -> Result<Inventory, CoreError> {
        self.inventory_with(self.other_kinds())
    }

    /// The vDPA and vGPU part of the inventory (always read: it is small).
    pub fn other_kinds(&self) -> Inventory {
        let mut inv = Inventory::default();
        self.vdpa_rows(&mut inv);
        self.vgpu_rows(&mut inv);
        inv
    }

    /// The inventory: mdevs read now, then `others` (from
    /// [`Devices::other_kinds`]).
    pub fn inventory_with(&self, others: Inventory) -> Result<Inventory, CoreError> {
        let mut inv = Inventory::default();
        self.mdev_rows(&mut inv)?;
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

    /// Running devices (parent, then UUID), then definitions not running.
    /// One read of sysfs and one of the store; no vendor script is asked for
    /// attributes, since the inventory shows none.
    fn mdev_rows(&self, inv: &mut Inventory) -> Result<(), CoreError> {
        let mut running = self.mdev.sysfs.devices().map_err(CoreError::inventory)?;
        running.sort_by(|a, b| (a.parent.as_str(), a.uuid).cmp(&(b.parent.as_str(), b.uuid)));
        let (defs, ps) = self.mdev.store.load_all()?;
        inv.problems.extend(problems(Kind::Mdev, ps));
        let defined: HashMap<(Uuid, &str), StartPolicy> = defs
            .iter()
            .map(|d| ((d.uuid, d.parent.as_str()), d.config.start))
            .collect();
        let mut seen = HashSet::new();
        for d in &running {
            seen.insert((d.uuid, d.parent.as_str()));
            inv.devices.push(DeviceRow {
                kind: Kind::Mdev,
                id: d.uuid.to_string(),
                target: Target::Mdev {
                    uuid: d.uuid,
                    parent: Some(d.parent.clone()),
                },
                parent: d.parent.to_string(),
                type_: Some(TypeRef::id(d.mdev_type.as_str())),
                state: DeviceState::Running,
                start: defined.get(&(d.uuid, d.parent.as_str())).copied(),
            });
        }
        for d in defs
            .iter()
            .filter(|d| !seen.contains(&(d.uuid, d.parent.as_str())))
        {
            inv.devices.push(DeviceRow {
                kind: Kind::Mdev,
                id: d.uuid.to_string(),
                target: Target::Mdev {
                    uuid: d.uuid,
                    parent: Some(d.parent.clone()),
                },
                parent: d.parent.to_string(),
                type_: Some(TypeRef::id(d.config.mdev_type.as_str())),
                state: DeviceState::Stopped,
                start: Some(d.config.start),
            });
        }
        Ok(())
    }

    fn vdpa_rows(&self, inv: &mut Inventory) {
        let survey = match self.vdpa.survey() {
            Ok(s) => s,
            Err(e) => {
                inv.unavailable.push(Unavailable {
                    kind: Kind::Vdpa,
                    reason: e.chain(),
                });
                return;
            }
        };
        let (rows, ps) = (survey.rows, survey.problems);
        if let Err(e) = survey.kernel {
            inv.problems.extend(problems(Kind::Vdpa, ps));
            // No vdpa family and nothing defined: a host without vDPA, not a problem.
            if !(e.is_no_family() && rows.is_empty()) {
                inv.unavailable.push(Unavailable {
                    kind: Kind::Vdpa,
                    reason: e.chain(),
                });
            }
            return;
        }
        inv.problems.extend(problems(Kind::Vdpa, ps));
        for (n, d, def) in rows {
            let mgmtdev = d
                .as_ref()
                .map(|d| d.mgmtdev.to_string())
                .or(def.as_ref().map(|x| x.mgmtdev.to_string()))
                .unwrap_or_default();
            let class = match d.as_ref().and_then(|d| d.device_id) {
                Some(1) => Some(TypeRef::id("net")),
                Some(2) => Some(TypeRef::id("block")),
                _ => None,
            };
            inv.devices.push(DeviceRow {
                kind: Kind::Vdpa,
                id: n.to_string(),
                target: Target::Vdpa { name: n.clone() },
                parent: mgmtdev,
                type_: class,
                state: if d.is_some() {
                    DeviceState::Running
                } else {
                    DeviceState::Stopped
                },
                start: def.map(|x| x.start),
            });
        }
    }

    fn vgpu_rows(&self, inv: &mut Inventory) {
        let (rows, ps) = match self.vgpu.list() {
            Ok(x) => x,
            Err(e) => {
                inv.unavailable.push(Unavailable {
                    kind: Kind::Vgpu,
                    reason: e.chain(),
                });
                return;
            }
        };
        inv.problems.extend(problems(Kind::Vgpu, ps));
        for r in rows {
            if r.def.is_none() && r.current.is_none_or(|c| c == 0) {
                continue;
            }
            let type_ = match (&r.def, r.current) {
                (Some(d), _) => Some(TypeRef::named(d.type_id.to_string(), &d.type_name)),
                (None, Some(c)) => Some(TypeRef::id(c.to_string())),
                _ => None,
            };
            let state = match r.current {
                None => DeviceState::Absent,
                Some(0) => DeviceState::Stopped,
                Some(_) => DeviceState::Running,
            };
            inv.devices.push(DeviceRow {
                kind: Kind::Vgpu,
                id: r.vf.to_string(),
                target: Target::Vgpu { vf: r.vf.clone() },
                parent: r.pf.to_string(),
                type_,
                state,
                start: r.def.map(|d| d.start),
            });
        }
    }
}
