//! Directory handles for reading many small files cheaply.
//!
//! Listing thousands of devices and definitions is dominated by syscalls and
//! path walks. A [`DirFd`] opens a directory once; every file under it is then
//! opened relative to it (a one- or two-component walk instead of the whole
//! path), read with one `read` into a reused buffer and closed: three syscalls
//! per file instead of the five `std::fs::read` makes.
//!
//! Owns: reading. Must not: write anything (writes go through hostdev-store's
//! atomic writer or the sysfs crate's open-existing writer).
#![deny(missing_docs)]

use rustix::fs::{openat, readlinkat, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Size of one read. Sysfs attributes fit a page; a short read ends the file.
const CHUNK: usize = 8192;

/// The kind of a directory entry, as `getdents` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link.
    Link,
    /// Anything else, or not reported by the filesystem.
    Other,
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: Kind,
    /// Its inode number (changes when the entry is recreated).
    pub ino: u64,
}

/// An open directory.
#[derive(Debug)]
pub struct DirFd(OwnedFd);

fn to_io(e: Errno) -> io::Error {
    io::Error::from(e)
}

impl DirFd {
    /// Opens `path` as a directory.
    pub fn open(path: &Path) -> io::Result<DirFd> {
        openat(
            rustix::fs::CWD,
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map(DirFd)
        .map_err(to_io)
    }

    /// Opens a directory below this one (`name` may have several components).
    pub fn open_dir(&self, name: &str) -> io::Result<DirFd> {
        openat(
            &self.0,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map(DirFd)
        .map_err(to_io)
    }

    /// The entries of this directory (without `.` and `..`), unsorted.
    pub fn entries(&self) -> io::Result<Vec<Entry>> {
        let dir = Dir::read_from(&self.0).map_err(to_io)?;
        let mut out = Vec::new();
        for ent in dir {
            let ent = ent.map_err(to_io)?;
            let name = ent.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let ino = ent.ino();
            let Ok(name) = std::str::from_utf8(name) else {
                out.push(Entry {
                    name: String::from_utf8_lossy(name).into_owned(),
                    kind: Kind::Other,
                    ino,
                });
                continue;
            };
            let kind = match ent.file_type() {
                FileType::Directory => Kind::Dir,
                FileType::RegularFile => Kind::File,
                FileType::Symlink => Kind::Link,
                _ => Kind::Other,
            };
            out.push(Entry {
                name: name.to_string(),
                kind,
                ino,
            });
        }
        Ok(out)
    }

    /// Like [`DirFd::read_into`] for files people put there (definitions):
    /// opened without blocking, and anything but a regular file (a FIFO, a
    /// device, a directory) is refused before a byte is read.
    pub fn read_regular_into(&self, name: &str, buf: &mut Vec<u8>) -> io::Result<bool> {
        read_regular_at(&self.0, name, buf, Limits::ANY)
    }

    /// Reads the file `name` (relative to this directory) into `buf`, replacing
    /// its content. `Ok(false)` if it does not exist.
    pub fn read_into(&self, name: &str, buf: &mut Vec<u8>) -> io::Result<bool> {
        buf.clear();
        let fd = match openat(
            &self.0,
            name,
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(false),
            Err(e) => return Err(to_io(e)),
        };
        loop {
            // Read into spare capacity: no zeroing of a buffer the kernel fills.
            buf.reserve(CHUNK);
            let before = buf.len();
            let room = buf.capacity() - before;
            let n = loop {
                match rustix::io::read(&fd, rustix::buffer::spare_capacity(buf)) {
                    Err(Errno::INTR) => continue,
                    r => break r.map_err(to_io)?,
                }
            };
            debug_assert_eq!(buf.len(), before + n);
            // A short read from a regular file or a sysfs attribute is its end.
            if n < room {
                return Ok(true);
            }
        }
    }

    /// The target of the link `name`; `Ok(None)` if it does not exist.
    pub fn read_link(&self, name: &str) -> io::Result<Option<PathBuf>> {
        match readlinkat(&self.0, name, Vec::new()) {
            Ok(target) => Ok(Some(PathBuf::from(OsStr::from_bytes(target.as_bytes())))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(to_io(e)),
        }
    }
}

/// The file's size, if it is a regular file.
fn check_regular(fd: &OwnedFd) -> io::Result<u64> {
    let st = rustix::fs::fstat(fd).map_err(to_io)?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile {
        Ok(u64::try_from(st.st_size).unwrap_or(0))
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "it is not a regular file",
        ))
    }
}

/// Reads to the end, refusing more than `max` bytes (a file that grew
/// after its size was read).
fn read_all(fd: &OwnedFd, buf: &mut Vec<u8>, max: u64) -> io::Result<()> {
    loop {
        if buf.len() as u64 > max {
            return Err(too_large(max));
        }
        buf.reserve(CHUNK);
        let n = loop {
            match rustix::io::read(fd, rustix::buffer::spare_capacity(buf)) {
                Err(Errno::INTR) => continue,
                r => break r.map_err(to_io)?,
            }
        };
        if n == 0 {
            return Ok(());
        }
    }
}

/// Reads a file people put somewhere (a definition) by path: opened without
/// blocking, refused unless it is a regular file. `Ok(None)` if it is absent.
pub fn read_regular(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    Ok(read_regular_at(rustix::fs::CWD, path, &mut buf, Limits::ANY)?.then_some(buf))
}

/// How a file someone gave may look: at most `max` bytes, and whether a
/// symbolic link is followed to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest file read; a larger one is refused before it is read.
    pub max: u64,
    /// A symbolic link (the last component) is followed; `false` refuses it.
    pub follow: bool,
}

impl Limits {
    /// No bound, links followed (definitions hostdev wrote itself).
    const ANY: Limits = Limits {
        max: u64::MAX,
        follow: true,
    };

    /// At most `max` bytes, links followed: a path given on the command line.
    pub const fn at_most(max: u64) -> Limits {
        Limits { max, follow: true }
    }

    /// At most `max` bytes, and not through a symbolic link: a file in a
    /// directory whose errors readers other than root see (a link there
    /// could name any file of the host, and an error quote its content).
    pub const fn own_file(max: u64) -> Limits {
        Limits { max, follow: false }
    }
}

/// [`read_regular`] within `limits`: a file larger than `limits.max`, or a
/// link where links are not followed, is refused with a sentence (as a FIFO
/// or a device is); nothing larger than the bound is ever read into memory.
pub fn read_regular_within(path: &Path, limits: Limits) -> io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    Ok(read_regular_at(rustix::fs::CWD, path, &mut buf, limits)?.then_some(buf))
}

/// `n` bytes as people say it (`64 KiB`, `16 MiB`).
pub fn size_words(n: u64) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

fn too_large(max: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("it is larger than {}", size_words(max)),
    )
}

/// Opens `name` relative to `dir` without blocking, refuses anything but a
/// regular file within `limits`, and reads it all into `buf`; `Ok(false)`
/// if it is absent.
fn read_regular_at<P: rustix::path::Arg>(
    dir: impl std::os::fd::AsFd,
    name: P,
    buf: &mut Vec<u8>,
    limits: Limits,
) -> io::Result<bool> {
    buf.clear();
    let mut flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
    if !limits.follow {
        flags |= OFlags::NOFOLLOW;
    }
    let fd = match openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(false),
        Err(Errno::LOOP) if !limits.follow => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "it is a symbolic link (it is read only as a regular file, not through a link)",
            ))
        }
        Err(e) => return Err(to_io(e)),
    };
    let size = check_regular(&fd)?;
    if size > limits.max {
        return Err(too_large(limits.max));
    }
    read_all(&fd, buf, limits.max)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_small_and_large_files_and_links() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("small"), "24\n").unwrap();
        let big = vec![b'x'; CHUNK * 3 + 17];
        std::fs::write(t.path().join("big"), &big).unwrap();
        std::os::unix::fs::symlink("../somewhere/else", t.path().join("link")).unwrap();
        std::fs::create_dir(t.path().join("sub")).unwrap();
        let d = DirFd::open(t.path()).unwrap();
        let mut buf = Vec::new();
        assert!(d.read_into("small", &mut buf).unwrap());
        assert_eq!(buf, b"24\n");
        assert!(d.read_into("big", &mut buf).unwrap());
        assert_eq!(buf, big);
        assert!(!d.read_into("missing", &mut buf).unwrap());
        assert_eq!(
            d.read_link("link").unwrap(),
            Some(PathBuf::from("../somewhere/else"))
        );
        assert_eq!(d.read_link("nope").unwrap(), None);
        let mut e = d.entries().unwrap();
        e.sort();
        assert_eq!(e.len(), 4);
        assert!(e
            .iter()
            .any(|e| e.name == "sub" && e.kind == Kind::Dir && e.ino > 0));
        assert!(d.open_dir("sub").is_ok());
    }

    #[test]
    fn bounded_reads_refuse_large_files_fifos_and_links_where_asked() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        std::fs::write(&p, vec![b'x'; 5000]).unwrap();
        let read = |p: &Path, l| read_regular_within(p, l).map_err(|e| e.to_string());
        assert_eq!(
            read(&p, Limits::at_most(5000)).unwrap().unwrap().len(),
            5000
        );
        assert_eq!(
            read(&p, Limits::at_most(4096)).unwrap_err(),
            "it is larger than 4 KiB"
        );
        let link = t.path().join("l");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert!(read(&link, Limits::at_most(5000)).unwrap().is_some());
        assert!(read(&link, Limits::own_file(5000))
            .unwrap_err()
            .contains("symbolic link"));
        let fifo = t.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        assert_eq!(
            read(&fifo, Limits::at_most(5000)).unwrap_err(),
            "it is not a regular file"
        );
        assert_eq!(
            read(&t.path().join("none"), Limits::at_most(1)).unwrap(),
            None
        );
        assert_eq!(size_words(16 << 20), "16 MiB");
    }
}
