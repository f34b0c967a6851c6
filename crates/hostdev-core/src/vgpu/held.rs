//! Disabling a PF's VFs without waiting on a VM: the kernel removes VFs
//! one by one when `sriov_numvfs` goes to 0, and the removal of a VF whose
//! VFIO device is open waits until its user lets go ("device is currently
//! in use, task blocked"). Asked first, a held VF refuses the step with a
//! sentence instead of blocking the caller — and every other hostdev
//! operation behind the host lock — for as long as the VM runs.
//!
//! Owns: that check before `Vgpus::disable` and the host file's count
//! changes. Must not: open anything but through `Vfio::held` (which opens
//! and closes the group only, never the device).

use crate::{CoreError, Devices, Interfaces, VgpuError};
use hostdev_model::pci::PciAddress;
use hostdev_sysfs::sriov::SriovSysfs;
use hostdev_vfio::Target;

impl<K: Interfaces> Devices<K> {
    /// The first of the PF's VFs held through VFIO, as a refusal of the
    /// write of 0 VFs the kernel would keep; a PF without VFs has none.
    pub(crate) fn refuse_if_vf_held(&self, pf: &PciAddress) -> Result<(), CoreError> {
        for v in self.vgpu.sriov.vfs(pf)? {
            if let Some(group) = self.vfio.held(&Target::Pci(v.address.clone())) {
                return Err(CoreError::from(VgpuError::VfHeld {
                    pf: pf.clone(),
                    vf: v.address,
                    group,
                }));
            }
        }
        Ok(())
    }

    /// Disables the PF's VFs and forgets its definition, as
    /// [`crate::vgpu::Vgpus::disable`], refused first when one of its VFs
    /// is held through VFIO. (A VM that opens a VF between this check and
    /// the write still makes the kernel wait: the check narrows that
    /// window, it does not close it.)
    pub fn disable_pf(&self, pf: &PciAddress) -> Result<(), CoreError> {
        self.refuse_if_vf_held(pf)?;
        self.vgpu.disable(pf)
    }
}
