//! The whole host: every kind's operations together, on the real kernel
//! interfaces ([`System::real`]) or on fakes (`Devices::new`).

use crate::mdev::{Callouts, Host};
use crate::vdpa::Vdpas;
use crate::vgpu::Vgpus;
use crate::CoreError;
use hostdev_store::DefinitionMemo;
use hostdev_sysfs::sriov::{RealSriov, SriovSysfs};
use hostdev_sysfs::{DeviceMemo, MdevSysfs, RealSysfs};
use hostdev_vdpa::{NetlinkVdpa, VdpaClient};
use hostdev_vfio::{RealVfio, Vfio};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The kernel interfaces one host's kinds are made over: one associated
/// type per interface, so a new kind's interface is one more line here and
/// not one more type parameter on every cross-kind type. Any tuple
/// `(mdev sysfs, SR-IOV sysfs, vdpa netlink)` is one: tests name
/// `Devices<(FakeKernel, FakeSriov, FakeVdpa)>`.
pub trait Interfaces {
    /// The mdev sysfs.
    type Mdev: MdevSysfs;
    /// The SR-IOV sysfs.
    type Sriov: SriovSysfs;
    /// The vdpa netlink family.
    type Vdpa: VdpaClient;
}

impl<S: MdevSysfs, V: SriovSysfs, C: VdpaClient> Interfaces for (S, V, C) {
    type Mdev = S;
    type Sriov = V;
    type Vdpa = C;
}

/// Every kind of device of one host, each made over its kernel interface
/// from `K` (given to its constructor). The cross-kind code reaches the
/// kinds through the registry in `kind.rs` ([`Devices::kinds`]); a kind's
/// own operations through its field.
pub struct Devices<K: Interfaces> {
    /// Mediated devices.
    pub mdev: Host<K::Mdev>,
    /// NVIDIA vGPUs on SR-IOV VFs.
    pub vgpu: Vgpus<K::Sriov>,
    /// vDPA devices.
    pub vdpa: Vdpas<K::Vdpa>,
    /// The root prefix every path hangs under.
    pub root: PathBuf,
    /// Unix seconds now (pool reservations); tests set their own.
    pub clock: fn() -> i64,
    /// Opens devices to probe them (VFIO).
    pub vfio: Arc<dyn Vfio>,
}

impl<K: Interfaces> std::fmt::Debug for Devices<K>
where
    K::Mdev: std::fmt::Debug,
    K::Sriov: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Devices")
            .field("mdev", &self.mdev)
            .field("vgpu", &self.vgpu)
            .field("vdpa", &self.vdpa)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl<S: MdevSysfs, V: SriovSysfs, C: VdpaClient> Devices<(S, V, C)> {
    /// Puts the kinds of one host together, each over its own interface.
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
pub type System = Devices<(RealSysfs, RealSriov, NetlinkVdpa)>;

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

/// Where a long-running process (the daemon) gets a fresh view of the host
/// for each operation, through what it remembers ([`Memo`]): the real
/// kernel ([`RealKernel`]) or one set of fakes shared by every view
/// ([`SharedFakes`], chosen explicitly by tests).
pub trait Kernel: Send + Sync + 'static {
    /// The mdev sysfs.
    type Mdev: MdevSysfs + 'static;
    /// The SR-IOV sysfs.
    type Sriov: SriovSysfs + 'static;
    /// The vdpa netlink family.
    type Vdpa: VdpaClient + 'static;
    /// The root prefix every path hangs under.
    fn root(&self) -> &Path;
    /// A view of the host for one operation.
    fn devices(&self, memo: &Memo) -> Devices<(Self::Mdev, Self::Sriov, Self::Vdpa)>;
}

/// The host on its real kernel interfaces under a root prefix.
#[derive(Debug, Clone)]
pub struct RealKernel {
    /// The root prefix (`/` in production).
    pub root: PathBuf,
    /// How long a created mdev may take to be ready, if not the default.
    pub ready_timeout: Option<std::time::Duration>,
}

impl Kernel for RealKernel {
    type Mdev = RealSysfs;
    type Sriov = RealSriov;
    type Vdpa = NetlinkVdpa;
    fn root(&self) -> &Path {
        &self.root
    }
    /// Netlink opened fresh for each operation (a reloaded module gets a
    /// new family id); mdev definitions and running mdevs through `memo`.
    fn devices(&self, memo: &Memo) -> System {
        let mut s = System::remembering(&self.root, memo);
        if let Some(t) = self.ready_timeout {
            s.mdev.ready_timeout = t;
        }
        s
    }
}

/// Fakes of every kernel interface, shared by every view made of them, and
/// a real store under `root`: a daemon's router tested in process.
#[derive(Debug, Clone)]
pub struct SharedFakes {
    /// The mdev kernel.
    pub mdev: Arc<hostdev_sysfs::FakeKernel>,
    /// The SR-IOV kernel.
    pub sriov: Arc<hostdev_sysfs::sriov::FakeSriov>,
    /// The vdpa family.
    pub vdpa: Arc<hostdev_vdpa::FakeVdpa>,
    /// VFIO answers.
    pub vfio: Arc<hostdev_vfio::FakeVfio>,
    /// Where definitions and state live.
    pub root: PathBuf,
}

impl Kernel for SharedFakes {
    type Mdev = Arc<hostdev_sysfs::FakeKernel>;
    type Sriov = Arc<hostdev_sysfs::sriov::FakeSriov>;
    type Vdpa = Arc<hostdev_vdpa::FakeVdpa>;
    fn root(&self) -> &Path {
        &self.root
    }
    fn devices(&self, _memo: &Memo) -> Devices<(Self::Mdev, Self::Sriov, Self::Vdpa)> {
        let mut host = Host::new(Arc::clone(&self.mdev), &self.root, Callouts::none());
        host.ready_timeout = std::time::Duration::from_millis(500);
        Devices::new(
            host,
            Vgpus::new(Arc::clone(&self.sriov), &self.root),
            Vdpas::new(Arc::clone(&self.vdpa), &self.root),
            Arc::clone(&self.vfio) as Arc<dyn Vfio>,
            &self.root,
        )
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
