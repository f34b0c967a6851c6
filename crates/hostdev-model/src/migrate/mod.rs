//! Migration specs and verdicts: what a destination must recreate for a
//! device to receive a VM's device state, and the rules that judge a
//! destination device against it.
//!
//! The rules are the ones real QEMU migrations between the lab's mdevs
//! bear out (DOMAIN.md §8, and the kernel tier that repeats them): the
//! stream is opaque and self-validating, so the destination must be built
//! alike — same type, same attributes, a driver that migrates, the same
//! driver build unless told otherwise — and QEMU needs migration forced on
//! for an mdev (`x-device-dirty-page-tracking=off,enable-migration=on`):
//! no IOMMU tracks its dirty pages, and a driver's DMA logging claim is not
//! relied on (mtty's is a stub, and QEMU fails without forcing).
//!
//! Owns: the spec's format (versioned) and the rules. Must not: read the
//! host (hostdev-core gathers the facts).

mod vdpa;
mod vgpu;

pub use vdpa::{check_vdpa, VdpaDestination, VdpaSpec};
pub use vgpu::{card_model, check_vgpu, CardSpec, VgpuDestination, VgpuSpec};

use crate::probe::{DriverIdentity, Migration};
use serde::{Deserialize, Serialize};

/// The spec format this code writes and reads.
pub const SPEC_VERSION: u32 = 1;

/// What the destination must recreate: `hostdevctl migrate export`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrationSpec {
    /// The format's version ([`SPEC_VERSION`]).
    pub hostdev_migration_spec: u32,
    /// The device on the source (informational).
    pub source: String,
    /// A mediated device's facts (exactly one of `mdev`, `vgpu` and `vdpa`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mdev: Option<MdevSpec>,
    /// An NVIDIA vGPU's facts (a VF under the vendor's VFIO driver).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vgpu: Option<VgpuSpec>,
    /// A vDPA device's facts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vdpa: Option<VdpaSpec>,
}

impl MigrationSpec {
    /// How many kinds the spec describes (a usable spec: exactly one).
    pub fn kinds(&self) -> usize {
        usize::from(self.mdev.is_some())
            + usize::from(self.vgpu.is_some())
            + usize::from(self.vdpa.is_some())
    }
}

/// An mdev as the destination must recreate it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MdevSpec {
    /// The type id.
    #[serde(rename = "type")]
    pub type_id: String,
    /// The device API (`vfio-pci`, …).
    pub device_api: String,
    /// Attributes in the order they are written (from its definition).
    pub attrs: Vec<(String, String)>,
    /// The parent's name and PCI ids, where it is a PCI device.
    pub parent: ParentSpec,
    /// The vendor driver, its module's versions and the kernel.
    pub driver: DriverIdentity,
    /// The device's migration flags; `None`: it has no migration.
    pub migration: Option<Migration>,
}

/// The parent the source device ran on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParentSpec {
    /// Its name.
    pub name: String,
    /// PCI vendor id (`0x10de`), where PCI.
    pub vendor: Option<String>,
    /// PCI device id, where PCI.
    pub device: Option<String>,
}

/// How strictly the vendor driver must match.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum DriverPolicy {
    /// The same driver, module version and srcversion (the default).
    #[default]
    Exact,
    /// The same driver and module version; another build of it is accepted.
    Version,
    /// The same driver, any version.
    Driver,
}

/// The three answers.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The migration will work as it is.
    Compatible,
    /// It will work once QEMU or libvirt are told what `changes` says.
    CompatibleWithChanges,
    /// It will not work.
    Incompatible,
}

impl Verdict {
    /// The word shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Compatible => "compatible",
            Verdict::CompatibleWithChanges => "compatible-with-changes",
            Verdict::Incompatible => "incompatible",
        }
    }
}

/// One rule's finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Reason {
    /// The rule (`type`, `attributes`, `migration`, `driver`, `dirty-tracking`).
    pub rule: String,
    /// What it concludes.
    pub verdict: Verdict,
    /// The source's value.
    pub source: String,
    /// The destination's value.
    pub destination: String,
    /// A sentence.
    pub why: String,
}

/// What the destination device is, as the rules need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// Its type id.
    pub type_id: String,
    /// Its attributes in order (from its definition; empty without one).
    pub attrs: Vec<(String, String)>,
    /// Its driver identity.
    pub driver: DriverIdentity,
    /// Its migration flags.
    pub migration: Option<Migration>,
    /// It accepts DMA logging (a claim: shown, not trusted).
    pub dma_logging: bool,
}

/// The `driver` rule, shared by the kinds a vendor driver serves: the same
/// driver, and as much of its version as `policy` asks.
pub(crate) fn driver_reason(
    s: &DriverIdentity,
    d: &DriverIdentity,
    policy: DriverPolicy,
) -> Reason {
    let id = |i: &DriverIdentity| {
        format!(
            "{} {} {}",
            i.driver.as_deref().unwrap_or("-"),
            i.version.as_deref().unwrap_or("-"),
            i.srcversion.as_deref().unwrap_or("-")
        )
    };
    let ok = s.driver == d.driver
        && match policy {
            DriverPolicy::Exact => s.version == d.version && s.srcversion == d.srcversion,
            DriverPolicy::Version => s.version == d.version,
            DriverPolicy::Driver => true,
        };
    let word = match policy {
        DriverPolicy::Exact => "exact",
        DriverPolicy::Version => "version",
        DriverPolicy::Driver => "driver",
    };
    Reason {
        rule: "driver".into(),
        verdict: if ok {
            Verdict::Compatible
        } else {
            Verdict::Incompatible
        },
        source: id(s),
        destination: id(d),
        why: if ok {
            format!("the driver matches under the '{word}' policy")
        } else {
            // What would accept it, where a looser policy would (a
            // migration check's `--driver-policy`, a pool's
            // `[migration] driver_policy`); another driver nothing accepts.
            let hint = if s.driver != d.driver {
                ""
            } else if policy == DriverPolicy::Exact && s.version == d.version {
                "; the 'version' policy accepts another build of the same version"
            } else {
                "; the 'driver' policy accepts any version of the same driver"
            };
            format!("the driver differs under the '{word}' policy{hint}")
        },
    }
}

/// The QEMU device properties an mdev that migrates must run with on both
/// hosts (the `dirty-tracking` rule): no IOMMU tracks its dirty pages, and
/// without forcing QEMU 10 fails at `ram_save_setup` (kernel tier).
pub const MDEV_QEMU_PROPS: [(&str, &str); 2] = [
    ("x-device-dirty-page-tracking", "off"),
    ("enable-migration", "on"),
];

/// The QEMU device properties a source device's spec says it needs to
/// migrate (an mdev with VFIO migration: [`MDEV_QEMU_PROPS`]; none
/// otherwise), judged from the source alone so that a domain started
/// without them is refused before anything is made for it.
pub fn qemu_props_needed(spec: &MigrationSpec) -> Vec<(&'static str, &'static str)> {
    match &spec.mdev {
        Some(m) if m.migration.is_some_and(|m| m.stop_copy) => MDEV_QEMU_PROPS.to_vec(),
        _ => Vec::new(),
    }
}

/// The worst of the reasons' verdicts (compatible when there are none).
pub(crate) fn worst(reasons: &[Reason]) -> Verdict {
    reasons
        .iter()
        .map(|r| r.verdict)
        .max()
        .unwrap_or(Verdict::Compatible)
}

/// Judges `dst` against `spec`: one reason per rule, the verdict the worst.
pub fn check(spec: &MdevSpec, dst: &Destination, policy: DriverPolicy) -> (Verdict, Vec<Reason>) {
    let mut out = Vec::new();
    let rule = |rule: &str, ok: bool, bad: Verdict, src: String, d: String, why: String| Reason {
        rule: rule.to_string(),
        verdict: if ok { Verdict::Compatible } else { bad },
        source: src,
        destination: d,
        why,
    };
    let same_type = spec.type_id == dst.type_id;
    out.push(rule(
        "type",
        same_type,
        Verdict::Incompatible,
        spec.type_id.clone(),
        dst.type_id.clone(),
        if same_type {
            "the same type".into()
        } else {
            "the device state of one type does not load into another (mtty: another port count fails to load)".into()
        },
    ));
    let show = |a: &[(String, String)]| {
        if a.is_empty() {
            "none".to_string()
        } else {
            a.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let same_attrs = spec.attrs == dst.attrs;
    out.push(rule(
        "attributes",
        same_attrs,
        Verdict::Incompatible,
        show(&spec.attrs),
        show(&dst.attrs),
        if same_attrs {
            "the same attributes in the same order".into()
        } else {
            "the destination must be configured as the source was".into()
        },
    ));
    let words = |m: &Option<Migration>| match m {
        Some(m) if m.stop_copy => m.words().join(" "),
        Some(_) => "no stop-copy".into(),
        None => "none".into(),
    };
    let migrates = |m: &Option<Migration>| m.is_some_and(|m| m.stop_copy);
    let both = migrates(&spec.migration) && migrates(&dst.migration);
    out.push(rule(
        "migration",
        both,
        Verdict::Incompatible,
        words(&spec.migration),
        words(&dst.migration),
        match (migrates(&spec.migration), migrates(&dst.migration)) {
            (true, true) => "both drivers support VFIO migration (stop-copy)".into(),
            (false, _) => {
                "the source device has no VFIO migration: QEMU refuses to migrate it".into()
            }
            (true, false) => "the destination device has no VFIO migration".into(),
        },
    ));
    out.push(driver_reason(&spec.driver, &dst.driver, policy));
    if both {
        // Not trusted: mtty accepts DMA logging (its operations are stubs)
        // and QEMU 10 still fails at ram_save_setup unless migration is
        // forced on; an mdev has no IOMMU to track for it either. Forcing
        // works for every mdev that migrates (kernel tier).
        out.push(rule(
            "dirty-tracking",
            false,
            Verdict::CompatibleWithChanges,
            "-".into(),
            format!(
                "DMA logging {}",
                if dst.dma_logging {
                    "claimed (not relied on)"
                } else {
                    "no"
                }
            ),
            "start QEMU's device with x-device-dirty-page-tracking=off,enable-migration=on on \
             both hosts (libvirt: a <qemu:override> of the hostdev's properties); without it \
             the migration fails at ram_save_setup"
                .into(),
        ));
    }
    (worst(&out), out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m() -> Option<Migration> {
        Some(Migration {
            stop_copy: true,
            p2p: true,
            pre_copy: true,
        })
    }

    fn spec(t: &str) -> MdevSpec {
        MdevSpec {
            type_id: t.into(),
            device_api: "vfio-pci".into(),
            attrs: vec![],
            parent: ParentSpec {
                name: "mtty".into(),
                vendor: None,
                device: None,
            },
            driver: DriverIdentity {
                driver: Some("mtty".into()),
                version: Some("0.1".into()),
                srcversion: Some("A".into()),
                ..DriverIdentity::default()
            },
            migration: m(),
        }
    }

    fn dst(t: &str) -> Destination {
        Destination {
            type_id: t.into(),
            attrs: vec![],
            driver: spec(t).driver,
            migration: m(),
            dma_logging: false,
        }
    }

    #[test]
    fn verdicts_follow_the_rules() {
        let p = DriverPolicy::Exact;
        let (v, r) = check(&spec("mtty-2"), &dst("mtty-2"), p);
        assert_eq!(v, Verdict::CompatibleWithChanges, "{r:?}");
        assert!(r
            .iter()
            .any(|r| r.rule == "dirty-tracking" && r.why.contains("enable-migration=on")));
        let mut claims = dst("mtty-2");
        claims.dma_logging = true;
        assert_eq!(
            check(&spec("mtty-2"), &claims, p).0,
            Verdict::CompatibleWithChanges,
            "a claim of DMA logging is not relied on"
        );
        assert_eq!(
            check(&spec("mtty-1"), &dst("mtty-2"), p).0,
            Verdict::Incompatible
        );
        let mut none = spec("mdpy-vga");
        none.migration = None;
        let (v, r) = check(&none, &dst("mdpy-vga"), p);
        assert_eq!(v, Verdict::Incompatible);
        assert!(
            !r.iter().any(|r| r.rule == "dirty-tracking"),
            "moot without migration"
        );
        let mut other = dst("mtty-2");
        other.driver.srcversion = Some("B".into());
        assert_eq!(check(&spec("mtty-2"), &other, p).0, Verdict::Incompatible);
        assert_eq!(
            check(&spec("mtty-2"), &other, DriverPolicy::Version).0,
            Verdict::CompatibleWithChanges
        );
    }

    #[test]
    fn a_driver_refusal_names_the_policy_that_would_accept_it_if_any() {
        let why = |f: fn(&mut DriverIdentity), p| {
            let (s, mut d) = (spec("mtty-2").driver, spec("mtty-2").driver);
            f(&mut d);
            driver_reason(&s, &d, p).why
        };
        let build = why(|d| d.srcversion = Some("B".into()), DriverPolicy::Exact);
        assert!(build.ends_with("the 'version' policy accepts another build of the same version"));
        let version = why(|d| d.version = Some("0.2".into()), DriverPolicy::Version);
        assert!(version.ends_with("the 'driver' policy accepts any version of the same driver"));
        let other = why(|d| d.driver = Some("nvidia".into()), DriverPolicy::Exact);
        assert_eq!(other, "the driver differs under the 'exact' policy");
    }
}
