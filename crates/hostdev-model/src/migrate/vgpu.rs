//! NVIDIA vGPU migration (a VF under the vendor's VFIO driver): the spec
//! (the type by *name*, the card it ran on, the driver build, what the VF
//! answered about migration) and the rules that judge a destination VF.
//!
//! Type ids are card-local (DOMAIN.md §2): the same id means another type on
//! another card, and the same type has another id there. The rules compare
//! names only; ids appear in the reasons so an operator sees both.
//!
//! Owns: [`VgpuSpec`], [`VgpuDestination`], [`check_vgpu`]. Must not: read
//! the host.

use super::{driver_reason, worst, DriverPolicy, Reason, Verdict};
use crate::probe::{DriverIdentity, Migration};
use crate::vgpu::VgpuType;
use serde::{Deserialize, Serialize};

/// A vGPU as the destination must recreate it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VgpuSpec {
    /// The type's name (`NVIDIA L40S-4Q`): what the destination must offer.
    pub type_name: String,
    /// Its id on the source card (shown, never compared: ids are card-local).
    pub type_id: u32,
    /// The card the source VF belongs to.
    pub card: CardSpec,
    /// The vendor driver of the card, its module's versions and the kernel.
    pub driver: DriverIdentity,
    /// What the VF answered about VFIO migration; `None` with `unprobed`
    /// empty: it has none.
    pub migration: Option<Migration>,
    /// Why the VF could not be asked (VFIO unavailable, the VF held by a VM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unprobed: Option<String>,
}

/// The card (physical function) a VF belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CardSpec {
    /// The PF's PCI address.
    pub pf: String,
    /// The model, from the type's name (`L40S`).
    pub model: Option<String>,
    /// PCI vendor id.
    pub vendor: Option<String>,
    /// PCI device id.
    pub device: Option<String>,
}

/// The card model a vGPU type's name carries: `NVIDIA L40S-4Q` → `L40S`.
pub fn card_model(type_name: &str) -> Option<String> {
    let rest = type_name
        .strip_prefix("NVIDIA ")
        .or_else(|| type_name.strip_prefix("GRID "))
        .unwrap_or(type_name);
    let (model, profile) = rest.rsplit_once('-')?;
    (!model.is_empty() && !profile.is_empty()).then(|| model.to_string())
}

/// A destination VF as the rules need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VgpuDestination {
    /// The VF's address.
    pub vf: String,
    /// Its card.
    pub card: CardSpec,
    /// The type it has now (`None`: unconfigured); a name the host cannot
    /// tell is empty.
    pub current: Option<VgpuType>,
    /// The types it can take now (an unconfigured VF's list).
    pub offers: Vec<VgpuType>,
    /// The card's driver identity.
    pub driver: DriverIdentity,
    /// What the configured VF answered about migration, where it was asked.
    pub migration: Option<Option<Migration>>,
}

fn card_word(c: &CardSpec) -> String {
    let model = c.model.as_deref().unwrap_or("card");
    match &c.device {
        Some(d) => format!("{model} {d} at {}", c.pf),
        None => format!("{model} at {}", c.pf),
    }
}

/// Judges a destination VF against a vGPU spec: `type` (by name), `driver`
/// (under `policy`), `migration`.
pub fn check_vgpu(
    spec: &VgpuSpec,
    dst: &VgpuDestination,
    policy: DriverPolicy,
) -> (Verdict, Vec<Reason>) {
    let mut out = vec![type_reason(spec, dst)];
    out.push(driver_reason(&spec.driver, &dst.driver, policy));
    out.push(migration_reason(spec, dst));
    (worst(&out), out)
}

fn type_reason(spec: &VgpuSpec, dst: &VgpuDestination) -> Reason {
    let source = format!(
        "{} (id {} on {})",
        spec.type_name,
        spec.type_id,
        card_word(&spec.card)
    );
    let reason = |ok: bool, destination: String, why: String| Reason {
        rule: "type".into(),
        verdict: if ok {
            Verdict::Compatible
        } else {
            Verdict::Incompatible
        },
        source: source.clone(),
        destination,
        why,
    };
    let card = card_word(&dst.card);
    if let Some(cur) = &dst.current {
        if cur.name.is_empty() {
            return reason(
                false,
                format!("id {} on {card}, name unknown", cur.id),
                format!(
                    "VF {} has type id {}, which no definition here names and no free VF of its \
                     card lists; ids are card-local, so it is not judged by id",
                    dst.vf, cur.id
                ),
            );
        }
        let ok = cur.name == spec.type_name;
        return reason(
            ok,
            format!("{} (id {} on {card})", cur.name, cur.id),
            if ok {
                format!("VF {} has the same type, by name", dst.vf)
            } else {
                format!(
                    "VF {} is configured as another type; clear it (vgpu stop) or choose a free VF",
                    dst.vf
                )
            },
        );
    }
    if let Some(t) = dst.offers.iter().find(|t| t.name == spec.type_name) {
        return reason(
            true,
            format!("{} (id {} on {card})", t.name, t.id),
            format!(
                "VF {} can take the type by name; its id on this card is {} (ids are card-local)",
                dst.vf, t.id
            ),
        );
    }
    let same_id = dst
        .offers
        .iter()
        .find(|t| t.id == spec.type_id)
        .map(|t| {
            format!(
                "; id {} here is {}, another type: ids are card-local and never compared",
                t.id, t.name
            )
        })
        .unwrap_or_default();
    let offers = if dst.offers.is_empty() {
        "nothing now".to_string()
    } else {
        dst.offers
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    reason(
        false,
        format!("not offered by {card}"),
        format!(
            "VF {} of the {} card does not offer {} (it offers {offers}){same_id}",
            dst.vf,
            dst.card.model.as_deref().unwrap_or("destination"),
            spec.type_name
        ),
    )
}

fn migration_reason(spec: &VgpuSpec, dst: &VgpuDestination) -> Reason {
    let words = |m: &Option<Migration>| match m {
        Some(m) if m.stop_copy => m.words().join(" "),
        Some(_) => "no stop-copy".into(),
        None => "none".into(),
    };
    let migrates = |m: &Option<Migration>| m.is_some_and(|m| m.stop_copy);
    let reason = |verdict, source: String, destination: String, why: String| Reason {
        rule: "migration".into(),
        verdict,
        source,
        destination,
        why,
    };
    let dst_word = match &dst.migration {
        Some(m) => words(m),
        None => "not asked".into(),
    };
    if let Some(why) = &spec.unprobed {
        return reason(
            Verdict::Compatible,
            "not asked".into(),
            dst_word,
            format!(
                "the source VF was not asked ({why}); NVIDIA's driver decides migration per type, \
                 and QEMU refuses to start a migration the device cannot do"
            ),
        );
    }
    if !migrates(&spec.migration) {
        return reason(
            Verdict::Incompatible,
            words(&spec.migration),
            dst_word,
            "the source VF has no VFIO migration: QEMU refuses to migrate it".into(),
        );
    }
    match &dst.migration {
        Some(m) if !migrates(m) => reason(
            Verdict::Incompatible,
            words(&spec.migration),
            dst_word,
            "the destination VF has no VFIO migration".into(),
        ),
        Some(_) => reason(
            Verdict::Compatible,
            words(&spec.migration),
            dst_word,
            "both VFs support VFIO migration (stop-copy)".into(),
        ),
        None => reason(
            Verdict::Compatible,
            words(&spec.migration),
            dst_word,
            "the source VF migrates; the destination gets the same type under the driver the \
             'driver' rule judges"
                .into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(id: u32, name: &str) -> VgpuType {
        VgpuType {
            id,
            name: name.into(),
        }
    }

    fn card(pf: &str, model: &str, device: &str) -> CardSpec {
        CardSpec {
            pf: pf.into(),
            model: Some(model.into()),
            vendor: Some("0x10de".into()),
            device: Some(device.into()),
        }
    }

    fn driver() -> DriverIdentity {
        DriverIdentity {
            driver: Some("nvidia".into()),
            version: Some("550.90.05".into()),
            ..DriverIdentity::default()
        }
    }

    fn spec() -> VgpuSpec {
        VgpuSpec {
            type_name: "NVIDIA L40S-4Q".into(),
            type_id: 1150,
            card: card("0000:41:00.0", "L40S", "0x26b9"),
            driver: driver(),
            migration: Some(Migration {
                stop_copy: true,
                p2p: true,
                pre_copy: false,
            }),
            unprobed: None,
        }
    }

    fn free_vf(card: CardSpec, offers: Vec<VgpuType>) -> VgpuDestination {
        VgpuDestination {
            vf: "0000:c1:00.4".into(),
            card,
            current: None,
            offers,
            driver: driver(),
            migration: None,
        }
    }

    #[test]
    fn card_models_come_from_type_names() {
        assert_eq!(card_model("NVIDIA L40S-4Q").as_deref(), Some("L40S"));
        assert_eq!(card_model("NVIDIA H200X-141C").as_deref(), Some("H200X"));
        assert_eq!(card_model("GRID A100-4C").as_deref(), Some("A100"));
        assert_eq!(card_model("weird"), None);
        assert_eq!(card_model("NVIDIA -4Q"), None);
    }

    #[test]
    fn the_same_name_under_another_id_is_compatible() {
        let d = free_vf(
            card("0000:41:00.0", "L40S", "0x26b9"),
            vec![t(1180, "NVIDIA L40S-4Q"), t(1181, "NVIDIA L40S-8Q")],
        );
        let (v, r) = check_vgpu(&spec(), &d, DriverPolicy::Exact);
        assert_eq!(v, Verdict::Compatible, "{r:?}");
        assert!(r[0].destination.contains("id 1180"), "{r:?}");
    }

    #[test]
    fn a_card_lacking_the_name_is_incompatible_even_where_the_id_exists() {
        let d = free_vf(
            card("0000:c1:00.0", "H100", "0x2331"),
            vec![t(1428, "NVIDIA H100-10C"), t(1150, "NVIDIA H100-80C")],
        );
        let (v, r) = check_vgpu(&spec(), &d, DriverPolicy::Exact);
        assert_eq!(v, Verdict::Incompatible);
        let why = &r[0].why;
        assert!(
            why.contains("H100 card does not offer NVIDIA L40S-4Q")
                && why.contains("id 1150 here is NVIDIA H100-80C"),
            "{why}"
        );
    }

    #[test]
    fn a_configured_vf_is_judged_by_its_type_and_migration_answer() {
        let mut d = free_vf(card("0000:41:00.0", "L40S", "0x26b9"), vec![]);
        d.current = Some(t(1181, "NVIDIA L40S-8Q"));
        assert_eq!(
            check_vgpu(&spec(), &d, DriverPolicy::Exact).0,
            Verdict::Incompatible
        );
        d.current = Some(t(1150, ""));
        let (v, r) = check_vgpu(&spec(), &d, DriverPolicy::Exact);
        assert_eq!(
            v,
            Verdict::Incompatible,
            "an unnamed type is not judged by id"
        );
        assert!(r[0].why.contains("not judged by id"), "{r:?}");
        d.current = Some(t(1180, "NVIDIA L40S-4Q"));
        d.migration = Some(None);
        let (v, r) = check_vgpu(&spec(), &d, DriverPolicy::Exact);
        assert_eq!(v, Verdict::Incompatible);
        assert_eq!(r[2].rule, "migration");
        d.migration = Some(spec().migration);
        assert_eq!(
            check_vgpu(&spec(), &d, DriverPolicy::Exact).0,
            Verdict::Compatible
        );
        d.driver.version = Some("535.183.06".into());
        assert_eq!(
            check_vgpu(&spec(), &d, DriverPolicy::Exact).0,
            Verdict::Incompatible
        );
        assert_eq!(
            check_vgpu(&spec(), &d, DriverPolicy::Driver).0,
            Verdict::Compatible
        );
    }

    #[test]
    fn a_source_without_migration_is_incompatible_and_an_unasked_one_says_so() {
        let d = free_vf(
            card("0000:41:00.0", "L40S", "0x26b9"),
            vec![t(1180, "NVIDIA L40S-4Q")],
        );
        let mut s = spec();
        s.migration = None;
        assert_eq!(
            check_vgpu(&s, &d, DriverPolicy::Exact).0,
            Verdict::Incompatible
        );
        s.unprobed = Some("VFIO is not available".into());
        let (v, r) = check_vgpu(&s, &d, DriverPolicy::Exact);
        assert_eq!(v, Verdict::Compatible);
        assert!(r[2].why.contains("was not asked (VFIO is not available)"));
    }
}
