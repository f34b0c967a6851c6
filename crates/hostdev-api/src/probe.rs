//! Probes: what a device answers when opened as QEMU opens it.
//!
//! Owns: serde shapes only. Must not: open devices.

use crate::ops::op;
use crate::Kind;
use hostdev_model::pci::PciAddress;
use hostdev_model::probe::{DriverIdentity, Probe};
use hostdev_model::Uuid;
use hostdev_model::{ParentName, TypeId};
use serde::{Deserialize, Serialize};

/// The device to probe: an mdev's UUID, or the PCI address of a function
/// bound to a VFIO driver (an NVIDIA vGPU VF under its vendor VFIO driver).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum ProbeTarget {
    /// A mediated device.
    Mdev(Uuid),
    /// A PCI function.
    Pci(PciAddress),
}

/// Probe one existing device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProbeQuery {
    /// The device.
    pub device: ProbeTarget,
}

/// What a device answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
    /// The driver the device is bound to.
    pub driver: Option<String>,
    /// What the answer depends on besides the type (an mdev's driver, its
    /// module's versions, the kernel): the probe cache's key.
    pub identity: Option<DriverIdentity>,
    /// The answers.
    pub probe: Probe,
    /// Set when the device could not be opened (a VM holds it) and the
    /// answer is the cached one for its type, driver and kernel.
    pub cached: Option<CachedNote>,
    /// What went wrong besides, without spoiling the answer (the cache could
    /// not be written).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Where a cached answer came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CachedNote {
    /// Unix seconds when it was probed.
    pub at: i64,
    /// Its age in seconds.
    pub age_secs: u64,
    /// Why the device itself was not asked.
    pub why: String,
}

/// Probe a type: create a transient device of it, probe, remove it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProbeTypeRequest {
    /// The parent.
    pub parent: ParentName,
    /// The type.
    pub mdev_type: TypeId,
}

// A POST, so root's alone: a probe holds the device's group for a moment,
// and a VM starting at that instant could not open it.
op!(ProbeQuery => ProbeReport, Post, "/v1/probe", "What a device can do: device API, regions, irqs, display, migration (VFIO); opens the device for a moment.");
op!(ProbeTypeRequest => ProbeReport, Post, "/v1/probe/type", "What a type can do: a transient device made, probed and removed.");
