//! Files a user names on the command line (a definition's JSON, a host
//! file, an export, a migration spec): read with `env::read_input` (a
//! regular file of bounded size, never waiting on a FIFO or reading a
//! device; `-` and mdevctl's `/dev/stdin` are standard input, to the same
//! bound), named in the error.
//!
//! Owns: naming what was read in its sentences. Must not: parse it (each
//! command parses its own kind of file and sends it typed).

use anyhow::{Context, Result};
use std::path::Path;

/// The bytes of `path`; `what` names the file in errors.
pub fn read(path: &Path, what: &str) -> Result<Vec<u8>> {
    crate::env::read_input(path).with_context(|| format!("cannot read {what} {}", path.display()))
}

/// [`read`] as UTF-8 text.
pub fn read_text(path: &Path, what: &str) -> Result<String> {
    String::from_utf8(read(path, what)?)
        .map_err(|_| anyhow::anyhow!("{what} {} is not UTF-8 text", path.display()))
}
