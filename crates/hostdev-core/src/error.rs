//! The errors of hostdev-core: each kind's module owns its error type (one
//! variant per failed step, with its code, class and target beside it:
//! `mdev::MdevError`, `vgpu::VgpuError`, `vdpa::VdpaError`,
//! `pool::PoolError`, `host::HostError`, `migrate::MigrateError`), nested
//! here into [`CoreError`] with the few failures no kind owns (a name or
//! number refused on input, the store, VFIO, the udev rule, the root).

use crate::dra::DraError;
use crate::host::HostError;
use crate::mdev::MdevError;
use crate::migrate::MigrateError;
use crate::pool::PoolError;
use crate::vdpa::VdpaError;
use crate::vgpu::VgpuError;
use hostdev_model::{NameError, ParentName};
use hostdev_store::StoreError;
use hostdev_sysfs::{Readiness, SysfsError};
use std::path::PathBuf;

/// A failed operation.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A mediated-device step failed.
    #[error(transparent)]
    Mdev(#[from] MdevError),
    /// A vGPU or SR-IOV step failed.
    #[error(transparent)]
    Vgpu(#[from] VgpuError),
    /// A vDPA step failed.
    #[error(transparent)]
    Vdpa(#[from] VdpaError),
    /// A pool step failed.
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// A host-file step failed.
    #[error(transparent)]
    Host(#[from] HostError),
    /// A migration step failed.
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    /// A Kubernetes DRA step failed.
    #[error(transparent)]
    Dra(#[from] DraError),
    /// A name given on input is unusable.
    #[error(transparent)]
    Name(#[from] NameError),
    /// A number given on input is outside what hostdev takes.
    #[error("{what} {value} is out of range: at most {max}")]
    OutOfRange {
        /// What it is (`the wait`).
        what: &'static str,
        /// As given.
        value: String,
        /// The largest taken.
        max: String,
    },
    /// Reading or writing the definition store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Opening or asking a device through VFIO failed.
    #[error(transparent)]
    Vfio(Box<hostdev_vfio::VfioError>),
    /// A binary path the udev rule cannot carry.
    #[error("the udev rule cannot name {} (a rule takes an absolute path of letters, digits and /._+-,:@ only; install the binary at such a path)", exe.display())]
    RulePath {
        /// The path.
        exe: PathBuf,
    },
    /// The root prefix has no PCI sysfs: not a Linux host's root, or sysfs
    /// is not mounted there.
    #[error("{} has no sysfs with PCI devices or mdev parents ({} and {} are missing): it is not a Linux host's root, or sysfs is not mounted there", root.display(), root.join("sys/bus/pci").display(), root.join("sys/class/mdev_bus").display())]
    NoSysfs {
        /// The root prefix.
        root: PathBuf,
    },
    /// Restoring one device panicked; it is reported failed, the others go on.
    #[error("restoring {device} stopped on an internal error (a panic); the other devices were not affected")]
    RestorePanicked {
        /// The device (UUID, VF or name) or, for a whole worker, its parent.
        device: String,
    },
    /// Installing a file (the udev rule) failed.
    #[error("cannot install {path}")]
    Install {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: Box<StoreError>,
    },
    /// A PCI address read back from pool state does not parse.
    #[error(transparent)]
    BadAddress(#[from] hostdev_model::pci::PciAddressError),
}

pub(crate) fn on_parent(p: &Option<ParentName>) -> String {
    p.as_ref().map(|p| format!(" on {p}")).unwrap_or_default()
}

pub(crate) fn join(ps: &[ParentName]) -> String {
    ps.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
}

pub(crate) fn hint_text(h: &Option<ParentName>) -> String {
    h.as_ref()
        .map(|h| format!("; did you mean {h}?"))
        .unwrap_or_default()
}

pub(crate) fn missing(r: &Readiness) -> String {
    let mut m = Vec::new();
    if !r.present {
        m.push("no device directory");
    }
    if !r.driver_bound {
        m.push("no driver bound");
    }
    if !r.iommu_group {
        m.push("no IOMMU group");
    }
    m.join(", ")
}

pub(crate) fn stderr_hint(s: &str) -> String {
    let s = s.trim();
    if s.is_empty() {
        String::new()
    } else {
        format!(": {s}")
    }
}

impl From<hostdev_sysfs::sriov::SriovError> for CoreError {
    fn from(e: hostdev_sysfs::sriov::SriovError) -> Self {
        CoreError::Vgpu(e.into())
    }
}

impl From<hostdev_vfio::VfioError> for CoreError {
    fn from(e: hostdev_vfio::VfioError) -> Self {
        CoreError::Vfio(Box::new(e))
    }
}

impl From<hostdev_vdpa::VdpaError> for CoreError {
    fn from(e: hostdev_vdpa::VdpaError) -> Self {
        CoreError::Vdpa(e.into())
    }
}

impl From<hostdev_model::vdpa::VdpaValueError> for CoreError {
    fn from(e: hostdev_model::vdpa::VdpaValueError) -> Self {
        CoreError::Vdpa(VdpaError::Value(e))
    }
}

impl CoreError {
    /// Wraps a failed sysfs read.
    pub(crate) fn inventory(e: SysfsError) -> Self {
        CoreError::Mdev(MdevError::Inventory(Box::new(e)))
    }

    /// The kernel refused a create because the device exists already
    /// (EEXIST from the mdev core, or the vdpa family's "exists").
    pub fn is_exists(&self) -> bool {
        match self {
            CoreError::Mdev(MdevError::Create { source, .. }) => matches!(
                &**source,
                SysfsError::Create { source, .. }
                    if source.raw_os_error() == Some(rustix::io::Errno::EXIST.raw_os_error())
            ),
            CoreError::Vdpa(e) => e.is_exists(),
            _ => false,
        }
    }

    /// The kernel has no vdpa netlink family (module not loaded, or another
    /// network namespace): no vDPA device can exist for this process.
    pub fn is_no_family(&self) -> bool {
        matches!(self, CoreError::Vdpa(e) if e.is_no_family())
    }

    /// The sentence and its causes joined once (thiserror's transparent
    /// variants repeat their source; it is printed once).
    pub fn chain(&self) -> String {
        chain(self)
    }
}

/// Runs one device's restore step so that a panic in it is that device's
/// failure, never a vanished row or an aborted batch.
pub(crate) fn guarded<T>(
    device: &dyn std::fmt::Display,
    f: impl FnOnce() -> Result<T, CoreError>,
) -> Result<T, CoreError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(CoreError::RestorePanicked {
            device: device.to_string(),
        })
    })
}

/// Any error and its sources as one line, each cause printed once.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if parts.last().is_none_or(|l| !l.ends_with(&s)) {
            parts.push(s);
        }
        cur = c.source();
    }
    parts.join(": ")
}
