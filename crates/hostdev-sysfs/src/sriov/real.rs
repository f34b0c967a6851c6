//! The real SR-IOV sysfs under a root prefix: [`RealPci`], the PCI core's
//! files (`sriov_totalvfs`, `sriov_numvfs`, `virtfnN`, `physfn`, the PF's
//! driver), and [`RealSriov`], that core with the VF profiles hostdev knows,
//! each VF read through its PF driver's profile.
//!
//! Owns: reading and writing the PCI core's files, and choosing a VF's
//! profile by its PF's driver. Must not: read a vendor's VF files (the
//! profiles do) or decide which type goes where.

use super::{NvidiaVgpu, PciSriov, PfInfo, Profiled, SriovError, VfProfile};
use hostdev_model::pci::PciAddress;
use hostdev_model::pool::MemberFacts;
use hostdev_model::probe::DriverIdentity;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The PCI core's SR-IOV files under a root prefix.
#[derive(Debug, Clone)]
pub struct RealPci {
    root: PathBuf,
    pci: PathBuf,
}

/// Reads a decimal number file; a missing file is `None`.
pub(super) fn read_u32(path: PathBuf) -> Result<Option<u32>, SriovError> {
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

/// Writes an existing sysfs file (never created or truncated).
pub(super) fn write(path: &Path, data: &str) -> io::Result<()> {
    OpenOptions::new()
        .write(true)
        .open(path)?
        .write_all(data.as_bytes())
}

/// The function a link under a device points at (`virtfnN`, `physfn`).
fn link_target(link: &Path) -> Result<Option<PciAddress>, SriovError> {
    let target = match fs::read_link(link) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(SriovError::Read {
                path: link.to_path_buf(),
                source,
            })
        }
    };
    target
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse::<PciAddress>().ok())
        .map(Some)
        .ok_or_else(|| SriovError::Malformed {
            path: link.to_path_buf(),
            why: format!("it points at {}", target.display()),
        })
}

impl RealPci {
    /// The PCI core of the host whose filesystem root is `root`.
    pub fn new(root: &Path) -> Self {
        RealPci {
            root: root.to_path_buf(),
            pci: root.join("sys/bus/pci/devices"),
        }
    }
}

impl PciSriov for RealPci {
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
        let Some(total_vfs) = read_u32(dir.join("sriov_totalvfs"))? else {
            return Ok(None);
        };
        let num_vfs = read_u32(dir.join("sriov_numvfs"))?.unwrap_or(0);
        Ok(Some(PfInfo {
            address: pf.clone(),
            total_vfs,
            num_vfs,
        }))
    }

    /// `virtfn0` … `virtfn(numvfs-1)`; a link not created yet is skipped.
    fn vf_addresses(&self, pf: &PciAddress) -> Result<Vec<(u32, PciAddress)>, SriovError> {
        let dir = self.pci.join(pf.as_str());
        let Some(info) = self.pf(pf)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for index in 0..info.num_vfs {
            if let Some(a) = link_target(&dir.join(format!("virtfn{index}")))? {
                out.push((index, a));
            }
        }
        Ok(out)
    }

    fn physfn(&self, vf: &PciAddress) -> Option<PciAddress> {
        link_target(&self.pci.join(vf.as_str()).join("physfn"))
            .ok()
            .flatten()
    }

    fn set_num_vfs(&self, pf: &PciAddress, n: u32) -> Result<(), SriovError> {
        write(
            &self.pci.join(pf.as_str()).join("sriov_numvfs"),
            &n.to_string(),
        )
        .map_err(|source| SriovError::NumVfs {
            pf: pf.clone(),
            num: n,
            source,
        })
    }
}

/// The real SR-IOV sysfs: the PCI core and the VF profiles hostdev knows
/// (NVIDIA's vGPU), a VF read through its PF driver's profile.
pub type RealSriov = Profiled<RealPci>;

impl Profiled<RealPci> {
    /// The SR-IOV sysfs of the host whose filesystem root is `root`, with
    /// every known profile.
    pub fn new(root: &Path) -> Self {
        Self::with_profiles(root, vec![Arc::new(NvidiaVgpu::new(root))])
    }

    /// The SR-IOV sysfs with the given profiles (a new vendor's is added
    /// here).
    pub fn with_profiles(root: &Path, profiles: Vec<Arc<dyn VfProfile>>) -> Self {
        Profiled::compose(RealPci::new(root), profiles)
    }

    /// The filesystem root it reads under.
    pub(crate) fn root(&self) -> &Path {
        &self.pci().root
    }
}
