//! The udev rule that restores a parent's auto-start mdevs when it registers:
//! its text, and its install (through the store, atomically, under the lock).

use crate::lock::Locker;
use crate::CoreError;
use std::path::{Path, PathBuf};

/// Where the rule is installed, under a root prefix.
pub fn rule_path(root: &Path) -> PathBuf {
    root.join("etc/udev/rules.d/60-hostdev.rules")
}

/// The rule, calling `exe` (the binary's canonical path). As Debian's own
/// mdevctl rule does, what the command prints goes to the journal through
/// `logger` (stdout at info, stderr at err), tagged `hostdev`.
pub fn rule_text(exe: &Path) -> Result<String, CoreError> {
    let shown = exe.display().to_string();
    // The path sits in `sh -c '…'` inside udev's "…": it can be neither
    // quoted nor expanded there, so only plain path characters are taken.
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._+-,:@".contains(c);
    if !exe.is_absolute() || !shown.chars().all(plain) {
        return Err(CoreError::RulePath {
            exe: exe.to_path_buf(),
        });
    }
    let word = shown;
    let run = format!(
        "RUN+=\"/bin/sh -c '{{ {word} mdev start-parent-mdevs %k 2>&3 | logger -t hostdev; }} 3>&1 1>&2 | logger -t hostdev -p user.err'\""
    );
    Ok(format!(
        "# Installed by hostdev: start auto-start mediated devices when their parent appears.\n\
         # Kernels since 5.x announce a parent with a change event carrying MDEV_STATE=registered.\n\
         ACTION==\"change\", ENV{{MDEV_STATE}}==\"registered\", {run}\n\
         # Older kernels only emit add for the parent device.\n\
         ACTION==\"add\", TEST==\"mdev_supported_types\", {run}\n"
    ))
}

/// Writes the rule under `root`; returns where.
pub fn install(root: &Path, exe: &Path) -> Result<PathBuf, CoreError> {
    let lock = Locker::under(root).lock()?;
    let path = rule_path(root);
    hostdev_store::write_atomic(&lock, &path, rule_text(exe)?.as_bytes()).map_err(|e| {
        CoreError::Install {
            path: path.clone(),
            source: Box::new(e),
        }
    })?;
    Ok(path)
}

/// Where the libvirt qemu hook is installed, under a root prefix (libvirt
/// 6.5 and later run every executable in `hooks/qemu.d/`, so another hook in
/// `hooks/qemu` is left alone).
pub fn hook_path(root: &Path) -> PathBuf {
    root.join("etc/libvirt/hooks/qemu.d/50-hostdev")
}

/// The hook script, calling `exe`.
pub fn hook_text(exe: &Path) -> String {
    format!(
        "#!/bin/sh\n\
         # Installed by `hostdevctl libvirt-hook install`: a domain naming a UUID bound to\n\
         # a hostdev pool gets that device made at prepare and removed at release.\n\
         exec '{}' libvirt-hook run \"$@\"\n",
        exe.display().to_string().replace('\'', "'\\''")
    )
}

/// Writes the hook under `root` (mode 0755); returns where.
pub fn install_hook(root: &Path, exe: &Path) -> Result<PathBuf, CoreError> {
    let lock = Locker::under(root).lock()?;
    let path = hook_path(root);
    hostdev_store::write_atomic_mode(&lock, &path, hook_text(exe).as_bytes(), 0o755).map_err(
        |e| CoreError::Install {
            path: path.clone(),
            source: Box::new(e),
        },
    )?;
    Ok(path)
}
