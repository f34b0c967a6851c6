//! The version every hostdev binary prints: `0.1.0 (commit 1a2b3c4d5e6f)`.
//!
//! Owns: the version string and the commit. Must not: depend on anything
//! (a commit rebuilds only this crate and the binaries).

/// The git commit the binaries were built from (`unknown` outside a work tree
/// unless `HOSTDEV_COMMIT` was set at build time).
pub const COMMIT: &str = env!("HOSTDEV_COMMIT");

/// `VERSION (commit COMMIT)`, for `--version`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("HOSTDEV_COMMIT"),
    ")"
);
