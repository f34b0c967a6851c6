//! Device pools: named sets of devices handed to consumers (VMs).
//!
//! Owns: the pool's name rule, the definition file's shape
//! (`/etc/hostdev/pools.d/NAME.toml`, unknown keys refused by name) and the
//! pure placement rule (which member gets the next device). Must not: read
//! sysfs, touch the state database, or decide when a device is free (the
//! core and the store do).

use crate::pci::PciAddress;
use crate::vdpa::{CreateConfig, MacAddr};
use crate::TypeId;
use serde::{Deserialize, Serialize};

/// A pool's name: 1–64 of `[A-Za-z0-9_.-]`, starting with a letter or digit
/// (it becomes a file name and a libvirt-visible word).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PoolName(String);

/// A refused pool name or definition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolDefError {
    /// The name breaks the rule.
    #[error("'{0}' is not a pool name: use 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit")]
    Name(String),
    /// The TOML did not parse or named an unknown key.
    #[error("{0}")]
    Toml(String),
    /// The definition is contradictory.
    #[error("{0}")]
    Invalid(String),
}

impl PoolName {
    /// Validates `s`.
    pub fn new(s: impl Into<String>) -> Result<PoolName, PoolDefError> {
        let s = s.into();
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if ok {
            Ok(PoolName(s))
        } else {
            Err(PoolDefError::Name(crate::quote::quote(&s)))
        }
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

crate::names::string_name_impls!(PoolName, PoolDefError);

/// Whether devices wait ready or are made when asked for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Keep `count` devices defined (auto start) and running; allocation
    /// hands out one of them.
    PreCreated,
    /// Create at allocation on a member with capacity, remove at release.
    #[default]
    OnDemand,
}

impl Mode {
    /// The word used in files and listings.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::PreCreated => "pre-created",
            Mode::OnDemand => "on-demand",
        }
    }
}

/// Which member gets the next device.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    /// The member holding fewest of the pool's devices (load spread over GPUs).
    #[default]
    Spread,
    /// The member already holding most that still has room (keeps whole
    /// GPUs free for other types).
    Pack,
}

impl Placement {
    /// The word used in files and listings.
    pub fn as_str(self) -> &'static str {
        match self {
            Placement::Spread => "spread",
            Placement::Pack => "pack",
        }
    }
}

/// Which parents (mdev), PFs (vGPU) or management devices (vDPA) belong to a
/// pool. Every given criterion must hold; none given means every one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    /// Names or PCI addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<String>,
    /// PCI `vendor:device` ids, e.g. `10de:26b9` (`0x` prefixes allowed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
    /// NUMA node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numa_node: Option<i32>,
    /// Bound driver name (`nvidia`, `mtty`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
}

/// What a member is, as far as selectors care.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberFacts {
    /// Name or address.
    pub name: String,
    /// PCI vendor id (`0x10de`), if PCI.
    pub vendor: Option<String>,
    /// PCI device id.
    pub device: Option<String>,
    /// NUMA node.
    pub numa_node: Option<i32>,
    /// Bound driver.
    pub driver: Option<String>,
}

/// A PCI id as sysfs or a selector writes it (`0x10de`, `10de`).
pub fn hex_id(s: &str) -> Option<u16> {
    let s = s.trim();
    let s = s.strip_prefix("0x").unwrap_or(s);
    u16::from_str_radix(s, 16).ok()
}

impl Selector {
    /// Whether the member matches every criterion given.
    pub fn matches(&self, m: &MemberFacts) -> bool {
        if !self.parents.is_empty() && !self.parents.iter().any(|p| p == &m.name) {
            return false;
        }
        if !self.ids.is_empty() {
            let have = (
                m.vendor.as_deref().and_then(hex_id),
                m.device.as_deref().and_then(hex_id),
            );
            let hit = self.ids.iter().any(|id| {
                id.split_once(':')
                    .map(|(v, d)| (hex_id(v), hex_id(d)))
                    .is_some_and(|(v, d)| v.is_some() && (v, d) == have)
            });
            if !hit {
                return false;
            }
        }
        if self.numa_node.is_some() && self.numa_node != m.numa_node {
            return false;
        }
        if self.driver.is_some() && self.driver != m.driver {
            return false;
        }
        true
    }

    /// Refuses ids that are not `vendor:device`.
    pub fn check(&self) -> Result<(), PoolDefError> {
        for id in &self.ids {
            let ok = id
                .split_once(':')
                .is_some_and(|(v, d)| hex_id(v).is_some() && hex_id(d).is_some());
            if !ok {
                return Err(PoolDefError::Invalid(format!(
                    "members.ids: '{}' is not a PCI vendor:device id such as 10de:26b9",
                    crate::quote::quote(id)
                )));
            }
        }
        Ok(())
    }
}

/// How `reconcile` learns that a consumer is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Liveness {
    /// The consumer is a libvirt domain (UUID or name) on this connection
    /// URI, e.g. `qemu:///system`; asked through `virsh`.
    pub libvirt: String,
    /// Alive only while running (default: while defined).
    #[serde(default)]
    pub running: bool,
}

/// The template of a vDPA pool's devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VdpaTemplate {
    /// Devices are named PREFIX + slot number (`vnet0`, `vnet1`, …).
    pub name_prefix: String,
    /// The first device's MAC; slot N gets this plus N.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_base: Option<MacAddr>,
    /// MTU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u16>,
    /// Maximum virtqueue pairs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_vqp: Option<u16>,
    /// Device features.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<u64>,
}

/// The most slots a vDPA pool names (PREFIX0 … PREFIX99999).
pub const VDPA_SLOTS: u32 = 100_000;

impl VdpaTemplate {
    /// How many slots the template can give an address of its own: every
    /// one without `mac_base`, else those before the last three bytes of
    /// the address would carry.
    pub fn slots(&self) -> u32 {
        match self.mac_base {
            None => VDPA_SLOTS,
            Some(m) => m.addresses_left().min(u64::from(VDPA_SLOTS)) as u32,
        }
    }

    /// The creation config of slot `n` (below [`VdpaTemplate::slots`]).
    pub fn config(&self, n: u32) -> CreateConfig {
        CreateConfig {
            // Past the last slot there is no address of its own: the base
            // is never reused by wrapping onto a slot already given.
            mac: self.mac_base.and_then(|m| m.offset(u64::from(n))),
            mtu: self.mtu,
            max_vqp: self.max_vqp,
            features: self.features,
        }
    }
}

/// The kind of device a pool hands out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PoolKind {
    /// Mediated devices of one type.
    Mdev {
        /// The mdev type id.
        mdev_type: TypeId,
    },
    /// NVIDIA vGPUs of one type (by name: ids differ between cards) on VFs.
    Vgpu {
        /// The vGPU type name, e.g. `NVIDIA L40S-4Q`.
        type_name: String,
    },
    /// vDPA devices made from a template.
    Vdpa {
        /// The template.
        template: VdpaTemplate,
    },
}

impl PoolKind {
    /// `mdev`, `vgpu` or `vdpa`.
    pub fn word(&self) -> &'static str {
        match self {
            PoolKind::Mdev { .. } => "mdev",
            PoolKind::Vgpu { .. } => "vgpu",
            PoolKind::Vdpa { .. } => "vdpa",
        }
    }
    /// The type as shown (mdev type id, vGPU type name, vDPA name prefix).
    pub fn type_label(&self) -> String {
        match self {
            PoolKind::Mdev { mdev_type } => mdev_type.to_string(),
            PoolKind::Vgpu { type_name } => type_name.clone(),
            PoolKind::Vdpa { template } => format!("{}N", template.name_prefix),
        }
    }
}

/// The file as written (`deny_unknown_fields` names a misspelt key).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct PoolFile {
    kind: String,
    #[serde(rename = "type", default)]
    type_: Option<String>,
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    count: Option<u32>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    placement: Placement,
    #[serde(default)]
    members: Selector,
    #[serde(default)]
    bind_on_use: bool,
    #[serde(default)]
    liveness: Option<Liveness>,
    #[serde(default)]
    vdpa: Option<VdpaTemplate>,
    #[serde(default)]
    migration: MigrationPolicy,
}

/// How a destination judges a domain's device arriving by migration into
/// the pool (the `[migration]` table).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct MigrationPolicy {
    /// How strictly the vendor driver must match the source's (`exact`, the
    /// default: the same module version and build; `version`; `driver`).
    #[serde(default)]
    pub driver_policy: crate::migrate::DriverPolicy,
}

/// A pool as its file defines it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PoolDef {
    /// Its name (the file's stem).
    pub name: PoolName,
    /// What it hands out.
    pub kind: PoolKind,
    /// Pre-created or on-demand.
    pub mode: Mode,
    /// Pre-created: how many devices to keep.
    pub count: Option<u32>,
    /// On-demand: at most this many at once (none: the members' capacity).
    pub limit: Option<u32>,
    /// Spread or pack.
    pub placement: Placement,
    /// Which parents, PFs or management devices are members.
    pub members: Selector,
    /// A domain naming an unknown UUID binds it to this pool (libvirt hook).
    pub bind_on_use: bool,
    /// How reconcile learns a consumer is gone.
    pub liveness: Option<Liveness>,
    /// How a device arriving by migration is judged.
    #[serde(default)]
    pub migration: MigrationPolicy,
}

impl PoolDef {
    /// Parses a definition file's text; `name` is the file's stem.
    pub fn parse(name: PoolName, text: &str) -> Result<PoolDef, PoolDefError> {
        let f: PoolFile = toml::from_str(text)
            .map_err(|e| PoolDefError::Toml(crate::quote::toml_error(text, &e)))?;
        let invalid = |s: String| Err(PoolDefError::Invalid(s));
        let type_ = f.type_.clone();
        let kind = match (f.kind.as_str(), type_, f.vdpa) {
            ("mdev", Some(t), None) => PoolKind::Mdev {
                mdev_type: TypeId::new(t)
                    .map_err(|e| PoolDefError::Invalid(format!("type: {e}")))?,
            },
            ("vgpu", Some(t), None) if !t.trim().is_empty() => PoolKind::Vgpu { type_name: t },
            ("vdpa", None, Some(template)) => {
                let ok = !template.name_prefix.is_empty()
                    && template.name_prefix.len() <= 10
                    && template
                        .name_prefix
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if !ok {
                    return invalid(format!(
                        "vdpa.name_prefix '{}' must be 1 to 10 letters, digits, '_' or '-'",
                        crate::quote::quote(&template.name_prefix)
                    ));
                }
                template
                    .config(0)
                    .check()
                    .map_err(|e| PoolDefError::Invalid(format!("vdpa: {e}")))?;
                if let Some(base) = template.mac_base {
                    // Every device the pool may hold at once has an address
                    // of its own (an on-demand pool without `limit`: one).
                    let want = u64::from(f.count.or(f.limit).unwrap_or(1));
                    if let Some(why) = base.base_problem(want) {
                        return invalid(format!("vdpa.mac_base {base} {why}"));
                    }
                }
                PoolKind::Vdpa { template }
            }
            ("mdev" | "vgpu", _, Some(_)) => {
                return invalid(format!("a {} pool has no [vdpa] table", f.kind))
            }
            ("mdev" | "vgpu", _, None) => {
                return invalid(format!("a {} pool needs `type`", f.kind))
            }
            ("vdpa", Some(_), _) => {
                return invalid("a vdpa pool takes no `type`: its devices come from [vdpa]".into())
            }
            ("vdpa", None, None) => {
                return invalid("a vdpa pool needs a [vdpa] table with name_prefix".into())
            }
            (k, _, _) => {
                return invalid(format!(
                    "kind '{}' is not one of mdev, vgpu, vdpa",
                    crate::quote::quote(k)
                ))
            }
        };
        match (f.mode, f.count, f.limit) {
            (Mode::PreCreated, None, _) => {
                return invalid("a pre-created pool needs `count`".into())
            }
            (Mode::PreCreated, _, Some(_)) => {
                return invalid(
                    "`limit` is for on-demand pools; a pre-created pool holds `count`".into(),
                )
            }
            (Mode::OnDemand, Some(_), _) => {
                return invalid("`count` is for pre-created pools; use `limit` on demand".into())
            }
            _ => {}
        }
        if f.bind_on_use && f.mode != Mode::OnDemand {
            return invalid("bind_on_use needs mode = \"on-demand\"".into());
        }
        f.members.check()?;
        Ok(PoolDef {
            name,
            kind,
            mode: f.mode,
            count: f.count,
            limit: f.limit,
            placement: f.placement,
            members: f.members,
            bind_on_use: f.bind_on_use,
            liveness: f.liveness,
            migration: f.migration,
        })
    }
}

/// One member as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// The member's name.
    pub member: String,
    /// How many more of the pool's type it can take now.
    pub free: u64,
    /// How many of the pool's devices it holds.
    pub held: u64,
}

/// The members to try, best first: only those with room; spread prefers the
/// fewest held, pack the most; ties go by name so the choice is stable.
pub fn place(slots: &[Slot], p: Placement) -> Vec<&Slot> {
    let mut v: Vec<&Slot> = slots.iter().filter(|s| s.free > 0).collect();
    match p {
        Placement::Spread => v.sort_by(|a, b| a.held.cmp(&b.held).then(a.member.cmp(&b.member))),
        Placement::Pack => v.sort_by(|a, b| b.held.cmp(&a.held).then(a.member.cmp(&b.member))),
    }
    v
}

/// Whether `s` parses as a PCI address (members of vGPU pools are PFs).
pub fn is_pci(s: &str) -> bool {
    s.parse::<PciAddress>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> PoolName {
        PoolName::new(s).unwrap()
    }

    #[test]
    fn names_that_cannot_be_paths_are_refused() {
        for bad in [
            "",
            "../x",
            "a/b",
            ".hidden",
            "-x",
            &"a".repeat(65),
            "a b",
            "é",
        ] {
            assert!(PoolName::new(bad).is_err(), "{bad:?}");
        }
        assert!(PoolName::new("gpu-4q_v1.2").is_ok());
    }

    #[test]
    fn a_file_with_every_key_parses() {
        let d = PoolDef::parse(
            name("gpu"),
            r#"
kind = "mdev"
type = "nvidia-558"
mode = "pre-created"
count = 8
placement = "pack"
[members]
parents = ["0000:3b:00.0"]
ids = ["10de:1eb8", "0x10de:0x2236"]
numa_node = 0
driver = "nvidia"
[liveness]
libvirt = "qemu:///system"
running = true
[migration]
driver_policy = "version"
"#,
        )
        .unwrap();
        assert_eq!(
            d.migration.driver_policy,
            crate::migrate::DriverPolicy::Version
        );
        assert_eq!(d.mode, Mode::PreCreated);
        assert_eq!(d.count, Some(8));
        assert_eq!(d.placement, Placement::Pack);
        assert_eq!(d.kind.type_label(), "nvidia-558");
        assert!(d.liveness.unwrap().running);
    }

    #[test]
    fn unknown_keys_and_contradictions_are_named() {
        let e = PoolDef::parse(name("p"), "kind = \"mdev\"\ntype = \"x\"\ncuont = 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `cuont`"), "{e}");
        let e = PoolDef::parse(
            name("p"),
            "kind = \"mdev\"\ntype = \"x\"\n[members]\nparent = [\"a\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown field `parent`"), "{e}");
        let e = PoolDef::parse(
            name("p"),
            "kind = \"mdev\"\ntype = \"x\"\n[migration]\ndriver_policy = \"loose\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown variant `loose`"), "{e}");
        for (text, want) in [
            ("kind = \"gpu\"\ntype = \"x\"", "kind 'gpu'"),
            ("kind = \"mdev\"", "needs `type`"),
            ("kind = \"mdev\"\ntype = \"../x\"", "type:"),
            ("kind = \"mdev\"\ntype = \"x\"\nmode = \"pre-created\"", "needs `count`"),
            ("kind = \"mdev\"\ntype = \"x\"\ncount = 2", "`count` is for pre-created"),
            ("kind = \"mdev\"\ntype = \"x\"\nmode = \"pre-created\"\ncount = 1\nbind_on_use = true", "bind_on_use"),
            ("kind = \"vdpa\"", "[vdpa]"),
            ("kind = \"vdpa\"\n[vdpa]\nname_prefix = \"a/b\"", "name_prefix"),
            ("kind = \"vdpa\"\n[vdpa]\nname_prefix = \"v\"\nmtu = 0", "68 to 65535"),
            ("kind = \"mdev\"\ntype = \"x\"\n[members]\nids = [\"nvidia\"]", "vendor:device"),
        ] {
            let e = PoolDef::parse(name("p"), text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn selectors_need_every_criterion() {
        let m = MemberFacts {
            name: "0000:3b:00.0".into(),
            vendor: Some("0x10de".into()),
            device: Some("0x1eb8".into()),
            numa_node: Some(1),
            driver: Some("nvidia".into()),
        };
        let s = |t: &str| -> Selector { toml::from_str(t).unwrap() };
        assert!(s("").matches(&m));
        assert!(s("ids = [\"10de:1eb8\"]\nnuma_node = 1").matches(&m));
        assert!(!s("ids = [\"10de:1eb8\"]\nnuma_node = 0").matches(&m));
        assert!(!s("ids = [\"8086:1eb8\"]").matches(&m));
        assert!(!s("driver = \"mtty\"").matches(&m));
        assert!(s("parents = [\"0000:3b:00.0\", \"x\"]").matches(&m));
        assert!(!s("parents = [\"mtty\"]").matches(&m));
    }

    #[test]
    fn spread_takes_the_emptiest_and_pack_the_fullest_with_room() {
        let slot = |m: &str, free, held| Slot {
            member: m.into(),
            free,
            held,
        };
        let slots = [
            slot("a", 3, 1),
            slot("b", 4, 0),
            slot("c", 0, 5),
            slot("d", 1, 3),
        ];
        let names = |v: Vec<&Slot>| v.iter().map(|s| s.member.clone()).collect::<Vec<_>>();
        assert_eq!(names(place(&slots, Placement::Spread)), ["b", "a", "d"]);
        assert_eq!(names(place(&slots, Placement::Pack)), ["d", "a", "b"]);
    }

    #[test]
    fn vdpa_slots_count_up_from_the_base_mac() {
        let t = VdpaTemplate {
            name_prefix: "vnet".into(),
            mac_base: Some("52:54:00:00:00:ff".parse().unwrap()),
            mtu: Some(1500),
            ..Default::default()
        };
        assert_eq!(t.config(1).mac.unwrap().to_string(), "52:54:00:00:01:00");
        assert_eq!(t.config(0).mtu, Some(1500));
        // Near the end of the last three bytes: the slots stop there, and
        // no slot wraps onto the vendor's part or another slot's address.
        let end = VdpaTemplate {
            mac_base: Some("52:54:00:ff:ff:fe".parse().unwrap()),
            ..t.clone()
        };
        assert_eq!(end.slots(), 2);
        assert_eq!(end.config(1).mac.unwrap().to_string(), "52:54:00:ff:ff:ff");
        assert_eq!(end.config(2).mac, None);
        assert_eq!(t.slots(), 100_000);
    }

    #[test]
    fn a_vdpa_pools_mac_base_must_give_each_device_its_own_address() {
        let name = || PoolName::new("p".to_string()).unwrap();
        let pool = |mode_count: &str, mac: &str| {
            PoolDef::parse(
                name(),
                &format!("kind = \"vdpa\"\n{mode_count}\n[vdpa]\nname_prefix = \"v\"\nmac_base = \"{mac}\"\n"),
            )
        };
        for (mc, mac, why) in [
            (
                "mode = \"pre-created\"\ncount = 2",
                "00:00:00:00:00:00",
                "all zeros",
            ),
            (
                "mode = \"pre-created\"\ncount = 2",
                "01:00:5e:00:00:01",
                "multicast",
            ),
            (
                "mode = \"pre-created\"\ncount = 3",
                "52:54:00:ff:ff:fe",
                "carry past 52:54:00:ff:ff:ff",
            ),
            (
                "mode = \"on-demand\"\nlimit = 3",
                "52:54:00:ff:ff:fe",
                "carry past",
            ),
        ] {
            let e = pool(mc, mac).expect_err(mac).to_string();
            assert!(e.contains("vdpa.mac_base") && e.contains(why), "{mac}: {e}");
        }
        pool("mode = \"pre-created\"\ncount = 2", "52:54:00:ff:ff:fe").expect("two fit");
        pool("mode = \"on-demand\"", "52:54:00:ff:ff:ff").expect("one fits");
    }
}
