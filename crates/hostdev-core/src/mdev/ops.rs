//! define, undefine, modify, start and stop.
//!
//! Every change of a definition is a read-modify-write under the host-wide
//! lock; every start validates all it can before the kernel is touched and
//! removes the device again if a later step fails.

use super::callouts::CalloutDevice;
use super::Host;
use crate::CoreError;
use crate::MdevError;
use hostdev_api::{AttrEdit, DefineRequest, ModifyRequest, StartRequest};
use hostdev_model::config::Attr;
use hostdev_model::{AttrName, MdevConfig, ParentName, TypeId, Uuid};
use hostdev_sysfs::MdevSysfs;
use std::time::Duration;

pub use hostdev_api::Started;

fn dev<'a>(uuid: &'a Uuid, parent: &'a ParentName, config: &'a MdevConfig) -> CalloutDevice<'a> {
    CalloutDevice {
        uuid,
        parent,
        config,
    }
}

impl<S: MdevSysfs> Host<S> {
    pub(crate) fn running_parent(
        &self,
        uuid: &Uuid,
    ) -> Result<Option<(ParentName, TypeId)>, CoreError> {
        Ok(self
            .sysfs
            .device(uuid)
            .map_err(CoreError::inventory)?
            .map(|d| (d.parent, d.mdev_type)))
    }

    /// Defines a device (a new one, or a running one made persistent).
    pub fn define(&self, req: &DefineRequest) -> Result<Started, CoreError> {
        let running = match &req.uuid {
            Some(u) => self.running_parent(u)?,
            None => None,
        };
        let generated = req.uuid.is_none();
        let uuid = req.uuid.unwrap_or_else(Uuid::new_v4);
        let from_json = req.config.clone();
        let (parent, config) = match (&req.parent, &running) {
            (None, _) if req.mdev_type.is_some() => {
                return Err(CoreError::from(MdevError::NoParent { uuid }))
            }
            (None, None) => return Err(CoreError::from(MdevError::NoParent { uuid })),
            (None, Some((p, t))) => {
                let c = from_json.unwrap_or_else(|| MdevConfig::new(t.clone()));
                (p.clone(), c)
            }
            (Some(p), _) => {
                let c = match (from_json, &req.mdev_type, &running) {
                    (Some(c), _, _) => c,
                    (None, Some(t), _) => MdevConfig::new(t.clone()),
                    (None, None, Some((rp, rt))) if rp == p => MdevConfig::new(rt.clone()),
                    (None, None, _) => {
                        return Err(CoreError::from(MdevError::NoType { parent: p.clone() }))
                    }
                };
                (p.clone(), c)
            }
        };
        let mut config = config;
        if req.config.is_none() {
            config.start = req.start;
        }
        let lock = self.lock()?;
        if self.store.exists(&parent, &uuid) {
            return Err(CoreError::from(MdevError::AlreadyDefined { uuid, parent }));
        }
        self.callouts.pre("define", dev(&uuid, &parent, &config))?;
        let r = self.store.save(&lock, &parent, &uuid, &config);
        self.callouts
            .post("define", dev(&uuid, &parent, &config), r.is_ok());
        r?;
        drop(lock);
        let notes = self.absent_now(&parent, &config.mdev_type);
        Ok(Started {
            uuid,
            parent,
            generated,
            notes,
        })
    }

    /// Why a definition cannot start now, if it cannot: its parent is not
    /// registered, or does not offer its type (kept: it may be for later).
    /// One type is read; the parent's list only when that type is missing.
    fn absent_now(&self, parent: &ParentName, t: &TypeId) -> Vec<String> {
        if !self.sysfs.parent_exists(parent) {
            return vec![format!(
                "parent {parent} is not registered now; the definition is kept and starts once it is"
            )];
        }
        if !matches!(self.sysfs.type_info(parent, t), Ok(None)) {
            return Vec::new();
        }
        let offered: Vec<String> = self
            .sysfs
            .types(parent)
            .map(|ts| ts.into_iter().map(|x| x.type_id.to_string()).collect())
            .unwrap_or_default();
        vec![format!(
            "parent {parent} does not offer type {t} (it offers {}); the definition is kept",
            if offered.is_empty() {
                "none".to_string()
            } else {
                offered.join(", ")
            }
        )]
    }

    /// Removes the definitions of `uuid` (all parents, or only `parent`).
    pub fn undefine(
        &self,
        uuid: &Uuid,
        parent: Option<&ParentName>,
    ) -> Result<Vec<ParentName>, CoreError> {
        let lock = self.lock()?;
        let parents: Vec<_> = self
            .store
            .parents_with(uuid)?
            .into_iter()
            .filter(|p| parent.is_none_or(|want| want == p))
            .collect();
        if parents.is_empty() {
            return Err(CoreError::from(MdevError::NotDefined {
                uuid: *uuid,
                parent: parent.cloned(),
            }));
        }
        for p in &parents {
            // A malformed definition can still be removed; callouts need its JSON.
            let config = self.store.load_one(p, uuid).ok().flatten();
            if let Some(c) = &config {
                self.callouts.pre("undefine", dev(uuid, p, c))?;
            }
            let r = self.store.remove(&lock, p, uuid);
            if let Some(c) = &config {
                self.callouts.post("undefine", dev(uuid, p, c), r.is_ok());
            }
            r?;
        }
        Ok(parents)
    }

    /// The one definition of `uuid` (under `parent`, if given).
    fn one_definition(
        &self,
        uuid: &Uuid,
        parent: Option<&ParentName>,
    ) -> Result<(ParentName, MdevConfig), CoreError> {
        let mut parents: Vec<_> = self
            .store
            .parents_with(uuid)?
            .into_iter()
            .filter(|p| parent.is_none_or(|want| want == p))
            .collect();
        match parents.len() {
            0 => Err(CoreError::from(MdevError::NotDefined {
                uuid: *uuid,
                parent: parent.cloned(),
            })),
            1 => {
                let p = parents.remove(0);
                match self.store.load_one(&p, uuid)? {
                    Some(c) => Ok((p, c)),
                    None => Err(CoreError::from(MdevError::NotDefined {
                        uuid: *uuid,
                        parent: Some(p),
                    })),
                }
            }
            _ => Err(CoreError::from(MdevError::Ambiguous {
                uuid: *uuid,
                parents,
            })),
        }
    }

    /// Modifies a definition and/or the running device.
    pub fn modify(&self, req: &ModifyRequest) -> Result<(), CoreError> {
        let uuid = req.uuid;
        let e = &req.edit;
        // Everything given is checked before anything is touched.
        if let Some(AttrEdit::Add { name, .. }) = &e.attr {
            AttrName::new(name.clone())?;
        }
        let from_json = e.replace.clone();
        if req.scope.live() {
            self.modify_live(&uuid, req.parent.as_ref(), from_json.as_ref(), req.force)?;
            if !req.scope.defined() {
                return Ok(());
            }
        }
        let lock = self.lock()?;
        let (parent, mut config) = self.one_definition(&uuid, req.parent.as_ref())?;
        let edit = |source| {
            CoreError::from(MdevError::Edit {
                uuid,
                parent: parent.clone(),
                source,
            })
        };
        if let Some(c) = from_json {
            config = c;
        } else {
            if let Some(t) = &e.mdev_type {
                config.mdev_type = t.clone();
            }
            match &e.attr {
                Some(AttrEdit::Add { index, name, value }) => config
                    .add_attr(
                        *index,
                        Attr {
                            name: name.clone(),
                            value: value.clone(),
                        },
                    )
                    .map_err(edit)?,
                Some(AttrEdit::Delete { index }) => {
                    config.del_attr(*index).map_err(edit)?;
                }
                None => {}
            }
            if let Some(s) = e.start {
                config.start = s;
            }
        }
        match self.callouts.pre("modify", dev(&uuid, &parent, &config)) {
            Err(_) if req.force => {}
            r => r?,
        }
        let r = self.store.save(&lock, &parent, &uuid, &config);
        self.callouts
            .post("modify", dev(&uuid, &parent, &config), r.is_ok());
        Ok(r?)
    }

    fn modify_live(
        &self,
        uuid: &Uuid,
        parent: Option<&ParentName>,
        json: Option<&MdevConfig>,
        force: bool,
    ) -> Result<(), CoreError> {
        let (rp, rt) = self
            .running_parent(uuid)?
            .ok_or(CoreError::from(MdevError::LiveNotRunning { uuid: *uuid }))?;
        if let Some(p) = parent.filter(|p| *p != &rp) {
            return Err(CoreError::from(MdevError::LiveOtherParent {
                uuid: *uuid,
                running_on: rp,
                parent: p.clone(),
            }));
        }
        let config = json.ok_or(CoreError::from(MdevError::LiveNeedsConfig { uuid: *uuid }))?;
        if config.mdev_type != rt {
            return Err(CoreError::from(MdevError::LiveTypeChange { uuid: *uuid }));
        }
        match self.callouts.live(dev(uuid, &rp, config)) {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(_) if force => {}
            Err(e) => return Err(e),
        }
        // No callout owns the type: write the attributes to the device in order.
        for a in &config.attrs {
            let name = AttrName::new(a.name.clone())?;
            self.sysfs
                .write_attr(uuid, &name, &a.value)
                .map_err(|source| {
                    CoreError::from(MdevError::LiveAttr {
                        uuid: *uuid,
                        source: Box::new(source),
                    })
                })?;
        }
        Ok(())
    }

    /// Starts a defined device, or a transient one from a type or JSON.
    pub fn start(&self, req: &StartRequest) -> Result<Started, CoreError> {
        let transient = req.mdev_type.is_some() || req.config.is_some();
        let (uuid, parent, config, generated) = if transient {
            let uuid = req.uuid.unwrap_or_else(Uuid::new_v4);
            let parent = req
                .parent
                .clone()
                .ok_or(CoreError::from(MdevError::NoParent { uuid }))?;
            let config = match (&req.config, &req.mdev_type) {
                (Some(c), _) => c.clone(),
                (None, Some(t)) => MdevConfig::new(t.clone()),
                (None, None) => return Err(CoreError::from(MdevError::NoType { parent })),
            };
            (uuid, parent, config, req.uuid.is_none())
        } else {
            let Some(uuid) = req.uuid else {
                let parent = req
                    .parent
                    .clone()
                    .ok_or(CoreError::from(MdevError::NoParent {
                        uuid: Uuid::new_v4(),
                    }))?;
                return Err(CoreError::from(MdevError::NoType { parent }));
            };
            let (parent, config) = self.one_definition(&uuid, req.parent.as_ref())?;
            (uuid, parent, config, false)
        };
        if let Some((p, _)) = self.running_parent(&uuid)? {
            return Err(CoreError::from(MdevError::AlreadyRunning {
                uuid,
                parent: p,
            }));
        }
        self.start_device(&uuid, &parent, &config)?;
        Ok(Started {
            uuid,
            parent,
            generated,
            notes: Vec::new(),
        })
    }

    /// Creates a device, waits until it is ready and writes its attributes;
    /// on any failure after create the device is removed again.
    pub fn start_device(
        &self,
        uuid: &Uuid,
        parent: &ParentName,
        config: &MdevConfig,
    ) -> Result<(), CoreError> {
        let t = &config.mdev_type;
        let available = self
            .sysfs
            .available_instances(parent, t)
            .map_err(CoreError::inventory)?;
        let Some(available) = available else {
            if !self.sysfs.parent_exists(parent) {
                let hint = self.sysfs.parents().ok().and_then(|ps| {
                    ps.into_iter()
                        .find(|p| p.as_str().eq_ignore_ascii_case(parent.as_str()))
                });
                return Err(CoreError::from(MdevError::ParentAbsent {
                    parent: parent.clone(),
                    hint,
                }));
            }
            return Err(CoreError::from(MdevError::TypeUnsupported {
                parent: parent.clone(),
                mdev_type: t.clone(),
            }));
        };
        if available <= 0 {
            return Err(CoreError::from(MdevError::NoCapacity {
                parent: parent.clone(),
                mdev_type: t.clone(),
                why: self.what_holds(parent, t),
            }));
        }
        let attrs = config
            .attrs
            .iter()
            .map(|a| Ok((AttrName::new(a.name.clone())?, a.value.as_str())))
            .collect::<Result<Vec<_>, CoreError>>()?;
        self.callouts.pre("start", dev(uuid, parent, config))?;
        let result = self.create_and_configure(uuid, parent, t, &attrs);
        self.callouts
            .post("start", dev(uuid, parent, config), result.is_ok());
        result
    }

    /// Why a parent offers no instance of `t`, from what runs on it: devices
    /// of other types on a card whose other types all show 0 (one type at a
    /// time, as NVIDIA's), or the devices that share its budget.
    fn what_holds(&self, parent: &ParentName, t: &TypeId) -> Option<String> {
        let running: Vec<_> = self
            .sysfs
            .devices()
            .ok()?
            .into_iter()
            .filter(|d| &d.parent == parent)
            .collect();
        if running.is_empty() {
            return Some(
                "no mdev runs on it, so the driver holds the capacity (another user of the device, or a type that needs a setup step)".into(),
            );
        }
        let list = |ds: &[&hostdev_sysfs::ActiveDevice]| {
            let mut shown: Vec<String> = ds
                .iter()
                .take(3)
                .map(|d| format!("{} ({})", d.uuid, d.mdev_type))
                .collect();
            if ds.len() > 3 {
                shown.push(format!("{} more", ds.len() - 3));
            }
            shown.join(", ")
        };
        let same: Vec<_> = running.iter().filter(|d| &d.mdev_type == t).collect();
        let other: Vec<_> = running.iter().filter(|d| &d.mdev_type != t).collect();
        let types = self.sysfs.types(parent).ok()?;
        let running_types: Vec<&TypeId> = other.iter().map(|d| &d.mdev_type).collect();
        let others_closed = types
            .iter()
            .filter(|x| !running_types.contains(&&x.type_id))
            .all(|x| x.available_instances <= 0);
        Some(if same.is_empty() && others_closed {
            format!(
                "the parent runs one type at a time and {} holds it; {t} is offered again once those are removed",
                list(&other)
            )
        } else if other.is_empty() {
            format!(
                "its capacity is used by {} running device(s): {}",
                same.len(),
                list(&same)
            )
        } else {
            format!(
                "its types share one budget, used by {} running device(s): {}",
                running.len(),
                list(&running.iter().collect::<Vec<_>>())
            )
        })
    }

    fn create_and_configure(
        &self,
        uuid: &Uuid,
        parent: &ParentName,
        t: &TypeId,
        attrs: &[(AttrName, &str)],
    ) -> Result<(), CoreError> {
        self.sysfs.create(parent, t, uuid).map_err(|source| {
            CoreError::from(MdevError::Create {
                uuid: *uuid,
                source: Box::new(source),
            })
        })?;
        let ready = crate::poll::until(
            self.ready_timeout,
            Duration::from_millis(1),
            Duration::from_millis(50),
            || {
                let r = self.sysfs.readiness(uuid);
                if r.is_ready() {
                    Ok(())
                } else {
                    Err(r)
                }
            },
        );
        if let Err(readiness) = ready {
            // Say what really happened to the device: removed, or still there.
            return Err(match self.sysfs.remove(uuid) {
                Ok(()) => CoreError::from(MdevError::NotReady {
                    uuid: *uuid,
                    waited: self.ready_timeout,
                    readiness,
                }),
                Err(e) => CoreError::from(MdevError::NotReadyNoRollback {
                    uuid: *uuid,
                    waited: self.ready_timeout,
                    readiness,
                    remove_error: crate::chain(&e),
                }),
            });
        }
        for (name, value) in attrs {
            if let Err(source) = self.sysfs.write_attr(uuid, name, value) {
                return Err(match self.sysfs.remove(uuid) {
                    Ok(()) => CoreError::from(MdevError::Attr {
                        uuid: *uuid,
                        attr: name.to_string(),
                        source: Box::new(source),
                    }),
                    Err(e) => CoreError::from(MdevError::AttrNoRollback {
                        uuid: *uuid,
                        attr: name.to_string(),
                        source: Box::new(source),
                        remove_error: crate::chain(&e),
                    }),
                });
            }
        }
        Ok(())
    }

    /// Stops (removes) a running device.
    pub fn stop(&self, uuid: &Uuid) -> Result<ParentName, CoreError> {
        let (parent, t) = self
            .running_parent(uuid)?
            .ok_or(CoreError::from(MdevError::NotRunning { uuid: *uuid }))?;
        let config = self
            .store
            .load_one(&parent, uuid)
            .ok()
            .flatten()
            .unwrap_or_else(|| MdevConfig::new(t));
        self.callouts.pre("stop", dev(uuid, &parent, &config))?;
        let r = self.sysfs.remove(uuid).map_err(|source| {
            CoreError::from(MdevError::Remove {
                uuid: *uuid,
                source: Box::new(source),
            })
        });
        self.callouts
            .post("stop", dev(uuid, &parent, &config), r.is_ok());
        r.map(|()| parent)
    }
}
