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

/// Named definitions and the files that were skipped.
pub type LoadedJson<T> = (Vec<(String, T)>, Vec<LoadProblem>);

/// Definitions of type `T` in one directory, named `<name>.json`.
#[derive(Debug, Clone)]
pub struct JsonDir<T> {
    dir: PathBuf,
    _t: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> JsonDir<T> {
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
            match fs::read(&path)
                .map_err(|e| format!("it cannot be read ({e})"))
                .and_then(|b| {
                    serde_json::from_slice::<T>(&b)
                        .map_err(|e| format!("it is not a valid definition ({e})"))
                }) {
                Ok(v) => out.push((name.to_string(), v)),
                Err(reason) => problems.push(LoadProblem { path, reason }),
            }
        }
        Ok((out, problems))
    }

    /// One definition; `Ok(None)` if absent.
    pub fn load(&self, name: &str) -> Result<Option<T>, StoreError> {
        let path = self.path_of(name);
        match fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| StoreError::Definition {
                    path,
                    reason: format!("it is not a valid definition ({e})"),
                }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Definition {
                path,
                reason: format!("it cannot be read ({e})"),
            }),
        }
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
