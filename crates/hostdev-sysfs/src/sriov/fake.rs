//! The in-process SR-IOV fake over hostdev-kmodel's kernel model: the PCI
//! core as the lab's kernel does it ([`ModelPci`]) and NVIDIA's VF files
//! ([`ModelVgpu`], a [`VfProfile`]), composed as the real ones are
//! ([`Profiled`]: a VF read through its PF driver's profile), with a log of
//! writes per PF.
//!
//! Owns: translating the model's answers. Must not: hold a rule of its own.

use super::{PciSriov, PfInfo, Profiled, SriovError, VfProfile, VfState};
use hostdev_model::pci::PciAddress;
use hostdev_model::pool::MemberFacts;
use hostdev_model::vgpu::VgpuType;
use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

/// The in-process fake: hostdev-kmodel's kernel model (PCI SR-IOV as the
/// lab's kernel does it, NVIDIA's VF files and frame-buffer budget) behind
/// the model's PCI core and NVIDIA profile, with a log of writes per PF.
/// No rule is written here.
pub type FakeSriov = Profiled<ModelPci>;

#[derive(Debug, Default)]
struct FakeState {
    kernel: hostdev_kmodel::Kernel,
    log: BTreeMap<String, Vec<String>>,
}

type Shared = Arc<Mutex<FakeState>>;

fn lock(s: &Shared) -> MutexGuard<'_, FakeState> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// The model's PCI SR-IOV core (PFs, counts, VF links, the PF's driver).
#[derive(Debug, Clone, Default)]
pub struct ModelPci {
    state: Shared,
}

/// NVIDIA's VF files (`nvidia/creatable_vgpu_types`, `current_vgpu_type`)
/// as the model keeps them: the fake's [`VfProfile`] for PFs driven by
/// `nvidia`.
#[derive(Debug, Clone)]
pub struct ModelVgpu {
    state: Shared,
}

impl Default for FakeSriov {
    fn default() -> Self {
        let pci = ModelPci::default();
        let vgpu = ModelVgpu {
            state: pci.state.clone(),
        };
        Profiled::compose(pci, vec![Arc::new(vgpu)])
    }
}

impl FakeSriov {
    /// An empty fake.
    pub fn new() -> Self {
        Self::default()
    }

    fn st(&self) -> MutexGuard<'_, FakeState> {
        lock(&self.pci().state)
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

impl ModelPci {
    fn st(&self) -> MutexGuard<'_, FakeState> {
        lock(&self.state)
    }

    /// The model's VFs of `pf`; a PF without VFs (or absent) has none.
    fn views(&self, pf: &PciAddress) -> Result<Vec<hostdev_kmodel::VfView>, SriovError> {
        match self.st().kernel.vfs(pf.as_str()) {
            Ok(v) => Ok(v),
            Err(hostdev_kmodel::errno::ENOENT) => Ok(Vec::new()),
            Err(errno) => Err(SriovError::Read {
                path: PathBuf::from(format!("/sys/bus/pci/devices/{pf}/virtfn0")),
                source: os_error(errno),
            }),
        }
    }
}

impl PciSriov for ModelPci {
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
        Ok(PciSriov::pfs(self)?.into_iter().find(|p| &p.address == pf))
    }

    fn vf_addresses(&self, pf: &PciAddress) -> Result<Vec<(u32, PciAddress)>, SriovError> {
        Ok(self
            .views(pf)?
            .into_iter()
            .filter_map(|v| Some((v.index, v.address.parse().ok()?)))
            .collect())
    }

    fn physfn(&self, vf: &PciAddress) -> Option<PciAddress> {
        self.st().kernel.pf_of(vf.as_str())?.parse().ok()
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
}

/// Each VF's NVIDIA files from the model.
impl VfProfile for ModelVgpu {
    fn driver(&self) -> &str {
        "nvidia"
    }

    fn vf_state(&self, vf: &PciAddress) -> Result<Option<VfState>, SriovError> {
        let view = lock(&self.state).kernel.vf_view(vf.as_str());
        Ok(view.filter(|v| v.ready).map(|v| VfState {
            current: v.current,
            creatable: v
                .creatable
                .into_iter()
                .map(|(id, name)| VgpuType { id, name })
                .collect(),
        }))
    }

    fn set_type(&self, vf: &PciAddress, type_id: u32) -> Result<(), SriovError> {
        let mut st = lock(&self.state);
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
