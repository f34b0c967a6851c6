//! vDPA migration: the spec is the creation config hostdev persisted (the
//! kernel forgets it) with the device's class and limits; a destination
//! management device is judged by its classes and features and by a trial
//! device made with the config and removed again; prepare recreates it.

use crate::Interfaces;
use crate::VdpaError;
use crate::{CoreError, Devices};
use hostdev_api::Prepared;
use hostdev_model::migrate::{self, MigrationSpec, VdpaDestination, VdpaSpec};
use hostdev_model::vdpa::{MgmtDevName, VdpaExport, VdpaName};
use hostdev_vdpa::VdpaClient;

/// The name prefix of trial devices; then the checking process's pid, `-`
/// and a number of its own.
const TRIAL: &str = "hdchk";

impl<K: Interfaces> Devices<K> {
    pub(super) fn export_vdpa(&self, name: &VdpaName) -> Result<MigrationSpec, CoreError> {
        let e = self.vdpa.export(name)?;
        let client = self.vdpa.client()?;
        let dev = client
            .dev(name)?
            .ok_or_else(|| CoreError::from(VdpaError::Unknown { name: name.clone() }))?;
        let live = client.config(name)?;
        Ok(MigrationSpec {
            hostdev_migration_spec: migrate::SPEC_VERSION,
            source: name.to_string(),
            mdev: None,
            vgpu: None,
            vdpa: Some(VdpaSpec {
                definition: e.device,
                from_live_config: e.from_live_config,
                class: dev.device_id,
                features: live.features,
                max_vqs: dev.max_vqs,
                max_vq_size: dev.max_vq_size,
            }),
        })
    }

    pub(super) fn check_vdpa(
        &self,
        spec: &VdpaSpec,
        mgmtdev: &MgmtDevName,
    ) -> Result<hostdev_api::CheckReport, CoreError> {
        let m = self
            .vdpa
            .mgmtdevs()?
            .into_iter()
            .find(|m| &m.name == mgmtdev)
            .ok_or_else(|| CoreError::from(hostdev_vdpa::VdpaError::NoMgmtDev(mgmtdev.clone())))?;
        // A trial device with the spec's creation config, removed again. It
        // is named after this process, so a check killed mid-trial leaves a
        // device the next check removes (its process is gone).
        let client = self.vdpa.client()?;
        for d in client.devs()? {
            let owner = d
                .name
                .strip_prefix(TRIAL)
                .and_then(|rest| rest.split('-').next())
                .and_then(|p| p.parse::<u32>().ok());
            if owner
                .is_some_and(|pid| !std::path::Path::new("/proc").join(pid.to_string()).exists())
            {
                let _ = client.del(&d.name.parse()?);
            }
        }
        // Two checks at once in one process (the daemon) get two names.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let trial_name: VdpaName = format!("{TRIAL}{}-{n}", std::process::id()).parse()?;
        let trial = match client.add(&trial_name, mgmtdev, &spec.definition.config) {
            Ok(()) => {
                let size = client
                    .dev(&trial_name)
                    .ok()
                    .flatten()
                    .and_then(|d| d.max_vq_size);
                client.del(&trial_name)?;
                Ok(size)
            }
            Err(e) => Err(crate::chain(&e)),
        };
        let dst = VdpaDestination {
            mgmtdev: mgmtdev.to_string(),
            classes: m.classes,
            supported_features: m.supported_features,
            trial,
        };
        let (verdict, reasons) = migrate::check_vdpa(spec, &dst);
        Ok(hostdev_api::CheckReport { verdict, reasons })
    }

    pub(super) fn prepare_vdpa(
        &self,
        spec: &VdpaSpec,
        dry_run: bool,
    ) -> Result<Prepared, CoreError> {
        let d = &spec.definition;
        if !dry_run {
            self.vdpa.import(
                &VdpaExport {
                    hostdev_export: 1,
                    kind: "vdpa".into(),
                    device: d.clone(),
                    from_live_config: spec.from_live_config,
                },
                None,
                false,
                true,
            )?;
        }
        let libvirt = if dry_run {
            String::new()
        } else {
            self.vdpa.libvirt(&d.name)?
        };
        Ok(Prepared {
            id: d.name.to_string(),
            parent: d.mgmtdev.to_string(),
            type_id: None,
            created: !dry_run,
            libvirt,
        })
    }
}
