//! A directory of JSON definitions, one file per named object
//! (`/etc/hostdev/vgpu.d/<vf>.json`, `/etc/hostdev/sriov.d/<pf>.json`, …),
//! with the store's guarantees: atomic writes under the host-wide lock, and a
//! bad file reported with its path and skipped.

use crate::atomic::{remove_synced, sweep_stale, write_atomic};
use crate::{HostLock, LoadProblem, StoreError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::{fs, io};

/// A definition that names itself: its file must be `<name>.json`. A file
/// whose content names another object (a copy not edited) is reported and
/// never acted on.
pub trait Named {
    /// The name the definition gives itself.
    fn name(&self) -> String;
}

impl Named for hostdev_model::vgpu::VgpuDefinition {
    fn name(&self) -> String {
        self.vf.to_string()
    }
}

impl Named for hostdev_model::vgpu::SriovDefinition {
    fn name(&self) -> String {
        self.pf.to_string()
    }
}

impl Named for hostdev_model::vdpa::VdpaDefinition {
    fn name(&self) -> String {
        self.name.to_string()
    }
}

/// Named definitions and the files that were skipped.
pub type LoadedJson<T> = (Vec<(String, T)>, Vec<LoadProblem>);

/// Definitions of type `T` in one directory, named `<name>.json`.
#[derive(Debug, Clone)]
pub struct JsonDir<T> {
    dir: PathBuf,
    _t: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned + Named> JsonDir<T> {
    /// The directory `rel` (e.g. `etc/hostdev/vgpu.d`) under a root prefix.
    pub fn new(root: &Path, rel: &str) -> Self {
        JsonDir {
            dir: root.join(rel),
            _t: PhantomData,
        }
    }

    /// The file of `name`; the caller has validated `name` as a path component.
    pub fn path_of(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    /// Every definition with its name, sorted; bad files are reported.
    pub fn load_all(&self) -> Result<LoadedJson<T>, StoreError> {
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Default::default()),
            Err(source) => {
                return Err(StoreError::Dir {
                    path: self.dir.clone(),
                    source,
                })
            }
        };
        let mut names: Vec<String> = rd
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(String::from))
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        let (mut out, mut problems) = (Vec::new(), Vec::new());
        for n in names {
            let path = self.dir.join(&n);
            let Some(name) = n.strip_suffix(".json") else {
                problems.push(LoadProblem {
                    path,
                    reason: "its name does not end in .json".into(),
                });
                continue;
            };
            match Self::read(&path, name) {
                Ok(Some(v)) => out.push((name.to_string(), v)),
                Ok(None) => {} // removed while we listed
                Err(reason) => problems.push(LoadProblem { path, reason }),
            }
        }
        Ok((out, problems))
    }

    /// Reads one file: a regular file (never blocking on a FIFO), valid JSON
    /// of `T`, naming itself as its file does.
    fn read(path: &Path, name: &str) -> Result<Option<T>, String> {
        let Some(bytes) =
            hostdev_fs::read_regular(path).map_err(|e| format!("it cannot be read ({e})"))?
        else {
            return Ok(None);
        };
        let v: T = serde_json::from_slice(&bytes)
            .map_err(|e| format!("it is not a valid definition ({e})"))?;
        let named = v.name();
        if named != name {
            return Err(format!(
                "its content names {named}, not {name} as its file name does; it is not acted on"
            ));
        }
        Ok(Some(v))
    }

    /// One definition; `Ok(None)` if absent.
    pub fn load(&self, name: &str) -> Result<Option<T>, StoreError> {
        let path = self.path_of(name);
        Self::read(&path, name).map_err(|reason| StoreError::Definition { path, reason })
    }

    /// Whether a file (usable or not) exists for `name`.
    pub fn exists(&self, name: &str) -> bool {
        self.path_of(name).symlink_metadata().is_ok()
    }

    /// Writes a definition atomically.
    pub fn save(&self, lock: &HostLock, name: &str, v: &T) -> Result<(), StoreError> {
        let mut bytes = serde_json::to_vec_pretty(v).map_err(|e| StoreError::Write {
            path: self.path_of(name),
            source: io::Error::other(e),
        })?;
        bytes.push(b'\n');
        sweep_stale(lock, &self.dir);
        write_atomic(lock, &self.path_of(name), &bytes)
    }

    /// Removes a definition.
    pub fn remove(&self, lock: &HostLock, name: &str) -> Result<(), StoreError> {
        remove_synced(lock, &self.path_of(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct D {
        n: u32,
    }

    impl Named for D {
        fn name(&self) -> String {
            if self.n == 1 {
                "a".into()
            } else {
                format!("n{}", self.n)
            }
        }
    }

    #[test]
    fn a_copied_file_naming_another_object_is_reported_not_used() {
        let t = tempfile::tempdir().unwrap();
        let s: JsonDir<D> = JsonDir::new(t.path(), "etc/hostdev/x.d");
        let lock = HostLock::acquire(&t.path().join("lock")).unwrap();
        s.save(&lock, "a", &D { n: 1 }).unwrap();
        std::fs::copy(s.path_of("a"), s.path_of("b")).unwrap();
        let (ok, bad) = s.load_all().unwrap();
        assert_eq!(ok, vec![("a".to_string(), D { n: 1 })]);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].path, s.path_of("b"));
        assert!(
            bad[0].reason.contains("names a, not b"),
            "{}",
            bad[0].reason
        );
        let e = s.load("b").unwrap_err().to_string();
        assert!(e.contains("names a, not b"), "{e}");
    }

    #[test]
    fn a_fifo_or_directory_is_reported_without_blocking() {
        let t = tempfile::tempdir().unwrap();
        let s: JsonDir<D> = JsonDir::new(t.path(), "etc/hostdev/x.d");
        let lock = HostLock::acquire(&t.path().join("lock")).unwrap();
        s.save(&lock, "a", &D { n: 1 }).unwrap();
        crate::test_fifo(&s.path_of("fifo"));
        std::fs::create_dir(s.path_of("dir")).unwrap();
        // A FIFO opened for reading the ordinary way blocks until a writer
        // comes: this load returning at all is the test.
        let (ok, bad) = s.load_all().unwrap();
        assert_eq!(ok.len(), 1);
        let mut reasons: Vec<String> = bad.iter().map(|p| p.reason.clone()).collect();
        reasons.sort();
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(
            reasons.iter().all(|r| r.contains("not a regular file")),
            "{reasons:?}"
        );
        assert!(s
            .load("fifo")
            .unwrap_err()
            .to_string()
            .contains("not a regular file"));
    }

    #[test]
    fn bad_files_are_reported_and_skipped() {
        let t = tempfile::tempdir().unwrap();
        let s: JsonDir<D> = JsonDir::new(t.path(), "etc/hostdev/x.d");
        let lock = HostLock::acquire(&t.path().join("lock")).unwrap();
        s.save(&lock, "a", &D { n: 1 }).unwrap();
        std::fs::write(s.path_of("b"), "{\"n\": \"x\"}").unwrap();
        std::fs::write(t.path().join("etc/hostdev/x.d/readme"), "hi").unwrap();
        let (ok, bad) = s.load_all().unwrap();
        assert_eq!(ok, vec![("a".to_string(), D { n: 1 })]);
        assert_eq!(bad.len(), 2);
        s.remove(&lock, "a").unwrap();
        assert_eq!(s.load("a").unwrap(), None);
    }
}
