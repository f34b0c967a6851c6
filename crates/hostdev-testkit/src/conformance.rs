//! One conformance suite of kernel behaviour, run through hostdev's own
//! kernel interfaces ([`MdevSysfs`], [`SriovSysfs`]) against whatever is
//! behind them: the in-process model (the fakes), the real sysfs code on the
//! simulator's FUSE mount, and the real kernel in the kernel lab. The
//! expectations are written here, as the real kernel behaves (the kernel
//! lab's findings, docs/kernel-facts.md; the sample drivers' sources), never
//! read from the model they check.
//!
//! Owns: the expectations ([`ParentExpect`], [`PfExpect`]) and the checks.
//! Must not: set hardware up or tear it down beyond what a check made (each
//! check leaves the parent or PF as it found it, where it can).

use hostdev_model::pci::PciAddress;
use hostdev_model::{ParentName, TypeId, Uuid};
use hostdev_sysfs::binding::{BindingError, PciBinding};
use hostdev_sysfs::sriov::{SriovError, SriovSysfs};
use hostdev_sysfs::{MdevSysfs, SysfsError};
use std::collections::BTreeMap;

/// How a parent counts its capacity, as the real driver does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capacity {
    /// Each type has its own maximum (the number given per type).
    PerType,
    /// One type at a time, each with its own maximum (NVIDIA's mdev vGPUs).
    OneType,
    /// One budget of this many units; the number per type is its cost.
    Shared(u32),
}

/// What a parent must do.
#[derive(Debug, Clone)]
pub struct ParentExpect {
    /// Its name.
    pub name: &'static str,
    /// Its rule.
    pub capacity: Capacity,
    /// (type id, maximum or cost).
    pub types: Vec<(&'static str, u32)>,
    /// The errno of a create beyond capacity.
    pub full_errno: i32,
    /// The errno of a create of another type on a one-type parent in use.
    pub other_type_errno: i32,
}

/// The kernel's sample drivers as Linux 6.12 has them (samples/vfio-mdev),
/// as the kernel lab showed them: mtty counts 24 ports shared by its types
/// (an mtty-2 takes two), mdpy 4 devices shared by its three types, mbochs
/// 256 MB shared; a create beyond capacity is refused by mtty's and
/// mbochs' probe with ENOSPC and by mdpy with EUSERS.
pub fn samples() -> Vec<ParentExpect> {
    vec![
        ParentExpect {
            name: "mtty",
            capacity: Capacity::Shared(24),
            types: vec![("mtty-1", 1), ("mtty-2", 2)],
            full_errno: ENOSPC,
            other_type_errno: ENOSPC,
        },
        ParentExpect {
            name: "mdpy",
            capacity: Capacity::Shared(4),
            types: vec![("mdpy-hd", 1), ("mdpy-vga", 1), ("mdpy-xga", 1)],
            full_errno: EUSERS,
            other_type_errno: EUSERS,
        },
        ParentExpect {
            name: "mbochs",
            capacity: Capacity::Shared(256),
            types: vec![
                ("mbochs-large", 64),
                ("mbochs-medium", 16),
                ("mbochs-small", 4),
            ],
            full_errno: ENOSPC,
            other_type_errno: ENOSPC,
        },
    ]
}

/// What a PF must do.
#[derive(Debug, Clone)]
pub struct PfExpect {
    /// Its address.
    pub address: &'static str,
    /// `sriov_totalvfs` with its driver bound.
    pub total_vfs: u32,
    /// First VF Offset and VF Stride of its SR-IOV capability.
    pub offset: u32,
    /// VF Stride.
    pub stride: u32,
    /// NVIDIA's vGPU files on its VFs: (frame buffer MiB, [(type id, MiB)]).
    pub vgpu: Option<(u32, Vec<(u32, u32)>)>,
    /// The driver its VFs get when added with autoprobe on.
    pub vf_driver: Option<&'static str>,
    /// Whether `vfio-pci` takes its VFs through `driver_override`.
    pub vfio_pci: bool,
}

/// What the SR-IOV checks talk to: the counts and VF files, and binding.
pub trait Sriov: SriovSysfs + PciBinding {}

impl<T: SriovSysfs + PciBinding> Sriov for T {}

/// QEMU's Intel 82576 (igb) in the kernel lab's guest, as its kernel
/// showed it (docs/kernel-facts.md): 7 VFs with `igb` bound, the first at
/// routing id +0x80, stride 2; no vGPU.
pub fn igb() -> PfExpect {
    PfExpect {
        address: "0000:01:00.0",
        total_vfs: 7,
        offset: 0x80,
        stride: 2,
        vgpu: None,
        vf_driver: Some("igbvf"),
        vfio_pci: true,
    }
}

/// What a simulated NVIDIA PF must do: its hardware (total, placement,
/// frame buffer, types) from its profile, the rules from this suite.
pub fn pf_expect(pf: &hostdev_kmodel::SriovProfile) -> PfExpect {
    PfExpect {
        address: pf.address.clone().leak(),
        total_vfs: pf.total_vfs,
        offset: pf.first_vf_offset,
        stride: pf.vf_stride,
        vgpu: pf.has_vgpu().then(|| {
            (
                pf.framebuffer_mb,
                pf.vgpu_types
                    .iter()
                    .map(|t| (t.id, t.framebuffer_mb))
                    .collect(),
            )
        }),
        vf_driver: pf.vf_driver.clone().map(|d| &*d.leak()),
        vfio_pci: !pf.has_vgpu(),
    }
}

const EINVAL: i32 = 22;
const EBUSY: i32 = 16;
const EEXIST: i32 = 17;
const ENOSPC: i32 = 28;
const ERANGE: i32 = 34;
const EUSERS: i32 = 87;

/// One check's outcome: its name and what went wrong.
pub type Outcome = (String, Result<(), String>);

/// The errno inside an error of the mdev interface.
fn mdev_errno(e: &SysfsError) -> Option<i32> {
    use std::error::Error;
    e.source()
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .and_then(std::io::Error::raw_os_error)
}

/// The errno inside an error of the SR-IOV interface.
fn sriov_errno(e: &SriovError) -> Option<i32> {
    match e {
        SriovError::NumVfs { source, .. }
        | SriovError::SetType { source, .. }
        | SriovError::Read { source, .. } => source.raw_os_error(),
        SriovError::Malformed { .. } | SriovError::NoProfile { .. } => None,
    }
}

fn want<T: std::fmt::Debug + PartialEq>(what: &str, got: T, expected: T) -> Result<(), String> {
    if got == expected {
        Ok(())
    } else {
        Err(format!(
            "{what}: got {got:?}, the kernel gives {expected:?}"
        ))
    }
}

/// A UUID of this suite: its own prefix, so that what it made is recognisable.
fn uuid(n: u32) -> Uuid {
    match format!("c0ffee00-0000-4000-8000-{n:012x}").parse() {
        Ok(u) => u,
        Err(e) => unreachable!("a well-formed UUID is refused: {e}"),
    }
}

/// Runs every mdev check on each parent: a list of (check, outcome).
pub fn mdev(s: &dyn MdevSysfs, parents: &[ParentExpect]) -> Vec<Outcome> {
    let mut out = Vec::new();
    for p in parents {
        let checks: [(&str, MdevCheck); 4] = [
            ("available when empty", empty_capacity),
            ("a create's effect on every type", one_create),
            ("the same UUID twice is EEXIST", duplicate),
            ("beyond capacity is the driver's errno", exhaust),
        ];
        for (name, check) in checks {
            let r = guarded(|| check(s, p));
            cleanup(s);
            out.push((format!("{}: {name}", p.name), r));
        }
    }
    out
}

type MdevCheck = fn(&dyn MdevSysfs, &ParentExpect) -> Result<(), String>;

fn names(p: &ParentExpect, t: &str) -> Result<(ParentName, TypeId), String> {
    Ok((
        ParentName::new(p.name.to_string()).map_err(|e| e.to_string())?,
        TypeId::new(t.to_string()).map_err(|e| e.to_string())?,
    ))
}

fn available(s: &dyn MdevSysfs, p: &ParentExpect) -> Result<BTreeMap<String, i64>, String> {
    let parent = ParentName::new(p.name.to_string()).map_err(|e| e.to_string())?;
    Ok(s.types(&parent)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|t| (t.type_id.to_string(), t.available_instances))
        .collect())
}

/// What each type has available when the parent has `used` devices of
/// each type (type id → count).
fn expected(p: &ParentExpect, used: &BTreeMap<&str, u32>) -> BTreeMap<String, i64> {
    p.types
        .iter()
        .map(|(t, n)| {
            let v = match p.capacity {
                Capacity::PerType => n.saturating_sub(used.get(t).copied().unwrap_or(0)),
                Capacity::OneType => {
                    let other = used.iter().any(|(x, c)| x != t && *c > 0);
                    if other {
                        0
                    } else {
                        n.saturating_sub(used.get(t).copied().unwrap_or(0))
                    }
                }
                Capacity::Shared(budget) => {
                    let spent: u32 = used
                        .iter()
                        .map(|(x, c)| {
                            let cost = p.types.iter().find(|(y, _)| y == x).map_or(0, |(_, c)| *c);
                            cost.saturating_mul(*c)
                        })
                        .fold(0, u32::saturating_add);
                    budget.saturating_sub(spent) / n.max(&1)
                }
            };
            (t.to_string(), i64::from(v))
        })
        .collect()
}

fn empty_capacity(s: &dyn MdevSysfs, p: &ParentExpect) -> Result<(), String> {
    want(
        "available_instances",
        available(s, p)?,
        expected(p, &BTreeMap::new()),
    )
}

fn one_create(s: &dyn MdevSysfs, p: &ParentExpect) -> Result<(), String> {
    // The most expensive type moves the others most.
    let (t, _) = p.types.iter().max_by_key(|(_, n)| *n).ok_or("no types")?;
    let (parent, ty) = names(p, t)?;
    s.create(&parent, &ty, &uuid(1))
        .map_err(|e| e.to_string())?;
    let listed = s.device(&uuid(1)).map_err(|e| e.to_string())?;
    want(
        "the created device's parent and type",
        listed.map(|d| (d.parent.to_string(), d.mdev_type.to_string())),
        Some((p.name.to_string(), t.to_string())),
    )?;
    let used = BTreeMap::from([(*t, 1)]);
    want(
        &format!("available_instances after one {t}"),
        available(s, p)?,
        expected(p, &used),
    )?;
    if p.capacity == Capacity::OneType {
        if let Some((other, _)) = p.types.iter().find(|(x, _)| x != t) {
            let (_, oty) = names(p, other)?;
            let e = s.create(&parent, &oty, &uuid(2)).err();
            want(
                &format!("errno of a {other} beside a {t}"),
                e.as_ref().and_then(mdev_errno),
                Some(p.other_type_errno),
            )?;
        }
    }
    s.remove(&uuid(1)).map_err(|e| e.to_string())?;
    want(
        "available_instances after the remove",
        available(s, p)?,
        expected(p, &BTreeMap::new()),
    )
}

fn duplicate(s: &dyn MdevSysfs, p: &ParentExpect) -> Result<(), String> {
    let (t, _) = p.types.first().ok_or("no types")?;
    let (parent, ty) = names(p, t)?;
    s.create(&parent, &ty, &uuid(3))
        .map_err(|e| e.to_string())?;
    let e = s.create(&parent, &ty, &uuid(3)).err();
    want("errno", e.as_ref().and_then(mdev_errno), Some(EEXIST))
}

fn exhaust(s: &dyn MdevSysfs, p: &ParentExpect) -> Result<(), String> {
    // The type with the fewest instances, so that filling it stays cheap.
    let empty = expected(p, &BTreeMap::new());
    let (t, n) = empty.iter().min_by_key(|(_, n)| **n).ok_or("no types")?;
    let (parent, ty) = names(p, t)?;
    let n = u32::try_from(*n).map_err(|e| e.to_string())?;
    for i in 0..n {
        s.create(&parent, &ty, &uuid(100 + i))
            .map_err(|e| format!("create {} of {n}: {e}", i + 1))?;
    }
    want(
        &format!("available_instances of {t} when full"),
        available(s, p)?.get(t.as_str()).copied(),
        Some(0),
    )?;
    let e = s.create(&parent, &ty, &uuid(100 + n)).err();
    want(
        "errno beyond capacity",
        e.as_ref().and_then(mdev_errno),
        Some(p.full_errno),
    )?;
    want(
        "devices after the refused create",
        s.device(&uuid(100 + n))
            .map_err(|e| e.to_string())?
            .is_some(),
        false,
    )
}

/// Removes every device this suite made.
fn cleanup(s: &dyn MdevSysfs) {
    let ours = |u: &Uuid| u.to_string().starts_with("c0ffee00-0000-4000-8000-");
    for d in s.devices().unwrap_or_default() {
        if ours(&d.uuid) {
            let _ = s.remove(&d.uuid);
        }
    }
}

/// Runs every SR-IOV check on a PF that starts with 0 VFs and autoprobe on.
pub fn sriov(s: &dyn Sriov, pf: &PfExpect) -> Vec<Outcome> {
    let mut out = Vec::new();
    let mut checks: Vec<(&str, PfCheck)> = vec![
        ("counts when disabled", pf_counts),
        ("refused counts change nothing", refused_counts),
        ("VFs where the capability puts them", vf_addresses),
        ("a nonzero count changes only by way of 0", count_change),
        ("VF drivers, IOMMU groups and vfio-pci", vf_binding),
    ];
    if pf.vgpu.is_some() {
        checks.push(("vGPU types share the frame buffer", vgpu_budget));
        checks.push(("vGPU type writes the driver refuses", vgpu_refusals));
    }
    for (name, check) in checks {
        let r = guarded(|| check(s, pf));
        pf_cleanup(s, pf);
        out.push((format!("{}: {name}", pf.address), r));
    }
    out
}

type PfCheck = fn(&dyn Sriov, &PfExpect) -> Result<(), String>;

fn addr(a: &str) -> Result<PciAddress, String> {
    a.parse()
        .map_err(|e: hostdev_model::pci::PciAddressError| e.to_string())
}

fn counts(s: &dyn Sriov, pf: &PfExpect) -> Result<(u32, u32), String> {
    let p = s
        .pf(&addr(pf.address)?)
        .map_err(|e| e.to_string())?
        .ok_or("the PF is not there")?;
    Ok((p.total_vfs, p.num_vfs))
}

fn pf_counts(s: &dyn Sriov, pf: &PfExpect) -> Result<(), String> {
    want(
        "(sriov_totalvfs, sriov_numvfs)",
        counts(s, pf)?,
        (pf.total_vfs, 0),
    )
}

fn refused_counts(s: &dyn Sriov, pf: &PfExpect) -> Result<(), String> {
    let a = addr(pf.address)?;
    // Above the total, or past a u16 when the total is the largest u16.
    let above = pf.total_vfs.saturating_add(1);
    let above_errno = if above > u32::from(u16::MAX) {
        EINVAL
    } else {
        ERANGE
    };
    for (n, errno) in [(above, above_errno), (70_000, EINVAL)] {
        let e = s.set_num_vfs(&a, n).err();
        want(
            &format!("errno of sriov_numvfs {n}"),
            e.as_ref().and_then(sriov_errno),
            Some(errno),
        )?;
        want(&format!("sriov_numvfs after {n}"), counts(s, pf)?.1, 0)?;
    }
    Ok(())
}

/// The address of VF `i` as the capability places it.
fn vf_at(pf: &PfExpect, i: u32) -> Result<String, String> {
    let a = pf.address;
    let hex = |r: std::ops::Range<usize>| {
        a.get(r)
            .and_then(|x| u32::from_str_radix(x, 16).ok())
            .ok_or_else(|| format!("{a} is not dddd:bb:dd.f"))
    };
    let (bus, dev, func) = (hex(5..7)?, hex(8..10)?, hex(11..12)?);
    let rid = i
        .checked_mul(pf.stride)
        .and_then(|x| x.checked_add(pf.offset))
        .and_then(|x| x.checked_add(bus << 8 | dev << 3 | func))
        .filter(|r| *r <= 0xffff)
        .ok_or_else(|| format!("VF {i} of {a} would be past the last bus"))?;
    Ok(format!(
        "{}:{:02x}:{:02x}.{}",
        &pf.address[..4],
        rid >> 8,
        (rid >> 3) & 0x1f,
        rid & 7
    ))
}

fn vf_addresses(s: &dyn Sriov, pf: &PfExpect) -> Result<(), String> {
    let a = addr(pf.address)?;
    let n = pf.total_vfs.min(3);
    s.set_num_vfs(&a, n).map_err(|e| e.to_string())?;
    let vfs = s.vfs(&a).map_err(|e| e.to_string())?;
    let got: Vec<(u32, String)> = vfs
        .iter()
        .map(|v| (v.index, v.address.to_string()))
        .collect();
    let expected = (0..n)
        .map(|i| Ok((i, vf_at(pf, i)?)))
        .collect::<Result<Vec<_>, String>>()?;
    want("VFs (index, address)", got, expected)?;
    want("sriov_numvfs", counts(s, pf)?.1, n)
}

fn count_change(s: &dyn Sriov, pf: &PfExpect) -> Result<(), String> {
    let a = addr(pf.address)?;
    if pf.total_vfs < 2 {
        return Err("the PF needs 2 VFs for this check".into());
    }
    s.set_num_vfs(&a, 2).map_err(|e| e.to_string())?;
    s.set_num_vfs(&a, 2)
        .map_err(|e| format!("the same count again: {e}"))?;
    want_sriov_errno("errno of 2 → 1", s.set_num_vfs(&a, 1), EBUSY)?;
    want("sriov_numvfs after 2 → 1", counts(s, pf)?.1, 2)?;
    s.set_num_vfs(&a, 0).map_err(|e| e.to_string())?;
    want(
        "VFs after 0",
        s.vfs(&a).map_err(|e| e.to_string())?.len(),
        0,
    )?;
    s.set_num_vfs(&a, 1).map_err(|e| e.to_string())?;
    want("sriov_numvfs after 0 → 1", counts(s, pf)?.1, 1)
}

/// The VFs of the PF once `n` are enabled, waiting (bounded) for the
/// driver to make their `nvidia/` directories; an error unless there are `n`.
fn ready_vfs(s: &dyn Sriov, pf: &PfExpect, n: u32) -> Result<Vec<PciAddress>, String> {
    let a = addr(pf.address)?;
    s.set_num_vfs(&a, n).map_err(|e| e.to_string())?;
    let t0 = std::time::Instant::now();
    loop {
        let vfs = s.vfs(&a).map_err(|e| e.to_string())?;
        if vfs.len() == n as usize && vfs.iter().all(|v| v.ready) {
            return Ok(vfs.into_iter().map(|v| v.address).collect());
        }
        if t0.elapsed() > std::time::Duration::from_secs(10) {
            return Err(format!(
                "{} of {n} VFs listed, {} ready, after 10 s",
                vfs.len(),
                vfs.iter().filter(|v| v.ready).count()
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn creatable(s: &dyn Sriov, pf: &PfExpect, vf: &PciAddress) -> Result<Vec<u32>, String> {
    let vfs = s.vfs(&addr(pf.address)?).map_err(|e| e.to_string())?;
    let v = vfs.iter().find(|v| &v.address == vf).ok_or("VF gone")?;
    Ok(v.creatable.iter().map(|t| t.id).collect())
}

fn vgpu_budget(s: &dyn Sriov, pf: &PfExpect) -> Result<(), String> {
    let Some((fb, types)) = &pf.vgpu else {
        return Ok(());
    };
    let vfs = ready_vfs(s, pf, 2)?;
    let fits = |left: u32| -> Vec<u32> {
        types
            .iter()
            .filter(|(_, f)| *f <= left)
            .map(|(id, _)| *id)
            .collect()
    };
    want(
        "creatable on an idle PF",
        creatable(s, pf, &vfs[1])?,
        fits(*fb),
    )?;
    let (big, big_fb) = *types.iter().max_by_key(|(_, f)| *f).ok_or("no types")?;
    s.set_type(&vfs[0], big).map_err(|e| e.to_string())?;
    want(
        "creatable on VF 0 once typed",
        creatable(s, pf, &vfs[0])?,
        Vec::new(),
    )?;
    want(
        &format!("creatable on VF 1 beside a {big_fb} MiB type"),
        creatable(s, pf, &vfs[1])?,
        fits(fb.saturating_sub(big_fb)),
    )?;
    s.set_type(&vfs[0], 0).map_err(|e| e.to_string())?;
    want(
        "creatable on VF 1 after the clear",
        creatable(s, pf, &vfs[1])?,
        fits(*fb),
    )
}

fn vgpu_refusals(s: &dyn Sriov, pf: &PfExpect) -> Result<(), String> {
    let Some((_, types)) = &pf.vgpu else {
        return Ok(());
    };
    let vfs = ready_vfs(s, pf, 1)?;
    let (small, _) = *types.iter().min_by_key(|(_, f)| *f).ok_or("no types")?;
    let unknown = types
        .iter()
        .map(|(id, _)| *id)
        .max()
        .unwrap_or(0)
        .saturating_add(1);
    want_sriov_errno(
        "errno of a type not listed",
        s.set_type(&vfs[0], unknown),
        EINVAL,
    )?;
    s.set_type(&vfs[0], small).map_err(|e| e.to_string())?;
    want_sriov_errno(
        "errno of a type over a type",
        s.set_type(&vfs[0], small),
        EBUSY,
    )?;
    want_sriov_errno(
        "errno of sriov_numvfs 0 while a VF has a type",
        s.set_num_vfs(&addr(pf.address)?, 0),
        EBUSY,
    )?;
    s.set_type(&vfs[0], 0).map_err(|e| e.to_string())
}

fn vf_binding(s: &dyn Sriov, pf: &PfExpect) -> Result<(), String> {
    let a = addr(pf.address)?;
    let e = |e: BindingError| e.to_string();
    want(
        "sriov_drivers_autoprobe at the start",
        s.autoprobe(&a).map_err(e)?,
        true,
    )?;
    s.set_num_vfs(&a, 2).map_err(|e| e.to_string())?;
    let vfs = s.vfs(&a).map_err(|e| e.to_string())?;
    let mut groups = Vec::new();
    for v in &vfs {
        want(
            &format!("driver of {} at the write's return", v.address),
            s.driver(&v.address).map_err(e)?,
            pf.vf_driver.map(str::to_string),
        )?;
        groups.push(s.iommu_group(&v.address).map_err(e)?);
    }
    groups.dedup();
    want(
        "distinct IOMMU groups, one per VF",
        groups.iter().flatten().count(),
        2,
    )?;
    s.set_num_vfs(&a, 0).map_err(|e| e.to_string())?;
    s.set_autoprobe(&a, false).map_err(e)?;
    s.set_num_vfs(&a, 1).map_err(|e| e.to_string())?;
    let vf = s
        .vfs(&a)
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
        .ok_or("no VF after 1")?
        .address;
    want("driver with autoprobe 0", s.driver(&vf).map_err(e)?, None)?;
    // With autoprobe off and no override the VF cannot be probed at all.
    s.probe(&vf).map_err(e)?;
    want(
        "driver after a probe with autoprobe 0 and no override",
        s.driver(&vf).map_err(e)?,
        None,
    )?;
    let bound = s.bind(&vf, "vfio-pci");
    let refused = matches!(bound, Err(BindingError::NotTaken { .. }));
    want(
        "vfio-pci took the VF through driver_override (else: not taken)",
        (bound.is_ok(), refused),
        (pf.vfio_pci, !pf.vfio_pci),
    )?;
    want(
        "driver after the bind",
        s.driver(&vf).map_err(e)?,
        pf.vfio_pci.then(|| "vfio-pci".to_string()),
    )?;
    s.unbind(&vf).map_err(e)?;
    want("driver after unbind", s.driver(&vf).map_err(e)?, None)
}

/// Clears what a check typed, disables the VFs, turns autoprobe back on.
fn pf_cleanup(s: &dyn Sriov, pf: &PfExpect) {
    let Ok(a) = addr(pf.address) else { return };
    let _ = s.set_autoprobe(&a, true);
    for v in s.vfs(&a).unwrap_or_default() {
        if v.current != 0 {
            let _ = s.set_type(&v.address, 0);
        }
    }
    let _ = s.set_num_vfs(&a, 0);
}

/// Runs a check; a panic in it (an implementation answering nonsense) is
/// its failure, and the cleanup after it still runs.
fn guarded(check: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(check)).unwrap_or_else(|p| {
        let why = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Err(format!("the check panicked: {why}"))
    })
}

/// The errno a refused SR-IOV call must give.
fn want_sriov_errno(what: &str, r: Result<(), SriovError>, errno: i32) -> Result<(), String> {
    want(what, r.err().as_ref().and_then(sriov_errno), Some(errno))
}

/// Panics with every failed check, one per line, when any failed.
pub fn assert_all(place: &str, outcomes: &[Outcome]) {
    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|(name, r)| r.as_ref().err().map(|e| format!("  {name}: {e}")))
        .collect();
    for (name, r) in outcomes {
        eprintln!(
            "conformance ({place}): {name}: {}",
            if r.is_ok() { "ok" } else { "FAILED" }
        );
    }
    assert!(
        failed.is_empty(),
        "{place}: {} of {} conformance checks failed:\n{}",
        failed.len(),
        outcomes.len(),
        failed.join("\n")
    );
}
