//! Migration: exporting a source device's spec and judging a destination
//! device against it.
//!
//! Owns: gathering the facts the rules need (type, attributes from the
//! definition, parent ids, the probe's migration and dirty-tracking answers
//! — cached while a VM holds the source). Must not: hold the rules (hostdev-model's `migrate::check`).

use crate::{CoreError, Devices};
use hostdev_api::{CheckReport, MigrateCheckRequest};
use hostdev_model::migrate::{self, Destination, MdevSpec, MigrationSpec, ParentSpec};
use hostdev_model::{ParentName, Uuid};
use hostdev_sysfs::sriov::SriovSysfs;
use hostdev_sysfs::MdevSysfs;
use hostdev_vdpa::VdpaClient;

impl<S: MdevSysfs, V: SriovSysfs, C: VdpaClient> Devices<S, V, C> {
    fn attrs_of(&self, parent: &ParentName, u: &Uuid) -> Vec<(String, String)> {
        match self.mdev.store.load_one(parent, u) {
            Ok(Some(c)) => c.attrs.into_iter().map(|a| (a.name, a.value)).collect(),
            _ => Vec::new(),
        }
    }

    /// The spec of a running mdev.
    pub fn migrate_export(&self, u: &Uuid) -> Result<MigrationSpec, CoreError> {
        let d = self
            .mdev
            .sysfs
            .device(u)
            .map_err(CoreError::inventory)?
            .ok_or(CoreError::NotRunning { uuid: *u })?;
        let r = self.probe_running(u, &d.parent, &d.mdev_type)?;
        let facts = self.mdev.sysfs.parent_facts(&d.parent);
        Ok(MigrationSpec {
            hostdev_migration_spec: migrate::SPEC_VERSION,
            source: u.to_string(),
            mdev: MdevSpec {
                type_id: d.mdev_type.to_string(),
                device_api: r.probe.device_api.clone(),
                attrs: self.attrs_of(&d.parent, u),
                parent: ParentSpec {
                    name: d.parent.to_string(),
                    vendor: facts.vendor,
                    device: facts.device,
                },
                driver: r.identity.unwrap_or_default(),
                migration: r.probe.migration,
            },
        })
    }

    /// Judges a destination mdev against a spec.
    pub fn migrate_check(&self, req: &MigrateCheckRequest) -> Result<CheckReport, CoreError> {
        if req.spec.hostdev_migration_spec != migrate::SPEC_VERSION {
            return Err(CoreError::BadSpec {
                why: format!(
                    "its format version is {}, this hostdev reads {}",
                    req.spec.hostdev_migration_spec,
                    migrate::SPEC_VERSION
                ),
            });
        }
        let u = &req.device;
        let d = self
            .mdev
            .sysfs
            .device(u)
            .map_err(CoreError::inventory)?
            .ok_or(CoreError::NotRunning { uuid: *u })?;
        let r = self.probe_running(u, &d.parent, &d.mdev_type)?;
        let dst = Destination {
            type_id: d.mdev_type.to_string(),
            attrs: self.attrs_of(&d.parent, u),
            driver: r.identity.unwrap_or_default(),
            migration: r.probe.migration,
            dma_logging: r.probe.dma_logging,
        };
        let (verdict, reasons) = migrate::check(&req.spec.mdev, &dst, req.driver_policy);
        Ok(CheckReport { verdict, reasons })
    }
}
