//! Pools: named sets of devices handed to consumers.
//!
//! Owns: what allocate, release, bind, list and show do, and the protocol
//! that makes them safe with any number of processes and crashes:
//! - every decision is one `BEGIN IMMEDIATE` transaction on the state
//!   database, so two managers can never hand out one device;
//! - a pre-created pool's allocation is only that transaction (its devices
//!   exist and are defined already);
//! - kernel work (creating or removing an on-demand device, filling a
//!   pre-created pool) is done under the pools' lock
//!   (`/run/lock/hostdev-pools.lock`, taken before the host lock, never
//!   after), and is recorded *before* it is done (`creating`, `removing`), so
//!   a process killed at any instant leaves a row that says what to undo;
//!   whoever next takes the pools' lock (an allocation, a release,
//!   reconcile) knows no live process owns such a row and undoes it.
//!
//! Must not: know a kind's kernel steps (kinds.rs) or parse anything.

mod domain;
mod error;
pub use error::PoolError;
mod kinds;
mod reconcile;

use crate::Interfaces;
use crate::{CoreError, Devices};
use hostdev_api::{
    AllocateRequest, Allocation, BindRequest, ConsumerId, MemberRow, PoolDeviceRow, PoolList,
    PoolProblem, PoolShow, PoolSummary, ReleaseRequest, Released, ReleasedRow, UnbindRequest,
};
use hostdev_model::pool::{place, Mode, Placement, PoolDef, PoolKind, PoolName, Slot};
use hostdev_model::Uuid;
use hostdev_store::{DeviceRecord, HostLock, Origin, PoolDb, PoolDefs, RecState};
pub(crate) use kinds::kind_of;
use kinds::Member;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// How long a pool decision asked by a command or an API request waits for
/// another writer of the state database (a writer holds it for
/// milliseconds; one that holds it longer is stuck, and is named).
pub const WAIT_ASKED: Duration = Duration::from_secs(10);
/// The same for the libvirt hook, which blocks a VM's start (and its stop).
pub const WAIT_HOOK: Duration = Duration::from_secs(5);
/// The same for reconcile, which nobody waits on (hostdevd runs it every
/// minute).
pub const WAIT_RECONCILE: Duration = Duration::from_secs(30);

/// The longest reservation (`ttl_secs`): 30 days. A reservation holds a
/// device for a migration or a job that has not started yet; anything
/// longer is an allocation, which needs no time limit.
pub const MAX_TTL_SECS: u64 = 30 * 86_400;

/// A reservation's end: `now + ttl`, refused outside 1 s to
/// [`MAX_TTL_SECS`], so an expiry is never earlier than now (a sum that
/// wrapped past i64 once made it so, and handed the device to the next).
fn expiry(now: i64, ttl: Option<u64>) -> Result<Option<i64>, CoreError> {
    let Some(t) = ttl else { return Ok(None) };
    let end = (1..=MAX_TTL_SECS)
        .contains(&t)
        .then(|| now.checked_add(i64::try_from(t).ok()?))
        .flatten()
        .filter(|e| *e > now);
    match end {
        Some(e) => Ok(Some(e)),
        None => Err(CoreError::from(PoolError::BadTtl { ttl: t })),
    }
}

/// What an allocation for an arriving domain asks besides the request.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AllocExtra<'a> {
    /// A vDPA device made with this creation config (the source's), not the
    /// pool template's.
    pub vdpa_config: Option<&'a hostdev_model::vdpa::CreateConfig>,
    /// A new device even where the consumer holds one of the pool already
    /// (a domain may hold several of one pool).
    pub fresh: bool,
}

/// Unix seconds now (the default clock of [`Devices::clock`]).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Skipped definition files in the API's shape.
pub(crate) fn pool_problems(v: Vec<hostdev_store::LoadProblem>) -> Vec<PoolProblem> {
    v.into_iter()
        .map(|p| PoolProblem {
            path: p.path,
            reason: p.reason,
        })
        .collect()
}

impl<K: Interfaces> Devices<K> {
    fn pool_defs(&self) -> PoolDefs {
        PoolDefs::under(&self.root)
    }

    pub(crate) fn pool_def(&self, name: &PoolName) -> Result<PoolDef, CoreError> {
        let defs = self.pool_defs();
        defs.load(name)?.ok_or_else(|| {
            CoreError::from(PoolError::Unknown {
                pool: name.to_string(),
                path: defs.path_of(name),
            })
        })
    }

    /// The state database for a command or an API request.
    pub(crate) fn pool_db(&self) -> Result<PoolDb, CoreError> {
        self.pool_db_waiting(WAIT_ASKED)
    }

    /// The state database, its transactions waiting at most `wait` for
    /// another writer (then the error names the holder).
    pub(crate) fn pool_db_waiting(&self, wait: Duration) -> Result<PoolDb, CoreError> {
        Ok(PoolDb::open(&self.root)?.waiting(wait))
    }

    pub(crate) fn pool_lock(&self) -> Result<HostLock, CoreError> {
        crate::Locker::pools_under(&self.root).lock()
    }

    fn summary(
        &self,
        def: &PoolDef,
        members: &[Member],
        rows: &[DeviceRecord],
        now: i64,
    ) -> PoolSummary {
        let busy = |r: &DeviceRecord| {
            r.held_at(now) || matches!(r.state, RecState::Creating | RecState::Removing)
        };
        let allocated = rows.iter().filter(|r| busy(r)).count() as u64;
        let capacity = match def.mode {
            Mode::PreCreated => rows
                .iter()
                .filter(|r| r.state != RecState::Removing)
                .count() as u64,
            Mode::OnDemand => {
                let free: u64 = members.iter().map(|m| m.free).fold(0, u64::saturating_add);
                let c = allocated.saturating_add(free);
                def.limit.map_or(c, |l| c.min(u64::from(l)))
            }
        };
        PoolSummary {
            name: def.name.clone(),
            kind: kind_of(def),
            type_label: def.kind.type_label(),
            mode: def.mode.as_str().to_string(),
            placement: def.placement.as_str().to_string(),
            members: members.len(),
            capacity,
            allocated,
            free: capacity.saturating_sub(allocated),
        }
    }

    /// The ids of every device a pool recorded, whatever its state: a
    /// device a pool made is the pool's, not drift (it has no definition by
    /// design). Empty on a host without pool state.
    pub fn pool_owned(&self) -> Result<BTreeSet<String>, CoreError> {
        if !PoolDb::path_under(&self.root).exists() {
            return Ok(BTreeSet::new());
        }
        let rows = self.pool_db()?.read(|tx| tx.all_devices())?;
        Ok(rows.into_iter().map(|r| r.id).collect())
    }

    /// Every pool with its capacity and use.
    pub fn pool_list(&self) -> Result<PoolList, CoreError> {
        let (defs, problems) = self.pool_defs().load_all()?;
        let now = (self.clock)();
        let rows = if defs.is_empty() {
            Vec::new()
        } else {
            self.pool_db()?.read(|tx| tx.all_devices())?
        };
        let mut pools = Vec::new();
        let mut problems = pool_problems(problems);
        for d in &defs {
            // One pool whose members cannot be read (its kind's module is not
            // loaded) is shown without members; the others are not hidden.
            let members = match self.members(d) {
                Ok(m) => m,
                Err(e) => {
                    problems.push(PoolProblem {
                        path: self.pool_defs().path_of(&d.name),
                        reason: format!("its members cannot be read: {}", crate::chain(&e)),
                    });
                    Vec::new()
                }
            };
            let mine: Vec<DeviceRecord> = rows
                .iter()
                .filter(|r| r.pool == d.name.as_str())
                .cloned()
                .collect();
            pools.push(self.summary(d, &members, &mine, now));
        }
        Ok(PoolList { pools, problems })
    }

    /// One pool: members, devices, holders, bindings.
    pub fn pool_show(&self, name: &PoolName) -> Result<PoolShow, CoreError> {
        let def = self.pool_def(name)?;
        let now = (self.clock)();
        let (rows, bindings) = self.pool_db()?.read(|tx| {
            Ok((
                tx.pool_devices(name.as_str())?,
                tx.bindings(Some(name.as_str()))?,
            ))
        })?;
        let members = self.members(&def)?;
        let held_on = |m: &str| rows.iter().filter(|r| r.member == m).count() as u64;
        Ok(PoolShow {
            summary: self.summary(&def, &members, &rows, now),
            members: members
                .iter()
                .map(|m| MemberRow {
                    name: m.name.clone(),
                    free: if def.mode == Mode::PreCreated {
                        0
                    } else {
                        m.free
                    },
                    held: held_on(&m.name),
                    note: m.note.clone(),
                })
                .collect(),
            devices: rows
                .iter()
                .map(|r| PoolDeviceRow {
                    id: r.id.clone(),
                    member: r.member.clone(),
                    state: match (r.state, r.expires) {
                        (RecState::Allocated, Some(e)) if e <= now => "expired",
                        (RecState::Allocated, Some(_)) => "reserved",
                        (s, _) => s.as_str(),
                    }
                    .to_string(),
                    consumer: r.consumer.clone(),
                    expires: r.expires,
                })
                .collect(),
            bindings: bindings
                .into_iter()
                .filter_map(|(u, _)| u.parse::<Uuid>().ok())
                .collect(),
        })
    }

    fn allocation(
        &self,
        def: &PoolDef,
        r: &DeviceRecord,
        consumer: &ConsumerId,
        again: bool,
    ) -> Allocation {
        Allocation {
            pool: def.name.clone(),
            consumer: consumer.clone(),
            id: r.id.clone(),
            kind: kind_of(def),
            member: r.member.clone(),
            expires: r.expires,
            again,
            libvirt: if r.element.is_empty() {
                self.libvirt_element(def, &r.id, &r.member)
            } else {
                r.element.clone()
            },
        }
    }

    /// Hands one device of the pool to the consumer: the one it holds
    /// already, if any (a reservation becomes permanent when asked again
    /// without a time limit).
    pub fn allocate(&self, req: &AllocateRequest) -> Result<Allocation, CoreError> {
        self.allocate_waiting(req, WAIT_ASKED)
    }

    /// [`Devices::allocate`], waiting at most `wait` for another writer.
    pub(crate) fn allocate_waiting(
        &self,
        req: &AllocateRequest,
        wait: Duration,
    ) -> Result<Allocation, CoreError> {
        self.allocate_with(req, wait, &AllocExtra::default())
    }

    /// [`Devices::allocate_waiting`] with what a migration asks besides.
    pub(crate) fn allocate_with(
        &self,
        req: &AllocateRequest,
        wait: Duration,
        extra: &AllocExtra<'_>,
    ) -> Result<Allocation, CoreError> {
        expiry((self.clock)(), req.ttl_secs)?;
        let def = self.pool_def(&req.pool)?;
        if req.uuid.is_some() && !matches!(def.kind, PoolKind::Mdev { .. }) {
            return Err(CoreError::from(PoolError::Misuse {
                pool: def.name.to_string(),
                why: format!(
                    "a UUID names an mdev; this pool hands out {} devices",
                    def.kind.word()
                ),
            }));
        }
        let db = self.pool_db_waiting(wait)?;
        match def.mode {
            Mode::PreCreated => match self.allocate_ready(&def, &db, req, extra.fresh) {
                Err(CoreError::Pool(PoolError::Exhausted { .. }))
                    if self.pool_short(&def, &db)? =>
                {
                    let _pools = self.pool_lock()?;
                    let mut rows = Vec::new();
                    self.fill(&def, &db, &mut rows)?;
                    match self.allocate_ready(&def, &db, req, extra.fresh) {
                        Err(CoreError::Pool(PoolError::Exhausted { .. }))
                            if rows.iter().any(|r| r.action == "failed") =>
                        {
                            let why = rows
                                .iter()
                                .filter(|r| r.action == "failed")
                                .map(|r| r.why.as_str())
                                .collect::<Vec<_>>()
                                .join("; ");
                            Err(CoreError::from(PoolError::FillFailed {
                                pool: def.name.to_string(),
                                why,
                            }))
                        }
                        r => r,
                    }
                }
                r => r,
            },
            Mode::OnDemand => self.allocate_on_demand(&def, &db, req, extra),
        }
    }

    /// A pre-created pool has fewer devices than its count.
    fn pool_short(&self, def: &PoolDef, db: &PoolDb) -> Result<bool, CoreError> {
        let n = db.read(|tx| tx.pool_devices(def.name.as_str()))?.len();
        Ok((n as u64) < u64::from(def.count.unwrap_or(0)))
    }

    /// What the consumer already holds in one transaction's view: the device
    /// answering `req`, made permanent if asked without a time limit.
    fn held_again(
        tx: &hostdev_store::Tx<'_>,
        def: &PoolDef,
        req: &AllocateRequest,
        now: i64,
        expires: Option<i64>,
    ) -> Result<Option<DeviceRecord>, CoreError> {
        let held = tx.held_by(Some(def.name.as_str()), req.consumer.as_str())?;
        let want = req.uuid.map(|u| u.to_string());
        let Some(mut d) = held
            .into_iter()
            .filter(|d| d.held_at(now))
            .find(|d| want.as_ref().is_none_or(|w| &d.id == w))
        else {
            return Ok(None);
        };
        if d.expires.is_some() && expires.is_none() {
            tx.set(
                &d.id,
                RecState::Allocated,
                Some(req.consumer.as_str()),
                now,
                None,
            )?;
            d.expires = None;
        }
        Ok(Some(d))
    }

    fn allocate_ready(
        &self,
        def: &PoolDef,
        db: &PoolDb,
        req: &AllocateRequest,
        fresh: bool,
    ) -> Result<Allocation, CoreError> {
        let now = (self.clock)();
        let expires = expiry(now, req.ttl_secs)?;
        let pool = def.name.as_str();
        let (rec, again) = db.write(|tx| {
            if !fresh {
                if let Some(d) = Self::held_again(tx, def, req, now, expires)? {
                    return Ok((d, true));
                }
            }
            let pick = match req.uuid {
                Some(u) => {
                    let id = u.to_string();
                    let d = tx.device(&id)?.filter(|d| d.pool == pool).ok_or_else(|| {
                        CoreError::from(PoolError::NotMember {
                            pool: pool.to_string(),
                            id: id.clone(),
                        })
                    })?;
                    let expired = d.state == RecState::Allocated && !d.held_at(now);
                    if d.state != RecState::Free && !expired {
                        return Err(CoreError::from(PoolError::DeviceHeld {
                            pool: pool.to_string(),
                            id,
                            consumer: d.consumer.unwrap_or_else(|| d.state.as_str().to_string()),
                        }));
                    }
                    Some(d)
                }
                None => tx.pick_ready(pool, now, def.placement == Placement::Pack)?,
            };
            let Some(mut d) = pick else {
                let capacity = tx.pool_devices(pool)?.len() as u64;
                return Err(CoreError::from(PoolError::Exhausted {
                    pool: pool.to_string(),
                    allocated: tx.busy_count(pool, now)?,
                    capacity,
                }));
            };
            tx.set(
                &d.id,
                RecState::Allocated,
                Some(req.consumer.as_str()),
                now,
                expires,
            )?;
            d.state = RecState::Allocated;
            d.consumer = Some(req.consumer.to_string());
            d.expires = expires;
            Ok((d, false))
        })?;
        Ok(self.allocation(def, &rec, &req.consumer, again))
    }

    fn allocate_on_demand(
        &self,
        def: &PoolDef,
        db: &PoolDb,
        req: &AllocateRequest,
        extra: &AllocExtra<'_>,
    ) -> Result<Allocation, CoreError> {
        let pool = def.name.as_str();
        // Cheap path first: asking again needs no kernel work and no lock.
        let now = (self.clock)();
        let expires = expiry(now, req.ttl_secs)?;
        if !extra.fresh {
            if let Some(d) = db.write(|tx| Self::held_again(tx, def, req, now, expires))? {
                return Ok(self.allocation(def, &d, &req.consumer, true));
            }
        }
        let _pools = self.pool_lock()?;
        self.settle(def, db, &mut Vec::new())?;
        let now = (self.clock)();
        let expires = expiry(now, req.ttl_secs)?;
        if let Some(u) = &req.uuid {
            if let Some((p, _)) = self.mdev.running_parent(u)? {
                return Err(CoreError::from(PoolError::UuidTaken {
                    uuid: *u,
                    why: format!("running on {p}"),
                }));
            }
        }
        let members = self.members(def)?;
        enum Plan {
            Again(DeviceRecord),
            Try(Vec<Member>, BTreeSet<String>),
        }
        let plan = db.write(|tx| {
            if !extra.fresh {
                if let Some(d) = Self::held_again(tx, def, req, now, expires)? {
                    return Ok(Plan::Again(d));
                }
            }
            if let Some(u) = &req.uuid {
                if let Some(d) = tx.device(&u.to_string())? {
                    return Err(CoreError::from(PoolError::DeviceHeld {
                        pool: d.pool,
                        id: d.id,
                        consumer: d.consumer.unwrap_or_else(|| d.state.as_str().to_string()),
                    }));
                }
            }
            if members.is_empty() {
                return Err(CoreError::from(PoolError::NoMembers {
                    pool: pool.to_string(),
                }));
            }
            let rows = tx.pool_devices(pool)?;
            let busy = rows.len() as u64;
            let free: u64 = members.iter().map(|m| m.free).fold(0, u64::saturating_add);
            let capacity = def.limit.map_or(busy.saturating_add(free), |l| {
                u64::from(l).min(busy.saturating_add(free))
            });
            if capacity == 0 {
                let why = members
                    .iter()
                    .map(|m| format!("{}: {}", m.name, m.note.as_deref().unwrap_or("it is full")))
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(CoreError::from(PoolError::NoRoom {
                    pool: pool.to_string(),
                    why,
                }));
            }
            if busy >= capacity {
                return Err(CoreError::from(PoolError::Exhausted {
                    pool: pool.to_string(),
                    allocated: busy,
                    capacity: capacity.max(busy),
                }));
            }
            let slots: Vec<Slot> = members
                .iter()
                .map(|m| Slot {
                    member: m.name.clone(),
                    free: m.free,
                    held: rows.iter().filter(|r| r.member == m.name).count() as u64,
                })
                .collect();
            let order = place(&slots, def.placement)
                .into_iter()
                .filter_map(|s| members.iter().find(|m| m.name == s.member).cloned())
                .collect();
            Ok(Plan::Try(order, rows.into_iter().map(|r| r.id).collect()))
        })?;
        let (order, taken) = match plan {
            Plan::Again(d) => return Ok(self.allocation(def, &d, &req.consumer, true)),
            Plan::Try(o, t) => (o, t),
        };
        let mut last = None;
        for m in order {
            let Some(id) = self.next_id(def, &m, &taken, req.uuid)? else {
                continue;
            };
            let rec = DeviceRecord {
                id: id.clone(),
                pool: pool.to_string(),
                member: m.name.clone(),
                origin: Origin::OnDemand,
                state: RecState::Creating,
                consumer: Some(req.consumer.to_string()),
                since: now,
                expires,
                element: String::new(),
            };
            db.write(|tx| tx.insert(&rec))?;
            match self.create_on(def, &m, &id, extra.vdpa_config) {
                Ok(()) => {
                    db.write(|tx| {
                        tx.set(
                            &id,
                            RecState::Allocated,
                            Some(req.consumer.as_str()),
                            now,
                            expires,
                        )
                    })?;
                    let rec = DeviceRecord {
                        state: RecState::Allocated,
                        ..rec
                    };
                    return Ok(self.allocation(def, &rec, &req.consumer, false));
                }
                Err(e) => {
                    // Nothing was made (create_on undoes its own half-steps).
                    db.write(|tx| tx.delete(&id))?;
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            CoreError::from(PoolError::Exhausted {
                pool: pool.to_string(),
                allocated: taken.len() as u64,
                capacity: taken.len() as u64,
            })
        }))
    }

    /// Gives back a consumer's devices (in one pool or all), or one device.
    pub fn release(&self, req: &ReleaseRequest) -> Result<Released, CoreError> {
        let db = self.pool_db()?;
        let what = match (&req.device, &req.consumer) {
            (Some(d), _) => d.clone(),
            (None, Some(c)) => c.to_string(),
            (None, None) => {
                return Err(CoreError::from(PoolError::Misuse {
                    pool: req.pool.as_ref().map(|p| p.to_string()).unwrap_or_default(),
                    why: "a release names a consumer or a device".into(),
                }))
            }
        };
        let records: Vec<DeviceRecord> = db
            .read(|tx| match (&req.device, &req.consumer) {
                (Some(d), _) => Ok(tx.device(d)?.into_iter().collect()),
                (None, Some(c)) => tx.held_by(req.pool.as_ref().map(|p| p.as_str()), c.as_str()),
                (None, None) => Ok(Vec::new()),
            })?
            .into_iter()
            .filter(|r| r.state == RecState::Allocated)
            .filter(|r| req.pool.as_ref().is_none_or(|p| p.as_str() == r.pool))
            .filter(|r| {
                req.consumer
                    .as_ref()
                    .is_none_or(|c| r.consumer.as_deref() == Some(c.as_str()))
            })
            .collect();
        if records.is_empty() {
            return Err(CoreError::from(PoolError::NothingHeld { what }));
        }
        self.release_records(&db, records, false)
    }

    /// Undoes a call that failed part way: gives back the devices it made
    /// (`made`, by id) and unbinds the UUIDs it bound, best effort (what
    /// cannot be undone now is left to reconcile).
    pub(crate) fn undo_made(
        &self,
        db: &PoolDb,
        made: &[String],
        bound: Vec<String>,
    ) -> Result<(), CoreError> {
        let records = db.read(|tx| {
            let mut v = Vec::new();
            for id in made {
                v.extend(tx.device(id)?);
            }
            Ok(v)
        })?;
        let _ = self.release_records(db, records, false);
        for u in bound {
            let _ = db.write(|tx| tx.unbind(&u));
        }
        Ok(())
    }

    /// Gives back the devices of `records` (each still held by the consumer
    /// the record names, checked inside the transaction).
    pub(crate) fn release_records(
        &self,
        db: &PoolDb,
        records: Vec<DeviceRecord>,
        have_lock: bool,
    ) -> Result<Released, CoreError> {
        let mut out = Released::default();
        let mut pools_lock = None;
        // Each pool's file is read once, however many of its devices go back.
        let mut defs: BTreeMap<String, PoolDef> = BTreeMap::new();
        for r in records {
            if !defs.contains_key(&r.pool) {
                let name = PoolName::new(r.pool.clone()).map_err(|_| {
                    CoreError::from(PoolError::Unknown {
                        pool: r.pool.clone(),
                        path: self.pool_defs().dir().join(&r.pool),
                    })
                })?;
                defs.insert(r.pool.clone(), self.pool_def(&name)?);
            }
            let Some(def) = defs.get(&r.pool) else {
                continue;
            };
            let consumer = r.consumer.clone().unwrap_or_default();
            let still = |tx: &hostdev_store::Tx<'_>| -> Result<bool, CoreError> {
                Ok(tx.device(&r.id)?.is_some_and(|d| {
                    d.state == RecState::Allocated && d.consumer.as_deref() == Some(&consumer)
                }))
            };
            let now = (self.clock)();
            match r.origin {
                Origin::PreCreated => {
                    let done = db.write(|tx| {
                        let ok = still(tx)?;
                        if ok {
                            tx.set(&r.id, RecState::Free, None, now, None)?;
                        }
                        Ok::<_, CoreError>(ok)
                    })?;
                    if done {
                        out.devices.push(ReleasedRow {
                            pool: r.pool,
                            id: r.id,
                            consumer,
                            removed: false,
                        });
                    }
                }
                Origin::OnDemand => {
                    if pools_lock.is_none() && !have_lock {
                        pools_lock = Some(self.pool_lock()?);
                    }
                    let go = db.write(|tx| {
                        let ok = still(tx)?;
                        if ok {
                            tx.set(&r.id, RecState::Removing, Some(&consumer), now, None)?;
                        }
                        Ok::<_, CoreError>(ok)
                    })?;
                    if !go {
                        continue;
                    }
                    if let Err(e) = self.remove_made(def, &r.id, &r.member) {
                        // Still there: the consumer keeps it, as before.
                        db.write(|tx| {
                            tx.set(&r.id, RecState::Allocated, Some(&consumer), now, r.expires)
                        })?;
                        return Err(e);
                    }
                    db.write(|tx| tx.delete(&r.id))?;
                    out.devices.push(ReleasedRow {
                        pool: r.pool,
                        id: r.id,
                        consumer,
                        removed: true,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Binds a UUID to an on-demand mdev pool.
    pub fn bind(&self, req: &BindRequest) -> Result<(), CoreError> {
        let def = self.pool_def(&req.pool)?;
        if !matches!(def.kind, PoolKind::Mdev { .. }) || def.mode != Mode::OnDemand {
            return Err(CoreError::from(PoolError::Misuse {
                pool: def.name.to_string(),
                why: "only an on-demand mdev pool binds UUIDs (its devices are made with them at domain prepare)".into(),
            }));
        }
        let defined = self.mdev.store.parents_with(&req.uuid)?;
        if let Some(p) = defined.first() {
            return Err(CoreError::from(PoolError::UuidTaken {
                uuid: req.uuid,
                why: format!("defined on {p}"),
            }));
        }
        let db = self.pool_db()?;
        db.write(|tx| {
            match tx.binding(&req.uuid.to_string())? {
                Some(p) if p == def.name.as_str() => return Ok(()),
                Some(p) => {
                    return Err(CoreError::from(PoolError::UuidTaken {
                        uuid: req.uuid,
                        why: format!("bound to pool {p}"),
                    }))
                }
                None => {}
            }
            Ok(tx.bind(&req.uuid.to_string(), def.name.as_str())?)
        })
    }

    /// Removes a UUID's binding.
    pub fn unbind(&self, req: &UnbindRequest) -> Result<(), CoreError> {
        let db = self.pool_db()?;
        let had = db.write(|tx| Ok::<_, CoreError>(tx.unbind(&req.uuid.to_string())?))?;
        if had {
            Ok(())
        } else {
            Err(CoreError::from(PoolError::NotBound { uuid: req.uuid }))
        }
    }
}
