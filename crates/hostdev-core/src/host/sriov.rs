//! The host file's NVIDIA SR-IOV part: each selected PF's VF count and the
//! type of each VF, by name (ids are card-local).
//!
//! Plan: a PF whose count differs is created (from 0) or changed — through
//! 0, which clears every VF's vGPU, so it is blocked while any VF is in use;
//! then each VF the file types is compared by type name with its definition
//! and `current_vgpu_type`. Apply, per PF: clear the VFs that are retyped or
//! removed, set the count, wait until the driver has set the VFs up, then
//! define and type them; a failure puts the whole PF back as it was.
//!
//! Owns: those steps. Must not: parse the file, print.

use super::{Holds, Kept, Step, Want};
use crate::Interfaces;
use crate::{CoreError, Devices};
use crate::{HostError, VgpuError};
use hostdev_api::{Action, Change, ChangeKind};
use hostdev_model::host::{desired_pfs, HostFile, Managed};
use hostdev_model::pci::PciAddress;
use hostdev_model::vgpu::{SriovDefinition, VgpuDefinition};
use hostdev_model::StartPolicy;
use hostdev_sysfs::sriov::PciSriov;
use hostdev_sysfs::sriov::{SriovSysfs, VfInfo};
use std::collections::BTreeMap;

/// A PF as it was before apply touched it.
struct PfSnapshot {
    numvfs: u32,
    def: Option<SriovDefinition>,
    /// By VF index: address, type id, definition.
    vfs: Vec<(PciAddress, u32, Option<VgpuDefinition>)>,
}

fn change(kind: ChangeKind, id: String, pf: &PciAddress, action: Action) -> Change {
    Change {
        kind,
        id,
        parent: pf.to_string(),
        action,
        from: "-".into(),
        to: "-".into(),
        why: String::new(),
    }
}

impl<K: Interfaces> Devices<K> {
    /// A VF's current type as a name: its definition's when the ids agree,
    /// else what the same card calls that id (ids are card-local) in
    /// another VF's definition or offer, else the bare id.
    fn current_name(
        v: &VfInfo,
        def: Option<&VgpuDefinition>,
        card: &[VfInfo],
        defs: &BTreeMap<PciAddress, VgpuDefinition>,
    ) -> Option<String> {
        if v.current == 0 {
            return None;
        }
        let by_def = def
            .into_iter()
            .chain(defs.values().filter(|d| d.pf == v.pf))
            .find(|d| d.type_id == v.current)
            .map(|d| d.type_name.clone());
        Some(by_def.unwrap_or_else(|| {
            card.iter()
                .flat_map(|x| &x.creatable)
                .find(|t| t.id == v.current)
                .map(|t| t.name.clone())
                .unwrap_or_else(|| format!("type id {}", v.current))
        }))
    }

    /// The SR-IOV steps, each with what holds its device (if anything).
    pub(crate) fn sriov_steps(
        &self,
        f: &HostFile,
        managed: &Managed,
        holds: &Holds,
        kept: &mut Kept,
        notes: &mut Vec<String>,
        path: &str,
    ) -> Result<Vec<(Step, Option<String>)>, CoreError> {
        let g = &self.vgpu;
        if f.sriov.is_empty() && managed.pf.is_empty() && managed.vgpu.is_empty() {
            return Ok(Vec::new());
        }
        let pfs = g.sriov.pfs()?;
        let facts: Vec<_> = pfs.iter().map(|p| g.sriov.pf_facts(&p.address)).collect();
        let (want, n) = desired_pfs(f, &facts);
        notes.extend(n);
        let (vf_defs, _) = g.defs.load_all()?;
        let vf_defs: BTreeMap<PciAddress, VgpuDefinition> = vf_defs
            .into_iter()
            .map(|(_, d)| (d.vf.clone(), d))
            .collect();
        let mut out = Vec::new();
        for p in &pfs {
            let pf = &p.address;
            let vfs = g.sriov.vfs(pf)?;
            let pf_def = g.pf_defs.load(pf.as_str())?;
            let busy: Vec<String> = vfs
                .iter()
                .filter(|v| v.current != 0)
                .filter_map(|v| {
                    self.vf_in_use(&v.address, holds)
                        .map(|w| format!("{}: {w}", v.address))
                })
                .collect();
            let holder = (!busy.is_empty()).then(|| busy.join("; "));
            let Some(d) = want.iter().find(|d| &d.pf == pf) else {
                // Not in the file: undo what the file made here.
                if managed.pf.contains(pf) && (p.num_vfs != 0 || pf_def.is_some()) {
                    let mut c = change(ChangeKind::Sriov, pf.to_string(), pf, Action::Remove);
                    c.from = format!("{} VFs", p.num_vfs);
                    c.why = "the file set its VF count and no longer has it".into();
                    out.push((step(c, Want::Gone, p.num_vfs > 0), holder.clone()));
                }
                for v in vfs.iter().filter(|v| managed.vgpu.contains(&v.address)) {
                    if let Some(s) = self.vf_removal(v, vf_defs.get(&v.address), holds) {
                        out.push(s);
                    }
                }
                continue;
            };
            if d.numvfs > p.total_vfs {
                return Err(CoreError::from(HostError::BadFile {
                    path: path.to_string(),
                    why: format!(
                        "PF {pf} has at most {} VFs; the file asks for {}",
                        p.total_vfs, d.numvfs
                    ),
                }));
            }
            let recount = p.num_vfs != d.numvfs;
            let pf_as_wanted = pf_def
                .as_ref()
                .is_some_and(|x| x.numvfs == d.numvfs && x.start == d.start);
            if recount || !pf_as_wanted {
                let (action, why) = match (recount, p.num_vfs) {
                    (true, 0) => (Action::Create, "the file enables its VFs"),
                    (true, _) => (
                        Action::Change,
                        "the VF count changes only through 0, which clears every VF's vGPU",
                    ),
                    (false, _) => (Action::Define, "its VF count is right but not defined"),
                };
                let mut c = change(ChangeKind::Sriov, pf.to_string(), pf, action);
                c.from = format!("{} VFs", p.num_vfs);
                c.to = format!("{} VFs {}", d.numvfs, d.start);
                c.why = why.into();
                let h = (recount && p.num_vfs != 0)
                    .then(|| holder.clone())
                    .flatten();
                out.push((
                    step(
                        c,
                        Want::Pf {
                            numvfs: d.numvfs,
                            start: d.start,
                        },
                        p.num_vfs > 0,
                    ),
                    h,
                ));
            } else {
                kept.push(("sriov", pf.to_string()));
            }
            // VFs the file typed and now leaves untyped (or beyond the count).
            for v in vfs.iter().filter(|v| managed.vgpu.contains(&v.address)) {
                let typed = v.index < d.numvfs
                    && d.vf_types
                        .get(v.index as usize)
                        .is_some_and(Option::is_some);
                if !typed {
                    if let Some(s) = self.vf_removal(v, vf_defs.get(&v.address), holds) {
                        out.push(s);
                    }
                }
            }
            for (i, t) in d.vf_types.iter().enumerate() {
                let index = i as u32;
                let Some(t) = t else { continue };
                let live = (!recount)
                    .then(|| vfs.iter().find(|v| v.index == index))
                    .flatten();
                let def = live.and_then(|v| vf_defs.get(&v.address));
                let id = live.map_or_else(|| format!("{pf} vf{index}"), |v| v.address.to_string());
                let mut c = change(ChangeKind::Vgpu, id.clone(), pf, Action::Create);
                c.to = format!("{t} {}", d.start);
                let now = live.and_then(|v| Self::current_name(v, def, &vfs, &vf_defs));
                let def_ok = def.is_some_and(|x| &x.type_name == t && x.start == d.start);
                let (action, from, why) = match (&now, def) {
                    (Some(n), _) if n == t && def_ok => {
                        kept.push(("vgpu", id.clone()));
                        continue;
                    }
                    (None, Some(x)) if def_ok => {
                        if d.start != StartPolicy::Auto {
                            kept.push(("vgpu", id.clone()));
                            continue;
                        }
                        (
                            Action::Start,
                            format!("{} {}", x.type_name, x.start),
                            "defined to start automatically, no type set",
                        )
                    }
                    (Some(n), _) if n == t => (
                        Action::Define,
                        format!("{n}, not defined as wanted"),
                        "it has the type but not the definition",
                    ),
                    (Some(n), _) => (Action::Change, n.clone(), "it has another type"),
                    (None, Some(x)) => (
                        Action::Change,
                        format!("{} {}", x.type_name, x.start),
                        "its definition differs",
                    ),
                    (None, None) if recount => (
                        Action::Create,
                        "-".into(),
                        "the file types it once the VFs are enabled",
                    ),
                    (None, None) => (
                        Action::Create,
                        "-".into(),
                        "the file has it, the host does not",
                    ),
                };
                c.action = action;
                c.from = from;
                c.why = why.into();
                // A count change that is blocked holds its VFs' steps too.
                let count_held = (recount && p.num_vfs != 0)
                    .then(|| holder.clone())
                    .flatten();
                let h = match (action, live) {
                    _ if count_held.is_some() => count_held
                        .map(|w| format!("waits for {pf}: its VF count cannot change ({w})")),
                    (Action::Change, Some(v)) if v.current != 0 => {
                        self.vf_in_use(&v.address, holds)
                    }
                    _ => None,
                };
                let w = Want::Vf {
                    index,
                    type_name: t.clone(),
                    start: d.start,
                };
                let mut st = step(c, w, live.is_some_and(|v| v.current != 0));
                if recount && p.num_vfs != 0 {
                    st.waits_on = Some(pf.to_string());
                }
                out.push((st, h));
            }
        }
        Ok(out)
    }

    /// A VF the file typed and no longer does: clear and undefine it.
    fn vf_removal(
        &self,
        v: &VfInfo,
        def: Option<&VgpuDefinition>,
        holds: &Holds,
    ) -> Option<(Step, Option<String>)> {
        if v.current == 0 && def.is_none() {
            return None;
        }
        let mut c = change(
            ChangeKind::Vgpu,
            v.address.to_string(),
            &v.pf,
            Action::Remove,
        );
        c.from = Self::current_name(v, def, &[], &BTreeMap::new())
            .or_else(|| def.map(|d| format!("{} (defined)", d.type_name)))
            .unwrap_or_default();
        c.why = "the file typed it and no longer does".into();
        let h = (v.current != 0)
            .then(|| self.vf_in_use(&v.address, holds))
            .flatten();
        Some((step(c, Want::Gone, v.current != 0), h))
    }

    fn snapshot_pf(&self, pf: &PciAddress) -> Result<PfSnapshot, CoreError> {
        let g = &self.vgpu;
        let numvfs = g.sriov.pf(pf)?.map_or(0, |p| p.num_vfs);
        let mut vfs = Vec::new();
        for v in g.sriov.vfs(pf)? {
            let def = g.defs.load(v.address.as_str())?;
            vfs.push((v.address, v.current, def));
        }
        Ok(PfSnapshot {
            numvfs,
            def: g.pf_defs.load(pf.as_str())?,
            vfs,
        })
    }

    /// Waits (bounded) until the PF's first `n` VFs are set up by the driver.
    fn wait_vfs(&self, pf: &PciAddress, n: u32) -> Result<Vec<VfInfo>, CoreError> {
        let ready = |vfs: &[VfInfo]| (0..n).all(|i| vfs.iter().any(|v| v.index == i && v.ready));
        self.vgpu.wait_vfs(pf, ready)?.ok_or_else(|| {
            CoreError::from(VgpuError::VfsNotReady {
                pf: pf.clone(),
                waited: self.vgpu.vf_timeout,
            })
        })
    }

    /// Clears a VF's type if it has one (the driver refuses while a VM uses it).
    fn clear_vf(&self, vf: &PciAddress) -> Result<(), CoreError> {
        match self.vgpu.stop(vf) {
            Ok(()) | Err(CoreError::Vgpu(VgpuError::NotSet { .. })) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// One PF's steps in the vendor's order; a failure restores the PF.
    pub(crate) fn run_pf(
        &self,
        pf: &PciAddress,
        group: Vec<&Step>,
    ) -> Vec<(Step, Result<(), CoreError>)> {
        let before = match self.snapshot_pf(pf) {
            Ok(s) => s,
            Err(e) => {
                let why = format!("{pf} could not be read: {}", e.chain());
                return group
                    .into_iter()
                    .map(|s| {
                        (
                            s.clone(),
                            Err(CoreError::from(HostError::NotTried { why: why.clone() })),
                        )
                    })
                    .collect();
            }
        };
        let mut out: Vec<(Step, Result<(), CoreError>)> = Vec::new();
        let vf_addr = |s: &Step| s.change.id.parse::<PciAddress>().ok();
        let mut failed = false;
        // 1. A count change clears every VF; a retype or removal its own.
        let recount = group
            .iter()
            .find(|s| s.change.kind == ChangeKind::Sriov && s.running)
            .filter(|s| matches!(s.change.action, Action::Change | Action::Remove));
        if let Some(r) = recount {
            if let Some(e) = before
                .vfs
                .iter()
                .filter(|(_, cur, _)| *cur != 0)
                .find_map(|(vf, _, _)| self.clear_vf(vf).err())
            {
                out.push(((*r).clone(), Err(e)));
                failed = true;
            }
        }
        let mut rest: Vec<&Step> = Vec::new();
        for s in &group {
            if failed {
                break;
            }
            if out.iter().any(|(o, _)| o.change.id == s.change.id) {
                continue;
            }
            if s.change.kind == ChangeKind::Vgpu
                && matches!(s.change.action, Action::Change | Action::Remove)
            {
                if let Some(vf) = vf_addr(s) {
                    let r = self.clear_vf(&vf).and_then(|()| {
                        if s.change.action == Action::Remove {
                            match self.vgpu.undefine(&vf) {
                                Ok(()) | Err(CoreError::Vgpu(VgpuError::NotDefined { .. })) => {
                                    Ok(())
                                }
                                Err(e) => Err(e),
                            }
                        } else {
                            Ok(())
                        }
                    });
                    failed |= r.is_err();
                    if s.change.action == Action::Remove || r.is_err() {
                        out.push(((*s).clone(), r));
                        continue;
                    }
                }
            }
            rest.push(s);
        }
        // 2. The count, then 3. the VFs' types (each VF pended as typed).
        let mut pended = Vec::new();
        for s in rest {
            if failed {
                break;
            }
            let r = match &s.want {
                Want::Pf { numvfs, start } => self.set_pf(pf, &before, *numvfs, *start),
                Want::Gone if s.change.kind == ChangeKind::Sriov => {
                    self.set_pf(pf, &before, 0, StartPolicy::Auto)
                }
                Want::Vf {
                    index,
                    type_name,
                    start,
                } => self.type_vf(pf, *index, type_name, *start, &mut pended),
                _ => Ok(()),
            };
            failed |= r.is_err();
            out.push((s.clone(), r));
        }
        if failed {
            let trouble = self.put_pf_back(pf, &before);
            super::apply::mark_rolled_back(&mut out, &group, trouble, &format!("PF {pf}"));
        } else if !pended.is_empty() {
            // The whole PF went through: its typed VFs are the file's (a
            // PF put back leaves them pending, and the apply drops them).
            let claimed = self.record(|m| {
                for vf in &pended {
                    m.claim("vgpu", vf.as_str());
                }
            });
            if let Err(e) = claimed {
                let why = e.chain();
                for (_, r) in out.iter_mut().filter(|(_, r)| r.is_ok()) {
                    *r = Err(CoreError::from(HostError::NotTried {
                        why: format!(
                            "the record of what the file made could not be written: {why}"
                        ),
                    }));
                }
            }
        }
        out
    }

    /// Sets a PF's VF count (through 0) and its definition; 0 with `Gone`
    /// removes the definition.
    fn set_pf(
        &self,
        pf: &PciAddress,
        before: &PfSnapshot,
        numvfs: u32,
        start: StartPolicy,
    ) -> Result<(), CoreError> {
        let g = &self.vgpu;
        let now = g.sriov.pf(pf)?.map_or(before.numvfs, |p| p.num_vfs);
        if now != numvfs && now != 0 {
            // A VF held through VFIO (typed or not) would keep the write.
            self.refuse_if_vf_held(pf)?;
            g.sriov.set_num_vfs(pf, 0)?;
        }
        if numvfs == 0 {
            return g.disable(pf);
        }
        g.enable(pf, numvfs, start)
    }

    /// Defines VF `index` of `pf` with a type and (auto) sets it; the VF is
    /// pended in the record first and added to `pended`.
    fn type_vf(
        &self,
        pf: &PciAddress,
        index: u32,
        type_name: &str,
        start: StartPolicy,
        pended: &mut Vec<PciAddress>,
    ) -> Result<(), CoreError> {
        let vfs = self.wait_vfs(pf, index + 1)?;
        let v = vfs
            .iter()
            .find(|v| v.index == index)
            .cloned()
            .ok_or_else(|| {
                CoreError::from(VgpuError::VfsNotReady {
                    pf: pf.clone(),
                    waited: self.vgpu.vf_timeout,
                })
            })?;
        self.record(|m| m.pend("vgpu", v.address.as_str()))?;
        pended.push(v.address.clone());
        let old = self.vgpu.defs.load(v.address.as_str())?;
        if v.current != 0 {
            // Already this type (only the definition differs): define it
            // as it runs, without clearing what a VM may be using.
            let defs: BTreeMap<PciAddress, VgpuDefinition> = self
                .vgpu
                .defs
                .load_all()?
                .0
                .into_iter()
                .map(|(_, d)| (d.vf.clone(), d))
                .collect();
            let name = Self::current_name(&v, old.as_ref(), &vfs, &defs);
            if name.as_deref() == Some(type_name) {
                return self.vgpu.put_vf_definition(&VgpuDefinition {
                    vf: v.address.clone(),
                    pf: pf.clone(),
                    vf_index: v.index,
                    type_id: v.current,
                    type_name: type_name.to_string(),
                    start,
                });
            }
            self.clear_vf(&v.address)?;
        }
        match self.vgpu.undefine(&v.address) {
            Ok(()) | Err(CoreError::Vgpu(VgpuError::NotDefined { .. })) => {}
            Err(e) => return Err(e),
        }
        let slot = crate::vgpu::VgpuSlot::Vf(v.address.clone());
        self.vgpu.define(&slot, type_name, start)?;
        if start == StartPolicy::Auto {
            if let Err(e) = self.vgpu.start(&v.address) {
                let _ = self.vgpu.undefine(&v.address);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Puts a PF back as the snapshot had it; returns what could not be.
    fn put_pf_back(&self, pf: &PciAddress, before: &PfSnapshot) -> Option<String> {
        let g = &self.vgpu;
        let mut errors = Vec::new();
        let mut note = |r: Result<(), CoreError>| {
            if let Err(e) = r {
                errors.push(e.chain());
            }
        };
        for v in g.sriov.vfs(pf).unwrap_or_default() {
            if v.current != 0 {
                note(self.clear_vf(&v.address));
            }
            if g.defs.exists(v.address.as_str()) {
                note(g.undefine(&v.address));
            }
        }
        let now = g.sriov.pf(pf).ok().flatten().map_or(0, |p| p.num_vfs);
        if now != before.numvfs {
            if now != 0 {
                note(g.sriov.set_num_vfs(pf, 0).map_err(CoreError::from));
            }
            if before.numvfs != 0 {
                note(
                    g.sriov
                        .set_num_vfs(pf, before.numvfs)
                        .map_err(CoreError::from),
                );
                note(self.wait_vfs(pf, before.numvfs).map(|_| ()));
            }
        }
        note(g.put_pf_definition(pf, before.def.as_ref()));
        for (vf, cur, def) in &before.vfs {
            if let Some(d) = def {
                note(g.put_vf_definition(d));
            }
            if *cur != 0 {
                note(g.sriov.set_type(vf, *cur).map_err(CoreError::from));
            }
        }
        (!errors.is_empty()).then(|| errors.join("; "))
    }
}

fn step(change: Change, want: Want, running: bool) -> Step {
    Step {
        change,
        want,
        running,
        waits_on: None,
    }
}
