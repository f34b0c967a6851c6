//! The errors of DRA: one variant per failed step, each with its stable code
//! (`dra.…`), class and target beside it. Nested into `CoreError` as
//! `CoreError::Dra`.
//!
//! Owns: those variants and their codes. Must not: know another kind's errors.

use hostdev_api::{ErrorClass, ErrorTarget};
use std::path::PathBuf;

/// A failed DRA step.
#[derive(Debug, thiserror::Error)]
pub enum DraError {
    /// A name in the request is not what Kubernetes allows.
    #[error("{what} {} is not a DNS label (1-63 lower-case letters, digits and '-')", hostdev_model::quote::quote(.value))]
    BadName {
        /// What it names (`device name`, `request name`).
        what: &'static str,
        /// As given.
        value: String,
    },
    /// Too many devices in one claim.
    #[error("claim {claim} asks for {count} devices; at most {max} are taken")]
    TooMany {
        /// The claim.
        claim: String,
        /// As asked.
        count: usize,
        /// The most taken.
        max: usize,
    },
    /// An allocated device is not one this node offers now.
    #[error("device {device} is not offered by this node now (its parent, PF or type is gone, or it was never published here)")]
    UnknownDevice {
        /// The device name.
        device: String,
    },
    /// A device is already prepared for another claim.
    #[error("device {device} is already prepared for claim {other}")]
    Taken {
        /// The device name.
        device: String,
        /// The claim holding it.
        other: String,
    },
    /// The claim was prepared with other devices.
    #[error("claim {claim} is prepared with other devices ({had}); unprepare it first")]
    Reallocated {
        /// The claim.
        claim: String,
        /// What it holds.
        had: String,
    },
    /// The VF is taken by a definition or a type hostdev did not set for this claim.
    #[error("VF {vf} is in use: {why}")]
    VfBusy {
        /// The VF.
        vf: String,
        /// Why.
        why: String,
    },
    /// A device to be removed is held through VFIO or its vhost-vdpa node:
    /// the kernel would make the removal wait for its user (the DRA lock
    /// held all the while).
    #[error("{id} is held through {by} (a VM still runs with it?): it is not removed, and the claim's record is kept until it is let go")]
    Held {
        /// The device (an mdev's UUID, a VF's address, a vDPA name).
        id: String,
        /// What holds it: `VFIO group N`, `its vhost-vdpa node /dev/vhost-vdpa-N`.
        by: String,
    },
    /// A device's configuration cannot be applied to it.
    #[error("the configuration for device {device} is refused: {why}")]
    BadConfig {
        /// The device name.
        device: String,
        /// Why.
        why: String,
    },
    /// A claim record cannot be read or parsed.
    #[error("the DRA record {} is unreadable: {why}; move it away once the claim's devices are checked by hand", path.display())]
    BadRecord {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// Removing a prepared device failed.
    #[error("removing {id} for claim {claim} failed")]
    Remove {
        /// The claim.
        claim: String,
        /// The device.
        id: String,
        /// The cause.
        #[source]
        source: Box<crate::CoreError>,
    },
    /// A prepared device's node is not on this host (the driver, in its
    /// container, cannot look).
    #[error("claim {claim}'s device {device} cannot be handed to a container: {what} is not a character device on this host")]
    NodeMissing {
        /// The claim.
        claim: String,
        /// The device name.
        device: String,
        /// The node, or what is missing.
        what: String,
    },
    /// Making a device failed (what was made before it is removed again).
    #[error("preparing device {device} for claim {claim} failed")]
    Create {
        /// The claim.
        claim: String,
        /// The device name.
        device: String,
        /// The cause.
        #[source]
        source: Box<crate::CoreError>,
    },
}

impl DraError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadName { .. } => "dra.bad_name",
            Self::TooMany { .. } => "dra.too_many",
            Self::UnknownDevice { .. } => "dra.unknown_device",
            Self::Taken { .. } => "dra.taken",
            Self::Reallocated { .. } => "dra.reallocated",
            Self::VfBusy { .. } => "dra.vf_busy",
            Self::Held { .. } => "dra.held",
            Self::BadConfig { .. } => "dra.bad_config",
            Self::BadRecord { .. } => "dra.bad_record",
            Self::Remove { .. } => "dra.remove",
            Self::NodeMissing { .. } => "dra.node_missing",
            Self::Create { .. } => "dra.create",
        }
    }

    /// What a caller can do about it.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::BadName { .. } | Self::TooMany { .. } | Self::BadConfig { .. } => {
                ErrorClass::Invalid
            }
            Self::UnknownDevice { .. } => ErrorClass::NotFound,
            Self::Taken { .. }
            | Self::Reallocated { .. }
            | Self::VfBusy { .. }
            | Self::Held { .. } => ErrorClass::Conflict,
            Self::BadRecord { .. } | Self::NodeMissing { .. } => ErrorClass::Failed,
            // A device held through VFIO is a conflict (tried again once let
            // go), a refused write a failure: the cause's class.
            Self::Create { source, .. } | Self::Remove { source, .. } => source.class(),
        }
    }

    /// What it concerns, where one device is named.
    pub fn target(&self) -> Option<ErrorTarget> {
        match self {
            Self::Create { source, .. } | Self::Remove { source, .. } => source.target(),
            _ => None,
        }
    }
}
