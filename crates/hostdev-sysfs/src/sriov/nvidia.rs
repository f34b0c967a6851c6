//! NVIDIA's vGPU VF profile: `<vf>/nvidia/creatable_vgpu_types` (the types
//! the VF can take now), `<vf>/nvidia/current_vgpu_type` (the one it has,
//! 0 for none; written to set or clear). The `nvidia/` directory appears
//! once the driver has set the VF up.
//!
//! Owns: reading and writing those files. Must not: read the PCI core's
//! files (`RealPci` does) or decide which type goes where.

use super::real::{read_u32, write};
use super::{SriovError, VfProfile, VfState};
use hostdev_model::pci::PciAddress;
use hostdev_model::vgpu::parse_creatable;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The NVIDIA vGPU files of every VF under a root prefix.
#[derive(Debug, Clone)]
pub struct NvidiaVgpu {
    pci: PathBuf,
}

impl NvidiaVgpu {
    /// The profile of the host whose filesystem root is `root`.
    pub fn new(root: &Path) -> Self {
        NvidiaVgpu {
            pci: root.join("sys/bus/pci/devices"),
        }
    }
}

impl VfProfile for NvidiaVgpu {
    fn driver(&self) -> &str {
        "nvidia"
    }

    fn vf_state(&self, vf: &PciAddress) -> Result<Option<VfState>, SriovError> {
        let nv = self.pci.join(vf.as_str()).join("nvidia");
        let types_path = nv.join("creatable_vgpu_types");
        let creatable = match fs::read_to_string(&types_path) {
            Ok(t) => parse_creatable(&t).map_err(|e| SriovError::Malformed {
                path: types_path.clone(),
                why: e.to_string(),
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(SriovError::Read {
                    path: types_path,
                    source,
                })
            }
        };
        let current = read_u32(nv.join("current_vgpu_type"))?.unwrap_or(0);
        Ok(Some(VfState { current, creatable }))
    }

    fn set_type(&self, vf: &PciAddress, type_id: u32) -> Result<(), SriovError> {
        let path = self.pci.join(vf.as_str()).join("nvidia/current_vgpu_type");
        write(&path, &type_id.to_string()).map_err(|source| SriovError::SetType {
            vf: vf.clone(),
            type_id,
            source,
        })
    }
}
