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
        read_regular_at(&self.0, name, buf)
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

fn check_regular(fd: &OwnedFd) -> io::Result<()> {
    let st = rustix::fs::fstat(fd).map_err(to_io)?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "it is not a regular file",
        ))
    }
}

fn read_all(fd: &OwnedFd, buf: &mut Vec<u8>) -> io::Result<()> {
    loop {
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
    Ok(read_regular_at(rustix::fs::CWD, path, &mut buf)?.then_some(buf))
}

/// Reads a file a user named (a host file, an export, a spec) by path as
/// [`read_regular`] does, refusing one larger than `limit` bytes before
/// reading more than that. `Ok(None)` if it is absent.
pub fn read_regular_limited(path: &Path, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let fd = match openat(
        rustix::fs::CWD,
        path,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(e) => return Err(to_io(e)),
    };
    check_regular(&fd)?;
    let too_large = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("it is larger than {limit} bytes"),
        )
    };
    let st = rustix::fs::fstat(&fd).map_err(to_io)?;
    if u64::try_from(st.st_size).unwrap_or(u64::MAX) > limit {
        return Err(too_large());
    }
    let mut buf = Vec::new();
    loop {
        buf.reserve(CHUNK);
        let n = loop {
            match rustix::io::read(&fd, rustix::buffer::spare_capacity(&mut buf)) {
                Err(Errno::INTR) => continue,
                r => break r.map_err(to_io)?,
            }
        };
        if n == 0 {
            return Ok(Some(buf));
        }
        // A file that grew while it was read is refused the same way.
        if buf.len() as u64 > limit {
            return Err(too_large());
        }
    }
}

/// Opens `name` relative to `dir` without blocking, refuses anything but a
/// regular file, and reads it all into `buf`; `Ok(false)` if it is absent.
fn read_regular_at<P: rustix::path::Arg>(
    dir: impl std::os::fd::AsFd,
    name: P,
    buf: &mut Vec<u8>,
) -> io::Result<bool> {
    buf.clear();
    let fd = match openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(false),
        Err(e) => return Err(to_io(e)),
    };
    check_regular(&fd)?;
    read_all(&fd, buf)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limited_read_refuses_large_files_fifos_and_directories() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        std::fs::write(&f, vec![b'x'; 100]).unwrap();
        assert_eq!(read_regular_limited(&f, 100).unwrap().unwrap().len(), 100);
        let e = read_regular_limited(&f, 99).unwrap_err();
        assert!(e.to_string().contains("larger than 99 bytes"), "{e}");
        assert!(read_regular_limited(&t.path().join("none"), 9)
            .unwrap()
            .is_none());
        assert!(read_regular_limited(t.path(), 9).is_err());
        let fifo = t.path().join("fifo");
        rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, Mode::from_raw_mode(0o600)).unwrap();
        let e = read_regular_limited(&fifo, 9).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }

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
}
