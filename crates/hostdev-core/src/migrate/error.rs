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
    /// A device of an arriving domain cannot be served as the source's
    /// spec asks: the verdict's reasons say why.
    #[error("its {kind} device {id} of pool {pool} cannot be served here: {why}")]
    Incompatible {
        /// The device on the source.
        id: String,
        /// Its kind.
        kind: String,
        /// Its pool.
        pool: String,
        /// The reasons that refused it, as sentences.
        why: String,
    },
    /// A device that needs QEMU properties to migrate runs without them.
    #[error(
        "its device {id} runs in QEMU without {missing}: the migration would fail (at \
         ram_save_setup for an mdev); give the device these properties in a <qemu:override> \
         of its alias on both hosts and start the domain again"
    )]
    QemuOptions {
        /// The device on the source.
        id: String,
        /// The properties it lacks, `name=value`, comma-separated.
        missing: String,
    },
    /// A domain names a pool's device but carries no spec to judge it with.
    #[error(
        "it names {id}, a device of pool {pool} here, but carries no migration spec from \
         hostdev in its <metadata> (hostdev writes it once the domain has started on a host \
         with the hook installed; a domain started before has none): it cannot be judged"
    )]
    Unannotated {
        /// The device the domain names.
        id: String,
        /// The pool it belongs to here.
        pool: String,
    },
}

impl MigrateError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadSpec { .. } => "migrate.bad_spec",
            Self::NoRoom { .. } => "migrate.no_room",
            Self::NoPciDevice { .. } => "pci.no_device",
            Self::Incompatible { .. } => "migrate.incompatible",
            Self::QemuOptions { .. } => "migrate.qemu_options",
            Self::Unannotated { .. } => "migrate.no_spec",
        }
    }

    /// What a caller can do about it.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::BadSpec { .. } => ErrorClass::Invalid,
            Self::NoRoom { .. } => ErrorClass::Exhausted,
            Self::NoPciDevice { .. } => ErrorClass::NotFound,
            Self::Incompatible { .. } => ErrorClass::Conflict,
            Self::QemuOptions { .. } => ErrorClass::Invalid,
            Self::Unannotated { .. } => ErrorClass::Invalid,
        }
    }

    /// The pool a refused arrival concerns; other migration errors
    /// concern the spec, not one device.
    pub fn target(&self) -> Option<ErrorTarget> {
        match self {
            Self::Incompatible { pool, .. } | Self::Unannotated { pool, .. } => {
                hostdev_api::PoolName::new(pool.as_str())
                    .ok()
                    .map(|name| hostdev_api::Holder::Pool { name }.into())
            }
            _ => None,
        }
    }
}
