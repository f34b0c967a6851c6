//! Probes: opening a device as QEMU does and reporting what it answers.
//!
//! Owns: naming the device's kind, parent, type and driver (through the
//! sysfs traits) and asking the VFIO interface. Must not: open anything
//! itself (hostdev-vfio does), or keep the device open.

use crate::{CoreError, Devices};
use hostdev_api::{Kind, ProbeQuery, ProbeReport, ProbeTarget};
use hostdev_sysfs::sriov::SriovSysfs;
use hostdev_sysfs::MdevSysfs;
use hostdev_vdpa::VdpaClient;
use hostdev_vfio::Target;

impl<S: MdevSysfs, V: SriovSysfs, C: VdpaClient> Devices<S, V, C> {
    /// Opens the device, asks, closes.
    pub fn probe(&self, q: &ProbeQuery) -> Result<ProbeReport, CoreError> {
        match &q.device {
            ProbeTarget::Mdev(u) => {
                let d = self
                    .mdev
                    .sysfs
                    .device(u)
                    .map_err(CoreError::inventory)?
                    .ok_or(CoreError::NotRunning { uuid: *u })?;
                let probe = self.vfio.probe(&Target::Mdev(*u))?;
                Ok(ProbeReport {
                    id: u.to_string(),
                    kind: Some(Kind::Mdev),
                    driver: self.mdev.sysfs.parent_facts(&d.parent).driver,
                    parent: Some(d.parent.to_string()),
                    type_id: Some(d.mdev_type.to_string()),
                    probe,
                })
            }
            ProbeTarget::Pci(a) => {
                let facts = self.vgpu.sriov.pf_facts(a);
                if facts.vendor.is_none() {
                    return Err(CoreError::NoPciDevice {
                        address: a.as_str().to_string(),
                    });
                }
                let probe = self.vfio.probe(&Target::Pci(a.clone()))?;
                Ok(ProbeReport {
                    id: a.as_str().to_string(),
                    kind: None,
                    parent: None,
                    type_id: None,
                    driver: facts.driver,
                    probe,
                })
            }
        }
    }
}
