//! The errors of hostdev-core: one variant per failed step, each carrying the
//! device, parent or path it concerned.

use hostdev_model::config::{ConfigError, EditError};
use hostdev_model::{NameError, ParentName, TypeId, Uuid};
use hostdev_store::StoreError;
use hostdev_sysfs::{Readiness, SysfsError};
use std::path::PathBuf;
use std::time::Duration;

/// A failed operation.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A name given on input is unusable.
    #[error(transparent)]
    Name(#[from] NameError),
    /// Reading sysfs failed.
    #[error("cannot read the kernel's mdev state")]
    Inventory(#[source] Box<SysfsError>),
    /// Reading or writing the definition store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A JSON file given on input cannot be read.
    #[error("cannot read JSON file {path}")]
    ReadJson {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A JSON file or stored definition given on input is malformed.
    #[error("{path} is not a usable device definition: {source}")]
    BadJson {
        /// The file.
        path: PathBuf,
        /// Why.
        source: ConfigError,
    },
    /// No parent was given and none can be inferred.
    #[error("no parent was given for mdev {uuid}, and the device is not running to take it from")]
    NoParent {
        /// The device.
        uuid: Uuid,
    },
    /// A parent was given without a UUID and without a type.
    #[error("no mdev type was given for the device on {parent}")]
    NoType {
        /// The parent.
        parent: ParentName,
    },
    /// The device is already defined under this parent.
    #[error("mdev {uuid} is already defined on {parent}")]
    AlreadyDefined {
        /// The device.
        uuid: Uuid,
        /// The parent.
        parent: ParentName,
    },
    /// No definition matches.
    #[error("mdev {uuid} is not defined{}", on_parent(.parent))]
    NotDefined {
        /// The device.
        uuid: Uuid,
        /// The parent it was looked for under, if one was given.
        parent: Option<ParentName>,
    },
    /// Several definitions match and no parent was given.
    #[error("mdev {uuid} is defined on several parents ({}); give one with --parent", join(.parents))]
    Ambiguous {
        /// The device.
        uuid: Uuid,
        /// The parents it is defined on.
        parents: Vec<ParentName>,
    },
    /// An edit of a definition is impossible.
    #[error("cannot modify mdev {uuid} on {parent}: {source}")]
    Edit {
        /// The device.
        uuid: Uuid,
        /// The parent.
        parent: ParentName,
        /// Why.
        source: EditError,
    },
    /// The device is running already.
    #[error("mdev {uuid} is already running on {parent}")]
    AlreadyRunning {
        /// The device.
        uuid: Uuid,
        /// Where it runs.
        parent: ParentName,
    },
    /// The device is not running.
    #[error("mdev {uuid} is not running")]
    NotRunning {
        /// The device.
        uuid: Uuid,
    },
    /// The parent is not registered with mdev.
    #[error("parent {parent} is not registered for mdev support{}", hint_text(.hint))]
    ParentAbsent {
        /// The parent.
        parent: ParentName,
        /// A registered parent whose name differs only in case.
        hint: Option<ParentName>,
    },
    /// The parent does not support the type.
    #[error("parent {parent} does not support mdev type {mdev_type}")]
    TypeUnsupported {
        /// The parent.
        parent: ParentName,
        /// The type.
        mdev_type: TypeId,
    },
    /// No instance of the type can be created.
    #[error("no available instances of {mdev_type} on {parent}")]
    NoCapacity {
        /// The parent.
        parent: ParentName,
        /// The type.
        mdev_type: TypeId,
    },
    /// The kernel refused to create the device.
    #[error("cannot start mdev {uuid}")]
    Create {
        /// The device.
        uuid: Uuid,
        /// The kernel's refusal.
        source: Box<SysfsError>,
    },
    /// The device did not become ready in time; it was removed again.
    #[error("mdev {uuid} did not become ready within {waited:?} ({}); it was removed again", missing(.readiness))]
    NotReady {
        /// The device.
        uuid: Uuid,
        /// How long we waited.
        waited: Duration,
        /// What was there when we gave up.
        readiness: Readiness,
    },
    /// An attribute write failed; the device was removed again.
    #[error("cannot set attribute '{attr}' of mdev {uuid}; the device was removed again")]
    Attr {
        /// The device.
        uuid: Uuid,
        /// The attribute.
        attr: String,
        /// The failure.
        source: Box<SysfsError>,
    },
    /// An attribute write failed and removing the device failed too.
    #[error("cannot set attribute '{attr}' of mdev {uuid}, and removing the device again failed too ({remove_error}); it is still running")]
    AttrNoRollback {
        /// The device.
        uuid: Uuid,
        /// The attribute.
        attr: String,
        /// The failure.
        source: Box<SysfsError>,
        /// Why the rollback failed.
        remove_error: String,
    },
    /// The kernel refused to remove the device.
    #[error("cannot stop mdev {uuid}")]
    Remove {
        /// The device.
        uuid: Uuid,
        /// The kernel's refusal.
        source: Box<SysfsError>,
    },
    /// A callout script refused the operation.
    #[error("callout {script} refused to {action} mdev {uuid} (exit status {status}){}", stderr_hint(.stderr))]
    CalloutRefused {
        /// The script.
        script: PathBuf,
        /// The action.
        action: &'static str,
        /// The device.
        uuid: Uuid,
        /// Its exit status.
        status: i32,
        /// What it printed on stderr.
        stderr: String,
    },
    /// Live modification needs a running device and something to change.
    #[error("cannot modify running mdev {uuid}: {why}")]
    Live {
        /// The device.
        uuid: Uuid,
        /// Why.
        why: String,
    },
    /// Reading or writing SR-IOV/vGPU sysfs files failed.
    #[error("SR-IOV step failed")]
    Sriov(#[source] Box<hostdev_sysfs::sriov::SriovError>),
    /// A vDPA step failed.
    #[error("vDPA operation failed")]
    Vdpa(#[source] Box<hostdev_vdpa::VdpaError>),
    /// A vDPA operation is impossible, with the reason as a sentence.
    #[error("vDPA device {name}: {why}")]
    VdpaRefused {
        /// The device name.
        name: String,
        /// Why.
        why: String,
    },
    /// A vGPU operation is impossible, with the reason as a sentence.
    #[error("vGPU on VF {vf}: {why}")]
    Vgpu {
        /// The VF (or PF).
        vf: String,
        /// Why.
        why: String,
    },
    /// Some devices of a batch failed (each is reported separately).
    #[error("{failed} of {total} devices failed to start")]
    Batch {
        /// How many failed.
        failed: usize,
        /// How many were tried.
        total: usize,
    },
}

fn on_parent(p: &Option<ParentName>) -> String {
    p.as_ref().map(|p| format!(" on {p}")).unwrap_or_default()
}

fn join(ps: &[ParentName]) -> String {
    ps.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
}

fn hint_text(h: &Option<ParentName>) -> String {
    h.as_ref()
        .map(|h| format!("; did you mean {h}?"))
        .unwrap_or_default()
}

fn missing(r: &Readiness) -> String {
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

fn stderr_hint(s: &str) -> String {
    let s = s.trim();
    if s.is_empty() {
        String::new()
    } else {
        format!(": {s}")
    }
}

impl From<hostdev_sysfs::sriov::SriovError> for CoreError {
    fn from(e: hostdev_sysfs::sriov::SriovError) -> Self {
        CoreError::Sriov(Box::new(e))
    }
}

impl CoreError {
    /// Wraps a failed sysfs read.
    pub(crate) fn inventory(e: SysfsError) -> Self {
        CoreError::Inventory(Box::new(e))
    }
}
