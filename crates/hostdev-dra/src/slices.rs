//! hostdevd's offer ([`DraResources`]) as `resource.k8s.io/v1`
//! ResourceSlice specs for one node's pool, within the API's limits: the
//! counter sets in slices of their own (at most 8 per slice), the devices
//! in slices of at most 64 (the limit for slices whose devices consume
//! counters). A counter set of more than 32 counters (hostdevd gives a
//! parent whose types' counts are too far apart for one `units` budget a
//! counter per type: more than 32 types make more than 32 counters) is
//! split into parts of at most 32 (`<set>-<k>`, counters in name order),
//! each device drawing on the part that holds its counters — where that
//! keeps what compatibility groups enforce, which the scheduler compares
//! only between devices drawing on one set: no device draws on it with
//! groups, or one set that is not split is drawn on by every device that
//! draws on it, with the same groups (one type at a time holds through that
//! set). A counter set or device that breaks a per-object limit otherwise (2 counter sets per device, 2 compatibility groups, 32
//! attributes, 64-byte string values) is left out with a sentence, rather
//! than have the apiserver refuse the whole slice.
//!
//! Owns: the mapping and the limits. Must not: talk to the apiserver
//! ([`crate::publish`] does) or decide what is offered (hostdevd does).

use hostdev_api::{DraConsumption, DraCounterSet, DraDevice, DraResources, DraValue};
use k8s_openapi::api::resource::v1 as rv1;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

/// Counter sets per slice.
pub const MAX_COUNTER_SETS_PER_SLICE: usize = 8;
/// Counters per counter set (and per device's consumption of one set).
pub const MAX_COUNTERS_PER_SET: usize = 32;
/// Devices per slice when devices consume counters.
pub const MAX_DEVICES_PER_SLICE: usize = 64;
/// Counter sets one device draws on.
pub const MAX_SETS_PER_DEVICE: usize = 2;
/// Compatibility groups per consumption.
pub const MAX_GROUPS: usize = 2;
/// Attributes and capacities per device.
pub const MAX_ATTRIBUTES: usize = 32;
/// Bytes in a string or version attribute value.
pub const MAX_VALUE_BYTES: usize = 64;

/// The slices of one pool, without the pool's generation (set when
/// publishing), and what was left out.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    /// The specs, counter-set slices first, generation 0.
    pub specs: Vec<rv1::ResourceSliceSpec>,
    /// One sentence per thing left out.
    pub left_out: Vec<String>,
}

fn counters(m: &BTreeMap<String, u64>) -> BTreeMap<String, rv1::Counter> {
    m.iter()
        .map(|(k, v)| {
            (
                k.clone(),
                rv1::Counter {
                    value: Quantity(v.to_string()),
                },
            )
        })
        .collect()
}

fn attribute(v: &DraValue) -> rv1::DeviceAttribute {
    let mut a = rv1::DeviceAttribute::default();
    match v {
        DraValue::String(s) => a.string = Some(s.clone()),
        DraValue::Int(i) => a.int = Some(*i),
        DraValue::Bool(b) => a.bool = Some(*b),
        DraValue::Version(s) => a.version = Some(s.clone()),
    }
    a
}

/// Why a device breaks a limit, if it does.
fn device_fault(d: &DraDevice, sets: &BTreeSet<&str>) -> Option<String> {
    if d.consumes.len() > MAX_SETS_PER_DEVICE {
        return Some(format!(
            "device {} draws on {} counter sets (the limit is {MAX_SETS_PER_DEVICE})",
            d.name,
            d.consumes.len()
        ));
    }
    for c in &d.consumes {
        if !sets.contains(c.counter_set.as_str()) {
            return Some(format!(
                "device {} draws on counter set {}, which is not published",
                d.name, c.counter_set
            ));
        }
        if c.counters.len() > MAX_COUNTERS_PER_SET || c.groups.len() > MAX_GROUPS {
            return Some(format!(
                "device {} draws on {} counters in {} groups of set {} (limits {MAX_COUNTERS_PER_SET} and {MAX_GROUPS})",
                d.name,
                c.counters.len(),
                c.groups.len(),
                c.counter_set
            ));
        }
    }
    if d.attributes.len() > MAX_ATTRIBUTES {
        return Some(format!(
            "device {} has {} attributes (the limit is {MAX_ATTRIBUTES})",
            d.name,
            d.attributes.len()
        ));
    }
    for (k, v) in &d.attributes {
        if let DraValue::String(s) | DraValue::Version(s) = v {
            if s.len() > MAX_VALUE_BYTES {
                return Some(format!(
                    "device {}'s attribute {k} is {} bytes long (the limit is {MAX_VALUE_BYTES})",
                    d.name,
                    s.len()
                ));
            }
        }
    }
    None
}

fn device(d: &DraDevice) -> rv1::Device {
    let consumes: Vec<rv1::DeviceCounterConsumption> = d
        .consumes
        .iter()
        .map(|c| rv1::DeviceCounterConsumption {
            counter_set: c.counter_set.clone(),
            counters: counters(&c.counters),
            compatibility_groups: (!c.groups.is_empty()).then(|| c.groups.clone()),
        })
        .collect();
    rv1::Device {
        name: d.name.clone(),
        attributes: (!d.attributes.is_empty()).then(|| {
            d.attributes
                .iter()
                .map(|(k, v)| (k.clone(), attribute(v)))
                .collect()
        }),
        consumes_counters: (!consumes.is_empty()).then_some(consumes),
        ..rv1::Device::default()
    }
}

fn spec(driver: &str, node: &str) -> rv1::ResourceSliceSpec {
    rv1::ResourceSliceSpec {
        driver: driver.to_string(),
        node_name: Some(node.to_string()),
        pool: rv1::ResourcePool {
            name: node.to_string(),
            generation: 0,
            resource_slice_count: 0,
        },
        ..rv1::ResourceSliceSpec::default()
    }
}

/// The counter sets in slices of at most [`MAX_COUNTER_SETS_PER_SLICE`],
/// in their order, never parting sets one device draws on together (a
/// parent's `units` and its types set) unless they are more than a slice
/// holds: a change to what a parent can make is then one slice's update.
fn pack_sets<'a>(sets: &[&'a DraCounterSet], devices: &[DraDevice]) -> Vec<Vec<&'a DraCounterSet>> {
    let index: BTreeMap<&str, usize> = sets
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    // Union-find over the sets a device names together.
    let mut up: Vec<usize> = (0..sets.len()).collect();
    fn find(up: &mut [usize], mut i: usize) -> usize {
        while up[i] != i {
            up[i] = up[up[i]];
            i = up[i];
        }
        i
    }
    for d in devices {
        let ids: Vec<usize> = d
            .consumes
            .iter()
            .filter_map(|c| index.get(c.counter_set.as_str()).copied())
            .collect();
        for w in ids.windows(2) {
            let (a, b) = (find(&mut up, w[0]), find(&mut up, w[1]));
            if a != b {
                up[a.max(b)] = a.min(b);
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<&'a DraCounterSet>> = BTreeMap::new();
    for (i, s) in sets.iter().enumerate() {
        let r = find(&mut up, i);
        groups.entry(r).or_default().push(s);
    }
    let mut out: Vec<Vec<&'a DraCounterSet>> = Vec::new();
    for g in groups.into_values() {
        for part in g.chunks(MAX_COUNTER_SETS_PER_SLICE) {
            match out.last_mut() {
                Some(last) if last.len() + part.len() <= MAX_COUNTER_SETS_PER_SLICE => {
                    last.extend_from_slice(part)
                }
                _ => out.push(part.to_vec()),
            }
        }
    }
    out
}

/// The longest counter set name (a DNS label).
const MAX_SET_NAME: usize = 63;

/// Why the oversized set `big` cannot be split, if it cannot: a device
/// draws on it with compatibility groups and on no set that is not split
/// with the same groups, or a part's name would be too long or taken.
fn unsplittable(
    offer: &DraResources,
    big: &DraCounterSet,
    large: &BTreeSet<&str>,
) -> Option<String> {
    let parts = big.counters.len().div_ceil(MAX_COUNTERS_PER_SET);
    let last = format!("{}-{}", big.name, parts - 1);
    if last.len() > MAX_SET_NAME {
        return Some(format!("its parts' names would pass {MAX_SET_NAME} bytes"));
    }
    let names: BTreeSet<&str> = offer.counter_sets.iter().map(|s| s.name.as_str()).collect();
    if let Some(taken) = (0..parts)
        .map(|k| format!("{}-{k}", big.name))
        .find(|n| names.contains(n.as_str()))
    {
        return Some(format!("a part's name, {taken}, is another set's"));
    }
    // The groups each device draws on `big` with, by device.
    let users: Vec<(&DraDevice, &Vec<String>)> = offer
        .devices
        .iter()
        .filter_map(|d| {
            d.consumes
                .iter()
                .find(|c| c.counter_set == big.name)
                .map(|c| (d, &c.groups))
        })
        .collect();
    if users.iter().all(|(_, g)| g.is_empty()) {
        return None;
    }
    // One unsplit set every user draws on with the groups it draws on
    // `big` with: the scheduler compares groups within a set, so that set
    // alone keeps what `big` enforced.
    let keeper = |set: &str| {
        !large.contains(set)
            && users.iter().all(|(d, g)| {
                d.consumes
                    .iter()
                    .any(|o| o.counter_set == set && &o.groups == *g)
            })
    };
    let (first, _) = users[0];
    if first.consumes.iter().any(|o| keeper(&o.counter_set)) {
        return None;
    }
    Some(
        "its devices draw on it with compatibility groups and on no one unsplit set together with the same groups, so parts would lose them"
            .into(),
    )
}

/// The offer with every oversized counter set that can be split split into
/// parts (the offer itself when none is oversized), and a sentence for each
/// that cannot (left as it is, and so left out by [`pool`]).
fn split_sets<'a>(offer: &'a DraResources, left_out: &mut Vec<String>) -> Cow<'a, DraResources> {
    let large: BTreeSet<&str> = offer
        .counter_sets
        .iter()
        .filter(|s| s.counters.len() > MAX_COUNTERS_PER_SET)
        .map(|s| s.name.as_str())
        .collect();
    if large.is_empty() {
        return Cow::Borrowed(offer);
    }
    // Counter name → its part's set name, for each set split.
    let mut part_of: BTreeMap<&str, BTreeMap<&str, String>> = BTreeMap::new();
    let mut sets = Vec::new();
    for s in &offer.counter_sets {
        if !large.contains(s.name.as_str()) {
            sets.push(s.clone());
            continue;
        }
        if let Some(why) = unsplittable(offer, s, &large) {
            left_out.push(format!(
                "counter set {} has {} counters (the limit is {MAX_COUNTERS_PER_SET}) and is not split: {why}",
                s.name,
                s.counters.len()
            ));
            sets.push(s.clone());
            continue;
        }
        let names = part_of.entry(s.name.as_str()).or_default();
        let all: Vec<(&String, &u64)> = s.counters.iter().collect();
        for (k, chunk) in all.chunks(MAX_COUNTERS_PER_SET).enumerate() {
            let name = format!("{}-{k}", s.name);
            for (c, _) in chunk {
                names.insert(c.as_str(), name.clone());
            }
            sets.push(DraCounterSet {
                name,
                counters: chunk.iter().map(|(c, v)| ((*c).clone(), **v)).collect(),
            });
        }
    }
    if part_of.is_empty() {
        return Cow::Borrowed(offer);
    }
    let devices = offer
        .devices
        .iter()
        .map(|d| {
            let mut d = d.clone();
            let mut consumes: Vec<DraConsumption> = Vec::new();
            for c in std::mem::take(&mut d.consumes) {
                let Some(parts) = part_of.get(c.counter_set.as_str()) else {
                    consumes.push(c);
                    continue;
                };
                // One consumption per part its counters are in.
                let mut by_part: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
                for (name, v) in c.counters {
                    let part = parts
                        .get(name.as_str())
                        .cloned()
                        .unwrap_or_else(|| c.counter_set.clone());
                    by_part.entry(part).or_default().insert(name, v);
                }
                for (part, counters) in by_part {
                    consumes.push(DraConsumption {
                        counter_set: part,
                        counters,
                        groups: c.groups.clone(),
                    });
                }
            }
            d.consumes = consumes;
            d
        })
        .collect();
    Cow::Owned(DraResources {
        counter_sets: sets,
        devices,
        notes: offer.notes.clone(),
    })
}

/// The pool named after `node` for hostdevd's offer. An empty offer is one
/// slice without devices (the scheduler then knows the node has none).
pub fn pool(driver: &str, node: &str, offer: &DraResources) -> Pool {
    let mut left_out = Vec::new();
    let offer = split_sets(offer, &mut left_out);
    let offer = offer.as_ref();
    let mut sets: Vec<&DraCounterSet> = Vec::new();
    for s in &offer.counter_sets {
        if s.counters.len() > MAX_COUNTERS_PER_SET {
            // Said by split_sets.
        } else {
            sets.push(s);
        }
    }
    let names: BTreeSet<&str> = sets.iter().map(|s| s.name.as_str()).collect();
    let mut devices = Vec::new();
    for d in &offer.devices {
        match device_fault(d, &names) {
            Some(why) => left_out.push(why),
            None => devices.push(device(d)),
        }
    }
    let mut specs = Vec::new();
    for chunk in pack_sets(&sets, &offer.devices) {
        let mut s = spec(driver, node);
        s.shared_counters = Some(
            chunk
                .iter()
                .map(|c| rv1::CounterSet {
                    name: c.name.clone(),
                    counters: counters(&c.counters),
                })
                .collect(),
        );
        specs.push(s);
    }
    for chunk in devices.chunks(MAX_DEVICES_PER_SLICE) {
        let mut s = spec(driver, node);
        s.devices = Some(chunk.to_vec());
        specs.push(s);
    }
    if specs.is_empty() {
        let mut s = spec(driver, node);
        s.devices = Some(Vec::new());
        specs.push(s);
    }
    let count = i64::try_from(specs.len()).unwrap_or(i64::MAX);
    for s in &mut specs {
        s.pool.resource_slice_count = count;
    }
    Pool { specs, left_out }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostdev_api::{DraConsumption, Kind};

    fn offer(parents: usize, per_parent: usize) -> DraResources {
        let mut o = DraResources::default();
        for p in 0..parents {
            let set = format!("parent-{p}");
            o.counter_sets.push(DraCounterSet {
                name: set.clone(),
                counters: BTreeMap::from([("units".into(), 8)]),
            });
            for i in 0..per_parent {
                o.devices.push(DraDevice {
                    name: format!("mdev-{p}-{i}"),
                    kind: Kind::Mdev,
                    attributes: BTreeMap::from([
                        ("typeName".into(), DraValue::String("GRID A".into())),
                        ("numaNode".into(), DraValue::Int(0)),
                    ]),
                    consumes: vec![DraConsumption {
                        counter_set: set.clone(),
                        counters: BTreeMap::from([("units".into(), 2)]),
                        groups: vec!["type-a".into()],
                    }],
                });
            }
        }
        o
    }

    /// One one-type card with `types` types: a `units` set every device
    /// draws on with its type's group (when `units_grouped`), and a types
    /// set with a counter per type, drawn on with the same group.
    fn card(types: usize, units_grouped: bool) -> DraResources {
        let mut o = DraResources::default();
        o.counter_sets.push(DraCounterSet {
            name: "gpu0".into(),
            counters: BTreeMap::from([("units".into(), 48)]),
        });
        o.counter_sets.push(DraCounterSet {
            name: "gpu0-types".into(),
            counters: (0..types).map(|t| (format!("t{t:02}"), 1)).collect(),
        });
        for t in 0..types {
            let group = vec![format!("t{t:02}")];
            o.devices.push(DraDevice {
                name: format!("gpu0-t{t:02}-0"),
                kind: Kind::Mdev,
                attributes: BTreeMap::new(),
                consumes: vec![
                    DraConsumption {
                        counter_set: "gpu0".into(),
                        counters: BTreeMap::from([("units".into(), 1)]),
                        groups: if units_grouped {
                            group.clone()
                        } else {
                            Vec::new()
                        },
                    },
                    DraConsumption {
                        counter_set: "gpu0-types".into(),
                        counters: BTreeMap::from([(format!("t{t:02}"), 1)]),
                        groups: group,
                    },
                ],
            });
        }
        o
    }

    #[test]
    fn a_card_with_more_than_32_types_has_its_types_set_split_in_parts() {
        // Before: the types set (40 counters) was left out, and with it
        // every device of the card.
        let p = pool("hostdev.io", "node-1", &card(40, true));
        assert!(p.left_out.is_empty(), "{:?}", p.left_out);
        let sets: BTreeMap<String, usize> = p
            .specs
            .iter()
            .flat_map(|s| s.shared_counters.iter().flatten())
            .map(|c| (c.name.clone(), c.counters.len()))
            .collect();
        assert_eq!(
            sets,
            BTreeMap::from([
                ("gpu0".to_string(), 1),
                ("gpu0-types-0".to_string(), 32),
                ("gpu0-types-1".to_string(), 8)
            ])
        );
        // The card's sets stay in one slice (one slice's update on a change).
        assert_eq!(p.specs[0].shared_counters.as_ref().unwrap().len(), 3);
        let devices: Vec<&rv1::Device> = p
            .specs
            .iter()
            .flat_map(|s| s.devices.iter().flatten())
            .collect();
        assert_eq!(devices.len(), 40);
        for d in devices {
            let cs = d.consumes_counters.as_ref().unwrap();
            assert_eq!(cs.len(), 2, "{d:?}");
            let t = &d.name[5..8];
            let part = if t < "t32" {
                "gpu0-types-0"
            } else {
                "gpu0-types-1"
            };
            assert_eq!(cs[1].counter_set, part, "{d:?}");
            assert!(cs[1].counters.contains_key(t), "{d:?}");
            // The groups stay on both sets.
            assert_eq!(
                cs[0].compatibility_groups.as_deref(),
                Some(&[t.to_string()][..])
            );
            assert_eq!(cs[1].compatibility_groups, cs[0].compatibility_groups);
        }
        // 32 types exactly: nothing split.
        let p = pool("hostdev.io", "node-1", &card(32, true));
        assert!(p.left_out.is_empty());
        assert_eq!(
            p.specs[0].shared_counters.as_ref().unwrap()[1].name,
            "gpu0-types"
        );
    }

    #[test]
    fn a_set_whose_groups_no_other_set_carries_is_not_split() {
        // The types set alone carries the groups: parts would let two types
        // run on the card, so it is left out with its devices, said.
        let p = pool("hostdev.io", "node-1", &card(40, false));
        assert!(
            p.left_out[0].contains("gpu0-types has 40 counters")
                && p.left_out[0].contains("not split")
                && p.left_out[0].contains("compatibility groups"),
            "{:?}",
            p.left_out
        );
        let devices = p
            .specs
            .iter()
            .flat_map(|s| s.devices.iter().flatten())
            .count();
        assert_eq!(devices, 0);
        assert_eq!(p.left_out.len(), 41, "{:?}", p.left_out);
    }

    #[test]
    fn groups_kept_by_sets_that_are_themselves_parts_do_not_count() {
        // Found by review: each device also drew on an unsplit set with its
        // groups, but not on one set: half the devices on vfs-0, half on
        // vfs-1. The scheduler compares groups within a set, so splitting
        // the types set would let t00 on vfs-0 and t35 on vfs-1 run at once.
        let mut o = card(40, false);
        o.counter_sets.retain(|s| s.name != "gpu0");
        for part in ["vfs-0", "vfs-1"] {
            o.counter_sets.push(DraCounterSet {
                name: part.into(),
                counters: BTreeMap::from([("vf".into(), 1)]),
            });
        }
        for (i, d) in o.devices.iter_mut().enumerate() {
            d.consumes[0] = DraConsumption {
                counter_set: if i < 20 { "vfs-0" } else { "vfs-1" }.into(),
                counters: BTreeMap::from([("vf".into(), 1)]),
                groups: d.consumes[1].groups.clone(),
            };
        }
        let p = pool("hostdev.io", "node-1", &o);
        assert!(p.left_out[0].contains("not split"), "{:?}", p.left_out);
        // All on one of them: split.
        for d in &mut o.devices {
            d.consumes[0].counter_set = "vfs-0".into();
        }
        let p = pool("hostdev.io", "node-1", &o);
        assert!(p.left_out.is_empty(), "{:?}", p.left_out);
    }

    #[test]
    fn a_set_without_groups_is_split_and_a_parts_name_must_be_free() {
        // A parent whose types have a counter each (no one `units` budget),
        // not one type at a time: 40 types, 40 counters, no groups.
        let mut o = card(40, false);
        o.counter_sets.retain(|s| s.name != "gpu0");
        for d in &mut o.devices {
            d.consumes.remove(0);
            d.consumes[0].groups.clear();
        }
        let p = pool("hostdev.io", "node-1", &o);
        assert!(p.left_out.is_empty(), "{:?}", p.left_out);
        let sets: Vec<String> = p
            .specs
            .iter()
            .flat_map(|s| s.shared_counters.iter().flatten())
            .map(|c| c.name.clone())
            .collect();
        assert_eq!(sets, vec!["gpu0-types-0", "gpu0-types-1"]);
        // A part's name another set already has: not split, said.
        o.counter_sets.push(DraCounterSet {
            name: "gpu0-types-1".into(),
            counters: BTreeMap::from([("x".into(), 1)]),
        });
        let p = pool("hostdev.io", "node-1", &o);
        assert!(
            p.left_out[0].contains("gpu0-types-1, is another set's"),
            "{:?}",
            p.left_out
        );
    }

    #[test]
    fn limits_split_the_pool_and_every_slice_knows_the_count() {
        // 17 counter sets → 3 counter slices; 17×10 = 170 devices → 3 device slices.
        let p = pool("hostdev.io", "node-1", &offer(17, 10));
        assert!(p.left_out.is_empty(), "{:?}", p.left_out);
        assert_eq!(p.specs.len(), 6);
        let sets: Vec<usize> = p.specs[..3]
            .iter()
            .map(|s| s.shared_counters.as_ref().unwrap().len())
            .collect();
        assert_eq!(sets, vec![8, 8, 1]);
        let devs: Vec<usize> = p.specs[3..]
            .iter()
            .map(|s| s.devices.as_ref().unwrap().len())
            .collect();
        assert_eq!(devs, vec![64, 64, 42]);
        for s in &p.specs {
            assert_eq!(s.pool.resource_slice_count, 6);
            assert_eq!(s.pool.name, "node-1");
            assert_eq!(s.node_name.as_deref(), Some("node-1"));
            assert!(s.shared_counters.is_none() || s.devices.is_none());
        }
        let d = &p.specs[3].devices.as_ref().unwrap()[0];
        let c = &d.consumes_counters.as_ref().unwrap()[0];
        assert_eq!(c.counters["units"].value.0, "2");
        assert_eq!(
            c.compatibility_groups.as_deref(),
            Some(&["type-a".to_string()][..])
        );
        assert_eq!(d.attributes.as_ref().unwrap()["numaNode"].int, Some(0));
    }

    #[test]
    fn sets_a_device_draws_on_together_share_a_slice() {
        // Three parents of one set, then one with a types set beside its
        // units (sorted apart by name), then four more: 9 sets.
        let mut o = offer(3, 1);
        for name in ["p3", "p4", "p5", "p6", "p7", "q3-types"] {
            o.counter_sets.push(DraCounterSet {
                name: name.into(),
                counters: BTreeMap::from([("units".into(), 8)]),
            });
        }
        o.devices.push(DraDevice {
            name: "two-sets".into(),
            kind: Kind::Mdev,
            attributes: BTreeMap::new(),
            consumes: vec![
                DraConsumption {
                    counter_set: "p3".into(),
                    counters: BTreeMap::from([("units".into(), 1)]),
                    groups: vec![],
                },
                DraConsumption {
                    counter_set: "q3-types".into(),
                    counters: BTreeMap::from([("units".into(), 1)]),
                    groups: vec![],
                },
            ],
        });
        let p = pool("hostdev.io", "n", &o);
        let slices: Vec<Vec<String>> = p
            .specs
            .iter()
            .filter_map(|s| s.shared_counters.as_ref())
            .map(|c| c.iter().map(|x| x.name.clone()).collect())
            .collect();
        let with = |n: &str| slices.iter().position(|s| s.contains(&n.to_string()));
        assert_eq!(with("p3"), with("q3-types"), "{slices:?}");
        assert!(slices.iter().all(|s| s.len() <= MAX_COUNTER_SETS_PER_SLICE));
        assert_eq!(slices.iter().map(Vec::len).sum::<usize>(), 9);
    }

    #[test]
    fn an_empty_offer_is_one_empty_slice() {
        let p = pool("hostdev.io", "n", &DraResources::default());
        assert_eq!(p.specs.len(), 1);
        assert_eq!(p.specs[0].devices.as_deref(), Some(&[][..]));
        assert_eq!(p.specs[0].pool.resource_slice_count, 1);
    }

    #[test]
    fn what_breaks_a_limit_is_left_out_with_a_reason() {
        let mut o = offer(1, 2);
        o.counter_sets.push(DraCounterSet {
            name: "huge".into(),
            counters: (0..33).map(|i| (format!("c{i}"), 1)).collect(),
        });
        o.devices[0]
            .attributes
            .insert("long".into(), DraValue::String("x".repeat(65)));
        o.devices[1].consumes[0].counter_set = "huge".into();
        let p = pool("hostdev.io", "n", &o);
        assert_eq!(p.left_out.len(), 3, "{:?}", p.left_out);
        assert!(p.left_out[0].contains("33 counters"));
        assert!(p.left_out[1].contains("65 bytes"));
        assert!(p.left_out[2].contains("not published"));
        assert_eq!(p.specs.len(), 1, "the set alone");
    }
}
