//! The errors of pools: one variant per failed step, each carrying what it
//! concerned, with its stable code (`pool.…`), its class and its target
//! kept beside it in this file. Nested into `CoreError` as `CoreError::Pool`.
//!
//! Owns: those variants and their codes. Must not: know another kind's errors.

use hostdev_api::{ErrorClass, ErrorTarget, Holder, Target};
use hostdev_model::pool::PoolName;
use hostdev_model::Uuid;
use std::path::PathBuf;

/// A failed pool operation.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// No pool of that name is defined.
    #[error("no pool '{pool}' is defined (no {path})")]
    Unknown {
        /// The pool.
        pool: String,
        /// Where its file would be.
        path: PathBuf,
    },
    /// Every device the pool can hand out now is held.
    #[error("pool {pool} is exhausted: {allocated} of {capacity} allocated")]
    Exhausted {
        /// The pool.
        pool: String,
        /// Held now.
        allocated: u64,
        /// Held plus free now.
        capacity: u64,
    },
    /// No member of the pool is present.
    #[error("pool {pool} has no members on this host: nothing here matches its selector")]
    NoMembers {
        /// The pool.
        pool: String,
    },
    /// The device asked for is held by someone else.
    #[error("{id} of pool {pool} is held by {consumer}")]
    DeviceHeld {
        /// The pool.
        pool: String,
        /// The device.
        id: String,
        /// Its holder.
        consumer: String,
    },
    /// The device asked for is not one of the pool's.
    #[error("{id} is not a device of pool {pool}")]
    NotMember {
        /// The pool.
        pool: String,
        /// The device.
        id: String,
    },
    /// The request does not fit the pool (a UUID for a vGPU pool, a binding
    /// to a pre-created pool).
    #[error("pool {pool}: {why}")]
    Misuse {
        /// The pool.
        pool: String,
        /// Why, as a sentence fragment.
        why: String,
    },
    /// A release named nothing that is held.
    #[error("nothing to release: {what} holds no device of any pool")]
    NothingHeld {
        /// The consumer or device.
        what: String,
    },
    /// A UUID is bound to another pool, or named by a definition already.
    #[error("UUID {uuid} is already {why}")]
    UuidTaken {
        /// The UUID.
        uuid: Uuid,
        /// Bound to which pool, or defined where.
        why: String,
    },
    /// No member can take one of the pool's devices and it holds none.
    #[error("pool {pool} cannot make a device on any member: {why}")]
    NoRoom {
        /// The pool.
        pool: String,
        /// Each member and why, as fragments.
        why: String,
    },
    /// A pre-created pool could not be filled to its count.
    #[error("pool {pool} could not make its pre-created devices: {why}")]
    FillFailed {
        /// The pool.
        pool: String,
        /// What failed.
        why: String,
    },
    /// A reservation time outside what a reservation may last.
    #[error("a reservation lasts 1 second to 30 days ({max} seconds); {ttl} seconds is out of range", max = crate::pool::MAX_TTL_SECS)]
    BadTtl {
        /// The time asked for, in seconds.
        ttl: u64,
    },
    /// An unbind named a UUID bound to no pool.
    #[error("UUID {uuid} is bound to no pool")]
    NotBound {
        /// The UUID.
        uuid: Uuid,
    },
    /// A domain names an unbound UUID and several pools take any UUID.
    #[error(
        "UUID {uuid} is bound to no pool and several pools bind on use ({pools}); bind it to one"
    )]
    Ambiguous {
        /// The UUID.
        uuid: Uuid,
        /// The pools.
        pools: String,
    },
}

impl PoolError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unknown { .. } => "pool.unknown",
            Self::Exhausted { .. } => "pool.exhausted",
            Self::NoMembers { .. } => "pool.no_members",
            Self::DeviceHeld { .. } => "pool.device_held",
            Self::NotMember { .. } => "pool.not_member",
            Self::Misuse { .. } => "pool.misuse",
            Self::NothingHeld { .. } => "pool.nothing_held",
            Self::UuidTaken { .. } => "pool.uuid_taken",
            Self::NoRoom { .. } => "pool.no_room",
            Self::FillFailed { .. } => "pool.fill_failed",
            Self::BadTtl { .. } => "pool.bad_ttl",
            Self::NotBound { .. } => "pool.not_bound",
            Self::Ambiguous { .. } => "pool.ambiguous",
        }
    }

    /// What a caller can do about it.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Unknown { .. } => ErrorClass::NotFound,
            Self::Exhausted { .. } => ErrorClass::Exhausted,
            Self::NoMembers { .. } => ErrorClass::Unavailable,
            Self::DeviceHeld { .. } => ErrorClass::Conflict,
            Self::NotMember { .. } => ErrorClass::Invalid,
            Self::Misuse { .. } => ErrorClass::Invalid,
            Self::NothingHeld { .. } => ErrorClass::NotFound,
            Self::UuidTaken { .. } => ErrorClass::Exists,
            Self::NoRoom { .. } => ErrorClass::Exhausted,
            Self::FillFailed { .. } => ErrorClass::Failed,
            Self::BadTtl { .. } => ErrorClass::Invalid,
            Self::NotBound { .. } => ErrorClass::NotFound,
            Self::Ambiguous { .. } => ErrorClass::Invalid,
        }
    }

    /// The pool, or the UUID, it concerns.
    pub fn target(&self) -> Option<ErrorTarget> {
        use PoolError::*;
        match self {
            Unknown { pool, .. }
            | Exhausted { pool, .. }
            | NoMembers { pool }
            | DeviceHeld { pool, .. }
            | NotMember { pool, .. }
            | Misuse { pool, .. }
            | NoRoom { pool, .. }
            | FillFailed { pool, .. } => PoolName::new(pool.as_str())
                .ok()
                .map(|name| Holder::Pool { name }.into()),
            UuidTaken { uuid, .. } | NotBound { uuid } | Ambiguous { uuid, .. } => Some(
                Target::Mdev {
                    uuid: *uuid,
                    parent: None,
                }
                .into(),
            ),
            NothingHeld { .. } | BadTtl { .. } => None,
        }
    }
}
