//! PCI SR-IOV on the real kernel: the lab's QEMU Intel 82576 (igb PF, igbvf
//! VFs) behind a PCIe root port and an emulated Intel IOMMU. Records what the
//! kernel does, through hostdev's vendor-neutral SR-IOV code where it has a
//! call (`RealSriov`: PFs, `sriov_totalvfs`, `sriov_numvfs`, `virtfnN`) and
//! raw sysfs where it has none yet (`sriov_drivers_autoprobe`,
//! `driver_override`, binding, IOMMU groups): the errno of each refused
//! `sriov_numvfs` write, VF addresses from the PF's SR-IOV capability, driver
//! binding, `vfio-pci` through `driver_override`, one IOMMU group per VF,
//! and what `sriov_numvfs` 0 does while a user (a paused QEMU 10) holds a
//! VF through VFIO. The facts are asserted; how long things take is measured and printed,
//! never asserted. docs/kernel-facts.md lists them beside the simulator's and
//! the fakes' versions.
//!
//! Owns: nothing but these checks. Must not: leave VFs enabled or
//! autoprobe off (each test starts and ends with 0 VFs and autoprobe 1).

use super::{kernel, read};
use hostdev_model::pci::PciAddress;
use hostdev_sysfs::sriov::PciSriov;
use hostdev_sysfs::sriov::{RealSriov, SriovError, SriovSysfs};
use rustix::io::Errno;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const PCI: &str = "/sys/bus/pci/devices";

/// Written past libtest's capture, so the lab's output shows the numbers of
/// a passing test too.
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "sriov: {line}");
}

fn dev(a: &str) -> PathBuf {
    Path::new(PCI).join(a)
}

/// Writes a sysfs file without create or truncate; the kernel's errno if refused.
fn write_raw(path: impl AsRef<Path>, data: &str) -> Result<(), i32> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path.as_ref())
        .and_then(|mut f| f.write_all(data.as_bytes()))
        .map_err(|e| e.raw_os_error().unwrap_or(-1))
}

fn write_ok(path: impl AsRef<Path>, data: &str) {
    let p = path.as_ref();
    if let Err(e) = write_raw(p, data) {
        panic!("writing '{data}' to {} failed: errno {e}", p.display());
    }
}

/// The errno of a refused `set_num_vfs`, `None` if it was accepted.
fn numvfs_errno(r: Result<(), SriovError>) -> Option<i32> {
    match r {
        Ok(()) => None,
        Err(SriovError::NumVfs { source, .. }) => Some(source.raw_os_error().unwrap_or(-1)),
        Err(e) => panic!("set_num_vfs failed with another step: {e}"),
    }
}

fn link_name(p: impl AsRef<Path>) -> Option<String> {
    std::fs::read_link(p.as_ref())
        .ok()
        .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()))
}

/// Polls (1 ms) until `f` holds; how long it took, or `None` after 30 s.
fn time_until(mut f: impl FnMut() -> bool) -> Option<Duration> {
    let t0 = Instant::now();
    while !f() {
        if t0.elapsed() > Duration::from_secs(30) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Some(t0.elapsed())
}

/// The lab's one igb PF, found through hostdev's own PF listing.
pub(super) fn igb_pf(sriov: &RealSriov) -> PciAddress {
    let pfs = sriov.pfs().expect("hostdev lists the SR-IOV PFs");
    let igb: Vec<_> = pfs
        .iter()
        .filter(|p| sriov.pf_facts(&p.address).driver.as_deref() == Some("igb"))
        .collect();
    assert_eq!(
        igb.len(),
        1,
        "the lab has one PF driven by igb (QEMU's -device igb); hostdev sees {pfs:?}"
    );
    let facts = sriov.pf_facts(&igb[0].address);
    assert_eq!(
        (facts.vendor.as_deref(), facts.device.as_deref()),
        (Some("0x8086"), Some("0x10c9")),
        "the PF is an Intel 82576"
    );
    igb[0].address.clone()
}

/// Back to the boot state: no VFs, autoprobe on, igb bound to the PF.
pub(super) fn reset(sriov: &RealSriov, pf: &PciAddress) {
    let d = dev(pf.as_str());
    if link_name(d.join("driver")).is_none() {
        let _ = write_raw("/sys/bus/pci/drivers/igb/bind", pf.as_str());
    }
    let _ = sriov.set_num_vfs(pf, 0);
    let _ = write_raw(d.join("sriov_drivers_autoprobe"), "1");
    let info = sriov.pf(pf).expect("read the PF").expect("the PF is there");
    assert_eq!(info.num_vfs, 0, "the PF starts with no VFs");
}

/// The PF's SR-IOV extended capability from its config space:
/// (TotalVFs, First VF Offset, VF Stride).
fn sriov_capability(pf: &PciAddress) -> (u16, u16, u16) {
    let cfg = std::fs::read(dev(pf.as_str()).join("config")).expect("read the PF's config");
    assert!(cfg.len() >= 4096, "root reads the extended config space");
    let u16_at = |o: usize| u16::from_le_bytes([cfg[o], cfg[o + 1]]);
    let mut at = 0x100;
    for _ in 0..64 {
        let h = u32::from_le_bytes([cfg[at], cfg[at + 1], cfg[at + 2], cfg[at + 3]]);
        if h & 0xffff == 0x0010 {
            return (u16_at(at + 0x0e), u16_at(at + 0x14), u16_at(at + 0x16));
        }
        at = ((h >> 20) & 0xffc) as usize;
        assert!(at >= 0x100, "the PF has an SR-IOV capability");
    }
    panic!("the PF's extended capability list does not end");
}

/// The address a routing id has on the PF's domain.
fn rid_address(pf: &PciAddress, rid: u32) -> String {
    format!(
        "{}:{:02x}:{:02x}.{}",
        &pf.as_str()[..4],
        rid >> 8,
        (rid >> 3) & 0x1f,
        rid & 7
    )
}

fn pf_rid(pf: &PciAddress) -> u32 {
    let s = pf.as_str();
    let bus = u32::from_str_radix(&s[5..7], 16).expect("bus");
    let slot = u32::from_str_radix(&s[8..10], 16).expect("slot");
    let func = u32::from_str_radix(&s[11..12], 16).expect("function");
    (bus << 8) | (slot << 3) | func
}

fn group_of(a: &str) -> String {
    link_name(dev(a).join("iommu_group")).unwrap_or_else(|| panic!("{a} has an IOMMU group"))
}

fn group_members(g: &str) -> Vec<String> {
    let mut m: Vec<String> = std::fs::read_dir(format!("/sys/kernel/iommu_groups/{g}/devices"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    m.sort();
    m
}

#[test]
#[ignore = "needs the real-kernel lab; run by `cargo xtask kernel-test`"]
fn igb_vfs_come_and_go_and_the_kernel_refuses_counts_with_its_errnos() {
    let _k = kernel("sriov counts");
    let sriov = RealSriov::new(Path::new("/"));
    let pf = igb_pf(&sriov);
    reset(&sriov, &pf);
    let d = dev(pf.as_str());

    // sriov_totalvfs: igb caps it at 7 (pci_sriov_set_totalvfs) below the
    // capability's TotalVFs of 8; hostdev reads what sysfs says.
    let info = sriov.pf(&pf).expect("read").expect("PF");
    let (cap_total, offset, stride) = sriov_capability(&pf);
    assert_eq!(
        info.total_vfs.to_string(),
        read(d.join("sriov_totalvfs")),
        "hostdev's total is sysfs'"
    );
    report(&format!(
        "PF {pf}: sriov_totalvfs {} (capability TotalVFs {cap_total}, First VF Offset {offset:#x}, VF Stride {stride})",
        info.total_vfs
    ));
    assert_eq!(
        (info.total_vfs, cap_total),
        (7, 8),
        "igb's limit and the 82576's"
    );
    let total = info.total_vfs;

    // Above the total: ERANGE, before the PF driver is asked; nothing changes.
    let e = numvfs_errno(sriov.set_num_vfs(&pf, total + 1));
    assert_eq!(
        e,
        Some(Errno::RANGE.raw_os_error()),
        "{} VFs of {total}",
        total + 1
    );
    // Not a u16: EINVAL, not ERANGE (the store turns any kstrtou16 failure,
    // its ERANGE included, into EINVAL; seen in the lab); not a number: EINVAL.
    let e = numvfs_errno(sriov.set_num_vfs(&pf, 70_000));
    assert_eq!(e, Some(Errno::INVAL.raw_os_error()), "70000 VFs");
    assert_eq!(
        write_raw(d.join("sriov_numvfs"), "two"),
        Err(Errno::INVAL.raw_os_error())
    );
    assert_eq!(read(d.join("sriov_numvfs")), "0");

    // Enable 3: the write returns once the VFs exist; their links and igbvf's
    // binding are timed from the write.
    let t0 = Instant::now();
    sriov.set_num_vfs(&pf, 3).expect("3 VFs");
    let write = t0.elapsed();
    let links_at_return = (0..3).all(|i| d.join(format!("virtfn{i}")).exists());
    let links = time_until(|| (0..3).all(|i| d.join(format!("virtfn{i}")).exists()))
        .expect("the virtfn links appear");
    let vfs = sriov.vfs(&pf).expect("hostdev lists the VFs");
    assert_eq!(vfs.len(), 3, "{vfs:?}");
    let bound = time_until(|| {
        vfs.iter()
            .all(|v| link_name(dev(v.address.as_str()).join("driver")).as_deref() == Some("igbvf"))
    })
    .expect("igbvf binds every VF");
    let total_time = t0.elapsed();
    report(&format!(
        "numvfs 0 -> 3: write returned after {write:?}; virtfn links there at return: {links_at_return} \
         (all seen {links:?} after it); igbvf bound to all {bound:?} after that ({total_time:?} from the write)"
    ));

    // hostdev's view: indices in order, addresses PF rid + offset + i*stride
    // (the capability's, not a fixed +4), no NVIDIA readiness on an igbvf VF.
    for (i, v) in vfs.iter().enumerate() {
        let i = i as u32;
        assert_eq!(v.index, i);
        assert_eq!(v.pf, pf);
        let want = rid_address(&pf, pf_rid(&pf) + u32::from(offset) + i * u32::from(stride));
        assert_eq!(v.address.as_str(), want, "VF {i}'s address");
        assert_eq!(link_name(d.join(format!("virtfn{i}"))), Some(want.clone()));
        assert_eq!(
            link_name(dev(&want).join("physfn")).as_deref(),
            Some(pf.as_str())
        );
        assert!(
            !v.ready,
            "an igbvf VF has no nvidia/ directory, so hostdev calls it not ready"
        );
        assert_eq!(v.current, 0);
    }
    report(&format!(
        "VFs: {}",
        vfs.iter()
            .map(|v| v.address.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    ));

    // IOMMU groups: behind the root port (with ACS) each VF is alone in its group.
    let pf_group = group_of(pf.as_str());
    let mut groups = vec![pf_group.clone()];
    for v in &vfs {
        let g = group_of(v.address.as_str());
        assert_eq!(group_members(&g), vec![v.address.to_string()], "group {g}");
        assert!(!groups.contains(&g), "VF {} shares group {g}", v.address);
        groups.push(g);
    }
    report(&format!(
        "IOMMU groups: PF {pf_group} {:?}, VFs {:?}",
        group_members(&pf_group),
        &groups[1..]
    ));

    // The same count again is accepted and changes nothing.
    assert_eq!(numvfs_errno(sriov.set_num_vfs(&pf, 3)), None);
    assert_eq!(sriov.vfs(&pf).expect("VFs"), vfs);
    // Another nonzero count while VFs exist: EBUSY (disable first).
    for n in [2, 5] {
        let e = numvfs_errno(sriov.set_num_vfs(&pf, n));
        assert_eq!(e, Some(Errno::BUSY.raw_os_error()), "3 -> {n} VFs");
    }
    assert_eq!(read(d.join("sriov_numvfs")), "3");

    // Disable: the VFs leave with the write.
    let t0 = Instant::now();
    sriov.set_num_vfs(&pf, 0).expect("0 VFs");
    let write = t0.elapsed();
    let gone_at_return = vfs.iter().all(|v| !dev(v.address.as_str()).exists());
    let gone = time_until(|| {
        vfs.iter().all(|v| !dev(v.address.as_str()).exists()) && !d.join("virtfn0").exists()
    })
    .expect("the VFs leave");
    report(&format!(
        "numvfs 3 -> 0: write returned after {write:?}; VFs gone at return: {gone_at_return} (all gone {gone:?} after it)"
    ));
    assert!(sriov.vfs(&pf).expect("VFs").is_empty());
    for g in &groups[1..] {
        assert!(group_members(g).is_empty(), "group {g} empties with its VF");
    }
    // 0 again is accepted.
    assert_eq!(numvfs_errno(sriov.set_num_vfs(&pf, 0)), None);

    // No driver on the PF: ENOENT, whatever the count; without igb the total
    // reads the capability's again.
    write_ok("/sys/bus/pci/drivers/igb/unbind", pf.as_str());
    let unbound_total = sriov.pf(&pf).expect("read").expect("PF").total_vfs;
    let r = sriov.set_num_vfs(&pf, 1);
    let said = r
        .as_ref()
        .err()
        .map(ToString::to_string)
        .unwrap_or_default();
    let e = numvfs_errno(r);
    write_ok("/sys/bus/pci/drivers/igb/bind", pf.as_str());
    assert_eq!(
        e,
        Some(Errno::NOENT.raw_os_error()),
        "1 VF on a PF without driver"
    );
    // hostdev words this ENOENT as the missing driver it is, not a missing file.
    assert!(
        said.contains("no driver is bound to the PF"),
        "hostdev's sentence: {said}"
    );
    assert_eq!(
        unbound_total,
        u32::from(cap_total),
        "sriov_totalvfs without igb"
    );
    report(&format!(
        "PF unbound: sriov_totalvfs {unbound_total}, numvfs 1 refused with ENOENT; hostdev says: {said}"
    ));
    reset(&sriov, &pf);
}

#[test]
#[ignore = "needs the real-kernel lab; run by `cargo xtask kernel-test`"]
fn vfs_left_unbound_by_autoprobe_bind_to_vfio_pci_through_driver_override() {
    let _k = kernel("sriov vfio-pci");
    let sriov = RealSriov::new(Path::new("/"));
    let pf = igb_pf(&sriov);
    reset(&sriov, &pf);
    let d = dev(pf.as_str());

    write_ok(d.join("sriov_drivers_autoprobe"), "0");
    assert_eq!(read(d.join("sriov_drivers_autoprobe")), "0");
    sriov.set_num_vfs(&pf, 2).expect("2 VFs");
    let vfs = sriov.vfs(&pf).expect("VFs");
    assert_eq!(vfs.len(), 2);
    let (a, b) = (vfs[0].address.to_string(), vfs[1].address.to_string());
    // Probing is part of adding a VF; with autoprobe off nothing binds, now or later.
    std::thread::sleep(Duration::from_millis(500));
    for v in [&a, &b] {
        assert_eq!(link_name(dev(v).join("driver")), None, "{v} stays unbound");
        assert_eq!(read(dev(v).join("driver_override")), "(null)");
    }

    // vfio-pci has no ids of its own: binding without driver_override is ENODEV.
    assert_eq!(
        write_raw("/sys/bus/pci/drivers/vfio-pci/bind", &b),
        Err(Errno::NODEV.raw_os_error()),
        "bind {b} to vfio-pci without driver_override"
    );

    // driver_override, then drivers_probe (a) or the driver's bind (b).
    let t0 = Instant::now();
    write_ok(dev(&a).join("driver_override"), "vfio-pci");
    write_ok("/sys/bus/pci/drivers_probe", &a);
    let probe = t0.elapsed();
    let t0 = Instant::now();
    write_ok(dev(&b).join("driver_override"), "vfio-pci");
    write_ok("/sys/bus/pci/drivers/vfio-pci/bind", &b);
    let bind = t0.elapsed();
    let mut nodes = Vec::new();
    for v in [&a, &b] {
        assert_eq!(read(dev(v).join("driver_override")), "vfio-pci");
        assert_eq!(
            link_name(dev(v).join("driver")).as_deref(),
            Some("vfio-pci"),
            "{v}"
        );
        let g = group_of(v);
        let node = Path::new("/dev/vfio").join(&g);
        assert!(
            node.exists(),
            "{} exists once {v} is bound to vfio-pci",
            node.display()
        );
        nodes.push(node);
    }
    report(&format!(
        "vfio-pci: {a} bound through drivers_probe in {probe:?}, {b} through bind in {bind:?}; nodes {nodes:?}"
    ));
    // hostdev still lists them, as it does any VF.
    assert_eq!(sriov.vfs(&pf).expect("VFs").len(), 2);

    // VFs bound to vfio-pci (no user) leave with numvfs 0, and their nodes with them.
    sriov
        .set_num_vfs(&pf, 0)
        .expect("0 VFs with vfio-pci bound");
    for n in &nodes {
        assert!(
            time_until(|| !n.exists()).is_some(),
            "{} goes with its VF",
            n.display()
        );
    }
    reset(&sriov, &pf);
}

/// The kernel's log from now on, read without blocking.
struct Kmsg(std::fs::File);

impl Kmsg {
    fn from_now() -> Kmsg {
        use std::io::{Seek, SeekFrom};
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open("/dev/kmsg")
            .expect("open /dev/kmsg");
        f.seek(SeekFrom::End(0)).expect("skip the log so far");
        Kmsg(f)
    }

    /// The messages logged since the last call (one record per read).
    fn new_lines(&mut self) -> Vec<String> {
        use std::io::Read;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 8192];
        loop {
            match self.0.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let rec = String::from_utf8_lossy(&buf[..n]);
                    let msg = rec.split_once(';').map_or(&*rec, |(_, m)| m);
                    out.push(msg.lines().next().unwrap_or("").to_string());
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // Records overwritten before we read them: go on from the oldest kept.
                Err(e) if e.raw_os_error() == Some(Errno::PIPE.raw_os_error()) => continue,
                Err(e) => panic!("read /dev/kmsg: {e}"),
            }
        }
        out
    }
}

/// A QEMU 10 holding a device through vfio-pci (paused, firmware never
/// run); killed on drop. The DRA tests hold an mdev with it.
pub(crate) struct Holder {
    child: std::process::Child,
    log: PathBuf,
}

impl Holder {
    /// `device`: QEMU's `-device` argument (`vfio-pci,host=…` or
    /// `vfio-pci,sysfsdev=…`).
    pub(crate) fn start(device: &str) -> Holder {
        let log = PathBuf::from("/tmp/vfio-holder.log");
        let mut c = super::paused_qemu10(device);
        let child = c
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("QEMU's log"))
            .spawn()
            .expect("start QEMU 10");
        Holder { child, log }
    }

    /// QEMU has a VFIO device file open.
    pub(crate) fn holds(&mut self) -> bool {
        let fds = format!("/proc/{}/fd", self.child.id());
        std::fs::read_dir(fds).is_ok_and(|rd| {
            rd.flatten().any(|e| {
                std::fs::read_link(e.path())
                    .is_ok_and(|t| t.to_string_lossy() == "anon_inode:[vfio-device]")
            })
        })
    }

    pub(crate) fn exited(&mut self) -> Option<String> {
        self.child.try_wait().ok().flatten().map(|s| {
            format!(
                "QEMU exited ({s}): {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            )
        })
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "needs the real-kernel lab; run by `cargo xtask kernel-test`"]
fn numvfs_0_waits_for_the_user_of_a_vf_bound_to_vfio_pci() {
    let _k = kernel("sriov held VF");
    let sriov = RealSriov::new(Path::new("/"));
    let pf = igb_pf(&sriov);
    reset(&sriov, &pf);
    let d = dev(pf.as_str());

    write_ok(d.join("sriov_drivers_autoprobe"), "0");
    sriov.set_num_vfs(&pf, 1).expect("1 VF");
    let vf = sriov.vfs(&pf).expect("VFs")[0].address.to_string();
    write_ok(dev(&vf).join("driver_override"), "vfio-pci");
    write_ok("/sys/bus/pci/drivers_probe", &vf);
    let node = Path::new("/dev/vfio").join(group_of(&vf));
    assert!(node.exists(), "{} once {vf} is bound", node.display());

    let mut qemu = Holder::start(&format!("vfio-pci,host={vf}"));
    let mut why = None;
    let opened = time_until(|| {
        why = qemu.exited();
        why.is_some() || qemu.holds()
    });
    if let Some(w) = why {
        panic!("QEMU did not take {vf}: {w}");
    }
    assert!(opened.is_some(), "QEMU opens {vf} through VFIO");

    // hostdev's disable asks VFIO first: the held VF refuses it at once,
    // naming the VF, instead of a write the kernel keeps (with the host
    // lock held) until QEMU goes.
    let asked_at = Instant::now();
    let refused = hostdev_core::System::real(Path::new("/"))
        .disable_pf(&pf)
        .expect_err("disabling a PF whose VF QEMU holds");
    report(&format!(
        "held VF: hostdev's disable refused in {:?}: {refused}",
        asked_at.elapsed()
    ));
    assert_eq!(refused.code(), "vgpu.vf_held", "{refused}");
    assert!(refused.to_string().contains(vf.as_str()), "{refused}");
    assert!(dev(&vf).exists(), "{vf} is still there after the refusal");

    // The write runs beside the test: the kernel keeps it while QEMU holds the VF.
    let mut kmsg = Kmsg::from_now();
    let pf2 = pf.clone();
    let t0 = Instant::now();
    let writer = std::thread::spawn(move || {
        let r = RealSriov::new(Path::new("/")).set_num_vfs(&pf2, 0);
        (r.map_err(|e| e.to_string()), Instant::now())
    });
    // vfio-pci asks the user to let go (through QEMU's request eventfd, or
    // in the log alone when no eventfd is registered) and waits.
    let mut asked = None;
    let seen = time_until(|| {
        asked = kmsg.new_lines().into_iter().find(|l| {
            l.contains(vf.as_str())
                && (l.contains("Relaying device request to user")
                    || l.contains("blocked until released by user"))
        });
        asked.is_some()
    });
    let asked = asked.unwrap_or_else(|| {
        panic!("vfio-pci did not ask QEMU to release {vf} within 30 s of sriov_numvfs 0")
    });
    let held = qemu.holds();
    let waiting = !writer.is_finished();
    report(&format!(
        "held VF: numvfs 0 with QEMU holding {vf}: kernel logged '{asked}' {:?} after the write began",
        seen.unwrap_or_default()
    ));
    assert!(
        held,
        "QEMU still holds {vf} (it cannot unplug a device of a paused q35 root bus)"
    );
    assert!(
        waiting,
        "sriov_numvfs 0 has not returned while {vf} is held"
    );
    assert!(dev(&vf).exists(), "{vf} is still there while held");

    // QEMU goes: the write completes, the VF and its node go.
    let killed = Instant::now();
    let log = qemu.log.clone();
    drop(qemu);
    let (r, done) = writer.join().expect("the writer thread");
    report(&format!(
        "held VF: the write returned {:?} after QEMU was killed ({:?} after it began); QEMU said: {}",
        done.saturating_duration_since(killed),
        done.saturating_duration_since(t0),
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect::<Vec<_>>()
            .join(" | ")
    ));
    assert_eq!(r, Ok(()), "sriov_numvfs 0 once the VF is released");
    assert!(!dev(&vf).exists(), "{vf} left with the write");
    assert!(
        time_until(|| !node.exists()).is_some(),
        "{} goes with the VF",
        node.display()
    );
    reset(&sriov, &pf);
}
