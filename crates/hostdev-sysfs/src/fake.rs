//! An in-memory fake kernel for unit tests: parents, types and devices that
//! react to create/remove and attribute writes as the kernel does, with
//! injectable failures, and a log of every call made to it.

use crate::{ActiveDevice, MdevSysfs, Readiness, SysfsError};
use hostdev_model::format::TypeInfo;
use hostdev_model::{AttrName, ParentName, TypeId, Uuid};
use rustix::io::Errno;
use std::collections::BTreeMap;
use std::io;
use std::sync::{Mutex, MutexGuard};

/// A type a fake parent supports.
#[derive(Debug, Clone)]
pub struct FakeType {
    /// Type id.
    pub id: String,
    /// Instances when the parent is empty.
    pub max: u32,
    /// Units of the parent's shared budget one instance costs (0 = no shared budget).
    pub cost: u32,
    /// `device_api`.
    pub device_api: String,
    /// `name`.
    pub name: Option<String>,
    /// `description`.
    pub description: Option<String>,
    /// Attribute files devices of this type have.
    pub attrs: Vec<String>,
}

impl FakeType {
    /// A vfio-pci type with `max` instances and no attributes.
    pub fn new(id: &str, max: u32) -> Self {
        FakeType {
            id: id.to_string(),
            max,
            cost: 0,
            device_api: "vfio-pci".to_string(),
            name: None,
            description: None,
            attrs: Vec::new(),
        }
    }
    /// Devices of this type have these attribute files.
    pub fn with_attrs(mut self, attrs: &[&str]) -> Self {
        self.attrs = attrs.iter().map(|s| s.to_string()).collect();
        self
    }
}

#[derive(Debug, Default)]
struct Parent {
    types: Vec<FakeType>,
    budget: Option<u32>,
}

#[derive(Debug)]
struct Device {
    parent: String,
    type_id: String,
    attrs: BTreeMap<String, String>,
    polls_until_ready: u32,
}

#[derive(Debug, Default)]
struct State {
    parents: BTreeMap<String, Parent>,
    devices: BTreeMap<Uuid, Device>,
    /// (creates that still succeed first, errno).
    fail_create: Option<(u32, i32)>,
    fail_attr: BTreeMap<String, i32>,
    busy: Vec<Uuid>,
    ready_after_polls: u32,
    never_ready: bool,
    panic_create: Option<Uuid>,
    raced: Option<Uuid>,
    log: Vec<String>,
}

/// The fake kernel. Cheap to share behind `&`; all state is behind a mutex.
#[derive(Debug, Default)]
pub struct FakeKernel {
    state: Mutex<State>,
}

impl FakeKernel {
    /// A kernel with no mdev parents.
    pub fn new() -> Self {
        Self::default()
    }

    fn st(&self) -> MutexGuard<'_, State> {
        // A panicking test thread cannot leave the fake in a state worth refusing.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a parent with its types.
    pub fn add_parent(&self, name: &str, types: Vec<FakeType>) -> &Self {
        self.st().parents.insert(
            name.to_string(),
            Parent {
                types,
                budget: None,
            },
        );
        self
    }

    /// Registers a parent whose types share one budget (mbochs, GVT-g).
    pub fn add_budget_parent(&self, name: &str, budget: u32, types: Vec<FakeType>) -> &Self {
        self.st().parents.insert(
            name.to_string(),
            Parent {
                types,
                budget: Some(budget),
            },
        );
        self
    }

    /// Unregisters a parent (its devices go with it).
    pub fn remove_parent(&self, name: &str) {
        let mut s = self.st();
        s.parents.remove(name);
        s.devices.retain(|_, d| d.parent != name);
    }

    /// The next create fails with `errno`.
    pub fn fail_next_create(&self, errno: i32) {
        self.st().fail_create = Some((0, errno));
    }

    /// After `ok` more creates succeed, the next one fails with `errno`.
    pub fn fail_create_after(&self, ok: u32, errno: i32) {
        self.st().fail_create = Some((ok, errno));
    }

    /// Writes of `attr` fail with `errno`.
    pub fn fail_attr(&self, attr: &str, errno: i32) {
        self.st().fail_attr.insert(attr.to_string(), errno);
    }

    /// The device refuses removal (EBUSY) as if a VM used it.
    pub fn set_busy(&self, uuid: Uuid) {
        self.st().busy.push(uuid);
    }

    /// The device can be removed again.
    pub fn set_free(&self, uuid: Uuid) {
        self.st().busy.retain(|u| *u != uuid);
    }

    /// New devices report ready only after this many readiness polls.
    pub fn ready_after_polls(&self, n: u32) {
        self.st().ready_after_polls = n;
    }

    /// Creating this device panics (a bug anywhere below the core, for
    /// checking that one device's panic stays that device's failure).
    pub fn panic_on_create(&self, uuid: Uuid) {
        self.st().panic_create = Some(uuid);
    }

    /// Another process wins the race to create this device: the next create
    /// of it finds it created (same parent and type) and gets EEXIST.
    pub fn race_create(&self, uuid: Uuid) {
        self.st().raced = Some(uuid);
    }

    /// New devices never get a driver bound.
    pub fn never_ready(&self) {
        self.st().never_ready = true;
    }

    /// Every call made so far, one line each (`create mtty mtty-1 <uuid>`, …).
    pub fn log(&self) -> Vec<String> {
        self.st().log.clone()
    }

    /// The attribute values written to a device.
    pub fn attrs_of(&self, uuid: &Uuid) -> Option<BTreeMap<String, String>> {
        self.st().devices.get(uuid).map(|d| d.attrs.clone())
    }

    fn available(s: &State, parent: &str, t: &FakeType) -> u32 {
        let Some(p) = s.parents.get(parent) else {
            return 0;
        };
        match (p.budget, t.cost) {
            (Some(budget), cost) if cost > 0 => {
                let used: u32 = s
                    .devices
                    .values()
                    .filter(|d| d.parent == parent)
                    .filter_map(|d| p.types.iter().find(|x| x.id == d.type_id))
                    .map(|x| x.cost)
                    .sum();
                budget.saturating_sub(used) / cost
            }
            _ => {
                let n = s
                    .devices
                    .values()
                    .filter(|d| d.parent == parent && d.type_id == t.id)
                    .count() as u32;
                t.max.saturating_sub(n)
            }
        }
    }
}

fn os_err(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

impl MdevSysfs for FakeKernel {
    fn parents(&self) -> Result<Vec<ParentName>, SysfsError> {
        Ok(self
            .st()
            .parents
            .keys()
            .filter_map(|p| ParentName::new(p.clone()).ok())
            .collect())
    }

    fn parent_exists(&self, parent: &ParentName) -> bool {
        self.st().parents.contains_key(parent.as_str())
    }

    fn types(&self, parent: &ParentName) -> Result<Vec<TypeInfo>, SysfsError> {
        let s = self.st();
        let Some(p) = s.parents.get(parent.as_str()) else {
            return Ok(Vec::new());
        };
        let mut out: Vec<TypeInfo> = p
            .types
            .iter()
            .filter_map(|t| {
                Some(TypeInfo {
                    type_id: TypeId::new(t.id.clone()).ok()?,
                    available_instances: i64::from(Self::available(&s, parent.as_str(), t)),
                    device_api: t.device_api.clone(),
                    name: t.name.clone(),
                    description: t.description.clone(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.type_id.cmp(&b.type_id));
        Ok(out)
    }

    fn type_info(&self, parent: &ParentName, t: &TypeId) -> Result<Option<TypeInfo>, SysfsError> {
        Ok(self.types(parent)?.into_iter().find(|x| &x.type_id == t))
    }

    fn devices(&self) -> Result<Vec<ActiveDevice>, SysfsError> {
        Ok(self
            .st()
            .devices
            .iter()
            .filter_map(|(u, d)| {
                Some(ActiveDevice {
                    uuid: *u,
                    parent: ParentName::new(d.parent.clone()).ok()?,
                    mdev_type: TypeId::new(d.type_id.clone()).ok()?,
                })
            })
            .collect())
    }

    fn device(&self, uuid: &Uuid) -> Result<Option<ActiveDevice>, SysfsError> {
        Ok(self.devices()?.into_iter().find(|d| &d.uuid == uuid))
    }

    fn create(&self, parent: &ParentName, t: &TypeId, uuid: &Uuid) -> Result<(), SysfsError> {
        let panic_now = self.st().panic_create == Some(*uuid);
        assert!(!panic_now, "injected panic creating {uuid}");
        let mut s = self.st();
        s.log.push(format!("create {parent} {t} {uuid}"));
        let err = |errno| SysfsError::Create {
            uuid: *uuid,
            parent: parent.clone(),
            mdev_type: t.clone(),
            source: os_err(errno),
        };
        match s.fail_create {
            Some((0, errno)) => {
                s.fail_create = None;
                return Err(err(errno));
            }
            Some((n, errno)) => s.fail_create = Some((n - 1, errno)),
            None => {}
        }
        let Some(ty) = s
            .parents
            .get(parent.as_str())
            .and_then(|p| p.types.iter().find(|x| x.id == t.as_str()))
            .cloned()
        else {
            return Err(err(Errno::NOENT.raw_os_error()));
        };
        if s.raced.take() == Some(*uuid) {
            // Another process created it first: it exists now, and this create is refused.
            s.devices.insert(
                *uuid,
                Device {
                    parent: parent.to_string(),
                    type_id: t.to_string(),
                    attrs: BTreeMap::new(),
                    polls_until_ready: 0,
                },
            );
        }
        if s.devices.contains_key(uuid) {
            return Err(err(Errno::EXIST.raw_os_error()));
        }
        if Self::available(&s, parent.as_str(), &ty) == 0 {
            return Err(err(Errno::USERS.raw_os_error()));
        }
        let polls = if s.never_ready {
            u32::MAX
        } else {
            s.ready_after_polls
        };
        s.devices.insert(
            *uuid,
            Device {
                parent: parent.to_string(),
                type_id: t.to_string(),
                attrs: ty
                    .attrs
                    .iter()
                    .map(|a| (a.clone(), String::new()))
                    .collect(),
                polls_until_ready: polls,
            },
        );
        Ok(())
    }

    fn remove(&self, uuid: &Uuid) -> Result<(), SysfsError> {
        let mut s = self.st();
        s.log.push(format!("remove {uuid}"));
        if s.busy.contains(uuid) {
            return Err(SysfsError::Remove {
                uuid: *uuid,
                source: os_err(Errno::BUSY.raw_os_error()),
            });
        }
        match s.devices.remove(uuid) {
            Some(_) => Ok(()),
            None => Err(SysfsError::Remove {
                uuid: *uuid,
                source: os_err(Errno::NOENT.raw_os_error()),
            }),
        }
    }

    fn write_attr(&self, uuid: &Uuid, attr: &AttrName, value: &str) -> Result<(), SysfsError> {
        let mut s = self.st();
        s.log.push(format!("attr {uuid} {attr}={value}"));
        let fail = s.fail_attr.get(attr.as_str()).copied();
        let Some(d) = s.devices.get_mut(uuid) else {
            return Err(SysfsError::NoAttr {
                uuid: *uuid,
                attr: attr.clone(),
            });
        };
        if !d.attrs.contains_key(attr.as_str()) {
            return Err(SysfsError::NoAttr {
                uuid: *uuid,
                attr: attr.clone(),
            });
        }
        if let Some(errno) = fail {
            return Err(SysfsError::AttrWrite {
                uuid: *uuid,
                attr: attr.clone(),
                value: value.to_string(),
                source: os_err(errno),
            });
        }
        d.attrs.insert(attr.to_string(), value.to_string());
        Ok(())
    }

    fn readiness(&self, uuid: &Uuid) -> Readiness {
        let mut s = self.st();
        let Some(d) = s.devices.get_mut(uuid) else {
            return Readiness::default();
        };
        let ready = d.polls_until_ready == 0;
        d.polls_until_ready = d.polls_until_ready.saturating_sub(1);
        Readiness {
            present: true,
            driver_bound: ready,
            iommu_group: ready,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_budget_lowers_other_types() {
        let k = FakeKernel::new();
        let mut small = FakeType::new("mbochs-small", 64);
        small.cost = 4;
        let mut large = FakeType::new("mbochs-large", 4);
        large.cost = 64;
        k.add_budget_parent("mbochs", 256, vec![small, large]);
        let p = ParentName::new("mbochs").unwrap();
        k.create(&p, &TypeId::new("mbochs-large").unwrap(), &Uuid::new_v4())
            .unwrap();
        let t = k.types(&p).unwrap();
        let small = t
            .iter()
            .find(|t| t.type_id.as_str() == "mbochs-small")
            .unwrap();
        assert_eq!(small.available_instances, 48);
    }

    #[test]
    fn capacity_and_duplicates_use_kernel_errnos() {
        let k = FakeKernel::new();
        k.add_parent("mdpy", vec![FakeType::new("mdpy-hd", 1)]);
        let p = ParentName::new("mdpy").unwrap();
        let t = TypeId::new("mdpy-hd").unwrap();
        let u = Uuid::new_v4();
        k.create(&p, &t, &u).unwrap();
        let e = k.create(&p, &t, &u).unwrap_err();
        assert!(e.to_string().contains("EEXIST"), "{e}");
        let e = k.create(&p, &t, &Uuid::new_v4()).unwrap_err();
        assert!(e.to_string().contains("EUSERS"), "{e}");
    }
}
