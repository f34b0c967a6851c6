//! The health of what was prepared: each device of every `prepared` record
//! looked for as it was made (an mdev by UUID, a VF by its current type, a
//! vDPA device by name), and when it is not there, one sentence on what is
//! gone (the device, its parent, the VF's type). The driver streams it to
//! the kubelet, which shows it in the pod's status: a VM whose vGPU went
//! with its parent's driver is seen there, not only in the guest.
//!
//! Owns: that reading. Must not: take the DRA lock (a report waits for no
//! prepare; a record in transit is left out) or change anything.

use super::record::{self, Made, Stage};
use crate::{CoreError, Devices, Interfaces};
use hostdev_api::{DraDeviceHealth, DraHealthStatus};
use hostdev_sysfs::sriov::SriovSysfs;
use hostdev_sysfs::MdevSysfs;

impl<K: Interfaces> Devices<K> {
    /// The health of every device of every prepared claim, in the records'
    /// order (claim UID, then the prepare's order).
    pub fn dra_health(&self) -> Result<Vec<DraDeviceHealth>, CoreError> {
        let (records, _) = record::load_all(&self.root);
        let mut out = Vec::new();
        for r in records.iter().filter(|r| r.stage == Stage::Prepared) {
            for e in &r.devices {
                let (health, message) = match self.present(&e.made) {
                    Ok(true) => (DraHealthStatus::Healthy, String::new()),
                    Ok(false) => (DraHealthStatus::Unhealthy, self.what_is_gone(&e.made)),
                    Err(err) => (
                        DraHealthStatus::Unknown,
                        format!("hostdev could not look for it: {}", err.body().message),
                    ),
                };
                out.push(DraDeviceHealth {
                    claim: r.claim.clone(),
                    request: e.request.clone(),
                    device: e.device.clone(),
                    kind: e.made.kind(),
                    id: e.made.id(),
                    health,
                    message,
                });
            }
        }
        Ok(out)
    }

    /// Why a made device that is not there is missing, one sentence.
    fn what_is_gone(&self, m: &Made) -> String {
        match m {
            Made::Mdev {
                uuid,
                parent,
                mdev_type,
            } => {
                if self.mdev.sysfs.parent_exists(parent) {
                    format!("mdev {uuid} ({mdev_type} on {parent}) is gone from the host")
                } else {
                    format!("mdev {uuid} is gone with its parent {parent} (its driver unloaded or the device removed)")
                }
            }
            Made::Vgpu {
                vf,
                type_id,
                type_name,
            } => {
                let now = self.vf_pf(vf).ok().and_then(|pf| {
                    self.vgpu
                        .sriov
                        .vfs(&pf)
                        .ok()?
                        .into_iter()
                        .find(|v| &v.address == vf)
                });
                match now {
                    None => format!("VF {vf} is gone from the host (its PF's VFs were disabled or its driver unloaded)"),
                    Some(v) if v.current == 0 => {
                        format!("VF {vf} no longer has vGPU type {type_name} ({type_id}): it has none")
                    }
                    Some(v) => format!(
                        "VF {vf} no longer has vGPU type {type_name} ({type_id}): it has type {}",
                        v.current
                    ),
                }
            }
            Made::Vdpa { name, mgmtdev, .. } => {
                format!("vDPA device {name} (on {mgmtdev}) is gone from the host")
            }
        }
    }
}
