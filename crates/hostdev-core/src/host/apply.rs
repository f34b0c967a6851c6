//! Apply: the plan's steps, parents in parallel (they are independent),
//! within a parent removals first (room for what comes), then changes, then
//! creations. A step that fails part way puts back what it changed; the
//! report has every device's outcome.

use super::Step;
use crate::{CoreError, Devices, Locker};
use hostdev_api::{
    Action, Applied, ApplyReport, DefineRequest, HostApplyRequest, JsonInput, StartRequest,
};
use hostdev_model::host::DesiredMdev;
use hostdev_model::{MdevConfig, ParentName, StartPolicy, TypeId, Uuid};
use hostdev_store::ManagedStore;
use hostdev_sysfs::sriov::SriovSysfs;
use hostdev_sysfs::MdevSysfs;
use hostdev_vdpa::VdpaClient;
use std::collections::BTreeMap;

fn json_of(c: &MdevConfig) -> JsonInput {
    let attrs: Vec<serde_json::Value> = c
        .attrs
        .iter()
        .map(|a| serde_json::json!({ a.name.clone(): a.value }))
        .collect();
    let doc = serde_json::json!({
        "mdev_type": c.mdev_type.to_string(),
        "start": c.start.as_str(),
        "attrs": attrs,
    });
    JsonInput {
        path: "the host file".into(),
        bytes: doc.to_string().into_bytes(),
    }
}

impl<S: MdevSysfs, V: SriovSysfs, C: VdpaClient> Devices<S, V, C> {
    fn define_as(&self, u: &Uuid, parent: &ParentName, c: &MdevConfig) -> Result<(), CoreError> {
        self.mdev.define(&DefineRequest {
            uuid: Some(*u),
            parent: Some(parent.clone()),
            mdev_type: None,
            start: c.start,
            json: Some(json_of(c)),
        })?;
        Ok(())
    }

    fn start_defined(&self, u: &Uuid, parent: &ParentName) -> Result<(), CoreError> {
        self.mdev.start(&StartRequest {
            uuid: Some(*u),
            parent: Some(parent.clone()),
            mdev_type: None,
            json: None,
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
                    json: None,
                });
            }
        }
        r
    }

    /// One parent's steps: removals, then the devices whose type or
    /// attributes change are drained (all stopped first: a vendor that
    /// allows one type at a time needs the parent empty), then changes,
    /// then creations and starts.
    fn run_parent(&self, mut group: Vec<&Step>) -> Vec<(Step, Result<(), CoreError>)> {
        let rank = |a: Action| match a {
            Action::Remove => 0,
            Action::Change => 1,
            _ => 2,
        };
        group.sort_by_key(|s| rank(s.change.action));
        let mut out = Vec::new();
        let mut drained: BTreeMap<String, (ParentName, TypeId)> = BTreeMap::new();
        for s in group.iter().filter(|s| s.change.action == Action::Change) {
            let Some(d) = &s.want else { continue };
            let prior = self.mdev.running_parent(&d.uuid).ok().flatten();
            match (self.restarts(d), prior) {
                (Ok(true), Some(prior)) if self.mdev.stop(&d.uuid).is_ok() => {
                    drained.insert(s.change.id.clone(), prior);
                }
                (Err(e), _) => out.push(((*s).clone(), Err(e))),
                _ => {}
            }
        }
        for s in group {
            if out
                .iter()
                .any(|(o, _): &(Step, _)| o.change.id == s.change.id)
            {
                continue;
            }
            let r = match (&s.change.action, &s.want) {
                (Action::Change, Some(d)) => self.change(d, drained.get(&s.change.id)),
                _ => self.run_step(s),
            };
            out.push((s.clone(), r));
        }
        out
    }

    /// Undefines, then stops: a definition that cannot be removed (a
    /// read-only /etc) leaves the device running; a device that cannot be
    /// stopped gets its definitions back.
    fn remove(&self, u: &Uuid, running: bool) -> Result<(), CoreError> {
        let (old_defs, _) = self.mdev.store.find(u)?;
        match self.mdev.undefine(u, None) {
            Ok(_) | Err(CoreError::NotDefined { .. }) => {}
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
        match (&s.change.action, &s.want) {
            (Action::Create, Some(d)) => self.create(d),
            (Action::Define, Some(d)) => self.define_as(&d.uuid, &d.parent, &d.config),
            (Action::Start, Some(d)) => self.start_defined(&d.uuid, &d.parent),
            (Action::Change, Some(d)) => self.change(d, None),
            (Action::Remove, _) => self.remove(&u, s.running),
            _ => Ok(()),
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
        } = self.host_steps(&req.file)?;
        let mut left = Vec::new();
        for b in blocked {
            if req.force.iter().any(|f| f == &b.change.id) {
                steps.push(b);
            } else {
                left.push(b);
            }
        }
        // Recorded before anything is made: a killed apply leaves no device
        // the next one does not know it made.
        let store = ManagedStore::new(&self.root);
        {
            let lock = Locker::under(&self.root).lock()?;
            let mut m = store.load();
            for s in &steps {
                if let Some(d) = &s.want {
                    m.mdev.insert(d.uuid);
                }
            }
            store.save(&lock, &m)?;
        }
        let mut by_parent: BTreeMap<String, Vec<&Step>> = BTreeMap::new();
        for s in &steps {
            by_parent
                .entry(s.change.parent.clone())
                .or_default()
                .push(s);
        }
        let mut results: Vec<(Step, Result<(), CoreError>)> = Vec::new();
        for (_, group) in by_parent {
            results.extend(self.run_parent(group));
        }
        {
            let lock = Locker::under(&self.root).lock()?;
            let mut m = store.load();
            for (s, r) in &results {
                if s.change.action == Action::Remove && r.is_ok() {
                    if let Ok(u) = s.change.id.parse::<Uuid>() {
                        m.mdev.remove(&u);
                    }
                }
            }
            store.save(&lock, &m)?;
        }
        let mut outcomes: Vec<Applied> = results
            .into_iter()
            .map(|(s, r)| Applied {
                change: s.change,
                result: if r.is_ok() { "done" } else { "failed" }.into(),
                error: r.err().map(|e| e.chain()),
            })
            .collect();
        outcomes.extend(left.into_iter().map(|b| Applied {
            error: Some(b.change.why.clone()),
            change: b.change,
            result: "blocked".into(),
        }));
        Ok(ApplyReport {
            outcomes,
            unchanged,
            notes,
        })
    }
}
