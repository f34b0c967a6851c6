//! Errors as every front-end sees them: a class a program can act on, a
//! stable code naming the failed step, the sentence for people, and the
//! object it concerns.
//!
//! Owns: [`ErrorClass`] and the one table from class to HTTP status
//! ([`ErrorClass::status`]); [`ErrorBody`]; [`ErrorTarget`]. Must not: know
//! which step has which class (each kind's error type in the core says).

use crate::Target;
use hostdev_model::pci::PciAddress;
use hostdev_model::pool::PoolName;
use hostdev_model::vdpa::MgmtDevName;
use hostdev_model::ParentName;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What kind of failure an error is, and so what a caller can do about it.
/// The HTTP status of a daemon's answer follows from the class alone.
///
/// | class | status | what it means | what a caller does |
/// |---|---|---|---|
/// | `invalid` | 400 | the request, or a value in it, cannot be used (a malformed body, an unknown field, a hostile name, a type the parent does not have, a value the kernel refused as invalid) | fix the request |
/// | `forbidden` | 403 | the caller may not do this (changes are root's, reads the group's) | ask someone who may |
/// | `not_found` | 404 | something the request names is not there (a device, definition, pool, parent, PF, VF, route) | check the name, or wait for it to appear |
/// | `unsupported` | 405 | the route takes no such method | use the documented method |
/// | `timeout` | 408 | the request did not arrive in time | send it again, whole |
/// | `exists` | 409 | what the request would make exists already | use it, or remove it first |
/// | `conflict` | 409 | the device or state is busy or held (in use by a VM, held by a consumer, running with another type, a lock held too long) | retry once the holder lets go |
/// | `exhausted` | 409 | no capacity is left (a pool, a parent's instances, free VFs) | retry after something is released, or ask elsewhere |
/// | `too_large` | 413 | the request body is larger than the daemon takes | send less |
/// | `failed` | 422 | a step on the host failed (the kernel refused, a file could not be written, a device did not become ready); the code names the step | read the sentence; the host may need attention |
/// | `unavailable` | 424 | a kernel interface the request needs is not on the host now (the vdpa module not loaded, no VFIO, no sysfs) | load it, or ask a host that has it |
/// | `internal` | 500 | a defect in hostdev (an operation panicked, a reply could not be encoded) | report it |
/// | `stopping` | 503 | the daemon is shutting down and takes no new operation | send it again once the daemon is back |
///
/// The three 409 classes say the request conflicts with the host's state
/// now; the class tells which state. Only hostdev's own defects and its
/// shutdown are 5xx: a host that lacks something, or is full, is a state a
/// caller can act on.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The request, or a value in it, cannot be used.
    Invalid,
    /// The caller may not do this.
    Forbidden,
    /// Something the request names is not there.
    NotFound,
    /// The route takes no such method.
    Unsupported,
    /// The request did not arrive in time.
    Timeout,
    /// What the request would make exists already.
    Exists,
    /// The device or state is busy or held by someone else.
    Conflict,
    /// The request body is too large.
    TooLarge,
    /// A step on the host failed.
    Failed,
    /// No capacity is left.
    Exhausted,
    /// A kernel interface the request needs is not on the host now.
    Unavailable,
    /// A defect in hostdev.
    Internal,
    /// The daemon is shutting down.
    Stopping,
}

impl ErrorClass {
    /// Every class, in the table's order.
    pub const ALL: [ErrorClass; 13] = [
        ErrorClass::Invalid,
        ErrorClass::Forbidden,
        ErrorClass::NotFound,
        ErrorClass::Unsupported,
        ErrorClass::Timeout,
        ErrorClass::Exists,
        ErrorClass::Conflict,
        ErrorClass::TooLarge,
        ErrorClass::Failed,
        ErrorClass::Exhausted,
        ErrorClass::Unavailable,
        ErrorClass::Internal,
        ErrorClass::Stopping,
    ];

    /// The HTTP status a daemon answers with (the table above).
    pub fn status(self) -> u16 {
        match self {
            ErrorClass::Invalid => 400,
            ErrorClass::Forbidden => 403,
            ErrorClass::NotFound => 404,
            ErrorClass::Unsupported => 405,
            ErrorClass::Timeout => 408,
            ErrorClass::Exists | ErrorClass::Conflict | ErrorClass::Exhausted => 409,
            ErrorClass::TooLarge => 413,
            ErrorClass::Failed => 422,
            ErrorClass::Unavailable => 424,
            ErrorClass::Internal => 500,
            ErrorClass::Stopping => 503,
        }
    }

    /// The class an HTTP status stands for, for answers that carry no
    /// body of ours (a proxy's, a daemon too old to say).
    pub fn from_status(status: u16) -> ErrorClass {
        match status {
            400 => ErrorClass::Invalid,
            401 | 403 => ErrorClass::Forbidden,
            404 => ErrorClass::NotFound,
            405 => ErrorClass::Unsupported,
            408 => ErrorClass::Timeout,
            409 => ErrorClass::Conflict,
            413 => ErrorClass::TooLarge,
            422 => ErrorClass::Failed,
            424 => ErrorClass::Unavailable,
            503 => ErrorClass::Stopping,
            s if (400..500).contains(&s) => ErrorClass::Invalid,
            _ => ErrorClass::Internal,
        }
    }

    /// The snake_case word of the wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Invalid => "invalid",
            ErrorClass::Forbidden => "forbidden",
            ErrorClass::NotFound => "not_found",
            ErrorClass::Unsupported => "unsupported",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Exists => "exists",
            ErrorClass::Conflict => "conflict",
            ErrorClass::TooLarge => "too_large",
            ErrorClass::Failed => "failed",
            ErrorClass::Exhausted => "exhausted",
            ErrorClass::Unavailable => "unavailable",
            ErrorClass::Internal => "internal",
            ErrorClass::Stopping => "stopping",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an error concerns: a device (as [`Target`] names it), or the
/// parent, PF, management device or pool the failed step was about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ErrorTarget {
    /// A device.
    Device(Target),
    /// Something that holds devices.
    Holder(Holder),
}

/// A parent, PF, management device or pool, tagged by what it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Holder {
    /// An mdev parent.
    Parent {
        /// Its name.
        name: ParentName,
    },
    /// An SR-IOV physical function.
    Pf {
        /// Its PCI address.
        pf: PciAddress,
    },
    /// A vDPA management device.
    Mgmtdev {
        /// Its name.
        name: MgmtDevName,
    },
    /// A pool.
    Pool {
        /// Its name.
        name: PoolName,
    },
}

impl From<Target> for ErrorTarget {
    fn from(t: Target) -> Self {
        ErrorTarget::Device(t)
    }
}

impl From<Holder> for ErrorTarget {
    fn from(h: Holder) -> Self {
        ErrorTarget::Holder(h)
    }
}

/// A failure as a front-end shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// What kind of failure it is (the HTTP status follows from it).
    pub class: ErrorClass,
    /// Stable code naming the failed step, e.g. `mdev.no_capacity`.
    pub code: String,
    /// The error and its causes as one line, for people.
    pub message: String,
    /// What it concerns, where one thing does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<ErrorTarget>,
}

impl ErrorBody {
    /// A body without a target.
    pub fn new(class: ErrorClass, code: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorBody {
            class,
            code: code.into(),
            message: message.into(),
            target: None,
        }
    }

    /// The same body, concerning `target`.
    pub fn about(mut self, target: impl Into<ErrorTarget>) -> Self {
        self.target = Some(target.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_has_its_status_and_comes_back_from_it_where_unique() {
        for c in ErrorClass::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
            let back = ErrorClass::from_status(c.status());
            if !matches!(c, ErrorClass::Exists | ErrorClass::Exhausted) {
                assert_eq!(back, c, "{c}");
            }
        }
    }

    #[test]
    fn targets_are_devices_or_holders() {
        let b = ErrorBody::new(ErrorClass::NotFound, "pool.unknown", "no pool 'x'").about(
            Holder::Pool {
                name: PoolName::new("x").unwrap(),
            },
        );
        let j = serde_json::to_string(&b).unwrap();
        assert_eq!(
            j,
            r#"{"class":"not_found","code":"pool.unknown","message":"no pool 'x'","target":{"kind":"pool","name":"x"}}"#
        );
        assert_eq!(serde_json::from_str::<ErrorBody>(&j).unwrap(), b);
        let d = r#"{"class":"conflict","code":"vgpu.in_use","message":"m","target":{"kind":"vgpu","vf":"0000:41:00.4"}}"#;
        let b: ErrorBody = serde_json::from_str(d).unwrap();
        assert!(matches!(
            b.target,
            Some(ErrorTarget::Device(Target::Vgpu { .. }))
        ));
    }
}
