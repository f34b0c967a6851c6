//! The kernel's state and its rules as typed operations: what a create,
//! remove, attribute write, `sriov_numvfs` write or `current_vgpu_type` write
//! does, what a parent's types have available, which vGPU types a VF can
//! take, and which injected fault fires.
//!
//! Owns: every rule and every errno. Must not: parse sysfs paths or text
//! (the path view does, then calls these).

use crate::errno::{self, EBUSY, EEXIST, EINVAL, ENOENT, ERANGE};
use crate::pci;
use crate::profile::{Effect, Fault, FaultOp, ParentProfile, Policy, Profile, SriovProfile};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// An errno number, as the kernel returns it from a write.
pub type Errno = i32;

#[derive(Debug, Clone)]
pub(crate) struct Device {
    pub(crate) parent: usize,
    pub(crate) type_idx: usize,
    pub(crate) attrs: BTreeMap<String, String>,
    pub(crate) group: u32,
    /// vfio-ap: assigned adapters, domains, control domains.
    pub(crate) ap: [Vec<u32>; 3],
    /// Looks at the driver that still find it unbound (`u32::MAX`: never bound).
    pub(crate) unbound_polls: u32,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Vf {
    pub(crate) current: u32,
    /// The driver bound to it.
    pub(crate) driver: Option<String>,
    /// `driver_override`.
    pub(crate) driver_override: Option<String>,
    /// Its IOMMU group (each VF its own, as on the lab's kernel).
    pub(crate) group: u32,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Pf {
    pub(crate) numvfs: u32,
    pub(crate) vfs: Vec<Vf>,
    pub(crate) vfs_since: Option<Instant>,
    /// Held back from view until told (a fake's late PF).
    pub(crate) hidden: bool,
    /// The PF driver was unbound.
    pub(crate) unbound: bool,
    /// `sriov_drivers_autoprobe` was set to 0.
    pub(crate) no_autoprobe: bool,
}

#[derive(Debug, Clone, Default)]
struct FaultCount {
    /// Matching operations seen (for `after`).
    seen: u32,
    /// Times fired (for `times`).
    fired: u32,
}

/// What a fired fault does.
enum Fired {
    Errno(Errno),
    Effect(Effect, u32),
}

/// A mediated device as the kernel lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceView {
    /// Its UUID (lower case).
    pub uuid: String,
    /// Its parent's name.
    pub parent: String,
    /// Its type id.
    pub type_id: String,
}

/// A PF as sysfs shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PfView {
    /// Its address.
    pub address: String,
    /// `sriov_totalvfs`.
    pub total_vfs: u32,
    /// `sriov_numvfs`.
    pub num_vfs: u32,
}

/// A VF as sysfs shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VfView {
    /// Its address (`virtfnN`'s target).
    pub address: String,
    /// N of `virtfnN`.
    pub index: u32,
    /// Its `nvidia/` directory exists.
    pub ready: bool,
    /// `current_vgpu_type` (0 = none).
    pub current: u32,
    /// `creatable_vgpu_types`: (id, name); empty once the VF has a type.
    pub creatable: Vec<(u32, String)>,
}

/// A rule deliberately broken, to show that the conformance suite catches a
/// model that strays from the kernel (never set outside that test).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutant {
    /// A count above `sriov_totalvfs` is `EBUSY` (what FakeSriov once said).
    RangeAsBusy,
    /// A shared-budget parent counts each type on its own (what the
    /// simulator's profile once said of mtty and mdpy).
    SharedAsPerType,
}

/// The modelled kernel.
#[derive(Debug)]
pub struct Kernel {
    mutants: Vec<Mutant>,
    pub(crate) profile: Profile,
    booted: Instant,
    pub(crate) devices: BTreeMap<String, Device>,
    pub(crate) pfs: Vec<Pf>,
    counts: Vec<FaultCount>,
    pub(crate) next_group: u32,
}

pub(crate) fn valid_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

impl Default for Kernel {
    fn default() -> Kernel {
        Kernel::new(Profile::default())
    }
}

impl Kernel {
    /// A freshly booted host with this profile.
    pub fn new(profile: Profile) -> Kernel {
        let n = profile.sriov.len();
        let f = profile.faults.len();
        Kernel {
            mutants: Vec::new(),
            profile,
            booted: Instant::now(),
            devices: BTreeMap::new(),
            pfs: vec![Pf::default(); n],
            counts: vec![FaultCount::default(); f],
            next_group: 10,
        }
    }

    /// What a reboot does: devices gone, VFs disabled, types cleared, late
    /// parents late again, fault counts from zero.
    pub fn reboot(&mut self) {
        let p = std::mem::take(&mut self.profile);
        *self = Kernel::new(p);
    }

    /// Breaks a rule on purpose (the conformance suite's own test).
    pub fn break_rule(&mut self, m: Mutant) {
        self.mutants.push(m);
    }

    /// The hardware this kernel models.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    // ---- hardware coming and going ----

    /// A parent registers (its driver loaded); replaces one of that name.
    pub fn add_parent(&mut self, parent: ParentProfile) {
        self.remove_parent(&parent.name);
        self.profile.parents.push(parent);
    }

    /// A parent unregisters; its devices go with it.
    pub fn remove_parent(&mut self, name: &str) {
        let Some(i) = self.profile.parents.iter().position(|p| p.name == name) else {
            return;
        };
        self.profile.parents.remove(i);
        self.devices.retain(|_, d| d.parent != i);
        for d in self.devices.values_mut() {
            if d.parent > i {
                d.parent -= 1;
            }
        }
    }

    /// A PF (present unless `hidden`, until [`Kernel::show_pf`]), with no
    /// VFs; replaces one at that address (what a reboot leaves of it).
    pub fn add_pf(&mut self, pf: SriovProfile, hidden: bool) {
        if let Some(i) = self
            .profile
            .sriov
            .iter()
            .position(|p| p.address == pf.address)
        {
            self.profile.sriov.remove(i);
            self.pfs.remove(i);
        }
        self.profile.sriov.push(pf);
        self.pfs.push(Pf {
            hidden,
            ..Pf::default()
        });
    }

    /// A hidden PF appears (its driver finished loading).
    pub fn show_pf(&mut self, address: &str) {
        if let Some(i) = self.profile.sriov.iter().position(|p| p.address == address) {
            self.pfs[i].hidden = false;
        }
    }

    /// The PF driver is unbound (`false`: its remove disables SR-IOV, the
    /// VFs go) or bound again (`true`).
    pub fn bind_pf_driver(&mut self, address: &str, bound: bool) {
        if let Some(i) = self.profile.sriov.iter().position(|p| p.address == address) {
            let p = &mut self.pfs[i];
            p.unbound = !bound;
            if !bound {
                p.numvfs = 0;
                p.vfs.clear();
                p.vfs_since = None;
            }
        }
    }

    /// Whether a PF's driver is bound (false for a PF the model lacks).
    pub fn pf_driver_bound(&self, address: &str) -> bool {
        self.profile
            .sriov
            .iter()
            .position(|p| p.address == address)
            .is_some_and(|i| !self.pfs[i].unbound)
    }

    /// Adds a row to the fault table.
    pub fn inject(&mut self, fault: Fault) {
        self.profile.faults.push(fault);
        self.counts.push(FaultCount::default());
    }

    /// Removes the rows `drop` picks (a device a VM let go of).
    pub fn clear_faults(&mut self, drop: impl Fn(&Fault) -> bool) {
        let mut keep = Vec::new();
        let mut counts = Vec::new();
        for (f, c) in self.profile.faults.drain(..).zip(self.counts.drain(..)) {
            if !drop(&f) {
                keep.push(f);
                counts.push(c);
            }
        }
        self.profile.faults = keep;
        self.counts = counts;
    }

    // ---- lookups ----

    pub(crate) fn up(&self, after_ms: u64) -> bool {
        self.booted.elapsed() >= Duration::from_millis(after_ms)
    }

    /// Index of a parent that is registered now.
    pub(crate) fn parent_idx(&self, name: &str) -> Option<usize> {
        self.profile
            .parents
            .iter()
            .position(|p| p.name == name)
            .filter(|&i| self.up(self.profile.parents[i].appear_after_ms))
    }

    pub(crate) fn type_idx(&self, parent: usize, type_id: &str) -> Option<usize> {
        self.profile.parents[parent]
            .types
            .iter()
            .position(|t| t.id == type_id)
    }

    /// Index of a PF that is present now.
    pub(crate) fn pf_idx(&self, addr: &str) -> Option<usize> {
        self.profile
            .sriov
            .iter()
            .position(|p| p.address == addr)
            .filter(|&i| !self.pfs[i].hidden && self.up(self.profile.sriov[i].appear_after_ms))
    }

    /// The address of VF `i` of PF `pf` (an index).
    pub(crate) fn vf_addr(&self, pf: usize, i: u32) -> Option<String> {
        let p = &self.profile.sriov[pf];
        pci::vf_address(&p.address, p.first_vf_offset, p.vf_stride, i)
    }

    /// (pf index, vf number) of a VF address that exists now: the address
    /// arithmetic run backwards per PF (a lookup costs the PFs, not the VFs).
    pub(crate) fn vf_of(&self, addr: &str) -> Option<(usize, usize)> {
        (0..self.profile.sriov.len())
            .filter(|&i| self.pf_idx(&self.profile.sriov[i].address).is_some())
            .find_map(|i| {
                let p = &self.profile.sriov[i];
                let v = pci::vf_index(&p.address, p.first_vf_offset, p.vf_stride, addr)?;
                (v < self.pfs[i].numvfs && self.vf_addr(i, v).as_deref() == Some(addr))
                    .then_some((i, v as usize))
            })
    }

    pub(crate) fn vf_ready(&self, pf: usize) -> bool {
        let p = &self.profile.sriov[pf];
        let ready = Duration::from_millis(p.vf_ready_ms);
        p.has_vgpu() && self.pfs[pf].vfs_since.is_some_and(|t| t.elapsed() >= ready)
    }

    /// `sriov_totalvfs` of PF `pf`: the driver's limit while one is bound,
    /// the capability's without.
    pub(crate) fn total_vfs(&self, pf: usize) -> u32 {
        let p = &self.profile.sriov[pf];
        if self.pfs[pf].unbound {
            p.cap_total_vfs.unwrap_or(p.total_vfs)
        } else {
            p.total_vfs
        }
    }

    /// Instances of type `t` parent `p` can still create.
    pub(crate) fn available_at(&self, p: usize, t: usize) -> u32 {
        let parent = &self.profile.parents[p];
        let on_parent = || self.devices.values().filter(|d| d.parent == p);
        match parent.policy {
            Policy::PerType => {
                let used = on_parent().filter(|d| d.type_idx == t).count() as u32;
                parent.types[t].max.saturating_sub(used)
            }
            Policy::OneType => {
                if on_parent().any(|d| d.type_idx != t) {
                    return 0;
                }
                let used = on_parent().count() as u32;
                parent.types[t].max.saturating_sub(used)
            }
            Policy::SharedBudget if self.mutants.contains(&Mutant::SharedAsPerType) => {
                let used = on_parent().filter(|d| d.type_idx == t).count() as u32;
                (parent.budget / parent.types[t].cost.max(1)).saturating_sub(used)
            }
            Policy::SharedBudget => {
                let used: u32 = on_parent()
                    .map(|d| parent.types[d.type_idx].cost)
                    .fold(0, u32::saturating_add);
                parent.budget.saturating_sub(used) / parent.types[t].cost.max(1)
            }
        }
    }

    /// The rows of the fault table that fire on this operation: every
    /// matching row counts it (for `after`); of those past their `after` and
    /// within their `times`, a failure (a panic, else the first errno in
    /// table order) fires alone, else each kind of create effect fires once
    /// (the first row of it). Only rows that fire count as fired.
    fn fault(&mut self, op: FaultOp, parent: &str, name: &str, device: &str) -> Vec<Fired> {
        let mut ready = Vec::new();
        for (i, (f, c)) in self
            .profile
            .faults
            .iter()
            .zip(self.counts.iter_mut())
            .enumerate()
        {
            let matches = f.op == op
                && f.parent.as_deref().is_none_or(|x| x == parent)
                && f.name.as_deref().is_none_or(|x| x == name)
                && f.device
                    .as_deref()
                    .is_none_or(|x| x.eq_ignore_ascii_case(device));
            if !matches {
                continue;
            }
            c.seen = c.seen.saturating_add(1);
            if c.seen <= f.after || (f.times != 0 && c.fired >= f.times) {
                continue;
            }
            let fired = match (f.effect, &f.errno) {
                (Some(e), _) => Fired::Effect(e, f.polls),
                (None, Some(name)) => Fired::Errno(errno::by_name(name).unwrap_or(EINVAL)),
                (None, None) => Fired::Errno(EINVAL),
            };
            ready.push((i, fired));
        }
        let rank = |f: &Fired| match f {
            Fired::Effect(Effect::Panic, _) => 0,
            Fired::Errno(_) => 1,
            Fired::Effect(Effect::Race, _) => 2,
            Fired::Effect(Effect::LateBind | Effect::Unbound, _) => 3,
        };
        let best = ready.iter().map(|(_, f)| rank(f)).min();
        let mut chosen: Vec<(usize, Fired)> = Vec::new();
        for (i, f) in ready {
            let r = rank(&f);
            let failure = r <= 1;
            if (failure && Some(r) == best && chosen.is_empty())
                || (!failure && best > Some(1) && !chosen.iter().any(|(_, c)| rank(c) == r))
            {
                chosen.push((i, f));
            }
        }
        for (i, _) in &chosen {
            self.counts[*i].fired = self.counts[*i].fired.saturating_add(1);
        }
        chosen.sort_by_key(|(_, f)| rank(f));
        chosen.into_iter().map(|(_, f)| f).collect()
    }

    /// A fault that only fails (or panics); other effects are create's.
    fn fail(&mut self, op: FaultOp, parent: &str, name: &str) -> Result<(), Errno> {
        match self.fault(op, parent, name, "").into_iter().next() {
            None => Ok(()),
            Some(Fired::Errno(e)) => Err(e),
            Some(Fired::Effect(Effect::Panic, _)) => {
                panic!("injected panic: {op:?} on {parent} {name}")
            }
            // Checked out by Fault::check; a row that slipped in does nothing.
            Some(Fired::Effect(..)) => Ok(()),
        }
    }

    // ---- mediated devices ----

    /// Registered parents' names, sorted.
    pub fn parents(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .profile
            .parents
            .iter()
            .filter(|p| self.up(p.appear_after_ms))
            .map(|p| p.name.clone())
            .collect();
        v.sort();
        v
    }

    /// A registered parent's description.
    pub fn parent(&self, name: &str) -> Option<&ParentProfile> {
        self.parent_idx(name).map(|i| &self.profile.parents[i])
    }

    /// `available_instances` of a type, if the parent has it.
    pub fn available(&self, parent: &str, type_id: &str) -> Option<u32> {
        let p = self.parent_idx(parent)?;
        let t = self.type_idx(p, type_id)?;
        Some(self.available_at(p, t))
    }

    /// Every mediated device, by UUID.
    pub fn devices(&self) -> Vec<DeviceView> {
        self.devices
            .iter()
            .map(|(u, d)| {
                let p = &self.profile.parents[d.parent];
                DeviceView {
                    uuid: u.clone(),
                    parent: p.name.clone(),
                    type_id: p.types[d.type_idx].id.clone(),
                }
            })
            .collect()
    }

    /// A device's attribute files and what was written to them.
    pub fn attrs(&self, uuid: &str) -> Option<BTreeMap<String, String>> {
        let d = self.devices.get(&uuid.to_ascii_lowercase())?;
        let t = &self.profile.parents[d.parent].types[d.type_idx];
        Some(
            t.attrs
                .iter()
                .map(|a| (a.clone(), d.attrs.get(a).cloned().unwrap_or_default()))
                .collect(),
        )
    }

    /// Writes `uuid` to `type_id`'s `create` under `parent`.
    pub fn create(&mut self, parent: &str, type_id: &str, uuid: &str) -> Result<(), Errno> {
        let pi = self.parent_idx(parent).ok_or(ENOENT)?;
        let ti = self.type_idx(pi, type_id).ok_or(ENOENT)?;
        if !valid_uuid(uuid) {
            return Err(EINVAL);
        }
        let uuid = uuid.to_ascii_lowercase();
        // The mdev core refuses a UUID in use before the driver is asked.
        if self.devices.contains_key(&uuid) {
            return Err(EEXIST);
        }
        let mut unbound_polls = 0;
        for fired in self.fault(FaultOp::Create, parent, type_id, &uuid) {
            match fired {
                Fired::Errno(e) => return Err(e),
                Fired::Effect(Effect::Panic, _) => panic!("injected panic creating {uuid}"),
                Fired::Effect(Effect::Race, _) => {
                    // Another process's create of the same device won.
                    if self.available_at(pi, ti) > 0 {
                        self.insert_device(uuid.clone(), pi, ti, 0);
                    }
                }
                Fired::Effect(Effect::LateBind, polls) => unbound_polls = polls,
                Fired::Effect(Effect::Unbound, _) => unbound_polls = u32::MAX,
            }
        }
        if self.devices.contains_key(&uuid) {
            return Err(EEXIST);
        }
        if self.available_at(pi, ti) == 0 {
            let full = self.profile.parents[pi].full_errno.as_deref();
            return Err(full.and_then(errno::by_name).unwrap_or(errno::EUSERS));
        }
        self.insert_device(uuid, pi, ti, unbound_polls);
        Ok(())
    }

    fn insert_device(&mut self, uuid: String, parent: usize, type_idx: usize, unbound_polls: u32) {
        let group = self.next_group;
        self.next_group = self.next_group.wrapping_add(1);
        self.devices.insert(
            uuid,
            Device {
                parent,
                type_idx,
                attrs: BTreeMap::new(),
                group,
                ap: Default::default(),
                unbound_polls,
            },
        );
    }

    /// Writes `1` to a device's `remove`.
    pub fn remove(&mut self, uuid: &str) -> Result<(), Errno> {
        let uuid = uuid.to_ascii_lowercase();
        let d = self.devices.get(&uuid).ok_or(ENOENT)?;
        let parent = self.profile.parents[d.parent].name.clone();
        self.fail(FaultOp::Remove, &parent, &uuid)?;
        self.devices.remove(&uuid);
        Ok(())
    }

    /// Whether a device's driver is bound now; each call is one look (a
    /// late-binding device binds after its polls). `None`: no such device.
    pub fn poll_bound(&mut self, uuid: &str) -> Option<bool> {
        let d = self.devices.get_mut(&uuid.to_ascii_lowercase())?;
        let bound = d.unbound_polls == 0;
        if d.unbound_polls != u32::MAX {
            d.unbound_polls = d.unbound_polls.saturating_sub(1);
        }
        Some(bound)
    }

    /// Writes a device attribute (`ENOENT`: the type has no such file).
    pub fn write_attr(&mut self, uuid: &str, attr: &str, value: &str) -> Result<(), Errno> {
        let uuid = uuid.to_ascii_lowercase();
        let d = self.devices.get(&uuid).ok_or(ENOENT)?;
        let ty = &self.profile.parents[d.parent].types[d.type_idx];
        let ap = ty.attr_rules.as_deref() == Some("ap-matrix");
        if !ty.attrs.iter().any(|a| a == attr) {
            return Err(ENOENT);
        }
        let parent = self.profile.parents[d.parent].name.clone();
        self.fail(FaultOp::Attr, &parent, attr)?;
        let d = self.devices.get_mut(&uuid).ok_or(ENOENT)?;
        if ap {
            return ap_matrix_write(d, attr, value);
        }
        d.attrs.insert(attr.to_string(), value.to_string());
        Ok(())
    }

    // ---- PCI SR-IOV and NVIDIA's VF files ----

    /// PFs present now, by address.
    pub fn pfs(&self) -> Vec<PfView> {
        let mut v: Vec<PfView> = (0..self.profile.sriov.len())
            .filter(|&i| self.pf_idx(&self.profile.sriov[i].address).is_some())
            .map(|i| PfView {
                address: self.profile.sriov[i].address.clone(),
                total_vfs: self.total_vfs(i),
                num_vfs: self.pfs[i].numvfs,
            })
            .collect();
        v.sort_by(|a, b| a.address.cmp(&b.address));
        v
    }

    /// The VFs of a present PF, by index (`ENOENT`: no such PF; a
    /// `read-vfs` fault fails the listing).
    pub fn vfs(&mut self, pf: &str) -> Result<Vec<VfView>, Errno> {
        let pi = self.pf_idx(pf).ok_or(ENOENT)?;
        self.fail(FaultOp::ReadVfs, pf, "")?;
        Ok(self.vf_views(pi))
    }

    /// One present VF as reading its own directory shows it (its NVIDIA
    /// files); listing the PF's VF links is [`Kernel::vfs`].
    pub fn vf_view(&self, vf: &str) -> Option<VfView> {
        let (pi, _) = self.vf_of(vf)?;
        self.vf_views(pi).into_iter().find(|v| v.address == vf)
    }

    /// The address of the PF a present VF belongs to.
    pub fn pf_of(&self, vf: &str) -> Option<&str> {
        self.vf_of(vf)
            .map(|(pi, _)| self.profile.sriov[pi].address.as_str())
    }

    pub(crate) fn vf_views(&self, pi: usize) -> Vec<VfView> {
        let ready = self.vf_ready(pi);
        let creatable = self.creatable(pi);
        self.pfs[pi]
            .vfs
            .iter()
            .enumerate()
            .filter_map(|(i, vf)| {
                Some(VfView {
                    address: self.vf_addr(pi, i as u32)?,
                    index: i as u32,
                    ready,
                    current: vf.current,
                    creatable: if vf.current == 0 {
                        creatable.clone()
                    } else {
                        Vec::new()
                    },
                })
            })
            .collect()
    }

    /// Writes `sriov_numvfs`, in the order of the kernel's
    /// `sriov_numvfs_store`: not a u16 is `EINVAL`; above `sriov_totalvfs`
    /// `ERANGE`; the same count does nothing; no PF driver is `ENOENT`;
    /// another nonzero count while VFs exist `EBUSY`; 0 while a VF has a
    /// vGPU type is NVIDIA's driver refusing (`EBUSY`).
    pub fn set_num_vfs(&mut self, pf: &str, n: u32) -> Result<(), Errno> {
        let pi = self.pf_idx(pf).ok_or(ENOENT)?;
        if n > u32::from(u16::MAX) {
            return Err(EINVAL);
        }
        if n > self.total_vfs(pi) {
            if self.mutants.contains(&Mutant::RangeAsBusy) {
                return Err(EBUSY);
            }
            return Err(ERANGE);
        }
        if n == self.pfs[pi].numvfs {
            return Ok(());
        }
        if self.pfs[pi].unbound {
            return Err(ENOENT);
        }
        let p = &self.pfs[pi];
        if n != 0 && p.numvfs != 0 {
            return Err(EBUSY);
        }
        if n == 0 && p.vfs.iter().any(|v| v.current != 0) {
            return Err(EBUSY);
        }
        // pci_iov_add_virtfn: a VF past the last bus is ENOMEM, nothing added.
        if n > 0 && self.vf_addr(pi, n - 1).is_none() {
            return Err(errno::ENOMEM);
        }
        // Then the PF driver's sriov_configure, which a fault stands for.
        self.fail(FaultOp::Numvfs, pf, "")?;
        // Each VF is added with an IOMMU group of its own and, with
        // autoprobe on, its driver bound before the write returns.
        let driver = (!self.pfs[pi].no_autoprobe)
            .then(|| self.profile.sriov[pi].vf_driver.clone())
            .flatten();
        let first = self.next_group;
        self.next_group = self.next_group.wrapping_add(n);
        let p = &mut self.pfs[pi];
        p.numvfs = n;
        p.vfs = (0..n)
            .map(|i| Vf {
                driver: driver.clone(),
                group: first.wrapping_add(i),
                ..Vf::default()
            })
            .collect();
        p.vfs_since = (n > 0).then(Instant::now);
        Ok(())
    }

    /// (id, name) of the vGPU types an untyped VF of PF `pf` can take: those
    /// whose frame buffer fits in what its typed siblings left.
    pub(crate) fn creatable(&self, pf: usize) -> Vec<(u32, String)> {
        let prof = &self.profile.sriov[pf];
        let used: u32 = self.pfs[pf]
            .vfs
            .iter()
            .filter(|v| v.current != 0)
            .filter_map(|v| prof.vgpu_types.iter().find(|t| t.id == v.current))
            .map(|t| t.framebuffer_mb)
            .fold(0, u32::saturating_add);
        let left = prof.framebuffer_mb.saturating_sub(used);
        prof.vgpu_types
            .iter()
            .filter(|t| t.framebuffer_mb <= left)
            .map(|t| (t.id, t.name.clone()))
            .collect()
    }

    /// Writes a VF's `current_vgpu_type` (0 clears): `ENOENT` for a VF
    /// without `nvidia/`, `EBUSY` over another type, `EINVAL` for a type
    /// not in its `creatable_vgpu_types`.
    pub fn set_vgpu_type(&mut self, vf: &str, id: u32) -> Result<(), Errno> {
        let (pi, vi) = self.vf_of(vf).ok_or(ENOENT)?;
        if !self.vf_ready(pi) {
            return Err(ENOENT);
        }
        let pf_addr = self.profile.sriov[pi].address.clone();
        let op = if id == 0 {
            FaultOp::VgpuClear
        } else {
            FaultOp::VgpuType
        };
        self.fail(op, &pf_addr, vf)?;
        if id == 0 {
            self.pfs[pi].vfs[vi].current = 0;
            return Ok(());
        }
        if self.pfs[pi].vfs[vi].current != 0 {
            return Err(EBUSY);
        }
        if !self.creatable(pi).iter().any(|(x, _)| *x == id) {
            return Err(EINVAL);
        }
        self.pfs[pi].vfs[vi].current = id;
        Ok(())
    }
}

/// vfio-ap: adapters 0..=255, domains 0..=255 (hex with 0x, or decimal).
fn ap_matrix_write(d: &mut Device, attr: &str, value: &str) -> Result<(), Errno> {
    let n = crate::view::parse_num(value).ok_or(EINVAL)?;
    let (slot, assign) = match attr {
        "assign_adapter" => (0, true),
        "assign_domain" => (1, true),
        "assign_control_domain" => (2, true),
        "unassign_adapter" => (0, false),
        "unassign_domain" => (1, false),
        "unassign_control_domain" => (2, false),
        _ => return Err(EINVAL),
    };
    if n > 255 {
        return Err(errno::ENODEV); // not in the host's AP configuration
    }
    let list = &mut d.ap[slot];
    if assign {
        if !list.contains(&n) {
            list.push(n);
            list.sort_unstable();
        }
    } else {
        list.retain(|x| *x != n);
    }
    Ok(())
}
