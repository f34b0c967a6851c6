//! Which driver a PCI function has, as the lab's kernel binds them
//! (docs/kernel-facts.md): VFs bound by their driver when added with
//! `sriov_drivers_autoprobe` on and left unbound with it off;
//! `driver_override` naming the only driver that may take a function; a
//! `drivers_probe` or a driver's `bind` that finds no match doing nothing
//! or failing with `ENODEV`; `vfio-pci` taking a VF only through
//! `driver_override`, and never an NVIDIA vGPU VF.
//!
//! A VF of a PF whose autoprobe is off, with no `driver_override`, cannot
//! be probed at all: `drivers_probe` leaves it and a driver's `bind` is
//! `ENODEV` (`pci_device_can_probe`).
//!
//! Owns: these rules for VFs (a PF keeps its profile's driver, bound or
//! not). Must not: parse sysfs text (the path view does).

use crate::errno::{EBUSY, EINVAL, ENODEV, ENOENT};
use crate::kernel::{Errno, Kernel};

/// The driver every VF may be given through `driver_override`.
pub const VFIO_PCI: &str = "vfio-pci";

impl Kernel {
    /// (pf index, vf number) of a VF, or `ENOENT`.
    fn vf_at(&self, vf: &str) -> Result<(usize, usize), Errno> {
        self.vf_of(vf).ok_or(ENOENT)
    }

    /// `sriov_drivers_autoprobe` of a present PF.
    pub fn autoprobe(&self, pf: &str) -> Option<bool> {
        self.pf_idx(pf).map(|i| !self.pfs[i].no_autoprobe)
    }

    /// Writes `sriov_drivers_autoprobe`.
    pub fn set_autoprobe(&mut self, pf: &str, on: bool) -> Result<(), Errno> {
        let i = self.pf_idx(pf).ok_or(ENOENT)?;
        self.pfs[i].no_autoprobe = !on;
        Ok(())
    }

    /// The driver bound to a present PF or VF.
    pub fn pci_driver(&self, dev: &str) -> Option<String> {
        if let Some(i) = self.pf_idx(dev) {
            return (!self.pfs[i].unbound).then(|| self.profile.sriov[i].driver.clone());
        }
        let (p, v) = self.vf_of(dev)?;
        self.pfs[p].vfs[v].driver.clone()
    }

    /// Whether a PCI function (a PF or VF, present now) has that address.
    pub fn pci_present(&self, dev: &str) -> bool {
        self.pf_idx(dev).is_some() || self.vf_of(dev).is_some()
    }

    /// The IOMMU group of a present VF.
    pub fn vf_group(&self, vf: &str) -> Option<u32> {
        let (p, v) = self.vf_of(vf)?;
        Some(self.pfs[p].vfs[v].group)
    }

    /// A VF's `driver_override` (`None` reads `(null)`).
    pub fn driver_override(&self, vf: &str) -> Option<String> {
        let (p, v) = self.vf_of(vf)?;
        self.pfs[p].vfs[v].driver_override.clone()
    }

    /// Writes a VF's `driver_override`; empty clears it.
    pub fn set_driver_override(&mut self, vf: &str, driver: &str) -> Result<(), Errno> {
        let (p, v) = self.vf_at(vf)?;
        if driver.len() >= 4096 {
            return Err(EINVAL);
        }
        self.pfs[p].vfs[v].driver_override = (!driver.is_empty()).then(|| driver.to_string());
        Ok(())
    }

    /// Whether `driver` would take VF (p, v): its own VF driver, or
    /// `vfio-pci` through `driver_override`; with an override, only that one.
    /// A VF of a PF with autoprobe off and no override cannot be probed at
    /// all (`pci_device_can_probe`).
    fn matches(&self, p: usize, v: usize, driver: &str) -> bool {
        let vf = &self.pfs[p].vfs[v];
        let prof = &self.profile.sriov[p];
        if self.pfs[p].no_autoprobe && vf.driver_override.is_none() {
            return false;
        }
        match vf.driver_override.as_deref() {
            Some(o) if o != driver => false,
            Some(_) if driver == VFIO_PCI => !prof.has_vgpu(),
            Some(_) => prof.vf_driver.as_deref() == Some(driver),
            None => prof.vf_driver.as_deref() == Some(driver),
        }
    }

    /// Writes a VF's address to `bus/pci/drivers_probe`: an unbound VF gets
    /// the driver that matches it, if any; a bound one is left alone; an
    /// address that is no device here is `ENODEV`.
    pub fn drivers_probe(&mut self, vf: &str) -> Result<(), Errno> {
        let (p, v) = self.vf_at(vf).map_err(|_| ENODEV)?;
        if self.pfs[p].vfs[v].driver.is_some() {
            return Ok(());
        }
        let candidate = self.pfs[p].vfs[v]
            .driver_override
            .clone()
            .or_else(|| self.profile.sriov[p].vf_driver.clone());
        if let Some(d) = candidate.filter(|d| self.matches(p, v, d)) {
            self.pfs[p].vfs[v].driver = Some(d);
        }
        Ok(())
    }

    /// Writes a VF's address to `bus/pci/drivers/<driver>/bind`: `ENODEV`
    /// when the driver does not match it, `EBUSY` when it has a driver.
    pub fn bind(&mut self, vf: &str, driver: &str) -> Result<(), Errno> {
        let (p, v) = self.vf_at(vf).map_err(|_| ENODEV)?;
        if !self.matches(p, v, driver) {
            return Err(ENODEV);
        }
        if self.pfs[p].vfs[v].driver.is_some() {
            return Err(EBUSY);
        }
        self.pfs[p].vfs[v].driver = Some(driver.to_string());
        Ok(())
    }

    /// Writes a VF's address to `bus/pci/drivers/<driver>/unbind`: `ENODEV`
    /// unless that driver has it.
    pub fn unbind(&mut self, vf: &str, driver: &str) -> Result<(), Errno> {
        let (p, v) = self.vf_at(vf).map_err(|_| ENODEV)?;
        if self.pfs[p].vfs[v].driver.as_deref() != Some(driver) {
            return Err(ENODEV);
        }
        self.pfs[p].vfs[v].driver = None;
        Ok(())
    }

    /// Every driver a PCI function here is or could be bound to.
    pub(crate) fn vf_drivers(&self) -> Vec<String> {
        let mut d: Vec<String> = self
            .profile
            .sriov
            .iter()
            .filter_map(|p| p.vf_driver.clone())
            .collect();
        if !self.profile.sriov.is_empty() {
            d.push(VFIO_PCI.to_string());
        }
        d
    }
}
