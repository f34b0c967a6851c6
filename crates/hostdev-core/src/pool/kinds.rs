//! What a pool needs from each kind of device: which members exist and how
//! many more each can take, and how a device is made, removed, checked and
//! named to libvirt. Every kernel step goes through the kind's own core
//! operations (`Host`, `Vgpus`, `Vdpas`), so callouts, readiness waits and
//! error sentences are the same as for a device made by hand.
//!
//! Owns: the per-kind half of pools. Must not: touch the state database or
//! choose between members (mod.rs does both).

use crate::{CoreError, Devices};
use crate::{MdevError, PoolError, VdpaError, VgpuError};
use hostdev_api::{DefineRequest, Kind};
use hostdev_model::libvirt;
use hostdev_model::pool::{PoolDef, PoolKind};
use hostdev_model::vdpa::{VdpaDefinition, VdpaName};
use hostdev_model::vgpu::PciAddress;
use hostdev_model::{MdevConfig, ParentName, StartPolicy, Uuid};
use hostdev_sysfs::sriov::SriovSysfs;
use hostdev_sysfs::MdevSysfs;
use hostdev_vdpa::VdpaClient;
use std::collections::BTreeSet;

/// A member as a pool sees it now.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    /// Parent, PF address or management device.
    pub name: String,
    /// How many more of the pool's devices it can take.
    pub free: u64,
    /// Why it takes none.
    pub note: Option<String>,
    /// vGPU: the VFs that can take the type now, in order.
    pub spare: Vec<String>,
}

/// The pool's kind word.
pub(crate) fn kind_of(def: &PoolDef) -> Kind {
    match def.kind {
        PoolKind::Mdev { .. } => Kind::Mdev,
        PoolKind::Vgpu { .. } => Kind::Vgpu,
        PoolKind::Vdpa { .. } => Kind::Vdpa,
    }
}

fn parse_uuid(id: &str) -> Result<Uuid, CoreError> {
    Ok(id.parse::<Uuid>()?)
}

fn parse_vf(id: &str) -> Result<PciAddress, CoreError> {
    Ok(id.parse::<PciAddress>()?)
}

impl<S: MdevSysfs, V: SriovSysfs, C: VdpaClient> Devices<S, V, C> {
    /// The members of `def` present now, by name.
    pub(crate) fn members(&self, def: &PoolDef) -> Result<Vec<Member>, CoreError> {
        match &def.kind {
            PoolKind::Mdev { mdev_type } => {
                let sysfs = &self.mdev.sysfs;
                // Running devices are read only to explain a full parent.
                let mut running = None;
                let mut out = Vec::new();
                for p in sysfs.parents().map_err(CoreError::inventory)? {
                    if !def.members.matches(&sysfs.parent_facts(&p)) {
                        continue;
                    }
                    let available = sysfs
                        .available_instances(&p, mdev_type)
                        .map_err(CoreError::inventory)?;
                    let (free, note) = match available {
                        None => (0, Some(format!("it does not offer type {mdev_type}"))),
                        Some(n) if n > 0 => (n as u64, None),
                        Some(_) => {
                            if running.is_none() {
                                running = Some(sysfs.devices().map_err(CoreError::inventory)?);
                            }
                            let others: BTreeSet<String> = running
                                .iter()
                                .flatten()
                                .filter(|d| d.parent == p && &d.mdev_type != mdev_type)
                                .map(|d| d.mdev_type.to_string())
                                .collect();
                            let note = if others.is_empty() {
                                "it is full".to_string()
                            } else {
                                format!(
                                    "it runs type {} and its driver allows one type at a time",
                                    others.into_iter().collect::<Vec<_>>().join(", ")
                                )
                            };
                            (0, Some(note))
                        }
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
            PoolKind::Vgpu { type_name } => {
                let mut out = Vec::new();
                for pf in self.vgpu.vgpu_pfs()? {
                    if !def.members.matches(&self.vgpu.sriov.pf_facts(&pf.address)) {
                        continue;
                    }
                    let vfs = self.vgpu.sriov.vfs(&pf.address)?;
                    let spare: Vec<String> = vfs
                        .iter()
                        .filter(|v| {
                            v.ready
                                && v.current == 0
                                && !self.vgpu.defs.exists(v.address.as_str())
                                && v.creatable.iter().any(|t| &t.name == type_name)
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
            PoolKind::Vdpa { .. } => {
                let mut out = Vec::new();
                for m in self.vdpa.mgmtdevs()? {
                    let name = m.name.to_string();
                    let facts = hostdev_model::pool::MemberFacts {
                        name: name.clone(),
                        ..Default::default()
                    };
                    if !def.members.matches(&facts) {
                        continue;
                    }
                    // The family reports no device limit; `limit` bounds the pool.
                    out.push(Member {
                        name,
                        free: hostdev_api::pool::NO_DEVICE_LIMIT,
                        note: None,
                        spare: Vec::new(),
                    });
                }
                Ok(out)
            }
        }
    }

    /// Creates one device on `member` (transient: removed at release) named
    /// `id`; a vDPA device with `config` where given (a migration's source
    /// config), else the template's for its slot.
    pub(crate) fn create_on(
        &self,
        def: &PoolDef,
        member: &Member,
        id: &str,
        config: Option<&hostdev_model::vdpa::CreateConfig>,
    ) -> Result<(), CoreError> {
        match &def.kind {
            PoolKind::Mdev { mdev_type } => {
                let parent = ParentName::new(member.name.clone())?;
                let mut config = MdevConfig::new(mdev_type.clone());
                config.start = StartPolicy::Manual;
                self.mdev.start_device(&parse_uuid(id)?, &parent, &config)
            }
            PoolKind::Vgpu { type_name } => {
                let vf = parse_vf(id)?;
                let v = self
                    .vgpu
                    .sriov
                    .vfs(&parse_vf(&member.name)?)?
                    .into_iter()
                    .find(|v| v.address == vf)
                    .ok_or_else(|| CoreError::from(VgpuError::VfAbsent { vf: vf.clone() }))?;
                let t = v
                    .creatable
                    .iter()
                    .find(|t| &t.name == type_name)
                    .ok_or_else(|| {
                        CoreError::from(VgpuError::not_creatable(
                            &vf,
                            type_name.clone(),
                            &v.creatable,
                        ))
                    })?;
                Ok(self.vgpu.sriov.set_type(&vf, t.id)?)
            }
            PoolKind::Vdpa { template } => {
                let name = VdpaName::new(id)?;
                let mgmt = member.name.parse()?;
                let slot = template.config(slot_of(template, id));
                self.vdpa.add(&name, &mgmt, config.unwrap_or(&slot))
            }
        }
    }

    /// Removes a device made on demand; a device already gone is not an error.
    pub(crate) fn remove_made(
        &self,
        def: &PoolDef,
        id: &str,
        member: &str,
    ) -> Result<(), CoreError> {
        if !self.device_exists(def, id, member)? {
            return Ok(());
        }
        match &def.kind {
            PoolKind::Mdev { .. } => self.mdev.stop(&parse_uuid(id)?).map(|_| ()),
            PoolKind::Vgpu { .. } => self.vgpu.stop(&parse_vf(id)?),
            PoolKind::Vdpa { .. } => self.vdpa.del(&VdpaName::new(id)?),
        }
    }

    /// Whether the device on `member` exists in the kernel now (for a VF:
    /// has a type; only its PF's VFs are read).
    pub(crate) fn device_exists(
        &self,
        def: &PoolDef,
        id: &str,
        member: &str,
    ) -> Result<bool, CoreError> {
        Ok(match &def.kind {
            PoolKind::Mdev { .. } => self
                .mdev
                .sysfs
                .device(&parse_uuid(id)?)
                .map_err(CoreError::inventory)?
                .is_some(),
            PoolKind::Vgpu { .. } => {
                let vf = parse_vf(id)?;
                self.vgpu
                    .sriov
                    .vfs(&parse_vf(member)?)?
                    .into_iter()
                    .any(|v| v.address == vf && v.current != 0)
            }
            PoolKind::Vdpa { .. } => self.vdpa.client()?.dev(&VdpaName::new(id)?)?.is_some(),
        })
    }

    /// Makes one pre-created device on `member`: a persistent definition
    /// (auto start, restored like any other) and the running device.
    pub(crate) fn precreate_on(
        &self,
        def: &PoolDef,
        member: &Member,
        id: &str,
    ) -> Result<(), CoreError> {
        match &def.kind {
            PoolKind::Mdev { mdev_type } => {
                let started = self.mdev.define(&DefineRequest {
                    uuid: Some(parse_uuid(id)?),
                    parent: Some(ParentName::new(member.name.clone())?),
                    mdev_type: Some(mdev_type.clone()),
                    start: StartPolicy::Auto,
                    config: None,
                })?;
                let mut config = MdevConfig::new(mdev_type.clone());
                config.start = StartPolicy::Auto;
                if let Err(e) = self
                    .mdev
                    .start_device(&started.uuid, &started.parent, &config)
                {
                    let _ = self.mdev.undefine(&started.uuid, Some(&started.parent));
                    return Err(e);
                }
                Ok(())
            }
            PoolKind::Vgpu { type_name } => {
                let vf = parse_vf(id)?;
                let d = self.vgpu.define(
                    &crate::vgpu::VgpuSlot::Vf(vf.clone()),
                    type_name,
                    StartPolicy::Auto,
                )?;
                if let Err(e) = self.vgpu.start(&d.vf) {
                    let _ = self.vgpu.undefine(&d.vf);
                    return Err(e);
                }
                Ok(())
            }
            PoolKind::Vdpa { template } => {
                let d = VdpaDefinition {
                    name: VdpaName::new(id)?,
                    mgmtdev: member.name.parse()?,
                    config: template.config(slot_of(template, id)),
                    start: StartPolicy::Auto,
                };
                self.vdpa.define(&d)?;
                if let Err(e) = self.vdpa.start(&d.name) {
                    let _ = self.vdpa.undefine(&d.name);
                    return Err(e);
                }
                Ok(())
            }
        }
    }

    /// Removes a pre-created device and its definition.
    pub(crate) fn discard_precreated(
        &self,
        def: &PoolDef,
        id: &str,
        member: &str,
    ) -> Result<(), CoreError> {
        self.remove_made(def, id, member)?;
        match &def.kind {
            PoolKind::Mdev { .. } => match self.mdev.undefine(&parse_uuid(id)?, None) {
                Err(CoreError::Mdev(MdevError::NotDefined { .. })) => Ok(()),
                r => r.map(|_| ()),
            },
            PoolKind::Vgpu { .. } => match self.vgpu.undefine(&parse_vf(id)?) {
                Err(CoreError::Vgpu(VgpuError::NotDefined { .. })) => Ok(()),
                r => r,
            },
            PoolKind::Vdpa { .. } => match self.vdpa.undefine(&VdpaName::new(id)?) {
                Err(CoreError::Vdpa(VdpaError::NotDefined { .. })) => Ok(()),
                r => r,
            },
        }
    }

    /// Whether a pre-created device's definition still exists.
    pub(crate) fn precreated_defined(&self, def: &PoolDef, id: &str) -> Result<bool, CoreError> {
        Ok(match &def.kind {
            PoolKind::Mdev { .. } => {
                let u = parse_uuid(id)?;
                !self.mdev.store.parents_with(&u)?.is_empty()
            }
            PoolKind::Vgpu { .. } => self.vgpu.defs.exists(id),
            PoolKind::Vdpa { .. } => self.vdpa.defs.exists(id),
        })
    }

    /// Starts a pre-created device whose definition exists but which is not
    /// running (after a reboot without the udev rule, or a hand-made stop).
    pub(crate) fn restart_precreated(&self, def: &PoolDef, id: &str) -> Result<(), CoreError> {
        match &def.kind {
            PoolKind::Mdev { .. } => self
                .mdev
                .start(&hostdev_api::StartRequest {
                    uuid: Some(parse_uuid(id)?),
                    parent: None,
                    mdev_type: None,
                    config: None,
                })
                .map(|_| ()),
            PoolKind::Vgpu { .. } => self.vgpu.start(&parse_vf(id)?).map(|_| ()),
            PoolKind::Vdpa { .. } => self.vdpa.start(&VdpaName::new(id)?),
        }
    }

    /// The next unused name of a vDPA pool: PREFIX + the lowest free slot.
    pub(crate) fn next_vdpa_name(
        &self,
        def: &PoolDef,
        taken: &BTreeSet<String>,
    ) -> Result<String, CoreError> {
        let PoolKind::Vdpa { template } = &def.kind else {
            return Err(CoreError::from(PoolError::Misuse {
                pool: def.name.to_string(),
                why: "it is not a vDPA pool".into(),
            }));
        };
        let live: BTreeSet<String> = self
            .vdpa
            .client()?
            .devs()?
            .into_iter()
            .map(|d| d.name)
            .collect();
        (0u32..100_000)
            .map(|n| format!("{}{n}", template.name_prefix))
            .find(|n| !taken.contains(n) && !live.contains(n) && !self.vdpa.defs.exists(n))
            .ok_or_else(|| {
                CoreError::from(PoolError::Exhausted {
                    pool: def.name.to_string(),
                    allocated: taken.len() as u64,
                    capacity: taken.len() as u64,
                })
            })
    }

    /// The libvirt element that hands the device to a domain.
    pub(crate) fn libvirt_element(&self, def: &PoolDef, id: &str, member: &str) -> String {
        match &def.kind {
            PoolKind::Mdev { mdev_type } => {
                let api = ParentName::new(member.to_string())
                    .ok()
                    .and_then(|p| self.mdev.sysfs.type_info(&p, mdev_type).ok().flatten())
                    .map(|t| t.device_api)
                    .unwrap_or_else(|| "vfio-pci".to_string());
                match parse_uuid(id) {
                    Ok(u) => libvirt::mdev_hostdev(&u, &api),
                    Err(_) => String::new(),
                }
            }
            PoolKind::Vgpu { .. } => parse_vf(id)
                .map(|a| libvirt::pci_hostdev(&a))
                .unwrap_or_default(),
            PoolKind::Vdpa { .. } => VdpaName::new(id)
                .ok()
                .and_then(|n| self.vdpa.libvirt(&n).ok())
                .unwrap_or_default(),
        }
    }
}

/// The slot number in a vDPA pool device's name.
fn slot_of(t: &hostdev_model::pool::VdpaTemplate, id: &str) -> u32 {
    id.strip_prefix(&t.name_prefix)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}
