//! NVIDIA vGPUs on SR-IOV virtual functions: define which type each VF gets,
//! persist it in `/etc/hostdev/vgpu.d/`, and restore in order at boot — enable
//! the VFs, wait (bounded) until the driver has set them up, then write the
//! types.
//!
//! Owns: those operations, generic over [`SriovSysfs`]. Must not: print.

use crate::{CoreError, DeviceOutcome};
use hostdev_model::vgpu::{resolve_type, PciAddress, SriovDefinition, Start, VgpuDefinition};
use hostdev_store::{HostLock, JsonDir, LoadProblem};
use hostdev_sysfs::sriov::{PfInfo, SriovSysfs, VfInfo};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
    lock_path: PathBuf,
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

fn vgpu_err(vf: &impl ToString, why: impl Into<String>) -> CoreError {
    CoreError::Vgpu {
        vf: vf.to_string(),
        why: why.into(),
    }
}

impl<V: SriovSysfs> Vgpus<V> {
    /// vGPUs of the host whose files live under `root`.
    pub fn new(sriov: V, root: &Path) -> Self {
        Vgpus {
            sriov,
            defs: JsonDir::new(root, "etc/hostdev/vgpu.d"),
            pf_defs: JsonDir::new(root, "etc/hostdev/sriov.d"),
            vf_timeout: Duration::from_secs(30),
            lock_path: HostLock::path_under(root),
        }
    }

    fn lock(&self) -> Result<HostLock, CoreError> {
        Ok(HostLock::acquire(&self.lock_path)?)
    }

    /// Every PF with its VFs.
    pub fn inventory(
        &self,
        pf: Option<&PciAddress>,
    ) -> Result<Vec<(PfInfo, Vec<VfInfo>)>, CoreError> {
        let mut out = Vec::new();
        for p in self.sriov.pfs()? {
            if pf.is_some_and(|want| want != &p.address) {
                continue;
            }
            let vfs = self.sriov.vfs(&p.address)?;
            out.push((p, vfs));
        }
        Ok(out)
    }

    fn find_vf(&self, vf: &PciAddress) -> Result<VfInfo, CoreError> {
        for (_, vfs) in self.inventory(None)? {
            if let Some(v) = vfs.into_iter().find(|v| &v.address == vf) {
                return Ok(v);
            }
        }
        Err(vgpu_err(
            vf,
            "no such VF (are the VFs of its PF enabled? see `hostdevctl vgpu enable`)",
        ))
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

    /// Defines the type of a VF (or of a free VF hostdev picks on `pf`).
    pub fn define(
        &self,
        vf: Option<&PciAddress>,
        pf: Option<&PciAddress>,
        type_input: &str,
        auto: bool,
    ) -> Result<VgpuDefinition, CoreError> {
        let lock = self.lock()?;
        let (defined, _) = self.defs.load_all()?;
        let taken = |a: &PciAddress| defined.iter().any(|(_, d)| &d.vf == a);
        let v = match (vf, pf) {
            (Some(vf), _) => {
                if taken(vf) {
                    return Err(vgpu_err(vf, "it is already defined; undefine it first"));
                }
                self.find_vf(vf)?
            }
            (None, Some(pf)) => {
                if self.sriov.pf(pf)?.is_none() {
                    return Err(vgpu_err(pf, "no such SR-IOV PF"));
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
                        vgpu_err(
                            pf,
                            format!("no free VF of this PF can take type {type_input}"),
                        )
                    })?
            }
            (None, None) => return Err(vgpu_err(&"?", "give --vf or --pf")),
        };
        if !v.ready {
            return Err(vgpu_err(
                &v.address,
                "the driver has not set this VF up yet (no nvidia/ directory)",
            ));
        }
        let t = resolve_type(&v.creatable, type_input).ok_or_else(|| {
            let names: Vec<String> = v.creatable.iter().map(|t| format!("{} ({})", t.id, t.name)).collect();
            vgpu_err(
                &v.address,
                if v.current != 0 {
                    format!("it already carries type {}; stop it before defining another", v.current)
                } else {
                    format!("type {type_input} is not creatable on this card now (ids are card-local); creatable: {}", if names.is_empty() { "none".into() } else { names.join(", ") })
                },
            )
        })?;
        let d = VgpuDefinition {
            vf: v.address.clone(),
            pf: v.pf.clone(),
            vf_index: v.index,
            type_id: t.id,
            type_name: t.name.clone(),
            start: if auto { Start::Auto } else { Start::Manual },
        };
        self.defs.save(&lock, v.address.as_str(), &d)?;
        Ok(d)
    }

    /// Removes a VF's definition.
    pub fn undefine(&self, vf: &PciAddress) -> Result<(), CoreError> {
        let lock = self.lock()?;
        if self.defs.load(vf.as_str())?.is_none() && !self.defs.path_of(vf.as_str()).exists() {
            return Err(vgpu_err(vf, "it is not defined"));
        }
        Ok(self.defs.remove(&lock, vf.as_str())?)
    }

    /// Configures a defined VF with its type.
    pub fn start(&self, vf: &PciAddress) -> Result<DeviceOutcome, CoreError> {
        let d = self
            .defs
            .load(vf.as_str())?
            .ok_or_else(|| vgpu_err(vf, "it is not defined"))?;
        let v = self.find_vf(vf)?;
        self.apply(&d, &v)
    }

    fn apply(&self, d: &VgpuDefinition, v: &VfInfo) -> Result<DeviceOutcome, CoreError> {
        if v.current == d.type_id {
            return Ok(DeviceOutcome::AlreadyRunning);
        }
        if v.current != 0 {
            return Err(vgpu_err(
                &d.vf,
                format!(
                    "it carries type {} instead of {}; stop it first",
                    v.current, d.type_id
                ),
            ));
        }
        // The stored id is this card's; check the driver still means the same
        // name by it, and follow a renumbering within this card's own list.
        let id = match v.creatable.iter().find(|t| t.id == d.type_id) {
            Some(t) if t.name == d.type_name => t.id,
            _ => match v.creatable.iter().find(|t| t.name == d.type_name) {
                Some(t) => t.id,
                None => {
                    return Err(vgpu_err(
                        &d.vf,
                        format!(
                            "type {} ({}) is not creatable on this card now",
                            d.type_id, d.type_name
                        ),
                    ))
                }
            },
        };
        self.sriov.set_type(&d.vf, id)?;
        Ok(DeviceOutcome::Started)
    }

    /// Clears a VF's type (refused by the driver while a VM uses it).
    pub fn stop(&self, vf: &PciAddress) -> Result<(), CoreError> {
        let v = self.find_vf(vf)?;
        if v.current == 0 {
            return Err(vgpu_err(vf, "it carries no vGPU type"));
        }
        self.sriov.set_type(vf, 0).map_err(|e| match &e {
            hostdev_sysfs::sriov::SriovError::SetType { source, .. }
                if source.raw_os_error() == Some(16) =>
            {
                vgpu_err(vf, "it is in use (a VM holds it); stop the VM first")
            }
            _ => e.into(),
        })
    }

    /// Defines how many VFs a PF should have, and sets it now.
    pub fn enable(&self, pf: &PciAddress, numvfs: u32, auto: bool) -> Result<(), CoreError> {
        let lock = self.lock()?;
        let info = self
            .sriov
            .pf(pf)?
            .ok_or_else(|| vgpu_err(pf, "no such SR-IOV PF"))?;
        if numvfs > info.total_vfs {
            return Err(vgpu_err(
                pf,
                format!("it has at most {} VFs", info.total_vfs),
            ));
        }
        let d = SriovDefinition {
            pf: pf.clone(),
            numvfs,
            start: if auto { Start::Auto } else { Start::Manual },
        };
        self.pf_defs.save(&lock, pf.as_str(), &d)?;
        if info.num_vfs != numvfs {
            if info.num_vfs != 0 {
                return Err(vgpu_err(pf, format!("it has {} VFs enabled; the kernel changes the count only through 0, which would remove their vGPUs", info.num_vfs)));
            }
            self.sriov.set_num_vfs(pf, numvfs)?;
        }
        Ok(())
    }

    /// Restores every auto definition: per PF (in parallel), enable the VFs,
    /// wait for them, then set the types in VF order. PFs that are absent are
    /// waited for up to `wait`.
    pub fn restore(&self, wait: Duration) -> Result<(Restored, Vec<LoadProblem>), CoreError> {
        let (defs, mut problems) = self.defs.load_all()?;
        let (pf_defs, p2) = self.pf_defs.load_all()?;
        problems.extend(p2);
        let mut plan: BTreeMap<PciAddress, (u32, Vec<VgpuDefinition>)> = BTreeMap::new();
        for (_, d) in pf_defs.into_iter().filter(|(_, d)| d.start == Start::Auto) {
            plan.entry(d.pf.clone()).or_default().0 = d.numvfs;
        }
        for (_, d) in defs.into_iter().filter(|(_, d)| d.start == Start::Auto) {
            let e = plan.entry(d.pf.clone()).or_default();
            e.0 = e.0.max(d.vf_index + 1);
            e.1.push(d);
        }
        let results: Vec<Restored> = std::thread::scope(|s| {
            let hs: Vec<_> = plan
                .iter()
                .map(|(pf, (n, ds))| s.spawn(move || self.restore_pf(pf, *n, ds, wait)))
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap_or_default())
                .collect()
        });
        Ok((results.into_iter().flatten().collect(), problems))
    }

    fn restore_pf(
        &self,
        pf: &PciAddress,
        needed: u32,
        defs: &[VgpuDefinition],
        wait: Duration,
    ) -> Restored {
        let all = |o: &dyn Fn() -> DeviceOutcome| {
            defs.iter()
                .map(|d| (pf.clone(), d.vf.clone(), o()))
                .collect::<Vec<_>>()
        };
        let deadline = Instant::now() + wait;
        let mut pause = Duration::from_millis(5);
        // 1. The PF (its driver may still be loading).
        let info = loop {
            match self.sriov.pf(pf) {
                Ok(Some(i)) => break i,
                Ok(None) if Instant::now() < deadline => {}
                Ok(None) => return all(&|| DeviceOutcome::ParentAbsent),
                Err(e) => {
                    let msg = e.to_string();
                    return all(&|| DeviceOutcome::Failed(vgpu_err(pf, msg.clone())));
                }
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(200));
        };
        // 2. Enough VFs.
        if info.num_vfs == 0 && needed > 0 {
            if let Err(e) = self.sriov.set_num_vfs(pf, needed) {
                let msg = e.to_string();
                return all(&|| DeviceOutcome::Failed(vgpu_err(pf, msg.clone())));
            }
        } else if info.num_vfs < needed {
            let msg = format!(
                "{} VFs are enabled but {needed} are needed; the count changes only through 0",
                info.num_vfs
            );
            return all(&|| DeviceOutcome::Failed(vgpu_err(pf, msg.clone())));
        }
        // 3. Wait until the driver has set the needed VFs up (nvidia/ exists).
        let vf_deadline = Instant::now() + self.vf_timeout;
        let mut pause = Duration::from_millis(2);
        let vfs = loop {
            let vfs = self.sriov.vfs(pf).unwrap_or_default();
            let ready = defs
                .iter()
                .all(|d| vfs.iter().any(|v| v.address == d.vf && v.ready));
            if ready || Instant::now() >= vf_deadline {
                break vfs;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(100));
        };
        // 4. Types, in VF order.
        let mut ordered: Vec<&VgpuDefinition> = defs.iter().collect();
        ordered.sort_by_key(|d| d.vf_index);
        let mut out = Vec::new();
        for d in ordered {
            // Re-read: each type taken lowers what the others can take.
            let current = self.sriov.vfs(pf).unwrap_or_else(|_| vfs.clone());
            let outcome = match current.iter().find(|v| v.address == d.vf) {
                Some(v) if v.ready => match self.apply(d, v) {
                    Ok(o) => o,
                    Err(e) => DeviceOutcome::Failed(e),
                },
                Some(_) => DeviceOutcome::Failed(vgpu_err(
                    &d.vf,
                    format!(
                        "the driver did not set the VF up within {:?}",
                        self.vf_timeout
                    ),
                )),
                None => DeviceOutcome::Failed(vgpu_err(&d.vf, "the VF did not appear")),
            };
            out.push((pf.clone(), d.vf.clone(), outcome));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostdev_sysfs::sriov::FakeSriov;

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

    #[test]
    fn restore_enables_vfs_first_then_sets_types_in_vf_order() {
        let (_t, v) = vgpus();
        v.sriov.set_num_vfs(&a("0000:41:00.0"), 4).unwrap();
        v.define(Some(&a("0000:41:00.6")), None, "NVIDIA L40S-4Q", true)
            .unwrap();
        v.define(Some(&a("0000:41:00.4")), None, "1151", true)
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
            .define(Some(&a("0000:41:00.4")), None, "1428", false)
            .unwrap_err();
        assert!(e.to_string().contains("card-local"), "{e}");
        // 1150 means different types on the two cards.
        assert_eq!(
            v.define(Some(&a("0000:41:00.4")), None, "1150", false)
                .unwrap()
                .type_name,
            "NVIDIA L40S-4Q"
        );
        assert_eq!(
            v.define(Some(&a("0000:c1:00.4")), None, "1150", false)
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
            .define(None, Some(&a("0000:81:00.0")), "NVIDIA L40S-8Q", true)
            .unwrap();
        assert_eq!(d.vf, a("0000:81:00.4"));
        let d2 = v
            .define(None, Some(&a("0000:81:00.0")), "NVIDIA L40S-8Q", true)
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
