//! Plans from another tool's configuration: NVIDIA vgpu-device-manager's
//! YAML is translated (hostdev-model's `vgpu_dm`) over the host's NVIDIA
//! GPUs, then planned like a host file; the plan carries the translated
//! file so that the operator can keep it.
//!
//! Owns: listing the GPUs for the translation. Must not: translate.

use crate::HostError;
use crate::Interfaces;
use crate::{CoreError, Devices};
use hostdev_api::{HostImport, Plan};
use hostdev_model::pool::hex_id;
use hostdev_model::vgpu_dm::{translate_spec, Gpu, GpuKind};
use hostdev_sysfs::sriov::PciSriov;
use hostdev_sysfs::sriov::SriovSysfs;
use hostdev_sysfs::MdevSysfs;

fn hex(s: Option<&str>) -> u16 {
    s.and_then(hex_id).unwrap_or(0)
}

impl<K: Interfaces> Devices<K> {
    /// The host's GPUs: mdev parents and SR-IOV PFs with what they offer.
    fn gpus(&self) -> Result<Vec<Gpu>, CoreError> {
        let sysfs = &self.mdev.sysfs;
        let mut out = Vec::new();
        for p in sysfs.parents().map_err(CoreError::inventory)? {
            let f = sysfs.parent_facts(&p);
            let types = sysfs
                .types(&p)
                .map_err(CoreError::inventory)?
                .into_iter()
                .map(|t| (t.type_id, t.name.unwrap_or_default()))
                .collect();
            out.push(Gpu {
                address: p.to_string(),
                vendor: hex(f.vendor.as_deref()),
                device: hex(f.device.as_deref()),
                kind: GpuKind::Mdev(types),
            });
        }
        let g = &self.vgpu;
        for pf in g.vgpu_pfs()? {
            let f = g.sriov.pf_facts(&pf.address);
            let mut types: Vec<String> = Vec::new();
            for v in g.sriov.vfs(&pf.address)? {
                for t in v.creatable {
                    if !types.contains(&t.name) {
                        types.push(t.name);
                    }
                }
            }
            out.push(Gpu {
                address: pf.address.to_string(),
                vendor: hex(f.vendor.as_deref()),
                device: hex(f.device.as_deref()),
                kind: GpuKind::Sriov {
                    total_vfs: pf.total_vfs,
                    types,
                },
            });
        }
        Ok(out)
    }

    /// The plan of another tool's configuration, translated.
    pub fn host_plan_import(&self, import: &HostImport) -> Result<Plan, CoreError> {
        let bad = |why: String| {
            CoreError::from(HostError::BadFile {
                path: import.path.clone(),
                why,
            })
        };
        let (f, lost) = translate_spec(&import.spec, &import.config, &self.gpus()?)
            .map_err(|e| bad(e.to_string()))?;
        let mut plan = self.plan_of(self.steps_of(&f, &import.path)?);
        // Not notes: what the configuration asked for and this host cannot
        // have, whose devices the plan may then remove.
        plan.warnings = lost;
        plan.file = Some(f.to_text());
        Ok(plan)
    }
}
