//! PCI SR-IOV, split where the kernel splits it:
//!
//! - [`PciSriov`]: the vendor-neutral PCI core — PFs, `sriov_totalvfs`,
//!   `sriov_numvfs`, `virtfnN`, the PF's driver (VF drivers,
//!   `driver_override` and IOMMU groups are [`crate::binding`]'s);
//! - [`VfProfile`]: one vendor's VF files — which types a VF can take, the
//!   current one, set/clear, readiness — chosen by the PF's driver; NVIDIA's
//!   vGPU ([`NvidiaVgpu`], `<vf>/nvidia/`) is the first;
//! - [`SriovSysfs`]: the two together, what the vGPU view reads: a VF with
//!   its profile's state.
//!
//! Owns: those traits, [`Profiled`] (a PCI core with the profiles, a VF read
//! through its PF driver's), the real implementations ([`RealSriov`] =
//! [`RealPci`] + [`NvidiaVgpu`]) and the fake over the kernel model
//! ([`FakeSriov`] = [`ModelPci`] + [`ModelVgpu`], the same composition).
//! Must not: decide which type goes where.

mod fake;
mod nvidia;
mod profiled;
mod real;

pub use fake::{FakeSriov, ModelPci, ModelVgpu};
pub use nvidia::NvidiaVgpu;
pub use profiled::Profiled;
pub use real::{RealPci, RealSriov};

use crate::describe_errno;
use hostdev_model::pci::PciAddress;
use hostdev_model::pool::MemberFacts;
use hostdev_model::probe::DriverIdentity;
use hostdev_model::vgpu::VgpuType;
use std::io;
use std::path::PathBuf;

/// A physical function that can carry VFs (any vendor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PfInfo {
    /// Its address.
    pub address: PciAddress,
    /// `sriov_totalvfs`.
    pub total_vfs: u32,
    /// `sriov_numvfs`.
    pub num_vfs: u32,
}

/// A virtual function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VfInfo {
    /// Its address.
    pub address: PciAddress,
    /// Its PF.
    pub pf: PciAddress,
    /// N of `virtfnN`.
    pub index: u32,
    /// The PF driver's VF profile has set the VF up (NVIDIA: its `nvidia/`
    /// directory exists); false where no profile speaks for the PF.
    pub ready: bool,
    /// The profile's current type (0 = none).
    pub current: u32,
    /// The types the profile says this VF can take now.
    pub creatable: Vec<VgpuType>,
}

/// A failed SR-IOV step.
#[derive(Debug, thiserror::Error)]
pub enum SriovError {
    /// Reading failed.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A file held something unexpected.
    #[error("{path} is malformed: {why}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// Writing `sriov_numvfs` failed.
    #[error("the kernel refused to set {num} VFs on {pf}: {}", describe_numvfs(.num, .source))]
    NumVfs {
        /// The PF.
        pf: PciAddress,
        /// How many.
        num: u32,
        /// The kernel's error.
        source: io::Error,
    },
    /// No VF profile speaks for the VF's PF driver, so it has no type to
    /// set.
    #[error("VF {vf} has no vendor profile: its PF's driver is {}, and hostdev knows the VF files of {known} only", .driver.as_deref().unwrap_or("none"))]
    NoProfile {
        /// The VF.
        vf: PciAddress,
        /// Its PF's driver, if any.
        driver: Option<String>,
        /// The drivers that have profiles.
        known: String,
    },
    /// Writing the profile's type file (NVIDIA: `current_vgpu_type`) failed.
    #[error("the driver refused vGPU type {type_id} on VF {vf}: {}", describe_errno(.source))]
    SetType {
        /// The VF.
        vf: PciAddress,
        /// The type id (0 = clear).
        type_id: u32,
        /// The driver's error.
        source: io::Error,
    },
}

/// What a refused `sriov_numvfs` write of `num` means, in the PCI core's
/// terms (seen on the lab's real kernel, docs/kernel-facts.md): there
/// ENOENT is a PF with no driver to configure SR-IOV, not a missing file
/// alone, and EBUSY for a nonzero count is VFs already enabled. Other
/// errnos, and EBUSY for 0 (the PF driver's own refusal), as any write's.
fn describe_numvfs(num: &u32, e: &io::Error) -> String {
    use rustix::io::Errno;
    let Some(errno) = e.raw_os_error().map(Errno::from_raw_os_error) else {
        return describe_errno(e);
    };
    match errno {
        Errno::NOENT => "no driver is bound to the PF to configure SR-IOV, \
                         or the PF has no sriov_numvfs (ENOENT)"
            .to_string(),
        Errno::BUSY if *num != 0 => {
            "VFs are already enabled; the kernel changes a nonzero count only by way of 0 (EBUSY)"
                .to_string()
        }
        Errno::RANGE => "more VFs than the PF's sriov_totalvfs (ERANGE)".to_string(),
        Errno::INVAL => "not a VF count the kernel accepts (EINVAL)".to_string(),
        _ => describe_errno(e),
    }
}

/// The vendor-neutral PCI SR-IOV core of sysfs.
pub trait PciSriov: Send + Sync {
    /// PFs that can carry VFs (have `sriov_totalvfs`), sorted.
    fn pfs(&self) -> Result<Vec<PfInfo>, SriovError>;
    /// One PF, if present.
    fn pf(&self, pf: &PciAddress) -> Result<Option<PfInfo>, SriovError>;
    /// The PF's VFs present now, as (N of `virtfnN`, address), by N.
    fn vf_addresses(&self, pf: &PciAddress) -> Result<Vec<(u32, PciAddress)>, SriovError>;
    /// The PF of a VF (its `physfn`), if it is one.
    fn physfn(&self, vf: &PciAddress) -> Option<PciAddress>;
    /// Writes `sriov_numvfs`.
    fn set_num_vfs(&self, pf: &PciAddress, n: u32) -> Result<(), SriovError>;
    /// What the PF says about itself (PCI ids, NUMA node, driver), for pool
    /// selectors; only its address where this interface cannot tell.
    fn pf_facts(&self, pf: &PciAddress) -> MemberFacts {
        MemberFacts {
            name: pf.to_string(),
            ..MemberFacts::default()
        }
    }
    /// The driver bound to the PF, if any: what [`PciSriov::pf_facts`]
    /// says of it, which a real tree reads alone (one link, not four files).
    fn pf_driver_name(&self, pf: &PciAddress) -> Option<String> {
        self.pf_facts(pf).driver
    }
    /// Who drives the PF: driver, module versions, kernel (for migration
    /// specs); nothing where this interface cannot tell.
    fn pf_driver(&self, _pf: &PciAddress) -> DriverIdentity {
        DriverIdentity::default()
    }
}

/// What a vendor's VF files say of one VF.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VfState {
    /// The current type (0 = none).
    pub current: u32,
    /// The types the VF can take now.
    pub creatable: Vec<VgpuType>,
}

/// One vendor's VF files: the types a VF of its PF driver can take, the
/// current one, and setting or clearing it.
pub trait VfProfile: Send + Sync + std::fmt::Debug {
    /// The PF driver whose VFs this profile speaks for (`nvidia`).
    fn driver(&self) -> &str;
    /// The VF's state; `None` while the vendor driver has not set it up.
    fn vf_state(&self, vf: &PciAddress) -> Result<Option<VfState>, SriovError>;
    /// Sets the VF's type (0 clears it).
    fn set_type(&self, vf: &PciAddress, type_id: u32) -> Result<(), SriovError>;
}

/// SR-IOV as the vGPU view reads it: the PCI core ([`PciSriov`]) and, for
/// each VF, its PF driver's profile: [`Profiled`], over [`RealPci`] and
/// [`NvidiaVgpu`] for the host, over [`ModelPci`] and [`ModelVgpu`] for the
/// fake.
pub trait SriovSysfs: PciSriov {
    /// The VFs of a PF, by index, each with its profile's state.
    fn vfs(&self, pf: &PciAddress) -> Result<Vec<VfInfo>, SriovError>;
    /// Sets a VF's type through its PF driver's profile (0 clears).
    fn set_type(&self, vf: &PciAddress, type_id: u32) -> Result<(), SriovError>;
}

/// One kernel shared by several views of the host.
impl<T: PciSriov + ?Sized> PciSriov for std::sync::Arc<T> {
    fn pfs(&self) -> Result<Vec<PfInfo>, SriovError> {
        (**self).pfs()
    }
    fn pf(&self, pf: &PciAddress) -> Result<Option<PfInfo>, SriovError> {
        (**self).pf(pf)
    }
    fn vf_addresses(&self, pf: &PciAddress) -> Result<Vec<(u32, PciAddress)>, SriovError> {
        (**self).vf_addresses(pf)
    }
    fn physfn(&self, vf: &PciAddress) -> Option<PciAddress> {
        (**self).physfn(vf)
    }
    fn set_num_vfs(&self, pf: &PciAddress, n: u32) -> Result<(), SriovError> {
        (**self).set_num_vfs(pf, n)
    }
    fn pf_facts(&self, pf: &PciAddress) -> MemberFacts {
        (**self).pf_facts(pf)
    }
    fn pf_driver_name(&self, pf: &PciAddress) -> Option<String> {
        (**self).pf_driver_name(pf)
    }
    fn pf_driver(&self, pf: &PciAddress) -> DriverIdentity {
        (**self).pf_driver(pf)
    }
}

impl<T: SriovSysfs + ?Sized> SriovSysfs for std::sync::Arc<T> {
    fn vfs(&self, pf: &PciAddress) -> Result<Vec<VfInfo>, SriovError> {
        (**self).vfs(pf)
    }
    fn set_type(&self, vf: &PciAddress, type_id: u32) -> Result<(), SriovError> {
        (**self).set_type(vf, type_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(num: u32, errno: rustix::io::Errno) -> String {
        SriovError::NumVfs {
            pf: "0000:01:00.0".parse().expect("address"),
            num,
            source: io::Error::from(errno),
        }
        .to_string()
    }

    /// The lab's kernel answers a count change on a PF without a driver with
    /// ENOENT from the write itself; it was once worded as a missing file.
    #[test]
    fn a_refused_count_is_worded_as_the_pci_core_means_it() {
        use rustix::io::Errno;
        let e = refused(1, Errno::NOENT);
        assert!(e.contains("no driver is bound to the PF"), "{e}");
        assert!(!e.contains("sysfs file does not exist"), "{e}");
        let e = refused(2, Errno::BUSY);
        assert!(e.contains("VFs are already enabled"), "{e}");
        // 0 refused is the PF driver's own answer, not the core's.
        let e = refused(0, Errno::BUSY);
        assert!(!e.contains("already enabled"), "{e}");
        assert!(e.contains("EBUSY"), "{e}");
        assert!(refused(8, Errno::RANGE).contains("sriov_totalvfs (ERANGE)"));
        assert!(refused(70_000, Errno::INVAL).contains("(EINVAL)"));
        assert!(refused(1, Errno::IO).contains("os error 5"));
    }
}
