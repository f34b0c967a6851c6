//! Pools: the requests and replies of allocating devices to consumers, and
//! of the libvirt hook that allocates at domain prepare.
//!
//! Owns: serde shapes only. Must not: decide placement or touch state.

use crate::ops::{op, Done};
use crate::Kind;
use hostdev_model::pool::PoolName;
use hostdev_model::Uuid;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;

/// Who holds a device: a VM's UUID or name, a job id — printable text of 1
/// to 256 bytes that neither starts nor ends with whitespace, without control
/// or invisible formatting characters (line breaks, bidi overrides), so that
/// it shows as what it is in tables, JSON and logs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ConsumerId(String);

/// A refused consumer id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerIdError(String);

impl fmt::Display for ConsumerIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "'{}' is not a consumer id: use 1 to 256 bytes of printable text that neither starts nor ends with whitespace",
            self.0
        )
    }
}
impl std::error::Error for ConsumerIdError {}

impl ConsumerId {
    /// Validates `s`.
    pub fn new(s: impl Into<String>) -> Result<ConsumerId, ConsumerIdError> {
        let s = s.into();
        let invisible = |c: char| {
            c.is_control()
                || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}')
        };
        let edge = |c: Option<char>| c.is_none_or(char::is_whitespace);
        if s.len() > 256
            || edge(s.chars().next())
            || edge(s.chars().last())
            || s.chars().any(invisible)
        {
            // Quoted escaped and bounded: the id may be anything a client sent.
            let mut q: String = s.escape_debug().take(80).collect();
            if q.chars().count() < s.escape_debug().count() {
                q.push('…');
            }
            return Err(ConsumerIdError(q));
        }
        Ok(ConsumerId(s))
    }
    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl TryFrom<String> for ConsumerId {
    type Error = ConsumerIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        ConsumerId::new(s)
    }
}
impl From<ConsumerId> for String {
    fn from(c: ConsumerId) -> String {
        c.0
    }
}
impl std::str::FromStr for ConsumerId {
    type Err = ConsumerIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ConsumerId::new(s)
    }
}
impl fmt::Display for ConsumerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A pool definition file that was skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PoolProblem {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub reason: String,
}

/// Every pool (`pool list`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolListQuery {}

/// One pool in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PoolSummary {
    /// Its name.
    pub name: PoolName,
    /// What it hands out.
    pub kind: Kind,
    /// The mdev type id, vGPU type name or vDPA name pattern.
    #[serde(rename = "type")]
    pub type_label: String,
    /// `pre-created` or `on-demand`.
    pub mode: String,
    /// `spread` or `pack`.
    pub placement: String,
    /// How many members match its selector now.
    pub members: usize,
    /// How many devices it can hand out now in all (held + free).
    pub capacity: u64,
    /// How many are held (reservations included until they end).
    pub allocated: u64,
    /// How many more it can hand out now.
    pub free: u64,
}

/// Pools and skipped files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PoolList {
    /// Pools by name.
    pub pools: Vec<PoolSummary>,
    /// Unusable definition files.
    pub problems: Vec<PoolProblem>,
}

/// One pool in detail (`pool show`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolShowQuery {
    /// The pool.
    pub pool: PoolName,
}

/// A member's `free` when the kernel reports no device limit for it (a
/// vDPA management device): the pool's `limit` is what bounds it.
pub const NO_DEVICE_LIMIT: u64 = u64::MAX / 4;

/// A member as the pool sees it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MemberRow {
    /// Parent, PF or management device.
    pub name: String,
    /// How many more of the pool's devices it can take now
    /// (4611686018427387903 when the kernel reports no limit).
    pub free: u64,
    /// How many of the pool's devices it holds.
    pub held: u64,
    /// Why it takes none, when it takes none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A device the pool knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PoolDeviceRow {
    /// mdev UUID, VF address or vDPA name.
    pub id: String,
    /// The member it is on.
    pub member: String,
    /// `free`, `allocated`, `reserved`, `expired`, `creating` or `removing`.
    pub state: String,
    /// Who holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer: Option<String>,
    /// A reservation's end, unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<i64>,
}

/// `pool show`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PoolShow {
    /// The totals.
    pub summary: PoolSummary,
    /// Members by name.
    pub members: Vec<MemberRow>,
    /// Devices by member, then id.
    pub devices: Vec<PoolDeviceRow>,
    /// UUIDs bound to the pool (libvirt indirection).
    pub bindings: Vec<Uuid>,
}

/// Hand one device of `pool` to `consumer` (the same one again if it holds one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AllocateRequest {
    /// The pool.
    pub pool: PoolName,
    /// Who gets it.
    pub consumer: ConsumerId,
    /// This UUID (mdev pools): created with it on demand, or this pre-created device.
    #[serde(default)]
    pub uuid: Option<Uuid>,
    /// A reservation that ends by itself after this many seconds; allocating
    /// again without it makes it permanent.
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// A device handed out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Allocation {
    /// The pool.
    pub pool: PoolName,
    /// Who holds it.
    pub consumer: ConsumerId,
    /// mdev UUID, VF address or vDPA name.
    pub id: String,
    /// What it is.
    pub kind: Kind,
    /// The member it is on.
    pub member: String,
    /// The reservation's end, unix seconds (none: held until released).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<i64>,
    /// The consumer already held it (nothing changed).
    pub again: bool,
    /// The libvirt element that hands it to a domain.
    pub libvirt: String,
}

/// Give devices back: every device of `consumer` (in `pool`, or in every
/// pool), or one `device`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    /// Only in this pool.
    #[serde(default)]
    pub pool: Option<PoolName>,
    /// Everything this consumer holds.
    #[serde(default)]
    pub consumer: Option<ConsumerId>,
    /// This device.
    #[serde(default)]
    pub device: Option<String>,
}

/// One device given back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReleasedRow {
    /// Its pool.
    pub pool: String,
    /// The device.
    pub id: String,
    /// Who held it.
    pub consumer: String,
    /// It was removed (on-demand), not kept ready (pre-created).
    pub removed: bool,
}

/// What a release gave back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Released {
    /// Devices given back.
    pub devices: Vec<ReleasedRow>,
}

/// Bind a UUID to an on-demand pool: a domain naming it gets a device of the
/// pool created with it at prepare.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BindRequest {
    /// The pool.
    pub pool: PoolName,
    /// The UUID domains name.
    pub uuid: Uuid,
}

/// Remove a binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UnbindRequest {
    /// The UUID.
    pub uuid: Uuid,
}

/// Make state and kernel agree: undo what a killed process left half-done,
/// end reservations, free what dead consumers or vanished devices held, fill
/// pre-created pools.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReconcileRequest {}

/// One thing reconcile did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReconcileRow {
    /// The pool.
    pub pool: String,
    /// The device.
    pub id: String,
    /// `undone`, `expired`, `freed`, `restarted`, `created`, `removed` or `failed`.
    pub action: String,
    /// Why, as a sentence.
    pub why: String,
}

/// What reconcile did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReconcileReport {
    /// Every change, or failure to change.
    pub rows: Vec<ReconcileRow>,
    /// Unusable definition files.
    pub problems: Vec<PoolProblem>,
}

/// A domain is being prepared (libvirt's qemu hook `prepare begin`): every
/// mdev UUID it names that belongs to a pool gets its device, and what a
/// migration reserved for it here (a device it names) becomes its
/// allocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainPrepareRequest {
    /// The domain's UUID (the consumer).
    pub domain: Uuid,
    /// The domain's name (for messages).
    pub name: String,
    /// The mdev UUIDs its `<hostdev type='mdev'>` elements name.
    pub mdevs: Vec<Uuid>,
    /// The PCI addresses its `<hostdev type='pci'>` elements name.
    #[serde(default)]
    pub pci: Vec<hostdev_model::pci::PciAddress>,
    /// The paths its `<interface type='vdpa'>` elements name.
    #[serde(default)]
    pub vdpa: Vec<String>,
}

/// A domain was released (libvirt's qemu hook `release end`): what it held
/// through pools is given back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainReleaseRequest {
    /// The domain's UUID.
    pub domain: Uuid,
}

op!(PoolListQuery => PoolList, Get, "/v1/pools", "Every pool with its capacity and use.");
op!(PoolShowQuery => PoolShow, Get, "/v1/pools/show", "One pool: members, devices, holders, bindings.");
op!(AllocateRequest => Allocation, Post, "/v1/pools/allocate", "Hand a device of a pool to a consumer.");
op!(ReleaseRequest => Released, Post, "/v1/pools/release", "Give back a consumer's devices, or one device.");
op!(BindRequest => Done, Post, "/v1/pools/bind", "Bind a UUID to an on-demand pool.");
op!(UnbindRequest => Done, Post, "/v1/pools/unbind", "Remove a UUID's binding.");
op!(ReconcileRequest => ReconcileReport, Post, "/v1/pools/reconcile", "Make pool state and the kernel agree.");
op!(DomainPrepareRequest => Vec<Allocation>, Post, "/v1/pools/domain/prepare", "Allocate the pool devices a starting domain names.");
op!(DomainReleaseRequest => Released, Post, "/v1/pools/domain/release", "Give back what a stopped domain held.");

impl schemars::JsonSchema for ConsumerId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ConsumerId".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "Who holds a device (a VM's name or UUID): 1 to 256 bytes without control characters.",
            "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]+$",
            "minLength": 1,
            "maxLength": 256
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_ids_refuse_control_characters_and_empty() {
        assert!(ConsumerId::new("").is_err());
        assert!(ConsumerId::new("a\nb").is_err());
        assert!(ConsumerId::new("x".repeat(257)).is_err());
        assert!(ConsumerId::new("vm-1 (prod)").is_ok());
        assert!(ConsumerId::new("wäre-ein-vm").is_ok());
        for bad in [
            "   ",
            " vm",
            "vm ",
            "vm\u{202e}gpj",
            "a\u{2028}b",
            "\u{200b}",
        ] {
            assert!(ConsumerId::new(bad).is_err(), "{bad:?}");
        }
        let long = ConsumerId::new("x\n".repeat(100_000))
            .unwrap_err()
            .to_string();
        assert!(long.len() < 300 && long.contains("x\\nx"), "{long}");
        let e = serde_json::from_str::<AllocateRequest>(r#"{"pool":"../x","consumer":"a"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a pool name"), "{e}");
    }
}
