//! NVIDIA vGPUs through the kind seam ([`crate::kind::DeviceKind`]):
//! restore, inventory rows, pool members (PFs) and devices (VFs that take a
//! type), the libvirt element and migration's names, each made of the
//! `Vgpus`' own operations.
//!
//! Owns: the vGPU half of every cross-kind step. Must not: reach another
//! kind or the pool database.

use super::{VgpuSlot, Vgpus};
use crate::kind::{not_mine, problems, restore_rows, DeviceKind, KindRestore, Member};
use crate::{CoreError, VgpuError};
use hostdev_api::migrate::ExportTarget;
use hostdev_api::{DeviceRow, DeviceState, Inventory, Kind, Target, TypeRef, Unavailable};
use hostdev_model::libvirt;
use hostdev_model::pci::PciAddress;
use hostdev_model::pool::{PoolDef, PoolKind};
use hostdev_model::vdpa::CreateConfig;
use hostdev_model::{StartPolicy, Uuid};
use hostdev_sysfs::sriov::SriovSysfs;
use std::collections::BTreeSet;
use std::time::Duration;

fn parse_vf(id: &str) -> Result<PciAddress, CoreError> {
    Ok(id.parse::<PciAddress>()?)
}

fn type_name(def: &PoolDef) -> Result<&str, CoreError> {
    match &def.kind {
        PoolKind::Vgpu { type_name } => Ok(type_name),
        _ => Err(not_mine(def, Kind::Vgpu)),
    }
}

impl<V: SriovSysfs> DeviceKind for Vgpus<V> {
    fn kind(&self) -> Kind {
        Kind::Vgpu
    }

    fn restore(&self, wait: Duration) -> KindRestore {
        let (r, ps) = Vgpus::restore(self, wait)?;
        Ok((restore_rows(Kind::Vgpu, r), ps))
    }

    /// A row per VF that has a definition or runs a type; an unreadable PCI
    /// tree makes the kind unavailable, not the inventory.
    fn inventory(&self, inv: &mut Inventory) -> Result<(), CoreError> {
        let (rows, ps) = match self.list() {
            Ok(x) => x,
            Err(e) => {
                inv.unavailable.push(Unavailable {
                    kind: Kind::Vgpu,
                    reason: e.chain(),
                });
                return Ok(());
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
        Ok(())
    }

    fn members(&self, def: &PoolDef) -> Result<Vec<Member>, CoreError> {
        let type_name = type_name(def)?;
        let mut out = Vec::new();
        for pf in self.vgpu_pfs()? {
            if !def.members.matches(&self.sriov.pf_facts(&pf.address)) {
                continue;
            }
            let vfs = self.sriov.vfs(&pf.address)?;
            let spare: Vec<String> = vfs
                .iter()
                .filter(|v| {
                    v.ready
                        && v.current == 0
                        && !self.defs.exists(v.address.as_str())
                        && v.creatable.iter().any(|t| t.name == type_name)
                })
                .map(|v| v.address.to_string())
                .collect();
            let note = match (spare.is_empty(), vfs.is_empty()) {
                (false, _) => None,
                (true, true) => Some("it has no VFs enabled".to_string()),
                (true, false) => Some(format!(
                    "none of its {} VFs can take {type_name} now",
                    vfs.len()
                )),
            };
            out.push(Member {
                name: pf.address.to_string(),
                free: spare.len() as u64,
                note,
                spare,
            });
        }
        Ok(out)
    }

    /// The member's first spare VF not taken.
    fn next_id(
        &self,
        _def: &PoolDef,
        member: &Member,
        taken: &BTreeSet<String>,
        _asked: Option<Uuid>,
    ) -> Result<Option<String>, CoreError> {
        Ok(member.spare.iter().find(|v| !taken.contains(*v)).cloned())
    }

    fn create_on(
        &self,
        def: &PoolDef,
        member: &Member,
        id: &str,
        _config: Option<&CreateConfig>,
    ) -> Result<(), CoreError> {
        let type_name = type_name(def)?;
        let vf = parse_vf(id)?;
        let v = self
            .sriov
            .vfs(&parse_vf(&member.name)?)?
            .into_iter()
            .find(|v| v.address == vf)
            .ok_or_else(|| CoreError::from(VgpuError::VfAbsent { vf: vf.clone() }))?;
        let t = v
            .creatable
            .iter()
            .find(|t| t.name == type_name)
            .ok_or_else(|| {
                CoreError::from(VgpuError::not_creatable(
                    &vf,
                    type_name.to_string(),
                    &v.creatable,
                ))
            })?;
        Ok(self.sriov.set_type(&vf, t.id)?)
    }

    /// Whether the VF has a type; only its PF's VFs are read.
    fn exists(&self, id: &str, member: &str) -> Result<bool, CoreError> {
        let vf = parse_vf(id)?;
        Ok(self
            .sriov
            .vfs(&parse_vf(member)?)?
            .into_iter()
            .any(|v| v.address == vf && v.current != 0))
    }

    fn remove(&self, id: &str) -> Result<(), CoreError> {
        self.stop(&parse_vf(id)?)
    }

    fn precreate_on(&self, def: &PoolDef, _member: &Member, id: &str) -> Result<(), CoreError> {
        let vf = parse_vf(id)?;
        let d = self.define(&VgpuSlot::Vf(vf), type_name(def)?, StartPolicy::Auto)?;
        if let Err(e) = self.start(&d.vf) {
            let _ = self.undefine(&d.vf);
            return Err(e);
        }
        Ok(())
    }

    fn undefine_quietly(&self, id: &str) -> Result<(), CoreError> {
        match self.undefine(&parse_vf(id)?) {
            Err(CoreError::Vgpu(VgpuError::NotDefined { .. })) => Ok(()),
            r => r,
        }
    }

    fn defined(&self, id: &str) -> Result<bool, CoreError> {
        Ok(self.defs.exists(id))
    }

    fn restart(&self, id: &str) -> Result<(), CoreError> {
        self.start(&parse_vf(id)?).map(|_| ())
    }

    fn libvirt_element(&self, _def: &PoolDef, id: &str, _member: &str) -> String {
        parse_vf(id)
            .map(|a| libvirt::pci_hostdev(&a))
            .unwrap_or_default()
    }

    fn vfio_target(&self, id: &str) -> Option<hostdev_vfio::Target> {
        parse_vf(id).ok().map(hostdev_vfio::Target::Pci)
    }

    fn export_target(&self, id: &str) -> Result<ExportTarget, CoreError> {
        Ok(ExportTarget::Vgpu(parse_vf(id)?))
    }

    fn xml_source(&self, id: &str) -> Result<String, CoreError> {
        Ok(id.to_string())
    }
}
