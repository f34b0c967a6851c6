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

op!(MigrateExportRequest => MigrationSpec, Post, "/v1/migrate/export", "What a destination must recreate for a device (opens it for a moment, or answers from the probe cache while a VM holds it).");
op!(MigrateCheckRequest => CheckReport, Post, "/v1/migrate/check", "Judge a destination device against a source's spec.");
