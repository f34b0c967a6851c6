//! libvirt domains that move between hosts: the devices a domain holds
//! through pools with each device's migration spec (what hostdev puts in
//! the domain's `<metadata>`), and a domain arriving by migration (libvirt's
//! qemu hook `migrate begin` on the destination): each device it held on
//! the source gets one from the same pool here, judged against the
//! source's spec.
//!
//! Owns: serde shapes only. Must not: judge, place or touch state.

use crate::ops::op;
use crate::Kind;
use hostdev_model::migrate::{MigrationSpec, Reason, Verdict};
use hostdev_model::pool::PoolName;
use hostdev_model::Uuid;
use serde::{Deserialize, Serialize};

/// One device of an arriving domain, as hostdev's metadata written on the
/// source describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IncomingDevice {
    /// The pool it came from there (a pool of the same name serves it here).
    pub pool: PoolName,
    /// What it is.
    pub kind: Kind,
    /// The device on the source (mdev UUID, VF address, vDPA name).
    pub id: String,
    /// What the domain XML names for it on the source: the mdev UUID, the
    /// VF's PCI address or the `/dev/vhost-vdpa-N` path.
    pub source: String,
    /// The source device's migration spec.
    pub spec: MigrationSpec,
    /// The QEMU device properties the domain sets on it (`<qemu:override>`
    /// frontend properties, by the device's alias).
    #[serde(default)]
    pub qemu_props: Vec<(String, String)>,
}

/// A domain arrives by migration: every device hostdev's metadata lists
/// gets a device of the same pool here (an mdev the source's UUID where it
/// is free), judged against the source's spec with the pool's driver
/// policy; the reservation lasts until the domain starts here (libvirt's
/// `prepare` makes it an allocation) or ends by itself. All or nothing: a
/// device that cannot be served gives back what the others got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainMigrateRequest {
    /// The domain's UUID (the consumer).
    pub domain: Uuid,
    /// Its name (for messages).
    pub name: String,
    /// The devices hostdev's metadata lists.
    pub devices: Vec<IncomingDevice>,
    /// The mdev UUIDs the domain names that the metadata does not list (one
    /// bound to a pool here cannot be judged: the domain is refused).
    #[serde(default)]
    pub unlisted_mdevs: Vec<Uuid>,
    /// Judge and say what would happen; make and hold nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// One device of an arriving domain, served here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Arrival {
    /// Its pool.
    pub pool: PoolName,
    /// What it is.
    pub kind: Kind,
    /// The device on the source.
    pub source_id: String,
    /// The device here (empty in a dry run where it is not chosen yet).
    pub id: String,
    /// What the domain XML named on the source.
    pub from: String,
    /// What it names here (the same where the device keeps its address;
    /// empty in a dry run where it is not chosen yet).
    pub to: String,
    /// The verdict against the source's spec.
    pub verdict: Verdict,
    /// Each rule's finding.
    pub reasons: Vec<Reason>,
    /// This device's own spec (what hostdev's metadata says here), where
    /// it was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<MigrationSpec>,
    /// Made now (false in a dry run).
    pub created: bool,
    /// When the reservation ends unless the domain starts here, unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<i64>,
}

/// What the destination did for an arriving domain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DomainMigrated {
    /// One per device of the request, in its order.
    pub devices: Vec<Arrival>,
}

/// What a domain holds here through pools, with each device's spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainHeldQuery {
    /// The domain's UUID.
    pub domain: Uuid,
}

/// One device a domain holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HeldDevice {
    /// Its pool.
    pub pool: PoolName,
    /// What it is.
    pub kind: Kind,
    /// The device (mdev UUID, VF address, vDPA name).
    pub id: String,
    /// What the domain XML names for it here.
    pub source: String,
    /// Its migration spec; none where it cannot be told now (`why`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<MigrationSpec>,
    /// Why there is no spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// The devices a domain holds here, by pool and id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DomainHeld {
    /// Held devices (reservations too).
    pub devices: Vec<HeldDevice>,
}

op!(DomainMigrateRequest => DomainMigrated, Post, "/v1/pools/domain/migrate", "Serve a domain arriving by migration: devices from the same pools, judged against the source's specs.");
op!(DomainHeldQuery => DomainHeld, Get, "/v1/pools/domain/held", "The pool devices a domain holds here, each with its migration spec.");
