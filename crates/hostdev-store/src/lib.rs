//! Persistent state of hostdev.
//!
//! Owns: every write of persistent files (atomic: temp file in the same
//! directory, fsync, rename, fsync of the directory), the host-wide lock that
//! serializes writers across processes ([`HostLock`]), and mdevctl's definition
//! tree `/etc/mdevctl.d/<parent>/<uuid>` ([`MdevStore`]). One unreadable or
//! malformed file is reported and skipped; it never hides the others.
//! Must not: talk to the kernel, or decide what a definition should contain.
#![deny(missing_docs)]

mod atomic;
mod cache_file;
mod json_dir;
mod lock;
mod markers;
mod mdev;
mod memo;
mod pool_db;
mod pools;

pub use atomic::{write_atomic, write_atomic_mode, write_atomic_volatile};
pub use cache_file::{CacheFile, ManagedStore, ProbeCacheStore, TypeCacheStore};
pub use json_dir::{JsonDir, Named};
pub use lock::HostLock;
pub use markers::{HeldMarker, ProbeMarkers};
pub use mdev::{Definition, LoadProblem, MdevStore};
pub use memo::{DefinitionMemo, MemoStats};
pub use pool_db::{PoolDb, DEFAULT_WAIT as POOL_DB_WAIT};
pub use pools::{DeviceRecord, Origin, PoolDefs, RecState, Tx};

use std::io;
use std::path::PathBuf;

/// A failed store step, with the path it concerned.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The host-wide lock could not be taken.
    #[error("cannot take the host-wide lock {path}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A directory could not be created or read.
    #[error("cannot access directory {path}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Writing a file (temp, fsync, rename) failed; the old content is intact.
    #[error("cannot write {path} (its previous content is unchanged)")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Removing a file failed.
    #[error("cannot remove {path}")]
    Remove {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A statement on the pool state database failed (the transaction it
    /// was part of is rolled back).
    #[error("cannot {op} the pool state database {path}")]
    Db {
        /// The database file.
        path: PathBuf,
        /// What was being done, as a verb phrase.
        op: &'static str,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// Another writer kept the pool state database's write lock for the
    /// whole wait its caller allows; nothing was changed.
    #[error("the pool state database {path} stayed locked by another writer for {} s: {holder}; nothing was changed (a writer holds it for milliseconds, so that one is stuck or stopped)", .waited.as_secs_f32().round())]
    DbBusy {
        /// The database file.
        path: PathBuf,
        /// How long this transaction waited.
        waited: std::time::Duration,
        /// Who holds it, as a phrase.
        holder: String,
    },
    /// The pool state database is missing or empty on a host whose marker
    /// says it kept pool state: refused, never made again.
    #[error("the pool state database {path} {what}, but {marker} says this host has kept pool state: devices it recorded may still exist and be held by virtual machines, so no pool decision is made without it. Restore {path} from a backup (with its -wal file), or, once no device a pool made exists any more, remove {marker} to start with an empty database")]
    PoolStateLost {
        /// The database file.
        path: PathBuf,
        /// The marker that says it existed.
        marker: PathBuf,
        /// What is wrong with it, as a verb phrase (`is missing`).
        what: &'static str,
    },
    /// A definition file could not be read or parsed.
    #[error("definition {path} is unusable: {reason}")]
    Definition {
        /// The file.
        path: PathBuf,
        /// Why, as a sentence fragment.
        reason: String,
    },
}

/// Makes a FIFO at `path` (tests: a file that blocks a plain reader).
#[cfg(test)]
fn test_fifo(path: &std::path::Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
}
