//! The errors of the host file's plan and apply: one variant per failed step, each carrying what it
//! concerned, with its stable code (`host.…`), its class and its target
//! kept beside it in this file. Nested into `CoreError` as `CoreError::Host`.
//!
//! Owns: those variants and their codes. Must not: know another kind's errors.

use hostdev_api::{ErrorClass, ErrorTarget};
use std::path::PathBuf;

/// A failed host-file step.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// A host file that cannot be used.
    #[error("{path} cannot be used: {why}")]
    BadFile {
        /// Where it came from.
        path: String,
        /// Why (the parser's sentence, with the line).
        why: String,
    },
    /// The record of what the host file made cannot be used.
    #[error("the record of what the host file made, {}, cannot be used ({why}); nothing is planned or applied without it, because only it says which devices the file made. Restore it from a backup, or move it aside to start an empty record (the devices the file made before are then left alone when the file drops them)", path.display())]
    Record {
        /// The record.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// A step that was not tried because its group could not be read.
    #[error("not tried: {why}")]
    NotTried {
        /// Why.
        why: String,
    },
    /// A step that was done and then undone because another step of its
    /// group (parent, PF, management device) failed.
    #[error("undone: another step on {group} failed, so {group} was put back as it was{}", .trouble.as_ref().map(|t| format!(" (except: {t})")).unwrap_or_default())]
    RolledBack {
        /// The parent, PF or management device.
        group: String,
        /// What could not be put back, if anything.
        trouble: Option<String>,
    },
    /// Stable UUIDs need the host's identity.
    #[error("the host has no identity for stable UUIDs: set [host] id in the host file, or give the machine an /etc/machine-id")]
    NoHostId,
}

impl HostError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadFile { .. } => "host.bad_file",
            Self::Record { .. } => "host.bad_record",
            Self::NotTried { .. } => "host.not_tried",
            Self::RolledBack { .. } => "host.rolled_back",
            Self::NoHostId { .. } => "host.no_id",
        }
    }

    /// What a caller can do about it.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::BadFile { .. } => ErrorClass::Invalid,
            Self::Record { .. } => ErrorClass::Failed,
            Self::NotTried { .. } => ErrorClass::Failed,
            Self::RolledBack { .. } => ErrorClass::Failed,
            Self::NoHostId { .. } => ErrorClass::Invalid,
        }
    }

    /// Host-file errors concern the file, not one device.
    pub fn target(&self) -> Option<ErrorTarget> {
        None
    }
}
