//! The kernel's device events: `ACTION@DEVPATH` followed by `KEY=VALUE`
//! pairs on a `NETLINK_KOBJECT_UEVENT` socket (the kernel's own multicast
//! group, not udev's re-broadcast).
//!
//! Owns: parsing one message ([`Uevent::parse`]), the real socket
//! ([`NetlinkUevents`]) and a fake fed by the test ([`FakeUevents`]), both
//! behind [`UeventSource`]. Must not: decide what an event means for hostdev
//! (the daemon does), or block anywhere but in [`UeventSource::recv`].
#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::io;
use std::sync::mpsc;
use std::time::Duration;

/// One kernel device event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uevent {
    /// `add`, `remove`, `change`, `bind`, `unbind`, `move`, `online`, `offline`.
    pub action: String,
    /// The device's path under `/sys`, e.g. `/devices/virtual/mtty/mtty`.
    pub devpath: String,
    /// Every `KEY=VALUE` pair (`SUBSYSTEM`, `DRIVER`, `MDEV_STATE`, …).
    pub env: BTreeMap<String, String>,
}

/// Why a message is not a uevent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The header is not `ACTION@DEVPATH`.
    #[error("the message does not start with ACTION@DEVPATH")]
    Header,
    /// Not UTF-8 where text is required.
    #[error("the message is not text")]
    NotText,
}

impl Uevent {
    /// Parses one message as the kernel sends it (NUL-separated fields).
    pub fn parse(msg: &[u8]) -> Result<Uevent, ParseError> {
        let mut fields = msg.split(|b| *b == 0).filter(|f| !f.is_empty());
        let head = std::str::from_utf8(fields.next().ok_or(ParseError::Header)?)
            .map_err(|_| ParseError::NotText)?;
        let (action, devpath) = head.split_once('@').ok_or(ParseError::Header)?;
        if action.is_empty() || !devpath.starts_with('/') {
            return Err(ParseError::Header);
        }
        let mut env = BTreeMap::new();
        for f in fields {
            let Ok(f) = std::str::from_utf8(f) else {
                continue;
            };
            if let Some((k, v)) = f.split_once('=') {
                env.insert(k.to_string(), v.to_string());
            }
        }
        Ok(Uevent {
            action: action.to_string(),
            devpath: devpath.to_string(),
            env,
        })
    }

    /// A value of the event's environment.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.env.get(key).map(String::as_str)
    }

    /// The device's subsystem, if the kernel named one.
    pub fn subsystem(&self) -> Option<&str> {
        self.get("SUBSYSTEM")
    }
}

/// Where events come from.
pub trait UeventSource: Send {
    /// The next event; `Ok(None)` when `timeout` passed without one.
    fn recv(&mut self, timeout: Duration) -> io::Result<Option<Uevent>>;
}

/// The kernel's uevent multicast group.
#[derive(Debug)]
pub struct NetlinkUevents {
    fd: rustix::fd::OwnedFd,
    buf: Vec<u8>,
}

impl NetlinkUevents {
    /// Opens and binds the socket (needs no privilege).
    pub fn open() -> io::Result<NetlinkUevents> {
        use rustix::net::{netlink, AddressFamily, SocketFlags, SocketType};
        let fd = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            Some(netlink::KOBJECT_UEVENT),
        )?;
        // Group 1 is the kernel's own broadcast (udev re-sends on group 2).
        rustix::net::bind(&fd, &netlink::SocketAddrNetlink::new(0, 1))?;
        // A burst (a driver with many VFs loading) must not overflow the queue.
        let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&fd, 4 << 20);
        Ok(NetlinkUevents {
            fd,
            buf: vec![0; 64 * 1024],
        })
    }
}

impl UeventSource for NetlinkUevents {
    fn recv(&mut self, timeout: Duration) -> io::Result<Option<Uevent>> {
        use rustix::event::{poll, PollFd, PollFlags};
        loop {
            let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
            let ts = rustix::event::Timespec {
                tv_sec: timeout.as_secs() as i64,
                tv_nsec: i64::from(timeout.subsec_nanos()),
            };
            match poll(&mut fds, Some(&ts)) {
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
            match rustix::net::recv(
                &self.fd,
                &mut self.buf[..],
                rustix::net::RecvFlags::DONTWAIT,
            ) {
                Ok((n, _)) => match Uevent::parse(&self.buf[..n.min(self.buf.len())]) {
                    Ok(u) => return Ok(Some(u)),
                    Err(_) => continue,
                },
                Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => continue,
                // Overflow: events were lost; the caller's resync covers them.
                Err(rustix::io::Errno::NOBUFS) => {
                    return Ok(Some(Uevent {
                        action: "overflow".into(),
                        devpath: "/".into(),
                        env: BTreeMap::new(),
                    }))
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Events a test sends through a channel.
#[derive(Debug)]
pub struct FakeUevents {
    rx: mpsc::Receiver<Uevent>,
}

impl FakeUevents {
    /// The source and the sender that feeds it.
    pub fn new() -> (FakeUevents, mpsc::Sender<Uevent>) {
        let (tx, rx) = mpsc::channel();
        (FakeUevents { rx }, tx)
    }
}

impl UeventSource for FakeUevents {
    fn recv(&mut self, timeout: Duration) -> io::Result<Option<Uevent>> {
        match self.rx.recv_timeout(timeout) {
            Ok(u) => Ok(Some(u)),
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the fake's sender is gone",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_messages_parse() {
        let m = b"change@/devices/virtual/mtty/mtty\0ACTION=change\0DEVPATH=/devices/virtual/mtty/mtty\0SUBSYSTEM=mtty\0MDEV_STATE=registered\0SEQNUM=1234\0";
        let u = Uevent::parse(m).unwrap();
        assert_eq!(u.action, "change");
        assert_eq!(u.devpath, "/devices/virtual/mtty/mtty");
        assert_eq!(u.get("MDEV_STATE"), Some("registered"));
        assert_eq!(u.subsystem(), Some("mtty"));
    }

    #[test]
    fn junk_is_refused_not_panicked_on() {
        for m in [
            &b""[..],
            b"\0\0",
            b"libudev\0\xfe\xed",
            b"add",
            b"@/x",
            b"add@relative",
            b"\xff@/x",
        ] {
            assert!(Uevent::parse(m).is_err(), "{m:?}");
        }
        // A non-text value is skipped, the rest kept.
        let u = Uevent::parse(b"add@/devices/x\0A=\xff\0B=2").unwrap();
        assert_eq!(u.get("A"), None);
        assert_eq!(u.get("B"), Some("2"));
    }
}
