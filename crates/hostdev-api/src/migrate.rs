//! Migration: the spec a source exports and the verdict a destination gives.
//!
//! Owns: serde shapes only. Must not: judge (hostdev-model's rules do).

use crate::ops::op;
use hostdev_model::migrate::{DriverPolicy, MigrationSpec, Reason, Verdict};
use hostdev_model::Uuid;
use serde::{Deserialize, Serialize};

/// Export what a destination must recreate for this device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrateExportRequest {
    /// The source mdev.
    pub device: Uuid,
}

/// Judge a destination device against a source's spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrateCheckRequest {
    /// The source's spec.
    pub spec: MigrationSpec,
    /// The destination mdev.
    pub device: Uuid,
    /// How strictly the vendor driver must match.
    #[serde(default)]
    pub driver_policy: DriverPolicy,
}

/// The verdict and each rule's finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    /// `compatible`, `compatible-with-changes` or `incompatible`.
    pub verdict: Verdict,
    /// One per rule.
    pub reasons: Vec<Reason>,
}

/// Make the destination device a spec describes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigratePrepareRequest {
    /// The source's spec.
    pub spec: MigrationSpec,
    /// The UUID to give it (the source's, to keep the domain XML); new when
    /// absent.
    #[serde(default)]
    pub uuid: Option<Uuid>,
    /// Say what would be made, make nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// The destination device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prepared {
    /// Its UUID.
    pub id: String,
    /// The parent it is (or would be) on.
    pub parent: String,
    /// Its type.
    #[serde(rename = "type")]
    pub type_id: String,
    /// Made now (false with `dry_run`).
    pub created: bool,
    /// The libvirt element for `virsh migrate --xml`, with what QEMU must be
    /// told as a comment.
    pub libvirt: String,
}

op!(MigratePrepareRequest => Prepared, Post, "/v1/migrate/prepare", "Make (transient) the destination device a spec describes.");
op!(MigrateExportRequest => MigrationSpec, Post, "/v1/migrate/export", "What a destination must recreate for a device (opens it for a moment, or answers from the probe cache while a VM holds it).");
op!(MigrateCheckRequest => CheckReport, Post, "/v1/migrate/check", "Judge a destination device against a source's spec.");
