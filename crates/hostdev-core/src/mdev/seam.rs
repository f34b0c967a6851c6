//! Mediated devices through the kind seam ([`crate::kind::DeviceKind`]):
//! restore, inventory rows, pool members and devices, the libvirt element
//! and migration's names, each made of the `Host`'s own operations.
//!
//! Owns: the mdev half of every cross-kind step. Must not: reach another
//! kind or the pool database.

use super::Host;
use crate::kind::{not_mine, problems, restore_rows, DeviceKind, KindRestore, Member};
use crate::{CoreError, MdevError};
use hostdev_api::migrate::ExportTarget;
use hostdev_api::{
    DefineRequest, DeviceRow, DeviceState, Inventory, Kind, StartRequest, Target, TypeRef,
};
use hostdev_model::libvirt;
use hostdev_model::pool::{PoolDef, PoolKind};
use hostdev_model::vdpa::CreateConfig;
use hostdev_model::{MdevConfig, ParentName, StartPolicy, TypeId, Uuid};
use hostdev_sysfs::MdevSysfs;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

fn parse_uuid(id: &str) -> Result<Uuid, CoreError> {
    Ok(id.parse::<Uuid>()?)
}

fn mdev_type(def: &PoolDef) -> Result<&TypeId, CoreError> {
    match &def.kind {
        PoolKind::Mdev { mdev_type } => Ok(mdev_type),
        _ => Err(not_mine(def, Kind::Mdev)),
    }
}

impl<S: MdevSysfs> Host<S> {
    /// Why a parent that offers `t` can take no more of it: full, or running
    /// another type under a one-type-at-a-time driver. `running` is read
    /// once, by the first full parent.
    fn full_note(
        &self,
        p: &ParentName,
        t: &TypeId,
        running: &mut Option<Vec<hostdev_sysfs::ActiveDevice>>,
    ) -> Result<String, CoreError> {
        if running.is_none() {
            *running = Some(self.sysfs.devices().map_err(CoreError::inventory)?);
        }
        let others: BTreeSet<String> = running
            .iter()
            .flatten()
            .filter(|d| &d.parent == p && &d.mdev_type != t)
            .map(|d| d.mdev_type.to_string())
            .collect();
        Ok(if others.is_empty() {
            "it is full".to_string()
        } else {
            format!(
                "it runs type {} and its driver allows one type at a time",
                others.into_iter().collect::<Vec<_>>().join(", ")
            )
        })
    }
}

impl<S: MdevSysfs> DeviceKind for Host<S> {
    fn kind(&self) -> Kind {
        Kind::Mdev
    }

    fn restore(&self, wait: Duration) -> KindRestore {
        let r = self.autostart_wait(wait)?;
        Ok((restore_rows(Kind::Mdev, r.devices), r.problems))
    }

    /// Running devices (parent, then UUID), then definitions not running.
    /// One read of sysfs and one of the store; no vendor script is asked for
    /// attributes, since the inventory shows none.
    fn inventory(&self, inv: &mut Inventory) -> Result<(), CoreError> {
        let mut running = self.sysfs.devices().map_err(CoreError::inventory)?;
        running.sort_by(|a, b| (a.parent.as_str(), a.uuid).cmp(&(b.parent.as_str(), b.uuid)));
        let (defs, ps) = self.store.load_all()?;
        inv.problems.extend(problems(Kind::Mdev, ps));
        let defined: HashMap<(Uuid, &str), StartPolicy> = defs
            .iter()
            .map(|d| ((d.uuid, d.parent.as_str()), d.config.start))
            .collect();
        let row = |uuid: Uuid, parent: &ParentName, ty: &TypeId, state, start| DeviceRow {
            kind: Kind::Mdev,
            id: uuid.to_string(),
            target: Target::Mdev {
                uuid,
                parent: Some(parent.clone()),
            },
            parent: parent.to_string(),
            type_: Some(TypeRef::id(ty.as_str())),
            state,
            start,
        };
        let mut seen = HashSet::new();
        for d in &running {
            seen.insert((d.uuid, d.parent.as_str()));
            let start = defined.get(&(d.uuid, d.parent.as_str())).copied();
            inv.devices.push(row(
                d.uuid,
                &d.parent,
                &d.mdev_type,
                DeviceState::Running,
                start,
            ));
        }
        for d in defs
            .iter()
            .filter(|d| !seen.contains(&(d.uuid, d.parent.as_str())))
        {
            inv.devices.push(row(
                d.uuid,
                &d.parent,
                &d.config.mdev_type,
                DeviceState::Stopped,
                Some(d.config.start),
            ));
        }
        Ok(())
    }

    fn members(&self, def: &PoolDef) -> Result<Vec<Member>, CoreError> {
        let t = mdev_type(def)?;
        // Running devices are read only to explain a full parent.
        let mut running = None;
        let mut out = Vec::new();
        for p in self.sysfs.parents().map_err(CoreError::inventory)? {
            if !def.members.matches(&self.sysfs.parent_facts(&p)) {
                continue;
            }
            let available = self
                .sysfs
                .available_instances(&p, t)
                .map_err(CoreError::inventory)?;
            let (free, note) = match available {
                None => (0, Some(format!("it does not offer type {t}"))),
                Some(n) if n > 0 => (n as u64, None),
                Some(_) => (0, Some(self.full_note(&p, t, &mut running)?)),
            };
            out.push(Member {
                name: p.to_string(),
                free,
                note,
                spare: Vec::new(),
            });
        }
        Ok(out)
    }

    fn next_id(
        &self,
        _def: &PoolDef,
        _member: &Member,
        _taken: &BTreeSet<String>,
        asked: Option<Uuid>,
    ) -> Result<Option<String>, CoreError> {
        Ok(Some(asked.unwrap_or_else(Uuid::new_v4).to_string()))
    }

    fn create_on(
        &self,
        def: &PoolDef,
        member: &Member,
        id: &str,
        _config: Option<&CreateConfig>,
    ) -> Result<(), CoreError> {
        let parent = ParentName::new(member.name.clone())?;
        let mut config = MdevConfig::new(mdev_type(def)?.clone());
        config.start = StartPolicy::Manual;
        self.start_device(&parse_uuid(id)?, &parent, &config)
    }

    fn exists(&self, id: &str, _member: &str) -> Result<bool, CoreError> {
        Ok(self
            .sysfs
            .device(&parse_uuid(id)?)
            .map_err(CoreError::inventory)?
            .is_some())
    }

    fn remove(&self, id: &str) -> Result<(), CoreError> {
        self.stop(&parse_uuid(id)?).map(|_| ())
    }

    fn precreate_on(&self, def: &PoolDef, member: &Member, id: &str) -> Result<(), CoreError> {
        let t = mdev_type(def)?;
        let started = self.define(&DefineRequest {
            uuid: Some(parse_uuid(id)?),
            parent: Some(ParentName::new(member.name.clone())?),
            mdev_type: Some(t.clone()),
            start: StartPolicy::Auto,
            config: None,
        })?;
        let mut config = MdevConfig::new(t.clone());
        config.start = StartPolicy::Auto;
        if let Err(e) = self.start_device(&started.uuid, &started.parent, &config) {
            let _ = self.undefine(&started.uuid, Some(&started.parent));
            return Err(e);
        }
        Ok(())
    }

    fn undefine_quietly(&self, id: &str) -> Result<(), CoreError> {
        match self.undefine(&parse_uuid(id)?, None) {
            Err(CoreError::Mdev(MdevError::NotDefined { .. })) => Ok(()),
            r => r.map(|_| ()),
        }
    }

    fn defined(&self, id: &str) -> Result<bool, CoreError> {
        Ok(!self.store.parents_with(&parse_uuid(id)?)?.is_empty())
    }

    fn restart(&self, id: &str) -> Result<(), CoreError> {
        self.start(&StartRequest {
            uuid: Some(parse_uuid(id)?),
            parent: None,
            mdev_type: None,
            config: None,
        })
        .map(|_| ())
    }

    fn libvirt_element(&self, def: &PoolDef, id: &str, member: &str) -> String {
        let api = match (mdev_type(def), ParentName::new(member.to_string())) {
            (Ok(t), Ok(p)) => self.sysfs.type_info(&p, t).ok().flatten(),
            _ => None,
        }
        .map(|t| t.device_api)
        .unwrap_or_else(|| "vfio-pci".to_string());
        match parse_uuid(id) {
            Ok(u) => libvirt::mdev_hostdev(&u, &api),
            Err(_) => String::new(),
        }
    }

    fn vfio_target(&self, id: &str) -> Option<hostdev_vfio::Target> {
        id.parse().ok().map(hostdev_vfio::Target::Mdev)
    }

    fn export_target(&self, id: &str) -> Result<ExportTarget, CoreError> {
        Ok(ExportTarget::Mdev(parse_uuid(id)?))
    }

    fn xml_source(&self, id: &str) -> Result<String, CoreError> {
        Ok(id.to_string())
    }
}
