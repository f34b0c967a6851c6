//! vDPA migration: the spec (the creation config the kernel does not keep,
//! with the device's class and limits) and the rules that judge a
//! destination management device by a trial creation.
//!
//! Owns: [`VdpaSpec`], [`VdpaDestination`], [`check_vdpa`]. Must not: read
//! the host.

use super::{Reason, Verdict};
use crate::vdpa::VdpaDefinition;
use serde::{Deserialize, Serialize};

/// A vDPA device as the destination must recreate it: the kernel does not
/// keep the creation config, so it comes from hostdev's definition (or, for
/// a device hostdev did not define, the live config, marked so).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
    (super::worst(&out), out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
