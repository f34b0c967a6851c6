//! Markers of transient probe devices in `/run/hostdev/probes/UUID` (tmpfs:
//! gone at reboot, like the devices). A type probe makes one before it makes
//! its device and keeps it locked (flock) for as long as it lives; a marker
//! whose lock can be taken belongs to a probe that is gone (killed, or
//! finished without removing it), and its device is a leftover.
//!
//! Owns: creating, locking, listing and removing markers, each decision
//! under the host-wide lock, so a marker is never seen unlocked between its
//! making and its locking. Must not: remove devices (hostdev-core does).

use crate::{HostLock, StoreError};
use hostdev_model::Uuid;
use rustix::fs::{flock, FlockOperation};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The marker directory of a host.
#[derive(Debug, Clone)]
pub struct ProbeMarkers {
    dir: PathBuf,
}

/// A marker this process holds locked; dropping it unlocks it and leaves the
/// file (the next cleaner removes it and the device it names).
#[derive(Debug)]
pub struct HeldMarker {
    path: PathBuf,
    _file: File,
}

impl HeldMarker {
    /// Removes the marker (its device is gone).
    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn try_lock(f: &File) -> bool {
    flock(f, FlockOperation::NonBlockingLockExclusive).is_ok()
}

impl ProbeMarkers {
    /// `/run/hostdev/probes` under `root`.
    pub fn under(root: &Path) -> ProbeMarkers {
        ProbeMarkers {
            dir: root.join("run/hostdev/probes"),
        }
    }

    /// Makes and locks the marker of `uuid` (a device about to be made on
    /// `parent`).
    pub fn hold(
        &self,
        _lock: &HostLock,
        uuid: &Uuid,
        parent: &str,
    ) -> Result<HeldMarker, StoreError> {
        std::fs::create_dir_all(&self.dir).map_err(|source| StoreError::Dir {
            path: self.dir.clone(),
            source,
        })?;
        let path = self.dir.join(uuid.to_string());
        let fail = |source| StoreError::Write {
            path: path.clone(),
            source,
        };
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(fail)?;
        if !try_lock(&f) {
            return Err(fail(std::io::Error::other(
                "it is locked by another process",
            )));
        }
        f.write_all(parent.as_bytes()).map_err(fail)?;
        Ok(HeldMarker { path, _file: f })
    }

    /// The markers no live probe holds, each now locked by this process so
    /// that no other cleaner takes it too.
    pub fn orphans(&self, _lock: &HostLock) -> Vec<(Uuid, HeldMarker)> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        rd.flatten()
            .filter_map(|e| {
                let u: Uuid = e.file_name().to_str()?.parse().ok()?;
                let f = File::open(e.path()).ok()?;
                try_lock(&f).then(|| {
                    (
                        u,
                        HeldMarker {
                            path: e.path(),
                            _file: f,
                        },
                    )
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_marker_is_no_orphan_and_a_dropped_one_is() {
        let t = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let lock = HostLock::acquire(&t.path().join("lock")).unwrap_or_else(|e| panic!("{e}"));
        let m = ProbeMarkers::under(t.path());
        let u = Uuid::new_v4();
        let held = m.hold(&lock, &u, "mtty").unwrap_or_else(|e| panic!("{e}"));
        assert!(
            m.orphans(&lock).is_empty(),
            "a live probe's marker is left alone"
        );
        drop(held);
        let orphans = m.orphans(&lock);
        assert_eq!(orphans.iter().map(|o| o.0).collect::<Vec<_>>(), [u]);
        assert!(m.orphans(&lock).is_empty(), "one cleaner at a time");
        for (_, o) in orphans {
            o.remove();
        }
        assert!(m.orphans(&lock).is_empty());
    }
}
