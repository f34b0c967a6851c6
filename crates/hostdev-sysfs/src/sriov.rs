//! PCI SR-IOV functions with NVIDIA's vendor-specific VFIO interface:
//! `/sys/bus/pci/devices/<pf>/{sriov_totalvfs,sriov_numvfs,virtfnN}` and
//! `<vf>/nvidia/{creatable_vgpu_types,current_vgpu_type}`.
//!
//! Owns: reading and writing those files, behind [`SriovSysfs`], with a real
//! implementation ([`RealSriov`]) and a fake ([`FakeSriov`]). Must not: decide
//! which type goes where.

use crate::describe_errno;
use hostdev_model::pool::MemberFacts;
use hostdev_model::probe::DriverIdentity;
use hostdev_model::vgpu::{parse_creatable, PciAddress, VgpuType};
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

    fn write(path: &Path, data: &str) -> io::Result<()> {
        OpenOptions::new()
            .write(true)
            .open(path)?
            .write_all(data.as_bytes())
    }
}

impl SriovSysfs for RealSriov {
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

/// A fake: PFs with card-local type lists and a frame-buffer budget.
#[derive(Debug, Default)]
pub struct FakeSriov {
    state: Mutex<BTreeMap<String, FakePf>>,
}

#[derive(Debug, Clone)]
struct FakePf {
    unreadable: bool,
    total: u32,
    fb: u32,
    types: Vec<(u32, String, u32)>,
    vfs: Vec<u32>,
    present: bool,
    log: Vec<String>,
}

impl FakeSriov {
    /// An empty fake.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reading the PF's VF links fails (EIO), as an unreadable directory would.
    pub fn make_unreadable(&self, pf: &str) {
        if let Some(p) = self.st().get_mut(pf) {
            p.unreadable = true;
        }
    }

    fn st(&self) -> MutexGuard<'_, BTreeMap<String, FakePf>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a PF with `total` VFs, `fb` MiB and types (id, name, fb MiB).
    pub fn add_pf(
        &self,
        addr: &str,
        total: u32,
        fb: u32,
        types: &[(u32, &str, u32)],
        present: bool,
    ) {
        self.st().insert(
            addr.to_string(),
            FakePf {
                unreadable: false,
                total,
                fb,
                types: types
                    .iter()
                    .map(|(i, n, f)| (*i, n.to_string(), *f))
                    .collect(),
                vfs: Vec::new(),
                present,
                log: Vec::new(),
            },
        );
    }

    /// Makes a late PF appear.
    pub fn appear(&self, addr: &str) {
        if let Some(p) = self.st().get_mut(addr) {
            p.present = true;
        }
    }

    /// Every write to a PF and its VFs, in order.
    pub fn log(&self, addr: &str) -> Vec<String> {
        self.st()
            .get(addr)
            .map(|p| p.log.clone())
            .unwrap_or_default()
    }

    fn vf_addr(pf: &str, i: u32) -> String {
        let dev = u32::from_str_radix(&pf[8..10], 16).unwrap_or(0);
        let n = dev * 8 + 4 + i;
        format!("{}{:02x}.{}", &pf[..8], n / 8, n % 8)
    }
}

impl SriovSysfs for FakeSriov {
    fn pfs(&self) -> Result<Vec<PfInfo>, SriovError> {
        let keys: Vec<String> = self.st().keys().cloned().collect();
        let mut out = Vec::new();
        for k in keys {
            if let Ok(a) = k.parse() {
                if let Some(p) = self.pf(&a)? {
                    out.push(p);
                }
            }
        }
        Ok(out)
    }

    fn pf(&self, pf: &PciAddress) -> Result<Option<PfInfo>, SriovError> {
        Ok(self
            .st()
            .get(pf.as_str())
            .filter(|p| p.present)
            .map(|p| PfInfo {
                address: pf.clone(),
                total_vfs: p.total,
                num_vfs: p.vfs.len() as u32,
            }))
    }

    fn vfs(&self, pf: &PciAddress) -> Result<Vec<VfInfo>, SriovError> {
        let st = self.st();
        let Some(p) = st.get(pf.as_str()).filter(|p| p.present) else {
            return Ok(Vec::new());
        };
        if p.unreadable {
            return Err(SriovError::Read {
                path: PathBuf::from(format!("/sys/bus/pci/devices/{pf}/virtfn0")),
                source: io::Error::from_raw_os_error(rustix::io::Errno::IO.raw_os_error()),
            });
        }
        let used: u32 = p
            .vfs
            .iter()
            .filter_map(|c| p.types.iter().find(|t| t.0 == *c))
            .map(|t| t.2)
            .sum();
        Ok(p.vfs
            .iter()
            .enumerate()
            .filter_map(|(i, cur)| {
                let creatable = if *cur != 0 {
                    Vec::new()
                } else {
                    p.types
                        .iter()
                        .filter(|t| t.2 <= p.fb.saturating_sub(used))
                        .map(|t| VgpuType {
                            id: t.0,
                            name: t.1.clone(),
                        })
                        .collect()
                };
                Some(VfInfo {
                    address: Self::vf_addr(pf.as_str(), i as u32).parse().ok()?,
                    pf: pf.clone(),
                    index: i as u32,
                    ready: true,
                    current: *cur,
                    creatable,
                })
            })
            .collect())
    }

    fn set_num_vfs(&self, pf: &PciAddress, n: u32) -> Result<(), SriovError> {
        let mut st = self.st();
        let p = st.get_mut(pf.as_str()).ok_or_else(|| SriovError::NumVfs {
            pf: pf.clone(),
            num: n,
            source: io::Error::from_raw_os_error(19),
        })?;
        p.log.push(format!("numvfs {n}"));
        if n > p.total || (n != 0 && !p.vfs.is_empty() && n as usize != p.vfs.len()) {
            return Err(SriovError::NumVfs {
                pf: pf.clone(),
                num: n,
                source: io::Error::from_raw_os_error(16),
            });
        }
        p.vfs = vec![0; n as usize];
        Ok(())
    }

    fn set_type(&self, vf: &PciAddress, type_id: u32) -> Result<(), SriovError> {
        let refuse = |errno| SriovError::SetType {
            vf: vf.clone(),
            type_id,
            source: io::Error::from_raw_os_error(errno),
        };
        let infos: Vec<VfInfo> = {
            let keys: Vec<String> = self.st().keys().cloned().collect();
            let mut all = Vec::new();
            for k in keys {
                if let Ok(a) = k.parse() {
                    all.extend(self.vfs(&a)?);
                }
            }
            all
        };
        let v = infos
            .iter()
            .find(|v| &v.address == vf)
            .ok_or_else(|| refuse(19))?;
        if type_id != 0 && !v.creatable.iter().any(|t| t.id == type_id) {
            return Err(refuse(22));
        }
        let mut st = self.st();
        let p = st.get_mut(v.pf.as_str()).ok_or_else(|| refuse(19))?;
        p.log.push(format!("type {vf} {type_id}"));
        p.vfs[v.index as usize] = type_id;
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
