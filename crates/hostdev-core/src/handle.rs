//! One typed call per operation: [`Handle`] maps each of `hostdev-api`'s
//! [`Op`] requests onto the core's operations, so the CLI acting directly and
//! the daemon serving a request run the same code and answer the same types.
//! [`Serve`] names a host that answers every operation (generated from
//! `with_every_op!`), so a front-end can be written once over any host: the
//! real one or one on fakes.
//! Owns: the request → operation table. Must not: add logic of its own
//! (shapes are mapped in `convert`).

use crate::convert;
use crate::vgpu::VgpuSlot as CoreSlot;
use crate::Interfaces;
use crate::{CoreError, DeviceOutcome, Devices};
use hostdev_api::{
    AllocateRequest, BindRequest, DomainHeldQuery, DomainMigrateRequest, DomainPrepareRequest,
    DomainReleaseRequest, HostApplyRequest, HostPlanRequest, MigrateCheckRequest,
    MigrateExportRequest, MigratePrepareRequest, PoolListQuery, PoolShowQuery, ProbeQuery,
    ProbeTypeRequest, ReconcileRequest, ReleaseRequest, UnbindRequest,
};
use hostdev_api::{
    DefineRequest, Done, InventoryQuery, Kind, LibvirtElement, ListQuery, MgmtDevQuery,
    ModifyRequest, Op, ParentTypes, PfDisableRequest, PfEnableRequest, RestoreRequest,
    StartOutcome, StartRequest, StopRequest, Stopped, Topology, TopologyQuery, TypesQuery,
    UndefineRequest, VdpaAddRequest, VdpaDefineRequest, VdpaDelRequest, VdpaExportRequest,
    VdpaImportRequest, VdpaLibvirtQuery, VdpaListQuery, VdpaListing, VdpaModifyRequest, VdpaShow,
    VdpaShowQuery, VdpaStartRequest, VdpaStopRequest, VdpaUndefineRequest, VgpuDefineRequest,
    VgpuLibvirtQuery, VgpuListQuery, VgpuListing, VgpuSlot, VgpuStartRequest, VgpuStarted,
    VgpuStopRequest, VgpuTypesQuery, VgpuUndefineRequest,
};
use hostdev_api::{
    DraClaimsQuery, DraHealthQuery, DraPrepareRequest, DraResourcesQuery, DraUnprepareRequest,
};
use std::time::Duration;

/// Answers one operation.
pub trait Handle<O: Op> {
    /// Runs `op` and gives its reply.
    fn handle(&self, op: &O) -> Result<O::Reply, CoreError>;

    /// What the reply to `op` depends on, read more cheaply than the reply
    /// itself: while two readings are equal, a reply made after the first
    /// may be sent again for the same request. `None`: never kept (the
    /// default; a read whose reply can go stale without the reading
    /// changing must keep it so).
    fn freshness(&self, op: &O) -> Option<Freshness> {
        let _ = op;
        None
    }
}

/// A reading of what a reply depends on (see [`Handle::freshness`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freshness {
    mdevs: crate::inventory::MdevFingerprint,
    others: hostdev_api::Inventory,
}

macro_rules! serve_trait {
    ($($t:ty),*) => {
        /// A host that answers every operation of the API.
        pub trait Serve: $(Handle<$t> +)* Send + Sync {}
        impl<T: $(Handle<$t> +)* Send + Sync> Serve for T {}
    };
}
hostdev_api::with_every_op!(serve_trait);

macro_rules! handle {
    ($req:ty, |$d:ident, $op:ident| $body:expr $(, keep = |$kd:ident, $kop:ident| $keep:expr)?) => {
        impl<K: Interfaces> Handle<$req> for Devices<K> {
            fn handle(&self, $op: &$req) -> Result<<$req as Op>::Reply, CoreError> {
                let $d = self;
                $body
            }
            $(fn freshness(&self, $kop: &$req) -> Option<Freshness> {
                let $kd = self;
                $keep
            })?
        }
    };
}

fn parent_types(
    ts: Vec<(
        hostdev_model::ParentName,
        Vec<hostdev_model::format::TypeInfo>,
    )>,
) -> Vec<ParentTypes> {
    ts.into_iter()
        .map(|(parent, types)| ParentTypes { parent, types })
        .collect()
}

// Thousands of mdev rows on a large host: kept while the definitions'
// generation and the running devices' fingerprint (taken before reading)
// are unchanged and the vDPA and vGPU rows (always read) are equal.
handle!(
    InventoryQuery,
    |d, _op| d.inventory(),
    keep = |d, _op| {
        Some(Freshness {
            mdevs: d.mdev_fingerprint()?,
            others: d.other_kinds(),
        })
    }
);
handle!(TopologyQuery, |d, _op| {
    let (mgmtdevs, mgmtdevs_unavailable) = match d.vdpa.mgmtdevs() {
        Ok(ms) => (ms.into_iter().map(convert::mgmtdev).collect(), None),
        Err(e) => (Vec::new(), Some(e.chain())),
    };
    Ok(Topology {
        inventory: d.inventory()?,
        pfs: d.vgpu.types(None)?,
        parents: parent_types(d.mdev.types(None)?),
        mgmtdevs,
        mgmtdevs_unavailable,
    })
});
handle!(RestoreRequest, |d, op| {
    if op.wait_secs > hostdev_api::ops::MAX_WAIT_SECS {
        return Err(CoreError::OutOfRange {
            what: "the wait for late parents",
            value: format!("{} s", op.wait_secs),
            max: format!("{} s", hostdev_api::ops::MAX_WAIT_SECS),
        });
    }
    Ok(d.restore(Duration::from_secs(op.wait_secs)))
});
handle!(ListQuery, |d, op| d.mdev.list(op));
handle!(TypesQuery, |d, op| d
    .mdev
    .types(op.parent.as_deref())
    .map(parent_types));
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
handle!(DomainMigrateRequest, |d, op| d.domain_migrate(op));
handle!(DomainHeldQuery, |d, op| d.domain_held(op));
handle!(ProbeQuery, |d, op| d.probe(op));
handle!(ProbeTypeRequest, |d, op| d.probe_type(op));
handle!(MigrateExportRequest, |d, op| d.migrate_export(&op.device));
handle!(MigrateCheckRequest, |d, op| d.migrate_check(op));
handle!(MigratePrepareRequest, |d, op| d.migrate_prepare(op));
handle!(HostPlanRequest, |d, op| match &op.import {
    Some(i) => d.host_plan_import(i),
    None => d.host_plan(op.file.as_ref()),
});
handle!(HostApplyRequest, |d, op| d.host_apply(op));

handle!(VgpuTypesQuery, |d, op| d.vgpu.types(op.pf.as_ref()));
handle!(VgpuListQuery, |d, op| {
    let (rows, ps) = d.vgpu.list()?;
    Ok(VgpuListing {
        rows: rows
            .into_iter()
            .filter(|r| !op.defined || r.def.is_some())
            .map(convert::vgpu_row)
            .collect(),
        problems: convert::problems(Kind::Vgpu, ps),
    })
});
handle!(VgpuDefineRequest, |d, op| {
    let slot = match &op.slot {
        VgpuSlot::Vf(vf) => CoreSlot::Vf(vf.clone()),
        VgpuSlot::Pf(pf) => CoreSlot::AnyOf(pf.clone()),
    };
    d.vgpu.define(&slot, &op.type_, op.start)
});
handle!(VgpuUndefineRequest, |d, op| d
    .vgpu
    .undefine(&op.vf)
    .map(|()| Done {}));
handle!(VgpuStartRequest, |d, op| {
    let outcome = match d.vgpu.start(&op.vf)? {
        DeviceOutcome::AlreadyRunning => StartOutcome::AlreadyRunning,
        _ => StartOutcome::Started,
    };
    Ok(VgpuStarted {
        vf: op.vf.clone(),
        outcome,
    })
});
handle!(VgpuStopRequest, |d, op| d
    .vgpu
    .stop(&op.vf)
    .map(|()| Done {}));
handle!(PfEnableRequest, |d, op| d
    .vgpu
    .enable(&op.pf, op.numvfs, op.start)
    .map(|_| Done {}));
handle!(PfDisableRequest, |d, op| d
    .disable_pf(&op.pf)
    .map(|()| Done {}));
handle!(VgpuLibvirtQuery, |d, op| d
    .vgpu
    .libvirt(&op.vf)
    .map(|xml| LibvirtElement { xml }));

handle!(MgmtDevQuery, |d, _op| Ok(d
    .vdpa
    .mgmtdevs()?
    .into_iter()
    .map(convert::mgmtdev)
    .collect()));
handle!(VdpaAddRequest, |d, op| d
    .vdpa
    .add(&op.name, &op.mgmtdev, &op.config)
    .map(|_| Done {}));
handle!(VdpaDelRequest, |d, op| d
    .vdpa
    .del(&op.name)
    .map(|()| Done {}));
handle!(VdpaStopRequest, |d, op| d
    .vdpa
    .del(&op.name)
    .map(|()| Done {}));
handle!(VdpaDefineRequest, |d, op| d
    .vdpa
    .define(&op.definition)
    .map(|()| Done {}));
handle!(VdpaUndefineRequest, |d, op| d
    .vdpa
    .undefine(&op.name)
    .map(|()| Done {}));
handle!(VdpaModifyRequest, |d, op| d.vdpa.modify(&op.name, &op.edit));
handle!(VdpaStartRequest, |d, op| d
    .vdpa
    .start(&op.name)
    .map(|_| Done {}));
handle!(VdpaListQuery, |d, op| {
    // Definitions are configuration: listing them needs no vdpa module.
    let (rows, ps) = if op.defined {
        d.vdpa.list_defined()?
    } else {
        d.vdpa.list()?
    };
    Ok(VdpaListing {
        rows: rows.into_iter().map(convert::vdpa_row).collect(),
        problems: convert::problems(Kind::Vdpa, ps),
    })
});
handle!(VdpaShowQuery, |d, op| {
    let s = d.vdpa.show(&op.name)?;
    Ok(VdpaShow {
        definition: s.definition,
        device: s.device.map(convert::device),
        live: s.live.map(convert::live),
        vhost_dev: s.vhost_dev,
        driver: s.driver,
    })
});
handle!(VdpaExportRequest, |d, op| d.vdpa.export(&op.name));
handle!(VdpaImportRequest, |d, op| d.vdpa.import(
    &op.export,
    op.name.as_ref(),
    op.define,
    op.start
));
handle!(VdpaLibvirtQuery, |d, op| d
    .vdpa
    .libvirt(&op.name)
    .map(|xml| LibvirtElement { xml }));

handle!(DraResourcesQuery, |d, _op| d.dra_resources());
handle!(DraClaimsQuery, |d, _op| d.dra_claims());
handle!(DraHealthQuery, |d, _op| d.dra_health());
handle!(DraPrepareRequest, |d, op| d.dra_prepare(op));
handle!(DraUnprepareRequest, |d, op| d.dra_unprepare(&op.claim));
