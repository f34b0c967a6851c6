//! Import of NVIDIA vgpu-device-manager configuration files, so that its
//! users can move to a host file.
//!
//! The format (documented in NVIDIA/vgpu-device-manager's README and
//! `api/spec/v1/spec.go`):
//!
//! ```yaml
//! version: v1
//! vgpu-configs:
//!   T4-small:                   # a named configuration
//!     - devices: [0]            # GPU indices, or `all`
//!       device-filter: ["0x1EB810DE"]   # optional: device ids (device, vendor)
//!       vgpu-devices:
//!         "T4-1Q": 16           # vGPU type name → how many on each GPU
//! ```
//!
//! A GPU's index is its position among the host's NVIDIA GPUs (mdev parents
//! and SR-IOV PFs together) in PCI address order. A type is matched by name
//! without the driver's `GRID ` / `NVIDIA ` prefix. On an mdev GPU each type
//! becomes a counted `[[mdev]]` entry for that GPU; on an SR-IOV PF one
//! `[[sriov]]` entry enables every VF and gives the types to the first
//! ones. Unlike vgpu-device-manager, applying the result keeps the devices
//! that already match and gives them stable UUIDs.
//!
//! Owns: parsing the YAML and the translation. Must not: read the host
//! (the caller lists the GPUs).

use crate::config::StartPolicy;
use crate::host::{HostFile, MdevEntry, SriovEntry, VfTypes};
use crate::names::TypeId;
use crate::pool::Selector;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Why a vgpu-device-manager file could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ImportError(pub String);

/// A vgpu-device-manager file, as its YAML says it (the same shape travels
/// as JSON in hostdev's API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// `v1`.
    pub version: String,
    /// Named configurations.
    #[serde(rename = "vgpu-configs")]
    pub configs: BTreeMap<String, Vec<ConfigSpec>>,
}

/// One entry of a configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigSpec {
    /// Device ids (`0x1EB810DE`: device, then vendor) it applies to.
    #[serde(
        rename = "device-filter",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub device_filter: Option<OneOrMany>,
    /// `all`, or GPU indices.
    pub devices: Devices,
    /// vGPU type name → how many on each GPU.
    #[serde(rename = "vgpu-devices")]
    pub vgpu_devices: BTreeMap<String, u32>,
}

/// One string or a list of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// Which GPUs an entry applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Devices {
    /// `all`.
    Word(String),
    /// GPU indices.
    Indices(Vec<u32>),
}

/// An NVIDIA GPU of the host, as the translation needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpu {
    /// PCI address.
    pub address: String,
    /// PCI vendor id (`0x10de`).
    pub vendor: u16,
    /// PCI device id.
    pub device: u16,
    /// What it carries.
    pub kind: GpuKind,
}

/// How a GPU makes vGPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuKind {
    /// mdev types: (type id, name as sysfs gives it).
    Mdev(Vec<(TypeId, String)>),
    /// SR-IOV: how many VFs it can have, and the type names its VFs offer.
    Sriov {
        /// `sriov_totalvfs`.
        total_vfs: u32,
        /// Type names (as the driver gives them).
        types: Vec<String>,
    },
}

/// A type name without the driver's product prefix.
fn short(name: &str) -> &str {
    let n = name.trim();
    n.strip_prefix("GRID ")
        .or_else(|| n.strip_prefix("NVIDIA "))
        .unwrap_or(n)
}

/// Parses `0x1EB810DE` (device, then vendor) as vgpu-device-manager writes
/// device ids.
fn device_id(s: &str) -> Option<(u16, u16)> {
    let h = s
        .trim()
        .strip_prefix("0x")
        .or(s.trim().strip_prefix("0X"))?;
    let v = u32::from_str_radix(h, 16).ok()?;
    Some(((v >> 16) as u16, (v & 0xffff) as u16))
}

/// The host file equivalent to configuration `config` of a
/// vgpu-device-manager file, on these GPUs (any order). Notes say what
/// could not be carried over.
pub fn translate(
    yaml: &str,
    config: &str,
    gpus: &[Gpu],
) -> Result<(HostFile, Vec<String>), ImportError> {
    translate_spec(&parse_spec(yaml)?, config, gpus)
}

/// Parses a vgpu-device-manager file.
pub fn parse_spec(yaml: &str) -> Result<Spec, ImportError> {
    serde_yaml_ng::from_str(yaml).map_err(|e| {
        ImportError(format!(
            "not a vgpu-device-manager file: {}",
            crate::quote::quote(&e.to_string())
        ))
    })
}

/// [`translate`] of an already parsed file.
pub fn translate_spec(
    spec: &Spec,
    config: &str,
    gpus: &[Gpu],
) -> Result<(HostFile, Vec<String>), ImportError> {
    if spec.version != "v1" {
        return Err(ImportError(format!(
            "version {} is not known (v1 is)",
            spec.version
        )));
    }
    let specs = spec.configs.get(config).ok_or_else(|| {
        ImportError(format!(
            "there is no configuration {config:?}; the file has {}",
            spec.configs.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })?;
    let mut gpus: Vec<&Gpu> = gpus.iter().filter(|g| g.vendor == 0x10de).collect();
    gpus.sort_by(|a, b| a.address.cmp(&b.address));
    let mut f = HostFile::default();
    let mut notes = Vec::new();
    for (n, s) in specs.iter().enumerate() {
        let filters: Vec<String> = match &s.device_filter {
            None => vec![],
            Some(OneOrMany::One(x)) => vec![x.clone()],
            Some(OneOrMany::Many(v)) => v.clone(),
        };
        let mut ids = Vec::new();
        for x in &filters {
            ids.push(device_id(x).ok_or_else(|| {
                ImportError(format!(
                    "entry {} of {config}: device-filter {x:?} is not a device id such as 0x1EB810DE",
                    n + 1
                ))
            })?);
        }
        let picks = |i: usize| match &s.devices {
            Devices::Word(w) => w == "all",
            Devices::Indices(v) => v.contains(&(i as u32)),
        };
        if let Devices::Word(w) = &s.devices {
            if w != "all" {
                return Err(ImportError(format!(
                    "entry {} of {config}: devices is {w:?}; it is `all` or a list of GPU indices",
                    n + 1
                )));
            }
        }
        if let Devices::Indices(v) = &s.devices {
            for i in v.iter().filter(|i| **i as usize >= gpus.len()) {
                notes.push(format!(
                    "{config}: GPU index {i} does not exist here ({} NVIDIA GPUs)",
                    gpus.len()
                ));
            }
        }
        for (i, g) in gpus.iter().enumerate() {
            if !picks(i) || !(ids.is_empty() || ids.contains(&(g.device, g.vendor))) {
                continue;
            }
            let select = Selector {
                parents: vec![g.address.clone()],
                ..Selector::default()
            };
            match &g.kind {
                GpuKind::Mdev(types) => {
                    for (name, count) in &s.vgpu_devices {
                        match types.iter().find(|(_, t)| short(t) == short(name)) {
                            Some((id, _)) => f.mdev.push(MdevEntry {
                                select: select.clone(),
                                mdev_type: id.clone(),
                                count: *count,
                                start: StartPolicy::Auto,
                                attrs: vec![],
                            }),
                            None => notes.push(format!(
                                "{config}: GPU {i} ({}) offers no type {name}",
                                g.address
                            )),
                        }
                    }
                }
                GpuKind::Sriov { total_vfs, types } => {
                    let mut vf_types = Vec::new();
                    for (name, count) in &s.vgpu_devices {
                        match types.iter().find(|t| short(t) == short(name)) {
                            Some(t) => vf_types.push(VfTypes {
                                type_name: t.clone(),
                                count: *count,
                            }),
                            None => notes.push(format!(
                                "{config}: GPU {i} ({}) offers no type {name}",
                                g.address
                            )),
                        }
                    }
                    let asked: u64 = vf_types.iter().map(|t| u64::from(t.count)).sum();
                    if asked > u64::from(*total_vfs) {
                        return Err(ImportError(format!(
                            "{config}: GPU {i} ({}) has {total_vfs} VFs; the configuration asks for {asked} vGPUs",
                            g.address
                        )));
                    }
                    f.sriov.push(SriovEntry {
                        select,
                        numvfs: *total_vfs,
                        types: vf_types,
                        start: StartPolicy::Auto,
                    });
                }
            }
        }
    }
    // The translation keeps every rule a host file read from disk keeps
    // (a count no parent has was expanded into an allocation that aborted).
    f.check()
        .map_err(|e| ImportError(format!("{config}: {e}")))?;
    Ok((f, notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of NVIDIA/vgpu-device-manager's README, in its shape.
    const README: &str = include_str!("../testdata/vgpu-dm-t4.yaml");

    fn t4(address: &str) -> Gpu {
        Gpu {
            address: address.into(),
            vendor: 0x10de,
            device: 0x1eb8,
            kind: GpuKind::Mdev(vec![
                ("nvidia-222".parse().expect("id"), "GRID T4-1Q".into()),
                ("nvidia-223".parse().expect("id"), "GRID T4-2Q".into()),
            ]),
        }
    }

    #[test]
    fn the_readme_example_becomes_counted_mdev_entries_per_gpu() {
        let gpus = [t4("0000:5e:00.0"), t4("0000:3b:00.0")];
        let (f, notes) = translate(README, "T4-small", &gpus).expect("translate");
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(f.mdev.len(), 2);
        assert_eq!(
            f.mdev[0].select.parents,
            ["0000:3b:00.0"],
            "index 0: lowest address"
        );
        assert_eq!(
            (f.mdev[0].mdev_type.as_str(), f.mdev[0].count),
            ("nvidia-222", 16)
        );
        assert_eq!(f.mdev[1].select.parents, ["0000:5e:00.0"]);
        assert_eq!(
            (f.mdev[1].mdev_type.as_str(), f.mdev[1].count),
            ("nvidia-223", 8)
        );
        let (all, _) = translate(README, "T4-1Q", &gpus).expect("translate");
        assert_eq!(all.mdev.len(), 2, "devices: all");
    }

    #[test]
    fn sriov_gpus_filters_and_mistakes() {
        let l40s = Gpu {
            address: "0000:41:00.0".into(),
            vendor: 0x10de,
            device: 0x26b9,
            kind: GpuKind::Sriov {
                total_vfs: 16,
                types: vec!["NVIDIA L40S-4Q".into(), "NVIDIA L40S-8Q".into()],
            },
        };
        let y = "version: v1\nvgpu-configs:\n  mix:\n    - devices: all\n      device-filter: \"0x26B910DE\"\n      vgpu-devices:\n        \"L40S-4Q\": 4\n        \"L40S-8Q\": 2\n";
        let (f, _) = translate(y, "mix", &[l40s.clone(), t4("0000:3b:00.0")]).expect("translate");
        assert!(f.mdev.is_empty(), "the filter leaves the T4 out");
        assert_eq!(f.sriov.len(), 1);
        assert_eq!(f.sriov[0].numvfs, 16);
        assert_eq!(f.sriov[0].types[0].type_name, "NVIDIA L40S-4Q");
        assert_eq!(f.sriov[0].types[1].count, 2);
        let e = translate(y, "other", &[]).expect_err("no such config");
        assert!(
            e.0.contains("no configuration \"other\"") && e.0.contains("mix"),
            "{e}"
        );
        let e = translate("version: v2\nvgpu-configs: {}\n", "x", &[]).expect_err("version");
        assert!(e.0.contains("version v2"), "{e}");
        let e = translate(
            "version: v1\nvgpu-configs:\n  x:\n    - devices: some\n      vgpu-devices: {}\n",
            "x",
            &[],
        )
        .expect_err("devices");
        assert!(e.0.contains("`all` or a list"), "{e}");
        // A count of 4000000000 aborted the process when expanded; two that
        // wrap past u32 passed the VF check.
        for (gpu, counts) in [
            (t4("0000:3b:00.0"), "\"T4-1Q\": 4000000000"),
            (l40s.clone(), "\"L40S-4Q\": 4000000000"),
            (
                l40s.clone(),
                "\"L40S-4Q\": 4294967295\n        \"L40S-8Q\": 2",
            ),
        ] {
            let y = format!("version: v1\nvgpu-configs:\n  big:\n    - devices: all\n      vgpu-devices:\n        {counts}\n");
            let e = translate(&y, "big", &[gpu]).expect_err("too many");
            assert!(
                e.0.contains("4000000000") || e.0.contains("4294967297"),
                "{counts}: {e}"
            );
        }
        let (_, notes) = translate(README, "T4-small", &[t4("0000:3b:00.0")]).expect("one GPU");
        assert_eq!(
            notes,
            ["T4-small: GPU index 1 does not exist here (1 NVIDIA GPUs)"]
        );
    }
}
