//! One typed call per operation: [`Handle`] maps each of `hostdev-api`'s
//! [`Op`] requests onto the core's operations, so the CLI acting directly and
//! the daemon serving a request run the same code and answer the same types.
//! Owns: the request → operation table. Must not: add logic of its own.

use crate::{CoreError, Devices};
use hostdev_api::{
    AllocateRequest, BindRequest, DomainPrepareRequest, DomainReleaseRequest, HostApplyRequest,
    HostPlanRequest, MigrateCheckRequest, MigrateExportRequest, MigratePrepareRequest,
    PoolListQuery, PoolShowQuery, ProbeQuery, ProbeTypeRequest, ReconcileRequest, ReleaseRequest,
    UnbindRequest,
};
use hostdev_api::{
    DefineRequest, Done, InventoryQuery, ListQuery, ModifyRequest, Op, RestoreRequest,
    StartRequest, StopRequest, Stopped, TypesQuery, UndefineRequest,
};
use hostdev_sysfs::sriov::SriovSysfs;
use hostdev_sysfs::MdevSysfs;
use hostdev_vdpa::VdpaClient;
use std::time::Duration;

/// Answers one operation.
pub trait Handle<O: Op> {
    /// Runs `op` and gives its reply.
    fn handle(&self, op: &O) -> Result<O::Reply, CoreError>;
}

macro_rules! handle {
    ($req:ty, |$d:ident, $op:ident| $body:expr) => {
        impl<S: MdevSysfs, V: SriovSysfs, C: VdpaClient> Handle<$req> for Devices<S, V, C> {
            fn handle(&self, $op: &$req) -> Result<<$req as Op>::Reply, CoreError> {
                let $d = self;
                $body
            }
        }
    };
}

handle!(InventoryQuery, |d, _op| d.inventory());
handle!(RestoreRequest, |d, op| {
    Ok(d.restore(Duration::from_secs(op.wait_secs)))
});
handle!(ListQuery, |d, op| d.mdev.list(op));
handle!(TypesQuery, |d, op| d.mdev.types(op.parent.as_deref()));
handle!(DefineRequest, |d, op| d.mdev.define(op));
handle!(UndefineRequest, |d, op| {
    d.mdev
        .undefine(&op.uuid, op.parent.as_ref())
        .map(|_| Done {})
});
handle!(ModifyRequest, |d, op| {
    d.mdev.modify(op).map(|()| Done {})
});
handle!(StartRequest, |d, op| d.mdev.start(op));
handle!(StopRequest, |d, op| {
    d.mdev.stop(&op.uuid).map(|parent| Stopped { parent })
});
handle!(PoolListQuery, |d, _op| d.pool_list());
handle!(PoolShowQuery, |d, op| d.pool_show(&op.pool));
handle!(AllocateRequest, |d, op| d.allocate(op));
handle!(ReleaseRequest, |d, op| d.release(op));
handle!(BindRequest, |d, op| d.bind(op).map(|()| Done {}));
handle!(UnbindRequest, |d, op| d.unbind(op).map(|()| Done {}));
handle!(ReconcileRequest, |d, _op| d.reconcile());
handle!(DomainPrepareRequest, |d, op| d.domain_prepare(op));
handle!(DomainReleaseRequest, |d, op| d.domain_release(op));
handle!(ProbeQuery, |d, op| d.probe(op));
handle!(ProbeTypeRequest, |d, op| d.probe_type(op));
handle!(MigrateExportRequest, |d, op| d.migrate_export(&op.device));
handle!(MigrateCheckRequest, |d, op| d.migrate_check(op));
handle!(MigratePrepareRequest, |d, op| d.migrate_prepare(op));
handle!(HostPlanRequest, |d, op| match &op.import {
    Some(i) => d.host_plan_import(&op.file, i),
    None => d.host_plan(&op.file),
});
handle!(HostApplyRequest, |d, op| d.host_apply(op));
