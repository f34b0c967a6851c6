//! Migration: exporting a source device's spec, judging a destination
//! against it, and making the destination device. mdevs here, NVIDIA vGPUs
//! in `vgpu.rs`, vDPA in `vdpa.rs`.
//!
//! Owns: gathering the facts the rules need (type, attributes from the
//! definition, parent ids, the probe's migration answers — cached while a VM
//! holds the source). Must not: hold the rules (hostdev-model's
//! `migrate::check` and `check_vdpa`).

mod domain;
mod error;
mod vdpa;
pub use domain::ARRIVAL_HOLD_SECS;
pub use error::MigrateError;
mod vgpu;

use crate::Interfaces;
use crate::MdevError;
use crate::{CoreError, Devices};
use hostdev_api::{
    CheckReport, ExportTarget, MigrateCheckRequest, MigratePrepareRequest, Prepared, ProbeTarget,
    StartRequest,
};
use hostdev_model::migrate::{self, Destination, MdevSpec, MigrationSpec, ParentSpec};
use hostdev_model::{Attr, MdevConfig, ParentName, StartPolicy, TypeId, Uuid};
use hostdev_sysfs::MdevSysfs;

impl<K: Interfaces> Devices<K> {
    fn attrs_of(&self, parent: &ParentName, u: &Uuid) -> Vec<(String, String)> {
        match self.mdev.store.load_one(parent, u) {
            Ok(Some(c)) => c.attrs.into_iter().map(|a| (a.name, a.value)).collect(),
            _ => Vec::new(),
        }
    }

    /// The spec of a running mdev or an existing vDPA device.
    pub fn migrate_export(&self, t: &ExportTarget) -> Result<MigrationSpec, CoreError> {
        match t {
            ExportTarget::Mdev(u) => self.export_mdev(u),
            ExportTarget::Vgpu(a) => self.export_vgpu(a),
            ExportTarget::Vdpa(n) => self.export_vdpa(n),
        }
    }

    fn export_mdev(&self, u: &Uuid) -> Result<MigrationSpec, CoreError> {
        let (parent, t) = self
            .mdev
            .running_parent(u)?
            .ok_or(CoreError::from(MdevError::NotRunning { uuid: *u }))?;
        let r = self.probe_running(u, &parent, &t)?;
        let facts = self.mdev.sysfs.parent_facts(&parent);
        Ok(MigrationSpec {
            hostdev_migration_spec: migrate::SPEC_VERSION,
            source: u.to_string(),
            vdpa: None,
            vgpu: None,
            mdev: Some(MdevSpec {
                type_id: t.to_string(),
                device_api: r.probe.device_api.clone(),
                attrs: self.attrs_of(&parent, u),
                parent: ParentSpec {
                    name: parent.to_string(),
                    vendor: facts.vendor,
                    device: facts.device,
                },
                driver: r.identity.unwrap_or_default(),
                migration: r.probe.migration,
            }),
        })
    }

    /// Judges a destination against a spec: an mdev spec against a device
    /// (`device`) or what the host could create, a vGPU spec against a VF (`device`) or every card's free
    /// VFs, a vDPA spec against a management device (`mgmtdev`).
    pub fn migrate_check(&self, req: &MigrateCheckRequest) -> Result<CheckReport, CoreError> {
        usable(&req.spec)?;
        let s = &req.spec;
        match (&s.mdev, &s.vgpu, &s.vdpa, &req.device, &req.mgmtdev) {
            (Some(m), _, _, Some(ProbeTarget::Mdev(u)), None) => self.check_mdev(m, u, req),
            (Some(m), _, _, None, None) => self.check_mdev_host(m, req.driver_policy),
            (_, Some(v), _, None, None) => self.check_vgpu(v, None, req.driver_policy),
            (_, Some(v), _, Some(ProbeTarget::Pci(a)), None) => {
                self.check_vgpu(v, Some(a), req.driver_policy)
            }
            (_, _, Some(v), None, Some(mg)) => self.check_vdpa(v, mg),
            (Some(_), ..) => Err(CoreError::from(MigrateError::BadSpec {
                why: "an mdev spec is checked against a destination mdev (--device UUID) or, \
                      without one, against what this host could create"
                    .into(),
            })),
            (_, Some(_), ..) => Err(CoreError::from(MigrateError::BadSpec {
                why: "a vGPU spec is checked against a destination VF (--device PCI address) or, \
                      without one, against every card's free VFs"
                    .into(),
            })),
            _ => Err(CoreError::from(MigrateError::BadSpec {
                why: "a vDPA spec is checked against a destination management device (--mgmtdev NAME)"
                    .into(),
            })),
        }
    }

    fn check_mdev(
        &self,
        spec: &MdevSpec,
        u: &Uuid,
        req: &MigrateCheckRequest,
    ) -> Result<CheckReport, CoreError> {
        let (parent, t) = self
            .mdev
            .running_parent(u)?
            .ok_or(CoreError::from(MdevError::NotRunning { uuid: *u }))?;
        let r = self.probe_running(u, &parent, &t)?;
        let dst = Destination {
            type_id: t.to_string(),
            attrs: self.attrs_of(&parent, u),
            driver: r.identity.unwrap_or_default(),
            migration: r.probe.migration,
            dma_logging: r.probe.dma_logging,
        };
        let (verdict, reasons) = migrate::check(spec, &dst, req.driver_policy);
        Ok(CheckReport { verdict, reasons })
    }

    /// Makes the device a spec describes, transient, on a parent offering
    /// its type with room: the source's parent name first, then one with the
    /// same PCI ids, then any. Prints the element with what QEMU must be told.
    pub fn migrate_prepare(&self, req: &MigratePrepareRequest) -> Result<Prepared, CoreError> {
        usable(&req.spec)?;
        if req.uuid.is_some() && req.spec.mdev.is_none() {
            return Err(CoreError::from(MigrateError::BadSpec {
                why: "a UUID is given to an mdev only; this spec describes another kind".into(),
            }));
        }
        let m = match (&req.spec.mdev, &req.spec.vgpu, &req.spec.vdpa) {
            (Some(m), ..) => m,
            (None, Some(v), _) => return self.prepare_vgpu(v, req.dry_run),
            (None, None, Some(v)) => return self.prepare_vdpa(v, req.dry_run),
            (None, None, None) => unreachable_spec()?,
        };
        let (parents, full) = self.parents_for(m)?;
        let Some(parent) = parents.into_iter().next() else {
            return Err(CoreError::from(MigrateError::NoRoom {
                type_id: m.type_id.clone(),
                why: full,
            }));
        };
        let uuid = req.uuid.unwrap_or_else(Uuid::new_v4);
        if !req.dry_run {
            let config = MdevConfig {
                mdev_type: TypeId::new(m.type_id.clone())?,
                start: StartPolicy::Manual,
                attrs: m
                    .attrs
                    .iter()
                    .map(|(k, v)| Attr {
                        name: k.clone(),
                        value: v.clone(),
                    })
                    .collect(),
            };
            self.mdev.start(&StartRequest {
                uuid: Some(uuid),
                parent: Some(parent.clone()),
                mdev_type: None,
                config: Some(config),
            })?;
        }
        let el = hostdev_model::libvirt::mdev_hostdev(&uuid, &m.device_api);
        let libvirt = if m.migration.is_some() {
            format!(
                "<!-- QEMU must start this device with x-device-dirty-page-tracking=off,enable-migration=on \
                 on both hosts (hostdevctl migrate check says why) -->\n{el}"
            )
        } else {
            el
        };
        Ok(Prepared {
            id: uuid.to_string(),
            parent: parent.to_string(),
            type_id: Some(m.type_id.clone()),
            created: !req.dry_run,
            libvirt,
        })
    }
}

impl<K: Interfaces> Devices<K> {
    /// Parents offering the spec's type with room, best first: the source's
    /// parent name, then one with the same PCI ids, then any; or why none.
    fn parents_for(&self, m: &MdevSpec) -> Result<(Vec<ParentName>, String), CoreError> {
        let t = TypeId::new(m.type_id.clone()).map_err(CoreError::from)?;
        let mut full = Vec::new();
        let mut offering: Vec<(u8, ParentName)> = Vec::new();
        for p in self.mdev.sysfs.parents().map_err(CoreError::inventory)? {
            let Ok(Some(avail)) = self.mdev.sysfs.available_instances(&p, &t) else {
                continue;
            };
            if avail < 1 {
                full.push(format!("{p} has no room left"));
                continue;
            }
            let facts = self.mdev.sysfs.parent_facts(&p);
            let rank = if p.as_str() == m.parent.name {
                0
            } else if m.parent.vendor.is_some()
                && facts.vendor == m.parent.vendor
                && facts.device == m.parent.device
            {
                1
            } else {
                2
            };
            offering.push((rank, p));
        }
        offering.sort();
        let why = if full.is_empty() {
            "no parent offers the type".into()
        } else {
            full.join("; ")
        };
        Ok((offering.into_iter().map(|(_, p)| p).collect(), why))
    }

    /// An mdev spec against what this host could create: the parent
    /// `prepare` would choose, judged through a type probe there (a
    /// transient device made, probed and removed), with the source's
    /// attributes as `prepare` writes them, and a `capacity` line.
    fn check_mdev_host(
        &self,
        spec: &MdevSpec,
        policy: migrate::DriverPolicy,
    ) -> Result<CheckReport, CoreError> {
        let (parents, why) = self.parents_for(spec)?;
        let capacity = |ok: bool, destination: String, why: String| migrate::Reason {
            rule: "capacity".into(),
            verdict: if ok {
                migrate::Verdict::Compatible
            } else {
                migrate::Verdict::Incompatible
            },
            source: spec.type_id.clone(),
            destination,
            why,
        };
        let Some(parent) = parents.first() else {
            return Ok(CheckReport {
                verdict: migrate::Verdict::Incompatible,
                reasons: vec![capacity(false, "no parent with room".into(), why)],
            });
        };
        let t = TypeId::new(spec.type_id.clone()).map_err(CoreError::from)?;
        let r = self.probe_type(&hostdev_api::ProbeTypeRequest {
            parent: parent.clone(),
            mdev_type: t.clone(),
        })?;
        let dst = Destination {
            type_id: t.to_string(),
            attrs: spec.attrs.clone(),
            driver: r.identity.unwrap_or_default(),
            migration: r.probe.migration,
            dma_logging: r.probe.dma_logging,
        };
        let (verdict, mut reasons) = migrate::check(spec, &dst, policy);
        if let Some(a) = reasons.iter_mut().find(|x| x.rule == "attributes") {
            a.why = "prepare writes the source's attributes in order".into();
        }
        reasons.push(capacity(
            true,
            format!("{} parents with room", parents.len()),
            format!("judged on {parent} through a type probe; migrate prepare makes it there"),
        ));
        Ok(CheckReport { verdict, reasons })
    }
}

/// A spec this hostdev reads: its version, and exactly one kind.
pub(crate) fn usable(spec: &MigrationSpec) -> Result<(), CoreError> {
    if spec.hostdev_migration_spec != migrate::SPEC_VERSION {
        return Err(CoreError::from(MigrateError::BadSpec {
            why: format!(
                "its format version is {}, this hostdev reads {}",
                spec.hostdev_migration_spec,
                migrate::SPEC_VERSION
            ),
        }));
    }
    if spec.kinds() != 1 {
        return unreachable_spec();
    }
    Ok(())
}

fn unreachable_spec<T>() -> Result<T, CoreError> {
    Err(CoreError::from(MigrateError::BadSpec {
        why: "it describes no device, or more than one (exactly one of mdev, vgpu and vdpa)".into(),
    }))
}
