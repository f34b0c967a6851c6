//! NVIDIA vGPUs on SR-IOV virtual functions: define which type each VF gets,
//! persist it in `/etc/hostdev/vgpu.d/`, and restore in order at boot — enable
//! the VFs, wait (bounded) until the driver has set them up, then write the
//! types.
//!
//! Owns: those operations and the per-PF type availability, generic over
//! [`SriovSysfs`]. Must not: print, or name a front-end's flags.

mod error;
mod held;
mod seam;
use crate::error::guarded;
use crate::lock::Locker;
use crate::poll;
use crate::{CoreError, DeviceOutcome};
pub use error::VgpuError;
use hostdev_api::{PfTypes, VgpuTypeRow};
use hostdev_model::pci::PciAddress;
use hostdev_model::vgpu::{resolve_type, SriovDefinition, VgpuDefinition};
use hostdev_model::StartPolicy;
use hostdev_store::{JsonDir, LoadProblem};
use hostdev_sysfs::sriov::{PfInfo, SriovError, SriovSysfs, VfInfo};
use rustix::io::Errno;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// vGPU operations on one host.
#[derive(Debug)]
pub struct Vgpus<V> {
    /// The kernel interface.
    pub sriov: V,
    /// VF definitions.
    pub defs: JsonDir<VgpuDefinition>,
    /// PF definitions.
    pub pf_defs: JsonDir<SriovDefinition>,
    /// How long restore waits for VFs to be set up by the driver.
    pub vf_timeout: Duration,
    locker: Locker,
}

/// Where a vGPU definition goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VgpuSlot {
    /// This VF.
    Vf(PciAddress),
    /// A free VF of this PF that can take the type (hostdev picks and records it).
    AnyOf(PciAddress),
}

/// Per-device results of a restore: (PF, VF, outcome).
pub type Restored = Vec<(PciAddress, PciAddress, DeviceOutcome)>;

/// One VF as `vgpu list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VgpuRow {
    /// The VF.
    pub vf: PciAddress,
    /// Its PF.
    pub pf: PciAddress,
    /// Current type id on the card (0 = none), if the VF exists.
    pub current: Option<u32>,
    /// The definition, if any.
    pub def: Option<VgpuDefinition>,
}

impl<V: SriovSysfs> Vgpus<V> {
    /// vGPUs of the host whose files live under `root`.
    pub fn new(sriov: V, root: &Path) -> Self {
        Vgpus {
            sriov,
            defs: JsonDir::new(root, "etc/hostdev/vgpu.d"),
            pf_defs: JsonDir::new(root, "etc/hostdev/sriov.d"),
            vf_timeout: Duration::from_secs(30),
            locker: Locker::under(root),
        }
    }

    /// The PFs whose VFs take vGPU types: those NVIDIA's driver drives. An
    /// SR-IOV PF of another driver (a NIC's) is left out, so that its VFs
    /// are never listed, pooled, offered or typed as vGPUs.
    pub fn vgpu_pfs(&self) -> Result<Vec<PfInfo>, CoreError> {
        Ok(self
            .sriov
            .pfs()?
            .into_iter()
            .filter(|p| {
                hostdev_model::vgpu::is_vgpu_pf(self.sriov.pf_driver_name(&p.address).as_deref())
            })
            .collect())
    }

    /// The vGPU PF a VF belongs to (its `physfn`, one link), if it is a VF
    /// of one: no walk of every PF's VFs.
    pub fn vgpu_pf_of(&self, vf: &PciAddress) -> Option<PciAddress> {
        self.sriov
            .physfn(vf)
            .filter(|pf| hostdev_model::vgpu::is_vgpu_pf(self.sriov.pf_driver_name(pf).as_deref()))
    }

    /// Every vGPU PF with its VFs.
    pub fn inventory(
        &self,
        pf: Option<&PciAddress>,
    ) -> Result<Vec<(PfInfo, Vec<VfInfo>)>, CoreError> {
        let mut out = Vec::new();
        for p in self.vgpu_pfs()? {
            if pf.is_some_and(|want| want != &p.address) {
                continue;
            }
            let vfs = self.sriov.vfs(&p.address)?;
            out.push((p, vfs));
        }
        Ok(out)
    }

    /// The vGPU types each PF's VFs can take now, with how many VFs can.
    pub fn types(&self, pf: Option<&PciAddress>) -> Result<Vec<PfTypes>, CoreError> {
        Ok(self
            .inventory(pf)?
            .into_iter()
            .map(|(p, vfs)| {
                let mut types: BTreeMap<u32, VgpuTypeRow> = BTreeMap::new();
                for t in vfs.iter().flat_map(|v| &v.creatable) {
                    types
                        .entry(t.id)
                        .or_insert_with(|| VgpuTypeRow {
                            id: t.id,
                            name: t.name.clone(),
                            free_vfs: 0,
                        })
                        .free_vfs += 1;
                }
                PfTypes {
                    pf: p.address,
                    vfs: vfs.len(),
                    types: types.into_values().collect(),
                }
            })
            .collect())
    }

    /// One VF, wherever it is.
    pub(crate) fn find_vf(&self, vf: &PciAddress) -> Result<VfInfo, CoreError> {
        for (_, vfs) in self.inventory(None)? {
            if let Some(v) = vfs.into_iter().find(|v| &v.address == vf) {
                return Ok(v);
            }
        }
        Err(CoreError::from(VgpuError::VfAbsent { vf: vf.clone() }))
    }

    /// VFs (live and defined) in PF, then VF order.
    pub fn list(&self) -> Result<(Vec<VgpuRow>, Vec<LoadProblem>), CoreError> {
        let (defs, problems) = self.defs.load_all()?;
        let mut rows: BTreeMap<PciAddress, VgpuRow> = BTreeMap::new();
        for (p, vfs) in self.inventory(None)? {
            for v in vfs {
                rows.insert(
                    v.address.clone(),
                    VgpuRow {
                        vf: v.address,
                        pf: p.address.clone(),
                        current: Some(v.current),
                        def: None,
                    },
                );
            }
        }
        for (_, d) in defs {
            let row = rows.entry(d.vf.clone()).or_insert_with(|| VgpuRow {
                vf: d.vf.clone(),
                pf: d.pf.clone(),
                current: None,
                def: None,
            });
            row.def = Some(d);
        }
        Ok((rows.into_values().collect(), problems))
    }

    /// Defines the type of a VF, or of a free VF that hostdev picks on a PF.
    pub fn define(
        &self,
        slot: &VgpuSlot,
        type_input: &str,
        start: StartPolicy,
    ) -> Result<VgpuDefinition, CoreError> {
        let lock = self.locker.lock()?;
        // A VF whose definition file exists is taken, usable or not.
        let taken = |a: &PciAddress| self.defs.exists(a.as_str());
        let v = match slot {
            VgpuSlot::Vf(vf) => {
                if taken(vf) {
                    return Err(CoreError::from(VgpuError::AlreadyDefined {
                        vf: vf.clone(),
                    }));
                }
                self.find_vf(vf)?
            }
            VgpuSlot::AnyOf(pf) => {
                if self.sriov.pf(pf)?.is_none() {
                    return Err(CoreError::from(VgpuError::PfAbsent { pf: pf.clone() }));
                }
                self.sriov
                    .vfs(pf)?
                    .into_iter()
                    .find(|v| {
                        v.ready
                            && v.current == 0
                            && !taken(&v.address)
                            && resolve_type(&v.creatable, type_input).is_some()
                    })
                    .ok_or_else(|| {
                        CoreError::from(VgpuError::NoFreeVf {
                            pf: pf.clone(),
                            type_input: type_input.to_string(),
                        })
                    })?
            }
        };
        if !v.ready {
            return Err(CoreError::from(VgpuError::VfNotReady { vf: v.address }));
        }
        let t = match resolve_type(&v.creatable, type_input) {
            Some(t) => t,
            None if v.current != 0 => {
                return Err(CoreError::from(VgpuError::Busy {
                    vf: v.address,
                    current: v.current,
                }))
            }
            None => {
                return Err(CoreError::from(VgpuError::not_creatable(
                    &v.address,
                    type_input.to_string(),
                    &v.creatable,
                )))
            }
        };
        let d = VgpuDefinition {
            vf: v.address.clone(),
            pf: v.pf.clone(),
            vf_index: v.index,
            type_id: t.id,
            type_name: t.name.clone(),
            start,
        };
        self.defs.save(&lock, v.address.as_str(), &d)?;
        Ok(d)
    }

    /// Removes a VF's definition (a malformed one too).
    pub fn undefine(&self, vf: &PciAddress) -> Result<(), CoreError> {
        let lock = self.locker.lock()?;
        if !self.defs.exists(vf.as_str()) {
            return Err(CoreError::from(VgpuError::NotDefined { vf: vf.clone() }));
        }
        Ok(self.defs.remove(&lock, vf.as_str())?)
    }

    /// The libvirt `<hostdev>` element that hands a VF to a VM; refused for a
    /// VF that does not exist or carries no vGPU type (the VM would get a VF
    /// without a vGPU).
    pub fn libvirt(&self, vf: &PciAddress) -> Result<String, CoreError> {
        let v = self.find_vf(vf)?;
        if v.current == 0 {
            return Err(CoreError::from(VgpuError::VfUntyped { vf: vf.clone() }));
        }
        Ok(hostdev_model::libvirt::pci_hostdev(vf))
    }

    /// Configures a defined VF with its type.
    pub fn start(&self, vf: &PciAddress) -> Result<DeviceOutcome, CoreError> {
        let d = self
            .defs
            .load(vf.as_str())?
            .ok_or_else(|| CoreError::from(VgpuError::NotDefined { vf: vf.clone() }))?;
        let v = self.find_vf(vf)?;
        self.apply(&d, &v)
    }

    fn apply(&self, d: &VgpuDefinition, v: &VfInfo) -> Result<DeviceOutcome, CoreError> {
        if v.current == d.type_id {
            return Ok(DeviceOutcome::AlreadyRunning);
        }
        if v.current != 0 {
            return Err(CoreError::from(VgpuError::WrongType {
                vf: d.vf.clone(),
                current: v.current,
                wanted: d.type_id,
            }));
        }
        // The stored id is this card's; check the driver still means the same
        // name by it, and follow a renumbering within this card's own list.
        let id = match v.creatable.iter().find(|t| t.id == d.type_id) {
            Some(t) if t.name == d.type_name => t.id,
            _ => match v.creatable.iter().find(|t| t.name == d.type_name) {
                Some(t) => t.id,
                None => {
                    return Err(CoreError::from(VgpuError::not_creatable(
                        &d.vf,
                        format!("{} ({})", d.type_id, d.type_name),
                        &v.creatable,
                    )))
                }
            },
        };
        if let Err(e) = self.sriov.set_type(&d.vf, id) {
            // Another restorer may have written the same type first.
            let now = self.sriov.vfs(&d.pf).ok().into_iter().flatten();
            if now
                .into_iter()
                .any(|v| v.address == d.vf && v.current == id)
            {
                return Ok(DeviceOutcome::AlreadyRunning);
            }
            return Err(e.into());
        }
        Ok(DeviceOutcome::Started)
    }

    /// Clears a VF's type (refused by the driver while a VM uses it).
    pub fn stop(&self, vf: &PciAddress) -> Result<(), CoreError> {
        let v = self.find_vf(vf)?;
        if v.current == 0 {
            return Err(CoreError::from(VgpuError::NotSet { vf: vf.clone() }));
        }
        self.sriov.set_type(vf, 0).map_err(|e| match &e {
            SriovError::SetType { source, .. }
                if source.raw_os_error() == Some(Errno::BUSY.raw_os_error()) =>
            {
                CoreError::from(VgpuError::InUse { vf: vf.clone() })
            }
            _ => e.into(),
        })
    }

    /// Defines how many VFs a PF should have, and sets it now. A refused
    /// change leaves the stored definition as it was.
    pub fn enable(
        &self,
        pf: &PciAddress,
        numvfs: u32,
        start: StartPolicy,
    ) -> Result<(), CoreError> {
        let lock = self.locker.lock()?;
        let info = self
            .sriov
            .pf(pf)?
            .ok_or_else(|| CoreError::from(VgpuError::PfAbsent { pf: pf.clone() }))?;
        if numvfs > info.total_vfs {
            return Err(CoreError::from(VgpuError::TooManyVfs {
                pf: pf.clone(),
                max: info.total_vfs,
            }));
        }
        if info.num_vfs != numvfs {
            if info.num_vfs != 0 {
                return Err(CoreError::from(VgpuError::VfCountFixed {
                    pf: pf.clone(),
                    enabled: info.num_vfs,
                }));
            }
            self.sriov.set_num_vfs(pf, numvfs)?;
        }
        let d = SriovDefinition {
            pf: pf.clone(),
            numvfs,
            start,
        };
        self.pf_defs.save(&lock, pf.as_str(), &d)?;
        Ok(())
    }

    /// Waits (up to `vf_timeout`) until the PF's VFs are `ready`; answers
    /// them, or `None` when the wait ran out. An unreadable VF directory is
    /// an error, not "no VFs".
    pub(crate) fn wait_vfs(
        &self,
        pf: &PciAddress,
        ready: impl Fn(&[VfInfo]) -> bool,
    ) -> Result<Option<Vec<VfInfo>>, SriovError> {
        match poll::until(
            self.vf_timeout,
            Duration::from_millis(2),
            Duration::from_millis(100),
            || match self.sriov.vfs(pf) {
                Ok(v) if ready(&v) => Ok(Ok(v)),
                Ok(_) => Err(()),
                Err(e) => Ok(Err(e)),
            },
        ) {
            Ok(r) => r.map(Some),
            Err(()) => Ok(None),
        }
    }

    /// Sets a PF's VF count to 0 and removes its definition; refused while
    /// a VF carries a vGPU type (removing the VF would take it from its VM).
    pub fn disable(&self, pf: &PciAddress) -> Result<(), CoreError> {
        let lock = self.locker.lock()?;
        let Some(info) = self.sriov.pf(pf)? else {
            return Err(CoreError::from(VgpuError::PfAbsent { pf: pf.clone() }));
        };
        if info.num_vfs != 0 {
            let typed: Vec<PciAddress> = self
                .sriov
                .vfs(pf)?
                .into_iter()
                .filter(|v| v.current != 0)
                .map(|v| v.address)
                .collect();
            if !typed.is_empty() {
                return Err(CoreError::from(VgpuError::PfBusy {
                    pf: pf.clone(),
                    vfs: typed,
                }));
            }
            self.sriov.set_num_vfs(pf, 0)?;
        }
        if self.pf_defs.exists(pf.as_str()) {
            self.pf_defs.remove(&lock, pf.as_str())?;
        }
        Ok(())
    }

    /// Writes a PF's definition as given, or removes it (`None`): putting
    /// back what was there before.
    pub fn put_pf_definition(
        &self,
        pf: &PciAddress,
        d: Option<&SriovDefinition>,
    ) -> Result<(), CoreError> {
        let lock = self.locker.lock()?;
        match d {
            Some(d) => self.pf_defs.save(&lock, pf.as_str(), d)?,
            None if self.pf_defs.exists(pf.as_str()) => self.pf_defs.remove(&lock, pf.as_str())?,
            None => {}
        }
        Ok(())
    }

    /// Writes a VF's definition as it was (no checks: putting back).
    pub fn put_vf_definition(&self, d: &VgpuDefinition) -> Result<(), CoreError> {
        let lock = self.locker.lock()?;
        Ok(self.defs.save(&lock, d.vf.as_str(), d)?)
    }

    /// Restores every auto definition: per PF (in parallel), enable the VFs,
    /// wait for them, then set the types in VF order. PFs that are absent are
    /// waited for up to `wait`. One bad definition is reported alone; a panic
    /// restoring one device is that device's failure.
    pub fn restore(&self, wait: Duration) -> Result<(Restored, Vec<LoadProblem>), CoreError> {
        let (defs, mut problems) = self.defs.load_all()?;
        let (pf_defs, p2) = self.pf_defs.load_all()?;
        problems.extend(p2);
        let mut plan: BTreeMap<PciAddress, (u32, Vec<VgpuDefinition>)> = BTreeMap::new();
        for (_, d) in pf_defs
            .into_iter()
            .filter(|(_, d)| d.start == StartPolicy::Auto)
        {
            plan.entry(d.pf.clone()).or_default().0 = d.numvfs;
        }
        for (_, d) in defs
            .into_iter()
            .filter(|(_, d)| d.start == StartPolicy::Auto)
        {
            plan.entry(d.pf.clone()).or_default().1.push(d);
        }
        let results: Vec<Restored> = std::thread::scope(|s| {
            let hs: Vec<_> = plan
                .iter()
                .map(|(pf, (n, ds))| (pf, ds, s.spawn(move || self.restore_pf(pf, *n, ds, wait))))
                .collect();
            hs.into_iter()
                .map(|(pf, ds, h)| {
                    h.join().unwrap_or_else(|_| {
                        ds.iter()
                            .map(|d| {
                                let e = CoreError::RestorePanicked {
                                    device: pf.to_string(),
                                };
                                (pf.clone(), d.vf.clone(), DeviceOutcome::Failed(e.into()))
                            })
                            .collect()
                    })
                })
                .collect()
        });
        Ok((results.into_iter().flatten().collect(), problems))
    }

    fn restore_pf(
        &self,
        pf: &PciAddress,
        pf_numvfs: u32,
        defs: &[VgpuDefinition],
        wait: Duration,
    ) -> Restored {
        let fail_all = |defs: &[&VgpuDefinition], e: SriovError| -> Restored {
            let e = Arc::new(CoreError::from(e));
            defs.iter()
                .map(|d| (pf.clone(), d.vf.clone(), DeviceOutcome::Failed(e.clone())))
                .collect()
        };
        // 1. The PF (its driver may still be loading).
        let info = match poll::until(
            wait,
            Duration::from_millis(5),
            Duration::from_millis(200),
            || match self.sriov.pf(pf) {
                Ok(Some(i)) => Ok(Ok(i)),
                Ok(None) => Err(()),
                Err(e) => Ok(Err(e)),
            },
        ) {
            Ok(Ok(i)) => i,
            Ok(Err(e)) => return fail_all(&defs.iter().collect::<Vec<_>>(), e),
            Err(_) => {
                return defs
                    .iter()
                    .map(|d| (pf.clone(), d.vf.clone(), DeviceOutcome::ParentAbsent))
                    .collect()
            }
        };
        // 2. A definition whose VF index the PF cannot have is reported alone;
        //    the others decide how many VFs are needed.
        let mut out = Vec::new();
        let mut ok: Vec<&VgpuDefinition> = Vec::new();
        for d in defs {
            if d.vf_index >= info.total_vfs {
                let e = CoreError::from(VgpuError::VfBeyondTotal {
                    vf: d.vf.clone(),
                    pf: pf.clone(),
                    index: d.vf_index,
                    total: info.total_vfs,
                });
                out.push((pf.clone(), d.vf.clone(), DeviceOutcome::Failed(e.into())));
            } else {
                ok.push(d);
            }
        }
        let needed = ok
            .iter()
            .map(|d| d.vf_index + 1)
            .max()
            .unwrap_or(0)
            .max(pf_numvfs.min(info.total_vfs));
        // 3. Enough VFs.
        if info.num_vfs == 0 && needed > 0 {
            if let Err(e) = self.sriov.set_num_vfs(pf, needed) {
                out.extend(fail_all(&ok, e));
                return out;
            }
        } else if info.num_vfs < needed {
            // The count changes only through 0, which would remove the VFs'
            // vGPUs: the definitions beyond it fail, the others go on.
            let (fit, beyond): (Vec<&VgpuDefinition>, Vec<&VgpuDefinition>) =
                ok.into_iter().partition(|d| d.vf_index < info.num_vfs);
            out.extend(beyond.iter().map(|d| {
                let e = CoreError::from(VgpuError::TooFewVfs {
                    pf: pf.clone(),
                    enabled: info.num_vfs,
                    needed: d.vf_index + 1,
                });
                (pf.clone(), d.vf.clone(), DeviceOutcome::Failed(e.into()))
            }));
            ok = fit;
        }
        // 4. Wait until the driver has set the needed VFs up (nvidia/ exists);
        //    an unreadable VF directory is an error, not "no VFs".
        let ready = |vfs: &[VfInfo]| {
            ok.iter()
                .all(|d| vfs.iter().any(|v| v.address == d.vf && v.ready))
        };
        if let Err(e) = self.wait_vfs(pf, ready) {
            out.extend(fail_all(&ok, e));
            return out;
        }
        // 5. Types, in VF order; a failure or a panic is that VF's alone.
        ok.sort_by_key(|d| d.vf_index);
        for d in ok {
            let r = guarded(&d.vf, || {
                // Re-read: each type taken lowers what the others can take.
                let current = self.sriov.vfs(pf)?;
                match current.iter().find(|v| v.address == d.vf) {
                    Some(v) if v.ready => self.apply(d, v),
                    Some(_) => Err(CoreError::from(VgpuError::VfNotSetUp {
                        vf: d.vf.clone(),
                        waited: self.vf_timeout,
                    })),
                    None => Err(CoreError::from(VgpuError::VfMissing {
                        vf: d.vf.clone(),
                        pf: pf.clone(),
                    })),
                }
            });
            let outcome = r.unwrap_or_else(|e| DeviceOutcome::Failed(e.into()));
            out.push((pf.clone(), d.vf.clone(), outcome));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostdev_sysfs::sriov::{FakeSriov, PciSriov};

    const L40S: &[(u32, &str, u32)] = &[
        (1150, "NVIDIA L40S-4Q", 4096),
        (1151, "NVIDIA L40S-8Q", 8192),
    ];
    const H100: &[(u32, &str, u32)] = &[
        (1428, "NVIDIA H100-10C", 10240),
        (1150, "NVIDIA H100-80C", 81920),
    ];

    fn vgpus() -> (tempfile::TempDir, Vgpus<FakeSriov>) {
        let t = tempfile::tempdir().unwrap();
        let f = FakeSriov::new();
        f.add_pf("0000:41:00.0", 8, 16384, L40S, true);
        f.add_pf("0000:c1:00.0", 8, 81920, H100, true);
        let v = Vgpus::new(f, t.path());
        (t, v)
    }

    fn a(s: &str) -> PciAddress {
        s.parse().unwrap()
    }

    /// The kernel lab's igb PF has SR-IOV and VFs without `nvidia/`; the
    /// vGPU view once took every SR-IOV PF for NVIDIA's and listed it.
    #[test]
    fn an_sriov_pf_of_another_driver_is_not_a_vgpu_pf() {
        let (_t, v) = vgpus();
        let mut igb = hostdev_kmodel::SriovProfile::nvidia("0000:01:00.0", 7, 0, &[]);
        igb.driver = "igb".into();
        igb.vendor = "0x8086".into();
        v.sriov.add(igb, true);
        v.sriov.set_num_vfs(&a("0000:01:00.0"), 2).unwrap();
        let pfs: Vec<String> = v
            .vgpu_pfs()
            .unwrap()
            .into_iter()
            .map(|p| p.address.to_string())
            .collect();
        assert_eq!(pfs, ["0000:41:00.0", "0000:c1:00.0"]);
        assert!(v
            .types(None)
            .unwrap()
            .iter()
            .all(|t| t.pf != a("0000:01:00.0")));
        let (rows, _) = v.list().unwrap();
        assert!(
            rows.iter().all(|r| !r.vf.as_str().starts_with("0000:01:")),
            "{rows:?}"
        );
        // An NVIDIA PF whose driver is unbound is no vGPU PF either.
        v.sriov
            .with_model(|m| m.bind_pf_driver("0000:41:00.0", false));
        assert_eq!(v.vgpu_pfs().unwrap().len(), 1);
    }

    #[test]
    fn restore_enables_vfs_first_then_sets_types_in_vf_order() {
        let (_t, v) = vgpus();
        v.sriov.set_num_vfs(&a("0000:41:00.0"), 4).unwrap();
        v.define(
            &VgpuSlot::Vf(a("0000:41:00.6")),
            "NVIDIA L40S-4Q",
            StartPolicy::Auto,
        )
        .unwrap();
        v.define(&VgpuSlot::Vf(a("0000:41:00.4")), "1151", StartPolicy::Auto)
            .unwrap();
        // A reboot: VFs gone.
        v.sriov.set_num_vfs(&a("0000:41:00.0"), 0).unwrap();
        let (r, _) = v.restore(Duration::ZERO).unwrap();
        assert!(
            r.iter()
                .all(|(_, _, o)| matches!(o, DeviceOutcome::Started)),
            "{r:?}"
        );
        assert_eq!(
            v.sriov.log("0000:41:00.0"),
            vec![
                "numvfs 4",
                "numvfs 0",
                "numvfs 3",
                "type 0000:41:00.4 1151",
                "type 0000:41:00.6 1150"
            ]
        );
    }

    #[test]
    fn an_id_of_another_card_is_refused_on_the_wrong_card() {
        let (_t, v) = vgpus();
        v.sriov.set_num_vfs(&a("0000:41:00.0"), 1).unwrap();
        v.sriov.set_num_vfs(&a("0000:c1:00.0"), 1).unwrap();
        let e = v
            .define(
                &VgpuSlot::Vf(a("0000:41:00.4")),
                "1428",
                StartPolicy::Manual,
            )
            .unwrap_err();
        assert!(e.to_string().contains("card-local"), "{e}");
        // 1150 means different types on the two cards.
        assert_eq!(
            v.define(
                &VgpuSlot::Vf(a("0000:41:00.4")),
                "1150",
                StartPolicy::Manual
            )
            .unwrap()
            .type_name,
            "NVIDIA L40S-4Q"
        );
        assert_eq!(
            v.define(
                &VgpuSlot::Vf(a("0000:c1:00.4")),
                "1150",
                StartPolicy::Manual
            )
            .unwrap()
            .type_name,
            "NVIDIA H100-80C"
        );
    }

    #[test]
    fn pf_pick_and_late_pf() {
        let (_t, v) = vgpus();
        v.sriov.add_pf("0000:81:00.0", 4, 16384, L40S, true);
        v.sriov.set_num_vfs(&a("0000:81:00.0"), 2).unwrap();
        let d = v
            .define(
                &VgpuSlot::AnyOf(a("0000:81:00.0")),
                "NVIDIA L40S-8Q",
                StartPolicy::Auto,
            )
            .unwrap();
        assert_eq!(d.vf, a("0000:81:00.4"));
        let d2 = v
            .define(
                &VgpuSlot::AnyOf(a("0000:81:00.0")),
                "NVIDIA L40S-8Q",
                StartPolicy::Auto,
            )
            .unwrap();
        assert_eq!(d2.vf, a("0000:81:00.5"));
        // Reboot with the PF's driver late: absent without waiting, restored when it comes.
        v.sriov.add_pf("0000:81:00.0", 4, 16384, L40S, false);
        let (r, _) = v.restore(Duration::ZERO).unwrap();
        assert!(r
            .iter()
            .filter(|x| x.0 == a("0000:81:00.0"))
            .all(|(_, _, o)| matches!(o, DeviceOutcome::ParentAbsent)));
        let (r, _) = std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(30));
                v.sriov.appear("0000:81:00.0");
            });
            v.restore(Duration::from_secs(5)).unwrap()
        });
        assert_eq!(
            r.iter()
                .filter(|(_, _, o)| matches!(o, DeviceOutcome::Started))
                .count(),
            2,
            "{r:?}"
        );
    }
}
