//! The udev rule that restores a parent's auto-start mdevs when it registers:
//! its text, and its install (through the store, atomically, under the lock).

use crate::lock::Locker;
use crate::CoreError;
use std::path::{Path, PathBuf};

/// Where the rule is installed, under a root prefix.
pub fn rule_path(root: &Path) -> PathBuf {
    root.join("etc/udev/rules.d/60-hostdev.rules")
}

/// The rule, calling `exe` (the binary's canonical path).
pub fn rule_text(exe: &Path) -> String {
    let exe = exe.display();
    format!(
        "# Installed by hostdevctl: start auto-start mediated devices when their parent appears.\n\
         # Kernels since 5.x announce a parent with a change event carrying MDEV_STATE=registered.\n\
         ACTION==\"change\", ENV{{MDEV_STATE}}==\"registered\", RUN+=\"{exe} mdev start-parent-mdevs %k\"\n\
         # Older kernels only emit add for the parent device.\n\
         ACTION==\"add\", TEST==\"mdev_supported_types\", RUN+=\"{exe} mdev start-parent-mdevs %k\"\n"
    )
}

/// Writes the rule under `root`; returns where.
pub fn install(root: &Path, exe: &Path) -> Result<PathBuf, CoreError> {
    let lock = Locker::under(root).lock()?;
    let path = rule_path(root);
    hostdev_store::write_atomic(&lock, &path, rule_text(exe).as_bytes()).map_err(|e| {
        CoreError::Install {
            path: path.clone(),
            source: Box::new(e),
        }
    })?;
    Ok(path)
}
