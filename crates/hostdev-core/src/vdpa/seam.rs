//! vDPA devices through the kind seam ([`crate::kind::DeviceKind`]):
//! restore, inventory rows, pool members (management devices) and devices
//! (named PREFIX + slot from the pool's template), the libvirt element and
//! migration's names, each made of the `Vdpas`' own operations.
//!
//! Owns: the vDPA half of every cross-kind step. Must not: reach another
//! kind or the pool database.

use super::Vdpas;
use crate::kind::{not_mine, problems, restore_rows, DeviceKind, KindRestore, Member};
use crate::{CoreError, MigrateError, PoolError, VdpaError};
use hostdev_api::migrate::ExportTarget;
use hostdev_api::{DeviceRow, DeviceState, Inventory, Kind, Target, TypeRef, Unavailable};
use hostdev_model::pool::{PoolDef, PoolKind, VdpaTemplate};
use hostdev_model::vdpa::{CreateConfig, VdpaDefinition, VdpaName};
use hostdev_model::{StartPolicy, Uuid};
use hostdev_vdpa::VdpaClient;
use std::collections::BTreeSet;
use std::time::Duration;

fn template(def: &PoolDef) -> Result<&VdpaTemplate, CoreError> {
    match &def.kind {
        PoolKind::Vdpa { template } => Ok(template),
        _ => Err(not_mine(def, Kind::Vdpa)),
    }
}

/// The slot number in a vDPA pool device's name.
fn slot_of(t: &VdpaTemplate, id: &str) -> u32 {
    id.strip_prefix(&t.name_prefix)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

impl<C: VdpaClient> DeviceKind for Vdpas<C> {
    fn kind(&self) -> Kind {
        Kind::Vdpa
    }

    /// vDPA devices have no late parents: `wait` is not used.
    fn restore(&self, _wait: Duration) -> KindRestore {
        let (r, ps) = Vdpas::restore(self)?;
        Ok((restore_rows(Kind::Vdpa, r), ps))
    }

    /// A row per device running or defined. Without the kernel's vdpa
    /// family and with nothing defined the host has no vDPA (no row, no
    /// problem); otherwise a missing family makes the kind unavailable.
    fn inventory(&self, inv: &mut Inventory) -> Result<(), CoreError> {
        let survey = match self.survey() {
            Ok(s) => s,
            Err(e) => {
                inv.unavailable.push(Unavailable {
                    kind: Kind::Vdpa,
                    reason: e.chain(),
                });
                return Ok(());
            }
        };
        let (rows, ps) = (survey.rows, survey.problems);
        inv.problems.extend(problems(Kind::Vdpa, ps));
        if let Err(e) = survey.kernel {
            if !(e.is_no_family() && rows.is_empty()) {
                inv.unavailable.push(Unavailable {
                    kind: Kind::Vdpa,
                    reason: e.chain(),
                });
            }
            return Ok(());
        }
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
        Ok(())
    }

    /// Every management device the pool's members match; the family
    /// reports no device limit, so the pool's `limit` bounds it.
    fn members(&self, def: &PoolDef) -> Result<Vec<Member>, CoreError> {
        template(def)?;
        let mut out = Vec::new();
        for m in self.mgmtdevs()? {
            let name = m.name.to_string();
            let facts = hostdev_model::pool::MemberFacts {
                name: name.clone(),
                ..Default::default()
            };
            if !def.members.matches(&facts) {
                continue;
            }
            out.push(Member {
                name,
                free: hostdev_api::pool::NO_DEVICE_LIMIT,
                note: None,
                spare: Vec::new(),
            });
        }
        Ok(out)
    }

    /// PREFIX + the lowest slot not taken, running or defined.
    fn next_id(
        &self,
        def: &PoolDef,
        _member: &Member,
        taken: &BTreeSet<String>,
        _asked: Option<Uuid>,
    ) -> Result<Option<String>, CoreError> {
        let template = template(def)?;
        let live: BTreeSet<String> = self.client()?.devs()?.into_iter().map(|d| d.name).collect();
        // Slots stop where the template's addresses would run out.
        (0..template.slots())
            .map(|n| format!("{}{n}", template.name_prefix))
            .find(|n| !taken.contains(n) && !live.contains(n) && !self.defs.exists(n))
            .map(Some)
            .ok_or_else(|| {
                CoreError::from(PoolError::Exhausted {
                    pool: def.name.to_string(),
                    allocated: taken.len() as u64,
                    capacity: taken.len() as u64,
                })
            })
    }

    fn create_on(
        &self,
        def: &PoolDef,
        member: &Member,
        id: &str,
        config: Option<&CreateConfig>,
    ) -> Result<(), CoreError> {
        let template = template(def)?;
        let name = VdpaName::new(id)?;
        let mgmt = member.name.parse()?;
        let slot = template.config(slot_of(template, id));
        self.add(&name, &mgmt, config.unwrap_or(&slot))
    }

    fn exists(&self, id: &str, _member: &str) -> Result<bool, CoreError> {
        Ok(self.client()?.dev(&VdpaName::new(id)?)?.is_some())
    }

    fn remove(&self, id: &str) -> Result<(), CoreError> {
        self.del(&VdpaName::new(id)?)
    }

    fn precreate_on(&self, def: &PoolDef, member: &Member, id: &str) -> Result<(), CoreError> {
        let template = template(def)?;
        let d = VdpaDefinition {
            name: VdpaName::new(id)?,
            mgmtdev: member.name.parse()?,
            config: template.config(slot_of(template, id)),
            start: StartPolicy::Auto,
        };
        self.define(&d)?;
        if let Err(e) = self.start(&d.name) {
            let _ = self.undefine(&d.name);
            return Err(e);
        }
        Ok(())
    }

    fn undefine_quietly(&self, id: &str) -> Result<(), CoreError> {
        match self.undefine(&VdpaName::new(id)?) {
            Err(CoreError::Vdpa(VdpaError::NotDefined { .. })) => Ok(()),
            r => r,
        }
    }

    fn defined(&self, id: &str) -> Result<bool, CoreError> {
        Ok(self.defs.exists(id))
    }

    fn restart(&self, id: &str) -> Result<(), CoreError> {
        self.start(&VdpaName::new(id)?)
    }

    fn libvirt_element(&self, _def: &PoolDef, id: &str, _member: &str) -> String {
        VdpaName::new(id)
            .ok()
            .and_then(|n| self.libvirt(&n).ok())
            .unwrap_or_default()
    }

    fn vfio_target(&self, id: &str) -> Option<hostdev_vfio::Target> {
        let _ = id;
        None
    }

    fn export_target(&self, id: &str) -> Result<ExportTarget, CoreError> {
        Ok(ExportTarget::Vdpa(VdpaName::new(id)?))
    }

    /// The device's vhost path.
    fn xml_source(&self, id: &str) -> Result<String, CoreError> {
        let name = VdpaName::new(id)?;
        self.show(&name)?.vhost_dev.ok_or_else(|| {
            CoreError::from(MigrateError::BadSpec {
                why: format!("vDPA device {id} is not bound to vhost_vdpa"),
            })
        })
    }
}
