//! The FUSE front-end: exposes the simulated kernel ([`Kernel`]) as a
//! filesystem shaped like sysfs, so that unmodified programs (hostdev's and
//! Debian's mdevctl) run against it.
//!
//! Owns: inode numbers and the FUSE protocol. Must not: decide kernel
//! semantics (the model does). Nothing is cached by the kernel (TTL 0, direct
//! I/O), because sysfs content changes under the reader.

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, ReplyOpen, ReplyWrite, Request,
    TimeOrNow, WriteFlags,
};
use hostdev_kmodel::{Kernel, Kind, Node};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

const TTL: Duration = Duration::ZERO;

#[derive(Debug, Default)]
struct Inodes {
    /// (path, incarnation) → inode number.
    by_path: HashMap<(String, u64), u64>,
    paths: HashMap<u64, String>,
    next: u64,
}

/// The simulated sysfs.
#[derive(Debug, Clone)]
pub struct SimFs {
    kernel: Arc<Mutex<Kernel>>,
    inodes: Arc<Mutex<Inodes>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SimFs {
    /// A filesystem over this kernel.
    pub fn new(kernel: Arc<Mutex<Kernel>>) -> SimFs {
        let mut i = Inodes {
            next: 2,
            ..Default::default()
        };
        i.by_path.insert((String::new(), 0), 1);
        i.paths.insert(1, String::new());
        SimFs {
            kernel,
            inodes: Arc::new(Mutex::new(i)),
        }
    }

    /// After a reboot every path gets a new inode number, as re-registered
    /// sysfs nodes do.
    pub fn renumber(&self) {
        let mut i = lock(&self.inodes);
        let next = i.next;
        *i = Inodes {
            next,
            ..Default::default()
        };
        i.by_path.insert((String::new(), 0), 1);
        i.paths.insert(1, String::new());
    }

    /// The inode number of `path` in its `incarnation` (see
    /// [`Kernel::incarnation`]).
    fn ino(&self, path: &str, incarnation: u64) -> u64 {
        let mut i = lock(&self.inodes);
        let key = (path.to_string(), incarnation);
        if let Some(n) = i.by_path.get(&key) {
            return *n;
        }
        let n = i.next;
        i.next += 1;
        i.by_path.insert(key, n);
        i.paths.insert(n, path.to_string());
        n
    }

    fn path(&self, ino: INodeNo) -> Option<String> {
        lock(&self.inodes).paths.get(&ino.0).cloned()
    }

    fn attr(&self, ino: u64, node: &Node) -> FileAttr {
        let (kind, perm, size) = match node {
            Node::Dir(_) => (FileType::Directory, 0o755, 0),
            Node::File { writable: true } => (FileType::RegularFile, 0o644, 4096),
            Node::File { writable: false } => (FileType::RegularFile, 0o444, 4096),
            Node::Link(t) => (FileType::Symlink, 0o777, t.len() as u64),
        };
        let now = SystemTime::now();
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: 0,
            atime: now,
            mtime: now,
            ctime: now,
            crtime: now,
            kind,
            perm,
            nlink: 1,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    fn join(parent: &str, name: &str) -> String {
        if parent.is_empty() {
            name.to_string()
        } else {
            format!("{parent}/{name}")
        }
    }
}

fn errno(e: i32) -> Errno {
    Errno::from_i32(e)
}

impl Filesystem for SimFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let (Some(dir), Some(name)) = (self.path(parent), name.to_str()) else {
            return reply.error(Errno::ENOENT);
        };
        let path = Self::join(&dir, name);
        let (node, incarnation) = {
            let mut k = lock(&self.kernel);
            (k.look(&path), k.incarnation(&path))
        };
        match node {
            Some(n) => {
                let ino = self.ino(&path, incarnation);
                reply.entry(&TTL, &self.attr(ino, &n), Generation(0));
            }
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let Some(path) = self.path(ino) else {
            return reply.error(Errno::ENOENT);
        };
        let node = lock(&self.kernel).node(&path);
        match node {
            Some(n) => reply.attr(&TTL, &self.attr(ino.0, &n)),
            None => reply.error(Errno::ENOENT),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        // sysfs ignores truncation (a shell's `>` opens with O_TRUNC).
        self.getattr(req, ino, fh, reply)
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let path = self.path(ino).unwrap_or_default();
        match lock(&self.kernel).node(&path) {
            Some(Node::Link(t)) => reply.data(t.as_bytes()),
            // Removed since it was looked up: gone, as sysfs says (a listing
            // racing a stop must see ENOENT, not a malformed link).
            None => reply.error(Errno::ENOENT),
            Some(_) => reply.error(Errno::EINVAL),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.path(ino).and_then(|p| lock(&self.kernel).node(&p)) {
            Some(Node::File { .. }) => reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO),
            Some(_) => reply.error(Errno::EISDIR),
            None => reply.error(Errno::ENOENT),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let path = self.path(ino).unwrap_or_default();
        let data = lock(&self.kernel).read(&path);
        match data {
            Ok(d) => {
                let start = (offset as usize).min(d.len());
                let end = (start + size as usize).min(d.len());
                reply.data(&d[start..end]);
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        data: &[u8],
        _wflags: WriteFlags,
        _flags: OpenFlags,
        _lock: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let path = self.path(ino).unwrap_or_default();
        let delay = lock(&self.kernel).latency(&path);
        let len = data.len() as u32;
        let apply = {
            let kernel = Arc::clone(&self.kernel);
            let data = data.to_vec();
            move || match lock(&kernel).write(&path, &data) {
                Ok(()) => reply.written(len),
                Err(e) => reply.error(errno(e)),
            }
        };
        if delay.is_zero() {
            apply();
        } else {
            // Slow drivers do not stall the whole filesystem: answer later.
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                apply();
            });
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some(path) = self.path(ino) else {
            return reply.error(Errno::ENOENT);
        };
        let (children, incarnations) = {
            let k = lock(&self.kernel);
            let Some(Node::Dir(children)) = k.node(&path) else {
                return reply.error(Errno::ENOTDIR);
            };
            let inc: Vec<u64> = children
                .iter()
                .map(|(name, _)| k.incarnation(&Self::join(&path, name)))
                .collect();
            (children, inc)
        };
        let mut all: Vec<(u64, FileType, String)> = vec![
            (ino.0, FileType::Directory, ".".into()),
            (ino.0, FileType::Directory, "..".into()),
        ];
        for ((name, kind), inc) in children.into_iter().zip(incarnations) {
            let child = self.ino(&Self::join(&path, &name), inc);
            let ft = match kind {
                Kind::Dir => FileType::Directory,
                Kind::File => FileType::RegularFile,
                Kind::Link => FileType::Symlink,
            };
            all.push((child, ft, name));
        }
        for (i, (ino, ft, name)) in all.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(ino), (i + 1) as u64, ft, name) {
                break;
            }
        }
        reply.ok();
    }
}
