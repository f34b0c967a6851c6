//! The host file's vDPA part: devices by name with their creation config.
//!
//! Plan: each device is compared with its definition and whether it exists;
//! a device whose config changes is deleted and created again, which a pool
//! allocation blocks. Apply runs a management device's steps over the one
//! netlink socket this process holds (no process per device), and puts the
//! management device's devices back as they were when one step fails.
//!
//! Owns: those steps. Must not: parse the file, print.

use super::{Holds, Kept, Step, Want};
use crate::Interfaces;
use crate::VdpaError;
use crate::{CoreError, Devices};
use hostdev_api::{Action, Change, ChangeKind};
use hostdev_model::host::{HostFile, Managed};
use hostdev_model::vdpa::{VdpaDefinition, VdpaName};
use hostdev_model::StartPolicy;
use hostdev_vdpa::VdpaClient;

fn describe(d: &VdpaDefinition) -> String {
    let c = &d.config;
    let mut s = format!("{}", d.start);
    if let Some(m) = c.mac {
        s.push_str(&format!(" mac {m}"));
    }
    if let Some(m) = c.mtu {
        s.push_str(&format!(" mtu {m}"));
    }
    if let Some(q) = c.max_vqp {
        s.push_str(&format!(" max_vqp {q}"));
    }
    if let Some(f) = c.features {
        s.push_str(&format!(" features {f:#x}"));
    }
    s
}

/// A device as it was before apply: its definition, and whether it existed.
type Before = Vec<(VdpaName, Option<VdpaDefinition>, bool)>;

impl<K: Interfaces> Devices<K> {
    /// The vDPA steps, each with what holds its device (if anything). A
    /// file with vDPA devices on a host whose kernel has no vdpa family is
    /// refused with that reason.
    pub(crate) fn vdpa_steps(
        &self,
        f: &HostFile,
        managed: &Managed,
        holds: &Holds,
        kept: &mut Kept,
    ) -> Result<Vec<(Step, Option<String>)>, CoreError> {
        if f.vdpa.is_empty() && managed.vdpa.is_empty() {
            return Ok(Vec::new());
        }
        let survey = self.vdpa.survey()?;
        if let Err(e) = survey.kernel {
            if !f.vdpa.is_empty() || !e.is_no_family() {
                return Err(e);
            }
        }
        let rows = survey.rows;
        let mut out = Vec::new();
        for e in &f.vdpa {
            let d = e.definition();
            let (live, def) = rows
                .iter()
                .find(|r| r.0 == d.name)
                .map(|r| (r.1.as_ref(), r.2.as_ref()))
                .unwrap_or((None, None));
            let live_here = live.is_some_and(|l| l.mgmtdev == d.mgmtdev);
            let to = describe(&d);
            let (action, from, why) = match (live, def) {
                (None, None) => (
                    Action::Create,
                    "-".into(),
                    "the file has it, the host does not",
                ),
                (_, Some(x)) if x == &d && (live_here || live.is_none()) => {
                    if live.is_none() && d.start == StartPolicy::Auto {
                        (
                            Action::Start,
                            describe(x),
                            "defined to start automatically, not present",
                        )
                    } else {
                        kept.push(("vdpa", d.name.to_string()));
                        continue;
                    }
                }
                (Some(_), None) if live_here => (
                    Action::Define,
                    "present, not defined".into(),
                    "it exists but has no definition (its creation config is not read back)",
                ),
                (Some(l), None) => (
                    Action::Change,
                    format!("present on {}", l.mgmtdev),
                    "it exists on another management device",
                ),
                (_, Some(x)) => (Action::Change, describe(x), "its definition differs"),
            };
            let holder = (live.is_some() && action == Action::Change)
                .then(|| holds.get(d.name.as_str()))
                .flatten();
            let change = Change {
                kind: ChangeKind::Vdpa,
                id: d.name.to_string(),
                parent: d.mgmtdev.to_string(),
                action,
                from,
                to,
                why: why.into(),
            };
            let running = live.is_some();
            out.push((
                Step {
                    change,
                    want: Want::Vdpa(d),
                    running,
                    waits_on: None,
                },
                holder,
            ));
        }
        for name in &managed.vdpa {
            if f.vdpa.iter().any(|e| &e.name == name) {
                continue;
            }
            let Some((_, live, def)) = rows.iter().find(|r| &r.0 == name) else {
                continue;
            };
            let Some(mgmtdev) = live
                .as_ref()
                .map(|l| l.mgmtdev.clone())
                .or(def.as_ref().map(|d| d.mgmtdev.clone()))
            else {
                continue;
            };
            let change = Change {
                kind: ChangeKind::Vdpa,
                id: name.to_string(),
                parent: mgmtdev.to_string(),
                action: Action::Remove,
                from: def.as_ref().map_or_else(|| "present".into(), describe),
                to: "-".into(),
                why: "the file made it and no longer has it".into(),
            };
            let holder = live.is_some().then(|| holds.get(name.as_str())).flatten();
            out.push((
                Step {
                    change,
                    want: Want::Gone,
                    running: live.is_some(),
                    waits_on: None,
                },
                holder,
            ));
        }
        Ok(out)
    }

    fn vdpa_step(&self, s: &Step) -> Result<(), CoreError> {
        let v = &self.vdpa;
        let name: VdpaName = s.change.id.parse().map_err(CoreError::from)?;
        let drop_def = || match v.undefine(&name) {
            Ok(()) | Err(CoreError::Vdpa(VdpaError::NotDefined { .. })) => Ok(()),
            Err(e) => Err(e),
        };
        match (&s.change.action, &s.want) {
            (Action::Remove, _) => {
                drop_def()?;
                if s.running {
                    v.del(&name)?;
                }
                Ok(())
            }
            (Action::Start, Want::Vdpa(_)) => v.start(&name),
            (Action::Define, Want::Vdpa(d)) => v.define(d),
            (Action::Create | Action::Change, Want::Vdpa(d)) => {
                drop_def()?;
                if s.running {
                    v.del(&name)?;
                }
                v.define(d)?;
                if d.start == StartPolicy::Auto || s.running {
                    v.add(&d.name, &d.mgmtdev, &d.config)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// One management device's steps: removals first (names and MACs free
    /// up), then changes and creations; a failure puts every device of the
    /// group back.
    pub(crate) fn run_mgmtdev(
        &self,
        mgmtdev: &str,
        mut group: Vec<&Step>,
    ) -> Vec<(Step, Result<(), CoreError>)> {
        group.sort_by_key(|s| s.change.action != Action::Remove);
        let mut before: Before = Vec::new();
        for s in &group {
            let Ok(n) = s.change.id.parse::<VdpaName>() else {
                continue;
            };
            let def = self.vdpa.defs.load(n.as_str()).ok().flatten();
            before.push((n, def, s.running));
        }
        let mut out = Vec::new();
        let mut failed = false;
        for s in &group {
            if failed {
                break;
            }
            let r = self.vdpa_step(s);
            failed = r.is_err();
            out.push(((*s).clone(), r));
        }
        if failed {
            before.retain(|(n, _, _)| out.iter().any(|(s, _)| s.change.id == n.as_str()));
            let trouble = self.restore_vdpas(&before);
            super::apply::mark_rolled_back(
                &mut out,
                &group,
                trouble,
                &format!("management device {mgmtdev}"),
            );
        }
        out
    }

    /// Puts devices back: those that did not exist are deleted, their
    /// definitions as they were, and those that existed created from their
    /// old definition.
    fn restore_vdpas(&self, before: &Before) -> Option<String> {
        let v = &self.vdpa;
        let mut errors = Vec::new();
        let live: Vec<String> = v
            .client()
            .and_then(|c| Ok(c.devs()?))
            .map(|ds| ds.into_iter().map(|d| d.name).collect())
            .unwrap_or_default();
        for (n, def, existed) in before {
            let now = live.iter().any(|l| l == n.as_str());
            if *existed && def.is_none() {
                // Only its definition was written, or it was moved.
                if v.defs.exists(n.as_str()) {
                    if let Err(e) = v.undefine(n) {
                        errors.push(e.chain());
                    }
                }
                if !now {
                    errors.push(format!(
                        "{n} existed without a definition and cannot be made again"
                    ));
                }
                continue;
            }
            if now {
                if let Err(e) = v.del(n) {
                    errors.push(e.chain());
                }
            }
            if v.defs.exists(n.as_str()) {
                if let Err(e) = v.undefine(n) {
                    errors.push(e.chain());
                }
            }
            if let Some(d) = def {
                if let Err(e) = v.define(d) {
                    errors.push(e.chain());
                }
                if *existed {
                    if let Err(e) = v.add(&d.name, &d.mgmtdev, &d.config) {
                        errors.push(e.chain());
                    }
                }
            }
        }
        (!errors.is_empty()).then(|| errors.join("; "))
    }
}
