//! The in-process fake of the mdev sysfs interface: hostdev-kmodel's kernel
//! model behind [`MdevSysfs`], with a log of every call made to it. Its
//! constructors and knobs are the model's (parents with a capacity policy,
//! rows of the model's fault table); no rule of the kernel is written here.
//!
//! Owns: turning the model's answers into `SysfsError`s and the call log.
//! Must not: decide capacity, errnos or readiness (the model does).

use crate::{ActiveDevice, MdevSysfs, Readiness, SysfsError};
use hostdev_kmodel::{errno, Effect, Fault, FaultOp, Kernel, ParentProfile, Policy};
use hostdev_model::format::TypeInfo;
use hostdev_model::{AttrName, ParentName, TypeId, Uuid};
use std::collections::BTreeMap;
use std::io;
use std::sync::{Mutex, MutexGuard};

/// A type a fake parent supports: the model's type description.
pub type FakeType = hostdev_kmodel::TypeProfile;

#[derive(Debug, Default)]
struct State {
    kernel: Kernel,
    log: Vec<String>,
}

/// The fake kernel. Cheap to share behind `&`; all state is behind a mutex.
#[derive(Debug, Default)]
pub struct FakeKernel {
    state: Mutex<State>,
}

/// The model's name of an errno a test injects.
fn errno_name(e: i32) -> &'static str {
    match errno::name(e) {
        Some(n) => n,
        None => panic!("the kernel model knows no errno {e}; add it to hostdev-kmodel's table"),
    }
}

impl FakeKernel {
    /// A kernel with no mdev parents.
    pub fn new() -> Self {
        Self::default()
    }

    fn st(&self) -> MutexGuard<'_, State> {
        // A panicking test thread (an injected panic among them) cannot leave
        // the model in a state worth refusing: faults fire before it changes.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the model itself (a test's way to anything the knobs
    /// below do not name).
    pub fn with_model<R>(&self, f: impl FnOnce(&mut Kernel) -> R) -> R {
        f(&mut self.st().kernel)
    }

    /// Registers a parent whose types each have their own maximum (mtty, mdpy).
    pub fn add_parent(&self, name: &str, types: Vec<FakeType>) -> &Self {
        self.add(ParentProfile::new(name, Policy::PerType, 0, types))
    }

    /// Registers a parent whose types share one budget (mbochs, GVT-g).
    pub fn add_budget_parent(&self, name: &str, budget: u32, types: Vec<FakeType>) -> &Self {
        self.add(ParentProfile::new(
            name,
            Policy::SharedBudget,
            budget,
            types,
        ))
    }

    /// Registers a parent that runs one type at a time (NVIDIA's mdev vGPUs).
    pub fn add_one_type_parent(&self, name: &str, types: Vec<FakeType>) -> &Self {
        self.add(ParentProfile::new(name, Policy::OneType, 0, types))
    }

    /// Registers a parent described in full.
    pub fn add(&self, parent: ParentProfile) -> &Self {
        self.st().kernel.add_parent(parent);
        self
    }

    /// Unregisters a parent (its devices go with it).
    pub fn remove_parent(&self, name: &str) {
        self.st().kernel.remove_parent(name);
    }

    /// Adds a row to the model's fault table.
    pub fn inject(&self, fault: Fault) {
        self.st().kernel.inject(fault);
    }

    /// The next create fails with `errno`.
    pub fn fail_next_create(&self, errno: i32) {
        self.inject(Fault::errno(FaultOp::Create, errno_name(errno)).times(1));
    }

    /// After `ok` more creates succeed, the next one fails with `errno`.
    pub fn fail_create_after(&self, ok: u32, errno: i32) {
        self.inject(
            Fault::errno(FaultOp::Create, errno_name(errno))
                .after(ok)
                .times(1),
        );
    }

    /// Writes of `attr` fail with `errno`.
    pub fn fail_attr(&self, attr: &str, errno: i32) {
        self.inject(Fault::errno(FaultOp::Attr, errno_name(errno)).named(attr));
    }

    /// The device refuses removal (EBUSY) as if a VM used it.
    pub fn set_busy(&self, uuid: Uuid) {
        self.inject(Fault::errno(FaultOp::Remove, "EBUSY").named(&uuid.to_string()));
    }

    /// The device can be removed again.
    pub fn set_free(&self, uuid: Uuid) {
        let u = uuid.to_string();
        self.st()
            .kernel
            .clear_faults(|f| f.op == FaultOp::Remove && f.name.as_deref() == Some(u.as_str()));
    }

    /// Replaces the rows that say when new devices' drivers bind.
    fn set_binding(&self, row: Fault) {
        let mut s = self.st();
        s.kernel.clear_faults(|f| {
            f.op == FaultOp::Create && matches!(f.effect, Some(Effect::LateBind | Effect::Unbound))
        });
        s.kernel.inject(row);
    }

    /// New devices report ready only after this many readiness polls.
    pub fn ready_after_polls(&self, n: u32) {
        let mut f = Fault::effect(FaultOp::Create, Effect::LateBind);
        f.polls = n;
        self.set_binding(f);
    }

    /// Creating this device panics (a bug anywhere below the core, for
    /// checking that one device's panic stays that device's failure).
    pub fn panic_on_create(&self, uuid: Uuid) {
        self.inject(Fault::effect(FaultOp::Create, Effect::Panic).for_device(&uuid.to_string()));
    }

    /// Another process wins the race to create this device: the next create
    /// of it finds it created (same parent and type) and gets EEXIST.
    pub fn race_create(&self, uuid: Uuid) {
        self.inject(
            Fault::effect(FaultOp::Create, Effect::Race)
                .for_device(&uuid.to_string())
                .times(1),
        );
    }

    /// New devices never get a driver bound.
    pub fn never_ready(&self) {
        self.set_binding(Fault::effect(FaultOp::Create, Effect::Unbound));
    }

    /// Every call made so far, one line each (`create mtty mtty-1 <uuid>`, …).
    pub fn log(&self) -> Vec<String> {
        self.st().log.clone()
    }

    /// The attribute values written to a device.
    pub fn attrs_of(&self, uuid: &Uuid) -> Option<BTreeMap<String, String>> {
        self.st().kernel.attrs(&uuid.to_string())
    }
}

fn os_err(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

impl MdevSysfs for FakeKernel {
    fn parents(&self) -> Result<Vec<ParentName>, SysfsError> {
        Ok(self
            .st()
            .kernel
            .parents()
            .into_iter()
            .filter_map(|p| ParentName::new(p).ok())
            .collect())
    }

    fn parent_exists(&self, parent: &ParentName) -> bool {
        self.st().kernel.parent(parent.as_str()).is_some()
    }

    fn types(&self, parent: &ParentName) -> Result<Vec<TypeInfo>, SysfsError> {
        let s = self.st();
        let Some(p) = s.kernel.parent(parent.as_str()) else {
            return Ok(Vec::new());
        };
        let mut out: Vec<TypeInfo> = p
            .types
            .iter()
            .filter_map(|t| {
                let available = s.kernel.available(parent.as_str(), &t.id)?;
                Some(TypeInfo {
                    type_id: TypeId::new(t.id.clone()).ok()?,
                    available_instances: i64::from(available),
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
            .kernel
            .devices()
            .into_iter()
            .filter_map(|d| {
                Some(ActiveDevice {
                    uuid: d.uuid.parse().ok()?,
                    parent: ParentName::new(d.parent).ok()?,
                    mdev_type: TypeId::new(d.type_id).ok()?,
                })
            })
            .collect())
    }

    fn device(&self, uuid: &Uuid) -> Result<Option<ActiveDevice>, SysfsError> {
        Ok(self.devices()?.into_iter().find(|d| &d.uuid == uuid))
    }

    fn create(&self, parent: &ParentName, t: &TypeId, uuid: &Uuid) -> Result<(), SysfsError> {
        let mut s = self.st();
        s.log.push(format!("create {parent} {t} {uuid}"));
        s.kernel
            .create(parent.as_str(), t.as_str(), &uuid.to_string())
            .map_err(|errno| SysfsError::Create {
                uuid: *uuid,
                parent: parent.clone(),
                mdev_type: t.clone(),
                source: os_err(errno),
            })
    }

    fn remove(&self, uuid: &Uuid) -> Result<(), SysfsError> {
        let mut s = self.st();
        s.log.push(format!("remove {uuid}"));
        s.kernel
            .remove(&uuid.to_string())
            .map_err(|errno| SysfsError::Remove {
                uuid: *uuid,
                source: os_err(errno),
            })
    }

    fn write_attr(&self, uuid: &Uuid, attr: &AttrName, value: &str) -> Result<(), SysfsError> {
        let mut s = self.st();
        s.log.push(format!("attr {uuid} {attr}={value}"));
        let has = s
            .kernel
            .attrs(&uuid.to_string())
            .is_some_and(|a| a.contains_key(attr.as_str()));
        if !has {
            return Err(SysfsError::NoAttr {
                uuid: *uuid,
                attr: attr.clone(),
            });
        }
        s.kernel
            .write_attr(&uuid.to_string(), attr.as_str(), value)
            .map_err(|errno| SysfsError::AttrWrite {
                uuid: *uuid,
                attr: attr.clone(),
                value: value.to_string(),
                source: os_err(errno),
            })
    }

    fn readiness(&self, uuid: &Uuid) -> Readiness {
        let bound = self.st().kernel.poll_bound(&uuid.to_string());
        match bound {
            None => Readiness::default(),
            Some(ready) => Readiness {
                present: true,
                driver_bound: ready,
                iommu_group: ready,
            },
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
