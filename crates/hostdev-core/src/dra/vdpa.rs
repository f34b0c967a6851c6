//! vDPA for Kubernetes: the templates the operator allows, in
//! `/etc/hostdev/dra.toml` (`[[vdpa]]` tables: `template`, `mgmtdev`,
//! `count`, optional `mac_base`, `mtu`, `queues`; unknown keys refused by
//! name), each published as `count` devices per (management device,
//! template, slot) — plain devices without counters, as the kernel tells
//! no vDPA management device's capacity — and what such a device name
//! means: a vDPA net device on that management device, with the claim's
//! MAC (or the template's base plus the slot), MTU and queue pairs. A
//! `mac_base` must give each of its template's devices an address of its
//! own: not all zeros, not multicast, no carry out of the last three
//! bytes, no overlap with another template's addresses.
//!
//! Owns: the template file and the vDPA part of the offer. Must not: make
//! or remove devices (prepare.rs does), or fail the whole offer over a bad
//! template file (it becomes a note, and no vDPA device is offered).

use super::names::{attr_string, label};
use super::publish::{Offer, Plan, Scope};
use crate::Interfaces;
use crate::{CoreError, Devices};
use hostdev_api::dra::is_dns_label;
use hostdev_api::{DraDevice, DraValue, Kind};
use hostdev_model::vdpa::{CreateConfig, MacAddr, MgmtDevName, MTU_RANGE};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The largest template file read.
const TEMPLATES_LIMIT: u64 = 64 << 10;
/// virtio's id of the net class.
const VIRTIO_NET: u32 = 1;

/// One `[[vdpa]]` table as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    template: String,
    mgmtdev: String,
    count: u64,
    #[serde(default)]
    mac_base: Option<String>,
    #[serde(default)]
    mtu: Option<u16>,
    #[serde(default)]
    queues: Option<u16>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    vdpa: Vec<Wire>,
}

/// A checked template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    pub name: String,
    pub mgmtdev: MgmtDevName,
    pub count: u64,
    pub mac_base: Option<MacAddr>,
    pub mtu: Option<u16>,
    pub queues: Option<u16>,
}

impl Template {
    /// What slot `slot` is created with when the claim says nothing.
    pub(crate) fn config(&self, slot: u64) -> CreateConfig {
        CreateConfig {
            mac: self.mac_base.map(|b| mac_plus(b, slot)),
            mtu: self.mtu,
            max_vqp: self.queues,
            features: None,
        }
    }
}

/// `base` plus `n` in its last three bytes (the vendor's part kept); a
/// template's slots are checked to fit (`check_mac_base`), so the carry
/// never happens for a slot it gives.
fn mac_plus(base: MacAddr, n: u64) -> MacAddr {
    base.offset(n).unwrap_or(base)
}

/// A MAC address as a 48-bit number.
fn mac_number(m: MacAddr) -> u64 {
    m.0.iter().fold(0, |n, b| n << 8 | u64::from(*b))
}

/// Whether template `name`'s `mac_base` can give its `count` devices their
/// own addresses: not all zero, not multicast, `count` addresses from the
/// base within the last three bytes (a carry past `xx:xx:xx:ff:ff:ff`
/// would leave the vendor's part, and `mac_plus` wraps instead, onto
/// addresses already given), and none another template (`earlier`) gives.
fn check_mac_base(
    name: &str,
    base: MacAddr,
    count: u64,
    earlier: &[Template],
) -> Result<(), String> {
    if let Some(why) = base.base_problem(count) {
        return Err(format!("template {name}'s mac_base {base} {why}"));
    }
    let first = mac_number(base);
    let last = first + count.saturating_sub(1);
    for t in earlier {
        let Some(other) = t.mac_base else { continue };
        let o_first = mac_number(other);
        let o_last = o_first + t.count.saturating_sub(1);
        if first <= o_last && o_first <= last {
            return Err(format!(
                "template {name}'s addresses {base} to {} overlap template {}'s, {other} to {}",
                mac_plus(base, count - 1),
                t.name,
                mac_plus(other, t.count - 1)
            ));
        }
    }
    Ok(())
}

fn path(root: &Path) -> PathBuf {
    root.join("etc/hostdev/dra.toml")
}

/// The templates, or a sentence saying why the file is refused (then none).
pub(crate) fn templates(root: &Path) -> Result<Vec<Template>, String> {
    let p = path(root);
    let bytes =
        match hostdev_fs::read_regular_within(&p, hostdev_fs::Limits::at_most(TEMPLATES_LIMIT)) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(Vec::new()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("{} is not read: {e}", p.display())),
        };
    let bad = |why: String| {
        format!(
            "{} is refused, so no vDPA device is offered: {why}",
            p.display()
        )
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| bad("it is not UTF-8".into()))?;
    let file: File = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
    let mut out: Vec<Template> = Vec::new();
    for w in file.vdpa {
        if !is_dns_label(&w.template) || w.template.len() > 20 {
            return Err(bad(format!(
                "template name {:?} is not a DNS label of at most 20 characters",
                attr_string(&w.template)
            )));
        }
        if out.iter().any(|t| t.name == w.template) {
            return Err(bad(format!("template {} is named twice", w.template)));
        }
        let mgmtdev = MgmtDevName::parse(&w.mgmtdev).map_err(|e| bad(e.to_string()))?;
        if w.count == 0 || w.count > super::MAX_SLOTS_PER_TYPE {
            return Err(bad(format!(
                "template {} offers {} devices; 1 to {} are",
                w.template,
                w.count,
                super::MAX_SLOTS_PER_TYPE
            )));
        }
        let mac_base = match &w.mac_base {
            None => None,
            Some(m) => {
                let mac: MacAddr = m
                    .parse()
                    .map_err(|e: hostdev_model::vdpa::VdpaValueError| bad(e.to_string()))?;
                check_mac_base(&w.template, mac, w.count, &out).map_err(bad)?;
                Some(mac)
            }
        };
        if let Some(m) = w.mtu.filter(|m| !MTU_RANGE.contains(m)) {
            return Err(bad(format!("MTU {m} is outside 68 to 65535")));
        }
        if w.queues == Some(0) {
            return Err(bad(format!("template {} has 0 queue pairs", w.template)));
        }
        out.push(Template {
            name: w.template,
            mgmtdev,
            count: w.count,
            mac_base,
            mtu: w.mtu,
            queues: w.queues,
        });
    }
    Ok(out)
}

impl<K: Interfaces> Devices<K> {
    /// The vDPA part of the offer: each template on its management device,
    /// when that device is there and makes net devices.
    pub(crate) fn offer_vdpa(&self, scope: Scope<'_>, offer: &mut Offer) -> Result<(), CoreError> {
        let templates = match templates(&self.root) {
            Ok(t) => t,
            Err(note) => {
                offer.resources.notes.push(note);
                return Ok(());
            }
        };
        let wanted: Vec<&Template> = templates
            .iter()
            .filter(|t| scope.wants(&t.mgmtdev.to_string()))
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let mgmtdevs = match self.vdpa.mgmtdevs() {
            Ok(m) => m,
            Err(e) => {
                // No vDPA family (module not loaded): the rest is offered.
                offer
                    .resources
                    .notes
                    .push(format!("no vDPA template is offered: {e}"));
                return Ok(());
            }
        };
        for t in wanted {
            let m = t.mgmtdev.to_string();
            let Some(dev) = mgmtdevs.iter().find(|d| d.name == t.mgmtdev) else {
                offer.resources.notes.push(format!(
                    "vDPA template {} is not offered: management device {m} is not there",
                    t.name
                ));
                continue;
            };
            if !dev.classes.contains(&VIRTIO_NET) {
                offer.resources.notes.push(format!(
                    "vDPA template {} is not offered: management device {m} makes no net devices",
                    t.name
                ));
                continue;
            }
            for slot in 0..t.count {
                let name = label(&[m.as_str(), t.name.as_str()], &slot.to_string());
                offer.plans.insert(
                    name.clone(),
                    Plan::Vdpa {
                        template: t.clone(),
                        slot,
                    },
                );
                if !scope.full() {
                    continue;
                }
                let mut a = BTreeMap::new();
                a.insert("kind".into(), DraValue::String("vdpa".into()));
                a.insert("mgmtdev".into(), DraValue::String(attr_string(&m)));
                a.insert("template".into(), DraValue::String(t.name.clone()));
                a.insert("class".into(), DraValue::String("net".into()));
                a.insert("slot".into(), DraValue::Int(slot as i64));
                if let Some(mtu) = t.mtu {
                    a.insert("mtu".into(), DraValue::Int(i64::from(mtu)));
                }
                if let Some(q) = t.queues {
                    a.insert("queues".into(), DraValue::Int(i64::from(q)));
                }
                offer.resources.devices.push(DraDevice {
                    name,
                    kind: Kind::Vdpa,
                    attributes: a,
                    consumes: Vec::new(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mac_base_counts_in_its_last_three_bytes() {
        let b: MacAddr = "02:00:00:00:00:fe".parse().unwrap_or(MacAddr([0; 6]));
        assert_eq!(mac_plus(b, 3).to_string(), "02:00:00:00:01:01");
    }

    /// The templates a `dra.toml` of `tables` gives, or why it is refused.
    fn load(tables: &str) -> Result<Vec<Template>, String> {
        let d = tempfile::tempdir().map_err(|e| e.to_string())?;
        let p = path(d.path());
        std::fs::create_dir_all(p.parent().ok_or("no parent")?).map_err(|e| e.to_string())?;
        std::fs::write(&p, tables).map_err(|e| e.to_string())?;
        templates(d.path())
    }

    fn table(name: &str, count: u64, mac_base: &str) -> String {
        format!("[[vdpa]]\ntemplate = \"{name}\"\nmgmtdev = \"vdpasim_net\"\ncount = {count}\nmac_base = \"{mac_base}\"\n")
    }

    #[test]
    fn mac_bases_that_cannot_give_each_device_its_own_address_are_refused_by_template() {
        let two = table("a", 16, "02:00:00:00:00:00") + &table("b", 16, "02:00:00:00:00:10");
        assert_eq!(load(&two).map(|t| t.len()), Ok(2));
        let fits = table("top", 2, "02:aa:bb:ff:ff:fe");
        assert_eq!(load(&fits).map(|t| t.len()), Ok(1));
        for (tables, says) in [
            (table("zero", 4, "00:00:00:00:00:00"), "template zero's mac_base 00:00:00:00:00:00 is all zeros"),
            (table("multi", 4, "03:00:00:00:00:00"), "template multi's mac_base 03:00:00:00:00:00 is a multicast address"),
            (table("carry", 3, "02:aa:bb:ff:ff:fe"), "template carry's mac_base 02:aa:bb:ff:ff:fe cannot give 3 addresses: they would carry past 02:aa:bb:ff:ff:ff"),
            (table("end", 2, "fe:ff:ff:ff:ff:ff"), "would carry past fe:ff:ff:ff:ff:ff"),
            (
                table("a", 16, "02:00:00:00:00:00") + &table("b", 4, "02:00:00:00:00:0f"),
                "template b's addresses 02:00:00:00:00:0f to 02:00:00:00:00:12 overlap template a's, 02:00:00:00:00:00 to 02:00:00:00:00:0f",
            ),
        ] {
            let e = load(&tables).expect_err(&tables);
            assert!(e.contains(says), "{e}");
            assert!(e.contains("no vDPA device is offered"), "{e}");
        }
    }
}
