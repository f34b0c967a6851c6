//! PCI SR-IOV functions with NVIDIA's vendor-specific VFIO interface:
//! `/sys/bus/pci/devices/<pf>/{sriov_totalvfs,sriov_numvfs,virtfnN}` and
//! `<vf>/nvidia/{creatable_vgpu_types,current_vgpu_type}`.
//!
//! Owns: reading and writing those files, behind [`SriovSysfs`], with a real
//! implementation ([`RealSriov`]) and a fake ([`FakeSriov`]). Must not: decide
//! which type goes where.

use crate::describe_errno;
use hostdev_model::pci::PciAddress;
use hostdev_model::pool::MemberFacts;
use hostdev_model::probe::DriverIdentity;
use hostdev_model::vgpu::{parse_creatable, VgpuType};
use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// A physical function that can carry vGPU VFs.
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
    /// The `nvidia/` directory exists (the driver has set the VF up).
    pub ready: bool,
    /// `current_vgpu_type` (0 = none).
    pub current: u32,
    /// `creatable_vgpu_types` of this VF.
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
    /// Writing `current_vgpu_type` failed.
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

/// The SR-IOV part of sysfs.
pub trait SriovSysfs: Send + Sync {
    /// PFs that can carry VFs (have `sriov_totalvfs`), sorted.
    fn pfs(&self) -> Result<Vec<PfInfo>, SriovError>;
    /// One PF, if present.
    fn pf(&self, pf: &PciAddress) -> Result<Option<PfInfo>, SriovError>;
    /// The VFs of a PF, by index.
    fn vfs(&self, pf: &PciAddress) -> Result<Vec<VfInfo>, SriovError>;
    /// Writes `sriov_numvfs`.
    fn set_num_vfs(&self, pf: &PciAddress, n: u32) -> Result<(), SriovError>;
    /// Writes `current_vgpu_type` (0 clears).
    fn set_type(&self, vf: &PciAddress, type_id: u32) -> Result<(), SriovError>;
    /// What the PF says about itself (PCI ids, NUMA node, driver), for pool
    /// selectors; only its address where this interface cannot tell.
    fn pf_facts(&self, pf: &PciAddress) -> MemberFacts {
        MemberFacts {
            name: pf.to_string(),
            ..MemberFacts::default()
        }
    }
    /// The driver bound to the PF, if any: what [`SriovSysfs::pf_facts`]
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

/// The real sysfs under a root prefix.
#[derive(Debug, Clone)]
pub struct RealSriov {
    root: PathBuf,
    pci: PathBuf,
}

impl RealSriov {
    /// sysfs of the host whose filesystem root is `root`.
    pub fn new(root: &Path) -> Self {
        RealSriov {
            root: root.to_path_buf(),
            pci: root.join("sys/bus/pci/devices"),
        }
    }

    fn read_u32(&self, path: PathBuf) -> Result<Option<u32>, SriovError> {
        match fs::read_to_string(&path) {
            Ok(s) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| SriovError::Malformed {
                    path,
                    why: format!("'{}' is not a number", s.trim()),
                }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(SriovError::Read { path, source }),
        }
    }

    /// The filesystem root it reads under.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    fn write(path: &Path, data: &str) -> io::Result<()> {
        OpenOptions::new()
            .write(true)
            .open(path)?
            .write_all(data.as_bytes())
    }
}

impl SriovSysfs for RealSriov {
    fn pf_driver_name(&self, pf: &PciAddress) -> Option<String> {
        fs::read_link(self.pci.join(pf.as_str()).join("driver"))
            .ok()
            .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()))
    }
    fn pf_facts(&self, pf: &PciAddress) -> MemberFacts {
        crate::device_facts(&self.pci.join(pf.as_str()), pf.as_str())
    }
    fn pf_driver(&self, pf: &PciAddress) -> DriverIdentity {
        crate::driver_identity(&self.root, &self.pci.join(pf.as_str()))
    }
    fn pfs(&self) -> Result<Vec<PfInfo>, SriovError> {
        let rd = match fs::read_dir(&self.pci) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(SriovError::Read {
                    path: self.pci.clone(),
                    source,
                })
            }
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            if let Ok(a) = e.file_name().to_string_lossy().parse::<PciAddress>() {
                if let Some(pf) = self.pf(&a)? {
                    out.push(pf);
                }
            }
        }
        out.sort_by(|a, b| a.address.cmp(&b.address));
        Ok(out)
    }

    fn pf(&self, pf: &PciAddress) -> Result<Option<PfInfo>, SriovError> {
        let dir = self.pci.join(pf.as_str());
        let Some(total_vfs) = self.read_u32(dir.join("sriov_totalvfs"))? else {
            return Ok(None);
        };
        let num_vfs = self.read_u32(dir.join("sriov_numvfs"))?.unwrap_or(0);
        Ok(Some(PfInfo {
            address: pf.clone(),
            total_vfs,
            num_vfs,
        }))
    }

    fn vfs(&self, pf: &PciAddress) -> Result<Vec<VfInfo>, SriovError> {
        let dir = self.pci.join(pf.as_str());
        let Some(info) = self.pf(pf)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for index in 0..info.num_vfs {
            let link = dir.join(format!("virtfn{index}"));
            let target = match fs::read_link(&link) {
                Ok(t) => t,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // not created yet
                Err(source) => return Err(SriovError::Read { path: link, source }),
            };
            let Some(address) = target
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<PciAddress>().ok())
            else {
                return Err(SriovError::Malformed {
                    path: link,
                    why: format!("it points at {}", target.display()),
                });
            };
            let nv = self.pci.join(address.as_str()).join("nvidia");
            let types_path = nv.join("creatable_vgpu_types");
            let (ready, creatable) = match fs::read_to_string(&types_path) {
                Ok(t) => (
                    true,
                    parse_creatable(&t).map_err(|e| SriovError::Malformed {
                        path: types_path.clone(),
                        why: e.to_string(),
                    })?,
                ),
                Err(e) if e.kind() == io::ErrorKind::NotFound => (false, Vec::new()),
                Err(source) => {
                    return Err(SriovError::Read {
                        path: types_path,
                        source,
                    })
                }
            };
            let current = if ready {
                self.read_u32(nv.join("current_vgpu_type"))?.unwrap_or(0)
            } else {
                0
            };
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

    fn set_num_vfs(&self, pf: &PciAddress, n: u32) -> Result<(), SriovError> {
        Self::write(
            &self.pci.join(pf.as_str()).join("sriov_numvfs"),
            &n.to_string(),
        )
        .map_err(|source| SriovError::NumVfs {
            pf: pf.clone(),
            num: n,
            source,
        })
    }

    fn set_type(&self, vf: &PciAddress, type_id: u32) -> Result<(), SriovError> {
        let path = self.pci.join(vf.as_str()).join("nvidia/current_vgpu_type");
        Self::write(&path, &type_id.to_string()).map_err(|source| SriovError::SetType {
            vf: vf.clone(),
            type_id,
            source,
        })
    }
}

/// The in-process fake: hostdev-kmodel's kernel model (PCI SR-IOV as the
/// lab's kernel does it, NVIDIA's VF files and frame-buffer budget) behind
/// [`SriovSysfs`], with a log of writes per PF. No rule is written here.
#[derive(Debug, Default)]
pub struct FakeSriov {
    state: Mutex<FakeState>,
}

#[derive(Debug, Default)]
struct FakeState {
    kernel: hostdev_kmodel::Kernel,
    log: BTreeMap<String, Vec<String>>,
}

impl FakeSriov {
    /// An empty fake.
    pub fn new() -> Self {
        Self::default()
    }

    fn st(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the model itself.
    pub fn with_model<R>(&self, f: impl FnOnce(&mut hostdev_kmodel::Kernel) -> R) -> R {
        f(&mut self.st().kernel)
    }

    /// Listing the PF's VF links fails (EIO), as an unreadable directory would.
    pub fn make_unreadable(&self, pf: &str) {
        use hostdev_kmodel::{Fault, FaultOp};
        self.st()
            .kernel
            .inject(Fault::errno(FaultOp::ReadVfs, "EIO").on_parent(pf));
    }

    /// Adds an NVIDIA PF with `total` VFs, `fb` MiB and types (id, name, fb
    /// MiB); one not `present` appears when told ([`FakeSriov::appear`]).
    pub fn add_pf(
        &self,
        addr: &str,
        total: u32,
        fb: u32,
        types: &[(u32, &str, u32)],
        present: bool,
    ) {
        self.add(
            hostdev_kmodel::SriovProfile::nvidia(addr, total, fb, types),
            present,
        );
    }

    /// Adds a PF described in full.
    pub fn add(&self, pf: hostdev_kmodel::SriovProfile, present: bool) {
        self.st().kernel.add_pf(pf, !present);
    }

    /// Makes a late PF appear.
    pub fn appear(&self, addr: &str) {
        self.st().kernel.show_pf(addr);
    }

    /// Every write to a PF and its VFs, in order.
    pub fn log(&self, addr: &str) -> Vec<String> {
        self.st().log.get(addr).cloned().unwrap_or_default()
    }
}

fn os_error(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

impl SriovSysfs for FakeSriov {
    fn pf_facts(&self, pf: &PciAddress) -> MemberFacts {
        let st = self.st();
        let p = st
            .kernel
            .profile()
            .sriov
            .iter()
            .find(|p| p.address == pf.as_str());
        MemberFacts {
            name: pf.to_string(),
            vendor: p.map(|p| p.vendor.clone()),
            device: p.and_then(|p| p.device.clone()),
            numa_node: p.map(|p| p.numa_node),
            driver: p
                .filter(|_| st.kernel.pf_driver_bound(pf.as_str()))
                .map(|p| p.driver.clone()),
        }
    }

    fn pfs(&self) -> Result<Vec<PfInfo>, SriovError> {
        Ok(self
            .st()
            .kernel
            .pfs()
            .into_iter()
            .filter_map(|p| {
                Some(PfInfo {
                    address: p.address.parse().ok()?,
                    total_vfs: p.total_vfs,
                    num_vfs: p.num_vfs,
                })
            })
            .collect())
    }

    fn pf(&self, pf: &PciAddress) -> Result<Option<PfInfo>, SriovError> {
        Ok(self.pfs()?.into_iter().find(|p| &p.address == pf))
    }

    fn vfs(&self, pf: &PciAddress) -> Result<Vec<VfInfo>, SriovError> {
        let views = match self.st().kernel.vfs(pf.as_str()) {
            Ok(v) => v,
            Err(hostdev_kmodel::errno::ENOENT) => return Ok(Vec::new()),
            Err(errno) => {
                return Err(SriovError::Read {
                    path: PathBuf::from(format!("/sys/bus/pci/devices/{pf}/virtfn0")),
                    source: os_error(errno),
                })
            }
        };
        Ok(views
            .into_iter()
            .filter_map(|v| {
                Some(VfInfo {
                    address: v.address.parse().ok()?,
                    pf: pf.clone(),
                    index: v.index,
                    ready: v.ready,
                    current: v.current,
                    creatable: v
                        .creatable
                        .into_iter()
                        .map(|(id, name)| VgpuType { id, name })
                        .collect(),
                })
            })
            .collect())
    }

    fn set_num_vfs(&self, pf: &PciAddress, n: u32) -> Result<(), SriovError> {
        let mut st = self.st();
        if st.kernel.pfs().iter().any(|p| p.address == pf.as_str()) {
            st.log
                .entry(pf.to_string())
                .or_default()
                .push(format!("numvfs {n}"));
        }
        st.kernel
            .set_num_vfs(pf.as_str(), n)
            .map_err(|errno| SriovError::NumVfs {
                pf: pf.clone(),
                num: n,
                source: os_error(errno),
            })
    }

    fn set_type(&self, vf: &PciAddress, type_id: u32) -> Result<(), SriovError> {
        let mut st = self.st();
        let pf = st.kernel.pf_of(vf.as_str()).map(str::to_string);
        st.kernel
            .set_vgpu_type(vf.as_str(), type_id)
            .map_err(|errno| SriovError::SetType {
                vf: vf.clone(),
                type_id,
                source: os_error(errno),
            })?;
        if let Some(pf) = pf {
            st.log
                .entry(pf)
                .or_default()
                .push(format!("type {vf} {type_id}"));
        }
        Ok(())
    }
}

/// One kernel shared by several views of the host.
impl<T: SriovSysfs + ?Sized> SriovSysfs for std::sync::Arc<T> {
    fn pfs(&self) -> Result<Vec<PfInfo>, SriovError> {
        (**self).pfs()
    }
    fn pf(&self, pf: &PciAddress) -> Result<Option<PfInfo>, SriovError> {
        (**self).pf(pf)
    }
    fn vfs(&self, pf: &PciAddress) -> Result<Vec<VfInfo>, SriovError> {
        (**self).vfs(pf)
    }
    fn set_num_vfs(&self, pf: &PciAddress, n: u32) -> Result<(), SriovError> {
        (**self).set_num_vfs(pf, n)
    }
    fn set_type(&self, vf: &PciAddress, type_id: u32) -> Result<(), SriovError> {
        (**self).set_type(vf, type_id)
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
