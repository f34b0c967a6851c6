//! The seam a device kind plugs in through: [`DeviceKind`], one trait that
//! every kind (`mdev::Host`, `vgpu::Vgpus`, `vdpa::Vdpas`) implements over its
//! own kernel interface, and [`Devices::kinds`], the one list of registered
//! kinds that restore, the inventory, pools and domain migration iterate
//! over or pick from by [`Kind`].
//!
//! Why a trait object and not an enum: each kind already is a struct over
//! its own kernel interface (given to its constructor), and the cross-kind
//! code needs only this narrow, object-safe set of steps. A kind's own
//! operations (define, start, its API requests) stay typed on its struct;
//! only what the cross-kind code asks of every kind goes through the seam.
//!
//! Owns: the trait, the registry, and the row helpers every kind's restore
//! and inventory share. Must not: hold a kind's logic (each kind's impl lives
//! in its own module's `seam.rs`) or touch the pool database (pools do).

use crate::Interfaces;
use crate::{CoreError, DeviceOutcome, Devices};
use hostdev_api::migrate::ExportTarget;
use hostdev_api::{Inventory, Kind, Outcome, Problem, RestoreRow};
use hostdev_model::pool::PoolDef;
use hostdev_model::vdpa::CreateConfig;
use hostdev_model::Uuid;
use hostdev_store::{LoadProblem, StoreError};
use std::collections::BTreeSet;
use std::fmt::Display;
use std::time::Duration;

/// A member of a pool as the pool sees it now: a parent, a PF or a
/// management device.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    /// Parent, PF address or management device.
    pub name: String,
    /// How many more of the pool's devices it can take.
    pub free: u64,
    /// Why it takes none.
    pub note: Option<String>,
    /// Devices that exist before they are handed out (vGPU: the VFs that
    /// can take the type now, in order); empty for kinds that create.
    pub spare: Vec<String>,
}

/// One kind's restore: a row per definition, and the definition files that
/// could not be read.
pub(crate) type KindRestore = Result<(Vec<RestoreRow>, Vec<LoadProblem>), CoreError>;

/// What the cross-kind code asks of every device kind. Ids are the API's
/// (an mdev's UUID, a VF's address, a vDPA device's name); a pool's
/// `PoolDef` is always of the kind it is given to.
pub(crate) trait DeviceKind: Sync {
    /// The kind's word.
    fn kind(&self) -> Kind;

    /// Restores every auto-start definition; parents absent now are waited
    /// for up to `wait` where the kind has late parents.
    fn restore(&self, wait: Duration) -> KindRestore;

    /// Adds the kind's rows to the inventory. `Err` fails the whole
    /// inventory; a kind whose kernel interface is missing adds itself to
    /// `inv.unavailable` instead.
    fn inventory(&self, inv: &mut Inventory) -> Result<(), CoreError>;

    /// The pool's members present now.
    fn members(&self, def: &PoolDef) -> Result<Vec<Member>, CoreError>;

    /// The id the next device on `member` gets, not one of `taken`; `asked`
    /// is an id the consumer chose (kinds whose ids are chosen: mdev).
    /// `None`: the member has no device left to hand out.
    fn next_id(
        &self,
        def: &PoolDef,
        member: &Member,
        taken: &BTreeSet<String>,
        asked: Option<Uuid>,
    ) -> Result<Option<String>, CoreError>;

    /// Creates one device on `member` (transient: removed at release); a
    /// vDPA device with `config` where given (a migration's source config).
    fn create_on(
        &self,
        def: &PoolDef,
        member: &Member,
        id: &str,
        config: Option<&CreateConfig>,
    ) -> Result<(), CoreError>;

    /// Whether the device exists in the kernel now (a VF: has a type; only
    /// `member`'s devices are read).
    fn exists(&self, id: &str, member: &str) -> Result<bool, CoreError>;

    /// Removes the running device (it exists).
    fn remove(&self, id: &str) -> Result<(), CoreError>;

    /// Makes one pre-created device on `member`: a persistent definition
    /// (auto start, restored like any other) and the running device.
    fn precreate_on(&self, def: &PoolDef, member: &Member, id: &str) -> Result<(), CoreError>;

    /// Removes the device's definition; one already gone is not an error.
    fn undefine_quietly(&self, id: &str) -> Result<(), CoreError>;

    /// Whether the device's definition exists.
    fn defined(&self, id: &str) -> Result<bool, CoreError>;

    /// Starts a defined device that is not running.
    fn restart(&self, id: &str) -> Result<(), CoreError>;

    /// The libvirt element that hands the device to a domain ("" when it
    /// cannot be named).
    fn libvirt_element(&self, def: &PoolDef, id: &str, member: &str) -> String;

    /// What VFIO opens to reach the device (the in-use test asks whether
    /// its group is held elsewhere); `None` for a device VFIO does not
    /// reach (vDPA: vhost-vdpa).
    fn vfio_target(&self, id: &str) -> Option<hostdev_vfio::Target>;

    /// What a migration exports for the device.
    fn export_target(&self, id: &str) -> Result<ExportTarget, CoreError>;

    /// What a domain's XML names for the device here.
    fn xml_source(&self, id: &str) -> Result<String, CoreError>;
}

/// The order the inventory lists kinds in (mdevs, then vDPA, then vGPU VFs,
/// as it always has).
const LISTED: [Kind; 3] = [Kind::Mdev, Kind::Vdpa, Kind::Vgpu];

impl<K: Interfaces> Devices<K> {
    /// The registered kinds, in [`Kind`]'s order. The one place a new kind
    /// is registered (with [`Devices::kind`]).
    pub(crate) fn kinds(&self) -> [&dyn DeviceKind; 3] {
        [&self.mdev, &self.vgpu, &self.vdpa]
    }

    /// The registered kind `k`.
    pub(crate) fn kind(&self, k: Kind) -> &dyn DeviceKind {
        match k {
            Kind::Mdev => &self.mdev,
            Kind::Vgpu => &self.vgpu,
            Kind::Vdpa => &self.vdpa,
        }
    }

    /// The registered kinds in the inventory's order.
    pub(crate) fn listed(&self) -> impl Iterator<Item = &dyn DeviceKind> {
        LISTED.into_iter().map(|k| self.kind(k))
    }
}

/// One restore row per (parent, device, outcome).
pub(crate) fn restore_rows<P: Display, I: Display>(
    kind: Kind,
    r: Vec<(P, I, DeviceOutcome)>,
) -> Vec<RestoreRow> {
    r.into_iter()
        .map(|(p, id, o)| {
            let (outcome, error) = match o {
                DeviceOutcome::Started => (Outcome::Started, None),
                DeviceOutcome::AlreadyRunning => (Outcome::AlreadyRunning, None),
                DeviceOutcome::ParentAbsent => (Outcome::ParentAbsent, None),
                DeviceOutcome::Failed(e) => (Outcome::Failed, Some(e.body())),
            };
            RestoreRow {
                kind,
                id: id.to_string(),
                parent: p.to_string(),
                outcome,
                error,
            }
        })
        .collect()
}

/// The restore row of a definition file that could not be read.
pub(crate) fn unusable(kind: Kind, p: LoadProblem) -> RestoreRow {
    let id = p.path.display().to_string();
    let e = CoreError::Store(StoreError::Definition {
        path: p.path,
        reason: p.reason,
    });
    RestoreRow {
        kind,
        id,
        parent: "-".into(),
        outcome: Outcome::Unusable,
        error: Some(e.body()),
    }
}

/// The inventory's problems of definition files that could not be read.
pub(crate) fn problems(kind: Kind, ps: Vec<LoadProblem>) -> impl Iterator<Item = Problem> {
    ps.into_iter().map(move |p| Problem {
        kind,
        path: p.path,
        reason: p.reason,
    })
}

/// The error for a pool handed to a kind it is not of (a defect).
pub(crate) fn not_mine(def: &PoolDef, kind: Kind) -> CoreError {
    CoreError::from(crate::PoolError::Misuse {
        pool: def.name.to_string(),
        why: format!("it is not a pool of {kind} devices"),
    })
}
