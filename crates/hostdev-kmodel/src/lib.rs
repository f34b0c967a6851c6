//! One model of the kernel's device state and rules: mdev parents with their
//! vendors' capacity policies (per type, one type at a time, a shared
//! budget), devices and their attributes (vfio-ap's matrix rules), PCI SR-IOV
//! PFs and VFs as Debian's 6.12 did them in the kernel lab
//! (docs/kernel-facts.md), NVIDIA's `nvidia/` files on VFs with their
//! frame-buffer budget, and one table of injected faults.
//!
//! Two front ends drive it, so a rule lives once: the simulator's FUSE
//! sysfs asks it by path ([`Kernel::node`], [`Kernel::read`],
//! [`Kernel::write`]); the in-process fakes (`hostdev-sysfs`'s `FakeKernel`
//! and `FakeSriov`) call its typed operations ([`Kernel::create`],
//! [`Kernel::set_num_vfs`], ...). A path write parses the text as the kernel
//! would and then makes the same typed call.
//!
//! Owns: kernel semantics and their errnos. Must not: do I/O, know about FUSE
//! or about hostdev's traits.
#![deny(missing_docs)]

mod binding;
pub mod errno;
mod kernel;
pub mod pci;
pub mod profile;
mod view;
mod view_pci;

pub use binding::VFIO_PCI;
pub use kernel::{DeviceView, Errno, Kernel, Mutant, PfView, VfView};
pub use profile::{
    Effect, Fault, FaultOp, ModuleProfile, ParentProfile, Policy, Profile, SriovProfile,
    TypeProfile, VgpuTypeProfile,
};
pub use view::{Kind, Node};

#[cfg(test)]
mod tests;
