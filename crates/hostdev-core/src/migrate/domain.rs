//! A libvirt domain moving between hosts: on the source, what it holds
//! through pools with each device's spec (hostdev's `<metadata>` entry);
//! on the destination, before QEMU starts (libvirt's `migrate begin`),
//! each device the source's metadata lists gets a device of the same pool
//! here — an mdev the source's UUID where it is free, a VF of the same
//! vGPU type, a vDPA device made with the source's creation config —
//! judged against the source's spec with the pool's driver policy.
//!
//! The protocol: an arrival is a reservation of [`ARRIVAL_HOLD_SECS`] for
//! the domain (the consumer is its UUID); libvirt's `prepare` of the
//! incoming domain makes it an allocation (`pool/domain.rs`), its
//! `release` gives it back as for any domain. A migration that never
//! reaches `prepare` (the destination's libvirtd killed, the hook killed
//! after reserving) leaves a reservation that ends by itself and that
//! reconcile removes; a refusal gives back what this call made before it
//! answers, and what can be judged from the source's spec alone (the
//! pool, its kind and type, the QEMU properties) is judged before anything
//! is made.
//!
//! Owns: those decisions. Must not: parse or write XML (hostdev-model's
//! `libvirt::domain` does, for the hook front-end), or call libvirt (the
//! hook runs inside libvirtd's migration).

use crate::pool::{AllocExtra, WAIT_HOOK};
use crate::Interfaces;
use crate::{CoreError, Devices, MigrateError, PoolError};
use hostdev_api::{
    AllocateRequest, Arrival, ConsumerId, DomainHeld, DomainHeldQuery, DomainMigrateRequest,
    DomainMigrated, ExportTarget, HeldDevice, IncomingDevice, Kind, MigrateCheckRequest,
    ProbeTarget,
};
use hostdev_model::migrate::{self, Reason, VdpaDestination, Verdict};
use hostdev_model::pci::PciAddress;
use hostdev_model::pool::{Mode, PoolDef, PoolKind};
use hostdev_model::vdpa::VdpaName;
use hostdev_model::Uuid;
use hostdev_store::{PoolDb, RecState};
use hostdev_vdpa::VdpaClient;

/// How long a device reserved for an arriving domain stays reserved unless
/// the domain starts here: libvirt's `prepare` follows `migrate begin` within
/// the same call, so this only bounds what an interrupted migration holds.
pub const ARRIVAL_HOLD_SECS: u64 = 600;

fn consumer_of(domain: &Uuid) -> Result<ConsumerId, CoreError> {
    ConsumerId::new(domain.to_string()).map_err(|_| {
        CoreError::from(PoolError::Misuse {
            pool: String::new(),
            why: "the domain's UUID is not a consumer id".into(),
        })
    })
}

/// The reasons that refused, as one sentence fragment.
fn refusals(reasons: &[Reason]) -> String {
    reasons
        .iter()
        .filter(|r| r.verdict == Verdict::Incompatible)
        .map(|r| {
            format!(
                "{}: {} (source {}, here {})",
                r.rule, r.why, r.source, r.destination
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn incompatible(d: &IncomingDevice, why: String) -> CoreError {
    CoreError::from(MigrateError::Incompatible {
        id: d.id.clone(),
        kind: d.kind.to_string(),
        pool: d.pool.to_string(),
        why,
    })
}

impl<K: Interfaces> Devices<K> {
    /// The devices a domain holds here through pools, each with its spec
    /// (what hostdev's metadata entry for the domain says).
    pub fn domain_held(&self, q: &DomainHeldQuery) -> Result<DomainHeld, CoreError> {
        if !PoolDb::path_under(&self.root).exists() {
            return Ok(DomainHeld::default());
        }
        let now = (self.clock)();
        let held: Vec<_> = self
            .pool_db_waiting(WAIT_HOOK)?
            .read(|tx| tx.held_by(None, &q.domain.to_string()))?
            .into_iter()
            .filter(|r| r.held_at(now))
            .collect();
        let mut out = DomainHeld::default();
        for r in held {
            let pool = hostdev_model::pool::PoolName::new(r.pool.clone()).map_err(|e| {
                CoreError::from(PoolError::Misuse {
                    pool: r.pool.clone(),
                    why: e.to_string(),
                })
            })?;
            let def = self.pool_def(&pool)?;
            let kind = crate::pool::kind_of(&def);
            let target = self.kind(kind).export_target(&r.id)?;
            let (spec, why) = match self.migrate_export(&target) {
                Ok(s) => (Some(s), None),
                Err(e) => (None, Some(e.chain())),
            };
            out.devices.push(HeldDevice {
                pool,
                kind,
                source: self.kind(kind).xml_source(&r.id)?,
                id: r.id,
                spec,
                why,
            });
        }
        Ok(out)
    }

    /// Serves a domain arriving by migration (see the module's protocol):
    /// all of its listed devices or none.
    pub fn domain_migrate(&self, req: &DomainMigrateRequest) -> Result<DomainMigrated, CoreError> {
        let consumer = consumer_of(&req.domain)?;
        // A pool-bound UUID the domain names without a spec cannot be judged.
        if !req.unlisted_mdevs.is_empty() && PoolDb::path_under(&self.root).exists() {
            let db = self.pool_db_waiting(WAIT_HOOK)?;
            for u in &req.unlisted_mdevs {
                if let Some(pool) = db.read(|tx| tx.binding(&u.to_string()))? {
                    return Err(CoreError::from(MigrateError::Unannotated {
                        id: u.to_string(),
                        pool,
                    }));
                }
            }
        }
        // What can be judged from the source's spec alone, before anything
        // is made for any device.
        let mut defs = Vec::new();
        for d in &req.devices {
            defs.push(self.prejudge(d)?);
        }
        if req.dry_run {
            let mut out = DomainMigrated::default();
            for (d, def) in req.devices.iter().zip(&defs) {
                out.devices.push(self.arrive_dry(d, def)?);
            }
            return Ok(out);
        }
        // What an earlier attempt that never reached `prepare` reserved here
        // for the domain is given back first. Allocations are not: libvirt
        // runs this hook before it checks that the domain is not active
        // here, and a domain that is keeps its devices. They are served
        // again instead (`arrive_again`): to a domain running here libvirt
        // then refuses the migration and nothing has changed; a domain whose
        // earlier arrival was prepared but never released (its libvirtd
        // killed in between) gets the same device, not a second one.
        self.give_back_reservations(&consumer)?;
        let mut out = DomainMigrated::default();
        let mut made: Vec<String> = Vec::new();
        let mut bound: Vec<String> = Vec::new();
        let mut kept: Vec<String> = Vec::new();
        let result = (|| {
            for (d, def) in req.devices.iter().zip(&defs) {
                // A device of the pool the domain already holds here is
                // served again rather than a second one reserved.
                let a = match self.arrive_again(&consumer, d, def, &kept)? {
                    Some(a) => a,
                    None => self.arrive(&consumer, d, def, &mut made, &mut bound)?,
                };
                kept.push(a.id.clone());
                out.devices.push(a);
            }
            Ok(())
        })();
        match result {
            Ok(()) => Ok(out),
            Err(e) => {
                let db = self.pool_db_waiting(WAIT_HOOK)?;
                self.undo_made(&db, &made, bound)?;
                Err(e)
            }
        }
    }

    /// Gives back what is reserved here for `consumer` (not what it holds
    /// without an end: a running domain's allocations).
    fn give_back_reservations(&self, consumer: &ConsumerId) -> Result<(), CoreError> {
        if !PoolDb::path_under(&self.root).exists() {
            return Ok(());
        }
        let db = self.pool_db_waiting(WAIT_HOOK)?;
        let held: Vec<_> = db
            .read(|tx| tx.held_by(None, consumer.as_str()))?
            .into_iter()
            .filter(|r| r.state == RecState::Allocated)
            .filter(|r| r.expires.is_some())
            .collect();
        if !held.is_empty() {
            self.release_records(&db, held, false)?;
        }
        Ok(())
    }

    /// The pool serving `d` here, with what the source's spec alone
    /// settles: the pool exists, hands out the same kind and type, the spec
    /// is one this hostdev reads, and QEMU runs the device as it must to
    /// migrate.
    fn prejudge(&self, d: &IncomingDevice) -> Result<PoolDef, CoreError> {
        let def = self.pool_def(&d.pool)?;
        super::usable(&d.spec)?;
        let kind = crate::pool::kind_of(&def);
        let spec_kind = match (&d.spec.mdev, &d.spec.vgpu, &d.spec.vdpa) {
            (Some(_), ..) => Kind::Mdev,
            (_, Some(_), _) => Kind::Vgpu,
            _ => Kind::Vdpa,
        };
        if kind != d.kind || spec_kind != d.kind {
            return Err(incompatible(
                d,
                format!(
                    "pool {} here hands out {kind} devices, the source's device is {spec_kind}",
                    def.name
                ),
            ));
        }
        let (here, there) = match (&def.kind, &d.spec.mdev, &d.spec.vgpu) {
            (PoolKind::Mdev { mdev_type }, Some(m), _) => {
                (mdev_type.to_string(), m.type_id.clone())
            }
            (PoolKind::Vgpu { type_name }, _, Some(v)) => (type_name.clone(), v.type_name.clone()),
            _ => (String::new(), String::new()),
        };
        if here != there {
            return Err(incompatible(
                d,
                format!(
                    "type: pool {} here hands out {here}, the source's device is {there}; the \
                     device state of one type does not load into another",
                    def.name
                ),
            ));
        }
        let missing: Vec<String> = migrate::qemu_props_needed(&d.spec)
            .into_iter()
            .filter(|(k, v)| !d.qemu_props.iter().any(|(a, b)| a == k && b == v))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !missing.is_empty() {
            return Err(CoreError::from(MigrateError::QemuOptions {
                id: d.id.clone(),
                missing: missing.join(","),
            }));
        }
        Ok(def)
    }

    /// What would happen, made of checks that leave nothing behind (a type
    /// probe, a trial vDPA device) and the pool's free room.
    fn arrive_dry(&self, d: &IncomingDevice, def: &PoolDef) -> Result<Arrival, CoreError> {
        let show = self.pool_show(&def.name)?;
        if show.summary.free == 0 {
            return Err(CoreError::from(PoolError::Exhausted {
                pool: def.name.to_string(),
                allocated: show.summary.allocated,
                capacity: show.summary.capacity,
            }));
        }
        let policy = def.migration.driver_policy;
        let (report, id) = match (&d.spec.mdev, &d.spec.vgpu, &d.spec.vdpa) {
            (Some(m), ..) => {
                let src: Uuid = d.source.parse()?;
                let free = self.mdev.running_parent(&src)?.is_none()
                    && self.mdev.store.parents_with(&src)?.is_empty();
                let r = self.migrate_check(&MigrateCheckRequest {
                    spec: d.spec.clone(),
                    device: None,
                    mgmtdev: None,
                    driver_policy: policy,
                })?;
                let _ = m;
                (r, if free { src.to_string() } else { String::new() })
            }
            (_, Some(_), _) => (
                self.migrate_check(&MigrateCheckRequest {
                    spec: d.spec.clone(),
                    device: None,
                    mgmtdev: None,
                    driver_policy: policy,
                })?,
                String::new(),
            ),
            _ => {
                let member = self.members(def)?.into_iter().next().ok_or_else(|| {
                    CoreError::from(PoolError::NoMembers {
                        pool: def.name.to_string(),
                    })
                })?;
                (
                    self.migrate_check(&MigrateCheckRequest {
                        spec: d.spec.clone(),
                        device: None,
                        mgmtdev: Some(member.name.parse()?),
                        driver_policy: policy,
                    })?,
                    String::new(),
                )
            }
        };
        if report.verdict == Verdict::Incompatible {
            return Err(incompatible(d, refusals(&report.reasons)));
        }
        Ok(Arrival {
            pool: def.name.clone(),
            kind: d.kind,
            source_id: d.id.clone(),
            to: id.clone(),
            id,
            from: d.source.clone(),
            verdict: report.verdict,
            reasons: report.reasons,
            spec: None,
            created: false,
            expires: None,
        })
    }

    /// Reserves a device of `def` for the domain, judges it against the
    /// source's spec, and keeps it only if it will do.
    fn arrive(
        &self,
        consumer: &ConsumerId,
        d: &IncomingDevice,
        def: &PoolDef,
        made: &mut Vec<String>,
        bound: &mut Vec<String>,
    ) -> Result<Arrival, CoreError> {
        let policy = def.migration.driver_policy;
        let mut req = AllocateRequest {
            pool: def.name.clone(),
            consumer: consumer.clone(),
            uuid: None,
            ttl_secs: Some(ARRIVAL_HOLD_SECS),
        };
        let mut extra = AllocExtra {
            vdpa_config: None,
            fresh: true,
        };
        let on_demand_mdev =
            matches!(def.kind, PoolKind::Mdev { .. }) && def.mode == Mode::OnDemand;
        if on_demand_mdev {
            // The source's UUID where nothing here has it (or it is bound
            // to this pool), so the domain's XML stays as it is; else a new
            // one.
            let src: Uuid = d.source.parse()?;
            let key = src.to_string();
            let (record, binding) = self
                .pool_db_waiting(WAIT_HOOK)?
                .read(|tx| Ok((tx.device(&key)?, tx.binding(&key)?)))?;
            let free = self.mdev.running_parent(&src)?.is_none()
                && self.mdev.store.parents_with(&src)?.is_empty()
                && record.is_none()
                && binding.as_deref().is_none_or(|p| p == def.name.as_str());
            req.uuid = Some(if free { src } else { Uuid::new_v4() });
        }
        if let Some(v) = &d.spec.vdpa {
            extra.vdpa_config = Some(&v.definition.config);
        }
        let a = self.allocate_with(&req, WAIT_HOOK, &extra)?;
        made.push(a.id.clone());
        if on_demand_mdev {
            // Bound here too, so that the domain starts here again later.
            let (db, pool) = (self.pool_db_waiting(WAIT_HOOK)?, def.name.as_str());
            let newly = db.write(|tx| match tx.binding(&a.id)? {
                Some(_) => Ok(false),
                None => tx.bind(&a.id, pool).map(|()| true),
            })?;
            if newly {
                bound.push(a.id.clone());
            }
        }
        let (report, target) = self.judge_arrival(d, policy, &a.id, &a.member)?;
        if report.verdict == Verdict::Incompatible {
            return Err(incompatible(d, refusals(&report.reasons)));
        }
        let spec = self.migrate_export(&target).ok();
        Ok(Arrival {
            pool: def.name.clone(),
            kind: d.kind,
            source_id: d.id.clone(),
            to: self.kind(d.kind).xml_source(&a.id)?,
            id: a.id,
            from: d.source.clone(),
            verdict: report.verdict,
            reasons: report.reasons,
            spec,
            created: true,
            expires: a.expires,
        })
    }

    /// Judges device `id` (on `member`) here against the source's spec, as
    /// `migrate check` would with the pool's driver policy; answers the
    /// report and what `migrate export` names it by.
    fn judge_arrival(
        &self,
        d: &IncomingDevice,
        policy: migrate::DriverPolicy,
        id: &str,
        member: &str,
    ) -> Result<(hostdev_api::CheckReport, ExportTarget), CoreError> {
        let check = |device, mgmtdev| {
            self.migrate_check(&MigrateCheckRequest {
                spec: d.spec.clone(),
                device,
                mgmtdev,
                driver_policy: policy,
            })
        };
        Ok(match (&d.spec.mdev, &d.spec.vgpu, &d.spec.vdpa) {
            (Some(_), ..) => {
                let u: Uuid = id.parse()?;
                (
                    check(Some(ProbeTarget::Mdev(u)), None)?,
                    ExportTarget::Mdev(u),
                )
            }
            (_, Some(_), _) => {
                let vf: PciAddress = id.parse()?;
                (
                    check(Some(ProbeTarget::Pci(vf.clone())), None)?,
                    ExportTarget::Vgpu(vf),
                )
            }
            (_, _, Some(v)) => {
                let name = VdpaName::new(id)?;
                (self.judge_vdpa(v, &name, member)?, ExportTarget::Vdpa(name))
            }
            _ => return super::unreachable_spec(),
        })
    }

    /// A device of `def` the domain already holds here (allocated, not a
    /// reservation, not yet given to another of its devices in this
    /// arrival) that the source's spec accepts: served again as it is, made
    /// and reserved by nothing. `None` when it holds none that will do.
    fn arrive_again(
        &self,
        consumer: &ConsumerId,
        d: &IncomingDevice,
        def: &PoolDef,
        kept: &[String],
    ) -> Result<Option<Arrival>, CoreError> {
        if !PoolDb::path_under(&self.root).exists() {
            return Ok(None);
        }
        let held = self
            .pool_db_waiting(WAIT_HOOK)?
            .read(|tx| tx.held_by(Some(def.name.as_str()), consumer.as_str()))?;
        for r in held {
            if r.state != RecState::Allocated || r.expires.is_some() || kept.contains(&r.id) {
                continue;
            }
            // One that cannot be judged refuses the arrival rather than
            // have the domain hold a second device of the pool; one that
            // will not do is left as it is.
            let (report, target) =
                self.judge_arrival(d, def.migration.driver_policy, &r.id, &r.member)?;
            if report.verdict == Verdict::Incompatible {
                continue;
            }
            return Ok(Some(Arrival {
                pool: def.name.clone(),
                kind: d.kind,
                source_id: d.id.clone(),
                to: self.kind(d.kind).xml_source(&r.id)?,
                id: r.id,
                from: d.source.clone(),
                verdict: report.verdict,
                reasons: report.reasons,
                spec: self.migrate_export(&target).ok(),
                created: false,
                expires: None,
            }));
        }
        Ok(None)
    }

    /// A vDPA device made for an arrival, judged as `migrate check` judges a
    /// management device, with the device itself as the trial.
    fn judge_vdpa(
        &self,
        spec: &migrate::VdpaSpec,
        name: &VdpaName,
        member: &str,
    ) -> Result<hostdev_api::CheckReport, CoreError> {
        let m = self
            .vdpa
            .mgmtdevs()?
            .into_iter()
            .find(|m| m.name.to_string() == member);
        let dev = self.vdpa.client()?.dev(name)?;
        let dst = VdpaDestination {
            mgmtdev: member.to_string(),
            classes: m.as_ref().map(|m| m.classes.clone()).unwrap_or_default(),
            supported_features: m.and_then(|m| m.supported_features),
            trial: Ok(dev.and_then(|d| d.max_vq_size)),
        };
        let (verdict, reasons) = migrate::check_vdpa(spec, &dst);
        Ok(hostdev_api::CheckReport { verdict, reasons })
    }
}
