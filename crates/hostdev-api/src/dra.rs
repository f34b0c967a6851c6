//! What a Kubernetes DRA driver asks hostdevd: what this node can offer
//! ([`DraResourcesQuery`] → [`DraResources`]: counter sets and devices the
//! driver copies into ResourceSlices), and preparing and unpreparing a
//! claim's allocated devices ([`DraPrepareRequest`], [`DraUnprepareRequest`]),
//! keyed by the claim's UID and remembered by the daemon, not the driver.
//!
//! Owns: the shapes only, with the limits Kubernetes' `resource.k8s.io/v1`
//! puts on names. Must not: hold the decisions (the core's `dra` module
//! makes them) or name any Kubernetes library type (the driver maps these
//! onto k8s-openapi's).

use crate::ops::op;
use crate::{Kind, Uuid};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The longest device, counter-set and counter name (a DNS label).
pub const MAX_NAME: usize = 63;

/// Whether `s` is a DNS label as Kubernetes wants device, counter-set,
/// counter and request names: 1–63 lower-case letters, digits and `-`,
/// starting and ending with a letter or digit.
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_NAME
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// One attribute value, as `resource.k8s.io/v1` types them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum DraValue {
    /// A string (at most 64 bytes in a slice).
    String(String),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// A semantic version.
    Version(String),
}

/// A shared counter set: capacity the devices that name it draw on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DraCounterSet {
    /// Its name (a DNS label, unique in the node's pool).
    pub name: String,
    /// Each counter's value.
    pub counters: BTreeMap<String, u64>,
}

/// What one device takes from one counter set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DraConsumption {
    /// The counter set.
    pub counter_set: String,
    /// How much of each counter.
    pub counters: BTreeMap<String, u64>,
    /// Devices drawing on one set are put together only when their groups
    /// overlap (`compatibilityGroups`, at most 2): one type at a time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// One device the node offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DraDevice {
    /// Its name (a DNS label, unique in the node's pool).
    pub name: String,
    /// What prepare makes of it.
    pub kind: Kind,
    /// What claims select on (CEL): unqualified names belong to the driver.
    pub attributes: BTreeMap<String, DraValue>,
    /// The counters it draws on (at most 2 sets).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consumes: Vec<DraConsumption>,
}

/// What the node can offer now (`GET /v1/dra/resources`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DraResourcesQuery {}

/// Counter sets and devices, ordered by name, and why anything present was
/// left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DraResources {
    /// Counter sets (one per mdev parent, one per NVIDIA PF's VFs, up to 32).
    pub counter_sets: Vec<DraCounterSet>,
    /// Devices.
    pub devices: Vec<DraDevice>,
    /// What was not published and why (a parent whose capacity is unknown,
    /// a PF without VFs), one sentence each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The claim a prepare or unprepare is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DraClaim {
    /// The claim's UID (what the record is keyed by).
    pub uid: Uuid,
    /// Its namespace (for messages).
    #[serde(default)]
    pub namespace: String,
    /// Its name (for messages).
    #[serde(default)]
    pub name: String,
}

/// One allocated device of a claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DraAllocated {
    /// The claim's request it answers (a DNS label, or `request/sub`).
    pub request: String,
    /// The published device's name.
    pub device: String,
    /// What the claim's (or its class's) opaque parameters ask of this
    /// device; checked before anything is made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<DraDeviceConfig>,
}

/// The settings a claim may give one device through opaque parameters
/// (`apiVersion: hostdev.io/v1alpha1`, `kind: DeviceConfig`): they apply to
/// vDPA network devices only; an mdev or a VF's vGPU takes none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DraDeviceConfig {
    /// A unicast MAC address, `02:00:00:00:00:01`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// The MTU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u16>,
    /// Queue pairs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queues: Option<u16>,
}

impl DraDeviceConfig {
    /// Whether it asks for nothing.
    pub fn is_empty(&self) -> bool {
        self.mac.is_none() && self.mtu.is_none() && self.queues.is_none()
    }
}

/// Make the devices allocated to a claim (`POST /v1/dra/prepare`):
/// idempotent by claim UID; recorded before the kernel is asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DraPrepareRequest {
    /// The claim.
    pub claim: DraClaim,
    /// What the scheduler allocated on this node (at most 32).
    pub devices: Vec<DraAllocated>,
}

/// A device node a container gets: `path` inside it, `host_path` on the host
/// (they differ only under a root prefix, as in the simulated lab).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DraNode {
    /// Path in the container.
    pub path: String,
    /// Path on the host.
    pub host_path: String,
}

/// One prepared device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DraPreparedDevice {
    /// The request it answers.
    pub request: String,
    /// The published device.
    pub device: String,
    /// What was made.
    pub kind: Kind,
    /// The made device: an mdev's UUID, a VF's PCI address, a vDPA name.
    pub id: String,
    /// Device nodes to inject (the CDI spec's `deviceNodes`).
    pub nodes: Vec<DraNode>,
    /// The attributes for the device metadata file (KEP-5304): `mdevUUID`
    /// for an mdev, `resource.kubernetes.io/pciBusID` for a VF.
    pub metadata: BTreeMap<String, DraValue>,
}

/// What a prepare made (or had made, asked again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DraPrepared {
    /// The claim's UID.
    pub uid: Uuid,
    /// Each device, in the request's order.
    pub devices: Vec<DraPreparedDevice>,
    /// Whether an earlier call had prepared the claim and this one answered
    /// from its record (the kubelet asks again after its own restart or the
    /// node's): a caller whose own step fails afterwards must not undo it,
    /// as a running pod may use its devices.
    #[serde(default)]
    pub again: bool,
}

/// Remove what prepare made for a claim (`POST /v1/dra/unprepare`):
/// idempotent; a claim never prepared is done at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DraUnprepareRequest {
    /// The claim.
    pub claim: DraClaim,
}

/// What an unprepare removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DraUnprepared {
    /// The removed devices' ids (empty: nothing was prepared).
    pub removed: Vec<String>,
}

/// The claims this node has prepared, and those whose unprepare is
/// unfinished (`GET /v1/dra/claims`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DraClaimsQuery {}

/// One prepared claim (or one whose unprepare is unfinished: a device held
/// through VFIO, a removal that failed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DraClaimRow {
    /// The claim.
    pub claim: DraClaim,
    /// Its devices.
    pub devices: Vec<DraPreparedDevice>,
}

/// The health of every device prepared for a claim (`GET /v1/dra/health`):
/// what the driver streams to the kubelet, which shows it in the pod's
/// status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DraHealthQuery {}

/// Whether a prepared device is there as it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DraHealthStatus {
    /// It is there as prepare made it.
    Healthy,
    /// It is gone, or changed (its parent went, its VF took another type).
    Unhealthy,
    /// hostdevd could not tell (a kernel read failed).
    Unknown,
}

/// One prepared device's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DraDeviceHealth {
    /// The claim it was prepared for.
    pub claim: DraClaim,
    /// The request it answers.
    pub request: String,
    /// The published device.
    pub device: String,
    /// What was made.
    pub kind: Kind,
    /// The made device: an mdev's UUID, a VF's PCI address, a vDPA name.
    pub id: String,
    /// Its health.
    pub health: DraHealthStatus,
    /// Why it is not healthy, one sentence (empty when healthy).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

op!(DraResourcesQuery => DraResources, Get, "/v1/dra/resources",
    "What this node offers a Kubernetes DRA driver: counter sets and devices.");
op!(DraPrepareRequest => DraPrepared, Post, "/v1/dra/prepare",
    "Make the devices allocated to a claim (idempotent by claim UID).");
op!(DraUnprepareRequest => DraUnprepared, Post, "/v1/dra/unprepare",
    "Remove what prepare made for a claim (idempotent).");
op!(DraClaimsQuery => Vec<DraClaimRow>, Get, "/v1/dra/claims",
    "The claims prepared on this node, and those whose unprepare is unfinished, with their devices.");
op!(DraHealthQuery => Vec<DraDeviceHealth>, Get, "/v1/dra/health",
    "The health of every device prepared for a claim: there as made, gone or changed.");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        for ok in ["a", "mdev-0000-3b-00-0-nvidia-222-0", &"a".repeat(63)] {
            assert!(is_dns_label(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"a".repeat(64), "a/b"] {
            assert!(!is_dns_label(bad), "{bad}");
        }
    }

    #[test]
    fn values_are_tagged_like_kubernetes() {
        let v = DraValue::Int(3);
        assert_eq!(serde_json::to_string(&v).unwrap(), r#"{"int":3}"#);
        assert!(serde_json::from_str::<DraValue>(r#"{"int":3,"x":1}"#).is_err());
    }
}
