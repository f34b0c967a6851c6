//! The real client: a `NETLINK_GENERIC` socket, the family id resolved by
//! name through the controller, one request at a time; and the device's
//! binding read from sysfs under a root prefix.

use crate::wire::{self, attr, cmd, GenlMsg, Nla, Reply};
use crate::{
    Binding, CreateConfig, Dev, KernelVersion, LiveConfig, MgmtDev, MgmtDevName, VdpaClient,
    VdpaError, VdpaName,
};
use rustix::io::Errno;
use rustix::net::{netlink, AddressFamily, RecvFlags, SendFlags, SocketType};
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

/// The vdpa family over netlink.
#[derive(Debug)]
pub struct NetlinkVdpa {
    sock: Mutex<OwnedFd>,
    family: u16,
    seq: AtomicU32,
    kernel: KernelVersion,
    sysfs: PathBuf,
    dev: PathBuf,
}

/// The errno of a failed kernel step, if it is one.
fn errno_of(e: &io::Error) -> Option<Errno> {
    e.raw_os_error().map(Errno::from_raw_os_error)
}

/// The running kernel's version, from uname.
fn running_kernel() -> KernelVersion {
    let u = rustix::system::uname();
    crate::parse_kernel_release(&u.release().to_string_lossy())
}

impl NetlinkVdpa {
    /// Opens a socket and resolves the `vdpa` family; device bindings are read
    /// under `root` (`/` in production).
    pub fn open(root: &Path) -> Result<NetlinkVdpa, VdpaError> {
        let fd = rustix::net::socket(
            AddressFamily::NETLINK,
            SocketType::RAW,
            Some(netlink::GENERIC),
        )
        .map_err(|e| VdpaError::Socket(e.into()))?;
        let mut c = NetlinkVdpa {
            sock: Mutex::new(fd),
            family: wire::GENL_ID_CTRL,
            seq: AtomicU32::new(1),
            kernel: running_kernel(),
            sysfs: root.join("sys/bus/vdpa/devices"),
            dev: root.join("dev"),
        };
        let replies = c
            .request(
                wire::CTRL_CMD_GETFAMILY,
                0,
                vec![Nla::string(wire::CTRL_ATTR_FAMILY_NAME, "vdpa")],
                "resolving the vdpa family",
            )
            .map_err(|e| match e {
                VdpaError::Kernel { source, .. } if errno_of(&source) == Some(Errno::NOENT) => {
                    VdpaError::NoFamily
                }
                other => other,
            })?;
        let id = replies
            .iter()
            .flat_map(|m| m.nlas.iter())
            .find(|a| a.kind == wire::CTRL_ATTR_FAMILY_ID)
            .ok_or(VdpaError::NoFamily)?
            .as_u16()?;
        c.family = id;
        Ok(c)
    }

    /// Sends one request and collects its replies (a dump until DONE, else until the ACK).
    fn request(
        &self,
        command: u8,
        flags: u16,
        nlas: Vec<Nla>,
        op: &str,
    ) -> Result<Vec<GenlMsg>, VdpaError> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let dump = flags & wire::NLM_F_DUMP != 0;
        let msg = GenlMsg::request(self.family, command, flags | wire::NLM_F_ACK, seq, nlas);
        let sock = self.sock.lock().unwrap_or_else(|p| p.into_inner());
        rustix::net::send(&*sock, &msg.emit(), SendFlags::empty())
            .map_err(|e| VdpaError::Socket(e.into()))?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let (n, _) = rustix::net::recv(&*sock, &mut buf[..], RecvFlags::empty())
                .map_err(|e| VdpaError::Socket(e.into()))?;
            for r in wire::parse_datagram(&buf[..n])? {
                match r {
                    Reply::Msg(m) if m.seq == seq => out.push(m),
                    Reply::Ack { seq: s } if s == seq && !dump => return Ok(out),
                    Reply::Done { seq: s } if s == seq => return Ok(out),
                    Reply::Error { seq: s, errno } if s == seq => {
                        let errno = Errno::from_raw_os_error(errno);
                        return Err(match errno {
                            Errno::PERM | Errno::ACCESS => {
                                VdpaError::Permission { op: op.to_string() }
                            }
                            _ => VdpaError::Kernel {
                                op: op.to_string(),
                                source: errno.into(),
                            },
                        });
                    }
                    _ => {} // stale replies of an earlier request
                }
            }
        }
    }
}

impl VdpaClient for NetlinkVdpa {
    fn mgmtdevs(&self) -> Result<Vec<MgmtDev>, VdpaError> {
        self.request(
            cmd::MGMTDEV_GET,
            wire::NLM_F_DUMP,
            vec![],
            "listing management devices",
        )?
        .iter()
        .map(|m| MgmtDev::from_nlas(&m.nlas).map_err(Into::into))
        .collect()
    }

    fn devs(&self) -> Result<Vec<Dev>, VdpaError> {
        self.request(
            cmd::DEV_GET,
            wire::NLM_F_DUMP,
            vec![],
            "listing vDPA devices",
        )?
        .iter()
        .map(|m| Dev::from_nlas(&m.nlas).map_err(Into::into))
        .collect()
    }

    fn dev(&self, name: &VdpaName) -> Result<Option<Dev>, VdpaError> {
        match self.request(
            cmd::DEV_GET,
            0,
            vec![Nla::string(attr::DEV_NAME, name.as_str())],
            "reading a vDPA device",
        ) {
            Ok(ms) => ms
                .first()
                .map(|m| Dev::from_nlas(&m.nlas).map_err(Into::into))
                .transpose(),
            Err(VdpaError::Kernel { source, .. }) if errno_of(&source) == Some(Errno::NODEV) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn config(&self, name: &VdpaName) -> Result<LiveConfig, VdpaError> {
        let ms = self
            .request(
                cmd::DEV_CONFIG_GET,
                0,
                vec![Nla::string(attr::DEV_NAME, name.as_str())],
                "reading a vDPA device's config",
            )
            .map_err(|e| match e {
                VdpaError::Kernel { source, .. } if errno_of(&source) == Some(Errno::NODEV) => {
                    VdpaError::NoDevice(name.clone())
                }
                other => other,
            })?;
        Ok(ms
            .first()
            .map(|m| LiveConfig::from_nlas_for(&m.nlas, self.kernel))
            .transpose()?
            .unwrap_or_default())
    }

    fn add(
        &self,
        name: &VdpaName,
        mgmtdev: &MgmtDevName,
        cfg: &CreateConfig,
    ) -> Result<(), VdpaError> {
        let nlas = crate::dev_new_nlas(name, mgmtdev, cfg);
        self.request(cmd::DEV_NEW, 0, nlas, "creating a vDPA device")
            .map(|_| ())
            .map_err(|e| match e {
                VdpaError::Kernel { source, .. } => match errno_of(&source) {
                    Some(Errno::EXIST) => VdpaError::Exists(name.to_string()),
                    Some(Errno::NODEV) => VdpaError::NoMgmtDev(mgmtdev.clone()),
                    Some(Errno::OPNOTSUPP) => VdpaError::Unsupported {
                        mgmtdev: mgmtdev.to_string(),
                        options: cfg.option_names(),
                    },
                    _ => VdpaError::Kernel {
                        op: format!("creating vDPA device {name} on {mgmtdev}"),
                        source,
                    },
                },
                other => other,
            })
    }

    fn del(&self, name: &VdpaName) -> Result<(), VdpaError> {
        self.request(
            cmd::DEV_DEL,
            0,
            vec![Nla::string(attr::DEV_NAME, name.as_str())],
            "deleting a vDPA device",
        )
        .map(|_| ())
        .map_err(|e| match e {
            VdpaError::Kernel { source, .. } if errno_of(&source) == Some(Errno::NODEV) => {
                VdpaError::NoDevice(name.clone())
            }
            other => other,
        })
    }

    fn binding(&self, name: &VdpaName) -> Result<Binding, VdpaError> {
        // The name is validated: one path component.
        let dir = self.sysfs.join(name.as_str());
        let entries = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Binding::default()),
            Err(source) => {
                return Err(VdpaError::Sysfs { path: dir, source });
            }
        };
        let vhost_dev = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|n| n.starts_with("vhost-vdpa-"))
            .map(|n| format!("/dev/{n}"));
        let driver = std::fs::read_link(dir.join("driver"))
            .ok()
            .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()));
        Ok(Binding { vhost_dev, driver })
    }

    fn held(&self, name: &VdpaName) -> Option<String> {
        let node = self.binding(name).ok()?.vhost_dev?;
        let base = node.strip_prefix("/dev/")?;
        let n = base.strip_prefix("vhost-vdpa-")?;
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Opened and closed again at once (the device is about to go: the
        // reset an open does is harmless); never created.
        use rustix::fs::{Mode, OFlags};
        match rustix::fs::open(
            self.dev.join(base),
            OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
            Mode::empty(),
        ) {
            Ok(_) | Err(Errno::NOENT | Errno::NXIO | Errno::NODEV) => None,
            Err(Errno::BUSY) => Some(node),
            // Refused for another reason (a sandbox, permissions): whether
            // a VM holds it cannot be told, and a removal of a held device
            // would hang in the kernel with the netlink socket taken, so
            // it counts as held, saying why.
            Err(e) => Some(format!("{node} (opening it failed: {e})")),
        }
    }
}
