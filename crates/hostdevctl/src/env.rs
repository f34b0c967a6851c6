//! Where the host is: the root prefix every kernel and config path hangs under,
//! and the core's view of the host on it.

use hostdev_core::System;
use std::path::PathBuf;
use std::time::Duration;

/// The root prefix: `HOSTDEV_ROOT`, or under the mdevctl personality
/// `MDEVCTL_ENV_ROOT` first (as mdevctl 1.3+ does), else `/`.
pub fn root(mdevctl: bool) -> PathBuf {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    let chosen = if mdevctl {
        var("MDEVCTL_ENV_ROOT").or_else(|| var("HOSTDEV_ROOT"))
    } else {
        var("HOSTDEV_ROOT")
    };
    chosen
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// The largest file a command reads (a host file of 65 536 devices fits).
pub const MAX_INPUT: u64 = 16 << 20;

/// Reads a file named on the command line: `-` and `/dev/stdin` are
/// standard input (libvirt hands mdevctl a definition as `--jsonfile
/// /dev/stdin`); anything else must be a regular file (a FIFO or a device
/// would block forever), at most [`MAX_INPUT`] bytes either way.
pub fn read_input(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context;
    use std::io::Read;
    let limit = hostdev_fs::size_words(MAX_INPUT);
    if path == std::path::Path::new("-") || path == std::path::Path::new("/dev/stdin") {
        let mut b = Vec::new();
        std::io::stdin()
            .take(MAX_INPUT + 1)
            .read_to_end(&mut b)
            .context("cannot read standard input")?;
        if b.len() as u64 > MAX_INPUT {
            anyhow::bail!("standard input is larger than {limit}; it is not read");
        }
        return Ok(b);
    }
    match hostdev_fs::read_regular_within(path, hostdev_fs::Limits::at_most(MAX_INPUT)) {
        Ok(Some(b)) => Ok(b),
        // ENOENT, worded as the kernel words it (as std::fs::read did).
        Ok(None) => Err(std::io::Error::from_raw_os_error(2).into()),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Err(anyhow::anyhow!(
            "{e} (a FIFO or a device would be waited on; give a file, or - for standard input)"
        )),
        Err(e) => Err(e.into()),
    }
}

/// The host on the real kernel interfaces under the root prefix.
pub fn system(mdevctl: bool) -> System {
    let mut s = System::real(&root(mdevctl));
    if let Some(ms) = std::env::var("HOSTDEV_READY_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        s.mdev.ready_timeout = Duration::from_millis(ms);
    }
    s
}

/// Where operations go: the daemon when its socket answers, else this process.
pub enum Backend {
    /// A running hostdevd.
    Daemon(hostdev_core::remote::Daemon),
    /// The core, acting directly on the host.
    Direct(Box<System>),
}

/// The daemon's socket: `HOSTDEV_SOCKET` (empty: never use a daemon), else
/// the default socket when the root prefix is `/` (a daemon serves the real
/// host only, so a CLI pointed at another root acts on it directly).
pub fn socket(mdevctl: bool) -> Option<PathBuf> {
    match std::env::var_os("HOSTDEV_SOCKET") {
        Some(v) if v.is_empty() => None,
        Some(v) => Some(PathBuf::from(v)),
        None if root(mdevctl) == std::path::Path::new("/") => {
            Some(PathBuf::from(hostdev_core::remote::DEFAULT_SOCKET))
        }
        None => None,
    }
}

/// A connection made ahead of the command by [`daemon_answers`], used by
/// the next [`backend`] (a connection serves one operation).
static PRECONNECTED: std::sync::Mutex<Option<hostdev_core::remote::Daemon>> =
    std::sync::Mutex::new(None);

/// Whether a daemon answers on the socket; its connection is kept for the
/// command's first operation, so asking costs no second connect.
pub fn daemon_answers(mdevctl: bool) -> bool {
    let d = socket(mdevctl)
        .as_deref()
        .and_then(hostdev_core::remote::Daemon::connect);
    let answers = d.is_some();
    *PRECONNECTED.lock().unwrap_or_else(|p| p.into_inner()) = d;
    answers
}

/// The daemon if it answers, else the host directly.
pub fn backend(mdevctl: bool) -> Backend {
    if let Some(d) = PRECONNECTED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
    {
        return Backend::Daemon(d);
    }
    if let Some(d) = socket(mdevctl)
        .as_deref()
        .and_then(hostdev_core::remote::Daemon::connect)
    {
        return Backend::Daemon(d);
    }
    Backend::Direct(Box::new(system(mdevctl)))
}

/// Runs one operation on the backend.
pub fn call<O>(b: Backend, op: &O) -> anyhow::Result<O::Reply>
where
    O: hostdev_core::api::Op,
    System: hostdev_core::Handle<O>,
{
    use hostdev_core::Handle;
    match b {
        // Long enough for any operation, plus what it waits for on purpose.
        Backend::Daemon(d) => Ok(d.call(op, Duration::from_secs(300) + op.patience())?),
        Backend::Direct(sys) => Ok(sys.handle(op)?),
    }
}
