//! The errors of mediated-device operations: one variant per failed step, each carrying what it
//! concerned, with its stable code (`mdev.…`), its class and its target
//! kept beside it in this file. Nested into `CoreError` as `CoreError::Mdev`.
//!
//! Owns: those variants and their codes. Must not: know another kind's errors.

use crate::codes::sysfs_class;
use crate::error::{hint_text, join, missing, on_parent, stderr_hint};
use hostdev_api::{ErrorClass, ErrorTarget, Holder, Target};
use hostdev_model::config::{ConfigError, EditError};
use hostdev_model::{ParentName, TypeId, Uuid};
use hostdev_sysfs::{Readiness, SysfsError};
use std::path::PathBuf;
use std::time::Duration;

/// A failed mdev operation.
#[derive(Debug, thiserror::Error)]
pub enum MdevError {
    /// Reading sysfs failed.
    #[error("cannot read the kernel's mdev state")]
    Inventory(#[source] Box<SysfsError>),
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
    #[error("mdev {uuid} is defined on several parents ({})", join(.parents))]
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
    #[error("no available instances of {mdev_type} on {parent}{}", .why.as_ref().map(|w| format!(": {w}")).unwrap_or_default())]
    NoCapacity {
        /// The parent.
        parent: ParentName,
        /// The type.
        mdev_type: TypeId,
        /// What holds the parent, when that can be seen.
        why: Option<String>,
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
    /// A live change was asked of a device that is not running.
    #[error("cannot modify running mdev {uuid}: it is not running")]
    LiveNotRunning {
        /// The device.
        uuid: Uuid,
    },
    /// A live change named a parent the device does not run on.
    #[error("cannot modify running mdev {uuid}: it runs on {running_on}, not {parent}")]
    LiveOtherParent {
        /// The device.
        uuid: Uuid,
        /// Where it runs.
        running_on: ParentName,
        /// The parent that was named.
        parent: ParentName,
    },
    /// A live change needs the device's whole configuration.
    #[error("cannot modify running mdev {uuid}: a live change takes the device's whole configuration as JSON")]
    LiveNeedsConfig {
        /// The device.
        uuid: Uuid,
    },
    /// A running device's type cannot change.
    #[error("cannot modify running mdev {uuid}: the type of a running device cannot change")]
    LiveTypeChange {
        /// The device.
        uuid: Uuid,
    },
    /// Writing an attribute of a running device failed.
    #[error("cannot modify running mdev {uuid}")]
    LiveAttr {
        /// The device.
        uuid: Uuid,
        /// The kernel's refusal.
        source: Box<SysfsError>,
    },
    /// The device did not become ready, and removing it failed too.
    #[error("mdev {uuid} did not become ready within {waited:?} ({}), and removing it again failed too ({remove_error}); it is still there", missing(.readiness))]
    NotReadyNoRollback {
        /// The device.
        uuid: Uuid,
        /// How long we waited.
        waited: Duration,
        /// What was there when we gave up.
        readiness: Readiness,
        /// Why the removal failed.
        remove_error: String,
    },
}

impl MdevError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Inventory { .. } => "mdev.inventory",
            Self::ReadJson { .. } => "input.read_json",
            Self::BadJson { .. } => "input.bad_json",
            Self::NoParent { .. } => "mdev.no_parent",
            Self::NoType { .. } => "mdev.no_type",
            Self::AlreadyDefined { .. } => "mdev.already_defined",
            Self::NotDefined { .. } => "mdev.not_defined",
            Self::Ambiguous { .. } => "mdev.ambiguous",
            Self::Edit { .. } => "mdev.bad_edit",
            Self::AlreadyRunning { .. } => "mdev.already_running",
            Self::NotRunning { .. } => "mdev.not_running",
            Self::ParentAbsent { .. } => "mdev.parent_absent",
            Self::TypeUnsupported { .. } => "mdev.type_unsupported",
            Self::NoCapacity { .. } => "mdev.no_capacity",
            Self::Create { .. } => "mdev.create",
            Self::NotReady { .. } => "mdev.not_ready",
            Self::Attr { .. } => "mdev.attr",
            Self::AttrNoRollback { .. } => "mdev.attr_no_rollback",
            Self::Remove { .. } => "mdev.remove",
            Self::CalloutRefused { .. } => "mdev.callout_refused",
            Self::LiveNotRunning { .. } => "mdev.live_not_running",
            Self::LiveOtherParent { .. } => "mdev.live_other_parent",
            Self::LiveNeedsConfig { .. } => "mdev.live_needs_config",
            Self::LiveTypeChange { .. } => "mdev.live_type_change",
            Self::LiveAttr { .. } => "mdev.live_attr",
            Self::NotReadyNoRollback { .. } => "mdev.not_ready_no_rollback",
        }
    }

    /// What a caller can do about it.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Inventory { .. } => ErrorClass::Failed,
            Self::ReadJson { .. } => ErrorClass::Failed,
            Self::BadJson { .. } => ErrorClass::Invalid,
            Self::NoParent { .. } => ErrorClass::Invalid,
            Self::NoType { .. } => ErrorClass::Invalid,
            Self::AlreadyDefined { .. } => ErrorClass::Exists,
            Self::NotDefined { .. } => ErrorClass::NotFound,
            Self::Ambiguous { .. } => ErrorClass::Invalid,
            Self::Edit { .. } => ErrorClass::Invalid,
            Self::AlreadyRunning { .. } => ErrorClass::Exists,
            Self::NotRunning { .. } => ErrorClass::NotFound,
            Self::ParentAbsent { .. } => ErrorClass::NotFound,
            Self::TypeUnsupported { .. } => ErrorClass::Invalid,
            Self::NoCapacity { .. } => ErrorClass::Exhausted,
            Self::Create { source, .. } => sysfs_class(source),
            Self::NotReady { .. } => ErrorClass::Failed,
            Self::Attr { source, .. } => sysfs_class(source),
            Self::AttrNoRollback { .. } => ErrorClass::Failed,
            Self::Remove { source, .. } => sysfs_class(source),
            Self::CalloutRefused { .. } => ErrorClass::Conflict,
            Self::LiveNotRunning { .. } => ErrorClass::NotFound,
            Self::LiveOtherParent { .. } => ErrorClass::Invalid,
            Self::LiveNeedsConfig { .. } => ErrorClass::Invalid,
            Self::LiveTypeChange { .. } => ErrorClass::Invalid,
            Self::LiveAttr { source, .. } => sysfs_class(source),
            Self::NotReadyNoRollback { .. } => ErrorClass::Failed,
        }
    }

    /// The device or parent it concerns.
    pub fn target(&self) -> Option<ErrorTarget> {
        use MdevError::*;
        let mdev = |uuid: &Uuid, parent: Option<&ParentName>| {
            Some(
                Target::Mdev {
                    uuid: *uuid,
                    parent: parent.cloned(),
                }
                .into(),
            )
        };
        match self {
            NoParent { uuid }
            | NotRunning { uuid }
            | Create { uuid, .. }
            | NotReady { uuid, .. }
            | Attr { uuid, .. }
            | AttrNoRollback { uuid, .. }
            | Remove { uuid, .. }
            | CalloutRefused { uuid, .. }
            | LiveNotRunning { uuid }
            | LiveNeedsConfig { uuid }
            | LiveTypeChange { uuid }
            | LiveAttr { uuid, .. }
            | NotReadyNoRollback { uuid, .. }
            | Ambiguous { uuid, .. } => mdev(uuid, None),
            AlreadyDefined { uuid, parent }
            | Edit { uuid, parent, .. }
            | AlreadyRunning { uuid, parent }
            | LiveOtherParent {
                uuid,
                running_on: parent,
                ..
            } => mdev(uuid, Some(parent)),
            NotDefined { uuid, parent } => mdev(uuid, parent.as_ref()),
            NoType { parent }
            | ParentAbsent { parent, .. }
            | TypeUnsupported { parent, .. }
            | NoCapacity { parent, .. } => Some(
                Holder::Parent {
                    name: parent.clone(),
                }
                .into(),
            ),
            Inventory(_) | ReadJson { .. } | BadJson { .. } => None,
        }
    }
}
