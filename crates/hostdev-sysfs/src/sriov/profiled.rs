//! A PCI SR-IOV core with the VF profiles of the vendors hostdev knows: each
//! VF read, and its type set, through the profile of its PF's driver. The
//! real sysfs ([`super::RealSriov`] = [`super::RealPci`] + [`super::NvidiaVgpu`])
//! and the in-process fake over the kernel model ([`super::FakeSriov`]) are
//! both this, so choosing a VF's profile is written once.
//!
//! Owns: choosing a VF's profile by its PF's driver, and a VF without one
//! (never ready, no types, a type write refused before anything is written).
//! Must not: read a vendor's VF files (the profiles do) or the PCI core's
//! (the core does), or decide which type goes where.

use super::{PciSriov, PfInfo, SriovError, SriovSysfs, VfInfo, VfProfile, VfState};
use hostdev_model::pci::PciAddress;
use hostdev_model::pool::MemberFacts;
use hostdev_model::probe::DriverIdentity;
use std::sync::Arc;

/// A PCI SR-IOV core `P` with the VF profiles that speak for its PFs'
/// drivers.
#[derive(Debug, Clone)]
pub struct Profiled<P> {
    pci: P,
    profiles: Vec<Arc<dyn VfProfile>>,
}

impl<P: PciSriov> Profiled<P> {
    /// The core with these profiles (a new vendor's is one more).
    pub fn compose(pci: P, profiles: Vec<Arc<dyn VfProfile>>) -> Self {
        Profiled { pci, profiles }
    }

    /// The PCI core.
    pub fn pci(&self) -> &P {
        &self.pci
    }

    /// The profile of the PF's driver, if one speaks for it.
    fn profile_of(&self, pf: &PciAddress) -> Option<&dyn VfProfile> {
        let driver = self.pci.pf_driver_name(pf)?;
        self.profiles
            .iter()
            .find(|p| p.driver() == driver)
            .map(|p| &**p)
    }
}

/// The PCI core is `P`'s.
impl<P: PciSriov> PciSriov for Profiled<P> {
    fn pfs(&self) -> Result<Vec<PfInfo>, SriovError> {
        self.pci.pfs()
    }
    fn pf(&self, pf: &PciAddress) -> Result<Option<PfInfo>, SriovError> {
        self.pci.pf(pf)
    }
    fn vf_addresses(&self, pf: &PciAddress) -> Result<Vec<(u32, PciAddress)>, SriovError> {
        self.pci.vf_addresses(pf)
    }
    fn physfn(&self, vf: &PciAddress) -> Option<PciAddress> {
        self.pci.physfn(vf)
    }
    fn set_num_vfs(&self, pf: &PciAddress, n: u32) -> Result<(), SriovError> {
        self.pci.set_num_vfs(pf, n)
    }
    fn pf_facts(&self, pf: &PciAddress) -> MemberFacts {
        self.pci.pf_facts(pf)
    }
    fn pf_driver_name(&self, pf: &PciAddress) -> Option<String> {
        self.pci.pf_driver_name(pf)
    }
    fn pf_driver(&self, pf: &PciAddress) -> DriverIdentity {
        self.pci.pf_driver(pf)
    }
}

impl<P: PciSriov> SriovSysfs for Profiled<P> {
    /// Every VF of the PF; a VF whose PF driver has no profile is never
    /// ready and has no types.
    fn vfs(&self, pf: &PciAddress) -> Result<Vec<VfInfo>, SriovError> {
        let addresses = self.pci.vf_addresses(pf)?;
        let profile = if addresses.is_empty() {
            None
        } else {
            self.profile_of(pf)
        };
        let mut out = Vec::with_capacity(addresses.len());
        for (index, address) in addresses {
            let state = match profile {
                Some(p) => p.vf_state(&address)?,
                None => None,
            };
            let ready = state.is_some();
            let VfState { current, creatable } = state.unwrap_or_default();
            out.push(VfInfo {
                address,
                pf: pf.clone(),
                index,
                ready,
                current,
                creatable,
            });
        }
        Ok(out)
    }

    /// Through the profile of the VF's PF driver; a VF without one (or a
    /// function that is no VF) is refused before anything is written.
    fn set_type(&self, vf: &PciAddress, type_id: u32) -> Result<(), SriovError> {
        let pf = self.pci.physfn(vf);
        match pf.as_ref().and_then(|pf| self.profile_of(pf)) {
            Some(p) => p.set_type(vf, type_id),
            None => Err(SriovError::NoProfile {
                vf: vf.clone(),
                driver: pf.and_then(|pf| self.pci.pf_driver_name(&pf)),
                known: self
                    .profiles
                    .iter()
                    .map(|p| p.driver().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }
}
