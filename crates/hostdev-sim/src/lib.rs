//! hostdev's simulated hardware lab: a model of the kernel's mdev core, PCI
//! SR-IOV functions with NVIDIA's vendor-specific VFIO interface, and vendor
//! drivers' rules ([`model`]), described by TOML profiles ([`profile`]) and
//! exposed as a FUSE-mounted sysfs ([`fs`]).
#![deny(missing_docs)]

pub mod fs;
pub mod model;
pub mod profile;
