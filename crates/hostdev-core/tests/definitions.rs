//! Definitions that never lie: regression tests for the defects a
//! hostile-operator pass found in the vGPU, vDPA and cross-kind paths. Each
//! drives the real core against the fakes and a real store in a temp dir, and
//! asserts on the fakes' state and the error's variant, code and sentence.
#![allow(clippy::expect_used)] // tests: a failed expectation is the report

use hostdev_core::api::{Kind, Outcome, StartPolicy};
use hostdev_core::vdpa::Vdpas;
use hostdev_core::vgpu::{VgpuSlot, Vgpus};
use hostdev_core::VgpuError;
use hostdev_core::{Callouts, CoreError, DefineRequest, Devices, Host, StartRequest};
use hostdev_model::pci::PciAddress;
use hostdev_model::{ParentName, TypeId, Uuid};
use hostdev_sysfs::sriov::PciSriov;
use hostdev_sysfs::sriov::{FakeSriov, SriovSysfs};
use hostdev_sysfs::{FakeKernel, FakeType, MdevSysfs};
use hostdev_vdpa::{FakeVdpa, VdpaError};
use std::path::Path;
use std::time::Duration;

const L40S: &[(u32, &str, u32)] = &[
    (1150, "NVIDIA L40S-4Q", 4096),
    (1151, "NVIDIA L40S-8Q", 8192),
];

fn a(s: &str) -> PciAddress {
    s.parse().expect("address")
}

fn vgpus(root: &Path) -> Vgpus<FakeSriov> {
    let f = FakeSriov::new();
    f.add_pf("0000:41:00.0", 4, 16384, L40S, true);
    let mut v = Vgpus::new(f, root);
    v.vf_timeout = Duration::from_millis(50);
    v
}

fn host(root: &Path) -> Host<FakeKernel> {
    let k = FakeKernel::new();
    k.add_parent("mtty", vec![FakeType::new("mtty-1", 4)]);
    let mut h = Host::new(k, root, Callouts::none());
    h.ready_timeout = Duration::from_millis(50);
    h
}

fn define_mdev(h: &Host<FakeKernel>, uuid: Uuid) {
    h.define(&DefineRequest {
        uuid: Some(uuid),
        parent: Some(ParentName::new("mtty").expect("parent")),
        mdev_type: Some(TypeId::new("mtty-1").expect("type")),
        start: StartPolicy::Auto,
        ..Default::default()
    })
    .expect("define");
}

/// Before: the PF definition was written first, then the change refused; and
/// the message called the PF a VF ("vGPU on VF 0000:41:00.0").
#[test]
fn a_refused_vgpu_enable_leaves_the_pf_definition_as_it_was() {
    let t = tempfile::tempdir().expect("tempdir");
    let v = vgpus(t.path());
    let pf = a("0000:41:00.0");
    v.enable(&pf, 2, StartPolicy::Auto).expect("enable");
    let before = std::fs::read(v.pf_defs.path_of(pf.as_str())).expect("stored");
    let e = v.enable(&pf, 3, StartPolicy::Manual).unwrap_err();
    assert!(
        matches!(
            e,
            CoreError::Vgpu(VgpuError::VfCountFixed { enabled: 2, .. })
        ),
        "{e:?}"
    );
    assert_eq!(e.code(), "vgpu.vf_count_fixed");
    assert_eq!(
        e.to_string(),
        "PF 0000:41:00.0 has 2 VFs enabled; the kernel changes the count only through 0, which would remove their vGPUs"
    );
    assert_eq!(
        std::fs::read(v.pf_defs.path_of(pf.as_str())).expect("stored"),
        before,
        "the refused change left the stored definition as it was"
    );
    let e = v.enable(&pf, 9, StartPolicy::Manual).unwrap_err();
    assert_eq!(e.to_string(), "PF 0000:41:00.0 has at most 4 VFs");
    assert_eq!(
        std::fs::read(v.pf_defs.path_of(pf.as_str())).expect("stored"),
        before
    );
}

/// Before: the PF's VF count was computed from the bad definition's index and
/// the kernel refused the whole PF, so no VF of it was restored.
#[test]
fn a_vf_beyond_sriov_totalvfs_is_reported_alone_and_its_neighbours_restored() {
    let t = tempfile::tempdir().expect("tempdir");
    let v = vgpus(t.path());
    let pf = a("0000:41:00.0");
    v.sriov.set_num_vfs(&pf, 2).expect("numvfs");
    v.define(&VgpuSlot::Vf(a("0000:41:00.4")), "1150", StartPolicy::Auto)
        .expect("define");
    v.define(&VgpuSlot::Vf(a("0000:41:00.5")), "1150", StartPolicy::Auto)
        .expect("define");
    // A definition copied from a bigger card: VF index 9 of a 4-VF PF.
    let bad = r#"{"vf":"0000:41:01.5","pf":"0000:41:00.0","vf_index":9,"type_id":1150,"type_name":"NVIDIA L40S-4Q","start":"auto"}"#;
    std::fs::write(v.defs.path_of("0000:41:01.5"), bad).expect("write");
    v.sriov.set_num_vfs(&pf, 0).expect("reboot");
    let (r, problems) = v.restore(Duration::ZERO).expect("restore");
    assert!(problems.is_empty(), "{problems:?}");
    let outcome = |vf: &str| {
        r.iter()
            .find(|(_, x, _)| x.as_str() == vf)
            .map(|(_, _, o)| o)
            .expect("row")
    };
    assert!(matches!(
        outcome("0000:41:00.4"),
        hostdev_core::DeviceOutcome::Started
    ));
    assert!(matches!(
        outcome("0000:41:00.5"),
        hostdev_core::DeviceOutcome::Started
    ));
    match outcome("0000:41:01.5") {
        hostdev_core::DeviceOutcome::Failed(e) => {
            assert_eq!(e.code(), "vgpu.vf_beyond_total");
            assert_eq!(
                e.to_string(),
                "VF 0000:41:01.5 is VF number 9 of 0000:41:00.0, which has at most 4 VFs"
            );
        }
        o => panic!("{o:?}"),
    }
    assert_eq!(v.sriov.pf(&pf).expect("pf").expect("present").num_vfs, 2);
}

/// Before: a copied file made `start` of one VF configure another.
#[test]
fn a_vgpu_definition_naming_another_vf_is_never_acted_on() {
    let t = tempfile::tempdir().expect("tempdir");
    let v = vgpus(t.path());
    let pf = a("0000:41:00.0");
    v.sriov.set_num_vfs(&pf, 2).expect("numvfs");
    v.define(
        &VgpuSlot::Vf(a("0000:41:00.4")),
        "1150",
        StartPolicy::Manual,
    )
    .expect("define");
    std::fs::copy(
        v.defs.path_of("0000:41:00.4"),
        v.defs.path_of("0000:41:00.5"),
    )
    .expect("copy");
    let e = v.start(&a("0000:41:00.5")).unwrap_err();
    assert_eq!(e.code(), "store.bad_definition");
    assert!(
        e.to_string()
            .contains("names 0000:41:00.4, not 0000:41:00.5"),
        "{e}"
    );
    assert!(
        v.sriov
            .log("0000:41:00.0")
            .iter()
            .all(|l| !l.starts_with("type")),
        "no type was written"
    );
    let (rows, problems) = v.list().expect("list");
    assert_eq!(problems.len(), 1);
    assert_eq!(rows.iter().filter(|r| r.def.is_some()).count(), 1);
    // It can still be undefined.
    v.undefine(&a("0000:41:00.5")).expect("undefine a bad file");
}

/// Before: `vfs(pf).unwrap_or_default()` made an unreadable VF directory look
/// like "no VFs", and every VF was reported as "did not appear".
#[test]
fn an_unreadable_vf_directory_is_an_error_not_no_vfs() {
    let t = tempfile::tempdir().expect("tempdir");
    let v = vgpus(t.path());
    let pf = a("0000:41:00.0");
    v.sriov.set_num_vfs(&pf, 1).expect("numvfs");
    v.define(&VgpuSlot::Vf(a("0000:41:00.4")), "1150", StartPolicy::Auto)
        .expect("define");
    v.sriov.make_unreadable("0000:41:00.0");
    let (r, _) = v.restore(Duration::ZERO).expect("restore");
    assert_eq!(r.len(), 1);
    match &r[0].2 {
        hostdev_core::DeviceOutcome::Failed(e) => {
            assert_eq!(e.code(), "vgpu.sysfs");
            assert!(
                e.chain()
                    .contains("cannot read /sys/bus/pci/devices/0000:41:00.0/virtfn0"),
                "{}",
                e.chain()
            );
        }
        o => panic!("{o:?}"),
    }
}

/// Before: a panic in one parent's worker turned into one `Batch` error that
/// aborted the whole autostart (`r?`), and vGPU workers' rows vanished.
#[test]
fn a_panic_restoring_one_device_is_that_devices_failure() {
    let t = tempfile::tempdir().expect("tempdir");
    let h = host(t.path());
    let (u1, u2) = (Uuid::new_v4(), Uuid::new_v4());
    let (first, second) = if u1 < u2 { (u1, u2) } else { (u2, u1) };
    define_mdev(&h, first);
    define_mdev(&h, second);
    h.sysfs.panic_on_create(first);
    let r = h.autostart().expect("autostart is not aborted");
    assert_eq!(r.devices.len(), 2, "{r:?}");
    match &r.devices[0].2 {
        hostdev_core::DeviceOutcome::Failed(e) => {
            assert_eq!(e.code(), "restore.panicked");
            assert!(e.to_string().contains(&first.to_string()), "{e}");
        }
        o => panic!("{o:?}"),
    }
    assert!(matches!(
        r.devices[1].2,
        hostdev_core::DeviceOutcome::Started
    ));
    assert!(h.sysfs.device(&second).expect("read").is_some());
}

/// Before: a device that never became ready was "removed again" in the
/// message even when the removal failed.
#[test]
fn a_failed_rollback_is_reported_as_such() {
    let t = tempfile::tempdir().expect("tempdir");
    let h = host(t.path());
    h.sysfs.never_ready();
    let u = Uuid::new_v4();
    h.sysfs.set_busy(u);
    let e = h
        .start(&StartRequest {
            uuid: Some(u),
            parent: Some(ParentName::new("mtty").expect("parent")),
            mdev_type: Some(TypeId::new("mtty-1").expect("type")),
            config: None,
        })
        .unwrap_err();
    assert_eq!(e.code(), "mdev.not_ready_no_rollback");
    let s = e.to_string();
    assert!(s.contains("removing it again failed too"), "{s}");
    assert!(s.contains("it is still there"), "{s}");
    assert!(!s.contains("was removed again"), "{s}");
    assert!(
        h.sysfs.device(&u).expect("read").is_some(),
        "the device really is still there"
    );
}

fn devices(root: &Path, vdpa: Vdpas<FakeVdpa>) -> Devices<(FakeKernel, FakeSriov, FakeVdpa)> {
    Devices::new(
        host(root),
        vgpus(root),
        vdpa,
        std::sync::Arc::new(hostdev_vfio::FakeVfio::new()),
        root,
    )
}

/// Before: without the vdpa module `hostdevctl list` and `autostart` failed as
/// a whole once a vDPA definition existed, and a malformed vdpa.d file was
/// silently ignored.
#[test]
fn a_host_without_vdpa_still_lists_and_restores_the_rest_and_reports_every_device() {
    let t = tempfile::tempdir().expect("tempdir");
    let d = devices(t.path(), Vdpas::lazy(t.path(), || Err(VdpaError::NoFamily)));
    let u = Uuid::new_v4();
    define_mdev(&d.mdev, u);
    let vdpa_dir = t.path().join("etc/hostdev/vdpa.d");
    std::fs::create_dir_all(&vdpa_dir).expect("dir");
    std::fs::write(
        vdpa_dir.join("vdpa0.json"),
        r#"{"name":"vdpa0","mgmtdev":{"dev":"vdpasim_net"},"start":"auto"}"#,
    )
    .expect("write");
    std::fs::write(vdpa_dir.join("broken.json"), "{not json").expect("write");

    let inv = d.inventory().expect("inventory");
    assert_eq!(inv.devices.len(), 1);
    assert_eq!(inv.devices[0].kind, Kind::Mdev);
    assert_eq!(inv.unavailable.len(), 1);
    assert_eq!(inv.unavailable[0].kind, Kind::Vdpa);
    assert!(
        inv.unavailable[0].reason.contains("load the vdpa module"),
        "{:?}",
        inv.unavailable
    );
    assert!(
        inv.problems
            .iter()
            .any(|p| p.kind == Kind::Vdpa && p.path.ends_with("broken.json")),
        "{:?}",
        inv.problems
    );

    let r = d.restore(Duration::ZERO);
    let find = |id: &str| r.rows.iter().find(|x| x.id.ends_with(id)).expect(id);
    assert_eq!(find(&u.to_string()).outcome, Outcome::Started);
    let v = find("vdpa0");
    assert_eq!((v.kind, v.outcome), (Kind::Vdpa, Outcome::Failed));
    assert_eq!(v.error.as_ref().expect("error").code, "vdpa.unavailable");
    let b = find("broken.json");
    assert_eq!((b.kind, b.outcome), (Kind::Vdpa, Outcome::Unusable));
    assert_eq!(r.failed(), 2);
    assert!(d.mdev.sysfs.device(&u).expect("read").is_some());
}

/// Before: a malformed mdev definition was a warning line, not part of the
/// autostart report.
#[test]
fn an_unparsable_mdev_definition_is_a_row_of_the_restore_report() {
    let t = tempfile::tempdir().expect("tempdir");
    let d = devices(t.path(), Vdpas::new(FakeVdpa::new(), t.path()));
    let u = Uuid::new_v4();
    let dir = t.path().join("etc/mdevctl.d/mtty");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join(u.to_string()), "{\"mdev_type\": 3}").expect("write");
    let r = d.restore(Duration::ZERO);
    assert_eq!(r.rows.len(), 1, "{r:?}");
    assert_eq!(r.rows[0].outcome, Outcome::Unusable);
    assert_eq!(r.rows[0].kind, Kind::Mdev);
    assert!(r.rows[0].id.ends_with(&u.to_string()));
    // And it can still be undefined.
    d.mdev
        .undefine(&u, None)
        .expect("undefine a malformed definition");
    assert!(!dir.join(u.to_string()).exists());
}

/// Before: two restores at once (the udev rule and the boot unit, or two
/// `autostart`s) reported every device the other one created first as failed
/// with EEXIST, although it was running as defined.
#[test]
fn a_device_another_restorer_created_first_is_already_running_not_failed() {
    let t = tempfile::tempdir().expect("tempdir");
    let h = host(t.path());
    let u = Uuid::new_v4();
    define_mdev(&h, u);
    h.sysfs.race_create(u);
    let r = h.autostart().expect("autostart");
    assert_eq!(r.devices.len(), 1);
    assert!(
        matches!(r.devices[0].2, hostdev_core::DeviceOutcome::AlreadyRunning),
        "{r:?}"
    );
    // An explicit start of a running device still says so.
    let e = h
        .start(&StartRequest {
            uuid: Some(u),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(e.code(), "mdev.already_running");
}

/// Before: when a PF had fewer VFs enabled than its highest definition needed,
/// every VF of the PF failed, including those whose VFs existed.
#[test]
fn a_definition_beyond_the_enabled_vfs_fails_alone() {
    let t = tempfile::tempdir().expect("tempdir");
    let v = vgpus(t.path());
    let pf = a("0000:41:00.0");
    v.sriov.set_num_vfs(&pf, 4).expect("numvfs");
    v.define(&VgpuSlot::Vf(a("0000:41:00.4")), "1150", StartPolicy::Auto)
        .expect("define");
    v.define(&VgpuSlot::Vf(a("0000:41:00.7")), "1150", StartPolicy::Auto)
        .expect("define");
    // Someone set the count to 2 by hand: VF 3 (0000:41:00.7) is gone.
    v.sriov.set_num_vfs(&pf, 0).expect("numvfs");
    v.sriov.set_num_vfs(&pf, 2).expect("numvfs");
    let (r, _) = v.restore(Duration::ZERO).expect("restore");
    let outcome = |vf: &str| {
        r.iter()
            .find(|(_, x, _)| x.as_str() == vf)
            .map(|(_, _, o)| o)
            .expect("row")
    };
    assert!(
        matches!(
            outcome("0000:41:00.4"),
            hostdev_core::DeviceOutcome::Started
        ),
        "{r:?}"
    );
    match outcome("0000:41:00.7") {
        hostdev_core::DeviceOutcome::Failed(e) => {
            assert_eq!(e.code(), "vgpu.too_few_vfs");
            assert_eq!(
                e.to_string(),
                "PF 0000:41:00.0 has 2 VFs enabled but 4 are needed; the count changes only through 0"
            );
        }
        o => panic!("{o:?}"),
    }
    assert_eq!(
        v.sriov.pf(&pf).expect("pf").expect("present").num_vfs,
        2,
        "the count was not touched"
    );
}

/// Before: `vgpu disable` wrote 0 VFs while a VM held one through VFIO; the
/// kernel then waits for the VM to let go, with hostdev's host lock held,
/// so every other hostdev operation waited as long. Now it is refused
/// first, naming the VF, and nothing is written.
#[test]
fn disabling_a_pf_one_of_whose_vfs_a_vm_holds_is_refused_before_the_write() {
    let t = tempfile::tempdir().expect("tempdir");
    let vfio = std::sync::Arc::new(hostdev_vfio::FakeVfio::new());
    let d = Devices::new(
        host(t.path()),
        vgpus(t.path()),
        Vdpas::new(FakeVdpa::new(), t.path()),
        vfio.clone(),
        t.path(),
    );
    let pf = a("0000:41:00.0");
    d.vgpu.enable(&pf, 2, StartPolicy::Auto).expect("enable");
    let vfs = d.vgpu.sriov.vfs(&pf).expect("vfs");
    vfio.set(
        vfs[1].address.as_str(),
        Err(hostdev_vfio::FakeRefusal::Busy),
    );
    // Through the front door every front-end uses.
    let disable = hostdev_core::api::PfDisableRequest { pf: pf.clone() };
    let e = hostdev_core::Handle::handle(&d, &disable).expect_err("held");
    assert_eq!(e.code(), "vgpu.vf_held", "{e}");
    assert!(e.to_string().contains(vfs[1].address.as_str()), "{e}");
    assert!(
        !d.vgpu
            .sriov
            .log("0000:41:00.0")
            .contains(&"numvfs 0".to_string()),
        "nothing written: {:?}",
        d.vgpu.sriov.log("0000:41:00.0")
    );
    assert_eq!(d.vgpu.sriov.vfs(&pf).expect("vfs").len(), 2);
    // Let go: disabled.
    vfio.forget(vfs[1].address.as_str());
    hostdev_core::Handle::handle(&d, &disable).expect("disable");
    assert!(d.vgpu.sriov.vfs(&pf).expect("vfs").is_empty());
}
