//! hostdev's simulated hardware lab: hostdev-kmodel's model of the kernel's
//! mdev core, PCI SR-IOV functions with NVIDIA's vendor-specific VFIO
//! interface and vendor drivers' rules ([`model`]), described by TOML
//! profiles ([`profile`]) and exposed as a FUSE-mounted sysfs ([`fs`]).
#![deny(missing_docs)]

pub mod fs;
pub mod profile;

/// The kernel model the FUSE front end exposes (hostdev-kmodel).
pub mod model {
    pub use hostdev_kmodel::{Kernel, Kind, Node};
}
