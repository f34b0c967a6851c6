//! The host file's vDPA part against the fake netlink client: plan, apply
//! over one client, idempotence, removal of only what the file made, a
//! failure that puts the management device's devices back, and a host
//! without the vdpa module.
#![allow(clippy::expect_used)] // tests: a failed expectation is the report

use hostdev_core::api::{HostApplyRequest, HostFileInput};
use hostdev_core::vdpa::Vdpas;
use hostdev_core::vgpu::Vgpus;
use hostdev_core::{Callouts, CoreError, Devices, Host};
use hostdev_model::vdpa::{CreateConfig, MgmtDevName, VdpaName};
use hostdev_sysfs::sriov::FakeSriov;
use hostdev_sysfs::FakeKernel;
use hostdev_vdpa::{FakeVdpa, VdpaClient, VdpaError};
use std::path::Path;

fn devices(root: &Path, vdpa: Vdpas<FakeVdpa>) -> Devices<FakeKernel, FakeSriov, FakeVdpa> {
    Devices::new(
        Host::new(FakeKernel::new(), root, Callouts::none()),
        Vgpus::new(FakeSriov::new(), root),
        vdpa,
        std::sync::Arc::new(hostdev_vfio::FakeVfio::new()),
        root,
    )
}

fn file(text: &str) -> HostFileInput {
    HostFileInput {
        path: "host.toml".into(),
        text: format!("[host]\nid = \"t\"\n{text}"),
    }
}

fn apply(
    d: &Devices<FakeKernel, FakeSriov, FakeVdpa>,
    text: &str,
) -> hostdev_core::api::ApplyReport {
    d.host_apply(&HostApplyRequest {
        file: file(text),
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

    let p = d.host_plan(&file(THREE)).expect("plan");
    assert_eq!(p.changes.len(), 3, "{p:?}");
    let r = apply(&d, THREE);
    assert_eq!(r.count("done"), 3, "{r:?}");
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
    let p = d.host_plan(&file(THREE)).expect("plan");
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
    assert_eq!(r.count("done"), 2, "{r:?}");
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
    assert_eq!(r.count("rolled-back"), 1, "vd0's change undone: {r:?}");
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
    let e = d.host_plan(&file(THREE)).expect_err("no vdpa family");
    assert_eq!(e.code(), "vdpa.unavailable", "{e}");
    assert!(matches!(e, CoreError::Vdpa(_)), "{e:?}");
    // Without vDPA entries the rest of the file still plans.
    let p = d.host_plan(&file("")).expect("plan");
    assert!(p.changes.is_empty());
}
