//! Core operations against the in-memory fake kernel and a real store in a temp dir.
#![allow(clippy::expect_used)] // tests: a failed expectation is the report

use hostdev_core::api::{AttrEdit, MdevEdit, ModifyScope};
use hostdev_core::MdevError;
use hostdev_core::{
    Callouts, CoreError, DefineRequest, DeviceOutcome, Host, ListQuery, ModifyRequest, StartRequest,
};
use hostdev_model::{ParentName, StartPolicy, TypeId, Uuid};
use hostdev_sysfs::{FakeKernel, FakeType, MdevSysfs};
use std::time::Duration;

fn host() -> (tempfile::TempDir, Host<FakeKernel>) {
    let t = tempfile::tempdir().expect("tempdir");
    let k = FakeKernel::new();
    k.add_parent(
        "mtty",
        vec![
            FakeType::new("mtty-1", 2).with_attrs(&["foo", "bar"]),
            FakeType::new("mtty-2", 1),
        ],
    );
    k.add_parent("0000:00:02.0", vec![FakeType::new("i915-GVTg_V5_4", 4)]);
    let mut h = Host::new(k, t.path(), Callouts::none());
    h.ready_timeout = Duration::from_millis(100);
    (t, h)
}

fn p(s: &str) -> ParentName {
    ParentName::new(s).expect("parent")
}
fn ty(s: &str) -> TypeId {
    TypeId::new(s).expect("type")
}
fn json(s: &str) -> Option<hostdev_model::MdevConfig> {
    Some(hostdev_model::MdevConfig::from_json(s.as_bytes()).expect("a definition"))
}

fn define(h: &Host<FakeKernel>, uuid: Uuid, parent: &str, body: &str) {
    h.define(&DefineRequest {
        uuid: Some(uuid),
        parent: Some(p(parent)),
        config: json(body),
        ..Default::default()
    })
    .expect("define");
}

#[test]
fn start_writes_attributes_in_order_after_create() {
    let (_t, h) = host();
    let u = Uuid::new_v4();
    define(
        &h,
        u,
        "mtty",
        r#"{"mdev_type":"mtty-1","start":"manual","attrs":[{"bar":"2"},{"foo":"1"}]}"#,
    );
    h.start(&StartRequest {
        uuid: Some(u),
        ..Default::default()
    })
    .expect("start");
    assert_eq!(
        h.sysfs.log(),
        vec![
            format!("create mtty mtty-1 {u}"),
            format!("attr {u} bar=2"),
            format!("attr {u} foo=1")
        ]
    );
    let l = h.list(&ListQuery::default()).expect("list");
    assert_eq!(l.entries.len(), 1);
    assert!(l.entries[0].defined);
}

#[test]
fn a_failed_attribute_write_removes_the_device() {
    let (_t, h) = host();
    h.sysfs.fail_attr("foo", 22);
    let u = Uuid::new_v4();
    let e = h
        .start(&StartRequest {
            uuid: Some(u),
            parent: Some(p("mtty")),
            config: json(
                r#"{"mdev_type":"mtty-1","start":"manual","attrs":[{"bar":"2"},{"foo":"x"}]}"#,
            ),
            ..Default::default()
        })
        .unwrap_err();
    assert!(
        matches!(&e, CoreError::Mdev(MdevError::Attr { attr, .. }) if attr == "foo"),
        "{e:?}"
    );
    let chain = format!(
        "{e}: {}",
        std::error::Error::source(&e)
            .map(|s| s.to_string())
            .unwrap_or_default()
    );
    assert!(chain.contains("EINVAL"), "{chain}");
    assert!(h.sysfs.devices().expect("devices").is_empty());
    assert_eq!(
        h.sysfs.log().last().map(String::as_str),
        Some(format!("remove {u}").as_str())
    );
}

#[test]
fn an_unknown_attribute_is_rolled_back_too() {
    let (_t, h) = host();
    let e = h
        .start(&StartRequest {
            parent: Some(p("mtty")),
            config: json(r#"{"mdev_type":"mtty-1","start":"manual","attrs":[{"nosuch":"1"}]}"#),
            ..Default::default()
        })
        .unwrap_err();
    assert!(e.to_string().contains("nosuch"), "{e}");
    assert!(h.sysfs.devices().expect("devices").is_empty());
}

#[test]
fn capacity_exhaustion_is_explained_and_leaves_nothing() {
    let (_t, h) = host();
    let start = || {
        h.start(&StartRequest {
            parent: Some(p("mtty")),
            mdev_type: Some(ty("mtty-2")),
            ..Default::default()
        })
    };
    let first = start().expect("first");
    assert!(first.generated);
    let e = start().unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "no available instances of mtty-2 on mtty: its capacity is used by 1 running device(s): {} (mtty-2)",
            first.uuid
        )
    );
    assert_eq!(h.sysfs.devices().expect("devices").len(), 1);
}

#[test]
fn a_kernel_refusal_at_create_names_the_errno() {
    let (_t, h) = host();
    h.sysfs.fail_next_create(28);
    let e = h
        .start(&StartRequest {
            parent: Some(p("mtty")),
            mdev_type: Some(ty("mtty-1")),
            ..Default::default()
        })
        .unwrap_err();
    let src = std::error::Error::source(&e)
        .map(|s| s.to_string())
        .unwrap_or_default();
    assert!(src.contains("ENOSPC"), "{src}");
}

#[test]
fn parent_case_hint() {
    let (_t, h) = host();
    let e = h
        .start(&StartRequest {
            parent: Some(p("MTTY")),
            mdev_type: Some(ty("mtty-1")),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "parent MTTY is not registered for mdev support; did you mean mtty?"
    );
}

#[test]
fn start_waits_for_readiness_with_a_bound() {
    let (_t, h) = host();
    h.sysfs.ready_after_polls(3);
    h.start(&StartRequest {
        parent: Some(p("mtty")),
        mdev_type: Some(ty("mtty-1")),
        ..Default::default()
    })
    .expect("becomes ready after a few polls");
    h.sysfs.never_ready();
    let e = h
        .start(&StartRequest {
            parent: Some(p("mtty")),
            mdev_type: Some(ty("mtty-1")),
            ..Default::default()
        })
        .unwrap_err();
    assert!(
        matches!(e, CoreError::Mdev(MdevError::NotReady { .. })),
        "{e:?}"
    );
    assert!(e.to_string().contains("no driver bound"), "{e}");
    assert_eq!(
        h.sysfs.devices().expect("devices").len(),
        1,
        "the unready device was removed"
    );
}

#[test]
fn hostile_attribute_in_a_definition_never_reaches_the_kernel() {
    let (t, h) = host();
    let u = Uuid::new_v4();
    std::fs::create_dir_all(t.path().join("etc/mdevctl.d/mtty")).expect("dir");
    // Written behind hostdev's back: the loader refuses it, so start finds no usable definition.
    std::fs::write(
        t.path().join(format!("etc/mdevctl.d/mtty/{u}")),
        r#"{"mdev_type":"mtty-1","start":"auto","attrs":[{"../remove":"1"}]}"#,
    )
    .expect("write");
    assert!(h
        .start(&StartRequest {
            uuid: Some(u),
            ..Default::default()
        })
        .is_err());
    assert!(h.sysfs.log().is_empty());
}

#[test]
fn running_devices_are_not_started_twice_and_busy_ones_not_stopped() {
    let (_t, h) = host();
    let u = Uuid::new_v4();
    define(&h, u, "mtty", r#"{"mdev_type":"mtty-1","start":"auto"}"#);
    h.start(&StartRequest {
        uuid: Some(u),
        ..Default::default()
    })
    .expect("start");
    let e = h
        .start(&StartRequest {
            uuid: Some(u),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("mdev {u} is already running on mtty")
    );
    h.sysfs.set_busy(u);
    let e = h.stop(&u).unwrap_err();
    let src = std::error::Error::source(&e)
        .map(|s| s.to_string())
        .unwrap_or_default();
    assert!(src.contains("in use by a VM"), "{src}");
}

#[test]
fn start_parent_mdevs_goes_past_a_malformed_sibling_and_failures() {
    let (t, h) = host();
    let good1 = "00000000-0000-4000-8000-000000000001"
        .parse::<Uuid>()
        .expect("uuid");
    let good2 = "00000000-0000-4000-8000-000000000003"
        .parse::<Uuid>()
        .expect("uuid");
    let failing = "00000000-0000-4000-8000-000000000002"
        .parse::<Uuid>()
        .expect("uuid");
    define(
        &h,
        good1,
        "mtty",
        r#"{"mdev_type":"mtty-1","start":"auto"}"#,
    );
    define(
        &h,
        failing,
        "mtty",
        r#"{"mdev_type":"mtty-1","start":"auto","attrs":[{"nosuch":"1"}]}"#,
    );
    define(
        &h,
        good2,
        "mtty",
        r#"{"mdev_type":"mtty-2","start":"auto"}"#,
    );
    define(
        &h,
        Uuid::new_v4(),
        "mtty",
        r#"{"mdev_type":"mtty-2","start":"manual"}"#,
    );
    std::fs::write(
        t.path()
            .join("etc/mdevctl.d/mtty/00000000-0000-4000-8000-000000000000"),
        "{torn",
    )
    .expect("write");
    let r = h.start_parent_mdevs(&p("mtty")).expect("report");
    assert_eq!(r.problems.len(), 1);
    assert!(r.problems[0]
        .to_string()
        .contains("00000000-0000-4000-8000-000000000000"));
    let outcomes: Vec<_> = r
        .devices
        .iter()
        .map(|(_, u, o)| (*u, matches!(o, DeviceOutcome::Started)))
        .collect();
    assert_eq!(
        outcomes,
        vec![(good1, true), (failing, false), (good2, true)]
    );
    assert_eq!(r.failed(), 1);
    // Idempotent: a second run leaves the running devices alone.
    let r = h.start_parent_mdevs(&p("mtty")).expect("report");
    assert!(matches!(r.devices[0].2, DeviceOutcome::AlreadyRunning));
}

#[test]
fn autostart_covers_every_parent_and_reports_absent_ones() {
    let (_t, h) = host();
    for (parent, t) in [
        ("mtty", "mtty-1"),
        ("0000:00:02.0", "i915-GVTg_V5_4"),
        ("0000:00:02.0", "i915-GVTg_V5_4"),
        ("gone", "x"),
    ] {
        define(
            &h,
            Uuid::new_v4(),
            parent,
            &format!(r#"{{"mdev_type":"{t}","start":"auto"}}"#),
        );
    }
    let r = h.autostart().expect("autostart");
    let started = r
        .devices
        .iter()
        .filter(|d| matches!(d.2, DeviceOutcome::Started))
        .count();
    let absent = r
        .devices
        .iter()
        .filter(|d| matches!(d.2, DeviceOutcome::ParentAbsent))
        .count();
    assert_eq!((started, absent, r.failed()), (3, 1, 0));
    let r = h.autostart().expect("again");
    assert_eq!(
        r.devices
            .iter()
            .filter(|d| matches!(d.2, DeviceOutcome::AlreadyRunning))
            .count(),
        3
    );
}

#[test]
fn define_promotes_a_running_device() {
    let (_t, h) = host();
    let s = h
        .start(&StartRequest {
            parent: Some(p("0000:00:02.0")),
            mdev_type: Some(ty("i915-GVTg_V5_4")),
            ..Default::default()
        })
        .expect("start");
    let d = h
        .define(&DefineRequest {
            uuid: Some(s.uuid),
            start: StartPolicy::Auto,
            ..Default::default()
        })
        .expect("define");
    assert_eq!(d.parent.as_str(), "0000:00:02.0");
    let l = h
        .list(&ListQuery {
            defined: true,
            ..Default::default()
        })
        .expect("list");
    assert!(l.entries[0].active);
    assert_eq!(l.entries[0].config.start.as_str(), "auto");
}

#[test]
fn hostile_addattr_is_refused_before_anything_is_written() {
    let (t, h) = host();
    let u = Uuid::new_v4();
    define(&h, u, "mtty", r#"{"mdev_type":"mtty-1","start":"auto"}"#);
    let before = std::fs::read(t.path().join(format!("etc/mdevctl.d/mtty/{u}"))).expect("read");
    for name in ["../remove", "a/b", "..", ""] {
        let e = h
            .modify(&ModifyRequest {
                uuid: u,
                parent: None,
                edit: MdevEdit {
                    attr: Some(AttrEdit::Add {
                        index: None,
                        name: name.into(),
                        value: "1".into(),
                    }),
                    ..Default::default()
                },
                scope: ModifyScope::Defined,
                force: false,
            })
            .unwrap_err();
        assert!(matches!(e, CoreError::Name(_)), "{name}: {e:?}");
    }
    assert_eq!(
        std::fs::read(t.path().join(format!("etc/mdevctl.d/mtty/{u}"))).expect("read"),
        before
    );
}

#[test]
fn live_modify_writes_attributes_of_the_running_device() {
    let (_t, h) = host();
    let s = h
        .start(&StartRequest {
            parent: Some(p("mtty")),
            mdev_type: Some(ty("mtty-1")),
            ..Default::default()
        })
        .expect("start");
    h.modify(&ModifyRequest {
        uuid: s.uuid,
        parent: None,
        edit: MdevEdit {
            replace: json(r#"{"mdev_type":"mtty-1","start":"manual","attrs":[{"foo":"live"}]}"#),
            ..Default::default()
        },
        scope: ModifyScope::Live,
        force: false,
    })
    .expect("live modify");
    assert_eq!(
        h.sysfs
            .attrs_of(&s.uuid)
            .expect("attrs")
            .get("foo")
            .map(String::as_str),
        Some("live")
    );
}

#[test]
fn autostart_wait_restores_a_late_parent_once_per_parent() {
    // Regression: a parent with several waiting devices was restored once per
    // device, and the second pass overwrote "started" with "already running".
    let (_t, h) = host();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    define(&h, a, "late", r#"{"mdev_type":"late-1","start":"auto"}"#);
    define(&h, b, "late", r#"{"mdev_type":"late-1","start":"auto"}"#);
    let report = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(50));
            h.sysfs.add_parent("late", vec![FakeType::new("late-1", 4)]);
        });
        h.autostart_wait(Duration::from_secs(5)).expect("autostart")
    });
    let started: Vec<_> = report
        .devices
        .iter()
        .filter(|d| matches!(d.2, DeviceOutcome::Started))
        .map(|d| d.1)
        .collect();
    assert_eq!(started.len(), 2, "{:?}", report.devices);
    assert!(started.contains(&a) && started.contains(&b));
}
