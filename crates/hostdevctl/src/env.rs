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
