//! The real client: a `NETLINK_GENERIC` socket, the family id resolved by
//! name through the controller, one request at a time.

use crate::wire::{self, attr, cmd, GenlMsg, Nla, Reply};
use crate::{CreateConfig, Dev, LiveConfig, MgmtDev, MgmtDevName, VdpaClient, VdpaError};
use rustix::net::{netlink, AddressFamily, RecvFlags, SendFlags, SocketType};
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

/// The vdpa family over netlink.
#[derive(Debug)]
pub struct NetlinkVdpa {
    sock: Mutex<OwnedFd>,
    family: u16,
    seq: AtomicU32,
}

fn errno_io(e: i32) -> io::Error {
    io::Error::from_raw_os_error(e)
}

impl NetlinkVdpa {
    /// Opens a socket and resolves the `vdpa` family.
    pub fn open() -> Result<NetlinkVdpa, VdpaError> {
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
        };
        let replies = c
            .request(
                wire::CTRL_CMD_GETFAMILY,
                0,
                vec![Nla::string(wire::CTRL_ATTR_FAMILY_NAME, "vdpa")],
                "resolving the vdpa family",
            )
            .map_err(|e| match e {
                VdpaError::Kernel { source, .. } if source.raw_os_error() == Some(2) => {
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
                        return Err(match errno {
                            1 | 13 => VdpaError::Permission { op: op.to_string() },
                            _ => VdpaError::Kernel {
                                op: op.to_string(),
                                source: errno_io(errno),
                            },
                        })
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

    fn dev(&self, name: &str) -> Result<Option<Dev>, VdpaError> {
        crate::check_dev_name(name)?;
        match self.request(
            cmd::DEV_GET,
            0,
            vec![Nla::string(attr::DEV_NAME, name)],
            "reading a vDPA device",
        ) {
            Ok(ms) => ms
                .first()
                .map(|m| Dev::from_nlas(&m.nlas).map_err(Into::into))
                .transpose(),
            Err(VdpaError::Kernel { source, .. }) if source.raw_os_error() == Some(19) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn config(&self, name: &str) -> Result<LiveConfig, VdpaError> {
        crate::check_dev_name(name)?;
        let ms = self
            .request(
                cmd::DEV_CONFIG_GET,
                0,
                vec![Nla::string(attr::DEV_NAME, name)],
                "reading a vDPA device's config",
            )
            .map_err(|e| match e {
                VdpaError::Kernel { source, .. } if source.raw_os_error() == Some(19) => {
                    VdpaError::NotFound(format!("no vDPA device named {name}"))
                }
                other => other,
            })?;
        Ok(ms
            .first()
            .map(|m| LiveConfig::from_nlas(&m.nlas))
            .transpose()?
            .unwrap_or_default())
    }

    fn add(&self, name: &str, mgmtdev: &MgmtDevName, cfg: &CreateConfig) -> Result<(), VdpaError> {
        let nlas = crate::dev_new_nlas(name, mgmtdev, cfg)?;
        self.request(cmd::DEV_NEW, 0, nlas, "creating a vDPA device")
            .map(|_| ())
            .map_err(|e| match e {
                VdpaError::Kernel { source, .. } => match source.raw_os_error() {
                    Some(17) => VdpaError::Exists(name.to_string()),
                    Some(19) => VdpaError::NotFound(format!("no vDPA management device {mgmtdev}")),
                    Some(95) => VdpaError::Unsupported {
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

    fn del(&self, name: &str) -> Result<(), VdpaError> {
        crate::check_dev_name(name)?;
        self.request(
            cmd::DEV_DEL,
            0,
            vec![Nla::string(attr::DEV_NAME, name)],
            "deleting a vDPA device",
        )
        .map(|_| ())
        .map_err(|e| match e {
            VdpaError::Kernel { source, .. } if source.raw_os_error() == Some(19) => {
                VdpaError::NotFound(format!("no vDPA device named {name}"))
            }
            other => other,
        })
    }
}
