//! Preparing and unpreparing a claim's devices, keyed by the claim's UID.
//!
//! A prepare holds the DRA lock throughout: it first undoes whatever a dead
//! process left in transit (a `preparing` record: the devices it names are
//! removed where they exist, then the record; an `unpreparing` one is
//! finished the same way), answers again what a `prepared` record holds
//! (the kubelet retries), and otherwise resolves each allocated name against
//! what the node offers now, records every device it is about to make
//! (`preparing`), makes them (an mdev whose UUID is derived from the claim
//! UID, request and device, so a crash's leftover is found; a VF's vGPU
//! type), and records them `prepared`. A failure removes what this call made
//! and the record. Unprepare records `unpreparing`, removes exactly what the
//! record names and nothing else, then forgets the record.
//!
//! Owns: those steps. Must not: decide what is offered (publish.rs does).

use super::publish::{Plan, Scope};
use super::record::{self, Entry, Made, Record, Stage};
use super::{DraError, MAX_CLAIM_DEVICES};
use crate::Interfaces;
use crate::{CoreError, Devices};
use hostdev_api::dra::is_dns_label;
use hostdev_api::{
    DraClaim, DraClaimRow, DraDeviceConfig, DraNode, DraPrepareRequest, DraPrepared,
    DraPreparedDevice, DraUnprepared, DraValue, Kind,
};
use hostdev_model::vdpa::{MacAddr, VdpaName, VdpaValueError};
use hostdev_model::{MdevConfig, StartPolicy, Uuid};
use hostdev_sysfs::sriov::SriovSysfs;
use hostdev_sysfs::MdevSysfs;
use hostdev_vdpa::VdpaClient;
use hostdev_vfio::Target;
use std::collections::BTreeMap;

/// A request name: a DNS label, or `request/subrequest` (firstAvailable).
fn request_ok(r: &str) -> bool {
    let mut parts = r.split('/');
    let ok = parts.next().is_some_and(is_dns_label);
    let sub = parts.next().is_none_or(is_dns_label);
    ok && sub && parts.next().is_none()
}

/// Refuses a device configuration that is malformed or does not apply to
/// the device: a MAC must be a unicast address (not multicast, broadcast or
/// all zeros), and an mdev or a VF's vGPU takes no MAC, MTU or queues.
fn check_config(device: &str, plan: &Plan, c: &DraDeviceConfig) -> Result<(), CoreError> {
    let refuse = |why: String| -> CoreError {
        DraError::BadConfig {
            device: device.to_string(),
            why,
        }
        .into()
    };
    if let Some(m) = &c.mac {
        if m.len() > 17 {
            return Err(refuse(format!("a MAC of {} bytes is no MAC", m.len())));
        }
        let mac: MacAddr = m
            .parse()
            .map_err(|e: VdpaValueError| refuse(e.to_string()))?;
        if mac.0[0] & 1 == 1 {
            return Err(refuse(format!(
                "MAC {mac} is a multicast address; a device needs a unicast one"
            )));
        }
        if mac.0 == [0; 6] {
            return Err(refuse("MAC 00:00:00:00:00:00 is no address".into()));
        }
    }
    if c.mtu.is_some_and(|m| m < 68) {
        return Err(refuse(format!(
            "MTU {} is below IPv4's least (68)",
            c.mtu.unwrap_or_default()
        )));
    }
    if c.queues == Some(0) {
        return Err(refuse("0 queue pairs".into()));
    }
    if !c.is_empty() {
        let what = match plan {
            Plan::Mdev { .. } => "an mdev",
            Plan::Vgpu { .. } => "a VF's vGPU",
            Plan::Vdpa { .. } => return Ok(()),
        };
        return Err(refuse(format!(
            "it is {what}, which takes no MAC, MTU or queues (they apply to vDPA network devices)"
        )));
    }
    Ok(())
}

fn claim_words(c: &DraClaim) -> String {
    if c.name.is_empty() {
        c.uid.to_string()
    } else {
        format!("{}/{} ({})", c.namespace, c.name, c.uid)
    }
}

impl<K: Interfaces> Devices<K> {
    /// Prepares the claim's allocated devices (idempotent).
    pub fn dra_prepare(&self, req: &DraPrepareRequest) -> Result<DraPrepared, CoreError> {
        let who = claim_words(&req.claim);
        if req.devices.len() > MAX_CLAIM_DEVICES {
            return Err(DraError::TooMany {
                claim: who,
                count: req.devices.len(),
                max: MAX_CLAIM_DEVICES,
            }
            .into());
        }
        for a in &req.devices {
            if !request_ok(&a.request) {
                return Err(DraError::BadName {
                    what: "request name",
                    value: a.request.clone(),
                }
                .into());
            }
            if !is_dns_label(&a.device) {
                return Err(DraError::BadName {
                    what: "device name",
                    value: a.device.clone(),
                }
                .into());
            }
        }
        let _dra = super::dra_lock(&self.root)?;
        let others = self.dra_recover();
        let asked: Vec<(String, String)> = req
            .devices
            .iter()
            .map(|a| (a.request.clone(), a.device.clone()))
            .collect();
        let mut own = record::load(&self.root, &req.claim.uid)?;
        if let Some(r) = own.as_ref().filter(|r| r.stage != Stage::Prepared) {
            // This claim's own record recovery could not finish: try again,
            // and say why to this claim's caller (and no other's).
            self.unmake_all(r)?;
            record::forget(&self.root, &req.claim.uid)?;
            own = None;
        }
        let others: Vec<Record> = others
            .into_iter()
            .filter(|r| r.claim.uid != req.claim.uid)
            .collect();
        if let Some(r) = own {
            let had: Vec<(String, String)> = r
                .devices
                .iter()
                .map(|e| (e.request.clone(), e.device.clone()))
                .collect();
            if had == asked {
                // The kubelet asks again after a restart, a node's reboot
                // among them: what the record says was made and is gone
                // (the kernel forgot it) is made again, the same device.
                self.remake_missing(&r, &who)?;
                return self
                    .answer(&r, true)
                    .and_then(|a| self.check_nodes(&who, a));
            }
            return Err(DraError::Reallocated {
                claim: who,
                had: had
                    .iter()
                    .map(|(_, d)| d.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }
            .into());
        }
        // Devices other claims hold.
        let mut held: BTreeMap<&str, &DraClaim> = BTreeMap::new();
        for r in &others {
            for e in &r.devices {
                held.insert(e.device.as_str(), &r.claim);
            }
        }
        // Only the parents and PFs these names can be on are looked at.
        let names: Vec<&str> = req.devices.iter().map(|a| a.device.as_str()).collect();
        let offer = self.dra_offer(Scope::Names(&names), &others, Vec::new())?;
        let mut entries = Vec::new();
        for a in &req.devices {
            if let Some(c) = held.get(a.device.as_str()) {
                return Err(DraError::Taken {
                    device: a.device.clone(),
                    other: claim_words(c),
                }
                .into());
            }
            let plan = offer
                .plans
                .get(&a.device)
                .ok_or_else(|| DraError::UnknownDevice {
                    device: a.device.clone(),
                })?;
            if let Some(c) = &a.config {
                check_config(&a.device, plan, c)?;
            }
            let made = match plan {
                Plan::Mdev { parent, mdev_type } => Made::Mdev {
                    uuid: Uuid::stable(&format!(
                        "dra/{}/{}/{}",
                        req.claim.uid, a.request, a.device
                    )),
                    parent: parent.clone(),
                    mdev_type: mdev_type.clone(),
                },
                Plan::Vgpu {
                    vf,
                    type_id,
                    type_name,
                } => Made::Vgpu {
                    vf: vf.clone(),
                    type_id: *type_id,
                    type_name: type_name.clone(),
                },
                Plan::Vdpa { template, slot } => {
                    let id =
                        Uuid::stable(&format!("dra/{}/{}/{}", req.claim.uid, a.request, a.device));
                    let mut config = template.config(*slot);
                    if let Some(c) = &a.config {
                        // Checked above: a MAC that parses, an MTU in range.
                        if let Some(m) = c.mac.as_deref().and_then(|m| m.parse().ok()) {
                            config.mac = Some(m);
                        }
                        config.mtu = c.mtu.or(config.mtu);
                        config.max_vqp = c.queues.or(config.max_vqp);
                    }
                    Made::Vdpa {
                        name: VdpaName::new(format!("dra-{id}")).map_err(|e| {
                            DraError::BadConfig {
                                device: a.device.clone(),
                                why: e.to_string(),
                            }
                        })?,
                        mgmtdev: template.mgmtdev.clone(),
                        config,
                    }
                }
            };
            entries.push(Entry {
                request: a.request.clone(),
                device: a.device.clone(),
                made,
            });
        }
        let mut rec = Record {
            claim: req.claim.clone(),
            stage: Stage::Preparing,
            devices: entries,
        };
        record::save(&self.root, &rec)?;
        for (i, e) in rec.devices.iter().enumerate() {
            if let Err(source) = self.make(&e.made) {
                // Undo this call's devices, newest first (the failed one
                // too, which may be half made — not a VF found busy: its
                // type is someone else's), then the record; a device that
                // will not go keeps the record `preparing`, so the next
                // call's recovery tries again and nothing is left unowned.
                let busy = matches!(source, CoreError::Dra(DraError::VfBusy { .. }));
                let mut clean = true;
                for done in rec.devices[..i].iter().rev() {
                    clean &= self.unmake(&done.made).is_ok();
                }
                if !busy {
                    clean &= self.unmake(&e.made).is_ok();
                }
                if clean {
                    record::forget(&self.root, &req.claim.uid)?;
                }
                return Err(DraError::Create {
                    claim: who,
                    device: e.device.clone(),
                    source: Box::new(source),
                }
                .into());
            }
        }
        rec.stage = Stage::Prepared;
        record::save(&self.root, &rec)?;
        self.answer(&rec, false)
            .and_then(|a| self.check_nodes(&who, a))
    }

    /// On the host itself (no root prefix), every node of the answer must be
    /// a character device here, and a VFIO device must have its group's
    /// node and a vDPA device its vhost-vdpa node: the driver, in its
    /// container, does not see the host's `/dev`. The record stays
    /// prepared, so unprepare removes what was made. Under a root prefix
    /// (the simulated lab, which has no `/dev`) nothing is checked.
    fn check_nodes(&self, who: &str, ans: DraPrepared) -> Result<DraPrepared, CoreError> {
        if !(self.root.as_os_str().is_empty() || self.root == std::path::Path::new("/")) {
            return Ok(ans);
        }
        for d in &ans.devices {
            let missing = |what: String| -> CoreError {
                DraError::NodeMissing {
                    claim: who.to_string(),
                    device: d.device.clone(),
                    what,
                }
                .into()
            };
            match d.kind {
                Kind::Mdev | Kind::Vgpu if d.nodes.len() < 2 => {
                    return Err(missing(format!("the VFIO group node of {}", d.id)));
                }
                Kind::Vdpa if d.nodes.is_empty() => {
                    return Err(missing(format!(
                        "the vhost-vdpa node of {} (is it bound to vhost_vdpa?)",
                        d.id
                    )));
                }
                _ => {}
            }
            for n in &d.nodes {
                let ok = std::fs::metadata(&n.host_path).is_ok_and(|m| {
                    use std::os::unix::fs::FileTypeExt;
                    m.file_type().is_char_device()
                });
                if !ok {
                    return Err(missing(n.host_path.clone()));
                }
            }
        }
        Ok(ans)
    }

    /// Makes again each device of a `prepared` record that is not there
    /// (a reboot took it); the record stays `prepared` throughout, so a
    /// crash part way leaves what the next ask finishes. A failure removes
    /// what this call made again, and the record stays for the next ask.
    fn remake_missing(&self, rec: &Record, who: &str) -> Result<(), CoreError> {
        let mut remade: Vec<&Made> = Vec::new();
        for e in &rec.devices {
            if self.present(&e.made)? {
                continue;
            }
            if let Err(source) = self.make(&e.made) {
                for m in remade.iter().rev() {
                    let _ = self.unmake(m);
                }
                return Err(DraError::Create {
                    claim: who.to_string(),
                    device: e.device.clone(),
                    source: Box::new(source),
                }
                .into());
            }
            remade.push(&e.made);
        }
        Ok(())
    }

    /// Whether a made device is there as it was made.
    fn present(&self, m: &Made) -> Result<bool, CoreError> {
        match m {
            Made::Mdev { uuid, .. } => Ok(self
                .mdev
                .sysfs
                .device(uuid)
                .map_err(CoreError::inventory)?
                .is_some()),
            Made::Vgpu { vf, type_id, .. } => {
                let pf = self.vf_pf(vf)?;
                Ok(self
                    .vgpu
                    .sriov
                    .vfs(&pf)?
                    .iter()
                    .any(|v| &v.address == vf && v.current == *type_id))
            }
            Made::Vdpa { name, .. } => Ok(self.vdpa.client()?.dev(name)?.is_some()),
        }
    }

    /// Removes what prepare made for the claim (idempotent).
    pub fn dra_unprepare(&self, claim: &DraClaim) -> Result<DraUnprepared, CoreError> {
        let _dra = super::dra_lock(&self.root)?;
        self.dra_recover();
        let Some(mut rec) = record::load(&self.root, &claim.uid)? else {
            return Ok(DraUnprepared::default());
        };
        rec.stage = Stage::Unpreparing;
        record::save(&self.root, &rec)?;
        let removed = self.unmake_all(&rec)?;
        record::forget(&self.root, &claim.uid)?;
        Ok(DraUnprepared { removed })
    }

    /// Every prepared claim with its devices, and every claim whose
    /// unprepare is unfinished (a device held through VFIO, a removal that
    /// failed): the driver's sweep of claims the apiserver no longer has
    /// tries those again, and removes their files once it succeeds.
    pub fn dra_claims(&self) -> Result<Vec<DraClaimRow>, CoreError> {
        let (records, _) = record::load_all(&self.root);
        records
            .iter()
            .filter(|r| r.stage != Stage::Preparing)
            .map(|r| {
                Ok(DraClaimRow {
                    claim: r.claim.clone(),
                    devices: self.answer(r, true)?.devices,
                })
            })
            .collect()
    }

    /// The ids (mdev UUIDs, VF addresses, vDPA names) of the devices the
    /// claims' records name, in any stage: DRA makes them without
    /// definitions, as pools do, so hostdevd does not call them drift. An
    /// unreadable record names nothing (`dra_claims` and the health report
    /// say so).
    pub fn dra_owned(&self) -> std::collections::BTreeSet<String> {
        let (records, _) = record::load_all(&self.root);
        records
            .iter()
            .flat_map(|r| r.devices.iter().map(|e| e.made.id()))
            .collect()
    }

    /// Undoes every record a dead process (or a removal that failed) left
    /// in transit; the records left: every `prepared` one, and those whose
    /// devices would not go (they stay held, and are tried again by the
    /// next call). The caller holds the DRA lock, so no live process owns a
    /// record in transit. One claim's stuck device never fails another
    /// claim's call: its own prepare or unprepare says why.
    pub(crate) fn dra_recover(&self) -> Vec<Record> {
        let (records, _) = record::load_all(&self.root);
        let mut kept = Vec::with_capacity(records.len());
        for r in records {
            if r.stage == Stage::Prepared
                || self.unmake_all(&r).is_err()
                || record::forget(&self.root, &r.claim.uid).is_err()
            {
                kept.push(r);
            }
        }
        kept
    }

    /// Removes every device a record names that exists; their ids.
    fn unmake_all(&self, rec: &Record) -> Result<Vec<String>, CoreError> {
        let mut removed = Vec::new();
        for e in rec.devices.iter().rev() {
            match self.unmake(&e.made) {
                Ok(true) => removed.push(e.made.id()),
                Ok(false) => {}
                Err(source) => {
                    return Err(DraError::Remove {
                        claim: claim_words(&rec.claim),
                        id: e.made.id(),
                        source: Box::new(source),
                    }
                    .into())
                }
            }
        }
        removed.reverse();
        Ok(removed)
    }

    fn make(&self, m: &Made) -> Result<(), CoreError> {
        match m {
            Made::Mdev {
                uuid,
                parent,
                mdev_type,
            } => {
                let mut config = MdevConfig::new(mdev_type.clone());
                config.start = StartPolicy::Manual;
                self.mdev.start_device(uuid, parent, &config)
            }
            Made::Vgpu { vf, type_id, .. } => {
                if self.vgpu.defs.exists(vf.as_str()) {
                    return Err(DraError::VfBusy {
                        vf: vf.to_string(),
                        why: "it has a vGPU definition".into(),
                    }
                    .into());
                }
                let pf = self.vf_pf(vf)?;
                let v = self
                    .vgpu
                    .sriov
                    .vfs(&pf)?
                    .into_iter()
                    .find(|v| &v.address == vf)
                    .ok_or_else(|| DraError::VfBusy {
                        vf: vf.to_string(),
                        why: "it is gone".into(),
                    })?;
                if v.current != 0 {
                    return Err(DraError::VfBusy {
                        vf: vf.to_string(),
                        why: format!("it runs vGPU type {}", v.current),
                    }
                    .into());
                }
                Ok(self.vgpu.sriov.set_type(vf, *type_id)?)
            }
            Made::Vdpa {
                name,
                mgmtdev,
                config,
            } => self.vdpa.add(name, mgmtdev, config),
        }
    }

    /// Refuses to go on when `target` is held through VFIO: removing an
    /// mdev or clearing a VF's type while its VFIO device is open makes the
    /// kernel wait for its user ("device is currently in use, task
    /// blocked"), and this process would wait as long with the DRA lock
    /// held, every other claim behind it.
    fn refuse_if_held(&self, target: Target) -> Result<(), CoreError> {
        match self.vfio.held(&target) {
            Some(group) => Err(DraError::Held {
                id: target.name(),
                by: format!("VFIO group {group}"),
            }
            .into()),
            None => Ok(()),
        }
    }

    /// Removes a made device; `false` when it was not there. One held
    /// through VFIO ([`Self::refuse_if_held`]) or through its vhost-vdpa
    /// node (`VdpaClient::held`) is refused first.
    fn unmake(&self, m: &Made) -> Result<bool, CoreError> {
        match m {
            Made::Mdev { uuid, .. } => {
                if self
                    .mdev
                    .sysfs
                    .device(uuid)
                    .map_err(CoreError::inventory)?
                    .is_none()
                {
                    return Ok(false);
                }
                self.refuse_if_held(Target::Mdev(*uuid))?;
                self.mdev.stop(uuid).map(|_| true)
            }
            Made::Vgpu { vf, type_id, .. } => {
                // Gone only when no PF lists it; a failed read is an error,
                // not a VF that went (its type would stay set, unowned).
                let pf = match self.vf_pf(vf) {
                    Ok(pf) => pf,
                    Err(CoreError::Dra(DraError::VfBusy { .. })) => return Ok(false),
                    Err(e) => return Err(e),
                };
                let current = self
                    .vgpu
                    .sriov
                    .vfs(&pf)?
                    .into_iter()
                    .find(|v| &v.address == vf)
                    .map(|v| v.current);
                // Only the type this claim set is cleared.
                if current != Some(*type_id) {
                    return Ok(false);
                }
                self.refuse_if_held(Target::Pci(vf.clone()))?;
                self.vgpu.sriov.set_type(vf, 0)?;
                Ok(true)
            }
            Made::Vdpa { name, .. } => {
                let client = self.vdpa.client()?;
                if client.dev(name)?.is_none() {
                    return Ok(false);
                }
                // The kernel's removal waits for the vhost-vdpa node to be
                // closed, as VFIO's does for its device.
                if let Some(node) = client.held(name) {
                    return Err(DraError::Held {
                        id: name.as_str().to_string(),
                        by: format!("its vhost-vdpa node {node}"),
                    }
                    .into());
                }
                self.vdpa.del(name).map(|()| true)
            }
        }
    }

    fn vf_pf(
        &self,
        vf: &hostdev_model::pci::PciAddress,
    ) -> Result<hostdev_model::pci::PciAddress, CoreError> {
        // Its `physfn` (one link) where it has one; otherwise every vGPU
        // PF's VFs are read, so that a failed read is an error and not a
        // VF taken for gone.
        if let Some(pf) = self.vgpu.vgpu_pf_of(vf) {
            return Ok(pf);
        }
        for pf in self.vgpu.vgpu_pfs()? {
            if self
                .vgpu
                .sriov
                .vfs(&pf.address)?
                .iter()
                .any(|v| &v.address == vf)
            {
                return Ok(pf.address);
            }
        }
        Err(DraError::VfBusy {
            vf: vf.to_string(),
            why: "no PF lists it".into(),
        }
        .into())
    }

    /// The answer for a prepared record: device nodes and metadata;
    /// `again` when an earlier call had prepared it.
    fn answer(&self, rec: &Record, again: bool) -> Result<DraPrepared, CoreError> {
        let host = |p: &str| {
            self.root
                .join(p.trim_start_matches('/'))
                .to_string_lossy()
                .into_owned()
        };
        let node = |p: String| DraNode {
            host_path: host(&p),
            path: p,
        };
        let group = |dev: std::path::PathBuf| {
            std::fs::read_link(dev.join("iommu_group"))
                .ok()
                .and_then(|l| l.file_name().map(|n| n.to_string_lossy().into_owned()))
                .filter(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit()))
        };
        let mut devices = Vec::new();
        for e in &rec.devices {
            let mut nodes = vec![node("/dev/vfio/vfio".into())];
            let mut metadata = BTreeMap::new();
            let kind = match &e.made {
                Made::Mdev { uuid, .. } => {
                    let dir = self
                        .root
                        .join("sys/bus/mdev/devices")
                        .join(uuid.to_string());
                    if let Some(g) = group(dir) {
                        nodes.push(node(format!("/dev/vfio/{g}")));
                    }
                    metadata.insert("mdevUUID".into(), DraValue::String(uuid.to_string()));
                    Kind::Mdev
                }
                Made::Vgpu { vf, .. } => {
                    let dir = self.root.join("sys/bus/pci/devices").join(vf.as_str());
                    if let Some(g) = group(dir) {
                        nodes.push(node(format!("/dev/vfio/{g}")));
                    }
                    metadata.insert(
                        "resource.kubernetes.io/pciBusID".into(),
                        DraValue::String(vf.to_string()),
                    );
                    Kind::Vgpu
                }
                Made::Vdpa { name, config, .. } => {
                    // The vhost-vdpa character device instead of VFIO's.
                    nodes.clear();
                    let bound = self.vdpa.client()?.binding(name)?;
                    if let Some(dev) = bound.vhost_dev {
                        nodes.push(node(dev));
                    }
                    metadata.insert(
                        "vdpaDevice".into(),
                        DraValue::String(name.as_str().to_string()),
                    );
                    if let Some(m) = config.mac {
                        metadata.insert("mac".into(), DraValue::String(m.to_string()));
                    }
                    Kind::Vdpa
                }
            };
            devices.push(DraPreparedDevice {
                request: e.request.clone(),
                device: e.device.clone(),
                kind,
                id: e.made.id(),
                nodes,
                metadata,
            });
        }
        Ok(DraPrepared {
            uid: rec.claim.uid,
            devices,
            again,
        })
    }
}
