//! The kernel's vDPA management interface: the `vdpa` generic-netlink family.
//!
//! Owns: the wire codec ([`wire`]), typed management devices, devices and
//! configs decoded from it (unknown attributes kept in `other`), the
//! [`VdpaClient`] trait with a real client over a netlink socket
//! ([`NetlinkVdpa`]) and an in-memory fake ([`FakeVdpa`]), and errors that
//! say what the kernel refused. Must not: persist anything or decide policy.
#![deny(missing_docs)]

mod fake;
mod netlink;
pub mod wire;

pub use fake::FakeVdpa;
pub use netlink::NetlinkVdpa;

use serde::Serialize;
use wire::{attr, Nla, WireError};

pub use hostdev_model::vdpa::{CreateConfig, MacAddr, MgmtDevName, VdpaName, VdpaValueError};

fn mgmtdev_nlas(m: &MgmtDevName) -> Vec<Nla> {
    let mut v = Vec::new();
    if let Some(b) = &m.bus {
        v.push(Nla::string(attr::MGMTDEV_BUS_NAME, b));
    }
    v.push(Nla::string(attr::MGMTDEV_DEV_NAME, &m.dev));
    v
}

fn config_nlas(c: &CreateConfig) -> Vec<Nla> {
    let mut v = Vec::new();
    if let Some(m) = &c.mac {
        v.push(Nla::bytes(attr::NET_CFG_MACADDR, &m.0));
    }
    if let Some(m) = c.mtu {
        v.push(Nla::u16(attr::NET_CFG_MTU, m));
    }
    if let Some(q) = c.max_vqp {
        v.push(Nla::u16(attr::NET_CFG_MAX_VQP, q));
    }
    if let Some(f) = c.features {
        v.push(Nla::u64(attr::DEV_FEATURES, f));
    }
    v
}

fn format_mac(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A management device as `MGMTDEV_GET` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MgmtDev {
    /// Its name.
    pub name: MgmtDevName,
    /// Supported device classes as virtio ids (1 net, 2 blk).
    pub classes: Vec<u32>,
    /// `MGMTDEV_MAX_VQS`.
    pub max_vqs: Option<u32>,
    /// `SUPPORTED_FEATURES`.
    pub supported_features: Option<u64>,
    /// Attributes this version does not know, kept as (number, bytes).
    #[serde(skip)]
    pub other: Vec<Nla>,
}

/// A device as `DEV_GET` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dev {
    /// Its name.
    pub name: String,
    /// Its management device.
    pub mgmtdev: MgmtDevName,
    /// virtio device id (1 net, 2 blk).
    pub device_id: Option<u32>,
    /// Vendor id.
    pub vendor_id: Option<u32>,
    /// Maximum virtqueues.
    pub max_vqs: Option<u32>,
    /// Maximum virtqueue size.
    pub max_vq_size: Option<u16>,
    /// Minimum virtqueue size.
    pub min_vq_size: Option<u16>,
    /// Unknown attributes.
    #[serde(skip)]
    pub other: Vec<Nla>,
}

/// Live config space as `DEV_CONFIG_GET` reports it (changes with negotiation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct LiveConfig {
    /// MAC.
    pub mac: Option<String>,
    /// Link status bits.
    pub status: Option<u16>,
    /// Max virtqueue pairs.
    pub max_vqp: Option<u16>,
    /// MTU.
    pub mtu: Option<u16>,
    /// Negotiated features.
    pub negotiated_features: Option<u64>,
    /// Device features (6.1+).
    pub features: Option<u64>,
    /// Block device config (kernels 6.9+ report it as attributes 21..36).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blk: Option<BlkConfig>,
    /// Unknown or version-dependent attributes (21+ before 6.9 meant other things).
    #[serde(skip)]
    pub other: Vec<Nla>,
}

/// virtio-blk config space as vdpa reports it on 6.9+.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct BlkConfig {
    /// Capacity in 512-byte sectors (21).
    pub capacity: Option<u64>,
    /// Maximum segment size (22).
    pub size_max: Option<u32>,
    /// Block size (23).
    pub blk_size: Option<u32>,
    /// Maximum segments (24).
    pub seg_max: Option<u32>,
    /// Number of queues (25).
    pub num_queues: Option<u16>,
    /// Read-only (35).
    pub read_only: Option<bool>,
}

/// A kernel's (major, minor), for decoding attributes whose meaning changed
/// between versions. The decoder is told it; only the real client asks uname.
pub type KernelVersion = (u32, u32);

/// `6.12.117+deb12-amd64` → (6, 12).
pub fn parse_kernel_release(r: &str) -> (u32, u32) {
    let mut it = r
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty());
    let major = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let minor = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    (major, minor)
}

fn opt_str(n: &[Nla], k: u16) -> Option<String> {
    n.iter().find(|a| a.kind == k).map(Nla::as_string)
}

fn opt<T>(n: &[Nla], k: u16, f: fn(&Nla) -> Result<T, WireError>) -> Result<Option<T>, WireError> {
    n.iter().find(|a| a.kind == k).map(f).transpose()
}

impl MgmtDev {
    /// Decodes a `MGMTDEV_GET` reply.
    pub fn from_nlas(n: &[Nla]) -> Result<MgmtDev, WireError> {
        let classes = opt(n, attr::MGMTDEV_SUPPORTED_CLASSES, Nla::as_u64)?.unwrap_or(0);
        Ok(MgmtDev {
            name: MgmtDevName {
                bus: opt_str(n, attr::MGMTDEV_BUS_NAME),
                dev: opt_str(n, attr::MGMTDEV_DEV_NAME).unwrap_or_default(),
            },
            classes: (0..64).filter(|b| classes & (1u64 << b) != 0).collect(),
            max_vqs: opt(n, attr::MGMTDEV_MAX_VQS, Nla::as_u32)?,
            supported_features: opt(n, attr::SUPPORTED_FEATURES, Nla::as_u64)?,
            other: n
                .iter()
                .filter(|a| !(1..=3).contains(&a.kind) && a.kind != 15 && a.kind != 16)
                .cloned()
                .collect(),
        })
    }
}

impl Dev {
    /// Decodes a `DEV_GET` reply.
    pub fn from_nlas(n: &[Nla]) -> Result<Dev, WireError> {
        Ok(Dev {
            name: opt_str(n, attr::DEV_NAME).unwrap_or_default(),
            mgmtdev: MgmtDevName {
                bus: opt_str(n, attr::MGMTDEV_BUS_NAME),
                dev: opt_str(n, attr::MGMTDEV_DEV_NAME).unwrap_or_default(),
            },
            device_id: opt(n, attr::DEV_ID, Nla::as_u32)?,
            vendor_id: opt(n, attr::DEV_VENDOR_ID, Nla::as_u32)?,
            max_vqs: opt(n, attr::DEV_MAX_VQS, Nla::as_u32)?,
            max_vq_size: opt(n, attr::DEV_MAX_VQ_SIZE, Nla::as_u16)?,
            min_vq_size: opt(n, attr::DEV_MIN_VQ_SIZE, Nla::as_u16)?,
            other: n
                .iter()
                .filter(|a| !(1..=9).contains(&a.kind))
                .cloned()
                .collect(),
        })
    }
}

impl LiveConfig {
    /// Decodes a `DEV_CONFIG_GET` reply from a kernel of version `kernel`:
    /// attributes 21 and up are virtio-blk config only from 6.9 on; before,
    /// they are kept undecoded. `NET_STATUS` is a u16 on the wire (some
    /// kernels pad it to 4 bytes: the first two count).
    pub fn from_nlas_for(n: &[Nla], kernel: KernelVersion) -> Result<LiveConfig, WireError> {
        let known = [
            attr::DEV_NAME,
            attr::DEV_ID,
            attr::DEV_VENDOR_ID,
            10,
            11,
            12,
            13,
            14,
            20,
            attr::MGMTDEV_BUS_NAME,
            attr::MGMTDEV_DEV_NAME,
        ];
        Ok(LiveConfig {
            mac: n
                .iter()
                .find(|a| a.kind == attr::NET_CFG_MACADDR)
                .map(|a| format_mac(&a.data)),
            status: opt(n, attr::NET_STATUS, Nla::as_u16)?,
            max_vqp: opt(n, attr::NET_CFG_MAX_VQP, Nla::as_u16)?,
            mtu: opt(n, attr::NET_CFG_MTU, Nla::as_u16)?,
            negotiated_features: opt(n, attr::NEGOTIATED_FEATURES, Nla::as_u64)?,
            features: opt(n, attr::DEV_FEATURES, Nla::as_u64)?,
            blk: if kernel >= (6, 9) && n.iter().any(|a| (21..=36).contains(&a.kind)) {
                Some(BlkConfig {
                    capacity: opt(n, 21, Nla::as_u64)?,
                    size_max: opt(n, 22, Nla::as_u32)?,
                    blk_size: opt(n, 23, Nla::as_u32)?,
                    seg_max: opt(n, 24, Nla::as_u32)?,
                    num_queues: opt(n, 25, Nla::as_u16)?,
                    read_only: n
                        .iter()
                        .find(|a| a.kind == 35)
                        .map(|a| a.data.first().copied().unwrap_or(0) != 0),
                })
            } else {
                None
            },
            other: n
                .iter()
                .filter(|a| {
                    let blk = kernel >= (6, 9) && (21..=36).contains(&a.kind);
                    !(known.contains(&a.kind) || blk)
                })
                .cloned()
                .collect(),
        })
    }
}

/// A failed vDPA operation, as a sentence an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum VdpaError {
    /// A name or value that cannot be sent.
    #[error(transparent)]
    Value(#[from] VdpaValueError),
    /// The family is not there.
    #[error("the kernel has no vdpa netlink family: load the vdpa module, and run in the initial network namespace")]
    NoFamily,
    /// Reading the device's sysfs directory failed.
    #[error("cannot read {path}")]
    Sysfs {
        /// The directory.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The netlink socket failed.
    #[error("netlink socket error")]
    Socket(#[source] std::io::Error),
    /// The kernel sent bytes we cannot decode.
    #[error("cannot decode the kernel's reply")]
    Wire(#[from] WireError),
    /// No CAP_NET_ADMIN.
    #[error("{op} needs CAP_NET_ADMIN (run as root)")]
    Permission {
        /// What was attempted.
        op: String,
    },
    /// The name is taken.
    #[error("a vDPA device named {0} already exists")]
    Exists(String),
    /// No such management device.
    #[error("no vDPA management device {0}")]
    NoMgmtDev(MgmtDevName),
    /// No such device.
    #[error("no vDPA device named {0}")]
    NoDevice(VdpaName),
    /// The management device refused an option.
    #[error("management device {mgmtdev} does not support {} (EOPNOTSUPP)", options.join(", "))]
    Unsupported {
        /// The management device.
        mgmtdev: String,
        /// The options that were given (one of them was refused).
        options: Vec<&'static str>,
    },
    /// Any other errno.
    #[error("{op} failed: {source}")]
    Kernel {
        /// What was attempted.
        op: String,
        /// The errno.
        source: std::io::Error,
    },
}

/// How a device is bound, from sysfs (`/sys/bus/vdpa/devices/<name>`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Binding {
    /// `/dev/vhost-vdpa-N`, when bound to vhost_vdpa.
    pub vhost_dev: Option<String>,
    /// The bound driver (`vhost_vdpa`, `virtio_vdpa`).
    pub driver: Option<String>,
}

/// The vdpa family (and the device's sysfs binding), as hostdev needs it.
pub trait VdpaClient: Send + Sync {
    /// `MGMTDEV_GET` (dump).
    fn mgmtdevs(&self) -> Result<Vec<MgmtDev>, VdpaError>;
    /// `DEV_GET` (dump).
    fn devs(&self) -> Result<Vec<Dev>, VdpaError>;
    /// `DEV_GET` of one device; `None` if it does not exist.
    fn dev(&self, name: &VdpaName) -> Result<Option<Dev>, VdpaError>;
    /// `DEV_CONFIG_GET`.
    fn config(&self, name: &VdpaName) -> Result<LiveConfig, VdpaError>;
    /// `DEV_NEW`.
    fn add(
        &self,
        name: &VdpaName,
        mgmtdev: &MgmtDevName,
        cfg: &CreateConfig,
    ) -> Result<(), VdpaError>;
    /// `DEV_DEL`.
    fn del(&self, name: &VdpaName) -> Result<(), VdpaError>;
    /// The device's driver and vhost character device, from sysfs.
    fn binding(&self, name: &VdpaName) -> Result<Binding, VdpaError>;
    /// The device's vhost-vdpa node (`/dev/vhost-vdpa-N`) when a process
    /// holds it open (a VM): the kernel lets one open it at a time and
    /// refuses another with `EBUSY`, and makes a removal wait until it is
    /// closed. Opening it resets the device, so only a step about to
    /// remove the device asks. `None`: not held, not bound to vhost_vdpa,
    /// or its node gone; a node that cannot be opened for another reason
    /// counts as held (the node, and why).
    fn held(&self, name: &VdpaName) -> Option<String>;
}

/// Builds the attributes of a `DEV_NEW`.
pub fn dev_new_nlas(name: &VdpaName, mgmtdev: &MgmtDevName, cfg: &CreateConfig) -> Vec<Nla> {
    let mut v = mgmtdev_nlas(mgmtdev);
    v.push(Nla::string(attr::DEV_NAME, name.as_str()));
    v.extend(config_nlas(cfg));
    v
}

/// One kernel shared by several views of the host.
impl<T: VdpaClient + ?Sized> VdpaClient for std::sync::Arc<T> {
    fn mgmtdevs(&self) -> Result<Vec<MgmtDev>, VdpaError> {
        (**self).mgmtdevs()
    }
    fn devs(&self) -> Result<Vec<Dev>, VdpaError> {
        (**self).devs()
    }
    fn dev(&self, name: &VdpaName) -> Result<Option<Dev>, VdpaError> {
        (**self).dev(name)
    }
    fn config(&self, name: &VdpaName) -> Result<LiveConfig, VdpaError> {
        (**self).config(name)
    }
    fn add(
        &self,
        name: &VdpaName,
        mgmtdev: &MgmtDevName,
        cfg: &CreateConfig,
    ) -> Result<(), VdpaError> {
        (**self).add(name, mgmtdev, cfg)
    }
    fn del(&self, name: &VdpaName) -> Result<(), VdpaError> {
        (**self).del(name)
    }
    fn binding(&self, name: &VdpaName) -> Result<Binding, VdpaError> {
        (**self).binding(name)
    }
    fn held(&self, name: &VdpaName) -> Option<String> {
        (**self).held(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_mgmtdev_and_config_keeping_unknown_attributes() {
        let n = vec![
            Nla::string(attr::MGMTDEV_DEV_NAME, "vdpasim_net"),
            Nla::u64(attr::MGMTDEV_SUPPORTED_CLASSES, 0b10),
            Nla::u32(attr::MGMTDEV_MAX_VQS, 3),
            Nla::u64(attr::SUPPORTED_FEATURES, 0x1_0000_0000),
            Nla::bytes(42, b"new"),
        ];
        let m = MgmtDev::from_nlas(&n).unwrap();
        assert_eq!(m.classes, vec![1]);
        assert_eq!(m.other, vec![Nla::bytes(42, b"new")]);
        let c = LiveConfig::from_nlas_for(
            &[
                Nla::bytes(attr::NET_CFG_MACADDR, &[0, 0x11, 0x22, 0x33, 0x44, 0x55]),
                Nla::u16(attr::NET_CFG_MTU, 1500),
                Nla::u16(attr::NET_STATUS, 1),
                Nla::u32(21, 7),
            ],
            (6, 1),
        )
        .unwrap();
        assert_eq!(c.mac.as_deref(), Some("00:11:22:33:44:55"));
        assert_eq!(
            c.other.len(),
            1,
            "before 6.9 attribute 21 is kept undecoded"
        );
        assert_eq!(c.blk, None);
        let b = LiveConfig::from_nlas_for(
            &[
                Nla::u64(21, 0x40000),
                Nla::u32(23, 512),
                Nla::bytes(35, &[1]),
            ],
            (6, 12),
        )
        .unwrap();
        let blk = b.blk.unwrap();
        assert_eq!(
            (blk.capacity, blk.blk_size, blk.read_only),
            (Some(0x40000), Some(512), Some(true))
        );
        assert!(b.other.is_empty());
        assert_eq!(parse_kernel_release("6.12.117+deb12-amd64"), (6, 12));
        assert_eq!(parse_kernel_release("garbage"), (0, 0));
    }
}
