//! Probes: what a device answers when opened as QEMU opens it.
//!
//! Owns: serde shapes only. Must not: open devices.

use crate::ops::op;
use crate::Kind;
use hostdev_model::probe::Probe;
use hostdev_model::vgpu::PciAddress;
use hostdev_model::Uuid;
use serde::{Deserialize, Serialize};

/// The device to probe: an mdev's UUID, or the PCI address of a function
/// bound to a VFIO driver (an NVIDIA vGPU VF under its vendor VFIO driver).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ProbeTarget {
    /// A mediated device.
    Mdev(Uuid),
    /// A PCI function.
    Pci(PciAddress),
}

/// Probe one existing device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeQuery {
    /// The device.
    pub device: ProbeTarget,
}

/// What a device answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// The device: UUID or PCI address.
    pub id: String,
    /// `mdev`; `null` for a PCI function.
    pub kind: Option<Kind>,
    /// An mdev's parent.
    pub parent: Option<String>,
    /// An mdev's type id.
    #[serde(rename = "type")]
    pub type_id: Option<String>,
    /// The driver the device (an mdev: its parent) is bound to.
    pub driver: Option<String>,
    /// The answers.
    pub probe: Probe,
}

op!(ProbeQuery => ProbeReport, Get, "/v1/probe", "What a device can do: device API, regions, irqs, display, migration (VFIO).");
