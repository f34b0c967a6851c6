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

use crate::probe::{DriverIdentity, Migration};
use crate::vdpa::VdpaDefinition;
use serde::{Deserialize, Serialize};

/// The spec format this code writes and reads.
pub const SPEC_VERSION: u32 = 1;

/// What the destination must recreate: `hostdevctl migrate export`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationSpec {
    /// The format's version ([`SPEC_VERSION`]).
    pub hostdev_migration_spec: u32,
    /// The device on the source (informational).
    pub source: String,
    /// A mediated device's facts (exactly one of `mdev` and `vdpa`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mdev: Option<MdevSpec>,
    /// A vDPA device's facts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vdpa: Option<VdpaSpec>,
}

/// A vDPA device as the destination must recreate it: the kernel does not
/// keep the creation config, so it comes from hostdev's definition (or, for
/// a device hostdev did not define, the live config, marked so).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VdpaSpec {
    /// Name, management device and creation config.
    pub definition: VdpaDefinition,
    /// The config came from the live device, not a definition.
    pub from_live_config: bool,
    /// virtio device id (1 net, 2 blk).
    pub class: Option<u32>,
    /// The device features it offered (the destination must offer them all).
    pub features: Option<u64>,
    /// Its maximum virtqueues.
    pub max_vqs: Option<u32>,
    /// Its maximum virtqueue size (the destination's must not be smaller).
    pub max_vq_size: Option<u16>,
}

/// What a destination management device is, and what a trial creation of
/// the spec's config on it gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VdpaDestination {
    /// Its name.
    pub mgmtdev: String,
    /// Supported classes (virtio ids).
    pub classes: Vec<u32>,
    /// Supported device features.
    pub supported_features: Option<u64>,
    /// A device made with the spec's config (and removed again): its
    /// maximum VQ size, or why the kernel refused it.
    pub trial: Result<Option<u16>, String>,
}

/// Judges a destination management device against a vDPA spec.
pub fn check_vdpa(spec: &VdpaSpec, dst: &VdpaDestination) -> (Verdict, Vec<Reason>) {
    let mut out = Vec::new();
    let mut rule = |rule: &str, ok: bool, src: String, d: String, why: String| {
        out.push(Reason {
            rule: rule.to_string(),
            verdict: if ok {
                Verdict::Compatible
            } else {
                Verdict::Incompatible
            },
            source: src,
            destination: d,
            why,
        });
    };
    let class_word = |c: u32| match c {
        1 => "net".to_string(),
        2 => "blk".to_string(),
        n => format!("virtio id {n}"),
    };
    let class_ok = spec.class.is_none_or(|c| dst.classes.contains(&c));
    rule(
        "class",
        class_ok,
        spec.class.map(class_word).unwrap_or_else(|| "-".into()),
        dst.classes
            .iter()
            .map(|c| class_word(*c))
            .collect::<Vec<_>>()
            .join(" "),
        if class_ok {
            format!("{} makes this class", dst.mgmtdev)
        } else {
            format!("{} does not make this class of device", dst.mgmtdev)
        },
    );
    let want = spec.features.or(spec.definition.config.features);
    let features_ok = match (want, dst.supported_features) {
        (Some(w), Some(have)) => w & !have == 0,
        (Some(_), None) => false,
        (None, _) => true,
    };
    let hex = |f: Option<u64>| f.map(|f| format!("{f:#x}")).unwrap_or_else(|| "-".into());
    rule(
        "features",
        features_ok,
        hex(want),
        hex(dst.supported_features),
        if features_ok {
            "the destination offers every feature the source did".into()
        } else {
            format!(
                "the destination lacks features {} the guest may have negotiated",
                hex(want.map(|w| w & !dst.supported_features.unwrap_or(0)))
            )
        },
    );
    let c = &spec.definition.config;
    let cfg = [
        c.mac.as_ref().map(|m| format!("mac {m}")),
        c.mtu.map(|m| format!("mtu {m}")),
        c.max_vqp.map(|q| format!("max_vqp {q}")),
        c.features.map(|f| format!("features {f:#x}")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(", ");
    let cfg = if cfg.is_empty() {
        "defaults".to_string()
    } else {
        cfg
    };
    rule(
        "config",
        dst.trial.is_ok(),
        cfg,
        match &dst.trial {
            Ok(_) => "made and removed".into(),
            Err(e) => e.clone(),
        },
        match &dst.trial {
            Ok(_) => "a device with this creation config can be made there".into(),
            Err(_) => "the kernel refused a device with this creation config there".into(),
        },
    );
    if let Ok(size) = &dst.trial {
        let ok = match (spec.max_vq_size, size) {
            (Some(s), Some(d)) => *d >= s,
            _ => true,
        };
        let show = |v: Option<u16>| v.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
        rule(
            "vq-size",
            ok,
            show(spec.max_vq_size),
            show(*size),
            if ok {
                "the destination's virtqueues are not smaller".into()
            } else {
                "the destination's virtqueues are smaller than the guest may use".into()
            },
        );
    }
    let verdict = out
        .iter()
        .map(|r| r.verdict)
        .max()
        .unwrap_or(Verdict::Compatible);
    (verdict, out)
}

/// An mdev as the destination must recreate it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// Judges `dst` against `spec`: one reason per rule, the verdict the worst.
pub fn check(spec: &MdevSpec, dst: &Destination, policy: DriverPolicy) -> (Verdict, Vec<Reason>) {
    let mut out = Vec::new();
    let mut rule = |rule: &str, ok: bool, bad: Verdict, src: String, d: String, why: String| {
        out.push(Reason {
            rule: rule.to_string(),
            verdict: if ok { Verdict::Compatible } else { bad },
            source: src,
            destination: d,
            why,
        });
    };
    let same_type = spec.type_id == dst.type_id;
    rule(
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
    );
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
    rule(
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
    );
    let words = |m: &Option<Migration>| match m {
        Some(m) if m.stop_copy => m.words().join(" "),
        Some(_) => "no stop-copy".into(),
        None => "none".into(),
    };
    let migrates = |m: &Option<Migration>| m.is_some_and(|m| m.stop_copy);
    let both = migrates(&spec.migration) && migrates(&dst.migration);
    rule(
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
    );
    let id = |i: &DriverIdentity| {
        format!(
            "{} {} {}",
            i.driver.as_deref().unwrap_or("-"),
            i.version.as_deref().unwrap_or("-"),
            i.srcversion.as_deref().unwrap_or("-")
        )
    };
    let (s, d) = (&spec.driver, &dst.driver);
    let driver_ok = s.driver == d.driver
        && match policy {
            DriverPolicy::Exact => s.version == d.version && s.srcversion == d.srcversion,
            DriverPolicy::Version => s.version == d.version,
            DriverPolicy::Driver => true,
        };
    let policy_word = match policy {
        DriverPolicy::Exact => "exact",
        DriverPolicy::Version => "version",
        DriverPolicy::Driver => "driver",
    };
    rule(
        "driver",
        driver_ok,
        Verdict::Incompatible,
        id(s),
        id(d),
        if driver_ok {
            format!("the driver matches under the '{policy_word}' policy")
        } else {
            format!(
                "the driver differs under the '{policy_word}' policy (--driver-policy version|driver relaxes it)"
            )
        },
    );
    if both {
        // Not trusted: mtty accepts DMA logging (its operations are stubs)
        // and QEMU 10 still fails at ram_save_setup unless migration is
        // forced on; an mdev has no IOMMU to track for it either. Forcing
        // works for every mdev that migrates (kernel tier).
        rule(
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
        );
    }
    let verdict = out
        .iter()
        .map(|r| r.verdict)
        .max()
        .unwrap_or(Verdict::Compatible);
    (verdict, out)
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
    fn a_vdpa_destination_is_judged_by_class_features_trial_and_vq_size() {
        let spec = VdpaSpec {
            definition: serde_json::from_str(
                r#"{"name":"v0","mgmtdev":{"dev":"vdpasim_net"},"config":{"mtu":4000}}"#,
            )
            .expect("definition"),
            from_live_config: false,
            class: Some(1),
            features: Some(0b101),
            max_vqs: Some(3),
            max_vq_size: Some(256),
        };
        let dst =
            |classes: Vec<u32>, feat: u64, trial: Result<Option<u16>, String>| VdpaDestination {
                mgmtdev: "m".into(),
                classes,
                supported_features: Some(feat),
                trial,
            };
        assert_eq!(
            check_vdpa(&spec, &dst(vec![1], 0b111, Ok(Some(256)))).0,
            Verdict::Compatible
        );
        assert_eq!(
            check_vdpa(&spec, &dst(vec![2], 0b111, Ok(Some(256)))).0,
            Verdict::Incompatible
        );
        let (v, r) = check_vdpa(&spec, &dst(vec![1], 0b001, Ok(Some(256))));
        assert_eq!(v, Verdict::Incompatible);
        assert!(
            r.iter()
                .any(|r| r.rule == "features" && r.why.contains("0x4")),
            "{r:?}"
        );
        assert_eq!(
            check_vdpa(&spec, &dst(vec![1], 0b111, Err("refused".into()))).0,
            Verdict::Incompatible
        );
        assert_eq!(
            check_vdpa(&spec, &dst(vec![1], 0b111, Ok(Some(128)))).0,
            Verdict::Incompatible
        );
    }
}
