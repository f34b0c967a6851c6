//! The declarative host file, `/etc/hostdev/host.toml`: what devices the
//! host should have, and its expansion into one desired device per slot.
//!
//! ```toml
//! [host]
//! id = "gpu-07"              # names the host in stable UUIDs (default: /etc/machine-id)
//!
//! [[mdev]]                   # `count` devices of a type on every parent selected
//! select = { ids = ["10de:1eb8"] }   # parents, ids, numa_node, driver; absent: every parent offering the type
//! type = "nvidia-230"
//! count = 2
//! start = "auto"             # default
//! attrs = [{ name = "value" }]
//!
//! [[mdev_device]]            # one device with its own UUID
//! uuid = "…"
//! parent = "mtty"
//! type = "mtty-2"
//!
//! [[sriov]]                  # NVIDIA PFs: VF count and the VFs' types, by name
//! select = { parents = ["0000:41:00.0"] }
//! numvfs = 4
//! types = [{ type = "NVIDIA L40S-4Q", count = 4 }]
//!
//! [[vdpa]]                   # one vDPA device with its creation config
//! name = "vdpa0"
//! mgmtdev = "pci/0000:65:00.2"
//! mac = "02:00:00:00:00:01"  # mtu, max_vqp, features likewise
//! ```
//!
//! A counted mdev's UUID is derived from the host's id, the parent and the
//! slot (its index among the parent's counted devices, in file order), so
//! the same file gives the same UUIDs after a reinstall; retyping a slot
//! keeps its UUID. Explicit UUIDs win.
//!
//! Owns: parsing (unknown keys refused by name and line) and expansion.
//! Must not: read the host (the caller passes what each parent offers).

use crate::config::{Attr, MdevConfig, StartPolicy};
use crate::names::{ParentName, TypeId, Uuid};
use crate::pci::PciAddress;
use crate::pool::{MemberFacts, Selector};
use crate::vdpa::{CreateConfig, MacAddr, MgmtDevName, VdpaDefinition, VdpaName};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

mod record;
pub use record::{Managed, Pending};

/// Why a host file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostFileError {
    /// Not TOML, or a key or value the format does not have.
    #[error("{0}")]
    Toml(String),
    /// Well-formed but contradictory.
    #[error("{0}")]
    Invalid(String),
}

/// The file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostFile {
    /// The host itself.
    #[serde(default)]
    pub host: HostSection,
    /// Counted mdevs per selected parent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mdev: Vec<MdevEntry>,
    /// Single mdevs with their own UUIDs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mdev_device: Vec<MdevDeviceEntry>,
    /// NVIDIA SR-IOV PFs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sriov: Vec<SriovEntry>,
    /// vDPA devices.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vdpa: Vec<VdpaEntry>,
}

/// `[[vdpa]]`: one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VdpaEntry {
    /// Its name.
    pub name: VdpaName,
    /// Its management device (`vdpasim_net`, `pci/0000:65:00.2`).
    #[serde(deserialize_with = "mgmtdev_text", serialize_with = "mgmtdev_show")]
    #[schemars(with = "String")]
    pub mgmtdev: MgmtDevName,
    /// MAC address.
    pub mac: Option<MacAddr>,
    /// MTU.
    pub mtu: Option<u16>,
    /// Maximum virtqueue pairs.
    pub max_vqp: Option<u16>,
    /// Device feature bits.
    pub features: Option<u64>,
    /// Start policy of the definition.
    #[serde(default = "auto")]
    pub start: StartPolicy,
}

fn mgmtdev_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<MgmtDevName, D::Error> {
    let s = String::deserialize(d)?;
    MgmtDevName::parse(&s).map_err(serde::de::Error::custom)
}

fn mgmtdev_show<S: serde::Serializer>(m: &MgmtDevName, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&m.to_string())
}

impl VdpaEntry {
    /// The definition it stands for.
    pub fn definition(&self) -> VdpaDefinition {
        VdpaDefinition {
            name: self.name.clone(),
            mgmtdev: self.mgmtdev.clone(),
            config: CreateConfig {
                mac: self.mac,
                mtu: self.mtu,
                max_vqp: self.max_vqp,
                features: self.features,
            },
            start: self.start,
        }
    }
}

/// `[host]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostSection {
    /// The host's identity in stable UUIDs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// `[[mdev]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MdevEntry {
    /// Which parents (all criteria must hold; empty: every parent).
    #[serde(default)]
    pub select: Selector,
    /// The type.
    #[serde(rename = "type")]
    pub mdev_type: TypeId,
    /// Devices per selected parent.
    pub count: u32,
    /// Start policy of the definitions.
    #[serde(default = "auto")]
    pub start: StartPolicy,
    /// Attributes, in order, one `{ name = "value" }` each.
    #[serde(default)]
    pub attrs: Vec<BTreeMap<String, String>>,
}

/// `[[mdev_device]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MdevDeviceEntry {
    /// Its UUID.
    pub uuid: Uuid,
    /// Its parent.
    pub parent: ParentName,
    /// Its type.
    #[serde(rename = "type")]
    pub mdev_type: TypeId,
    /// Start policy.
    #[serde(default = "auto")]
    pub start: StartPolicy,
    /// Attributes, in order.
    #[serde(default)]
    pub attrs: Vec<BTreeMap<String, String>>,
}

/// `[[sriov]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SriovEntry {
    /// Which PFs.
    #[serde(default)]
    pub select: Selector,
    /// `sriov_numvfs`.
    pub numvfs: u32,
    /// VF types by name, given to VFs in index order.
    #[serde(default)]
    pub types: Vec<VfTypes>,
    /// Start policy of the definitions.
    #[serde(default = "auto")]
    pub start: StartPolicy,
}

/// `{ type = "NVIDIA L40S-4Q", count = 4 }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VfTypes {
    /// The type's name (ids are card-local, so names only).
    #[serde(rename = "type")]
    pub type_name: String,
    /// How many VFs get it.
    pub count: u32,
}

fn auto() -> StartPolicy {
    StartPolicy::Auto
}

fn attrs_of(list: &[BTreeMap<String, String>], what: &str) -> Result<Vec<Attr>, HostFileError> {
    list.iter()
        .map(|m| {
            let mut it = m.iter();
            match (it.next(), it.next()) {
                (Some((k, v)), None) => {
                    // A name becomes a sysfs path when the device starts:
                    // refused here, before apply stops anything.
                    crate::AttrName::new(k.clone())
                        .map_err(|e| HostFileError::Invalid(format!("{what}: {e}")))?;
                    Ok(Attr {
                        name: k.clone(),
                        value: v.clone(),
                    })
                }
                _ => Err(HostFileError::Invalid(format!(
                    "{what}: each attrs entry is one {{ name = \"value\" }} pair (order is kept across entries)"
                ))),
            }
        })
        .collect()
}

impl HostFile {
    /// The file as TOML text (what [`HostFile::parse`] reads back).
    pub fn to_text(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Checks a file that did not come from [`HostFile::parse`] (a client
    /// sent it as JSON) by every rule `parse` applies: its text is parsed
    /// again.
    pub fn validate(&self) -> Result<(), HostFileError> {
        HostFile::parse(&self.to_text()).map(|_| ())
    }

    /// Parses the file's text.
    pub fn parse(text: &str) -> Result<HostFile, HostFileError> {
        let f: HostFile = toml::from_str(text)
            .map_err(|e| HostFileError::Toml(crate::quote::toml_error(text, &e)))?;
        f.check()?;
        Ok(f)
    }

    /// The rules a file must keep whether it was read or translated: names
    /// usable as paths, counts no host can exceed (checked before anything
    /// is expanded or summed, with sums that cannot wrap), nothing twice.
    pub fn check(&self) -> Result<(), HostFileError> {
        let f = self;
        for (i, m) in f.mdev.iter().enumerate() {
            if m.count > MAX_MDEV_COUNT {
                return Err(HostFileError::Invalid(format!(
                    "mdev #{}: count {} is more than any parent has ({MAX_MDEV_COUNT} at most: vfio_ap, the largest, offers 255 x 255)",
                    i + 1,
                    m.count
                )));
            }
            m.select
                .check()
                .map_err(|e| HostFileError::Invalid(format!("mdev #{}: {e}", i + 1)))?;
            attrs_of(&m.attrs, &format!("mdev #{}", i + 1))?;
        }
        let mut seen = BTreeSet::new();
        for d in &f.mdev_device {
            attrs_of(&d.attrs, &format!("mdev_device {}", d.uuid))?;
            if !seen.insert(d.uuid) {
                return Err(HostFileError::Invalid(format!(
                    "mdev_device {} is given twice",
                    d.uuid
                )));
            }
        }
        for (i, s) in f.sriov.iter().enumerate() {
            s.select
                .check()
                .map_err(|e| HostFileError::Invalid(format!("sriov #{}: {e}", i + 1)))?;
            if s.numvfs > MAX_NUMVFS {
                return Err(HostFileError::Invalid(format!(
                    "sriov #{}: numvfs {} is more than a PCI function can have ({MAX_NUMVFS}: TotalVFs is 16 bits)",
                    i + 1,
                    s.numvfs
                )));
            }
            let n: u64 = s.types.iter().map(|t| u64::from(t.count)).sum();
            if n > u64::from(s.numvfs) {
                return Err(HostFileError::Invalid(format!(
                    "sriov #{}: the types ask for {n} VFs but numvfs is {}",
                    i + 1,
                    s.numvfs
                )));
            }
            if s.types.iter().any(|t| t.type_name.trim().is_empty()) {
                return Err(HostFileError::Invalid(format!(
                    "sriov #{}: a type needs its name",
                    i + 1
                )));
            }
        }
        let mut names = BTreeSet::new();
        for v in &f.vdpa {
            v.definition()
                .config
                .check()
                .map_err(|e| HostFileError::Invalid(format!("vdpa {}: {e}", v.name)))?;
            if !names.insert(v.name.clone()) {
                return Err(HostFileError::Invalid(format!(
                    "vdpa {} is given twice",
                    v.name
                )));
            }
        }
        let mut macs = BTreeMap::new();
        for v in &f.vdpa {
            if let Some(m) = v.mac {
                if let Some(other) = macs.insert(m, v.name.clone()) {
                    return Err(HostFileError::Invalid(format!(
                        "vdpa {} and {other} have the same MAC {m}",
                        v.name
                    )));
                }
            }
        }
        Ok(())
    }
}

/// The most devices one `[[mdev]]` entry may ask of one parent: no driver
/// offers more instances of a type (vfio_ap's matrix, the largest, offers
/// 255 adapters x 255 domains = 65 025).
pub const MAX_MDEV_COUNT: u32 = 65_536;

/// The most mdevs a file may expand into on one host.
pub const MAX_MDEVS: usize = 65_536;

/// The most VFs a PF can have: SR-IOV's TotalVFs is a 16-bit field.
pub const MAX_NUMVFS: u32 = 65_535;

/// What an mdev parent is and offers, as expansion needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentOffer {
    /// The parent's facts (name, ids, NUMA node, driver).
    pub facts: MemberFacts,
    /// The types it offers.
    pub types: Vec<TypeId>,
}

/// One mdev the file wants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DesiredMdev {
    /// Its UUID (stable or explicit).
    pub uuid: Uuid,
    /// Its parent.
    pub parent: ParentName,
    /// Its definition.
    pub config: MdevConfig,
}

/// The stable UUID of a counted mdev.
pub fn slot_uuid(host_id: &str, parent: &ParentName, slot: u32) -> Uuid {
    Uuid::stable(&format!("hostdev:mdev:{host_id}:{parent}:{slot}"))
}

/// Expands the mdev part: each `[[mdev]]` on every parent it selects that
/// offers its type (slots numbered per parent in file order), then the
/// explicit devices. Returns the devices and a sentence per entry that
/// selects nothing (hardware that may come later: not an error).
pub fn desired_mdevs(
    f: &HostFile,
    host_id: &str,
    parents: &[ParentOffer],
) -> Result<(Vec<DesiredMdev>, Vec<String>), HostFileError> {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    let mut next_slot: BTreeMap<String, u32> = BTreeMap::new();
    for (i, m) in f.mdev.iter().enumerate() {
        let attrs = attrs_of(&m.attrs, &format!("mdev #{}", i + 1))?;
        let mut hit = 0;
        for p in parents {
            if !m.select.matches(&p.facts) || !p.types.contains(&m.mdev_type) {
                continue;
            }
            let Ok(parent) = ParentName::new(p.facts.name.clone()) else {
                continue;
            };
            hit += 1;
            if out.len().saturating_add(m.count as usize) > MAX_MDEVS {
                return Err(HostFileError::Invalid(format!(
                    "the file asks for more than {MAX_MDEVS} mdevs on this host (mdev #{} on {} parents and more)",
                    i + 1,
                    hit
                )));
            }
            let slot = next_slot.entry(p.facts.name.clone()).or_insert(0);
            for _ in 0..m.count {
                out.push(DesiredMdev {
                    uuid: slot_uuid(host_id, &parent, *slot),
                    parent: parent.clone(),
                    config: MdevConfig {
                        mdev_type: m.mdev_type.clone(),
                        start: m.start,
                        attrs: attrs.clone(),
                    },
                });
                *slot += 1;
            }
        }
        if hit == 0 {
            notes.push(format!(
                "mdev #{} ({}) selects no parent that offers the type",
                i + 1,
                m.mdev_type
            ));
        }
    }
    for d in &f.mdev_device {
        if out.iter().any(|o: &DesiredMdev| o.uuid == d.uuid) {
            return Err(HostFileError::Invalid(format!(
                "mdev_device {} has the UUID of a counted device",
                d.uuid
            )));
        }
        out.push(DesiredMdev {
            uuid: d.uuid,
            parent: d.parent.clone(),
            config: MdevConfig {
                mdev_type: d.mdev_type.clone(),
                start: d.start,
                attrs: attrs_of(&d.attrs, &format!("mdev_device {}", d.uuid))?,
            },
        });
    }
    Ok((out, notes))
}

/// One PF the file wants: its VF count and each VF's type by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DesiredPf {
    /// The PF.
    pub pf: PciAddress,
    /// `sriov_numvfs`.
    pub numvfs: u32,
    /// Type names by VF index (`None`: no type).
    pub vf_types: Vec<Option<String>>,
    /// Start policy.
    pub start: StartPolicy,
}

/// Expands the SR-IOV part over the PFs present (the first entry that
/// selects a PF decides it); a sentence per entry that selects nothing.
pub fn desired_pfs(f: &HostFile, pfs: &[MemberFacts]) -> (Vec<DesiredPf>, Vec<String>) {
    let mut out: Vec<DesiredPf> = Vec::new();
    let mut notes = Vec::new();
    for (i, s) in f.sriov.iter().enumerate() {
        let mut hit = 0;
        for p in pfs {
            let Ok(pf) = p.name.parse::<PciAddress>() else {
                continue;
            };
            if !s.select.matches(p) || out.iter().any(|o| o.pf == pf) {
                continue;
            }
            hit += 1;
            let mut vf_types: Vec<Option<String>> = s
                .types
                .iter()
                .flat_map(|t| std::iter::repeat_n(Some(t.type_name.clone()), t.count as usize))
                .collect();
            vf_types.resize(s.numvfs as usize, None);
            out.push(DesiredPf {
                pf,
                numvfs: s.numvfs,
                vf_types,
                start: s.start,
            });
        }
        if hit == 0 {
            notes.push(format!("sriov #{} selects no PF", i + 1));
        }
    }
    (out, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(name: &str, ids: (&str, &str), types: &[&str]) -> ParentOffer {
        ParentOffer {
            facts: MemberFacts {
                name: name.into(),
                vendor: Some(ids.0.into()),
                device: Some(ids.1.into()),
                numa_node: Some(0),
                driver: Some("nvidia".into()),
            },
            types: types.iter().map(|t| t.parse().expect("type")).collect(),
        }
    }

    const FILE: &str = r#"
[host]
id = "gpu-07"

[[mdev]]
select = { ids = ["10de:1eb8"] }
type = "nvidia-230"
count = 2
attrs = [{ a = "1" }, { b = "2" }]

[[mdev_device]]
uuid = "11111111-2222-4333-8444-555555555555"
parent = "mtty"
type = "mtty-2"
start = "manual"

[[sriov]]
select = { parents = ["0000:41:00.0"] }
numvfs = 3
types = [{ type = "NVIDIA L40S-4Q", count = 2 }]
"#;

    #[test]
    fn a_file_expands_into_stable_slots() {
        let f = HostFile::parse(FILE).expect("parse");
        let parents = [
            offer("0000:3b:00.0", ("0x10de", "0x1eb8"), &["nvidia-230"]),
            offer("0000:5e:00.0", ("0x10de", "0x1eb8"), &["nvidia-230"]),
            offer("0000:af:00.0", ("0x10de", "0x2236"), &["nvidia-230"]),
        ];
        let (d, notes) = desired_mdevs(&f, "gpu-07", &parents).expect("expand");
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(
            d.len(),
            5,
            "2 on each selected parent, and the explicit one"
        );
        assert_eq!(d[0].config.attrs.len(), 2);
        assert_eq!(d[0].config.attrs[0].name, "a");
        let again = desired_mdevs(&f, "gpu-07", &parents).expect("expand").0;
        assert_eq!(d, again, "the same file, the same UUIDs");
        let other = desired_mdevs(&f, "gpu-08", &parents).expect("expand").0;
        assert_ne!(d[0].uuid, other[0].uuid, "another host, other UUIDs");
        let all: BTreeSet<_> = d.iter().map(|x| x.uuid).collect();
        assert_eq!(all.len(), 5, "no UUID twice");
        assert_eq!(d[4].config.start, StartPolicy::Manual);
        let pfs = [MemberFacts {
            name: "0000:41:00.0".into(),
            ..MemberFacts::default()
        }];
        let (p, _) = desired_pfs(&f, &pfs);
        assert_eq!(
            p[0].vf_types,
            vec![
                Some("NVIDIA L40S-4Q".to_string()),
                Some("NVIDIA L40S-4Q".to_string()),
                None
            ]
        );
    }

    /// `count = 1000000000` and `numvfs = 4000000000` aborted the process
    /// (`memory allocation … failed`, SIGABRT, no message), and type counts
    /// whose u32 sum wrapped passed the "more than numvfs" check.
    #[test]
    fn counts_beyond_what_a_host_can_have_are_refused_with_checked_sums() {
        for (text, want) in [
            ("[[mdev]]\ntype = \"t-1\"\ncount = 1000000000\n", "count 1000000000"),
            ("[[sriov]]\nnumvfs = 4000000000\n", "numvfs 4000000000"),
            (
                "[[sriov]]\nnumvfs = 4\ntypes = [{ type = \"A-1Q\", count = 4294967295 }, { type = \"A-2Q\", count = 2 }]\n",
                "ask for 4294967297 VFs but numvfs is 4",
            ),
        ] {
            let e = HostFile::parse(text).expect_err(want).to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
        // Within the bounds per entry, but too many devices in all.
        let f = HostFile::parse("[[mdev]]\ntype = \"t-1\"\ncount = 65536\n").expect("parse");
        let parents = [
            offer("a", ("0x10de", "0x1eb8"), &["t-1"]),
            offer("b", ("0x10de", "0x1eb8"), &["t-1"]),
        ];
        let e = desired_mdevs(&f, "h", &parents)
            .expect_err("total")
            .to_string();
        assert!(e.contains("more than 65536 mdevs"), "{e}");
    }

    /// A vDPA MTU virtio-net cannot carry (0, 67) passed plan.
    #[test]
    fn vdpa_mtus_outside_virtio_net_are_refused() {
        for bad in [0, 67] {
            let text = format!("[[vdpa]]\nname = \"v0\"\nmgmtdev = \"vdpasim_net\"\nmtu = {bad}\n");
            let e = HostFile::parse(&text).expect_err("mtu").to_string();
            assert!(e.contains("68 to 65535") && e.contains("v0"), "{e}");
        }
    }

    /// `attrs = [{ "../../../../tmp/x" = "1" }]` passed plan; apply stopped
    /// every device of the entry, failed at the attribute, and rolled back.
    #[test]
    fn attribute_names_are_validated_when_the_file_is_read() {
        for (entry, bad) in [
            ("[[mdev]]\ntype = \"t-1\"\ncount = 1", "../../../../tmp/x"),
            ("[[mdev]]\ntype = \"t-1\"\ncount = 1", ".hidden"),
            (
                "[[mdev_device]]\nuuid = \"11111111-2222-4333-8444-555555555555\"\nparent = \"mtty\"\ntype = \"mtty-2\"",
                "a/b",
            ),
        ] {
            let text = format!("{entry}\nattrs = [{{ \"{bad}\" = \"1\" }}]\n");
            let e = HostFile::parse(&text).expect_err(bad).to_string();
            assert!(e.contains("attribute name") && e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn unknown_keys_are_named_with_their_line_and_contradictions_refused() {
        let e = HostFile::parse("[[mdev]]\ntype = \"t\"\ncount = 1\ncolour = \"red\"\n")
            .expect_err("unknown key");
        let s = e.to_string();
        assert!(s.contains("colour") && s.contains("line 4"), "{s}");
        let e =
            HostFile::parse("[[sriov]]\nnumvfs = 1\ntypes = [{ type = \"X-1Q\", count = 2 }]\n")
                .expect_err("too many");
        assert!(
            e.to_string().contains("ask for 2 VFs but numvfs is 1"),
            "{e}"
        );
        let e = HostFile::parse("[[mdev]]\ntype = \"../x\"\ncount = 1\n").expect_err("name");
        assert!(e.to_string().contains("line 2"), "{e}");
        let e = HostFile::parse(
            "[[mdev]]\ntype = \"t\"\ncount = 1\nattrs = [{ a = \"1\", b = \"2\" }]\n",
        )
        .expect_err("two in one");
        assert!(
            e.to_string().contains("one { name = \"value\" } pair"),
            "{e}"
        );
        let (_, notes) = desired_mdevs(
            &HostFile::parse("[[mdev]]\ntype = \"t-1\"\ncount = 1\n").expect("parse"),
            "h",
            &[],
        )
        .expect("expand");
        assert_eq!(
            notes,
            vec!["mdev #1 (t-1) selects no parent that offers the type"]
        );
    }
}
