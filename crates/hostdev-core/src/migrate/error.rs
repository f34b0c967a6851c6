//! The errors of migration: one variant per failed step, each carrying what it
//! concerned, with its stable code (`migrate.…`), its class and its target
//! kept beside it in this file. Nested into `CoreError` as `CoreError::Migrate`.
//!
//! Owns: those variants and their codes. Must not: know another kind's errors.

use hostdev_api::{ErrorClass, ErrorTarget};

/// A failed migration step.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// A migration spec that cannot be used.
    #[error("the migration spec cannot be used: {why}")]
    BadSpec {
        /// Why.
        why: String,
    },
    /// No parent can take the device a spec describes.
    #[error("nothing here can take a {type_id} device: {why}")]
    NoRoom {
        /// The type.
        type_id: String,
        /// Each parent offering it and why it cannot, or that none does.
        why: String,
    },
    /// No PCI function at this address.
    #[error("there is no PCI device {address}")]
    NoPciDevice {
        /// The address asked for.
        address: String,
    },
}

impl MigrateError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadSpec { .. } => "migrate.bad_spec",
            Self::NoRoom { .. } => "migrate.no_room",
            Self::NoPciDevice { .. } => "pci.no_device",
        }
    }

    /// What a caller can do about it.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::BadSpec { .. } => ErrorClass::Invalid,
            Self::NoRoom { .. } => ErrorClass::Exhausted,
            Self::NoPciDevice { .. } => ErrorClass::NotFound,
        }
    }

    /// Migration errors concern the spec, not one device.
    pub fn target(&self) -> Option<ErrorTarget> {
        None
    }
}
