//! The operations a front-end can ask for, each a request type tied to its
//! reply type, HTTP method and versioned path by [`Op`]. The CLI acting
//! directly, the CLI through the daemon and the daemon's routes all name an
//! operation by its request type, so the three cannot disagree on shapes.

use crate::mdev::{DefineRequest, ListQuery, ModifyRequest, StartRequest};
use crate::report::{Inventory, Problem, RestoreReport};
use hostdev_model::format::{ListEntry, TypeInfo};
use hostdev_model::{ParentName, Uuid};
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

/// One operation: its request is `Self`, its answer `Reply`.
pub trait Op: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// What a successful call answers.
    type Reply: Serialize + DeserializeOwned + Send + 'static;
    /// GET (read) or POST (change).
    const METHOD: Method;
    /// The versioned path, e.g. `/v1/mdev/devices`.
    const PATH: &'static str;
    /// One line for the API document.
    const SUMMARY: &'static str;
    /// The request type's name, for the API document.
    const REQUEST: &'static str;
    /// The reply type's name, for the API document.
    const REPLY: &'static str;
    /// How long the operation itself may wait on purpose (a restore told to
    /// wait for late parents), on top of a client's ordinary timeout.
    fn patience(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

/// An operation that answers nothing but success.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Done {}

/// Every device of every kind (`hostdevctl list`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryQuery {}

/// Start every auto-start definition of every kind (`hostdevctl autostart`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// Wait up to this many seconds for parents that are not there yet.
    #[serde(default)]
    pub wait_secs: u64,
}

/// What `mdev list` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MdevListing {
    /// Devices in output order (parent, then UUID).
    pub entries: Vec<ListEntry>,
    /// Unusable definition files, each skipped.
    pub problems: Vec<Problem>,
}

/// The supported types of every parent, or of one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypesQuery {
    /// Only this parent (compared as a string; never used as a path).
    #[serde(default)]
    pub parent: Option<String>,
}

/// One parent and its types.
pub type ParentTypes = (ParentName, Vec<TypeInfo>);

/// A device that was started or defined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UndefineRequest {
    /// The device.
    pub uuid: Uuid,
    /// Its parent, where one UUID is defined on several.
    #[serde(default)]
    pub parent: Option<ParentName>,
}

/// Remove a running mdev.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopRequest {
    /// The device.
    pub uuid: Uuid,
}

/// Where a stopped device was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stopped {
    /// Its parent.
    pub parent: ParentName,
}

/// Ties a request type to its reply, method, path and summary.
macro_rules! op {
    ($req:ty => $reply:ty, $method:ident, $path:literal, $summary:literal $(, |$r:ident| $patience:expr)?) => {
        impl $crate::ops::Op for $req {
            type Reply = $reply;
            const METHOD: $crate::ops::Method = $crate::ops::Method::$method;
            const PATH: &'static str = $path;
            const SUMMARY: &'static str = $summary;
            const REQUEST: &'static str = stringify!($req);
            const REPLY: &'static str = stringify!($reply);
            $(fn patience(&self) -> std::time::Duration {
                let $r = self;
                $patience
            })?
        }
    };
}

pub(crate) use op;

op!(InventoryQuery => Inventory, Get, "/v1/devices", "Every device of every kind, running or defined.");
op!(RestoreRequest => RestoreReport, Post, "/v1/restore", "Start every auto-start definition of every kind.", |r| Duration::from_secs(r.wait_secs));
op!(ListQuery => MdevListing, Get, "/v1/mdev/devices", "Running mediated devices, or their definitions.");
op!(TypesQuery => Vec<ParentTypes>, Get, "/v1/mdev/types", "The mdev types of every parent, or of one.");
op!(DefineRequest => Started, Post, "/v1/mdev/define", "Define a mediated device.");
op!(UndefineRequest => Done, Post, "/v1/mdev/undefine", "Remove a mediated device's definition.");
op!(ModifyRequest => Done, Post, "/v1/mdev/modify", "Change a definition and/or the running device.");
op!(StartRequest => Started, Post, "/v1/mdev/start", "Start a defined or transient mediated device.");
op!(StopRequest => Stopped, Post, "/v1/mdev/stop", "Stop a running mediated device.");

/// Calls `$m!(Type, …)` with every operation's request type: the one list
/// the daemon's routes, the API document and the tests are made from.
#[macro_export]
macro_rules! with_every_op {
    ($m:ident) => {
        $m!(
            $crate::InventoryQuery,
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
            $crate::ProbeQuery,
            $crate::ProbeTypeRequest,
            $crate::MigrateExportRequest,
            $crate::MigrateCheckRequest,
            $crate::MigratePrepareRequest,
            $crate::HostPlanRequest,
            $crate::HostApplyRequest
        )
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
    /// Request type name.
    pub request: &'static str,
    /// Reply type name.
    pub reply: &'static str,
}

/// Every operation, in the order of [`with_every_op`].
pub fn routes() -> Vec<Route> {
    fn r<O: Op>() -> Route {
        Route {
            method: O::METHOD,
            path: O::PATH,
            summary: O::SUMMARY,
            request: O::REQUEST,
            reply: O::REPLY,
        }
    }
    macro_rules! list {
        ($($t:ty),*) => { vec![$(r::<$t>()),*] };
    }
    with_every_op!(list)
}
