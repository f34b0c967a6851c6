//! NVIDIA vGPUs on SR-IOV virtual functions: PF VF counts, the types a PF's
//! VFs can take, per-VF definitions, starting and stopping a type, and the
//! libvirt element for a VF.
//!
//! Owns: serde shapes only. Must not: read sysfs or decide (hostdev-core's
//! `Vgpus` does).

use crate::error::Holder;
use crate::ops::{op, Done};
use crate::report::{PfTypes, Problem};
use crate::Target;
use hostdev_model::pci::PciAddress;
use hostdev_model::vgpu::VgpuDefinition;
use hostdev_model::StartPolicy;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The vGPU types each PF's VFs can take now (ids are card-local).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VgpuTypesQuery {
    /// Only this PF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pf: Option<PciAddress>,
}

/// Every VF of every NVIDIA PF with its current and defined type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VgpuListQuery {
    /// Only VFs with a definition.
    #[serde(default)]
    pub defined: bool,
}

/// One VF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VgpuRow {
    /// The VF.
    pub vf: PciAddress,
    /// Its PF.
    pub pf: PciAddress,
    /// The type id it carries now: `0` none, absent when the VF itself is
    /// not there (its PF's VFs are not enabled).
    pub current: Option<u32>,
    /// Its definition.
    pub definition: Option<VgpuDefinition>,
}

/// What `vgpu list` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VgpuListing {
    /// VFs in PCI order.
    pub rows: Vec<VgpuRow>,
    /// Definition files that were skipped.
    pub problems: Vec<Problem>,
}

/// Where a vGPU goes: one VF, or any free VF of a PF (hostdev picks and
/// records which).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VgpuSlot {
    /// This VF.
    Vf(PciAddress),
    /// A free VF of this PF.
    Pf(PciAddress),
}

/// Define the vGPU type of a VF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VgpuDefineRequest {
    /// The VF, or a PF to pick a free VF of.
    pub slot: VgpuSlot,
    /// The type: its id on this card, or its name (`NVIDIA L40S-4Q`).
    #[serde(rename = "type")]
    #[schemars(length(min = 1, max = 256))]
    pub type_: String,
    /// Restore at boot.
    #[serde(default)]
    pub start: StartPolicy,
}

/// Remove a VF's vGPU definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VgpuUndefineRequest {
    /// The VF.
    pub vf: PciAddress,
}

/// Write a VF's defined type to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VgpuStartRequest {
    /// The VF.
    pub vf: PciAddress,
}

/// Whether a start made something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StartOutcome {
    /// Made now.
    Started,
    /// It was there already, as defined; left alone.
    AlreadyRunning,
}

/// What a start did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VgpuStarted {
    /// The VF.
    pub vf: PciAddress,
    /// Made now, or there already.
    pub outcome: StartOutcome,
}

/// Clear a VF's type (refused while a VM uses it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VgpuStopRequest {
    /// The VF.
    pub vf: PciAddress,
}

/// Define (and set now) how many VFs a PF has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PfEnableRequest {
    /// The PF.
    pub pf: PciAddress,
    /// `sriov_numvfs`.
    pub numvfs: u32,
    /// Restore at boot.
    #[serde(default)]
    pub start: StartPolicy,
}

/// Remove a PF's VF-count definition and set its VFs to 0 (refused while
/// a VF carries a type).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PfDisableRequest {
    /// The PF.
    pub pf: PciAddress,
}

/// A VF's libvirt `<hostdev>` element.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VgpuLibvirtQuery {
    /// The VF.
    pub vf: PciAddress,
}

/// A libvirt element, as XML text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LibvirtElement {
    /// The element (ends with a newline).
    pub xml: String,
}

op!(VgpuTypesQuery => Vec<PfTypes>, Get, "/v1/vgpu/types", "The vGPU types each PF's VFs can take now (ids are card-local).");
op!(VgpuListQuery => VgpuListing, Get, "/v1/vgpu/devices", "Every VF of every NVIDIA PF with its current and defined type.");
op!(VgpuDefineRequest => VgpuDefinition, Post, "/v1/vgpu/define", "Define the vGPU type of a VF, or of a free VF of a PF that hostdev picks.",
concerns = |r| Some(match &r.slot {
    VgpuSlot::Vf(vf) => Target::Vgpu { vf: vf.clone() }.into(),
    VgpuSlot::Pf(pf) => Holder::Pf { pf: pf.clone() }.into(),
}));
op!(VgpuUndefineRequest => Done, Post, "/v1/vgpu/undefine", "Remove a VF's vGPU definition.",
    concerns = |r| Some(Target::Vgpu { vf: r.vf.clone() }.into()));
op!(VgpuStartRequest => VgpuStarted, Post, "/v1/vgpu/start", "Write a VF's defined type to it.",
    concerns = |r| Some(Target::Vgpu { vf: r.vf.clone() }.into()));
op!(VgpuStopRequest => Done, Post, "/v1/vgpu/stop", "Clear a VF's type (refused while a VM uses it).",
    concerns = |r| Some(Target::Vgpu { vf: r.vf.clone() }.into()));
op!(PfEnableRequest => Done, Post, "/v1/vgpu/pf/enable", "Define (and set now) how many VFs a PF has.",
    concerns = |r| Some(Holder::Pf { pf: r.pf.clone() }.into()));
op!(PfDisableRequest => Done, Post, "/v1/vgpu/pf/disable", "Remove a PF's VF count definition and set its VFs to 0.",
    concerns = |r| Some(Holder::Pf { pf: r.pf.clone() }.into()));
op!(VgpuLibvirtQuery => LibvirtElement, Get, "/v1/vgpu/libvirt", "A VF's libvirt <hostdev> element (refused for a VF without a type).",
    concerns = |r| Some(Target::Vgpu { vf: r.vf.clone() }.into()));
