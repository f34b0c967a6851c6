//! Atomic file replacement: a reader sees the old file or the new one, never a
//! torn one, even if the writer is killed at any instruction.

use crate::{HostLock, StoreError};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

/// Prefix of temporary files; the loaders skip names starting with '.'.
pub(crate) const TMP_PREFIX: &str = ".hostdev-tmp.";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Replaces `path` with `data` atomically. Requires the host-wide lock.
pub fn write_atomic(lock: &HostLock, path: &Path, data: &[u8]) -> Result<(), StoreError> {
    write(lock, path, data, 0o644, true)
}

/// [`write_atomic`] for a record of kernel state that a reboot discards
/// (what a DRA claim made): the data is synced before the rename, so a
/// kill or a power loss leaves the old file or the new one, whole; the
/// directory is not, so a power loss may take back the last change — to a
/// record of devices the power loss removed anyway, which the next look
/// undoes. Saves the directory's sync, the slower of the two on a busy disk.
pub fn write_atomic_volatile(lock: &HostLock, path: &Path, data: &[u8]) -> Result<(), StoreError> {
    write(lock, path, data, 0o644, false)
}

/// [`write_atomic`] with the file's permission bits (a hook script: 0755).
pub fn write_atomic_mode(
    lock: &HostLock,
    path: &Path,
    data: &[u8],
    mode: u32,
) -> Result<(), StoreError> {
    write(lock, path, data, mode, true)
}

fn write(
    _lock: &HostLock,
    path: &Path,
    data: &[u8],
    mode: u32,
    sync_dir: bool,
) -> Result<(), StoreError> {
    let err = |source| StoreError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .ok_or_else(|| err(io::Error::other("no parent directory")))?;
    fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
        path: dir.to_path_buf(),
        source,
    })?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| err(io::Error::other("no file name")))?;
    let tmp = dir.join(format!(
        "{TMP_PREFIX}{name}.{}.{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        if sync_dir {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(err)
}

/// Removes temp files left by writers that were killed. Under the lock no other
/// writer is active, so every temp file in `dir` is stale.
pub(crate) fn sweep_stale(_lock: &HostLock, dir: &Path) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

/// Removes `path` and syncs its directory. Requires the host-wide lock.
pub(crate) fn remove_synced(_lock: &HostLock, path: &Path) -> Result<(), StoreError> {
    fs::remove_file(path).map_err(|source| StoreError::Remove {
        path: path.to_path_buf(),
        source,
    })?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_and_leaves_no_temp() {
        let t = tempfile::tempdir().unwrap();
        let lock = HostLock::acquire(&t.path().join("lock")).unwrap();
        let p = t.path().join("d/f");
        write_atomic(&lock, &p, b"one").unwrap();
        write_atomic(&lock, &p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(t.path().join("d"))
            .unwrap()
            .flatten()
            .collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn stale_temps_are_swept() {
        let t = tempfile::tempdir().unwrap();
        let lock = HostLock::acquire(&t.path().join("lock")).unwrap();
        fs::write(t.path().join(".hostdev-tmp.x.1.1"), "half").unwrap();
        sweep_stale(&lock, t.path());
        assert!(!t.path().join(".hostdev-tmp.x.1.1").exists());
    }
}
