//! Apply: the plan's steps, groups in parallel (an mdev parent, a PF with
//! its VFs, a vDPA management device: they are independent), within a
//! group in the vendor's order. A step that fails puts its whole group back
//! as it was before apply; the report has every device's outcome.

use super::{Step, Want};
use crate::Interfaces;
use crate::{CoreError, Devices, Locker};
use crate::{HostError, MdevError};
use hostdev_api::{
    Action, Applied, ApplyReport, ApplyResult, DefineRequest, HostApplyRequest, StartRequest,
};
use hostdev_model::host::{DesiredMdev, Managed};
use hostdev_model::{MdevConfig, ParentName, StartPolicy, TypeId, Uuid};
use hostdev_store::ManagedStore;
use std::collections::BTreeMap;

/// An mdev as it was before apply: UUID, definitions, running (parent, type).
type MdevBefore = (
    Uuid,
    Vec<hostdev_store::Definition>,
    Option<(ParentName, TypeId)>,
);

/// After a group failed and was put back: its done steps are undone, and
/// those it never reached were not tried.
pub(super) fn mark_rolled_back(
    out: &mut Vec<(Step, Result<(), CoreError>)>,
    group: &[&Step],
    trouble: Option<String>,
    name: &str,
) {
    for (_, r) in out.iter_mut() {
        if r.is_ok() {
            *r = Err(CoreError::from(HostError::RolledBack {
                group: name.to_string(),
                trouble: trouble.clone(),
            }));
        }
    }
    for s in group {
        let seen = out
            .iter()
            .any(|(o, _)| o.change.id == s.change.id && o.change.kind == s.change.kind);
        if !seen {
            out.push((
                (*s).clone(),
                Err(CoreError::from(HostError::NotTried {
                    why: format!("another step on {name} failed first, and {name} was put back"),
                })),
            ));
        }
    }
}

impl<K: Interfaces> Devices<K> {
    fn define_as(&self, u: &Uuid, parent: &ParentName, c: &MdevConfig) -> Result<(), CoreError> {
        self.mdev.define(&DefineRequest {
            uuid: Some(*u),
            parent: Some(parent.clone()),
            mdev_type: None,
            start: c.start,
            config: Some(c.clone()),
        })?;
        Ok(())
    }

    fn start_defined(&self, u: &Uuid, parent: &ParentName) -> Result<(), CoreError> {
        self.mdev.start(&StartRequest {
            uuid: Some(*u),
            parent: Some(parent.clone()),
            mdev_type: None,
            config: None,
        })?;
        Ok(())
    }

    fn create(&self, d: &DesiredMdev) -> Result<(), CoreError> {
        self.define_as(&d.uuid, &d.parent, &d.config)?;
        if d.config.start == StartPolicy::Auto {
            if let Err(e) = self.start_defined(&d.uuid, &d.parent) {
                let _ = self.mdev.undefine(&d.uuid, Some(&d.parent));
                return Err(e);
            }
        }
        Ok(())
    }

    /// Whether changing to `d` restarts the running device (its type,
    /// parent or attributes change).
    fn restarts(&self, d: &DesiredMdev) -> Result<bool, CoreError> {
        let (old_defs, _) = self.mdev.store.find(&d.uuid)?;
        Ok(match self.mdev.running_parent(&d.uuid)? {
            None => false,
            Some((p, t)) => {
                !(p == d.parent
                    && t == d.config.mdev_type
                    && old_defs.iter().all(|o| o.config.attrs == d.config.attrs))
            }
        })
    }

    /// Redefines, and starts it when it ran before it was drained (`was`)
    /// or should run; on failure the old definitions and device are put
    /// back.
    fn change(&self, d: &DesiredMdev, was: Option<&(ParentName, TypeId)>) -> Result<(), CoreError> {
        let (old_defs, _) = self.mdev.store.find(&d.uuid)?;
        let live_now = self.mdev.running_parent(&d.uuid)?;
        let attempt = || -> Result<(), CoreError> {
            if !old_defs.is_empty() {
                self.mdev.undefine(&d.uuid, None)?;
            }
            self.define_as(&d.uuid, &d.parent, &d.config)?;
            if live_now.is_none() && (was.is_some() || d.config.start == StartPolicy::Auto) {
                self.start_defined(&d.uuid, &d.parent)?;
            }
            Ok(())
        };
        let r = attempt();
        if r.is_err() {
            let _ = self.mdev.stop(&d.uuid);
            let _ = self.mdev.undefine(&d.uuid, None);
            for o in &old_defs {
                let _ = self.define_as(&o.uuid, &o.parent, &o.config);
            }
            if let Some((p, t)) = was.or(live_now.as_ref()) {
                let _ = self.mdev.start(&StartRequest {
                    uuid: Some(d.uuid),
                    parent: Some(p.clone()),
                    mdev_type: if old_defs.iter().any(|o| &o.parent == p) {
                        None
                    } else {
                        Some(t.clone())
                    },
                    config: None,
                });
            }
        }
        r
    }

    /// One parent's steps: removals, then the devices whose type or
    /// attributes change are drained (all stopped first: a vendor that
    /// allows one type at a time needs the parent empty), then changes,
    /// then creations and starts. When one fails, every device the group
    /// touched is put back as it was (definitions, and running or not).
    fn run_parent(
        &self,
        parent: &str,
        mut group: Vec<&Step>,
    ) -> Vec<(Step, Result<(), CoreError>)> {
        let rank = |a: Action| match a {
            Action::Remove => 0,
            Action::Change => 1,
            _ => 2,
        };
        group.sort_by_key(|s| rank(s.change.action));
        let mut before: Vec<MdevBefore> = Vec::new();
        for s in &group {
            let Ok(u) = s.change.id.parse::<Uuid>() else {
                continue;
            };
            let defs = self.mdev.store.find(&u).map(|(d, _)| d).unwrap_or_default();
            let live = self.mdev.running_parent(&u).ok().flatten();
            before.push((u, defs, live));
        }
        let mut out = Vec::new();
        let mut failed = false;
        let mut drained: BTreeMap<String, (ParentName, TypeId)> = BTreeMap::new();
        for s in group.iter().filter(|s| s.change.action == Action::Change) {
            let Some(d) = s.mdev() else { continue };
            let prior = self.mdev.running_parent(&d.uuid).ok().flatten();
            match (self.restarts(d), prior) {
                (Ok(true), Some(prior)) => match self.mdev.stop(&d.uuid) {
                    Ok(_) => {
                        drained.insert(s.change.id.clone(), prior);
                    }
                    Err(e) => {
                        out.push(((*s).clone(), Err(e)));
                        failed = true;
                        break;
                    }
                },
                (Err(e), _) => {
                    out.push(((*s).clone(), Err(e)));
                    failed = true;
                    break;
                }
                _ => {}
            }
        }
        for s in &group {
            if failed {
                break;
            }
            let r = match (&s.change.action, s.mdev()) {
                (Action::Change, Some(d)) => self.change(d, drained.get(&s.change.id)),
                _ => self.run_step(s),
            };
            failed = r.is_err();
            out.push(((*s).clone(), r));
        }
        if failed {
            // What was attempted or drained; the rest was not touched.
            before.retain(|(u, _, _)| {
                let id = u.to_string();
                drained.contains_key(&id) || out.iter().any(|(s, _)| s.change.id == id)
            });
            let trouble = self.restore_mdevs(&before);
            mark_rolled_back(&mut out, &group, trouble, &format!("parent {parent}"));
        }
        out
    }

    /// Puts mdevs back where they differ from before: those stopped first
    /// (room on a one-type parent), definitions as they were, then those
    /// that ran started. A device as it was is not touched.
    fn restore_mdevs(&self, before: &[MdevBefore]) -> Option<String> {
        let mut errors = Vec::new();
        let differs: Vec<&MdevBefore> = before
            .iter()
            .filter(|(u, defs, live)| {
                let now_defs = self.mdev.store.find(u).map(|(d, _)| d).ok();
                let now_live = self.mdev.running_parent(u).ok().flatten();
                now_defs.as_ref() != Some(defs) || &now_live != live
            })
            .collect();
        for (u, _, _) in &differs {
            if matches!(self.mdev.running_parent(u), Ok(Some(_))) {
                if let Err(e) = self.mdev.stop(u) {
                    errors.push(e.chain());
                }
            }
        }
        for (u, defs, _) in &differs {
            if self.mdev.store.find(u).map(|(d, _)| d).ok().as_ref() == Some(defs) {
                continue;
            }
            match self.mdev.undefine(u, None) {
                Ok(_) | Err(CoreError::Mdev(MdevError::NotDefined { .. })) => {}
                Err(e) => errors.push(e.chain()),
            }
            for o in defs {
                if let Err(e) = self.define_as(&o.uuid, &o.parent, &o.config) {
                    errors.push(e.chain());
                }
            }
        }
        for (u, defs, live) in &differs {
            let Some((p, t)) = live else { continue };
            let defined_here = defs.iter().any(|o| &o.parent == p);
            if let Err(e) = self.mdev.start(&StartRequest {
                uuid: Some(*u),
                parent: Some(p.clone()),
                mdev_type: (!defined_here).then(|| t.clone()),
                config: None,
            }) {
                errors.push(e.chain());
            }
        }
        (!errors.is_empty()).then(|| errors.join("; "))
    }

    /// Undefines, then stops: a definition that cannot be removed (a
    /// read-only /etc) leaves the device running; a device that cannot be
    /// stopped gets its definitions back.
    fn remove(&self, u: &Uuid, running: bool) -> Result<(), CoreError> {
        let (old_defs, _) = self.mdev.store.find(u)?;
        match self.mdev.undefine(u, None) {
            Ok(_) | Err(CoreError::Mdev(MdevError::NotDefined { .. })) => {}
            Err(e) => return Err(e),
        }
        if running {
            if let Err(e) = self.mdev.stop(u) {
                for o in &old_defs {
                    let _ = self.define_as(&o.uuid, &o.parent, &o.config);
                }
                return Err(e);
            }
        }
        Ok(())
    }

    fn run_step(&self, s: &Step) -> Result<(), CoreError> {
        let u: Uuid = s.change.id.parse().map_err(CoreError::from)?;
        match (&s.change.action, s.mdev()) {
            (Action::Create, Some(d)) => self.create(d),
            (Action::Define, Some(d)) => self.define_as(&d.uuid, &d.parent, &d.config),
            (Action::Start, Some(d)) => self.start_defined(&d.uuid, &d.parent),
            (Action::Change, Some(d)) => self.change(d, None),
            (Action::Remove, _) => self.remove(&u, s.running),
            _ => Ok(()),
        }
    }

    /// Changes the record of what the file made, under the host lock (one
    /// that cannot be read is refused, never replaced).
    pub(crate) fn record(&self, f: impl FnOnce(&mut Managed)) -> Result<(), CoreError> {
        let store = ManagedStore::new(&self.root);
        let lock = Locker::under(&self.root).lock()?;
        let mut m = self.load_record()?;
        f(&mut m);
        store.save(&lock, &m)?;
        Ok(())
    }

    /// One group's steps, by its kind.
    fn run_group(&self, key: &str, group: Vec<&Step>) -> Vec<(Step, Result<(), CoreError>)> {
        let (family, name) = key.split_once(':').unwrap_or((key, ""));
        match family {
            "pf" => match name.parse() {
                Ok(pf) => self.run_pf(&pf, group),
                Err(e) => group
                    .into_iter()
                    .map(|s| (s.clone(), Err(CoreError::from(e.clone()))))
                    .collect(),
            },
            "vdpa" => self.run_mgmtdev(name, group),
            _ => self.run_parent(name, group),
        }
    }

    /// Makes the host match the file: one apply at a time; devices in use
    /// are reported and left unless named in `force`.
    pub fn host_apply(&self, req: &HostApplyRequest) -> Result<ApplyReport, CoreError> {
        let _apply = Locker::apply_under(&self.root).lock()?;
        let super::Steps {
            mut steps,
            blocked,
            unchanged,
            notes,
            kept,
        } = self.host_steps(req.file.as_ref())?;
        let mut notes = notes;
        for f in &req.force {
            let names = |b: &Step| &b.change.id == f || b.waits_on.as_ref() == Some(f);
            if !blocked.iter().any(names) {
                notes.push(format!(
                    "--force {f}: no blocked change has that id (nothing is forced)"
                ));
            }
        }
        let mut left = Vec::new();
        for b in blocked {
            let named = |id: &String| req.force.iter().any(|f| f == id);
            if named(&b.change.id) || b.waits_on.as_ref().is_some_and(named) {
                steps.push(b);
            } else {
                left.push(b);
            }
        }
        // Pending before anything is made, so a killed apply leaves a trace
        // (VFs whose address is known only once their PF is enabled are
        // pended as they are typed); claimed only once made, below.
        self.record(|m| {
            for s in &steps {
                match &s.want {
                    Want::Mdev(d) => m.pend("mdev", &d.uuid.to_string()),
                    Want::Pf { .. } => m.pend("sriov", &s.change.parent),
                    Want::Vdpa(d) => m.pend("vdpa", d.name.as_str()),
                    Want::Vf { .. } | Want::Gone => {}
                }
            }
        })?;
        let mut groups: BTreeMap<String, Vec<&Step>> = BTreeMap::new();
        for s in &steps {
            groups.entry(s.group()).or_default().push(s);
        }
        let results: Vec<(Step, Result<(), CoreError>)> = std::thread::scope(|sc| {
            let hs: Vec<_> = groups
                .into_iter()
                .map(|(key, group)| {
                    let copy: Vec<Step> = group.iter().map(|s| (*s).clone()).collect();
                    (copy, sc.spawn(move || self.run_group(&key, group)))
                })
                .collect();
            hs.into_iter()
                .flat_map(|(copy, h)| {
                    h.join().unwrap_or_else(|_| {
                        copy.into_iter()
                            .map(|s| {
                                let e = CoreError::RestorePanicked {
                                    device: s.change.id.clone(),
                                };
                                (s, Err(e))
                            })
                            .collect()
                    })
                })
                .collect()
        });
        // What was made is the file's; what failed, was undone or never
        // tried is not (a device an operator defines later with its id is
        // theirs). A killed apply's pending device is the file's where it
        // is exactly as the file wants it now; the rest are dropped.
        self.record(|m| {
            for (s, r) in &results {
                let (kind, id) = (s.change.kind.as_str(), s.change.id.as_str());
                match (s.change.action, r) {
                    (Action::Remove, Ok(())) => m.forget(kind, id),
                    (_, Ok(())) => m.claim(kind, id),
                    (_, Err(_)) => {}
                }
            }
            for (kind, id) in &kept {
                m.claim(kind, id);
            }
            m.pending = Default::default();
        })?;
        let mut outcomes: Vec<Applied> = results
            .into_iter()
            .map(|(s, r)| Applied {
                change: s.change,
                result: match &r {
                    Ok(()) => ApplyResult::Done,
                    Err(CoreError::Host(HostError::RolledBack { .. })) => ApplyResult::RolledBack,
                    Err(CoreError::Host(HostError::NotTried { .. })) => ApplyResult::NotTried,
                    Err(_) => ApplyResult::Failed,
                },
                error: r.err().map(|e| e.chain()),
            })
            .collect();
        outcomes.extend(left.into_iter().map(|b| Applied {
            error: Some(b.change.why.clone()),
            change: b.change,
            result: ApplyResult::Blocked,
        }));
        Ok(ApplyReport {
            outcomes,
            unchanged,
            notes,
        })
    }
}
