//! Profiles: what simulated hardware a host has, as TOML (schema in
//! docs/simulator.md). Built-in profiles live in `profiles/*.toml`.
//!
//! Owns: parsing and validating profiles. Must not: hold run-time state.

use serde::Deserialize;

/// A whole simulated host.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// One line saying what it is.
    #[serde(default)]
    pub description: String,
    /// mdev parents.
    #[serde(default, rename = "parent")]
    pub parents: Vec<ParentProfile>,
    /// SR-IOV physical functions (NVIDIA vGPU without mdev).
    #[serde(default, rename = "sriov")]
    pub sriov: Vec<SriovProfile>,
    /// Injected failures.
    #[serde(default, rename = "fault")]
    pub faults: Vec<Fault>,
    /// Loaded modules that declare versions (`/sys/module/<name>/`); a PCI
    /// driver of the same name links to its module.
    #[serde(default, rename = "module")]
    pub modules: Vec<ModuleProfile>,
}

/// A loaded kernel module.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleProfile {
    /// Its name (`nvidia`).
    pub name: String,
    /// `version`.
    pub version: Option<String>,
    /// `srcversion`.
    pub srcversion: Option<String>,
}

/// How a parent counts capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Each type has its own maximum (mtty, mdpy).
    #[default]
    PerType,
    /// Only one type at a time per parent (NVIDIA mdev vGPUs).
    OneType,
    /// One budget shared by all types (GVT-g, mbochs).
    SharedBudget,
}

/// An mdev parent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParentProfile {
    /// Device name (a PCI address, or a virtual name such as `mtty`).
    pub name: String,
    /// Path under /sys/devices (default: `pci0000:00/<name>` for PCI
    /// addresses, `virtual/<name>/<name>` otherwise).
    pub devpath: Option<String>,
    /// PCI vendor id (`0x10de`), for PCI parents.
    pub vendor: Option<String>,
    /// PCI device id.
    pub device: Option<String>,
    /// NUMA node.
    #[serde(default)]
    pub numa_node: i32,
    /// Bound driver name.
    pub driver: Option<String>,
    /// Capacity rule.
    #[serde(default)]
    pub policy: Policy,
    /// Budget units for `shared-budget`.
    #[serde(default)]
    pub budget: u32,
    /// Milliseconds a create takes.
    #[serde(default)]
    pub create_latency_ms: u64,
    /// Milliseconds a remove takes.
    #[serde(default)]
    pub remove_latency_ms: u64,
    /// The parent registers this long after start or reboot (driver still loading).
    #[serde(default)]
    pub appear_after_ms: u64,
    /// errno for a create beyond capacity (`EUSERS` like the samples, `EINVAL`, `ENOSPC`).
    pub full_errno: Option<String>,
    /// Types.
    #[serde(rename = "type")]
    pub types: Vec<TypeProfile>,
}

/// One mdev type.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypeProfile {
    /// Type id (directory name).
    pub id: String,
    /// `name`.
    pub name: Option<String>,
    /// `description`.
    pub description: Option<String>,
    /// `device_api`.
    #[serde(default = "vfio_pci")]
    pub device_api: String,
    /// Maximum instances (per-type, one-type).
    #[serde(default)]
    pub max: u32,
    /// Budget units per instance (shared-budget).
    #[serde(default)]
    pub cost: u32,
    /// Writable vendor attributes devices of this type have.
    #[serde(default)]
    pub attrs: Vec<String>,
    /// Validation of attributes: `ap-matrix` (vfio-ap) or none.
    pub attr_rules: Option<String>,
}

fn vfio_pci() -> String {
    "vfio-pci".into()
}

/// An SR-IOV physical function with NVIDIA's vendor-specific VFIO interface.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SriovProfile {
    /// PCI address of the PF.
    pub address: String,
    /// PCI vendor id.
    #[serde(default = "nvidia")]
    pub vendor: String,
    /// PCI device id.
    pub device: Option<String>,
    /// NUMA node.
    #[serde(default)]
    pub numa_node: i32,
    /// `sriov_totalvfs`.
    pub total_vfs: u32,
    /// Frame buffer to share among VFs, in MiB.
    pub framebuffer_mb: u32,
    /// The driver loads (and the PF appears) this long after start or reboot.
    #[serde(default)]
    pub appear_after_ms: u64,
    /// After `sriov_numvfs` is written, VFs' `nvidia/` directories appear this much later.
    #[serde(default)]
    pub vf_ready_ms: u64,
    /// vGPU types with this card's own numeric ids.
    #[serde(rename = "vgpu_type")]
    pub vgpu_types: Vec<VgpuTypeProfile>,
}

fn nvidia() -> String {
    "0x10de".into()
}

/// A vGPU type of an SR-IOV card.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VgpuTypeProfile {
    /// Card-local numeric id.
    pub id: u32,
    /// Name (`NVIDIA L40S-4Q`).
    pub name: String,
    /// Frame buffer per VF, MiB.
    pub framebuffer_mb: u32,
}

/// An injected failure.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// `create`, `remove`, `attr` (a device attribute write), `vgpu-type`
    /// (setting a VF's type) or `vgpu-clear` (clearing it: a VM uses it).
    pub op: String,
    /// Only on this parent (or PF address).
    pub parent: Option<String>,
    /// Only for this type (create) or attribute name (attr).
    pub name: Option<String>,
    /// The errno name, e.g. `ENOSPC`, `EBUSY`, `EIO`.
    pub errno: String,
    /// How many times it fires (0 = always).
    #[serde(default)]
    pub times: u32,
    /// How many matching operations succeed before it first fires (a
    /// failure part way through a batch).
    #[serde(default)]
    pub after: u32,
}

/// Parses a profile.
pub fn parse(text: &str) -> Result<Profile, toml::de::Error> {
    toml::from_str(text)
}

/// The built-in profiles: (name, TOML).
pub const BUILTIN: &[(&str, &str)] = &[
    ("demo", include_str!("../profiles/demo.toml")),
    ("large", include_str!("../profiles/large.toml")),
    (
        "nvidia-sriov",
        include_str!("../profiles/nvidia-sriov.toml"),
    ),
    ("vfio-ap", include_str!("../profiles/vfio-ap.toml")),
    ("samples", include_str!("../profiles/samples.toml")),
];

/// An errno name as a number.
pub fn errno(name: &str) -> Option<i32> {
    Some(match name {
        "EPERM" => 1,
        "EACCES" => 13,
        "ERANGE" => 34,
        "ENOENT" => 2,
        "EIO" => 5,
        "EBUSY" => 16,
        "EEXIST" => 17,
        "ENODEV" => 19,
        "EINVAL" => 22,
        "ENOSPC" => 28,
        "EUSERS" => 87,
        "EOPNOTSUPP" => 95,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profiles_parse() {
        for (name, text) in BUILTIN {
            let p = parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!p.description.is_empty(), "{name}");
            for f in &p.faults {
                assert!(errno(&f.errno).is_some(), "{name}: {}", f.errno);
            }
        }
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(parse("[[parent]]\nname = \"x\"\ntypo = 1\ntype = []\n").is_err());
    }
}
