//! Migration against the fakes: the vDPA trial device and what a killed
//! check left behind.
#![allow(clippy::expect_used)] // tests: a failed expectation is the report

use hostdev_core::api::{ExportTarget, MigrateCheckRequest};
use hostdev_core::vdpa::Vdpas;
use hostdev_core::vgpu::Vgpus;
use hostdev_core::{Callouts, Devices, Host};
use hostdev_model::migrate::{DriverPolicy, Verdict};
use hostdev_model::vdpa::{CreateConfig, MgmtDevName, VdpaName};
use hostdev_sysfs::sriov::FakeSriov;
use hostdev_sysfs::FakeKernel;
use hostdev_vdpa::{FakeVdpa, VdpaClient};
use hostdev_vfio::FakeVfio;
use std::sync::Arc;

#[test]
fn a_vdpa_check_removes_what_a_killed_check_left_and_leaves_a_live_ones() {
    let t = tempfile::tempdir().expect("tempdir");
    let vd = FakeVdpa::new();
    vd.add_mgmtdev("vdpasim_net", 1, &["mac", "mtu"]);
    let d = Devices::new(
        Host::new(FakeKernel::new(), t.path(), Callouts::none()),
        Vgpus::new(FakeSriov::new(), t.path()),
        Vdpas::new(vd, t.path()),
        Arc::new(FakeVfio::new()),
        t.path(),
    );
    let c = d.vdpa.client().expect("client");
    let m = MgmtDevName::parse("vdpasim_net").expect("mgmtdev");
    let name = |s: &str| s.parse::<VdpaName>().expect("name");
    c.add(&name("v0"), &m, &CreateConfig::default())
        .expect("source");
    // A trial of a process that is gone, and one of this (live) process.
    let live = format!("hdchk{}-99", std::process::id());
    c.add(&name("hdchk4000000000-0"), &m, &CreateConfig::default())
        .expect("dead trial");
    c.add(&name(&live), &m, &CreateConfig::default())
        .expect("live trial");
    let spec = d
        .migrate_export(&ExportTarget::Vdpa(name("v0")))
        .expect("export");
    let r = d
        .migrate_check(&MigrateCheckRequest {
            spec,
            device: None,
            mgmtdev: Some(m),
            driver_policy: DriverPolicy::Exact,
        })
        .expect("check");
    assert_eq!(r.verdict, Verdict::Compatible, "{r:?}");
    let mut left: Vec<String> = c
        .devs()
        .expect("devs")
        .into_iter()
        .map(|d| d.name)
        .collect();
    left.sort();
    assert_eq!(
        left,
        [live, "v0".to_string()],
        "the dead trial and this check's own trial are gone"
    );
}
