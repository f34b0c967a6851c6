//! Definitions remembered between calls of a long-running process (the
//! daemon), kept true by inotify.
//!
//! Owns: one inotify instance watching the definition tree's top directory
//! and each parent directory read through it, and what each definition file
//! held when it was last read. Before every use the pending events are read
//! (the kernel queues them before the write that caused them returns), and
//! each names the file or directory to forget, so a call never answers from
//! a file changed before it began. A watch is in place before a file is read
//! into the memo; an overflowed queue, a directory moved or removed, or a
//! change of the top directory itself (or another directory mounted over it)
//! forgets everything.
//! Must not: remember symbolic links (their target changes without an event
//! here), or be used by a short-lived process (nothing to win).

use hostdev_fs::Entry;
use hostdev_model::MdevConfig;
use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use std::collections::HashMap;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// What reading one definition file gave: its content, nothing (no such
/// file), or why it is unusable.
pub(crate) type Outcome = Result<Option<MdevConfig>, String>;

/// Definition files remembered across calls; share one per process.
#[derive(Debug, Default)]
pub struct DefinitionMemo {
    state: Mutex<State>,
}

/// How often the memo answered and how often a file had to be read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoStats {
    /// Files answered from memory.
    pub hits: u64,
    /// Directory listings answered from memory.
    pub listings: u64,
    /// Files read.
    pub reads: u64,
    /// Times everything was forgotten (overflow, a directory moved away).
    pub resets: u64,
}

#[derive(Debug, Default)]
struct State {
    /// The inotify instance; `None` until first used, or when it cannot be had
    /// (then every call reads the files, as without a memo).
    fd: Option<OwnedFd>,
    broken: bool,
    top: PathBuf,
    top_wd: Option<i32>,
    /// The top directory's device and inode when it was watched: another
    /// directory at that path (a mount over it) sends no event.
    top_id: Option<(u64, u64)>,
    /// The top directory's entries.
    top_listing: Option<Vec<Entry>>,
    /// Parent directory name → what is known of it.
    dirs: HashMap<String, Dir>,
    /// Watch → parent directory name.
    names: HashMap<i32, String>,
    /// Moves on whenever anything is forgotten.
    generation: u64,
    /// Something was read that no watch covers (a link, an unwatchable
    /// directory): the generation does not say everything until a reset.
    incomplete: bool,
    stats: MemoStats,
}

/// One watched parent directory.
#[derive(Debug)]
struct Dir {
    wd: i32,
    listing: Option<Vec<Entry>>,
    /// File name → what it held.
    files: HashMap<String, Outcome>,
}

const DIR_EVENTS: WatchFlags = WatchFlags::CREATE
    .union(WatchFlags::DELETE)
    .union(WatchFlags::MODIFY)
    .union(WatchFlags::CLOSE_WRITE)
    .union(WatchFlags::MOVED_FROM)
    .union(WatchFlags::MOVED_TO)
    .union(WatchFlags::ATTRIB)
    .union(WatchFlags::DELETE_SELF)
    .union(WatchFlags::MOVE_SELF)
    .union(WatchFlags::ONLYDIR);

/// Events that change which names a directory holds.
const NAME_EVENTS: ReadFlags = ReadFlags::CREATE
    .union(ReadFlags::DELETE)
    .union(ReadFlags::MOVED_FROM)
    .union(ReadFlags::MOVED_TO);

impl DefinitionMemo {
    /// An empty memo; inotify is set up by the first call that uses it.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counters since the memo was made.
    pub fn stats(&self) -> MemoStats {
        self.lock().stats
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves at worst a stale entry: forget all.
        self.state.lock().unwrap_or_else(|poisoned| {
            let mut g = poisoned.into_inner();
            g.reset();
            self.state.clear_poison();
            g
        })
    }

    /// A number that changes whenever a file or directory of the tree `top`
    /// changed since it was last given; `None` when the memo cannot tell (no
    /// inotify, no tree, or something in it is not watched). Taken before a
    /// read of the whole tree, it stands for what that read sees.
    pub(crate) fn generation(&self, top: &Path) -> Option<u64> {
        let s = self.session(top).s;
        (s.fd.is_some() && s.top_wd.is_some() && !s.incomplete).then_some(s.generation)
    }

    /// Starts one call over the tree `top`: takes the memo, applies what
    /// changed since the last call, and makes sure `top` is watched.
    pub(crate) fn session(&self, top: &Path) -> Session<'_> {
        let mut s = self.lock();
        if s.top != top {
            s.reset();
            s.top = top.to_path_buf();
        }
        let id = rustix::fs::stat(top).ok().map(|st| (st.st_dev, st.st_ino));
        if s.top_wd.is_some() && id != s.top_id {
            s.stats.resets += 1;
            s.reset();
        }
        s.top_id = id;
        s.drain();
        s.watch_top();
        Session { s }
    }
}

/// The memo taken for one call.
pub(crate) struct Session<'a> {
    s: MutexGuard<'a, State>,
}

impl Session<'_> {
    /// The entries of the top directory (`parent` `None`) or of one parent
    /// directory: remembered, or `list()` and remembered when watched.
    pub(crate) fn entries(
        &mut self,
        parent: Option<&str>,
        list: impl FnOnce() -> io::Result<Vec<Entry>>,
    ) -> io::Result<Vec<Entry>> {
        let s = &mut *self.s;
        let known = match parent {
            None => s.top_listing.as_ref(),
            Some(p) => s.dirs.get(p).and_then(|d| d.listing.as_ref()),
        };
        if let Some(l) = known {
            s.stats.listings += 1;
            return Ok(l.clone());
        }
        let watched = match parent {
            None => s.top_wd.is_some(),
            Some(p) => s.watch_dir(p),
        };
        let l = list()?;
        s.incomplete |= !watched;
        if watched {
            match parent {
                None => s.top_listing = Some(l.clone()),
                Some(p) => {
                    if let Some(d) = s.dirs.get_mut(p) {
                        d.listing = Some(l.clone());
                    }
                }
            }
        }
        Ok(l)
    }

    /// What `parent/name` holds: remembered, or `read()` and remembered when it
    /// may be (its directory is watched and it is not a link).
    pub(crate) fn get(
        &mut self,
        parent: &str,
        name: &str,
        is_link: impl FnOnce() -> bool,
        read: impl FnOnce() -> Outcome,
    ) -> Outcome {
        let s = &mut *self.s;
        if let Some(o) = s.dirs.get(parent).and_then(|d| d.files.get(name)) {
            let o = o.clone();
            s.stats.hits += 1;
            return o;
        }
        s.stats.reads += 1;
        // The watch first: a change after it is an event, before it is read.
        let watched = s.watch_dir(parent);
        let link = is_link();
        // A link's target changes without an event here.
        s.incomplete |= link;
        let keep = watched && !link;
        let o = read();
        if keep {
            if let Some(d) = s.dirs.get_mut(parent) {
                d.files.insert(name.to_string(), o.clone());
            }
        }
        o
    }
}

impl State {
    fn reset(&mut self) {
        // Closing the instance drops every watch with it.
        self.generation += 1;
        self.incomplete = false;
        self.fd = None;
        self.top_wd = None;
        self.top_listing = None;
        self.dirs.clear();
        self.names.clear();
    }

    fn fd(&mut self) -> Option<&OwnedFd> {
        if self.fd.is_none() && !self.broken {
            match inotify::init(CreateFlags::NONBLOCK | CreateFlags::CLOEXEC) {
                Ok(fd) => self.fd = Some(fd),
                // No inotify (limits reached): read every time, as without a memo.
                Err(_) => self.broken = true,
            }
        }
        self.fd.as_ref()
    }

    fn watch_top(&mut self) {
        if self.top_wd.is_some() {
            return;
        }
        let top = self.top.clone();
        let Some(fd) = self.fd() else { return };
        // A missing tree is not watched: nothing is remembered until it exists.
        if let Ok(wd) = inotify::add_watch(fd, &top, DIR_EVENTS) {
            self.top_wd = Some(wd);
        }
    }

    /// Watches one parent directory; false when it cannot be (then nothing in
    /// it is remembered).
    fn watch_dir(&mut self, parent: &str) -> bool {
        if self.top_wd.is_none() {
            return false;
        }
        if self.dirs.contains_key(parent) {
            return true;
        }
        let path = self.top.join(parent);
        let Some(fd) = self.fd() else { return false };
        let Ok(wd) = inotify::add_watch(fd, &path, DIR_EVENTS) else {
            return false;
        };
        // The same directory under another name (moved): forget the old name.
        if let Some(old) = self.names.insert(wd, parent.to_string()) {
            self.dirs.remove(&old);
        }
        self.dirs.insert(
            parent.to_string(),
            Dir {
                wd,
                listing: None,
                files: HashMap::new(),
            },
        );
        true
    }

    fn forget_dir(&mut self, parent: &str) {
        if let Some(d) = self.dirs.remove(parent) {
            if self.names.get(&d.wd).is_some_and(|p| p == parent) {
                self.names.remove(&d.wd);
            }
            if let Some(fd) = &self.fd {
                let _ = inotify::remove_watch(fd, d.wd);
            }
        }
    }

    /// Applies every pending event.
    fn drain(&mut self) {
        let Some(fd) = self.fd.as_ref() else { return };
        let mut buf = [MaybeUninit::<u8>::uninit(); 8192];
        let mut reader = inotify::Reader::new(fd, &mut buf);
        let mut forget_all = false;
        let mut forget_dirs = Vec::new();
        let mut forget_files = Vec::new();
        loop {
            let ev = match reader.next() {
                Ok(ev) => ev,
                Err(rustix::io::Errno::INTR) => continue,
                // WOULDBLOCK: all read. Anything else: trust nothing.
                Err(rustix::io::Errno::WOULDBLOCK) => break,
                Err(_) => {
                    forget_all = true;
                    break;
                }
            };
            let flags = ev.events();
            if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
                forget_all = true;
                continue;
            }
            let name = ev.file_name().map(|n| n.to_string_lossy().into_owned());
            if Some(ev.wd()) == self.top_wd {
                match name {
                    // An entry of the top directory: that parent directory.
                    Some(n) => forget_dirs.push((n, true)),
                    // The top directory itself changed, moved or went away.
                    None => forget_all = true,
                }
                continue;
            }
            let Some(dir) = self.names.get(&ev.wd()) else {
                continue; // a watch already dropped
            };
            match name {
                Some(n) => forget_files.push((dir.clone(), n, flags.intersects(NAME_EVENTS))),
                None => forget_dirs.push((dir.clone(), false)),
            }
        }
        if forget_all {
            self.stats.resets += 1;
            self.reset();
            return;
        }
        if !forget_files.is_empty() || !forget_dirs.is_empty() {
            self.generation += 1;
        }
        for (d, n, renamed) in forget_files {
            if let Some(dir) = self.dirs.get_mut(&d) {
                dir.files.remove(&n);
                if renamed {
                    dir.listing = None;
                }
            }
        }
        for (d, top_entry) in forget_dirs {
            if top_entry {
                self.top_listing = None;
            }
            self.forget_dir(&d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HostLock, MdevStore};
    use hostdev_model::{ParentName, TypeId, Uuid};
    use std::fs;
    use std::sync::Arc;

    const A: &str = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001";
    const B: &str = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1002";

    fn def(t: &str) -> String {
        format!(r#"{{"mdev_type":"{t}","start":"auto","attrs":[]}}"#)
    }

    /// A tree with two definitions under `p`, a remembering store over it.
    fn tree() -> (tempfile::TempDir, MdevStore, Arc<DefinitionMemo>) {
        let t = tempfile::tempdir().unwrap();
        let memo = Arc::new(DefinitionMemo::new());
        let s = MdevStore::new(t.path()).remembering(memo.clone());
        fs::create_dir_all(s.dir().join("p")).unwrap();
        fs::write(s.dir().join("p").join(A), def("t-1")).unwrap();
        fs::write(s.dir().join("p").join(B), def("t-2")).unwrap();
        (t, s, memo)
    }

    fn types(s: &MdevStore) -> Vec<(String, String)> {
        let (defs, _) = s.load_all().unwrap();
        defs.into_iter()
            .map(|d| (d.parent.to_string(), d.config.mdev_type.to_string()))
            .collect()
    }

    fn p() -> ParentName {
        ParentName::new("p").unwrap()
    }

    #[test]
    fn a_second_listing_reads_no_file() {
        let (_t, s, memo) = tree();
        assert_eq!(types(&s).len(), 2);
        assert_eq!(memo.stats().reads, 2);
        assert_eq!(types(&s).len(), 2);
        assert_eq!(memo.stats().reads, 2);
        assert_eq!(memo.stats().hits, 2);
    }

    #[test]
    fn a_file_edited_in_place_is_read_again_at_once() {
        let (_t, s, memo) = tree();
        types(&s);
        // Not an atomic rename: the directory's mtime does not change.
        fs::write(s.dir().join("p").join(A), def("t-9")).unwrap();
        assert_eq!(types(&s)[0].1, "t-9");
        assert_eq!(memo.stats().reads, 3);
        let u: Uuid = A.parse().unwrap();
        assert_eq!(
            s.load_one(&p(), &u).unwrap().unwrap().mdev_type.as_str(),
            "t-9"
        );
    }

    #[test]
    fn created_removed_broken_and_saved_files_are_seen() {
        let (t, s, _memo) = tree();
        types(&s);
        let c: Uuid = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1003".parse().unwrap();
        assert_eq!(s.load_one(&p(), &c).unwrap(), None);
        let lock = HostLock::acquire(&t.path().join("lock")).unwrap();
        s.save(
            &lock,
            &p(),
            &c,
            &MdevConfig::new(TypeId::new("t-3").unwrap()),
        )
        .unwrap();
        assert_eq!(
            s.load_one(&p(), &c).unwrap().unwrap().mdev_type.as_str(),
            "t-3"
        );
        fs::remove_file(s.dir().join("p").join(B)).unwrap();
        fs::write(s.dir().join("p").join(A), "{broken").unwrap();
        let (defs, problems) = s.load_all().unwrap();
        assert_eq!(defs.len(), 1);
        assert_eq!(problems.len(), 1);
        assert_eq!(s.load_one(&p(), &B.parse().unwrap()).unwrap(), None);
    }

    #[test]
    fn a_parent_directory_moved_or_replaced_is_read_again() {
        let (_t, s, _memo) = tree();
        types(&s);
        fs::rename(s.dir().join("p"), s.dir().join("q")).unwrap();
        let got = types(&s);
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|(p, _)| p == "q"), "{got:?}");
        // A new directory under the old name, with other content.
        fs::create_dir(s.dir().join("p")).unwrap();
        fs::write(s.dir().join("p").join(A), def("t-7")).unwrap();
        fs::write(s.dir().join("q").join(A), def("t-8")).unwrap();
        let got = types(&s);
        assert_eq!(
            got,
            vec![
                ("p".into(), "t-7".into()),
                ("q".into(), "t-8".into()),
                ("q".into(), "t-2".into())
            ]
        );
    }

    #[test]
    fn the_generation_moves_with_every_change_and_only_then() {
        let (t, s, _memo) = tree();
        let g = s.generation().expect("watched");
        types(&s);
        assert_eq!(s.generation(), Some(g), "reading changes nothing");
        fs::write(s.dir().join("p").join(A), def("t-9")).unwrap();
        let g2 = s.generation().expect("watched");
        assert_ne!(g2, g);
        types(&s);
        fs::create_dir(s.dir().join("r")).unwrap();
        assert_ne!(s.generation(), Some(g2), "a new parent directory");
        // A linked definition cannot be followed: no generation to trust.
        fs::remove_file(s.dir().join("p").join(B)).unwrap();
        std::os::unix::fs::symlink(t.path().join("x"), s.dir().join("p").join(B)).unwrap();
        types(&s);
        assert_eq!(s.generation(), None);
        assert_eq!(MdevStore::new(t.path()).generation(), None, "no memo");
    }

    #[test]
    fn a_linked_definition_is_never_remembered() {
        let (t, s, memo) = tree();
        let target = t.path().join("elsewhere");
        fs::write(&target, def("t-5")).unwrap();
        fs::remove_file(s.dir().join("p").join(B)).unwrap();
        std::os::unix::fs::symlink(&target, s.dir().join("p").join(B)).unwrap();
        assert_eq!(types(&s)[1].1, "t-5");
        // The link's target changes without an event in the watched directory.
        fs::write(&target, def("t-6")).unwrap();
        assert_eq!(types(&s)[1].1, "t-6");
        let u: Uuid = B.parse().unwrap();
        fs::write(&target, def("t-4")).unwrap();
        assert_eq!(
            s.load_one(&p(), &u).unwrap().unwrap().mdev_type.as_str(),
            "t-4"
        );
        assert_eq!(memo.stats().hits, 1, "only the regular file was remembered");
    }

    #[test]
    fn a_tree_that_appears_later_is_remembered_from_then_on() {
        let t = tempfile::tempdir().unwrap();
        let memo = Arc::new(DefinitionMemo::new());
        let s = MdevStore::new(t.path()).remembering(memo.clone());
        assert!(types(&s).is_empty());
        fs::create_dir_all(s.dir().join("p")).unwrap();
        fs::write(s.dir().join("p").join(A), def("t-1")).unwrap();
        assert_eq!(types(&s).len(), 1);
        assert_eq!(types(&s).len(), 1);
        assert_eq!(memo.stats().hits, 1);
        // The whole tree removed and made again.
        fs::remove_dir_all(s.dir()).unwrap();
        assert!(types(&s).is_empty());
        fs::create_dir_all(s.dir().join("p")).unwrap();
        fs::write(s.dir().join("p").join(A), def("t-3")).unwrap();
        assert_eq!(types(&s)[0].1, "t-3");
    }
}
