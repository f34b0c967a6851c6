//! What the daemon tells watchers on `GET /v1/events`: device changes,
//! restores (with their report), failures and drift, one JSON object per line.

use crate::report::RestoreReport;
use crate::Kind;
use crate::{ErrorBody, ErrorTarget};
use serde::{Deserialize, Serialize};

/// One event, numbered in the order the daemon saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Event {
    /// Sequence number, from 1 at the daemon's start.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// What happened.
    #[serde(flatten)]
    pub what: EventKind,
}

/// A device as events name it.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct DeviceRef {
    /// Its kind.
    pub kind: Kind,
    /// UUID, VF address or vDPA name.
    pub id: String,
    /// Parent, PF or management device.
    pub parent: String,
}

/// How the host differs from its definitions.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    /// An auto-start definition whose device is not there.
    AutoNotRunning,
    /// A running device nobody defined.
    Undefined,
}

impl DriftKind {
    /// The word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::AutoNotRunning => "auto_not_running",
            DriftKind::Undefined => "undefined",
        }
    }
}

impl EventKind {
    /// The event's `type` as it appears on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::DeviceAdded { .. } => "device_added",
            EventKind::DeviceRemoved { .. } => "device_removed",
            EventKind::Restored { .. } => "restored",
            EventKind::Failure { .. } => "failure",
            EventKind::Drift { .. } => "drift",
            EventKind::DriftResolved { .. } => "drift_resolved",
            EventKind::HostFile { .. } => "host_file",
            EventKind::Changed { .. } => "changed",
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// A device appeared.
    DeviceAdded {
        /// The device.
        device: DeviceRef,
    },
    /// A device went away.
    DeviceRemoved {
        /// The device.
        device: DeviceRef,
    },
    /// A restore ran, and what it did.
    Restored {
        /// Why it ran: `start`, `uevent`, `resync` or `request`.
        trigger: String,
        /// Its report (rows with nothing to do are left out).
        report: RestoreReport,
    },
    /// Something the daemon tried failed outside a request.
    Failure {
        /// What it was doing.
        during: String,
        /// The error.
        error: ErrorBody,
    },
    /// A device started to differ from its definitions.
    Drift {
        /// The device.
        device: DeviceRef,
        /// How.
        drift: DriftKind,
    },
    /// A difference went away.
    DriftResolved {
        /// The device.
        device: DeviceRef,
        /// How it differed.
        drift: DriftKind,
    },
    /// A change asked through the API was done.
    Changed {
        /// The operation's path, e.g. `/v1/vgpu/define`.
        operation: String,
        /// What it concerned, where one thing.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<ErrorTarget>,
        /// Who asked (the peer's uid).
        uid: u32,
        /// The asking process.
        pid: i32,
    },
    /// The host no longer matches the host file, or matches it again
    /// (`report`), or an apply made it match (`apply`).
    HostFile {
        /// `report` or `apply`.
        mode: String,
        /// Changes pending (report) or made (apply).
        changes: usize,
        /// Changes blocked because the device is in use.
        blocked: usize,
        /// Changes that failed (apply).
        failed: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_wire_types() {
        let d = DeviceRef {
            kind: Kind::Mdev,
            id: "x".into(),
            parent: "p".into(),
        };
        for k in [
            EventKind::DeviceAdded { device: d.clone() },
            EventKind::DeviceRemoved { device: d.clone() },
            EventKind::Restored {
                trigger: "start".into(),
                report: RestoreReport::default(),
            },
            EventKind::Failure {
                during: "x".into(),
                error: ErrorBody::new(crate::ErrorClass::Failed, "c", "m"),
            },
            EventKind::Drift {
                device: d.clone(),
                drift: DriftKind::Undefined,
            },
            EventKind::DriftResolved {
                device: d,
                drift: DriftKind::AutoNotRunning,
            },
        ] {
            let v = serde_json::to_value(&k).unwrap();
            assert_eq!(v["type"], k.name());
        }
        for d in [DriftKind::AutoNotRunning, DriftKind::Undefined] {
            assert_eq!(serde_json::to_value(d).unwrap(), d.as_str());
        }
    }
}
