//! hostdev's core: one front door to every operation on every kind of device.
//!
//! Owns: what each operation does, by kind — [`mdev`] (the [`Host`]), [`vgpu`]
//! ([`vgpu::Vgpus`]), [`vdpa`] ([`vdpa::Vdpas`]) — and across kinds: the
//! unified [`inventory`], the cross-kind [`restore`] that `autostart` runs,
//! the udev rule's install ([`udev`]), and [`System`], the whole host on the
//! real kernel interfaces. Requests and responses are `hostdev-api`'s types;
//! errors are [`CoreError`] with a stable [`CoreError::code`]. Generic over
//! each kernel interface's trait, so the same code runs against the real
//! kernel, the simulated lab and the in-memory fakes.
//! Must not: print, exit, parse command lines, choose an output format, or
//! name a front-end's flags in its sentences.
#![deny(missing_docs)]

mod codes;
mod convert;
pub mod dra;
mod error;
pub mod handle;
mod host;
pub mod inventory;
mod kind;
mod lock;
pub mod mdev;
mod migrate;
mod par;
pub mod poll;
pub mod pool;
mod probe;
pub mod restore;
mod system;
pub mod udev;
pub mod vdpa;
pub mod vgpu;

pub use dra::DraError;
pub use error::{chain, CoreError};
pub use handle::{Freshness, Handle, Serve};
pub use host::HostError;
pub use host::HOST_FILE_LIMIT;
pub use hostdev_api as api;
pub use hostdev_api::{DefineRequest, ListQuery, ModifyRequest, StartRequest};
pub use lock::Locker;
pub use mdev::callouts;
pub use mdev::MdevError;
pub use mdev::{AutostartReport, Callouts, DeviceOutcome, Host, Listing, Started};
pub use migrate::{MigrateError, ARRIVAL_HOLD_SECS};
pub use pool::PoolError;
pub use system::{check_root, Devices, Interfaces, Kernel, Memo, RealKernel, SharedFakes, System};
pub use vdpa::VdpaError;
pub use vgpu::VgpuError;

/// The kernel interfaces' types a front-end may need to name (tests that
/// assert on the kernel's own state); operations stay in the core.
pub mod kernel {
    pub use hostdev_sysfs::sriov::SriovSysfs;
    pub use hostdev_sysfs::{MdevSysfs, RealSysfs};
    pub use hostdev_vdpa::VdpaClient;
}
