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
use hostdev_sysfs::sriov::{SriovSysfs, VfInfo};
use hostdev_sysfs::MdevSysfs;
use hostdev_vdpa::VdpaClient;

/// What one report looks at, read once: every vGPU PF's VFs (a claim's VF
/// is found among them, not by reading every PF again per device).
struct Seen {
    vfs: Option<Result<Vec<VfInfo>, String>>,
}

impl<K: Interfaces> Devices<K> {
    /// The health of every device of every prepared claim, in the records'
    /// order (claim UID, then the prepare's order).
    pub fn dra_health(&self) -> Result<Vec<DraDeviceHealth>, CoreError> {
        let (records, _) = record::load_all(&self.root);
        let mut seen = Seen { vfs: None };
        let mut out = Vec::new();
        for r in records.iter().filter(|r| r.stage == Stage::Prepared) {
            for e in &r.devices {
                let (health, message) = self.health_of(&e.made, &mut seen);
                // An unprepare that began after the records were read
                // removes the device: its claim is going, not unhealthy.
                if health != DraHealthStatus::Healthy
                    && !matches!(
                        record::load(&self.root, &r.claim.uid),
                        Ok(Some(now)) if now.stage == Stage::Prepared
                    )
                {
                    continue;
                }
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

    fn all_vfs(&self) -> Result<Vec<VfInfo>, String> {
        let why = |e: CoreError| e.body().message;
        let mut all = Vec::new();
        for pf in self.vgpu.vgpu_pfs().map_err(why)? {
            all.extend(
                self.vgpu
                    .sriov
                    .vfs(&pf.address)
                    .map_err(|e| why(e.into()))?,
            );
        }
        Ok(all)
    }

    /// One device's health and, when not healthy, why.
    fn health_of(&self, m: &Made, seen: &mut Seen) -> (DraHealthStatus, String) {
        let unknown = |why: String| {
            (
                DraHealthStatus::Unknown,
                format!("hostdev could not look for it: {why}"),
            )
        };
        let gone = |why: String| (DraHealthStatus::Unhealthy, why);
        match m {
            Made::Mdev {
                uuid,
                parent,
                mdev_type,
            } => match self.mdev.sysfs.device(uuid) {
                Ok(Some(d)) if &d.parent == parent && &d.mdev_type == mdev_type => {
                    (DraHealthStatus::Healthy, String::new())
                }
                Ok(Some(d)) => gone(format!(
                    "mdev {uuid} is now {} on {}, not the {mdev_type} on {parent} prepared",
                    d.mdev_type, d.parent
                )),
                Err(e) => unknown(CoreError::inventory(e).body().message),
                Ok(None) if self.mdev.sysfs.parent_exists(parent) => gone(format!(
                    "mdev {uuid} ({mdev_type} on {parent}) is gone from the host"
                )),
                Ok(None) => gone(format!(
                    "mdev {uuid} is gone with its parent {parent} (its driver unloaded or the device removed)"
                )),
            },
            Made::Vgpu {
                vf,
                type_id,
                type_name,
            } => {
                let vfs = seen.vfs.get_or_insert_with(|| self.all_vfs());
                let vfs = match vfs {
                    Ok(v) => v,
                    Err(why) => return unknown(why.clone()),
                };
                match vfs.iter().find(|v| &v.address == vf) {
                    Some(v) if v.current == *type_id => (DraHealthStatus::Healthy, String::new()),
                    None => gone(format!(
                        "VF {vf} is gone from the host (its PF's VFs were disabled or its driver unloaded)"
                    )),
                    Some(v) if v.current == 0 => gone(format!(
                        "VF {vf} no longer has vGPU type {type_name} ({type_id}): it has none"
                    )),
                    Some(v) => gone(format!(
                        "VF {vf} no longer has vGPU type {type_name} ({type_id}): it has type {}",
                        v.current
                    )),
                }
            }
            Made::Vdpa { name, mgmtdev, .. } => {
                let now = self
                    .vdpa
                    .client()
                    .and_then(|c| Ok((c.dev(name)?, c.binding(name)?)));
                match now {
                    // The pod's node is the vhost-vdpa one: a device rebound
                    // to virtio_vdpa has none.
                    Ok((Some(_), b)) if b.vhost_dev.is_some() => {
                        (DraHealthStatus::Healthy, String::new())
                    }
                    Ok((Some(_), b)) => gone(format!(
                        "vDPA device {name} is bound to {} now, not vhost_vdpa: its /dev/vhost-vdpa node is gone",
                        b.driver.as_deref().unwrap_or("no driver")
                    )),
                    Ok((None, _)) => gone(format!(
                        "vDPA device {name} (on {mgmtdev}) is gone from the host"
                    )),
                    Err(e) => unknown(e.body().message),
                }
            }
        }
    }
}
