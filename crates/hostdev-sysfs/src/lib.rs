//! The kernel's mediated-device sysfs interface.
//!
//! Owns: every read and write under `/sys/class/mdev_bus` and `/sys/bus/mdev`,
//! behind the [`MdevSysfs`] trait, with two implementations chosen explicitly
//! by the caller: [`RealSysfs`] (a root-prefixed real tree) and [`FakeKernel`]
//! (in memory, reacting to create/remove the way the kernel does).
//! Must not: decide policy (which devices to start, in what order) or touch
//! persistent configuration; that is hostdev-core's and hostdev-store's.
#![deny(missing_docs)]

pub mod binding;
mod errno;
mod fake;
mod real;
pub mod sriov;

pub use errno::describe_errno;
pub use fake::{FakeKernel, FakeType};
pub use real::{DeviceMemo, RealSysfs};

/// What a device directory says about itself, for pool selectors: its PCI
/// ids and NUMA node (where it has them) and the driver bound to it. Missing
/// or unreadable files leave a fact unknown; nothing here fails.
pub fn device_facts(dir: &std::path::Path, name: &str) -> MemberFacts {
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    MemberFacts {
        name: name.to_string(),
        vendor: read("vendor"),
        device: read("device"),
        numa_node: read("numa_node").and_then(|s| s.parse().ok()),
        driver: std::fs::read_link(dir.join("driver"))
            .ok()
            .and_then(|l| l.file_name().map(|n| n.to_string_lossy().into_owned())),
    }
}

/// Who drives the device at `dir` (a sysfs device directory under `root`):
/// its driver, the driver's module with the module's `version` and
/// `srcversion`, and the kernel release. What cannot be read is `None`.
pub fn driver_identity(root: &std::path::Path, dir: &std::path::Path) -> DriverIdentity {
    let link = |p: PathBuf| {
        std::fs::read_link(p)
            .ok()
            .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()))
    };
    let read = |p: PathBuf| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let module = link(dir.join("driver/module"));
    // A link's file name is one normal path component.
    let m = |f: &str| {
        module
            .as_deref()
            .and_then(|m| read(root.join("sys/module").join(m).join(f)))
    };
    DriverIdentity {
        driver: link(dir.join("driver")),
        version: m("version"),
        srcversion: m("srcversion"),
        module: module.clone(),
        kernel: read(root.join("proc/sys/kernel/osrelease")),
    }
}

use hostdev_model::format::{CachedType, TypeCache, TypeInfo};
use hostdev_model::pool::MemberFacts;
use hostdev_model::probe::DriverIdentity;
use hostdev_model::{AttrName, ParentName, TypeId, Uuid};
use std::io;
use std::path::PathBuf;

/// A running mediated device as sysfs shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveDevice {
    /// Its UUID.
    pub uuid: Uuid,
    /// The parent it was created on.
    pub parent: ParentName,
    /// Its type.
    pub mdev_type: TypeId,
}

/// How far a freshly created device has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Readiness {
    /// `/sys/bus/mdev/devices/<uuid>` exists.
    pub present: bool,
    /// A driver is bound (`driver` link).
    pub driver_bound: bool,
    /// The `iommu_group` link exists.
    pub iommu_group: bool,
}

impl Readiness {
    /// Everything a VM needs is there.
    pub fn is_ready(&self) -> bool {
        self.present && self.driver_bound && self.iommu_group
    }
}

/// A failed sysfs step, carrying what it was about.
#[derive(Debug, thiserror::Error)]
pub enum SysfsError {
    /// Reading a sysfs file or directory failed.
    #[error("cannot read {path}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A sysfs file held something unexpected.
    #[error("{path} holds '{content}', which is not {expected}")]
    Malformed {
        /// The path.
        path: PathBuf,
        /// What it held.
        content: String,
        /// What it should have held.
        expected: &'static str,
    },
    /// Writing the UUID to `create` failed.
    #[error("the kernel refused to create mdev {uuid} of type {mdev_type} on {parent}: {}", describe_errno(.source))]
    Create {
        /// The device.
        uuid: Uuid,
        /// The parent.
        parent: ParentName,
        /// The type.
        mdev_type: TypeId,
        /// The kernel's error.
        source: io::Error,
    },
    /// Writing `remove` failed.
    #[error("the kernel refused to remove mdev {uuid}: {}", describe_errno(.source))]
    Remove {
        /// The device.
        uuid: Uuid,
        /// The kernel's error.
        source: io::Error,
    },
    /// The device has no such attribute file.
    #[error("mdev {uuid} has no attribute '{attr}'")]
    NoAttr {
        /// The device.
        uuid: Uuid,
        /// The attribute.
        attr: AttrName,
    },
    /// The attribute path is not a regular file inside the device directory.
    #[error("attribute '{attr}' of mdev {uuid} is not a regular file in the device directory")]
    AttrNotFile {
        /// The device.
        uuid: Uuid,
        /// The attribute.
        attr: AttrName,
    },
    /// Writing an attribute failed.
    #[error("the kernel refused value '{value}' for attribute '{attr}' of mdev {uuid}: {}", describe_errno(.source))]
    AttrWrite {
        /// The device.
        uuid: Uuid,
        /// The attribute.
        attr: AttrName,
        /// The value.
        value: String,
        /// The kernel's error.
        source: io::Error,
    },
}

/// The mdev part of sysfs, as hostdev-core needs it.
pub trait MdevSysfs: Send + Sync {
    /// Parents registered with mdev, sorted by name.
    fn parents(&self) -> Result<Vec<ParentName>, SysfsError>;
    /// Whether `parent` is registered with mdev.
    fn parent_exists(&self, parent: &ParentName) -> bool;
    /// The supported types of `parent`, sorted by id.
    fn types(&self, parent: &ParentName) -> Result<Vec<TypeInfo>, SysfsError>;
    /// Like [`MdevSysfs::types`], taking static facts from `cache` where it is
    /// still valid and adding what it had to read to `fresh`.
    fn types_cached(
        &self,
        parent: &ParentName,
        cache: &TypeCache,
        fresh: &mut Vec<(String, CachedType)>,
    ) -> Result<Vec<TypeInfo>, SysfsError> {
        let _ = (cache, fresh);
        self.types(parent)
    }
    /// One type of `parent`, or `None` if the parent does not support it.
    fn type_info(&self, parent: &ParentName, t: &TypeId) -> Result<Option<TypeInfo>, SysfsError>;
    /// `available_instances` of one type; `None` if the parent or type is not there.
    fn available_instances(
        &self,
        parent: &ParentName,
        t: &TypeId,
    ) -> Result<Option<i64>, SysfsError> {
        Ok(self.type_info(parent, t)?.map(|i| i.available_instances))
    }
    /// Running devices, sorted by UUID.
    fn devices(&self) -> Result<Vec<ActiveDevice>, SysfsError>;
    /// Running devices' UUIDs and parents only (cheaper than [`MdevSysfs::devices`]).
    fn running_parents(&self) -> Result<Vec<(Uuid, ParentName)>, SysfsError> {
        Ok(self
            .devices()?
            .into_iter()
            .map(|d| (d.uuid, d.parent))
            .collect())
    }
    /// A number that changes whenever a device is created or removed (so
    /// whenever [`MdevSysfs::devices`] would answer differently), read without
    /// looking at any device; `None` when this interface cannot tell.
    fn devices_fingerprint(&self) -> Option<u64> {
        None
    }
    /// What the parent says about itself (PCI ids, NUMA node, driver), for
    /// pool selectors; only its name where this interface cannot tell.
    fn parent_facts(&self, parent: &ParentName) -> MemberFacts {
        MemberFacts {
            name: parent.to_string(),
            ..MemberFacts::default()
        }
    }
    /// The driver a running device is bound to, its module's versions and
    /// the kernel release (what a cached probe answer depends on); nothing
    /// where this interface cannot tell.
    fn device_driver(&self, _uuid: &Uuid) -> hostdev_model::probe::DriverIdentity {
        hostdev_model::probe::DriverIdentity::default()
    }
    /// One running device, if it runs.
    fn device(&self, uuid: &Uuid) -> Result<Option<ActiveDevice>, SysfsError>;
    /// Writes `uuid` to the type's `create` file.
    fn create(&self, parent: &ParentName, t: &TypeId, uuid: &Uuid) -> Result<(), SysfsError>;
    /// Writes `1` to the device's `remove` file.
    fn remove(&self, uuid: &Uuid) -> Result<(), SysfsError>;
    /// Writes one attribute of a running device; the name must be a regular
    /// file directly in the device directory.
    fn write_attr(&self, uuid: &Uuid, attr: &AttrName, value: &str) -> Result<(), SysfsError>;
    /// How ready a device is.
    fn readiness(&self, uuid: &Uuid) -> Readiness;
}

/// One kernel shared by several views of the host (a daemon's test makes a
/// fresh view per operation over one fake, as over the one real kernel).
impl<T: MdevSysfs + ?Sized> MdevSysfs for std::sync::Arc<T> {
    fn parents(&self) -> Result<Vec<ParentName>, SysfsError> {
        (**self).parents()
    }
    fn parent_exists(&self, parent: &ParentName) -> bool {
        (**self).parent_exists(parent)
    }
    fn types(&self, parent: &ParentName) -> Result<Vec<TypeInfo>, SysfsError> {
        (**self).types(parent)
    }
    fn types_cached(
        &self,
        parent: &ParentName,
        cache: &TypeCache,
        fresh: &mut Vec<(String, CachedType)>,
    ) -> Result<Vec<TypeInfo>, SysfsError> {
        (**self).types_cached(parent, cache, fresh)
    }
    fn type_info(&self, parent: &ParentName, t: &TypeId) -> Result<Option<TypeInfo>, SysfsError> {
        (**self).type_info(parent, t)
    }
    fn available_instances(
        &self,
        parent: &ParentName,
        t: &TypeId,
    ) -> Result<Option<i64>, SysfsError> {
        (**self).available_instances(parent, t)
    }
    fn devices(&self) -> Result<Vec<ActiveDevice>, SysfsError> {
        (**self).devices()
    }
    fn running_parents(&self) -> Result<Vec<(Uuid, ParentName)>, SysfsError> {
        (**self).running_parents()
    }
    fn devices_fingerprint(&self) -> Option<u64> {
        (**self).devices_fingerprint()
    }
    fn parent_facts(&self, parent: &ParentName) -> MemberFacts {
        (**self).parent_facts(parent)
    }
    fn device_driver(&self, uuid: &Uuid) -> hostdev_model::probe::DriverIdentity {
        (**self).device_driver(uuid)
    }
    fn device(&self, uuid: &Uuid) -> Result<Option<ActiveDevice>, SysfsError> {
        (**self).device(uuid)
    }
    fn create(&self, parent: &ParentName, t: &TypeId, uuid: &Uuid) -> Result<(), SysfsError> {
        (**self).create(parent, t, uuid)
    }
    fn remove(&self, uuid: &Uuid) -> Result<(), SysfsError> {
        (**self).remove(uuid)
    }
    fn write_attr(&self, uuid: &Uuid, attr: &AttrName, value: &str) -> Result<(), SysfsError> {
        (**self).write_attr(uuid, attr, value)
    }
    fn readiness(&self, uuid: &Uuid) -> Readiness {
        (**self).readiness(uuid)
    }
}
