//! What this node offers Kubernetes, decided from the kernel's own answers.
//!
//! mdev parents: one counter set per parent with one counter, `units`; a
//! type whose parent can hold `max` of it costs `L / max` units, `L` the
//! least common multiple of the types' maxima, so the scheduler does the
//! arithmetic of a shared budget (GVT-g-like) and of one-type parents
//! alike. A type's `max` is what the kernel shows (`available_instances`
//! plus the running devices of that type), NVIDIA's `max_instance=` in the
//! type's description, or what was seen before (`capacity.json`): a type
//! the kernel hides while another runs keeps the capacity it had; a parent
//! seen with nothing running shows its whole capacity, which replaces what
//! was learned (it shrinks as well as grows); a count that differs from
//! what was learned is believed only when `available_instances` reads the
//! same again (a device made or removed between the two reads is not
//! capacity). One type
//! at a time (NVIDIA's mdev rule, or seen: a running type closing every
//! other) is said with `compatibilityGroups`: each device's consumption
//! carries its type's group, so the scheduler never puts two types on one
//! parent. Capacity used by devices no claim made (the host file, pools,
//! by hand; running, or defined to start at boot) is taken off `units`.
//! A one-type parent has a second set, its types set, with a counter per
//! type each of its devices also draws 1 from: a type someone else's device
//! closes is 0 there. Devices: one per (parent, type, slot), at most
//! [`super::MAX_SLOTS_PER_TYPE`] slots per type, whoever holds the parent,
//! so what others do changes counters only — one counter slice's update
//! for the driver, not a rewrite of the pool.
//!
//! NVIDIA SR-IOV PFs: one counter set per 32 VFs with a counter per VF
//! (`vf-N`: 1, or 0 for a VF someone else defined or typed) and a types
//! set per card (a type other than the one someone else's VF runs is 0);
//! one device per (VF, vGPU type by name), drawing on both, grouped by type
//! (without heterogeneous mode a card runs one size). A prepare is given
//! none of what a 0 closes.
//!
//! vDPA: the operator's templates, see [`super::vdpa`].
//!
//! Owns: the model. Must not: write anything but the learned capacities.

use super::names::{attr_string, label, may_lead};
use super::record::{self, Made, Record, Stage};
use crate::Interfaces;
use crate::{CoreError, Devices};
use hostdev_api::{DraConsumption, DraCounterSet, DraDevice, DraResources, DraValue, Kind};
use hostdev_model::format::TypeInfo;
use hostdev_model::pci::PciAddress;
use hostdev_model::pool::MemberFacts;
use hostdev_model::probe::DriverIdentity;
use hostdev_model::{ParentName, StartPolicy, TypeId, Uuid};
use hostdev_sysfs::sriov::PciSriov;
use hostdev_sysfs::sriov::SriovSysfs;
use hostdev_sysfs::MdevSysfs;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What a published device name means: how prepare makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// An mdev of `mdev_type` on `parent`.
    Mdev {
        parent: ParentName,
        mdev_type: TypeId,
    },
    /// `vf` set to the type named `type_name` (id `type_id` on its card).
    Vgpu {
        vf: PciAddress,
        type_id: u32,
        type_name: String,
    },
    /// A vDPA net device of `template`'s management device, slot `slot`.
    Vdpa {
        template: super::vdpa::Template,
        slot: u64,
    },
}

/// The model: what is published and what each device name means.
#[derive(Debug, Default)]
pub(crate) struct Offer {
    pub resources: DraResources,
    pub plans: BTreeMap<String, Plan>,
}

/// The largest counter value published: a parent whose types' maxima have
/// a larger least common multiple gets one counter per type instead.
const MAX_UNITS: u64 = 1 << 40;
/// The largest learned-capacity file read.
const CAPACITY_LIMIT: u64 = 4 << 20;
/// At most this many counters in one counter set (Kubernetes' limit).
const COUNTERS_PER_SET: usize = 32;

/// Capacities seen before: a type hidden while another runs keeps its max.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Learned {
    /// mdev parents: type → the most instances seen.
    #[serde(default)]
    parents: BTreeMap<String, LearnedParent>,
    /// NVIDIA PFs: vGPU type id → name, as the VFs listed them.
    #[serde(default)]
    pfs: BTreeMap<String, BTreeMap<u32, String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LearnedParent {
    #[serde(default)]
    one_type: bool,
    #[serde(default)]
    types: BTreeMap<String, u64>,
}

fn capacity_path(root: &Path) -> PathBuf {
    super::state_dir(root).join("capacity.json")
}

/// The most a type's capacity can be: the kernel's `available_instances`
/// is an `int`, and what runs is counted beside it.
const MAX_LEARNED: u64 = (i32::MAX as u64) * 2;

/// What was learned; a count no kernel could have given (a damaged or
/// hand-edited file) is forgotten, so the type is learned again from what
/// the kernel shows rather than published with that count.
fn load_learned(root: &Path) -> Learned {
    let mut l: Learned = hostdev_fs::read_regular_within(
        &capacity_path(root),
        hostdev_fs::Limits::own_file(CAPACITY_LIMIT),
    )
    .ok()
    .flatten()
    .and_then(|b| serde_json::from_slice(&b).ok())
    .unwrap_or_default();
    for p in l.parents.values_mut() {
        p.types.retain(|_, max| *max <= MAX_LEARNED);
    }
    l
}

/// Saves what was learned when the host lock is free (a cache: losing one
/// write costs nothing but a type hidden until it is seen again).
fn save_learned(root: &Path, l: &Learned) {
    if let (Some(lock), Ok(data)) = (
        crate::Locker::under(root).try_lock(),
        serde_json::to_vec_pretty(l),
    ) {
        let _ = hostdev_store::write_atomic(&lock, &capacity_path(root), &data);
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn lcm(a: u64, b: u64) -> Option<u64> {
    (a / gcd(a, b)).checked_mul(b)
}

/// NVIDIA's `max_instance=N` in a type's description.
fn described_max(desc: Option<&str>) -> u64 {
    desc.and_then(|d| {
        d.split([',', '\n'])
            .filter_map(|kv| kv.trim().strip_prefix("max_instance="))
            .find_map(|n| n.trim().parse::<u64>().ok())
    })
    .unwrap_or(0)
}

fn s(v: impl Into<String>) -> DraValue {
    DraValue::String(attr_string(&v.into()))
}

/// The group of a type on a one-type parent or card.
fn group(t: &str) -> String {
    label(&[t], "")
}

/// The mdev UUIDs and VFs claims made, from their records.
fn made_by_claims(records: &[Record]) -> (BTreeSet<Uuid>, BTreeSet<PciAddress>) {
    let mut uuids = BTreeSet::new();
    let mut vfs = BTreeSet::new();
    // A record left `unpreparing` (its device held through VFIO, or a
    // removal that failed) is no claim's any more for the scheduler once the
    // claim is gone: its devices count as someone else's until they go.
    for r in records.iter().filter(|r| r.stage != Stage::Unpreparing) {
        for e in &r.devices {
            match &e.made {
                Made::Mdev { uuid, .. } => {
                    uuids.insert(*uuid);
                }
                Made::Vgpu { vf, .. } => {
                    vfs.insert(vf.clone());
                }
                Made::Vdpa { .. } => {}
            }
        }
    }
    (uuids, vfs)
}

/// `claims` (the mdev UUIDs or the VFs of [`made_by_claims`]) with those
/// of the records on disk now, for the whole offer (which holds no lock)
/// once it has read the host; a prepare's scope is worked out under the
/// DRA lock and has every record already.
fn late<T: Ord + Clone>(
    root: &std::path::Path,
    scope: Scope<'_>,
    claims: &BTreeSet<T>,
    pick: impl Fn((BTreeSet<Uuid>, BTreeSet<PciAddress>)) -> BTreeSet<T>,
) -> BTreeSet<T> {
    let mut all = claims.clone();
    if scope.full() {
        all.extend(pick(made_by_claims(&record::load_all(root).0)));
    }
    all
}

/// How much of the offer to work out.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope<'a> {
    /// Everything, each device with its attributes (what is published).
    All,
    /// The plans of these device names only: the parents and PFs whose
    /// names could lead them, no attributes (what a prepare resolves).
    Names(&'a [&'a str]),
}

impl Scope<'_> {
    /// Whether a parent, PF or VF named `first` is worked out.
    pub(crate) fn wants(&self, first: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Names(names) => names.iter().any(|n| may_lead(n, first)),
        }
    }

    /// Whether devices and their attributes are built (not only plans).
    pub(crate) fn full(&self) -> bool {
        matches!(self, Scope::All)
    }

    /// Whether every name of a prepare's scope has a plan in `plans`
    /// (never for the whole offer).
    pub(crate) fn resolved<V>(&self, plans: &BTreeMap<String, V>) -> bool {
        match self {
            Scope::All => false,
            Scope::Names(names) => names.iter().all(|n| plans.contains_key(*n)),
        }
    }
}

impl<K: Interfaces> Devices<K> {
    /// What this node offers Kubernetes now.
    pub fn dra_resources(&self) -> Result<DraResources, CoreError> {
        self.dra_resources_racing(|| {})
    }

    /// [`Self::dra_resources`], with `during` run after the claims' records
    /// are first read and before the host is looked at: where a prepare
    /// running beside it would write its record and make its device (tests).
    ///
    /// The offer takes no lock (a prepare must not wait for it), so claims
    /// are prepared while the host is looked at, a burst of them on a large
    /// host (each 30-50 ms, the look 300-500 ms): a claim's device must not
    /// count as capacity someone else holds. A record is written before its
    /// device is made, so once the host has been read every claim device it
    /// shows has its record: the records are read again then ([`late`]),
    /// and the claims are those of either read (a claim unprepared
    /// meanwhile may still be seen). Before, a changed set of records made
    /// the whole offer be worked out again, three times at most, and a
    /// burst outran that: the slices of a GPU whose claims were being
    /// prepared flipped to "held by someone else" and back, two full
    /// rewrites of the pool (seen in `TestDRAScale`).
    #[doc(hidden)]
    pub fn dra_resources_racing(&self, during: impl FnOnce()) -> Result<DraResources, CoreError> {
        let (records, notes) = record::load_all(&self.root);
        during();
        Ok(self.dra_offer(Scope::All, &records, notes)?.resources)
    }

    /// What this node offers now (`scope`: all of it, or only what some
    /// device names need), given the claims' `records`, and what each
    /// device name means.
    pub(crate) fn dra_offer(
        &self,
        scope: Scope<'_>,
        records: &[Record],
        notes: Vec<String>,
    ) -> Result<Offer, CoreError> {
        let (claim_uuids, claim_vfs) = made_by_claims(records);
        let mut learned = load_learned(&self.root);
        let before = learned.clone();
        let mut offer = Offer::default();
        offer.resources.notes = notes;
        // A prepare's scope stops once every name it asks about has its
        // plan: an mdev's prepare does not walk every PCI function for
        // vGPU PFs nor ask the vDPA family (half its cost on a large host).
        self.offer_mdevs(scope, &claim_uuids, &mut learned, &mut offer)?;
        if !scope.resolved(&offer.plans) {
            self.offer_vfs(scope, &claim_vfs, &mut learned, &mut offer)?;
        }
        if !scope.resolved(&offer.plans) {
            self.offer_vdpa(scope, &mut offer)?;
        }
        if learned != before {
            save_learned(&self.root, &learned);
        }
        offer
            .resources
            .counter_sets
            .sort_by(|a, b| a.name.cmp(&b.name));
        offer.resources.devices.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(offer)
    }

    fn offer_mdevs(
        &self,
        scope: Scope<'_>,
        claim_uuids: &BTreeSet<Uuid>,
        learned: &mut Learned,
        offer: &mut Offer,
    ) -> Result<(), CoreError> {
        let sysfs = &self.mdev.sysfs;
        // Types through the type cache: on a warm host only each type's
        // `available_instances` is read.
        // The parents with their types, and whether the types are those the
        // whole offer learned rather than read now.
        let parents: Vec<(ParentName, Vec<TypeInfo>, bool)> = match scope {
            Scope::All => self
                .mdev
                .types(None)?
                .into_iter()
                .map(|(p, t)| (p, t, false))
                .collect(),
            Scope::Names(_) => {
                let mut out = Vec::new();
                for p in sysfs.parents().map_err(CoreError::inventory)? {
                    if !scope.wants(p.as_str()) {
                        continue;
                    }
                    // A prepare resolves names the driver published from
                    // the capacity the whole offer learned: no type's files
                    // are read (a read per type, 32 on a GPU, under the DRA
                    // lock every other prepare waits for), and nothing is
                    // learned. Read as the offer does only where nothing
                    // was learned yet.
                    match learned
                        .parents
                        .get(p.as_str())
                        .filter(|l| !l.types.is_empty())
                    {
                        Some(l) => {
                            let types = l
                                .types
                                .keys()
                                .filter_map(|t| TypeId::new(t.as_str()).ok())
                                .map(|type_id| TypeInfo {
                                    type_id,
                                    available_instances: 0,
                                    device_api: String::new(),
                                    name: None,
                                    description: None,
                                })
                                .collect();
                            out.push((p, types, true));
                        }
                        None => out.extend(
                            self.mdev
                                .types(Some(p.as_str()))?
                                .into_iter()
                                .map(|(p, t)| (p, t, false)),
                        ),
                    }
                }
                out
            }
        };
        if parents.is_empty() {
            return Ok(());
        }
        let running = sysfs.devices().map_err(CoreError::inventory)?;
        let claim_uuids = &late(&self.root, scope, claim_uuids, |(u, _)| u);
        // Definitions that start at boot hold capacity too, running or not.
        // (Read from the store: whether they run is not asked here.)
        let defined = match scope {
            Scope::All => self.mdev.store.load_all().map(|l| l.0).unwrap_or_default(),
            Scope::Names(_) => parents
                .iter()
                .flat_map(|(p, _, _)| {
                    self.mdev
                        .store
                        .load_parent(p)
                        .map(|l| l.0)
                        .unwrap_or_default()
                })
                .collect(),
        };
        // What each parent says of itself (ids, NUMA node, driver and its
        // version: a dozen reads each), read for all of them at once for
        // the whole offer; a prepare reads its parent's only if it needs
        // them.
        let mut told: BTreeMap<ParentName, (MemberFacts, DriverIdentity)> = if scope.full() {
            let read = crate::par::map(&parents, |(p, _, _)| {
                (
                    sysfs.parent_facts(p),
                    hostdev_sysfs::driver_identity(
                        &self.root,
                        &self.root.join("sys/class/mdev_bus").join(p.as_str()),
                    ),
                )
            });
            parents
                .iter()
                .map(|(p, _, _)| p.clone())
                .zip(read)
                .collect()
        } else {
            BTreeMap::new()
        };
        for (p, types, known) in parents {
            if types.is_empty() {
                continue;
            }
            let (facts, driver) = told.remove(&p).unwrap_or_default();
            let here: Vec<_> = running.iter().filter(|d| d.parent == p).collect();
            // Devices no claim made, by type: running, or defined to start.
            let mut foreign: BTreeMap<TypeId, u64> = BTreeMap::new();
            let mut counted = BTreeSet::new();
            for d in here.iter().filter(|d| !claim_uuids.contains(&d.uuid)) {
                counted.insert(d.uuid);
                *foreign.entry(d.mdev_type.clone()).or_default() += 1;
            }
            for e in defined.iter().filter(|e| {
                e.parent == p
                    && e.config.start == StartPolicy::Auto
                    && !counted.contains(&e.uuid)
                    && !claim_uuids.contains(&e.uuid)
            }) {
                *foreign.entry(e.config.mdev_type.clone()).or_default() += 1;
            }
            let lp = learned.parents.entry(p.to_string()).or_default();
            // (A prepare on a parent known to be one-type needs none of it.)
            let facts = if scope.full() || (known && lp.one_type) {
                facts
            } else {
                sysfs.parent_facts(&p)
            };
            let running_types: BTreeSet<&TypeId> = here.iter().map(|d| &d.mdev_type).collect();
            // Seen: a type runs and every other type the parent had shows 0.
            if !known
                && !running_types.is_empty()
                && types
                    .iter()
                    .filter(|t| !running_types.contains(&t.type_id))
                    .all(|t| t.available_instances <= 0)
                && types.len() > running_types.len()
            {
                lp.one_type = true;
            }
            let one_type = lp.one_type || facts.driver.as_deref() == Some("nvidia");
            // Nothing runs on the host (parents may share capacity: VFs of
            // one card): what the kernel shows free is each parent's whole
            // capacity, so what was learned before (another card, an older
            // driver) is replaced, not kept when larger, and types the
            // parent no longer has are forgotten. A type whose count is
            // lower than learned is read again first: a device removed
            // between reading the types and the running devices would
            // otherwise pass for less capacity.
            let idle = running.is_empty();
            if idle && !known {
                lp.types
                    .retain(|k, _| types.iter().any(|t| t.type_id.as_str() == k));
            }
            let mut maxima: Vec<(&TypeInfo, u64)> = Vec::new();
            for t in &types {
                let learned = lp.types.get(t.type_id.as_str()).copied().unwrap_or(0);
                if known {
                    maxima.push((t, learned));
                    continue;
                }
                let run = here.iter().filter(|d| d.mdev_type == t.type_id).count() as u64;
                let avail = u64::try_from(t.available_instances).unwrap_or(0);
                let seen = avail
                    .saturating_add(run)
                    .max(described_max(t.description.as_deref()));
                // The types were read before the running devices: a device
                // made in between (a prepare) is counted in both and passes
                // for one more than the parent holds, and one removed in
                // between for one less. A count that differs from what was
                // learned is believed only when `available_instances` reads
                // the same again (nothing was made or removed meanwhile).
                let steady = || {
                    sysfs
                        .available_instances(&p, &t.type_id)
                        .ok()
                        .flatten()
                        .is_some_and(|again| again == t.available_instances)
                };
                let believed = if seen > learned {
                    learned == 0 || steady()
                } else {
                    seen < learned && idle && steady()
                };
                let max = if believed { seen } else { learned };
                if max == 0 {
                    lp.types.remove(t.type_id.as_str());
                } else if max != learned {
                    lp.types.insert(t.type_id.to_string(), max);
                }
                if max > 0 {
                    maxima.push((t, max));
                } else {
                    offer.resources.notes.push(format!(
                        "type {} of {p} is not offered: its capacity is unknown until it is seen free",
                        t.type_id
                    ));
                }
            }
            // A one-type parent holding someone else's device can make that
            // type only. The other types stay published, their counter at 0
            // (in the parent's types set, or their own `type-N` counter), so
            // a device never comes and goes with who holds the parent and
            // such a change is one counter slice's update; a prepare is not
            // given them. With more types than a set holds counters, they
            // are left out instead, as before.
            let blocked: BTreeSet<TypeId> = if one_type && !foreign.is_empty() {
                maxima
                    .iter()
                    .filter(|(t, _)| !foreign.contains_key(&t.type_id))
                    .map(|(t, _)| t.type_id.clone())
                    .collect()
            } else {
                BTreeSet::new()
            };
            if maxima.is_empty() {
                continue;
            }
            let units = maxima
                .iter()
                .try_fold(1u64, |l, (_, m)| lcm(l, *m).filter(|v| *v <= MAX_UNITS));
            let types_set = (one_type && units.is_some() && maxima.len() <= COUNTERS_PER_SET)
                .then(|| label(&[p.as_str(), "types"], ""));
            if types_set.is_none() && units.is_some() {
                maxima.retain(|(t, _)| !blocked.contains(&t.type_id));
                if maxima.is_empty() {
                    continue;
                }
            }
            let set = label(&[p.as_str()], "");
            let mut counters = BTreeMap::new();
            match units {
                Some(l) => {
                    let used: u64 = maxima
                        .iter()
                        .map(|(t, m)| foreign.get(&t.type_id).copied().unwrap_or(0) * (l / m))
                        .sum();
                    counters.insert("units".to_string(), l.saturating_sub(used));
                }
                None => {
                    // Maxima too far apart for one budget: each type its own.
                    for (i, (t, m)) in maxima.iter().enumerate() {
                        let used = foreign.get(&t.type_id).copied().unwrap_or(0);
                        let left = if blocked.contains(&t.type_id) {
                            0
                        } else {
                            m.saturating_sub(used)
                        };
                        counters.insert(format!("type-{i}"), left);
                    }
                }
            }
            if !scope.full() {
                // A prepare: what each name means, nothing to publish.
                for (t, m) in maxima.iter().filter(|(t, _)| !blocked.contains(&t.type_id)) {
                    for slot in 0..(*m).min(super::MAX_SLOTS_PER_TYPE) {
                        offer.plans.insert(
                            label(&[p.as_str(), t.type_id.as_str()], &slot.to_string()),
                            Plan::Mdev {
                                parent: p.clone(),
                                mdev_type: t.type_id.clone(),
                            },
                        );
                    }
                }
                continue;
            }
            offer.resources.counter_sets.push(DraCounterSet {
                name: set.clone(),
                counters,
            });
            if let Some(ts) = &types_set {
                offer.resources.counter_sets.push(DraCounterSet {
                    name: ts.clone(),
                    counters: maxima
                        .iter()
                        .map(|(t, m)| {
                            let n = if blocked.contains(&t.type_id) {
                                0
                            } else {
                                (*m).min(super::MAX_SLOTS_PER_TYPE)
                            };
                            (group(t.type_id.as_str()), n)
                        })
                        .collect(),
                });
            }
            for (i, (t, m)) in maxima.iter().enumerate() {
                let (counter, cost) = match units {
                    Some(l) => ("units".to_string(), l / m),
                    None => (format!("type-{i}"), 1),
                };
                let mut attrs = BTreeMap::new();
                attrs.insert("kind".into(), s("mdev"));
                attrs.insert("parent".into(), s(p.as_str()));
                attrs.insert("type".into(), s(t.type_id.as_str()));
                if let Some(n) = &t.name {
                    attrs.insert("typeName".into(), s(n.as_str()));
                }
                attrs.insert("deviceAPI".into(), s(t.device_api.as_str()));
                if let Some(v) = &facts.vendor {
                    attrs.insert("vendor".into(), s(v.as_str()));
                }
                if let Some(d) = &facts.device {
                    attrs.insert("deviceID".into(), s(d.as_str()));
                }
                if let Some(n) = facts.numa_node {
                    attrs.insert("numaNode".into(), DraValue::Int(i64::from(n)));
                }
                if let Some(d) = &facts.driver {
                    attrs.insert("driver".into(), s(d.as_str()));
                }
                if let Some(v) = &driver.version {
                    attrs.insert("driverVersion".into(), s(v.as_str()));
                }
                attrs.insert("oneTypeAtATime".into(), DraValue::Bool(one_type));
                let slots = (*m).min(super::MAX_SLOTS_PER_TYPE);
                for slot in 0..slots {
                    let name = label(&[p.as_str(), t.type_id.as_str()], &slot.to_string());
                    let mut a = attrs.clone();
                    a.insert("slot".into(), DraValue::Int(slot as i64));
                    let groups = if one_type {
                        vec![group(t.type_id.as_str())]
                    } else {
                        Vec::new()
                    };
                    let mut consumes = vec![DraConsumption {
                        counter_set: set.clone(),
                        counters: BTreeMap::from([(counter.clone(), cost)]),
                        groups: groups.clone(),
                    }];
                    if let Some(ts) = &types_set {
                        consumes.push(DraConsumption {
                            counter_set: ts.clone(),
                            counters: BTreeMap::from([(group(t.type_id.as_str()), 1)]),
                            groups,
                        });
                    }
                    offer.resources.devices.push(DraDevice {
                        name: name.clone(),
                        kind: Kind::Mdev,
                        attributes: a,
                        consumes,
                    });
                    if !blocked.contains(&t.type_id) {
                        offer.plans.insert(
                            name,
                            Plan::Mdev {
                                parent: p.clone(),
                                mdev_type: t.type_id.clone(),
                            },
                        );
                    }
                }
            }
        }
        Ok(())
    }

    fn offer_vfs(
        &self,
        scope: Scope<'_>,
        claim_vfs: &BTreeSet<PciAddress>,
        learned: &mut Learned,
        offer: &mut Offer,
    ) -> Result<(), CoreError> {
        let sriov = &self.vgpu.sriov;
        for pf in self.vgpu.vgpu_pfs()? {
            let vfs = sriov.vfs(&pf.address)?;
            let claim_vfs = &late(&self.root, scope, claim_vfs, |(_, v)| v);
            if !vfs.iter().any(|v| scope.wants(v.address.as_str())) && !scope.full() {
                continue;
            }
            if vfs.is_empty() {
                offer.resources.notes.push(format!(
                    "PF {} has no VFs enabled: enable them (hostdevctl vgpu enable) to offer its vGPUs",
                    pf.address
                ));
                continue;
            }
            let known = learned.pfs.entry(pf.address.to_string()).or_default();
            for v in &vfs {
                for t in &v.creatable {
                    known.insert(t.id, t.name.clone());
                }
            }
            // VFs someone else holds: typed by hand, a pool or the host
            // file, or defined; their type is the only one the card may run.
            // They stay published with their VF counter at 0, and the other
            // types with their counter in the card's types set at 0, so a
            // device never comes and goes with who holds a VF (a change is
            // one counter slice's update); a prepare is given neither. A
            // card with more types than a set holds counters leaves them out
            // instead, as before.
            let mut only: BTreeSet<u32> = BTreeSet::new();
            let mut free = Vec::new();
            let mut held: BTreeSet<&PciAddress> = BTreeSet::new();
            let mut offered = Vec::new();
            for v in &vfs {
                let ours = claim_vfs.contains(&v.address);
                let foreign =
                    !ours && (v.current != 0 || self.vgpu.defs.exists(v.address.as_str()));
                if foreign {
                    if v.current != 0 {
                        only.insert(v.current);
                    }
                    if v.ready {
                        held.insert(&v.address);
                        offered.push(v);
                    }
                } else if v.ready {
                    free.push(v);
                    offered.push(v);
                }
            }
            let allowed = |id: &u32| only.is_empty() || only.contains(id);
            let types_set = (known.len() <= COUNTERS_PER_SET)
                .then(|| label(&[pf.address.as_str(), "types"], ""));
            let types: Vec<(u32, String)> = known
                .iter()
                .filter(|(id, _)| types_set.is_some() || allowed(id))
                .map(|(id, n)| (*id, n.clone()))
                .collect();
            if types_set.is_none() {
                offered.retain(|v| !held.contains(&v.address));
            }
            if types.is_empty() || offered.is_empty() {
                continue;
            }
            if !scope.full() {
                for v in free {
                    for (id, tname) in types.iter().filter(|(id, _)| allowed(id)) {
                        offer.plans.insert(
                            label(&[v.address.as_str(), tname], ""),
                            Plan::Vgpu {
                                vf: v.address.clone(),
                                type_id: *id,
                                type_name: tname.clone(),
                            },
                        );
                    }
                }
                continue;
            }
            let facts = sriov.pf_facts(&pf.address);
            let driver = sriov.pf_driver(&pf.address);
            // VF N counts in set N / 32, so a set keeps its VFs whoever holds the others.
            let mut chunks: BTreeMap<u32, Vec<&hostdev_sysfs::sriov::VfInfo>> = BTreeMap::new();
            for v in offered {
                chunks
                    .entry(v.index / COUNTERS_PER_SET as u32)
                    .or_default()
                    .push(v);
            }
            if let Some(ts) = &types_set {
                let n = vfs.len() as u64;
                offer.resources.counter_sets.push(DraCounterSet {
                    name: ts.clone(),
                    counters: types
                        .iter()
                        .map(|(id, tname)| (group(tname), if allowed(id) { n } else { 0 }))
                        .collect(),
                });
            }
            for (k, chunk) in chunks {
                let set = label(&[pf.address.as_str(), "vfs"], &k.to_string());
                offer.resources.counter_sets.push(DraCounterSet {
                    name: set.clone(),
                    counters: chunk
                        .iter()
                        .map(|v| {
                            let n = u64::from(!held.contains(&v.address));
                            (format!("vf-{}", v.index), n)
                        })
                        .collect(),
                });
                for v in chunk {
                    for (id, tname) in &types {
                        let name = label(&[v.address.as_str(), tname], "");
                        let mut a = BTreeMap::new();
                        a.insert("kind".into(), s("vgpu"));
                        a.insert("pf".into(), s(pf.address.as_str()));
                        a.insert("vf".into(), s(v.address.as_str()));
                        a.insert("vfIndex".into(), DraValue::Int(i64::from(v.index)));
                        a.insert("type".into(), DraValue::Int(i64::from(*id)));
                        a.insert("typeName".into(), s(tname.as_str()));
                        a.insert("deviceAPI".into(), s("vfio-pci"));
                        if let Some(x) = &facts.vendor {
                            a.insert("vendor".into(), s(x.as_str()));
                        }
                        if let Some(x) = &facts.device {
                            a.insert("deviceID".into(), s(x.as_str()));
                        }
                        if let Some(n) = facts.numa_node {
                            a.insert("numaNode".into(), DraValue::Int(i64::from(n)));
                        }
                        if let Some(x) = &facts.driver {
                            a.insert("driver".into(), s(x.as_str()));
                        }
                        if let Some(x) = &driver.version {
                            a.insert("driverVersion".into(), s(x.as_str()));
                        }
                        a.insert(
                            "resource.kubernetes.io/pciBusID".into(),
                            s(v.address.as_str()),
                        );
                        let mut consumes = vec![DraConsumption {
                            counter_set: set.clone(),
                            counters: BTreeMap::from([(format!("vf-{}", v.index), 1)]),
                            groups: vec![group(tname)],
                        }];
                        if let Some(ts) = &types_set {
                            consumes.push(DraConsumption {
                                counter_set: ts.clone(),
                                counters: BTreeMap::from([(group(tname), 1)]),
                                groups: vec![group(tname)],
                            });
                        }
                        offer.resources.devices.push(DraDevice {
                            name: name.clone(),
                            kind: Kind::Vgpu,
                            attributes: a,
                            consumes,
                        });
                        if allowed(id) && !held.contains(&v.address) {
                            offer.plans.insert(
                                name,
                                Plan::Vgpu {
                                    vf: v.address.clone(),
                                    type_id: *id,
                                    type_name: tname.clone(),
                                },
                            );
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
