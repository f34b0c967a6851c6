//! The host file against the fakes. vDPA: plan, apply over one client,
//! idempotence, removal of only what the file made, a failure that puts the
//! management device's devices back, a host without the vdpa module.
//! SR-IOV: a typed VF whose definition is missing is defined, not cleared;
//! a VF count change while a VF is in use holds the PF's VF steps too.
#![allow(clippy::expect_used)] // tests: a failed expectation is the report

use hostdev_core::api::{HostApplyRequest, HostFileDoc};
use hostdev_core::vdpa::Vdpas;
use hostdev_core::vgpu::Vgpus;
use hostdev_core::{Callouts, CoreError, Devices, Host};
use hostdev_model::vdpa::{CreateConfig, MgmtDevName, VdpaName};
use hostdev_sysfs::sriov::FakeSriov;
use hostdev_sysfs::sriov::PciSriov;
use hostdev_sysfs::FakeKernel;
use hostdev_vdpa::{FakeVdpa, VdpaClient, VdpaError};
use hostdev_vfio::{FakeRefusal, FakeVfio};
use std::path::Path;

fn devices(root: &Path, vdpa: Vdpas<FakeVdpa>) -> Devices<(FakeKernel, FakeSriov, FakeVdpa)> {
    with_vfio(root, vdpa, std::sync::Arc::new(FakeVfio::new()))
}

fn with_vfio(
    root: &Path,
    vdpa: Vdpas<FakeVdpa>,
    vfio: std::sync::Arc<FakeVfio>,
) -> Devices<(FakeKernel, FakeSriov, FakeVdpa)> {
    let sriov = FakeSriov::new();
    sriov.add_pf(
        "0000:41:00.0",
        8,
        16384,
        &[
            (1150, "NVIDIA L40S-4Q", 4096),
            (1151, "NVIDIA L40S-8Q", 8192),
        ],
        true,
    );
    let mut v = Vgpus::new(sriov, root);
    v.vf_timeout = std::time::Duration::from_millis(200);
    Devices::new(
        Host::new(FakeKernel::new(), root, Callouts::none()),
        v,
        vdpa,
        vfio,
        root,
    )
}

fn file(text: &str) -> HostFileDoc {
    HostFileDoc {
        path: "host.toml".into(),
        file: hostdev_model::host::HostFile::parse(&format!("[host]\nid = \"t\"\n{text}"))
            .expect("a host file"),
    }
}

fn apply(
    d: &Devices<(FakeKernel, FakeSriov, FakeVdpa)>,
    text: &str,
) -> hostdev_core::api::ApplyReport {
    d.host_apply(&HostApplyRequest {
        file: Some(file(text)),
        force: vec![],
    })
    .expect("apply")
}

fn n(s: &str) -> VdpaName {
    s.parse().expect("name")
}

const THREE: &str = r#"
[[vdpa]]
name = "vd0"
mgmtdev = "vdpasim_net"
mac = "02:00:00:00:00:01"
mtu = 1500
[[vdpa]]
name = "vd1"
mgmtdev = "vdpasim_net"
mac = "02:00:00:00:00:02"
[[vdpa]]
name = "vd2"
mgmtdev = "vdpasim_net"
max_vqp = 2
start = "manual"
"#;

#[test]
fn vdpa_devices_are_made_once_changed_in_place_and_only_the_files_removed() {
    let t = tempfile::tempdir().expect("tempdir");
    let fake = FakeVdpa::new();
    fake.add_mgmtdev("vdpasim_net", 1, &["mac", "mtu", "max_vqp"]);
    let d = devices(t.path(), Vdpas::new(fake, t.path()));
    let c = d.vdpa.client().expect("client");
    // Someone's own device: never the file's to remove.
    c.add(
        &n("mine"),
        &MgmtDevName::parse("vdpasim_net").expect("m"),
        &CreateConfig::default(),
    )
    .expect("add");

    let p = d.host_plan(Some(&file(THREE))).expect("plan");
    assert_eq!(p.changes.len(), 3, "{p:?}");
    let r = apply(&d, THREE);
    assert_eq!(r.count(hostdev_api::ApplyResult::Done), 3, "{r:?}");
    let names: Vec<String> = c
        .devs()
        .expect("devs")
        .into_iter()
        .map(|x| x.name)
        .collect();
    assert_eq!(
        names,
        ["mine", "vd0", "vd1"],
        "vd2 is manual: defined, not made"
    );
    assert_eq!(c.config(&n("vd0")).expect("cfg").mtu, Some(1500));
    assert!(d.vdpa.defs.exists("vd2"));
    let p = d.host_plan(Some(&file(THREE))).expect("plan");
    assert!(p.changes.is_empty() && p.unchanged == 3, "{p:?}");
    assert!(
        apply(&d, THREE).outcomes.is_empty(),
        "a second apply does nothing"
    );

    // vd0's MTU changes (it is made again), vd1 leaves the file.
    let changed = THREE.replace("mtu = 1500", "mtu = 9000");
    let changed = changed.replace(
        "[[vdpa]]\nname = \"vd1\"\nmgmtdev = \"vdpasim_net\"\nmac = \"02:00:00:00:00:02\"\n",
        "",
    );
    let r = apply(&d, &changed);
    assert_eq!(r.count(hostdev_api::ApplyResult::Done), 2, "{r:?}");
    assert_eq!(c.config(&n("vd0")).expect("cfg").mtu, Some(9000));
    let names: Vec<String> = c
        .devs()
        .expect("devs")
        .into_iter()
        .map(|x| x.name)
        .collect();
    assert_eq!(names, ["mine", "vd0"]);
    assert!(!d.vdpa.defs.exists("vd1"));
}

#[test]
fn a_failed_vdpa_step_puts_its_management_device_back() {
    let t = tempfile::tempdir().expect("tempdir");
    let fake = FakeVdpa::new();
    // The management device takes no `features`.
    fake.add_mgmtdev("vdpasim_net", 1, &["mac", "mtu", "max_vqp"]);
    let d = devices(t.path(), Vdpas::new(fake, t.path()));
    apply(&d, THREE);
    let broken = THREE.replace("mtu = 1500", "mtu = 9000")
        + "[[vdpa]]\nname = \"vd3\"\nmgmtdev = \"vdpasim_net\"\nfeatures = 0x100000000\n";
    let r = apply(&d, &broken);
    assert_eq!(r.failed(), 1, "{r:?}");
    assert_eq!(
        r.count(hostdev_api::ApplyResult::RolledBack),
        1,
        "vd0's change undone: {r:?}"
    );
    let c = d.vdpa.client().expect("client");
    assert_eq!(
        c.config(&n("vd0")).expect("cfg").mtu,
        Some(1500),
        "vd0 as it was"
    );
    assert!(
        c.dev(&n("vd3")).expect("dev").is_none(),
        "nothing half-made"
    );
    assert!(!d.vdpa.defs.exists("vd3"));
    let def = d.vdpa.defs.load("vd0").expect("load").expect("vd0 defined");
    assert_eq!(def.config.mtu, Some(1500), "its definition as it was");
}

#[test]
fn a_file_with_vdpa_devices_on_a_host_without_the_module_says_so() {
    let t = tempfile::tempdir().expect("tempdir");
    let d = devices(t.path(), Vdpas::lazy(t.path(), || Err(VdpaError::NoFamily)));
    let e = d.host_plan(Some(&file(THREE))).expect_err("no vdpa family");
    assert_eq!(e.code(), "vdpa.unavailable", "{e}");
    assert!(
        matches!(e, CoreError::Vdpa(hostdev_core::VdpaError::Netlink(_))),
        "{e:?}"
    );
    // Without vDPA entries the rest of the file still plans.
    let p = d.host_plan(Some(&file(""))).expect("plan");
    assert!(p.changes.is_empty());
}

const PF: &str = r#"
[[sriov]]
select = { parents = ["0000:41:00.0"] }
numvfs = 2
types = [{ type = "NVIDIA L40S-4Q", count = 2 }]
"#;

#[test]
fn a_typed_vf_without_its_definition_is_defined_not_cleared() {
    let t = tempfile::tempdir().expect("tempdir");
    let d = devices(t.path(), Vdpas::new(FakeVdpa::new(), t.path()));
    assert_eq!(apply(&d, PF).count(hostdev_api::ApplyResult::Done), 3);
    std::fs::remove_file(t.path().join("etc/hostdev/vgpu.d/0000:41:00.4.json")).expect("rm");
    let p = d.host_plan(Some(&file(PF))).expect("plan");
    assert_eq!(p.changes.len(), 1, "{p:?}");
    assert_eq!(p.changes[0].action.as_str(), "define", "{p:?}");
    let before = d.vgpu.sriov.log("0000:41:00.0").len();
    assert_eq!(apply(&d, PF).count(hostdev_api::ApplyResult::Done), 1);
    assert_eq!(
        d.vgpu.sriov.log("0000:41:00.0").len(),
        before,
        "no write to the VF: its vGPU was left running"
    );
    assert!(d
        .host_plan(Some(&file(PF)))
        .expect("plan")
        .changes
        .is_empty());
}

#[test]
fn a_vf_count_change_while_a_vf_is_in_use_holds_the_whole_pf() {
    let t = tempfile::tempdir().expect("tempdir");
    let vfio = std::sync::Arc::new(FakeVfio::new());
    let d = with_vfio(
        t.path(),
        Vdpas::new(FakeVdpa::new(), t.path()),
        vfio.clone(),
    );
    apply(&d, PF);
    vfio.set("0000:41:00.5", Err(FakeRefusal::Busy));
    let four = PF.replace("numvfs = 2", "numvfs = 4");
    let p = d.host_plan(Some(&file(&four))).expect("plan");
    assert!(p.changes.is_empty(), "{p:?}");
    assert_eq!(p.blocked.len(), 3, "the count and both VFs: {p:?}");
    assert!(p.blocked[0].why.contains("0000:41:00.5: in use"), "{p:?}");
    let r = apply(&d, &four);
    assert_eq!(r.count(hostdev_api::ApplyResult::Blocked), 3, "{r:?}");
    assert_eq!(
        d.vgpu
            .sriov
            .pf(&"0000:41:00.0".parse().expect("pf"))
            .expect("pf")
            .expect("pf")
            .num_vfs,
        2
    );
    // Forcing the PF does not make the kernel wait on the VM: the write of
    // 0 VFs is refused while it holds the VF, and goes once it lets go.
    let force = || {
        d.host_apply(&HostApplyRequest {
            file: Some(file(&four)),
            force: vec!["0000:41:00.0".into()],
        })
        .expect("apply")
    };
    let r = force();
    assert_eq!(r.count(hostdev_api::ApplyResult::Done), 0, "{r:?}");
    assert!(format!("{r:?}").contains("is held through VFIO"), "{r:?}");
    vfio.forget("0000:41:00.5");
    let r = force();
    assert_eq!(r.count(hostdev_api::ApplyResult::Done), 3, "{r:?}");
}

/// Before: a count change wrote 0 VFs while a VM held an untyped VF through
/// VFIO (the plan's in-use test asks typed VFs only), and the kernel waited
/// for the VM with the host lock held. Now the write is refused first, the
/// PF put back as it was.
#[test]
fn a_count_change_is_refused_while_an_untyped_vf_is_held_through_vfio() {
    let t = tempfile::tempdir().expect("tempdir");
    let vfio = std::sync::Arc::new(FakeVfio::new());
    let d = with_vfio(
        t.path(),
        Vdpas::new(FakeVdpa::new(), t.path()),
        vfio.clone(),
    );
    let bare = "\n[[sriov]]\nselect = { parents = [\"0000:41:00.0\"] }\nnumvfs = 2\n";
    apply(&d, bare);
    vfio.set("0000:41:00.5", Err(FakeRefusal::Busy));
    let r = apply(&d, &bare.replace("numvfs = 2", "numvfs = 4"));
    let text = format!("{r:?}");
    assert!(
        text.contains("is held through VFIO") && text.contains("0000:41:00.5"),
        "{text}"
    );
    let pf = "0000:41:00.0".parse().expect("pf");
    assert_eq!(
        d.vgpu.sriov.pf(&pf).expect("pf").expect("pf").num_vfs,
        2,
        "not written: {:?}",
        d.vgpu.sriov.log("0000:41:00.0")
    );
    assert!(
        !d.vgpu
            .sriov
            .log("0000:41:00.0")
            .contains(&"numvfs 0".to_string()),
        "{:?}",
        d.vgpu.sriov.log("0000:41:00.0")
    );
}
