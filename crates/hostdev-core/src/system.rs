//! The whole host: every kind's operations together, on the real kernel
//! interfaces ([`System::real`]) or on fakes (`Devices::new`).

use crate::mdev::{Callouts, Host};
use crate::vdpa::Vdpas;
use crate::vgpu::Vgpus;
use crate::CoreError;
use hostdev_store::DefinitionMemo;
use hostdev_sysfs::sriov::RealSriov;
use hostdev_sysfs::{DeviceMemo, RealSysfs};
use hostdev_vdpa::NetlinkVdpa;
use hostdev_vfio::{RealVfio, Vfio};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Every kind of device of one host, over the kernel interfaces `S`
/// (mdev sysfs), `V` (SR-IOV sysfs) and `C` (vdpa netlink).
#[derive(Debug)]
pub struct Devices<S, V, C> {
    /// Mediated devices.
    pub mdev: Host<S>,
    /// NVIDIA vGPUs on SR-IOV VFs.
    pub vgpu: Vgpus<V>,
    /// vDPA devices.
    pub vdpa: Vdpas<C>,
    /// The root prefix every path hangs under.
    pub root: PathBuf,
    /// Unix seconds now (pool reservations); tests set their own.
    pub clock: fn() -> i64,
    /// Opens devices to probe them (VFIO).
    pub vfio: Arc<dyn Vfio>,
}

impl<S, V, C> Devices<S, V, C> {
    /// Puts the kinds of one host together.
    pub fn new(
        mdev: Host<S>,
        vgpu: Vgpus<V>,
        vdpa: Vdpas<C>,
        vfio: Arc<dyn Vfio>,
        root: &Path,
    ) -> Self {
        Devices {
            mdev,
            vgpu,
            vdpa,
            root: root.to_path_buf(),
            clock: crate::pool::unix_now,
            vfio,
        }
    }
}

/// The host on its real kernel interfaces.
pub type System = Devices<RealSysfs, RealSriov, NetlinkVdpa>;

impl System {
    /// The host whose kernel and files live under `root` (`/` in production).
    /// Nothing is opened yet: the vdpa netlink socket is opened by the first
    /// operation that needs the kernel's vdpa family.
    pub fn real(root: &Path) -> System {
        let vdpa_root = root.to_path_buf();
        Devices::new(
            Host::new(RealSysfs::new(root), root, Callouts::under(root)),
            Vgpus::new(RealSriov::new(root), root),
            Vdpas::lazy(root, move || NetlinkVdpa::open(&vdpa_root)),
            Arc::new(RealVfio::new(root)),
            root,
        )
    }

    /// The host as [`System::real`], reading mdev definitions and running
    /// mdevs through what `memo` remembers (for a long-running process: each
    /// call still sees every change made before it began).
    pub fn remembering(root: &Path, memo: &Memo) -> System {
        let mut s = System::real(root);
        s.mdev.sysfs = s.mdev.sysfs.remembering(Arc::clone(&memo.devices));
        s.mdev.store = s.mdev.store.remembering(Arc::clone(&memo.definitions));
        s
    }
}

/// What a long-running process keeps between operations: definition files
/// (kept true by inotify) and running mdevs (by their sysfs inode numbers).
/// Nothing netlink-facing is kept: a reloaded module has a new family id.
#[derive(Debug, Default, Clone)]
pub struct Memo {
    /// mdev definition files.
    pub definitions: Arc<DefinitionMemo>,
    /// Running mdevs.
    pub devices: Arc<DeviceMemo>,
}

/// Checks that `root` looks like a Linux host's root before anything reads
/// it, so that a wrong root prefix is said instead of listed as a host with
/// nothing: an error without PCI sysfs; a note (returned) without the mdev
/// class, which exists once a driver with mdev support has registered.
pub fn check_root(root: &Path) -> Result<Option<String>, CoreError> {
    let class = root.join("sys/class/mdev_bus");
    // s390 hosts may have mdev parents (vfio-ap, vfio-ccw) and no PCI bus.
    if !root.join("sys/bus/pci").is_dir() && !class.is_dir() {
        return Err(CoreError::NoSysfs {
            root: root.to_path_buf(),
        });
    }
    Ok((!class.is_dir()).then(|| {
        format!(
            "no mdev parent is registered ({} is missing): no driver with mdev support is loaded (nvidia, i915 with GVT-g, vfio_ap, vfio_ccw, mtty)",
            class.display()
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::check_root;

    #[test]
    fn a_root_without_sysfs_is_refused_and_one_without_mdev_parents_noted() {
        let d = tempfile::tempdir().expect("tempdir");
        let e = check_root(d.path()).expect_err("no sysfs");
        assert_eq!(e.code(), "host.no_sysfs");
        assert!(e.to_string().contains("sys/bus/pci"), "{e}");
        std::fs::create_dir_all(d.path().join("sys/bus/pci")).expect("pci");
        let note = check_root(d.path()).expect("pci only").expect("a note");
        assert!(note.contains("no mdev parent is registered"), "{note}");
        std::fs::create_dir_all(d.path().join("sys/class/mdev_bus")).expect("mdev");
        assert_eq!(check_root(d.path()).expect("both"), None);
        // s390: mdev parents, no PCI bus.
        std::fs::remove_dir_all(d.path().join("sys/bus")).expect("rm");
        assert_eq!(check_root(d.path()).expect("s390"), None);
    }
}
