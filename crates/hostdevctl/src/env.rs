//! Where the host is and where operations go: the root prefix every kernel
//! and config path hangs under, the daemon's socket, and [`Ctx`], which
//! sends each operation to the daemon when it answers and to the core
//! directly otherwise.
//!
//! Owns: that choice, made once per command. Must not: redo a change sent
//! to the daemon directly (a daemon that does not answer at connect means
//! direct; one that fails mid-call is an error).

use hostdev_api::client::Daemon;
use hostdev_core::{Handle, Serve, System};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
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

/// The daemon's socket: `HOSTDEV_SOCKET` (empty: never use a daemon), else
/// the default socket when the root prefix is `/` (a daemon serves the real
/// host only, so a CLI pointed at another root acts on it directly).
pub fn socket(mdevctl: bool) -> Option<PathBuf> {
    match std::env::var_os("HOSTDEV_SOCKET") {
        Some(v) if v.is_empty() => None,
        Some(v) => Some(PathBuf::from(v)),
        None if root(mdevctl) == Path::new("/") => Some(PathBuf::from(hostdev_api::DEFAULT_SOCKET)),
        None => None,
    }
}

/// Where one command's operations go: the daemon at `socket` when it
/// answers, else the host `direct` makes (the real one, or fakes in a test).
pub struct Ctx<D = System> {
    /// Under the mdevctl personality.
    pub mdevctl: bool,
    /// The host's root prefix, checked before acting on it directly;
    /// `None` for a host that is not a directory tree (fakes).
    pub root: Option<PathBuf>,
    socket: Option<PathBuf>,
    direct: Box<dyn Fn() -> D + Send + Sync>,
    /// A connection made ahead of the command by [`Ctx::daemon_answers`],
    /// used by its next operation (a connection serves one).
    preconnected: Mutex<Option<Daemon>>,
}

impl Ctx<System> {
    /// The real host under the root prefix, through its daemon if one answers.
    pub fn real(mdevctl: bool) -> Ctx<System> {
        let mut c = Ctx::new(mdevctl, socket(mdevctl), move || system(mdevctl));
        c.root = Some(root(mdevctl));
        c
    }
}

impl<D: Serve> Ctx<D> {
    /// Operations go to the daemon at `socket` when it answers, else to
    /// what `direct` makes.
    pub fn new(
        mdevctl: bool,
        socket: Option<PathBuf>,
        direct: impl Fn() -> D + Send + Sync + 'static,
    ) -> Ctx<D> {
        Ctx {
            mdevctl,
            root: None,
            socket,
            direct: Box::new(direct),
            preconnected: Mutex::new(None),
        }
    }

    /// Whether a daemon answers; its connection is kept for the command's
    /// next operation, so asking costs no second connect.
    pub fn daemon_answers(&self) -> bool {
        let d = self.socket.as_deref().and_then(Daemon::connect);
        let answers = d.is_some();
        *self.preconnected.lock().unwrap_or_else(|p| p.into_inner()) = d;
        answers
    }

    fn daemon(&self) -> Option<Daemon> {
        if let Some(d) = self
            .preconnected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            return Some(d);
        }
        self.socket.as_deref().and_then(Daemon::connect)
    }

    /// Runs one operation: through the daemon if it answers, else directly.
    pub fn call<O>(&self, op: &O) -> anyhow::Result<O::Reply>
    where
        O: hostdev_api::Op,
        D: Handle<O>,
    {
        match self.daemon() {
            // Long enough for any operation, plus what it waits for on purpose.
            Some(d) => {
                let t = Duration::from_secs(300).saturating_add(op.patience());
                Ok(d.call(op, t)?)
            }
            None => Ok((self.direct)().handle(op)?),
        }
    }
}
