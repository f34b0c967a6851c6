//! Probes: opening a device as QEMU does and reporting what it answers; a
//! type probed through a transient device; the cache of answers.
//!
//! Owns: naming the device's kind, parent, type and driver (through the
//! sysfs traits), asking the VFIO interface, the probe cache (an answer per
//! parent and type, kept while the driver, its module's versions and the
//! kernel read the same), and the markers of transient probe devices
//! (`/run/hostdev/probes/UUID`, made and locked before the device is made
//! and held while the probe lives, so the next type probe removes what a
//! killed one left and leaves a running one's alone). Must not: open anything
//! itself (hostdev-vfio does), or keep a device open.

use crate::Interfaces;
use crate::{CoreError, Devices, Locker};
use crate::{MdevError, MigrateError};
use hostdev_api::{
    CachedNote, Kind, ProbeQuery, ProbeReport, ProbeTarget, ProbeTypeRequest, StartRequest,
};
use hostdev_model::probe::CachedProbe;
use hostdev_model::{ParentName, TypeId, Uuid};
use hostdev_store::{ProbeCacheStore, ProbeMarkers};
use hostdev_sysfs::sriov::PciSriov;
use hostdev_sysfs::MdevSysfs;
use hostdev_vfio::{Target, VfioError};

impl<K: Interfaces> Devices<K> {
    /// Opens the device, asks, closes. An mdev whose group is held (a VM
    /// runs it) gets the cached answer for its type, driver and kernel, with
    /// its age; without one the refusal stands.
    pub fn probe(&self, q: &ProbeQuery) -> Result<ProbeReport, CoreError> {
        match &q.device {
            ProbeTarget::Mdev(u) => {
                let (parent, t) = self
                    .mdev
                    .running_parent(u)?
                    .ok_or(CoreError::from(MdevError::NotRunning { uuid: *u }))?;
                self.probe_running(u, &parent, &t)
            }
            ProbeTarget::Pci(a) => {
                let facts = self.vgpu.sriov.pf_facts(a);
                if facts.vendor.is_none() {
                    return Err(CoreError::from(MigrateError::NoPciDevice {
                        address: a.as_str().to_string(),
                    }));
                }
                let probe = self.vfio.probe(&Target::Pci(a.clone()))?;
                Ok(ProbeReport {
                    id: a.as_str().to_string(),
                    kind: None,
                    parent: None,
                    type_id: None,
                    driver: facts.driver,
                    identity: None,
                    probe,
                    cached: None,
                    warnings: Vec::new(),
                })
            }
        }
    }

    /// Probes a running mdev (the cached answer while a VM holds it).
    pub(crate) fn probe_running(
        &self,
        u: &Uuid,
        parent: &ParentName,
        t: &TypeId,
    ) -> Result<ProbeReport, CoreError> {
        let identity = self.mdev.sysfs.device_driver(u);
        let report = |probe, cached, warnings| ProbeReport {
            id: u.to_string(),
            kind: Some(Kind::Mdev),
            driver: identity.driver.clone(),
            parent: Some(parent.to_string()),
            type_id: Some(t.to_string()),
            identity: Some(identity.clone()),
            probe,
            cached,
            warnings,
        };
        let store = ProbeCacheStore::new(&self.root);
        match self.vfio.probe(&Target::Mdev(*u)) {
            Ok(probe) => {
                // The answer stands even where it cannot be kept.
                let kept = Locker::under(&self.root).lock().and_then(|lock| {
                    let mut cache = store.load();
                    cache.put(CachedProbe {
                        parent: parent.to_string(),
                        type_id: t.to_string(),
                        identity: identity.clone(),
                        probe: probe.clone(),
                        at: (self.clock)(),
                    });
                    Ok(store.save(&lock, &cache)?)
                });
                let warnings = match kept {
                    Ok(()) => Vec::new(),
                    Err(e) => vec![format!(
                        "the answer is not cached for when the device is busy: {}",
                        e.chain()
                    )],
                };
                Ok(report(probe, None, warnings))
            }
            Err(e @ VfioError::Busy { .. }) => {
                let cache = store.load();
                let Some(hit) = cache.get(parent.as_str(), t.as_str(), &identity) else {
                    return Err(e.into());
                };
                let age = (self.clock)().saturating_sub(hit.at).max(0) as u64;
                let why = format!(
                    "{e}; this is the answer for type {t} on {parent} from {age} s ago, \
                     under the same driver, module version and kernel"
                );
                Ok(report(
                    hit.probe.clone(),
                    Some(CachedNote {
                        at: hit.at,
                        age_secs: age,
                        why,
                    }),
                    Vec::new(),
                ))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Removes the transient devices earlier type probes left (killed
    /// between making and removing them), and their markers. A marker a
    /// live probe holds is left alone: two probes may run at once.
    fn clean_probe_leftovers(&self) -> Result<(), CoreError> {
        let orphans = {
            let lock = Locker::under(&self.root).lock()?;
            ProbeMarkers::under(&self.root).orphans(&lock)
        };
        for (u, marker) in orphans {
            if self.mdev.running_parent(&u)?.is_some() {
                match self.mdev.stop(&u) {
                    Ok(_) | Err(CoreError::Mdev(MdevError::NotRunning { .. })) => {}
                    Err(e) => return Err(e),
                }
            }
            marker.remove();
        }
        Ok(())
    }

    /// Makes a transient device of the type, probes it, removes it: nothing
    /// is left when the probe fails, and a marker written before the device
    /// is made lets the next type probe remove it if this process is killed.
    pub fn probe_type(&self, req: &ProbeTypeRequest) -> Result<ProbeReport, CoreError> {
        self.clean_probe_leftovers()?;
        let u = Uuid::new_v4();
        let marker = {
            let lock = Locker::under(&self.root).lock()?;
            ProbeMarkers::under(&self.root).hold(&lock, &u, req.parent.as_str())?
        };
        let made = self.mdev.start(&StartRequest {
            uuid: Some(u),
            parent: Some(req.parent.clone()),
            mdev_type: Some(req.mdev_type.clone()),
            config: None,
        });
        let r = match made {
            Ok(_) => {
                let r = self.probe_running(&u, &req.parent, &req.mdev_type);
                let gone = self.mdev.stop(&u);
                match (r, gone) {
                    (Ok(r), Ok(_)) => Ok(r),
                    (Err(e), _) | (Ok(_), Err(e)) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        // The marker goes once the device is gone (or was never made); if it
        // is not, the marker stays for the next type probe.
        if !matches!(self.mdev.running_parent(&u), Ok(Some(_))) {
            marker.remove();
        }
        r
    }
}
