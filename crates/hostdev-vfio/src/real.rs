//! The legacy container/group path, as QEMU takes it (what Debian's 6.12
//! kernel has; it has no IOMMUFD): `/dev/vfio/vfio` → API version and
//! TYPE1v2 → `/dev/vfio/N` viable → set container → set IOMMU → device fd.
//! Every fd is closed when the probe returns.

use crate::{Display, Irq, Migration, Probe, Region, Target, Vfio, VfioError};
use rustix::fd::{AsFd, AsRawFd, OwnedFd};
use rustix::fs::{Mode, OFlags};
use rustix::ioctl::{Ioctl, IoctlOutput, Opcode};
use std::ffi::{c_void, CString};
use std::io;
use std::path::{Path, PathBuf};
use vfio_bindings::bindings::vfio as v;

/// `_IO(VFIO_TYPE, VFIO_BASE + n)`: every VFIO ioctl has no size in its
/// number (the structs carry `argsz`).
const fn op(n: u32) -> Opcode {
    rustix::ioctl::opcode::none(v::VFIO_TYPE, (v::VFIO_BASE + n) as u8)
}
const GET_API_VERSION: Opcode = op(0);
const CHECK_EXTENSION: Opcode = op(1);
const SET_IOMMU: Opcode = op(2);
const GROUP_GET_STATUS: Opcode = op(3);
const GROUP_SET_CONTAINER: Opcode = op(4);
const GROUP_GET_DEVICE_FD: Opcode = op(6);
const DEVICE_GET_INFO: Opcode = op(7);
const DEVICE_GET_REGION_INFO: Opcode = op(8);
const DEVICE_GET_IRQ_INFO: Opcode = op(9);
const DEVICE_QUERY_GFX_PLANE: Opcode = op(14);
const DEVICE_FEATURE: Opcode = op(17);

/// One VFIO ioctl: its opcode and its argument (a pointer to a struct the
/// caller owns for the call's length, or an integer passed by value).
struct Call {
    op: Opcode,
    arg: *mut c_void,
}

// SAFETY: the kernel reads and writes only within `argsz` of the structs
// `arg` points to (each caller sets `argsz` to its struct's size), or takes
// `arg` as an integer; the output is the ioctl's return value, no pointer.
unsafe impl Ioctl for Call {
    type Output = IoctlOutput;
    const IS_MUTATING: bool = true;
    fn opcode(&self) -> Opcode {
        self.op
    }
    fn as_ptr(&mut self) -> *mut c_void {
        self.arg
    }
    unsafe fn output_from_ptr(out: IoctlOutput, _: *mut c_void) -> rustix::io::Result<IoctlOutput> {
        Ok(out)
    }
}

/// Calls `op` on `fd` with `arg` pointing at `T`.
fn call_with<T>(fd: impl AsFd, op: Opcode, arg: &mut T) -> io::Result<IoctlOutput> {
    let c = Call {
        op,
        arg: (arg as *mut T).cast(),
    };
    // SAFETY: `arg` is a live, exclusively borrowed `T` whose `argsz` (set
    // by the caller) is at most its size; the kernel writes no further.
    unsafe { rustix::ioctl::ioctl(fd, c) }.map_err(io::Error::from)
}

/// Calls `op` on `fd` with an integer argument by value.
fn call_int(fd: impl AsFd, op: Opcode, value: usize) -> io::Result<IoctlOutput> {
    let c = Call {
        op,
        arg: value as *mut c_void,
    };
    // SAFETY: these opcodes (GET_API_VERSION, CHECK_EXTENSION, SET_IOMMU)
    // take their argument as a plain integer and dereference nothing.
    unsafe { rustix::ioctl::ioctl(fd, c) }.map_err(io::Error::from)
}

fn argsz<T>() -> u32 {
    std::mem::size_of::<T>() as u32
}

/// The real VFIO device nodes under a root prefix (`/` in production).
#[derive(Debug, Clone)]
pub struct RealVfio {
    root: PathBuf,
    dev: PathBuf,
}

impl RealVfio {
    /// `/dev/vfio` under `root`.
    pub fn new(root: &Path) -> RealVfio {
        RealVfio {
            root: root.to_path_buf(),
            dev: root.join("dev/vfio"),
        }
    }
}

fn open(path: &Path) -> io::Result<OwnedFd> {
    // Device nodes: never created or truncated.
    rustix::fs::open(path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty()).map_err(io::Error::from)
}

impl Vfio for RealVfio {
    fn held(&self, t: &Target) -> Option<String> {
        let link = t.dir(&self.root).join("iommu_group");
        let group = std::fs::read_link(link)
            .ok()?
            .file_name()?
            .to_string_lossy()
            .into_owned();
        if group.is_empty() || !group.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Opened and closed again at once: a group fd without a container
        // touches no device. The kernel lets one process open a group.
        match open(&self.dev.join(&group)) {
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error()) => {
                Some(group)
            }
            _ => None,
        }
    }

    fn probe(&self, t: &Target) -> Result<Probe, VfioError> {
        let (dir, name) = (t.dir(&self.root), t.name());
        let name = name.as_str();
        let ioctl = |what: &'static str| {
            move |source: io::Error| VfioError::Ioctl {
                device: name.to_string(),
                what,
                source,
            }
        };
        let link = dir.join("iommu_group");
        let group = std::fs::read_link(&link)
            .ok()
            .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()))
            .ok_or_else(|| VfioError::NoGroup {
                device: name.to_string(),
                path: link.clone(),
            })?;
        if group.is_empty() || !group.bytes().all(|b| b.is_ascii_digit()) {
            return Err(VfioError::NoGroup {
                device: name.to_string(),
                path: link,
            });
        }
        let cpath = self.dev.join("vfio");
        let container = open(&cpath).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => VfioError::NoVfio {
                path: cpath.clone(),
            },
            _ => VfioError::Open {
                path: cpath.clone(),
                source,
            },
        })?;
        let version =
            call_int(&container, GET_API_VERSION, 0).map_err(ioctl("VFIO_GET_API_VERSION"))?;
        if version != v::VFIO_API_VERSION as i32 {
            return Err(VfioError::ApiVersion { version });
        }
        let type1 = v::VFIO_TYPE1v2_IOMMU as usize;
        let has =
            call_int(&container, CHECK_EXTENSION, type1).map_err(ioctl("VFIO_CHECK_EXTENSION"))?;
        if has <= 0 {
            return Err(VfioError::NoType1 {
                device: name.to_string(),
            });
        }
        let gpath = self.dev.join(&group);
        let gfd = open(&gpath).map_err(|source| match source.raw_os_error() {
            Some(e) if e == rustix::io::Errno::BUSY.raw_os_error() => VfioError::Busy {
                device: name.to_string(),
                group: group.clone(),
            },
            _ => VfioError::Open {
                path: gpath.clone(),
                source,
            },
        })?;
        let mut status = v::vfio_group_status {
            argsz: argsz::<v::vfio_group_status>(),
            flags: 0,
        };
        call_with(&gfd, GROUP_GET_STATUS, &mut status).map_err(ioctl("VFIO_GROUP_GET_STATUS"))?;
        if status.flags & v::VFIO_GROUP_FLAGS_VIABLE == 0 {
            return Err(VfioError::NotViable {
                device: name.to_string(),
                group,
            });
        }
        let mut cfd = container.as_raw_fd();
        call_with(&gfd, GROUP_SET_CONTAINER, &mut cfd)
            .map_err(ioctl("VFIO_GROUP_SET_CONTAINER"))?;
        call_int(&container, SET_IOMMU, type1).map_err(ioctl("VFIO_SET_IOMMU"))?;
        // A validated UUID or PCI address: no NUL byte.
        let cname = CString::new(name).map_err(|_| VfioError::NoGroup {
            device: name.to_string(),
            path: dir.clone(),
        })?;
        let raw = {
            let c = Call {
                op: GROUP_GET_DEVICE_FD,
                arg: cname.as_ptr() as *mut c_void,
            };
            // SAFETY: GET_DEVICE_FD reads a NUL-terminated name from `arg`
            // (the CString lives across the call) and writes nothing.
            unsafe { rustix::ioctl::ioctl(&gfd, c) }
                .map_err(io::Error::from)
                .map_err(ioctl("VFIO_GROUP_GET_DEVICE_FD"))?
        };
        // SAFETY: on success GET_DEVICE_FD returns a new fd that nothing
        // else owns; OwnedFd closes it when the probe returns.
        let device: OwnedFd = unsafe { rustix::fd::FromRawFd::from_raw_fd(raw) };
        let r = ask(&device, name);
        drop(device);
        drop(gfd);
        drop(container);
        r
    }
}

/// The questions, on an open device fd.
fn ask(device: &OwnedFd, name: &str) -> Result<Probe, VfioError> {
    let ioctl = |what: &'static str| {
        move |source: io::Error| VfioError::Ioctl {
            device: name.to_string(),
            what,
            source,
        }
    };
    let mut info = v::vfio_device_info {
        argsz: argsz::<v::vfio_device_info>(),
        ..Default::default()
    };
    call_with(device, DEVICE_GET_INFO, &mut info).map_err(ioctl("VFIO_DEVICE_GET_INFO"))?;
    let mut regions = Vec::new();
    for index in 0..info.num_regions.min(64) {
        let mut r = v::vfio_region_info {
            argsz: argsz::<v::vfio_region_info>(),
            index,
            ..Default::default()
        };
        // A driver refuses an index it does not implement (EINVAL): absent,
        // as QEMU takes it.
        if let Err(e) = call_with(device, DEVICE_GET_REGION_INFO, &mut r) {
            if !is_inval(&e) {
                return Err(ioctl("VFIO_DEVICE_GET_REGION_INFO")(e));
            }
            r.size = 0;
            r.flags = 0;
        }
        regions.push(Region {
            index,
            size: r.size,
            read: r.flags & v::VFIO_REGION_INFO_FLAG_READ != 0,
            write: r.flags & v::VFIO_REGION_INFO_FLAG_WRITE != 0,
            mmap: r.flags & v::VFIO_REGION_INFO_FLAG_MMAP != 0,
        });
    }
    let mut irqs = Vec::new();
    for index in 0..info.num_irqs.min(64) {
        let mut i = v::vfio_irq_info {
            argsz: argsz::<v::vfio_irq_info>(),
            index,
            ..Default::default()
        };
        // mtty refuses the indices it does not implement (EINVAL): absent.
        if let Err(e) = call_with(device, DEVICE_GET_IRQ_INFO, &mut i) {
            if !is_inval(&e) {
                return Err(ioctl("VFIO_DEVICE_GET_IRQ_INFO")(e));
            }
            i.count = 0;
            i.flags = 0;
        }
        irqs.push(Irq {
            index,
            count: i.count,
            eventfd: i.flags & v::VFIO_IRQ_INFO_EVENTFD != 0,
        });
    }
    Ok(Probe {
        device_api: device_api(info.flags).to_string(),
        reset: info.flags & v::VFIO_DEVICE_FLAGS_RESET != 0,
        regions,
        irqs,
        display: display(device),
        migration: migration(device),
        dma_logging: dma_logging(device),
    })
}

fn is_inval(e: &io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error())
}

fn device_api(flags: u32) -> &'static str {
    [
        (v::VFIO_DEVICE_FLAGS_PCI, "vfio-pci"),
        (v::VFIO_DEVICE_FLAGS_PLATFORM, "vfio-platform"),
        (v::VFIO_DEVICE_FLAGS_AMBA, "vfio-amba"),
        (v::VFIO_DEVICE_FLAGS_CCW, "vfio-ccw"),
        (v::VFIO_DEVICE_FLAGS_AP, "vfio-ap"),
        (v::VFIO_DEVICE_FLAGS_FSL_MC, "vfio-fsl-mc"),
        (v::VFIO_DEVICE_FLAGS_CDX, "vfio-cdx"),
    ]
    .into_iter()
    .find(|(f, _)| flags & f != 0)
    .map(|(_, w)| w)
    .unwrap_or("unknown")
}

/// As QEMU's `display=auto`: dma-buf first, then region; a refusal of both
/// (EINVAL, or ENOTTY from a driver without the ioctl) is no display.
fn display(device: &OwnedFd) -> Display {
    let probe = |kind: u32| {
        // SAFETY: the struct is plain integers and a union of integers; the
        // all-zero value is a valid value of each.
        let mut p: v::vfio_device_gfx_plane_info = unsafe { std::mem::zeroed() };
        p.argsz = argsz::<v::vfio_device_gfx_plane_info>();
        p.flags = v::VFIO_GFX_PLANE_TYPE_PROBE | kind;
        call_with(device, DEVICE_QUERY_GFX_PLANE, &mut p).is_ok()
    };
    if probe(v::VFIO_GFX_PLANE_TYPE_DMABUF) {
        Display::DmaBuf
    } else if probe(v::VFIO_GFX_PLANE_TYPE_REGION) {
        Display::Region
    } else {
        Display::None
    }
}

/// `struct vfio_device_feature` followed by a DMA logging control.
#[repr(C)]
#[derive(Default)]
struct LoggingStart {
    argsz: u32,
    flags: u32,
    control: v::vfio_device_feature_dma_logging_control,
}

/// Whether the device accepts DMA logging: started over one page and
/// stopped again (the device is ours alone while the probe holds its
/// group). A claim only: mtty's log operations are stubs that succeed.
fn dma_logging(device: &OwnedFd) -> bool {
    let mut range = v::vfio_device_feature_dma_logging_range {
        iova: 0,
        length: 4096,
    };
    let mut start = LoggingStart {
        argsz: argsz::<LoggingStart>(),
        flags: v::VFIO_DEVICE_FEATURE_SET | v::VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
        control: v::vfio_device_feature_dma_logging_control {
            page_size: 4096,
            num_ranges: 1,
            __reserved: 0,
            ranges: (&mut range as *mut v::vfio_device_feature_dma_logging_range) as u64,
        },
    };
    // The kernel reads `range` through the pointer during this call only.
    if call_with(device, DEVICE_FEATURE, &mut start).is_err() {
        return false;
    }
    let mut stop = v::vfio_device_feature {
        argsz: argsz::<v::vfio_device_feature>(),
        flags: v::VFIO_DEVICE_FEATURE_SET | v::VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP,
        ..Default::default()
    };
    let _ = call_with(device, DEVICE_FEATURE, &mut stop);
    true
}

/// `struct vfio_device_feature` followed by its migration payload.
#[repr(C)]
#[derive(Default)]
struct MigrationFeature {
    argsz: u32,
    flags: u32,
    migration: v::vfio_device_feature_migration,
}

/// VFIO_DEVICE_FEATURE GET|MIGRATION: any failure is "no migration".
fn migration(device: &OwnedFd) -> Option<Migration> {
    let mut f = MigrationFeature {
        argsz: argsz::<MigrationFeature>(),
        flags: v::VFIO_DEVICE_FEATURE_GET | v::VFIO_DEVICE_FEATURE_MIGRATION,
        ..Default::default()
    };
    call_with(device, DEVICE_FEATURE, &mut f).ok()?;
    let m = f.migration.flags;
    Some(Migration {
        stop_copy: m & u64::from(v::VFIO_MIGRATION_STOP_COPY) != 0,
        p2p: m & u64::from(v::VFIO_MIGRATION_P2P) != 0,
        pre_copy: m & u64::from(v::VFIO_MIGRATION_PRE_COPY) != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcodes_are_the_kernels() {
        // From include/uapi/linux/vfio.h: ';' << 8 | (100 + n); DOMAIN.md §4.
        assert_eq!(GET_API_VERSION, 0x3B64);
        assert_eq!(GROUP_GET_DEVICE_FD, 0x3B6A);
        assert_eq!(DEVICE_QUERY_GFX_PLANE, 0x3B72);
        assert_eq!(DEVICE_FEATURE, 0x3B75);
        assert_eq!(std::mem::size_of::<MigrationFeature>(), 16);
    }

    #[test]
    fn a_device_without_a_group_or_vfio_is_named() {
        let t = std::env::temp_dir().join(format!("hostdev-vfio-{}", std::process::id()));
        let u = hostdev_model::Uuid::new_v4();
        let target = Target::Mdev(u);
        let dir = target.dir(&t);
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let r = RealVfio::new(&t);
        let e = r.probe(&target).unwrap_err();
        assert_eq!(e.code(), "vfio.no_group", "{e}");
        std::os::unix::fs::symlink("../kernel/iommu_groups/7", dir.join("iommu_group"))
            .unwrap_or_default();
        let e = r.probe(&target).unwrap_err();
        assert_eq!(e.code(), "vfio.unavailable", "{e}");
        let _ = std::fs::remove_dir_all(&t);
    }

    #[test]
    fn held_is_none_where_it_cannot_tell_and_never_creates_the_group_node() {
        // (Held, EBUSY, needs a real group: the kernel lab's tests hold one
        // with QEMU.)
        let t = std::env::temp_dir().join(format!("hostdev-vfio-held-{}", std::process::id()));
        let u = hostdev_model::Uuid::new_v4();
        let target = Target::Mdev(u);
        let dir = target.dir(&t);
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let r = RealVfio::new(&t);
        assert_eq!(r.held(&target), None, "no iommu_group link");
        std::os::unix::fs::symlink("../kernel/iommu_groups/bad", dir.join("iommu_group"))
            .unwrap_or_default();
        assert_eq!(r.held(&target), None, "a group that is no number");
        let _ = std::fs::remove_file(dir.join("iommu_group"));
        std::os::unix::fs::symlink("../kernel/iommu_groups/7", dir.join("iommu_group"))
            .unwrap_or_default();
        assert_eq!(r.held(&target), None, "no /dev/vfio/7");
        assert!(
            !t.join("dev/vfio/7").exists(),
            "opening never creates the node"
        );
        let _ = std::fs::remove_dir_all(&t);
    }
}
