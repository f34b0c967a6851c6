//! vDPA for Kubernetes: the templates the operator allows, in
//! `/etc/hostdev/dra.toml` (`[[vdpa]]` tables: `template`, `mgmtdev`,
//! `count`, optional `mac_base`, `mtu`, `queues`; unknown keys refused by
//! name), each published as `count` devices per (management device,
//! template, slot) — plain devices without counters, as the kernel tells
//! no vDPA management device's capacity — and what such a device name
//! means: a vDPA net device on that management device, with the claim's
//! MAC (or the template's base plus the slot), MTU and queue pairs.
//!
//! Owns: the template file and the vDPA part of the offer. Must not: make
//! or remove devices (prepare.rs does), or fail the whole offer over a bad
//! template file (it becomes a note, and no vDPA device is offered).

use super::names::{attr_string, label};
use super::publish::{Offer, Plan, Scope};
use crate::{CoreError, Devices};
use hostdev_api::dra::is_dns_label;
use hostdev_api::{DraDevice, DraValue, Kind};
use hostdev_model::vdpa::{CreateConfig, MacAddr, MgmtDevName, MTU_RANGE};
use hostdev_sysfs::sriov::SriovSysfs;
use hostdev_sysfs::MdevSysfs;
use hostdev_vdpa::VdpaClient;
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

/// `base` plus `n` in its last three bytes (the vendor's part kept).
fn mac_plus(base: MacAddr, n: u64) -> MacAddr {
    let b = base.0;
    let low = (u64::from(b[3]) << 16 | u64::from(b[4]) << 8 | u64::from(b[5])).wrapping_add(n);
    MacAddr([
        b[0],
        b[1],
        b[2],
        (low >> 16) as u8,
        (low >> 8) as u8,
        low as u8,
    ])
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
                if mac.0[0] & 1 == 1 {
                    return Err(bad(format!("mac_base {mac} is a multicast address")));
                }
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

impl<S: MdevSysfs, V: SriovSysfs, C: VdpaClient> Devices<S, V, C> {
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
        let top: MacAddr = "02:aa:bb:ff:ff:ff".parse().unwrap_or(MacAddr([0; 6]));
        assert_eq!(mac_plus(top, 1).to_string(), "02:aa:bb:00:00:00");
    }
}
