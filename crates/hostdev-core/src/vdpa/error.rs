//! The errors of vDPA operations: one variant per failed step, each carrying what it
//! concerned, with its stable code (`vdpa.…`), its class and its target
//! kept beside it in this file. Nested into `CoreError` as `CoreError::Vdpa`.
//!
//! Owns: those variants and their codes. Must not: know another kind's errors.

use crate::codes::errno_class;
use hostdev_api::{ErrorClass, ErrorTarget, Holder, Target};
use hostdev_model::vdpa::VdpaName;
use hostdev_vdpa::VdpaError as NetlinkError;

/// A failed vDPA operation.
#[derive(Debug, thiserror::Error)]
pub enum VdpaError {
    /// A vDPA step failed.
    #[error("vDPA operation failed")]
    Netlink(#[source] Box<NetlinkError>),
    /// A vDPA name or value is unusable.
    #[error(transparent)]
    Value(#[from] hostdev_model::vdpa::VdpaValueError),
    /// A vDPA definition of this name exists already.
    #[error("vDPA device {name} is defined already; undefine or modify it")]
    Defined {
        /// The device.
        name: VdpaName,
    },
    /// No vDPA definition of this name.
    #[error("vDPA device {name} is not defined")]
    NotDefined {
        /// The device.
        name: VdpaName,
    },
    /// Neither a vDPA device nor a definition of this name.
    #[error("there is no vDPA device or definition named {name}")]
    Unknown {
        /// The device.
        name: VdpaName,
    },
    /// The device is not bound to vhost_vdpa (no character device for a VM).
    #[error("vDPA device {name} is not bound to vhost_vdpa (no /dev/vhost-vdpa-N)")]
    Unbound {
        /// The device.
        name: VdpaName,
    },
    /// An export of another kind or version.
    #[error("the export of {name} is not a hostdev vDPA export (kind vdpa, version 1)")]
    BadExport {
        /// The device named in it.
        name: VdpaName,
    },
}

impl From<NetlinkError> for VdpaError {
    fn from(e: NetlinkError) -> Self {
        VdpaError::Netlink(Box::new(e))
    }
}

impl VdpaError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Netlink(e) => match **e {
                NetlinkError::NoFamily => "vdpa.unavailable",
                NetlinkError::Permission { .. } => "vdpa.permission",
                NetlinkError::Exists(_) => "vdpa.exists",
                NetlinkError::NoMgmtDev(_) => "vdpa.no_mgmtdev",
                NetlinkError::NoDevice(_) => "vdpa.no_device",
                NetlinkError::Unsupported { .. } => "vdpa.unsupported",
                _ => "vdpa.kernel",
            },
            Self::Value { .. } => "input.bad_vdpa_value",
            Self::Defined { .. } => "vdpa.already_defined",
            Self::NotDefined { .. } => "vdpa.not_defined",
            Self::Unknown { .. } => "vdpa.unknown",
            Self::Unbound { .. } => "vdpa.unbound",
            Self::BadExport { .. } => "vdpa.bad_export",
        }
    }

    /// What a caller can do about it.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Netlink(e) => match &**e {
                NetlinkError::NoFamily => ErrorClass::Unavailable,
                NetlinkError::Permission { .. } => ErrorClass::Forbidden,
                NetlinkError::Exists(_) => ErrorClass::Exists,
                NetlinkError::NoMgmtDev(_) | NetlinkError::NoDevice(_) => ErrorClass::NotFound,
                NetlinkError::Unsupported { .. } | NetlinkError::Value(_) => ErrorClass::Invalid,
                NetlinkError::Kernel { source, .. } => errno_class(source),
                _ => ErrorClass::Failed,
            },
            Self::Value { .. } => ErrorClass::Invalid,
            Self::Defined { .. } => ErrorClass::Exists,
            Self::NotDefined { .. } => ErrorClass::NotFound,
            Self::Unknown { .. } => ErrorClass::NotFound,
            Self::Unbound { .. } => ErrorClass::Conflict,
            Self::BadExport { .. } => ErrorClass::Invalid,
        }
    }

    /// The device or management device it concerns.
    pub fn target(&self) -> Option<ErrorTarget> {
        let dev = |name: &VdpaName| Some(Target::Vdpa { name: name.clone() }.into());
        match self {
            Self::Defined { name }
            | Self::NotDefined { name }
            | Self::Unknown { name }
            | Self::Unbound { name }
            | Self::BadExport { name } => dev(name),
            Self::Netlink(e) => match &**e {
                NetlinkError::NoDevice(n) => dev(n),
                NetlinkError::NoMgmtDev(m) => Some(Holder::Mgmtdev { name: m.clone() }.into()),
                NetlinkError::Exists(n) => VdpaName::new(n.clone()).ok().and_then(|n| dev(&n)),
                _ => None,
            },
            Self::Value(_) => None,
        }
    }

    /// The kernel refused a create because the device exists already.
    pub fn is_exists(&self) -> bool {
        matches!(self, Self::Netlink(e) if matches!(**e, NetlinkError::Exists(_)))
    }

    /// The kernel has no vdpa netlink family (module not loaded, or another
    /// network namespace).
    pub fn is_no_family(&self) -> bool {
        matches!(self, Self::Netlink(e) if matches!(**e, NetlinkError::NoFamily))
    }
}
