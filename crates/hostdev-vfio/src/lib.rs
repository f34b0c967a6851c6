//! VFIO, the way QEMU opens a device: the container (`/dev/vfio/vfio`), the
//! device's IOMMU group (`/dev/vfio/N`, from its `iommu_group` link), the
//! device fd (`VFIO_GROUP_GET_DEVICE_FD`), then questions: device info,
//! regions, interrupts, display (`VFIO_DEVICE_QUERY_GFX_PLANE` probes) and
//! migration (`VFIO_DEVICE_FEATURE` GET|MIGRATION).
//!
//! Owns: the only `unsafe` of the workspace (the ioctls, in `real`, each
//! block with its `// SAFETY:` line), the [`Vfio`] trait, and [`FakeVfio`].
//! Must not: create or remove devices, keep a device open after answering
//! (an open group is exclusive: a VM could not start meanwhile), or decide
//! what an answer means for a migration (hostdev-core does).
#![deny(missing_docs)]
#![allow(unsafe_code)] // this crate is where the kernel's ioctls are called

mod real;

use hostdev_model::pci::PciAddress;
pub use hostdev_model::probe::{Display, Irq, Migration, Probe, Region};
use hostdev_model::Uuid;
pub use real::RealVfio;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A failed probe step, with the device and what was asked.
#[derive(Debug, thiserror::Error)]
pub enum VfioError {
    /// `/dev/vfio/vfio` is missing.
    #[error("VFIO is not available: {path} does not exist (is the vfio module loaded?)")]
    NoVfio {
        /// The container device node.
        path: PathBuf,
    },
    /// The device has no IOMMU group link.
    #[error("{device} has no IOMMU group: it is not bound to a VFIO driver (no {path})")]
    NoGroup {
        /// The device.
        device: String,
        /// The link looked for.
        path: PathBuf,
    },
    /// The group is open elsewhere (a VM holds the device).
    #[error("{device} is in use: VFIO group {group} is held by another program (a VM?)")]
    Busy {
        /// The device.
        device: String,
        /// The group number.
        group: String,
    },
    /// Some device in the group is not bound to a VFIO driver.
    #[error("VFIO group {group} of {device} is not viable: every device in it must be bound to a VFIO driver")]
    NotViable {
        /// The device.
        device: String,
        /// The group number.
        group: String,
    },
    /// The container has no type1 IOMMU backend.
    #[error("VFIO has no type1 IOMMU backend for {device}: load the vfio_iommu_type1 module")]
    NoType1 {
        /// The device.
        device: String,
    },
    /// The kernel's VFIO API is not the one this code speaks.
    #[error("the kernel's VFIO API version is {version}, not 0")]
    ApiVersion {
        /// What the kernel answered.
        version: i32,
    },
    /// A file could not be opened.
    #[error("cannot open {path}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// An ioctl failed.
    #[error("{what} failed for {device}")]
    Ioctl {
        /// The device.
        device: String,
        /// The step (`VFIO_DEVICE_GET_INFO`, …).
        what: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl VfioError {
    /// A stable code for the API and the CLI's JSON errors.
    pub fn code(&self) -> &'static str {
        match self {
            VfioError::NoVfio { .. } => "vfio.unavailable",
            VfioError::NoGroup { .. } => "vfio.no_group",
            VfioError::Busy { .. } => "vfio.busy",
            VfioError::NotViable { .. } => "vfio.not_viable",
            VfioError::NoType1 { .. } => "vfio.no_type1",
            VfioError::ApiVersion { .. } => "vfio.api",
            VfioError::Open { .. } => "vfio.open",
            VfioError::Ioctl { .. } => "vfio.ioctl",
        }
    }
}

/// A device VFIO can open: its name in its group is its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A mediated device (`/sys/bus/mdev/devices/UUID`).
    Mdev(Uuid),
    /// A PCI function bound to a VFIO driver (`/sys/bus/pci/devices/ADDR`).
    Pci(PciAddress),
}

impl Target {
    /// Its name in its IOMMU group.
    pub fn name(&self) -> String {
        match self {
            Target::Mdev(u) => u.to_string(),
            Target::Pci(a) => a.as_str().to_string(),
        }
    }

    /// Its sysfs directory under `root`.
    pub fn dir(&self, root: &Path) -> PathBuf {
        match self {
            Target::Mdev(u) => root.join("sys/bus/mdev/devices").join(u.to_string()),
            Target::Pci(a) => root.join("sys/bus/pci/devices").join(a.as_str()),
        }
    }
}

/// Asks a device what it can do.
pub trait Vfio: Send + Sync + std::fmt::Debug {
    /// Opens the device, asks, closes.
    fn probe(&self, t: &Target) -> Result<Probe, VfioError>;

    /// The IOMMU group through which something (a VM) holds the device, if
    /// one does: its group cannot be opened (`EBUSY`). Asks nothing of the
    /// device itself — a probe opens the device, which resets a PCI
    /// function and brings an NVIDIA vGPU up and down — so it is what a
    /// step asks before removing a device. `None` also when it cannot tell
    /// (no group, no VFIO).
    fn held(&self, t: &Target) -> Option<String> {
        match self.probe(t) {
            Err(VfioError::Busy { group, .. }) => Some(group),
            _ => None,
        }
    }
}

/// Answers set by a test, by device name; a device without one has no
/// IOMMU group.
#[derive(Debug, Default)]
pub struct FakeVfio {
    answers: Mutex<BTreeMap<String, Result<Probe, FakeRefusal>>>,
    /// What a device without its own answer answers (a type probe's
    /// transient device has a name no test knows beforehand).
    fallback: Mutex<Option<Probe>>,
}

/// Why a fake device cannot be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeRefusal {
    /// As if a VM held its group.
    Busy,
}

impl FakeVfio {
    /// No devices.
    pub fn new() -> FakeVfio {
        FakeVfio::default()
    }

    /// Every device without its own answer answers `p` from now on.
    pub fn set_fallback(&self, p: Probe) {
        *self.fallback.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
    }

    /// `name` answers `p` from now on.
    pub fn set(&self, name: &str, p: Result<Probe, FakeRefusal>) {
        self.answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), p);
    }

    /// `name` answers as before any answer was set for it (a VM that held
    /// it let go).
    pub fn forget(&self, name: &str) {
        self.answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }
}

impl Vfio for FakeVfio {
    fn probe(&self, t: &Target) -> Result<Probe, VfioError> {
        let name = t.name();
        match self
            .answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&name)
        {
            Some(Ok(p)) => Ok(p.clone()),
            Some(Err(FakeRefusal::Busy)) => Err(VfioError::Busy {
                device: name.to_string(),
                group: "0".into(),
            }),
            None => match &*self.fallback.lock().unwrap_or_else(|e| e.into_inner()) {
                Some(p) => Ok(p.clone()),
                None => Err(VfioError::NoGroup {
                    path: t.dir(Path::new("/")).join("iommu_group"),
                    device: name,
                }),
            },
        }
    }
}
