//! The SR-IOV split on a real (temporary) sysfs tree: the PCI core reads
//! every PF's VFs whatever its driver, and a VF's types come from its PF
//! driver's profile alone — an igb VF has none, and setting a type on it is
//! refused before anything is written.

#![allow(clippy::expect_used)]

use hostdev_model::pci::PciAddress;
use hostdev_sysfs::sriov::{PciSriov, RealPci, RealSriov, SriovError, SriovSysfs};
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

fn addr(s: &str) -> PciAddress {
    s.parse().expect("address")
}

/// A PF driven by `driver` with VFs at `vfs`; with `nvidia` files on each
/// VF when `nvidia_types` is given.
fn pf(root: &Path, pf: &str, driver: &str, vfs: &[&str], nvidia_types: Option<&str>) {
    let devs = root.join("sys/bus/pci/devices");
    let drv = root.join("sys/bus/pci/drivers").join(driver);
    fs::create_dir_all(&drv).expect("driver dir");
    let d = devs.join(pf);
    fs::create_dir_all(&d).expect("pf dir");
    fs::write(d.join("sriov_totalvfs"), "8\n").expect("total");
    fs::write(d.join("sriov_numvfs"), format!("{}\n", vfs.len())).expect("num");
    symlink(&drv, d.join("driver")).expect("driver link");
    for (i, vf) in vfs.iter().enumerate() {
        let v = devs.join(vf);
        fs::create_dir_all(&v).expect("vf dir");
        symlink(format!("../{vf}"), d.join(format!("virtfn{i}"))).expect("virtfn");
        symlink(format!("../{pf}"), v.join("physfn")).expect("physfn");
        if let Some(types) = nvidia_types {
            fs::create_dir_all(v.join("nvidia")).expect("nvidia dir");
            fs::write(v.join("nvidia/creatable_vgpu_types"), types).expect("types");
            fs::write(v.join("nvidia/current_vgpu_type"), "0\n").expect("current");
        }
    }
}

#[test]
fn the_pci_core_is_vendor_neutral_and_types_come_from_the_pf_drivers_profile() {
    let t = tempfile::tempdir().expect("tempdir");
    let root = t.path();
    pf(
        root,
        "0000:41:00.0",
        "nvidia",
        &["0000:41:00.4"],
        Some("ID : vGPU Name\n1150 : NVIDIA L40S-4Q\n"),
    );
    // An igb VF with files that look like NVIDIA's: no profile reads them.
    pf(
        root,
        "0000:02:00.0",
        "igb",
        &["0000:02:10.0", "0000:02:10.2"],
        Some("ID : vGPU Name\n1 : not a vGPU\n"),
    );

    let pci = RealPci::new(root);
    let pfs: Vec<String> = pci
        .pfs()
        .expect("pfs")
        .into_iter()
        .map(|p| p.address.to_string())
        .collect();
    assert_eq!(pfs, ["0000:02:00.0", "0000:41:00.0"]);
    assert_eq!(
        pci.vf_addresses(&addr("0000:02:00.0")).expect("igb vfs"),
        [(0, addr("0000:02:10.0")), (1, addr("0000:02:10.2"))]
    );
    assert_eq!(
        pci.physfn(&addr("0000:02:10.2")),
        Some(addr("0000:02:00.0"))
    );
    assert_eq!(pci.physfn(&addr("0000:02:00.0")), None, "a PF is no VF");

    let s = RealSriov::new(root);
    let nv = s.vfs(&addr("0000:41:00.0")).expect("nvidia vfs");
    assert_eq!(nv.len(), 1);
    assert!(nv[0].ready);
    assert_eq!(nv[0].creatable[0].name, "NVIDIA L40S-4Q");

    let igb = s.vfs(&addr("0000:02:00.0")).expect("igb vfs");
    assert_eq!(igb.len(), 2, "the PCI core lists every VF");
    assert!(igb.iter().all(|v| !v.ready && v.creatable.is_empty()));

    let e = s
        .set_type(&addr("0000:02:10.0"), 1)
        .expect_err("no profile for igb");
    assert!(matches!(e, SriovError::NoProfile { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("igb") && msg.contains("nvidia"), "{msg}");
    let untouched =
        fs::read_to_string(root.join("sys/bus/pci/devices/0000:02:10.0/nvidia/current_vgpu_type"))
            .expect("read");
    assert_eq!(untouched, "0\n", "nothing was written");

    s.set_type(&addr("0000:41:00.4"), 1150).expect("nvidia set");
    let written =
        fs::read_to_string(root.join("sys/bus/pci/devices/0000:41:00.4/nvidia/current_vgpu_type"))
            .expect("read");
    assert_eq!(written, "1150");
}

/// The fake is the same composition over the kernel model (`Profiled`): an
/// igb PF whose VFs carry NVIDIA-looking files is read through no profile,
/// and its VFs take no type. Before, the fake read every PF's VFs as
/// NVIDIA's: those VFs were ready with the model's types, and a type was
/// written to one.
#[test]
fn the_fake_reads_a_vf_through_its_pf_drivers_profile_too() {
    use hostdev_kmodel::SriovProfile;
    use hostdev_sysfs::sriov::FakeSriov;
    let s = FakeSriov::new();
    s.add_pf(
        "0000:41:00.0",
        4,
        16384,
        &[(1150, "NVIDIA L40S-4Q", 4096)],
        true,
    );
    let mut igb = SriovProfile::nvidia("0000:02:00.0", 8, 16384, &[(1, "not a vGPU", 4096)]);
    igb.driver = "igb".into();
    igb.vf_driver = Some("igbvf".into());
    igb.vendor = "0x8086".into();
    s.add(igb, true);
    s.set_num_vfs(&addr("0000:41:00.0"), 1).expect("nvidia VFs");
    s.set_num_vfs(&addr("0000:02:00.0"), 2).expect("igb VFs");

    let nv = s.vfs(&addr("0000:41:00.0")).expect("nvidia vfs");
    assert!(nv[0].ready, "{nv:?}");
    assert_eq!(nv[0].creatable[0].name, "NVIDIA L40S-4Q");
    let igb = s.vfs(&addr("0000:02:00.0")).expect("igb vfs");
    assert_eq!(igb.len(), 2, "the PCI core lists every VF");
    assert!(
        igb.iter().all(|v| !v.ready && v.creatable.is_empty()),
        "{igb:?}"
    );
    let e = s
        .set_type(&igb[0].address, 1)
        .expect_err("no profile for igb");
    assert!(matches!(e, SriovError::NoProfile { .. }), "{e:?}");
    assert!(
        !s.log("0000:02:00.0").iter().any(|l| l.starts_with("type")),
        "nothing was written: {:?}",
        s.log("0000:02:00.0")
    );
    s.set_type(&nv[0].address, 1150).expect("nvidia set");
    assert_eq!(s.vfs(&addr("0000:41:00.0")).expect("vfs")[0].current, 1150);
}
