//! The operations a front-end can ask for, each a request type tied to its
//! reply type, HTTP method and versioned path by [`Op`]. The CLI acting
//! directly, the CLI through the daemon and the daemon's routes all name an
//! operation by its request type, so the three cannot disagree on shapes.

use crate::error::ErrorTarget;
use crate::mdev::{DefineRequest, ListQuery, ModifyRequest, StartRequest};
use crate::report::{Inventory, PfTypes, Problem, RestoreReport};
use crate::vdpa::MgmtDevInfo;
use crate::Target;
use hostdev_model::format::{ListEntry, TypeInfo};
use hostdev_model::{ParentName, Uuid};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How an operation travels over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// A read: parameters in the query string; the configured group may ask.
    Get,
    /// A change: parameters as a JSON body; root only.
    Post,
}

/// One operation: its request is `Self`, its answer `Reply`; both carry
/// their JSON Schema (the API document is made from them).
pub trait Op: Serialize + DeserializeOwned + JsonSchema + Send + Sync + 'static {
    /// What a successful call answers.
    type Reply: Serialize + DeserializeOwned + JsonSchema + Send + 'static;
    /// GET (read) or POST (change).
    const METHOD: Method;
    /// The versioned path, e.g. `/v1/mdev/devices`.
    const PATH: &'static str;
    /// One line for the API document.
    const SUMMARY: &'static str;
    /// How long the operation itself may wait on purpose (a restore told to
    /// wait for late parents), on top of a client's ordinary timeout.
    fn patience(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
    /// The device, parent, PF, management device or pool the request is
    /// about, where one thing is: events name it, and an error that names
    /// nothing of its own is said to concern it.
    fn concerns(&self) -> Option<ErrorTarget> {
        None
    }
    /// The restore report a reply carries, for the operations whose reply
    /// is one (watchers are told what a restore did).
    fn restore_report(reply: &Self::Reply) -> Option<&RestoreReport> {
        let _ = reply;
        None
    }
}

/// An operation that answers nothing but success.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct Done {}

/// Every device of every kind (`hostdevctl list`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InventoryQuery {}

/// The longest a restore may be told to wait for late parents (an hour).
pub const MAX_WAIT_SECS: u64 = 3600;

/// Start every auto-start definition of every kind (`hostdevctl autostart`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// Wait up to this many seconds for parents that are not there yet
    /// (at most [`MAX_WAIT_SECS`]).
    #[serde(default)]
    #[schemars(range(max = 3600))]
    pub wait_secs: u64,
}

/// What `mdev list` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MdevListing {
    /// Devices in output order (parent, then UUID).
    pub entries: Vec<ListEntry>,
    /// Unusable definition files, each skipped.
    pub problems: Vec<Problem>,
}

/// The supported types of every parent, or of one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TypesQuery {
    /// Only this parent (compared as a string; never used as a path).
    #[serde(default)]
    pub parent: Option<String>,
}

/// One parent and its types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ParentTypes {
    /// The parent.
    pub parent: ParentName,
    /// Its types, by id.
    pub types: Vec<TypeInfo>,
}

/// The host's topology in one answer (`hostdevctl tree`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TopologyQuery {}

/// SR-IOV PFs with their vGPU types, mdev parents with their types, vDPA
/// management devices, and every device, read together.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Topology {
    /// Every device and definition.
    pub inventory: Inventory,
    /// NVIDIA PFs with VFs and the types their VFs can take now.
    pub pfs: Vec<PfTypes>,
    /// mdev parents and their types.
    pub parents: Vec<ParentTypes>,
    /// vDPA management devices present.
    pub mgmtdevs: Vec<MgmtDevInfo>,
    /// Why the management devices could not be listed (no vdpa module).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mgmtdevs_unavailable: Option<String>,
}

/// A device that was started or defined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Started {
    /// Its UUID.
    pub uuid: Uuid,
    /// Its parent.
    pub parent: ParentName,
    /// The UUID was generated here (and should be printed).
    pub generated: bool,
    /// What the caller should know but that did not stop it (a definition
    /// for a parent or type that is not on the host now).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Remove an mdev definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UndefineRequest {
    /// The device.
    pub uuid: Uuid,
    /// Its parent, where one UUID is defined on several.
    #[serde(default)]
    pub parent: Option<ParentName>,
}

/// Remove a running mdev.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StopRequest {
    /// The device.
    pub uuid: Uuid,
}

/// Where a stopped device was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Stopped {
    /// Its parent.
    pub parent: ParentName,
}

/// Ties a request type to its reply, method, path and summary; optionally
/// how long it waits on purpose (`patience = |r| …`) and what it concerns
/// (`concerns = |r| …`).
macro_rules! op {
    ($req:ty => $reply:ty, $method:ident, $path:literal, $summary:literal
        $(, patience = |$r:ident| $patience:expr)?
        $(, concerns = |$c:ident| $concerns:expr)?
        $(, report = |$rr:ident| $report:expr)?) => {
        impl $crate::ops::Op for $req {
            type Reply = $reply;
            const METHOD: $crate::ops::Method = $crate::ops::Method::$method;
            const PATH: &'static str = $path;
            const SUMMARY: &'static str = $summary;
            $(fn patience(&self) -> std::time::Duration {
                let $r = self;
                $patience
            })?
            $(fn concerns(&self) -> Option<$crate::error::ErrorTarget> {
                let $c = self;
                $concerns
            })?
            $(fn restore_report($rr: &Self::Reply) -> Option<&$crate::RestoreReport> {
                $report
            })?
        }
    };
}

pub(crate) use op;

op!(InventoryQuery => Inventory, Get, "/v1/devices", "Every device of every kind, running or defined.");
op!(RestoreRequest => RestoreReport, Post, "/v1/restore", "Start every auto-start definition of every kind.",
    patience = |r| Duration::from_secs(r.wait_secs), report = |r| Some(r));
op!(TopologyQuery => Topology, Get, "/v1/topology", "PFs and their vGPU types, mdev parents and their types, vDPA management devices, and every device.");
op!(ListQuery => MdevListing, Get, "/v1/mdev/devices", "Running mediated devices, or their definitions.");
op!(TypesQuery => Vec<ParentTypes>, Get, "/v1/mdev/types", "The mdev types of every parent, or of one.");
op!(DefineRequest => Started, Post, "/v1/mdev/define", "Define a mediated device.",
    concerns = |r| r.uuid.map(|uuid| Target::Mdev { uuid, parent: r.parent.clone() }.into()));
op!(UndefineRequest => Done, Post, "/v1/mdev/undefine", "Remove a mediated device's definition.",
    concerns = |r| Some(Target::Mdev { uuid: r.uuid, parent: r.parent.clone() }.into()));
op!(ModifyRequest => Done, Post, "/v1/mdev/modify", "Change a definition and/or the running device.",
    concerns = |r| Some(Target::Mdev { uuid: r.uuid, parent: r.parent.clone() }.into()));
op!(StartRequest => Started, Post, "/v1/mdev/start", "Start a defined or transient mediated device.",
    concerns = |r| r.uuid.map(|uuid| Target::Mdev { uuid, parent: r.parent.clone() }.into()));
op!(StopRequest => Stopped, Post, "/v1/mdev/stop", "Stop a running mediated device.",
    concerns = |r| Some(Target::Mdev { uuid: r.uuid, parent: None }.into()));

/// Calls `$m!(Type, …)` with every operation's request type: the one list
/// the daemon's routes, the API document and the tests are made from.
#[macro_export]
macro_rules! with_every_op {
    ($m:ident) => {
        $m! {
            $crate::InventoryQuery,
            $crate::TopologyQuery,
            $crate::RestoreRequest,
            $crate::ListQuery,
            $crate::TypesQuery,
            $crate::DefineRequest,
            $crate::UndefineRequest,
            $crate::ModifyRequest,
            $crate::StartRequest,
            $crate::StopRequest,
            $crate::PoolListQuery,
            $crate::PoolShowQuery,
            $crate::AllocateRequest,
            $crate::ReleaseRequest,
            $crate::BindRequest,
            $crate::UnbindRequest,
            $crate::ReconcileRequest,
            $crate::DomainPrepareRequest,
            $crate::DomainReleaseRequest,
            $crate::DomainMigrateRequest,
            $crate::DomainHeldQuery,
            $crate::ProbeQuery,
            $crate::ProbeTypeRequest,
            $crate::MigrateExportRequest,
            $crate::MigrateCheckRequest,
            $crate::MigratePrepareRequest,
            $crate::HostPlanRequest,
            $crate::HostApplyRequest,
            $crate::VgpuTypesQuery,
            $crate::VgpuListQuery,
            $crate::VgpuDefineRequest,
            $crate::VgpuUndefineRequest,
            $crate::VgpuStartRequest,
            $crate::VgpuStopRequest,
            $crate::PfEnableRequest,
            $crate::PfDisableRequest,
            $crate::VgpuLibvirtQuery,
            $crate::MgmtDevQuery,
            $crate::VdpaAddRequest,
            $crate::VdpaDelRequest,
            $crate::VdpaDefineRequest,
            $crate::VdpaUndefineRequest,
            $crate::VdpaModifyRequest,
            $crate::VdpaStartRequest,
            $crate::VdpaStopRequest,
            $crate::VdpaListQuery,
            $crate::VdpaShowQuery,
            $crate::VdpaExportRequest,
            $crate::VdpaImportRequest,
            $crate::VdpaLibvirtQuery,
            $crate::DraResourcesQuery,
            $crate::DraClaimsQuery,
            $crate::DraHealthQuery,
            $crate::DraPrepareRequest,
            $crate::DraUnprepareRequest
        }
    };
}

/// One operation as the API document lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// GET or POST.
    pub method: Method,
    /// Versioned path.
    pub path: &'static str,
    /// One line.
    pub summary: &'static str,
}

/// Every operation, in the order of [`with_every_op`].
pub fn routes() -> Vec<Route> {
    fn r<O: Op>() -> Route {
        Route {
            method: O::METHOD,
            path: O::PATH,
            summary: O::SUMMARY,
        }
    }
    macro_rules! list {
        ($($t:ty),*) => { vec![$(r::<$t>()),*] };
    }
    with_every_op!(list)
}
