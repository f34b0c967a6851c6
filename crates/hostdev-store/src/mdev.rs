//! mdevctl's definition tree: `/etc/mdevctl.d/<parent>/<uuid>`, one JSON file
//! per definition; the same UUID may be defined under several parents.

use crate::atomic::{remove_synced, sweep_stale, write_atomic};
use crate::memo::{DefinitionMemo, Outcome, Session};
use crate::{HostLock, StoreError};
use hostdev_fs::{DirFd, Entry, Kind};
use hostdev_model::format::definition_file;
use hostdev_model::{MdevConfig, ParentName, Uuid};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Directory of mdevctl's callout and notifier scripts inside the tree; not a parent.
const SCRIPTS_DIR: &str = "scripts.d";

/// One stored definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    /// Its UUID (the file name).
    pub uuid: Uuid,
    /// Its parent (the directory name).
    pub parent: ParentName,
    /// Its content.
    pub config: MdevConfig,
}

/// A file that was skipped while loading, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadProblem {
    /// The file or directory.
    pub path: PathBuf,
    /// Why it was skipped.
    pub reason: String,
}

impl fmt::Display for LoadProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "skipping {}: {}", self.path.display(), self.reason)
    }
}

/// The definition tree under a root prefix.
#[derive(Debug, Clone)]
pub struct MdevStore {
    dir: PathBuf,
    memo: Option<Arc<DefinitionMemo>>,
}

/// What loading found: the usable definitions (sorted by parent, then UUID)
/// and the problems met on the way.
pub type Loaded = (Vec<Definition>, Vec<LoadProblem>);

impl MdevStore {
    /// The tree of the host whose filesystem root is `root`.
    pub fn new(root: &Path) -> Self {
        MdevStore {
            dir: root.join("etc/mdevctl.d"),
            memo: None,
        }
    }

    /// The same tree, its files remembered in `memo` between calls (for a
    /// long-running process; see [`DefinitionMemo`]).
    pub fn remembering(mut self, memo: Arc<DefinitionMemo>) -> Self {
        self.memo = Some(memo);
        self
    }

    /// With a memo: a number that changes whenever a definition file or
    /// directory changes; taken before [`MdevStore::load_all`], an unchanged
    /// number later means that load still holds. `None` without a memo or
    /// when it cannot tell.
    pub fn generation(&self) -> Option<u64> {
        self.memo.as_ref()?.generation(&self.dir)
    }

    /// The tree's top directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of one definition.
    pub fn path_of(&self, parent: &ParentName, uuid: &Uuid) -> PathBuf {
        self.dir.join(parent.as_str()).join(uuid.to_string())
    }

    /// Parent directories, sorted; unusable names are reported.
    /// The memo taken for one call (drained once), if there is one.
    fn session(&self) -> Option<Session<'_>> {
        self.memo.as_ref().map(|m| m.session(&self.dir))
    }

    fn parent_dirs(
        &self,
        memo: &mut Option<Session<'_>>,
        problems: &mut Vec<LoadProblem>,
    ) -> Result<Vec<ParentName>, StoreError> {
        let list = || -> io::Result<Vec<Entry>> {
            match DirFd::open(&self.dir) {
                Ok(d) => d.entries(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
                Err(e) => Err(e),
            }
        };
        let entries = match memo {
            Some(m) => m.entries(None, list),
            None => list(),
        }
        .map_err(|source| StoreError::Dir {
            path: self.dir.clone(),
            source,
        })?;
        let mut out = Vec::new();
        for Entry { name, kind, .. } in entries {
            if name == SCRIPTS_DIR || name.starts_with('.') {
                continue;
            }
            let is_dir = match kind {
                Kind::Dir => true,
                Kind::File => false,
                Kind::Link | Kind::Other => self.dir.join(&name).is_dir(),
            };
            if !is_dir {
                continue;
            }
            match ParentName::new(name.clone()) {
                Ok(p) => out.push(p),
                Err(e) => problems.push(LoadProblem {
                    path: self.dir.join(&name),
                    reason: e.to_string(),
                }),
            }
        }
        out.sort();
        Ok(out)
    }

    fn load_dir(
        &self,
        memo: &mut Option<Session<'_>>,
        parent: &ParentName,
        defs: &mut Vec<Definition>,
        problems: &mut Vec<LoadProblem>,
    ) {
        let dir = self.dir.join(parent.as_str());
        let mut fd = None;
        let mut list = || -> io::Result<Vec<Entry>> {
            let d = DirFd::open(&dir)?;
            let e = d.entries();
            fd = Some(d);
            e
        };
        let listed = match memo {
            Some(m) => m.entries(Some(parent.as_str()), list),
            None => list(),
        };
        let entries = match listed {
            Ok(x) => x,
            Err(e) => {
                problems.push(LoadProblem {
                    path: dir,
                    reason: format!("it cannot be read ({e})"),
                });
                return;
            }
        };
        let mut found = Vec::with_capacity(entries.len());
        for Entry { name, kind, .. } in entries {
            if name.starts_with('.') {
                continue;
            }
            match name.parse::<Uuid>() {
                Ok(uuid) => found.push((uuid, name, kind)),
                Err(_) => problems.push(LoadProblem {
                    path: dir.join(&name),
                    reason: "its name is not a UUID".into(),
                }),
            }
        }
        found.sort();
        let mut buf = Vec::with_capacity(4096);
        for (uuid, name, kind) in found {
            let mut read = || -> Outcome {
                if fd.is_none() {
                    fd = Some(DirFd::open(&dir).map_err(|e| format!("it cannot be read ({e})"))?);
                }
                let Some(fd) = &fd else { return Ok(None) };
                match fd.read_regular_into(&name, &mut buf) {
                    Ok(true) => MdevConfig::from_json(&buf)
                        .map(Some)
                        .map_err(|e| e.to_string()),
                    Ok(false) => Ok(None), // removed while we listed
                    Err(e) => Err(format!("it cannot be read ({e})")),
                }
            };
            let parsed = match memo {
                Some(m) => m.get(parent.as_str(), &name, || kind != Kind::File, read),
                None => read(),
            };
            match parsed {
                Ok(None) => {}
                Ok(Some(config)) => defs.push(Definition {
                    uuid,
                    parent: parent.clone(),
                    config,
                }),
                Err(reason) => problems.push(LoadProblem {
                    path: dir.join(&name),
                    reason,
                }),
            }
        }
    }

    fn load_file(path: &Path) -> Result<MdevConfig, String> {
        let bytes = hostdev_fs::read_regular(path)
            .map_err(|e| format!("it cannot be read ({e})"))?
            .ok_or("it was removed while being read")?;
        MdevConfig::from_json(&bytes).map_err(|e| e.to_string())
    }

    /// Every definition, sorted by parent then UUID.
    pub fn load_all(&self) -> Result<Loaded, StoreError> {
        let mut problems = Vec::new();
        let mut defs = Vec::new();
        let mut memo = self.session();
        for p in self.parent_dirs(&mut memo, &mut problems)? {
            self.load_dir(&mut memo, &p, &mut defs, &mut problems);
        }
        Ok((defs, problems))
    }

    /// The definitions under one parent.
    pub fn load_parent(&self, parent: &ParentName) -> Result<Loaded, StoreError> {
        let mut problems = Vec::new();
        let mut defs = Vec::new();
        if self.dir.join(parent.as_str()).is_dir() {
            self.load_dir(&mut self.session(), parent, &mut defs, &mut problems);
        }
        Ok((defs, problems))
    }

    /// Every definition of one UUID, across parents.
    pub fn find(&self, uuid: &Uuid) -> Result<Loaded, StoreError> {
        let mut problems = Vec::new();
        let mut defs = Vec::new();
        for parent in self.parent_dirs(&mut self.session(), &mut problems)? {
            let path = self.path_of(&parent, uuid);
            if !path.exists() {
                continue;
            }
            match Self::load_file(&path) {
                Ok(config) => defs.push(Definition {
                    uuid: *uuid,
                    parent,
                    config,
                }),
                Err(reason) => problems.push(LoadProblem { path, reason }),
            }
        }
        Ok((defs, problems))
    }

    /// Parents under which a definition file of `uuid` exists, usable or not.
    pub fn parents_with(&self, uuid: &Uuid) -> Result<Vec<ParentName>, StoreError> {
        let mut ignored = Vec::new();
        Ok(self
            .parent_dirs(&mut self.session(), &mut ignored)?
            .into_iter()
            .filter(|p| self.path_of(p, uuid).exists())
            .collect())
    }

    /// Loads one definition file; a missing file is `Ok(None)`.
    pub fn load_one(
        &self,
        parent: &ParentName,
        uuid: &Uuid,
    ) -> Result<Option<MdevConfig>, StoreError> {
        let path = self.path_of(parent, uuid);
        let read = || -> Outcome {
            match hostdev_fs::read_regular(&path) {
                Ok(Some(bytes)) => MdevConfig::from_json(&bytes)
                    .map(Some)
                    .map_err(|e| e.to_string()),
                Ok(None) => Ok(None),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(format!("it cannot be read ({e})")),
            }
        };
        let is_link = || {
            path.symlink_metadata()
                .is_ok_and(|m| m.file_type().is_symlink())
        };
        let outcome = match self.session() {
            Some(mut m) => m.get(parent.as_str(), &uuid.to_string(), is_link, read),
            None => read(),
        };
        outcome.map_err(|reason| StoreError::Definition { path, reason })
    }

    /// Whether a definition file exists (usable or not) for this parent and UUID.
    pub fn exists(&self, parent: &ParentName, uuid: &Uuid) -> bool {
        self.path_of(parent, uuid).exists()
    }

    /// Writes a definition atomically.
    pub fn save(
        &self,
        lock: &HostLock,
        parent: &ParentName,
        uuid: &Uuid,
        c: &MdevConfig,
    ) -> Result<(), StoreError> {
        let path = self.path_of(parent, uuid);
        if let Some(dir) = path.parent() {
            sweep_stale(lock, dir);
        }
        write_atomic(lock, &path, definition_file(c).as_bytes())
    }

    /// Removes a definition.
    pub fn remove(
        &self,
        lock: &HostLock,
        parent: &ParentName,
        uuid: &Uuid,
    ) -> Result<(), StoreError> {
        remove_synced(lock, &self.path_of(parent, uuid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostdev_model::TypeId;
    use std::fs;

    /// A store in a temp dir with one good definition of `mtty`.
    fn one_good() -> (tempfile::TempDir, MdevStore, ParentName, Uuid) {
        let t = tempfile::tempdir().unwrap();
        let s = MdevStore::new(t.path());
        let lock = HostLock::acquire(&t.path().join("lock")).unwrap();
        let p = ParentName::new("mtty").unwrap();
        let good: Uuid = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001".parse().unwrap();
        s.save(
            &lock,
            &p,
            &good,
            &MdevConfig::new(TypeId::new("mtty-1").unwrap()),
        )
        .unwrap();
        (t, s, p, good)
    }

    #[test]
    fn a_fifo_among_definitions_is_reported_without_blocking() {
        let (_t, s, p, _) = one_good();
        let fifo: Uuid = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1002".parse().unwrap();
        crate::test_fifo(&s.path_of(&p, &fifo));
        // Reading a FIFO the ordinary way blocks for a writer: returning is the test.
        let (defs, problems) = s.load_all().unwrap();
        assert_eq!(defs.len(), 1);
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].reason.contains("not a regular file"),
            "{}",
            problems[0].reason
        );
        let e = s.load_one(&p, &fifo).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let (_, problems) = s.find(&fifo).unwrap();
        assert_eq!(problems.len(), 1);
    }

    #[test]
    fn a_malformed_file_does_not_hide_its_siblings() {
        let (_t, s, _p, good) = one_good();
        fs::write(
            s.dir().join("mtty/83b8f4f2-509f-382f-3c1e-e6bfe0fa1000"),
            "{garbage",
        )
        .unwrap();
        fs::write(
            s.dir().join("mtty/83b8f4f2-509f-382f-3c1e-e6bfe0fa1002"),
            r#"{"mdev_type":"mtty-1","start":"auto","attrs":[{"x":5}]}"#,
        )
        .unwrap();
        fs::create_dir_all(s.dir().join("scripts.d/callouts")).unwrap();
        let (defs, problems) = s.load_all().unwrap();
        assert_eq!(defs.len(), 1);
        assert_eq!(defs[0].uuid, good);
        assert_eq!(problems.len(), 2);
        assert!(problems
            .iter()
            .any(|p| p.to_string().contains("\"attrs[0].x\" must be a string")));
    }

    #[test]
    fn same_uuid_under_two_parents() {
        let t = tempfile::tempdir().unwrap();
        let s = MdevStore::new(t.path());
        let lock = HostLock::acquire(&t.path().join("lock")).unwrap();
        let u = Uuid::new_v4();
        let c = MdevConfig::new(TypeId::new("x").unwrap());
        s.save(&lock, &ParentName::new("a").unwrap(), &u, &c)
            .unwrap();
        s.save(&lock, &ParentName::new("b").unwrap(), &u, &c)
            .unwrap();
        let (defs, _) = s.find(&u).unwrap();
        assert_eq!(defs.len(), 2);
        s.remove(&lock, &ParentName::new("a").unwrap(), &u).unwrap();
        assert_eq!(s.find(&u).unwrap().0.len(), 1);
    }
}
