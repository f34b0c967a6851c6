//! The request/response vocabulary of hostdev: what a front-end (the CLI, the
//! daemon's API, later the Kubernetes driver) asks the core and what it gets
//! back, by device kind.
//!
//! Owns: serde types with their JSON Schemas — targets, typed requests and
//! edits for every kind, inventory, topology and restore reports, error
//! bodies with classes and stable codes — and, behind features, the wire
//! form of a request (`wire`) and the daemon's client (`client`: HTTP/1.1 on
//! hostdevd's unix socket). Must not: hold operation logic, touch the host
//! (no sysfs, store or kernel crate is a dependency), or know any
//! front-end's flags (the mdevctl personality translates mdevctl's flag
//! bags into these typed edits).
#![deny(missing_docs)]

#[cfg(feature = "client")]
pub mod client;
pub mod domain;
pub mod dra;
pub mod error;
pub mod events;
pub mod host;
pub mod mdev;
pub mod migrate;
pub mod ops;
pub mod pool;
pub mod probe;
pub mod report;
pub mod vdpa;
pub mod vgpu;
#[cfg(feature = "wire")]
pub mod wire;

pub use domain::{
    Arrival, DomainHeld, DomainHeldQuery, DomainMigrateRequest, DomainMigrated, HeldDevice,
    IncomingDevice,
};
pub use error::{ErrorBody, ErrorClass, ErrorTarget, Holder};

/// The socket a daemon listens on unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/hostdev/hostdev.sock";
pub use dra::{
    DraAllocated, DraClaim, DraClaimRow, DraClaimsQuery, DraConsumption, DraCounterSet, DraDevice,
    DraDeviceConfig, DraDeviceHealth, DraHealthQuery, DraHealthStatus, DraNode, DraPrepareRequest,
    DraPrepared, DraPreparedDevice, DraResources, DraResourcesQuery, DraUnprepareRequest,
    DraUnprepared, DraValue,
};
pub use events::{DeviceRef, DriftKind, Event, EventKind};
pub use host::{
    Action, Applied, ApplyReport, ApplyResult, Change, ChangeKind, HostApplyRequest, HostFileDoc,
    HostImport, HostPlanRequest, Plan,
};
pub use hostdev_model::pci::PciAddress;
pub use hostdev_model::pool::PoolName;
pub use hostdev_model::vdpa::{
    CreateConfig, MacAddr, MgmtDevName, VdpaDefinition, VdpaEdit, VdpaExport, VdpaName,
    VdpaValueError,
};
pub use hostdev_model::vgpu::{SriovDefinition, VgpuDefinition};
pub use hostdev_model::{AttrName, ParentName, StartPolicy, TypeId, Uuid};
pub use mdev::{
    AttrEdit, DefineRequest, ListQuery, MdevEdit, ModifyRequest, ModifyScope, StartRequest,
};
pub use migrate::{
    CheckReport, ExportTarget, MigrateCheckRequest, MigrateExportRequest, MigratePrepareRequest,
    Prepared,
};
pub use ops::{
    Done, InventoryQuery, MdevListing, Method, Op, ParentTypes, RestoreRequest, Started,
    StopRequest, Stopped, Topology, TopologyQuery, TypesQuery, UndefineRequest,
};
pub use pool::{
    AllocateRequest, Allocation, BindRequest, ConsumerId, DomainPrepareRequest,
    DomainReleaseRequest, MemberRow, PoolDeviceRow, PoolList, PoolListQuery, PoolProblem, PoolShow,
    PoolShowQuery, PoolSummary, ReconcileReport, ReconcileRequest, ReconcileRow, ReleaseRequest,
    Released, ReleasedRow, UnbindRequest,
};
pub use probe::{CachedNote, ProbeQuery, ProbeReport, ProbeTarget, ProbeTypeRequest};
pub use report::{
    DeviceRow, DeviceState, Inventory, Outcome, PfTypes, Problem, RestoreReport, RestoreRow,
    TypeRef, Unavailable, VgpuTypeRow,
};
pub use vdpa::{
    MgmtDevInfo, MgmtDevQuery, VdpaAddRequest, VdpaBlkConfig, VdpaDefineRequest, VdpaDelRequest,
    VdpaDevice, VdpaExportRequest, VdpaImportRequest, VdpaLibvirtQuery, VdpaListQuery, VdpaListing,
    VdpaLiveConfig, VdpaModifyRequest, VdpaRow, VdpaShow, VdpaShowQuery, VdpaStartRequest,
    VdpaStopRequest, VdpaUndefineRequest,
};
pub use vgpu::{
    LibvirtElement, PfDisableRequest, PfEnableRequest, StartOutcome, VgpuDefineRequest,
    VgpuLibvirtQuery, VgpuListQuery, VgpuListing, VgpuRow, VgpuSlot, VgpuStartRequest, VgpuStarted,
    VgpuStopRequest, VgpuTypesQuery, VgpuUndefineRequest,
};

use serde::{Deserialize, Serialize};
use std::fmt;

/// The kinds of device hostdev manages.
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
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A mediated device (a UUID written into a parent's type).
    Mdev,
    /// An NVIDIA vGPU on an SR-IOV virtual function.
    Vgpu,
    /// A vDPA device over the kernel's vdpa netlink family.
    Vdpa,
}

impl Kind {
    /// The lower-case word for the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Mdev => "mdev",
            Kind::Vgpu => "vgpu",
            Kind::Vdpa => "vdpa",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One device, named the way its kind names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Target {
    /// An mdev by UUID (and parent, where one UUID is defined on several).
    Mdev {
        /// The device.
        uuid: Uuid,
        /// Its parent, if it must be named.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent: Option<ParentName>,
    },
    /// A vGPU by its VF's PCI address.
    Vgpu {
        /// The VF.
        vf: PciAddress,
    },
    /// A vDPA device by name.
    Vdpa {
        /// The device.
        name: VdpaName,
    },
}

impl Target {
    /// The kind of device targeted.
    pub fn kind(&self) -> Kind {
        match self {
            Target::Mdev { .. } => Kind::Mdev,
            Target::Vgpu { .. } => Kind::Vgpu,
            Target::Vdpa { .. } => Kind::Vdpa,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Mdev { uuid, .. } => write!(f, "mdev {uuid}"),
            Target::Vgpu { vf } => write!(f, "vgpu {vf}"),
            Target::Vdpa { name } => write!(f, "vdpa {name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_round_trip_and_refuse_hostile_names() {
        let t = Target::Vdpa {
            name: VdpaName::new("vdpa0").unwrap(),
        };
        let j = serde_json::to_string(&t).unwrap();
        assert_eq!(j, r#"{"kind":"vdpa","name":"vdpa0"}"#);
        assert_eq!(serde_json::from_str::<Target>(&j).unwrap(), t);
        for bad in [
            r#"{"kind":"vdpa","name":"../x"}"#,
            r#"{"kind":"mdev","uuid":"../../etc"}"#,
            r#"{"kind":"vgpu","vf":"0000:41:00.4/.."}"#,
            r#"{"kind":"mdev","uuid":"83b8f4f2-509f-382f-3c1e-e6bfe0fa1001","parent":"../.."}"#,
        ] {
            assert!(serde_json::from_str::<Target>(bad).is_err(), "{bad}");
        }
    }
}
