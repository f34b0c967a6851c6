//! What a hostile operator found in the host file (issue 25), against the
//! fakes and a real store in a temp dir: the record of what the file made
//! claiming devices it did not make, an unreadable pool database read as
//! "nothing is held", a corrupt record silently emptied.
#![allow(clippy::expect_used)] // tests: a failed expectation is the report

use hostdev_core::api::{Action, DefineRequest, HostApplyRequest, HostFileDoc, Plan};
use hostdev_core::vdpa::Vdpas;
use hostdev_core::vgpu::Vgpus;
use hostdev_core::{Callouts, Devices, Host};
use hostdev_model::{ParentName, StartPolicy, TypeId, Uuid};
use hostdev_sysfs::sriov::FakeSriov;
use hostdev_sysfs::{FakeKernel, FakeType, MdevSysfs};
use hostdev_vdpa::FakeVdpa;
use std::path::Path;

type Fakes = Devices<(FakeKernel, FakeSriov, FakeVdpa)>;

const U: &str = "11111111-2222-4333-8444-555555555555";
const W: &str = "11111111-2222-4333-8444-666666666666";

fn host(root: &Path) -> Fakes {
    let k = FakeKernel::new();
    k.add_parent("p1", vec![FakeType::new("t-1", 4), FakeType::new("t-2", 4)]);
    let mut h = Host::new(k, root, Callouts::none());
    h.ready_timeout = std::time::Duration::from_millis(50);
    Devices::new(
        h,
        Vgpus::new(FakeSriov::new(), root),
        Vdpas::new(FakeVdpa::new(), root),
        std::sync::Arc::new(hostdev_vfio::FakeVfio::new()),
        root,
    )
}

fn input(text: &str) -> HostFileDoc {
    HostFileDoc {
        path: "host.toml".into(),
        file: hostdev_model::host::HostFile::parse(&format!("[host]\nid = \"t\"\n{text}"))
            .expect("a host file"),
    }
}

fn device(uuid: &str) -> String {
    format!("[[mdev_device]]\nuuid = \"{uuid}\"\nparent = \"p1\"\ntype = \"t-1\"\n")
}

fn apply(d: &Fakes, text: &str) -> hostdev_core::api::ApplyReport {
    d.host_apply(&HostApplyRequest {
        file: Some(input(text)),
        force: vec![],
    })
    .expect("apply")
}

fn plan(d: &Fakes, text: &str) -> Plan {
    d.host_plan(Some(&input(text))).expect("plan")
}

fn removes(p: &Plan, id: &str) -> bool {
    p.changes
        .iter()
        .chain(&p.blocked)
        .any(|c| c.id == id && c.action == Action::Remove)
}

fn by_hand(d: &Fakes, uuid: &str) {
    d.mdev
        .define(&DefineRequest {
            uuid: Some(uuid.parse::<Uuid>().expect("uuid")),
            parent: Some(ParentName::new("p1").expect("parent")),
            mdev_type: Some(TypeId::new("t-2").expect("type")),
            start: StartPolicy::Manual,
            config: None,
        })
        .expect("define by hand");
}

/// A create that failed (or an apply killed before it made the device) left
/// the UUID in the record of what the file made; a device an operator then
/// defined by hand with that UUID was removed by the next plan.
#[test]
fn the_record_claims_only_what_the_file_really_made() {
    let t = tempfile::tempdir().expect("tempdir");
    let d = host(t.path());
    d.mdev.sysfs.fail_next_create(5);
    let r = apply(&d, &device(U));
    assert_eq!(r.failed(), 1, "{r:?}");
    by_hand(&d, U);
    let p = plan(&d, "");
    assert!(
        !removes(&p, U),
        "a device defined by hand is not the file's: {p:?}"
    );

    // A killed apply: what it claimed before making is pending, never a
    // reason to remove; what it did make is claimed by the next apply.
    let record = t.path().join("var/lib/hostdev/host-managed.json");
    std::fs::write(
        &record,
        format!("{{\"mdev\":[],\"pending\":{{\"mdev\":[\"{W}\"]}}}}"),
    )
    .expect("record");
    by_hand(&d, W);
    let p = plan(&d, "");
    assert!(!removes(&p, W), "pending is not made: {p:?}");
    let r = apply(&d, &device(W));
    assert_eq!(r.failed(), 0, "{r:?}");
    let p = plan(&d, "");
    assert!(removes(&p, W), "made by the file now: {p:?}");
}

/// Any error opening pools.db (a newer schema, a damaged header) was read
/// as "nothing is held", so apply removed devices a pool had allocated.
#[test]
fn an_unreadable_pool_database_blocks_what_it_might_hold() {
    let t = tempfile::tempdir().expect("tempdir");
    let d = host(t.path());
    let r = apply(&d, &device(U));
    assert_eq!(r.count(hostdev_api::ApplyResult::Done), 1, "{r:?}");
    let db = t.path().join("var/lib/hostdev/pools.db");
    std::fs::write(&db, b"SQLite format 3\0 but damaged beyond this header").expect("damage");
    let p = plan(&d, "");
    assert!(p.changes.is_empty(), "nothing may go: {p:?}");
    assert_eq!(p.blocked.len(), 1, "{p:?}");
    assert!(
        p.blocked[0].why.contains("pool state cannot be read"),
        "{}",
        p.blocked[0].why
    );
    let r = apply(&d, "");
    assert_eq!(r.count(hostdev_api::ApplyResult::Blocked), 1, "{r:?}");
    assert_eq!(
        d.mdev.sysfs.devices().expect("devices").len(),
        1,
        "still running"
    );
}

/// A corrupt host-managed.json was read as an empty record: the plan
/// ignored every device the file made and apply rewrote it empty,
/// forgetting them for good.
#[test]
fn a_corrupt_record_is_refused_and_kept() {
    let t = tempfile::tempdir().expect("tempdir");
    let d = host(t.path());
    apply(&d, &device(U));
    let record = t.path().join("var/lib/hostdev/host-managed.json");
    std::fs::write(&record, b"{\"mdev\": [\"1111").expect("corrupt");
    for e in [
        d.host_plan(Some(&input(""))).expect_err("plan"),
        d.host_apply(&HostApplyRequest {
            file: Some(input("")),
            force: vec![],
        })
        .expect_err("apply"),
    ] {
        assert_eq!(e.code(), "host.bad_record", "{e}");
        let s = e.to_string();
        assert!(
            s.contains("host-managed.json") && s.contains("move it aside"),
            "{s}"
        );
    }
    assert_eq!(std::fs::read(&record).expect("kept"), b"{\"mdev\": [\"1111");
    assert_eq!(d.mdev.sysfs.devices().expect("devices").len(), 1);
}
