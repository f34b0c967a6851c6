//! `list` and `types`: gathering what the kernel runs and what is defined.

use super::Host;
use crate::CoreError;
use hostdev_api::{Kind, ListQuery, MdevListing, Problem};
use hostdev_model::format::{ListEntry, TypeInfo};
use hostdev_model::{MdevConfig, ParentName, Uuid};
use hostdev_store::{LoadProblem, StoreError};
use hostdev_sysfs::MdevSysfs;
use std::collections::HashMap;

/// What `list` found, in output order, and the files it had to skip.
pub type Listing = MdevListing;

fn problem(p: LoadProblem) -> Problem {
    Problem {
        kind: Kind::Mdev,
        path: p.path,
        reason: p.reason,
    }
}

fn problem_of(e: StoreError) -> Result<Problem, CoreError> {
    match e {
        StoreError::Definition { path, reason } => Ok(problem(LoadProblem { path, reason })),
        other => Err(other.into()),
    }
}

impl<S: MdevSysfs> Host<S> {
    /// Lists running devices or definitions.
    pub fn list(&self, q: &ListQuery) -> Result<Listing, CoreError> {
        let parent_ok = |p: &ParentName| q.parent.as_deref().is_none_or(|f| f == p.as_str());
        let mut out = Listing::default();
        if q.defined {
            let (defs, problems) = match (&q.uuid, &q.parent) {
                (Some(u), _) => self.store.find(u)?,
                (None, Some(p)) => match ParentName::new(p.clone()) {
                    Ok(p) => self.store.load_parent(&p)?,
                    Err(_) => Default::default(),
                },
                (None, None) => self.store.load_all()?,
            };
            out.problems = problems.into_iter().map(problem).collect();
            let running: HashMap<Uuid, ParentName> = self
                .sysfs
                .running_parents()
                .map_err(CoreError::inventory)?
                .into_iter()
                .collect();
            for d in defs.into_iter().filter(|d| parent_ok(&d.parent)) {
                let active = running.get(&d.uuid) == Some(&d.parent);
                out.entries.push(ListEntry {
                    uuid: d.uuid,
                    parent: d.parent,
                    config: d.config,
                    active,
                    defined: true,
                });
            }
        } else {
            let devices = match &q.uuid {
                Some(u) => self
                    .sysfs
                    .device(u)
                    .map_err(CoreError::inventory)?
                    .into_iter()
                    .collect(),
                None => self.sysfs.devices().map_err(CoreError::inventory)?,
            };
            // The scripts are looked at once for the listing, not per device.
            let scripts = self.callouts.snapshot();
            for d in devices.into_iter().filter(|d| parent_ok(&d.parent)) {
                let def = match self.store.load_one(&d.parent, &d.uuid) {
                    Ok(def) => def,
                    Err(e) => {
                        out.problems.push(problem_of(e)?);
                        None
                    }
                };
                let defined = def.is_some();
                let mut config = def.unwrap_or_else(|| MdevConfig::new(d.mdev_type.clone()));
                config.mdev_type = d.mdev_type;
                // A vendor script may know the running device's real attributes.
                if let Some(attrs) = self.callouts.get_attributes(
                    &scripts,
                    super::callouts::CalloutDevice {
                        uuid: &d.uuid,
                        parent: &d.parent,
                        config: &config,
                    },
                ) {
                    config.attrs = attrs;
                }
                out.entries.push(ListEntry {
                    uuid: d.uuid,
                    parent: d.parent,
                    config,
                    active: true,
                    defined,
                });
            }
        }
        out.entries
            .sort_by(|a, b| (a.parent.as_str(), a.uuid).cmp(&(b.parent.as_str(), b.uuid)));
        Ok(out)
    }

    /// Lists the supported types of every parent, or of one.
    pub fn types(
        &self,
        parent: Option<&str>,
    ) -> Result<Vec<(ParentName, Vec<TypeInfo>)>, CoreError> {
        let parents = match parent {
            None => self.sysfs.parents().map_err(CoreError::inventory)?,
            Some(p) => match ParentName::new(p) {
                Ok(p) if self.sysfs.parent_exists(&p) => vec![p],
                _ => Vec::new(),
            },
        };
        let cache = self
            .type_cache
            .as_ref()
            .map(|c| c.load())
            .unwrap_or_default();
        let mut fresh = Vec::new();
        let mut out = Vec::with_capacity(parents.len());
        // Parents on a few threads at once: each read waits on the kernel.
        let read = crate::par::map(&parents, |p| {
            let mut fresh = Vec::new();
            let t = self.sysfs.types_cached(p, &cache, &mut fresh);
            (t, fresh)
        });
        for (p, (t, f)) in parents.into_iter().zip(read) {
            out.push((p, t.map_err(CoreError::inventory)?));
            fresh.extend(f);
        }
        // Remember what had to be read; skipped (not waited for) if another
        // hostdev process holds the lock, and a failed write only costs speed.
        if let (Some(store), false) = (&self.type_cache, fresh.is_empty()) {
            if let Some(lock) = self.try_lock() {
                let mut merged = store.load();
                merged.types.extend(fresh);
                let _ = store.save(&lock, &merged);
            }
        }
        Ok(out)
    }
}
