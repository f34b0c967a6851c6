//! Making pool state and the kernel agree: undoing what a killed process
//! left half-done, ending reservations, freeing what vanished devices and
//! dead consumers held, and filling pre-created pools to their count.
//!
//! Owns: those repairs, each reported as a [`ReconcileRow`]. Every function
//! here runs with the pools' lock held by its caller (so a `creating` or
//! `removing` row it sees belongs to no live process). Must not: take that
//! lock itself.

use super::kinds::Member;
use crate::Interfaces;
use crate::{CoreError, Devices};
use hostdev_api::{PoolProblem, ReconcileReport, ReconcileRow};
use hostdev_model::pool::{place, Liveness, Mode, PoolDef, Slot};
use hostdev_store::{DeviceRecord, Origin, PoolDb, RecState};
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

fn row(def: &PoolDef, id: &str, action: &str, why: impl Into<String>) -> ReconcileRow {
    ReconcileRow {
        pool: def.name.to_string(),
        id: id.to_string(),
        action: action.to_string(),
        why: why.into(),
    }
}

/// Why a consumer is gone, asked of libvirt through `virsh`: `None` while
/// it lives, and when libvirt cannot tell (not running, refused): the
/// consumer is kept.
pub(crate) fn consumer_gone(l: &Liveness, consumer: &str) -> Option<&'static str> {
    let out = Command::new("virsh")
        .args(["-q", "-c", &l.libvirt, "domstate", "--domain", consumer])
        .env("LC_ALL", "C")
        .output()
        .ok()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        let stopped = matches!(stdout.trim(), "shut off" | "crashed" | "");
        return (l.running && stopped).then_some("is not running");
    }
    // virsh 9.0: "error: failed to get domain 'X'" (checked in the kernel tier).
    let gone = stderr.contains("failed to get domain") || stderr.contains("Domain not found");
    gone.then_some("is not defined")
}

impl<K: Interfaces> Devices<K> {
    /// Undoes `creating`/`removing` rows of `def` and ends its expired
    /// reservations. Pools' lock held.
    pub(crate) fn settle(
        &self,
        def: &PoolDef,
        db: &PoolDb,
        out: &mut Vec<ReconcileRow>,
    ) -> Result<(), CoreError> {
        let now = (self.clock)();
        for r in db.read(|tx| tx.pool_devices(def.name.as_str()))? {
            let undo = |why: &str, out: &mut Vec<ReconcileRow>| -> Result<(), CoreError> {
                let res = match r.origin {
                    Origin::PreCreated => self.discard_precreated(def, &r.id, &r.member),
                    Origin::OnDemand => self.remove_made(def, &r.id, &r.member),
                };
                match res {
                    Ok(()) => {
                        db.write(|tx| tx.delete(&r.id))?;
                        out.push(row(def, &r.id, "undone", why));
                    }
                    Err(e) => out.push(row(
                        def,
                        &r.id,
                        "failed",
                        format!("{why}; undoing it failed: {}", crate::chain(&e)),
                    )),
                }
                Ok(())
            };
            match r.state {
                RecState::Creating => undo(
                    "its creation was interrupted (the process making it ended first)",
                    out,
                )?,
                RecState::Removing => undo(
                    "its removal was interrupted (the process removing it ended first)",
                    out,
                )?,
                RecState::Allocated if r.expires.is_some_and(|e| e <= now) => {
                    let who = r.consumer.clone().unwrap_or_default();
                    match r.origin {
                        Origin::PreCreated => {
                            db.write(|tx| tx.set(&r.id, RecState::Free, None, now, None))?;
                        }
                        Origin::OnDemand => {
                            db.write(|tx| {
                                tx.set(&r.id, RecState::Removing, r.consumer.as_deref(), now, None)
                            })?;
                            if let Err(e) = self.remove_made(def, &r.id, &r.member) {
                                out.push(row(def, &r.id, "failed", format!("the reservation of {who} ended; removing the device failed: {}", crate::chain(&e))));
                                continue;
                            }
                            db.write(|tx| tx.delete(&r.id))?;
                        }
                    }
                    out.push(row(
                        def,
                        &r.id,
                        "expired",
                        format!("the reservation of {who} ended"),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Brings a pre-created pool to its count: makes what is missing on the
    /// members placement picks, removes free extras. Pools' lock held.
    pub(crate) fn fill(
        &self,
        def: &PoolDef,
        db: &PoolDb,
        out: &mut Vec<ReconcileRow>,
    ) -> Result<(), CoreError> {
        if def.mode != Mode::PreCreated {
            return Ok(());
        }
        self.settle(def, db, out)?;
        let want = u64::from(def.count.unwrap_or(0));
        let rows = db.read(|tx| tx.pool_devices(def.name.as_str()))?;
        let have = rows.len() as u64;
        if have < want {
            let mut members: Vec<Member> = self.members(def)?;
            let mut held: BTreeMap<String, u64> = BTreeMap::new();
            for r in &rows {
                *held.entry(r.member.clone()).or_default() += 1;
            }
            let mut taken: BTreeSet<String> = rows.iter().map(|r| r.id.clone()).collect();
            for _ in have..want {
                let slots: Vec<Slot> = members
                    .iter()
                    .map(|m| Slot {
                        member: m.name.clone(),
                        free: m.free,
                        held: held.get(&m.name).copied().unwrap_or(0),
                    })
                    .collect();
                let Some(pick) = place(&slots, def.placement)
                    .first()
                    .map(|s| s.member.clone())
                else {
                    out.push(row(
                        def,
                        "",
                        "failed",
                        format!(
                            "the pool keeps {want} devices but no member has room for more (it has {})",
                            taken.len()
                        ),
                    ));
                    break;
                };
                let Some(m) = members.iter_mut().find(|m| m.name == pick) else {
                    break;
                };
                let Some(id) = self.next_id(def, m, &taken, None)? else {
                    m.free = 0;
                    continue;
                };
                let rec = DeviceRecord {
                    id: id.clone(),
                    pool: def.name.to_string(),
                    member: m.name.clone(),
                    origin: Origin::PreCreated,
                    state: RecState::Creating,
                    consumer: None,
                    since: (self.clock)(),
                    expires: None,
                    element: String::new(),
                };
                db.write(|tx| tx.insert(&rec))?;
                match self.precreate_on(def, m, &id) {
                    Ok(()) => {
                        let element = self.libvirt_element(def, &id, &m.name);
                        db.write(|tx| {
                            tx.set(&id, RecState::Free, None, rec.since, None)?;
                            tx.set_element(&id, &element)
                        })?;
                        out.push(row(
                            def,
                            &id,
                            "created",
                            format!("the pool keeps {want} ready"),
                        ));
                        m.free = m.free.saturating_sub(1);
                        *held.entry(m.name.clone()).or_default() += 1;
                        taken.insert(id);
                    }
                    Err(e) => {
                        db.write(|tx| tx.delete(&id))?;
                        out.push(row(def, &id, "failed", crate::chain(&e)));
                        break;
                    }
                }
            }
        } else if have > want {
            let mut extra: Vec<&DeviceRecord> =
                rows.iter().filter(|r| r.state == RecState::Free).collect();
            extra.reverse();
            for r in extra.into_iter().take((have - want) as usize) {
                let now = (self.clock)();
                let go = db.write(|tx| {
                    let free = tx.device(&r.id)?.is_some_and(|d| d.state == RecState::Free);
                    if free {
                        tx.set(&r.id, RecState::Removing, None, now, None)?;
                    }
                    Ok::<_, CoreError>(free)
                })?;
                if !go {
                    continue;
                }
                match self.discard_precreated(def, &r.id, &r.member) {
                    Ok(()) => {
                        db.write(|tx| tx.delete(&r.id))?;
                        out.push(row(def, &r.id, "removed", format!("the pool keeps {want}")));
                    }
                    Err(e) => out.push(row(def, &r.id, "failed", crate::chain(&e))),
                }
            }
        }
        Ok(())
    }

    /// Makes pool state and the kernel agree, for every pool.
    pub fn reconcile(&self) -> Result<ReconcileReport, CoreError> {
        let (defs, problems) = super::PoolDefs::under(&self.root).load_all()?;
        let mut report = ReconcileReport {
            rows: Vec::new(),
            problems: super::pool_problems(problems),
        };
        // A host without pools gets no database and no lock file.
        if defs.is_empty() && !hostdev_store::PoolDb::path_under(&self.root).exists() {
            return Ok(report);
        }
        let db = self.pool_db_waiting(super::WAIT_RECONCILE)?;
        let _pools = self.pool_lock()?;
        let out = &mut report.rows;
        for def in &defs {
            self.settle(def, &db, out)?;
            let rows = db.read(|tx| tx.pool_devices(def.name.as_str()))?;
            // Devices that vanished behind the pool's back.
            for r in &rows {
                match self.device_exists(def, &r.id, &r.member) {
                    Ok(true) => continue,
                    Ok(false) => {}
                    Err(e) => {
                        out.push(row(def, &r.id, "failed", crate::chain(&e)));
                        continue;
                    }
                }
                let who = r
                    .consumer
                    .as_deref()
                    .map(|c| format!(" (held by {c})"))
                    .unwrap_or_default();
                if r.origin == Origin::PreCreated && self.precreated_defined(def, &r.id)? {
                    match self.restart_precreated(def, &r.id) {
                        Ok(()) => out.push(row(
                            def,
                            &r.id,
                            "restarted",
                            format!("its device was not running{who}"),
                        )),
                        Err(e) => out.push(row(def, &r.id, "failed", crate::chain(&e))),
                    }
                    continue;
                }
                db.write(|tx| tx.delete(&r.id))?;
                out.push(row(def, &r.id, "freed", format!("its device is gone{who}")));
            }
            // Consumers that are gone.
            if let Some(l) = &def.liveness {
                let rows = db.read(|tx| tx.pool_devices(def.name.as_str()))?;
                let consumers: BTreeSet<String> = rows
                    .iter()
                    .filter(|r| r.state == RecState::Allocated)
                    .filter_map(|r| r.consumer.clone())
                    .collect();
                for c in consumers {
                    let Some(what) = consumer_gone(l, &c) else {
                        continue;
                    };
                    let held: Vec<DeviceRecord> = rows
                        .iter()
                        .filter(|r| {
                            r.state == RecState::Allocated && r.consumer.as_deref() == Some(&c)
                        })
                        .cloned()
                        .collect();
                    match self.release_records(&db, held, true) {
                        Ok(rel) => {
                            for d in rel.devices {
                                out.push(row(
                                    def,
                                    &d.id,
                                    "freed",
                                    format!("its consumer, libvirt domain {c}, {what}"),
                                ));
                            }
                        }
                        Err(e) => out.push(row(def, "", "failed", crate::chain(&e))),
                    }
                }
            }
            if let Err(e) = self.fill(def, &db, out) {
                out.push(row(def, "", "failed", crate::chain(&e)));
            }
        }
        // State of pools whose file is gone: reported, left alone.
        let known: BTreeSet<&str> = defs.iter().map(|d| d.name.as_str()).collect();
        let mut orphans: BTreeMap<String, usize> = BTreeMap::new();
        for r in db.read(|tx| tx.all_devices())? {
            if !known.contains(r.pool.as_str()) {
                *orphans.entry(r.pool).or_default() += 1;
            }
        }
        for (pool, n) in orphans {
            report.problems.push(PoolProblem {
                path: super::PoolDefs::under(&self.root).dir().join(format!("{pool}.toml")),
                reason: format!("pool {pool} has no definition but {n} device(s) recorded; they are left as they are"),
            });
        }
        Ok(report)
    }
}
