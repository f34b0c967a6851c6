//! The libvirt indirection: a domain names pool-bound mdev UUIDs; at its
//! prepare each gets a device of its pool made with that UUID, at its release
//! they are given back.
//!
//! Owns: which of a domain's UUIDs belong to pools, binding on use, making
//! what a migration reserved for the domain its allocation, probing each
//! mdev it gets before QEMU holds it (the answer kept for the domain's
//! metadata), and leaving nothing behind when one of several allocations
//! fails. Must not: parse domain XML (the CLI's hook front-end does) or
//! call libvirt (a hook that calls back into libvirtd deadlocks it).

use crate::Interfaces;
use crate::PoolError;
use crate::{CoreError, Devices};
use hostdev_api::{
    AllocateRequest, Allocation, ConsumerId, DomainPrepareRequest, DomainReleaseRequest, Released,
};
use hostdev_model::pool::PoolName;
use hostdev_model::vdpa::VdpaName;
use hostdev_model::Uuid;
use hostdev_store::{PoolDefs, RecState};

impl<K: Interfaces> Devices<K> {
    /// Allocates every pool device the domain names; on any failure gives
    /// back what this call allocated and removes the bindings it made.
    pub fn domain_prepare(&self, req: &DomainPrepareRequest) -> Result<Vec<Allocation>, CoreError> {
        let consumer = ConsumerId::new(req.domain.to_string()).map_err(|_| {
            CoreError::from(PoolError::Misuse {
                pool: String::new(),
                why: "the domain's UUID is not a consumer id".into(),
            })
        })?;
        // A domain naming no mdev on a host without pools: nothing to keep,
        // and no state files for it.
        if req.mdevs.is_empty() && !hostdev_store::PoolDb::path_under(&self.root).exists() {
            return Ok(Vec::new());
        }
        let db = self.pool_db_waiting(super::WAIT_HOOK)?;
        self.keep_arrivals(&db, &consumer, req)?;
        let mut on_use: Option<Vec<PoolName>> = None;
        let mut made: Vec<Allocation> = Vec::new();
        let mut bound: Vec<String> = Vec::new();
        let result = (|| {
            for u in &req.mdevs {
                let pool = match db.read(|tx| tx.binding(&u.to_string()))? {
                    Some(p) => PoolName::new(p).map_err(|e| {
                        CoreError::from(PoolError::Misuse {
                            pool: String::new(),
                            why: e.to_string(),
                        })
                    })?,
                    None => {
                        // Not ours: a device defined or running by other means.
                        if self.mdev.running_parent(u)?.is_some()
                            || !self.mdev.store.parents_with(u)?.is_empty()
                        {
                            continue;
                        }
                        let pools = match &on_use {
                            Some(p) => p.clone(),
                            None => {
                                let (defs, _) = PoolDefs::under(&self.root).load_all()?;
                                let p: Vec<PoolName> = defs
                                    .into_iter()
                                    .filter(|d| d.bind_on_use)
                                    .map(|d| d.name)
                                    .collect();
                                on_use = Some(p.clone());
                                p
                            }
                        };
                        match pools.as_slice() {
                            [] => continue,
                            [p] => {
                                db.write(|tx| tx.bind(&u.to_string(), p.as_str()))?;
                                bound.push(u.to_string());
                                p.clone()
                            }
                            many => {
                                return Err(CoreError::from(PoolError::Ambiguous {
                                    uuid: *u,
                                    pools: many
                                        .iter()
                                        .map(|p| p.as_str())
                                        .collect::<Vec<_>>()
                                        .join(", "),
                                }))
                            }
                        }
                    }
                };
                made.push(self.allocate_waiting(
                    &AllocateRequest {
                        pool,
                        consumer: consumer.clone(),
                        uuid: Some(*u),
                        ttl_secs: None,
                    },
                    super::WAIT_HOOK,
                )?);
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                self.keep_probes(&made);
                Ok(made)
            }
            Err(e) => {
                let fresh: Vec<_> = made
                    .iter()
                    .filter(|a| !a.again)
                    .map(|a| a.id.clone())
                    .collect();
                self.undo_made(&db, &fresh, bound)?;
                Err(e)
            }
        }
    }

    /// Probes each mdev the domain got while nothing holds it yet, so that
    /// the answer is cached for when QEMU does: hostdev's metadata for the
    /// running domain (`domain_held`, each device's migration spec) is told
    /// after QEMU opened the device, when a probe is refused as busy. Best
    /// effort: a device that cannot be probed starts all the same, and
    /// `libvirt-hook annotate` says why it has no spec.
    fn keep_probes(&self, made: &[Allocation]) {
        for a in made {
            let Ok(u) = a.id.parse::<Uuid>() else {
                continue;
            };
            if let Ok(Some((parent, t))) = self.mdev.running_parent(&u) {
                let _ = self.probe_running(&u, &parent, &t);
            }
        }
    }

    /// What a migration reserved here for the domain (`migrate begin`) and
    /// the domain names becomes its allocation: the domain starts here.
    fn keep_arrivals(
        &self,
        db: &hostdev_store::PoolDb,
        consumer: &ConsumerId,
        req: &DomainPrepareRequest,
    ) -> Result<(), CoreError> {
        let now = (self.clock)();
        let reserved: Vec<_> = db
            .read(|tx| tx.held_by(None, consumer.as_str()))?
            .into_iter()
            .filter(|r| r.held_at(now) && r.expires.is_some())
            .collect();
        for r in reserved {
            let named = req.mdevs.iter().any(|u| u.to_string() == r.id)
                || req.pci.iter().any(|a| a.as_str() == r.id)
                || (!req.vdpa.is_empty()
                    && VdpaName::new(r.id.as_str())
                        .ok()
                        .and_then(|n| self.vdpa.show(&n).ok())
                        .and_then(|s| s.vhost_dev)
                        .is_some_and(|dev| req.vdpa.contains(&dev)));
            if named {
                db.write(|tx| {
                    tx.set(
                        &r.id,
                        RecState::Allocated,
                        Some(consumer.as_str()),
                        now,
                        None,
                    )
                })?;
            }
        }
        Ok(())
    }

    /// Gives back everything the domain holds through pools.
    pub fn domain_release(&self, req: &DomainReleaseRequest) -> Result<Released, CoreError> {
        if !hostdev_store::PoolDb::path_under(&self.root).exists() {
            return Ok(Released::default());
        }
        let db = self.pool_db_waiting(super::WAIT_HOOK)?;
        let held: Vec<_> = db
            .read(|tx| tx.held_by(None, &req.domain.to_string()))?
            .into_iter()
            .filter(|r| r.state == RecState::Allocated)
            .collect();
        if held.is_empty() {
            return Ok(Released::default());
        }
        self.release_records(&db, held, false)
    }
}
