//! Migration: the spec a source exports and the verdict a destination gives.
//!
//! Owns: serde shapes only. Must not: judge (hostdev-model's rules do).

use crate::ops::op;
use crate::probe::ProbeTarget;
use hostdev_model::migrate::{DriverPolicy, MigrationSpec, Reason, Verdict};
use hostdev_model::pci::PciAddress;
use hostdev_model::vdpa::{MgmtDevName, VdpaName};
use hostdev_model::Uuid;

/// The source device: an mdev's UUID, an NVIDIA vGPU VF's PCI address or
/// a vDPA device's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum ExportTarget {
    /// A mediated device.
    Mdev(Uuid),
    /// A VF with a vGPU type.
    Vgpu(PciAddress),
    /// A vDPA device.
    Vdpa(VdpaName),
}
use serde::{Deserialize, Serialize};

/// Export what a destination must recreate for this device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrateExportRequest {
    /// The source device.
    pub device: ExportTarget,
}

/// Judge a destination device against a source's spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrateCheckRequest {
    /// The source's spec.
    pub spec: MigrationSpec,
    /// The destination device: an mdev (an mdev spec) or a VF (a vGPU
    /// spec). A vGPU spec without one is judged against every card's free
    /// VFs.
    #[serde(default)]
    pub device: Option<ProbeTarget>,
    /// The destination management device (a vDPA spec).
    #[serde(default)]
    pub mgmtdev: Option<MgmtDevName>,
    /// How strictly the vendor driver must match.
    #[serde(default)]
    pub driver_policy: DriverPolicy,
}

/// The verdict and each rule's finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CheckReport {
    /// `compatible`, `compatible-with-changes` or `incompatible`.
    pub verdict: Verdict,
    /// One per rule.
    pub reasons: Vec<Reason>,
}

/// Make the destination device a spec describes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MigratePrepareRequest {
    /// The source's spec.
    pub spec: MigrationSpec,
    /// The UUID to give it (an mdev spec: the source's, to keep the domain
    /// XML); new when absent.
    #[serde(default)]
    pub uuid: Option<Uuid>,
    /// Say what would be made, make nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// The destination device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Prepared {
    /// Its UUID (an mdev), VF address (a vGPU) or name (vDPA).
    pub id: String,
    /// The parent, PF or management device it is (or would be) on.
    pub parent: String,
    /// Its type (an mdev's id, a vGPU's name).
    #[serde(rename = "type")]
    pub type_id: Option<String>,
    /// Made now (false with `dry_run`).
    pub created: bool,
    /// The libvirt element for `virsh migrate --xml`, with what QEMU must be
    /// told as a comment.
    pub libvirt: String,
}

op!(MigratePrepareRequest => Prepared, Post, "/v1/migrate/prepare", "Make (transient) the destination device a spec describes.");
op!(MigrateExportRequest => MigrationSpec, Post, "/v1/migrate/export", "What a destination must recreate for a device (opens it for a moment, or answers from the probe cache while a VM holds it).");
op!(MigrateCheckRequest => CheckReport, Post, "/v1/migrate/check", "Judge a destination device against a source's spec.");
