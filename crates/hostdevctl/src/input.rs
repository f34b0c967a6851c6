//! Files a user names on the command line (a definition's JSON, a host
//! file, an export, a migration spec): read as a regular file of bounded
//! size, never blocking on a FIFO or reading a device; `-` (and mdevctl's
//! `/dev/stdin`) is standard input, read to the same bound.
//!
//! Owns: that reading and its sentences. Must not: parse what it read
//! (each command parses its own kind of file).

use anyhow::{bail, Context, Result};
use std::io::Read;
use std::path::Path;

/// The bound for a definition, an export or a spec (1 MiB).
pub const SMALL: u64 = 1 << 20;

/// The bytes of `path` (`-` or `/dev/stdin`: standard input), at most
/// `limit` of them; `what` names the file in errors.
pub fn read(path: &Path, what: &str, limit: u64) -> Result<Vec<u8>> {
    if path == Path::new("-") || path == Path::new("/dev/stdin") {
        let mut b = Vec::new();
        std::io::stdin()
            .lock()
            .take(limit.saturating_add(1))
            .read_to_end(&mut b)
            .with_context(|| format!("cannot read {what} from standard input"))?;
        if b.len() as u64 > limit {
            bail!("cannot read {what} from standard input: it is larger than {limit} bytes");
        }
        return Ok(b);
    }
    match hostdev_fs::read_regular_limited(path, limit) {
        Ok(Some(b)) => Ok(b),
        Ok(None) => Err(std::io::Error::from_raw_os_error(2))
            .with_context(|| format!("cannot read {what} {}", path.display())),
        Err(e) => Err(e).with_context(|| format!("cannot read {what} {}", path.display())),
    }
}

/// [`read`] as UTF-8 text.
pub fn read_text(path: &Path, what: &str, limit: u64) -> Result<String> {
    String::from_utf8(read(path, what, limit)?)
        .map_err(|_| anyhow::anyhow!("{what} {} is not UTF-8 text", path.display()))
}
