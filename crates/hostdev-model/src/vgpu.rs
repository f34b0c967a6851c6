//! NVIDIA vGPU on SR-IOV virtual functions (vendor-specific VFIO, no mdev):
//! the `creatable_vgpu_types` format, and the definitions
//! hostdev keeps in `/etc/hostdev/vgpu.d/` and `/etc/hostdev/sriov.d/`.
//!
//! Owns: parsing and rendering. Must not: read sysfs or files.

use crate::pci::PciAddress;
use serde::{Deserialize, Serialize};

/// One creatable vGPU type of a VF: its card-local id and its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct VgpuType {
    /// Card-local id: never look it up in another card's list.
    pub id: u32,
    /// Name, e.g. `NVIDIA L40S-4Q`.
    pub name: String,
}

/// A malformed `creatable_vgpu_types` file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line} of creatable_vgpu_types is not 'ID : name': {text:?}")]
pub struct TypeListError {
    /// 1-based line number.
    pub line: usize,
    /// The line.
    pub text: String,
}

/// The PF driver of NVIDIA's vGPU host driver: a PF it drives carries
/// `nvidia/` on its VFs. Another SR-IOV PF (a NIC's, an `igb`) is not a
/// vGPU PF, whatever its VFs are.
pub const VGPU_PF_DRIVER: &str = "nvidia";

/// Whether a PF with this bound driver is one whose VFs take vGPU types.
pub fn is_vgpu_pf(driver: Option<&str>) -> bool {
    driver == Some(VGPU_PF_DRIVER)
}

/// Parses `creatable_vgpu_types`: a header `ID    : vGPU Name`, then
/// `1428 : NVIDIA H200X-141C` lines; only the header when nothing fits.
pub fn parse_creatable(text: &str) -> Result<Vec<VgpuType>, TypeListError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || (i == 0 && t.starts_with("ID")) {
            continue;
        }
        let bad = || TypeListError {
            line: i + 1,
            text: line.to_string(),
        };
        let (id, name) = t.split_once(':').ok_or_else(bad)?;
        let id: u32 = id.trim().parse().map_err(|_| bad())?;
        let name = name.trim();
        if name.is_empty() {
            return Err(bad());
        }
        out.push(VgpuType {
            id,
            name: name.to_string(),
        });
    }
    Ok(out)
}

/// Resolves what the user typed (an id or a name) against *this VF's* list.
pub fn resolve_type<'a>(list: &'a [VgpuType], input: &str) -> Option<&'a VgpuType> {
    match input.trim().parse::<u32>() {
        Ok(id) => list.iter().find(|t| t.id == id),
        Err(_) => list
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(input.trim())),
    }
}

pub use crate::config::StartPolicy;

/// A vGPU on one VF: `/etc/hostdev/vgpu.d/<vf>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VgpuDefinition {
    /// The VF.
    pub vf: PciAddress,
    /// Its PF.
    pub pf: PciAddress,
    /// Its index among the PF's VFs (`virtfnN`): restore enables at least N+1 VFs.
    pub vf_index: u32,
    /// The type id on this card.
    pub type_id: u32,
    /// The type name (checked at restore: a renumbering driver is noticed).
    pub type_name: String,
    /// Start policy.
    #[serde(default)]
    pub start: StartPolicy,
}

/// How many VFs a PF should have: `/etc/hostdev/sriov.d/<pf>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SriovDefinition {
    /// The PF.
    pub pf: PciAddress,
    /// `sriov_numvfs` to set.
    pub numvfs: u32,
    /// Start policy.
    #[serde(default)]
    pub start: StartPolicy,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_type_list_and_its_header_only_form() {
        let text = "ID    : vGPU Name\n1428 : NVIDIA H200X-141C\n1150  : NVIDIA L40S-4Q\n";
        let l = parse_creatable(text).unwrap();
        assert_eq!(
            l,
            vec![
                VgpuType {
                    id: 1428,
                    name: "NVIDIA H200X-141C".into()
                },
                VgpuType {
                    id: 1150,
                    name: "NVIDIA L40S-4Q".into()
                },
            ]
        );
        assert!(parse_creatable("ID    : vGPU Name\n").unwrap().is_empty());
        assert!(parse_creatable("").unwrap().is_empty());
        assert_eq!(
            parse_creatable("ID : vGPU Name\nnot a line\n")
                .unwrap_err()
                .line,
            2
        );
        assert!(parse_creatable("ID : x\nabc : name\n").is_err());
        assert!(parse_creatable("ID : x\n12 :   \n").is_err());
    }

    #[test]
    fn ids_and_names_resolve_only_in_the_given_list() {
        let a = parse_creatable("ID : n\n1150 : NVIDIA L40S-4Q\n").unwrap();
        let b = parse_creatable("ID : n\n1150 : NVIDIA H100-80C\n").unwrap();
        assert_eq!(resolve_type(&a, "1150").unwrap().name, "NVIDIA L40S-4Q");
        assert_eq!(resolve_type(&b, "1150").unwrap().name, "NVIDIA H100-80C");
        assert_eq!(resolve_type(&a, "nvidia l40s-4q").unwrap().id, 1150);
        assert!(resolve_type(&b, "NVIDIA L40S-4Q").is_none());
    }

    #[test]
    fn definitions_round_trip_and_refuse_junk() {
        let d = VgpuDefinition {
            vf: "0000:41:00.4".parse().unwrap(),
            pf: "0000:41:00.0".parse().unwrap(),
            vf_index: 0,
            type_id: 1150,
            type_name: "NVIDIA L40S-4Q".into(),
            start: StartPolicy::Auto,
        };
        let j = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<VgpuDefinition>(&j).unwrap(), d);
        assert!(
            serde_json::from_str::<VgpuDefinition>(&j.replace("0000:41:00.4", "../x")).is_err()
        );
    }
}
