//! Kubernetes DRA against the fakes and a real state directory: what is
//! published (counters, devices, attributes, capacity others hold), what a
//! prepare makes and records, that it is idempotent, that unprepare removes
//! exactly what prepare made, and that a record a killed process left in
//! transit is undone by the next caller.
#![allow(clippy::expect_used, clippy::unwrap_used)] // tests: a failed expectation is the report

use hostdev_core::api::{
    DraAllocated, DraClaim, DraPrepareRequest, DraResources, DraValue, Kind, StartRequest,
};
use hostdev_core::vdpa::Vdpas;
use hostdev_core::vgpu::Vgpus;
use hostdev_core::{Callouts, Devices, Host};
use hostdev_model::Uuid;
use hostdev_sysfs::sriov::PciSriov;
use hostdev_sysfs::sriov::{FakeSriov, SriovSysfs};
use hostdev_sysfs::{FakeKernel, FakeType, MdevSysfs};
use hostdev_vdpa::FakeVdpa;
use std::path::Path;
use std::time::Duration;

type Fakes = Devices<(FakeKernel, FakeSriov, FakeVdpa)>;

fn host(root: &Path) -> Fakes {
    let k = FakeKernel::new();
    // A shared budget of 8: "big" costs 4 (2 fit), "small" 2 (4 fit).
    let mut big = FakeType::new("gvt-big", 0);
    big.cost = 4;
    let mut small = FakeType::new("gvt-small", 0);
    small.cost = 2;
    k.add_budget_parent("gpu0", 8, vec![big, small]);
    let mut t = FakeType::new("nv-8q", 2);
    t.name = Some("GRID T4-8Q".into());
    t.description = Some("num_heads=4, framebuffer=8192M, max_instance=2\n".into());
    k.add_parent("gpu1", vec![t]);
    let mut h = Host::new(k, root, Callouts::none());
    h.ready_timeout = Duration::from_millis(50);
    let s = FakeSriov::new();
    s.add_pf(
        "0000:41:00.0",
        4,
        16384,
        &[
            (1150, "NVIDIA L40S-4Q", 4096),
            (1151, "NVIDIA L40S-8Q", 8192),
        ],
        true,
    );
    s.set_num_vfs(&"0000:41:00.0".parse().expect("pf"), 4)
        .expect("vfs");
    let mut v = Vgpus::new(s, root);
    v.vf_timeout = Duration::from_millis(50);
    Devices::new(
        h,
        v,
        Vdpas::new(FakeVdpa::new(), root),
        std::sync::Arc::new(hostdev_vfio::FakeVfio::new()),
        root,
    )
}

fn claim(n: u8) -> DraClaim {
    DraClaim {
        uid: format!("00000000-0000-4000-8000-0000000000{n:02x}")
            .parse()
            .expect("uid"),
        namespace: "ns".into(),
        name: format!("claim-{n}"),
    }
}

fn device<'a>(r: &'a DraResources, kind: &str, ty: &str, slot: i64) -> &'a str {
    r.devices
        .iter()
        .find(|d| {
            let a = &d.attributes;
            a.get("kind") == Some(&DraValue::String(kind.into()))
                && (a.get("type") == Some(&DraValue::String(ty.into()))
                    || a.get("typeName") == Some(&DraValue::String(ty.into())))
                && a.get("slot").is_none_or(|s| s == &DraValue::Int(slot))
        })
        .map(|d| d.name.as_str())
        .unwrap_or_else(|| panic!("no {kind} {ty} slot {slot} in {r:#?}"))
}

fn prepare(
    h: &Fakes,
    c: &DraClaim,
    devs: &[&str],
) -> Result<hostdev_core::api::DraPrepared, hostdev_core::CoreError> {
    h.dra_prepare(&DraPrepareRequest {
        claim: c.clone(),
        devices: devs
            .iter()
            .enumerate()
            .map(|(i, d)| DraAllocated {
                request: format!("r{i}"),
                device: d.to_string(),
                config: None,
            })
            .collect(),
    })
}

/// Where hostdevd keeps a claim's record under `root`.
fn record_path(root: &Path, uid: &impl std::fmt::Display) -> std::path::PathBuf {
    root.join(format!("var/lib/hostdev/dra/claims/{uid}.json"))
}

/// Writes the operator's DRA templates (`/etc/hostdev/dra.toml`) under `root`.
fn dra_toml(root: &Path, text: &str) {
    let conf = root.join("etc/hostdev");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(conf.join("dra.toml"), text).unwrap();
}

/// `vdpa_sim_net` loaded: a net management device taking MAC, MTU and queues.
fn vdpasim_net(h: &Fakes) {
    h.vdpa
        .client()
        .unwrap()
        .add_mgmtdev("vdpasim_net", 1, &["mac", "mtu", "max_vqp"]);
}

/// No mdev on the host and no claim recorded.
fn assert_nothing_left(h: &Fakes) {
    assert!(h.mdev.sysfs.devices().unwrap().is_empty());
    assert!(h.dra_claims().unwrap().is_empty());
}

#[test]
fn a_shared_budget_is_one_counter_its_types_draw_on_by_their_cost() {
    let d = tempfile::tempdir().unwrap();
    let h = host(d.path());
    let r = h.dra_resources().unwrap();
    let gpu0 = r
        .counter_sets
        .iter()
        .find(|s| s.name.starts_with("gpu0-"))
        .expect("gpu0's set");
    // lcm(2, 4) = 4 units: big costs 2, small 1.
    assert_eq!(gpu0.counters.get("units"), Some(&4));
    let cost = |ty: &str| {
        let name = device(&r, "mdev", ty, 0);
        let dev = r.devices.iter().find(|x| x.name == name).unwrap();
        assert_eq!(dev.consumes[0].counter_set, gpu0.name);
        assert!(
            dev.consumes[0].groups.is_empty(),
            "no one-type rule on a budget"
        );
        dev.consumes[0].counters["units"]
    };
    assert_eq!(cost("gvt-big"), 2);
    assert_eq!(cost("gvt-small"), 1);
    // Two slots of big, four of small.
    let count = |ty: &str| {
        r.devices
            .iter()
            .filter(|x| x.attributes.get("type") == Some(&DraValue::String(ty.into())))
            .count()
    };
    assert_eq!((count("gvt-big"), count("gvt-small")), (2, 4));
    // Every name Kubernetes must carry is a DNS label.
    for dev in &r.devices {
        assert!(
            hostdev_core::api::dra::is_dns_label(&dev.name),
            "{}",
            dev.name
        );
        assert!(dev.consumes.len() <= 2);
    }
    for s in &r.counter_sets {
        assert!(hostdev_core::api::dra::is_dns_label(&s.name));
        assert!(s.counters.len() <= 32);
    }
}

#[test]
fn capacity_someone_else_holds_is_not_published() {
    let d = tempfile::tempdir().unwrap();
    let h = host(d.path());
    // Seen free once (the daemon publishes at start): each type's maximum
    // is learned. A parent first seen busy is published conservatively
    // (a type's maximum is what is free of it then) until seen free.
    h.dra_resources().unwrap();
    // A device made by hand on the budget parent: one big (2 of 4 units).
    h.mdev
        .start(&StartRequest {
            uuid: Some(Uuid::new_v4()),
            parent: Some("gpu0".parse().unwrap()),
            mdev_type: Some("gvt-big".parse().unwrap()),
            config: None,
        })
        .unwrap();
    let r = h.dra_resources().unwrap();
    let gpu0 = r
        .counter_sets
        .iter()
        .find(|s| s.name.starts_with("gpu0-"))
        .unwrap();
    assert_eq!(gpu0.counters.get("units"), Some(&2), "{r:#?}");
    // A VF typed by hand cannot be allocated; the others only its type.
    // Every device stays published (a change is counters, not devices):
    // the VF's counter and the other type's counter in the card's types
    // set are 0.
    let vf0: hostdev_model::pci::PciAddress = "0000:41:00.4".parse().unwrap();
    let vfs = h.vgpu.sriov.vfs(&"0000:41:00.0".parse().unwrap()).unwrap();
    assert_eq!(vfs[0].address, vf0, "{vfs:?}");
    let before: Vec<String> = r.devices.iter().map(|x| x.name.clone()).collect();
    h.vgpu.sriov.set_type(&vf0, 1150).unwrap();
    let r = h.dra_resources().unwrap();
    let names: Vec<String> = r.devices.iter().map(|x| x.name.clone()).collect();
    assert_eq!(names, before, "the same devices, only counters change");
    let vgpus: Vec<_> = allocatable(&r)
        .into_iter()
        .filter(|x| x.kind == Kind::Vgpu)
        .collect();
    assert_eq!(vgpus.len(), 3, "{vgpus:#?}");
    assert!(vgpus.iter().all(|x| x.attributes["typeName"]
        == DraValue::String("NVIDIA L40S-4Q".into())
        && x.attributes["resource.kubernetes.io/pciBusID"] != DraValue::String(vf0.to_string())));
}

#[test]
fn a_parent_seen_idle_replaces_what_was_learned_of_it_larger_or_smaller() {
    let d = tempfile::tempdir().unwrap();
    let h = host(d.path());
    // What an earlier card (or driver) left: gvt-big held 6, a type gone.
    let file = d.path().join("var/lib/hostdev/dra/capacity.json");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(
        &file,
        r#"{"parents":{"gpu0":{"one_type":false,"types":{"gvt-big":6,"gvt-gone":3}}}}"#,
    )
    .unwrap();
    let r = h.dra_resources().unwrap();
    let big: Vec<_> = r
        .devices
        .iter()
        .filter(|x| x.name.starts_with("gpu0-") && x.name.contains("gvt-big"))
        .collect();
    assert_eq!(big.len(), 2, "the kernel's 2, not the 6 learned: {big:#?}");
    let learned: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(
        learned["parents"]["gpu0"]["types"],
        serde_json::json!({"gvt-big": 2, "gvt-small": 4}),
        "{learned:#}"
    );
}

/// The devices the scheduler could allocate now: each counter it draws on
/// holds at least what it takes.
fn allocatable(r: &DraResources) -> Vec<&hostdev_core::api::DraDevice> {
    r.devices
        .iter()
        .filter(|d| {
            d.consumes.iter().all(|c| {
                let set = r.counter_sets.iter().find(|s| s.name == c.counter_set);
                c.counters.iter().all(|(k, n)| {
                    set.and_then(|s| s.counters.get(k))
                        .is_some_and(|have| have >= n)
                })
            })
        })
        .collect()
}

#[test]
fn prepare_makes_records_and_answers_again_and_unprepare_removes_only_that() {
    let d = tempfile::tempdir().unwrap();
    let h = host(d.path());
    let r = h.dra_resources().unwrap();
    let nv = device(&r, "mdev", "nv-8q", 0);
    let vf = device(&r, "vgpu", "NVIDIA L40S-8Q", 0);
    // Someone's own device beside ours must survive the unprepare.
    let mine = Uuid::new_v4();
    h.mdev
        .start(&StartRequest {
            uuid: Some(mine),
            parent: Some("gpu1".parse().unwrap()),
            mdev_type: Some("nv-8q".parse().unwrap()),
            config: None,
        })
        .unwrap();
    let c = claim(1);
    let p = prepare(&h, &c, &[nv, vf]).unwrap();
    assert_eq!(p.devices.len(), 2);
    let m = &p.devices[0];
    assert_eq!(m.kind, Kind::Mdev);
    let uuid: Uuid = m.id.parse().unwrap();
    assert_eq!(
        m.metadata.get("mdevUUID"),
        Some(&DraValue::String(uuid.to_string()))
    );
    assert_eq!(m.nodes[0].path, "/dev/vfio/vfio");
    assert!(h.mdev.sysfs.device(&uuid).unwrap().is_some());
    let v = &p.devices[1];
    assert_eq!(v.kind, Kind::Vgpu);
    assert!(v.metadata.contains_key("resource.kubernetes.io/pciBusID"));
    let vfs = h.vgpu.sriov.vfs(&"0000:41:00.0".parse().unwrap()).unwrap();
    let typed: Vec<_> = vfs.iter().filter(|x| x.current != 0).collect();
    assert_eq!(typed.len(), 1);
    assert_eq!(typed[0].current, 1151);
    // Asked again (a kubelet retry): the same devices, nothing new made,
    // and said to be an earlier call's (the driver must not undo them).
    assert!(!p.again);
    let again = prepare(&h, &c, &[nv, vf]).unwrap();
    assert!(again.again);
    assert_eq!(again.devices, p.devices);
    assert_eq!(h.mdev.sysfs.devices().unwrap().len(), 2);
    // The same claim with other devices is refused; another claim for a held device too.
    let e = prepare(&h, &c, &[nv]).unwrap_err();
    assert_eq!(e.code(), "dra.reallocated", "{e}");
    let e = prepare(&h, &claim(2), &[nv]).unwrap_err();
    assert_eq!(e.code(), "dra.taken", "{e}");
    // Listed as prepared.
    assert_eq!(h.dra_claims().unwrap().len(), 1);
    // Unprepare removes exactly those two; a second unprepare is done at once.
    let u = h.dra_unprepare(&c).unwrap();
    assert_eq!(u.removed.len(), 2, "{u:?}");
    let left = h.mdev.sysfs.devices().unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].uuid, mine);
    assert!(h
        .vgpu
        .sriov
        .vfs(&"0000:41:00.0".parse().unwrap())
        .unwrap()
        .iter()
        .all(|x| x.current == 0));
    assert!(h.dra_unprepare(&c).unwrap().removed.is_empty());
    assert!(h.dra_claims().unwrap().is_empty());
}

#[test]
fn a_failed_create_leaves_nothing_and_bad_input_is_refused_by_name() {
    let d = tempfile::tempdir().unwrap();
    let h = host(d.path());
    let r = h.dra_resources().unwrap();
    let a = device(&r, "mdev", "nv-8q", 0);
    let vf = device(&r, "vgpu", "NVIDIA L40S-4Q", 0);
    // The VF's type is set, then the mdev's create fails (ENOSPC): the VF
    // must be cleared again and no record kept.
    h.mdev.sysfs.fail_next_create(28);
    let c = claim(3);
    let e = prepare(&h, &c, &[vf, a]).unwrap_err();
    assert_eq!(e.code(), "dra.create", "{e}");
    assert!(h.mdev.sysfs.devices().unwrap().is_empty());
    assert!(h
        .vgpu
        .sriov
        .vfs(&"0000:41:00.0".parse().unwrap())
        .unwrap()
        .iter()
        .all(|x| x.current == 0));
    assert!(h.dra_claims().unwrap().is_empty());
    assert!(!record_path(d.path(), &c.uid).exists());
    // A vanished or never-published device, hostile names, too many devices.
    for (dev, code) in [
        ("gone-000000-0", "dra.unknown_device"),
        ("../../etc", "dra.bad_name"),
        ("UPPER", "dra.bad_name"),
    ] {
        let e = prepare(&h, &claim(4), &[dev]).unwrap_err();
        assert_eq!(e.code(), code, "{dev}: {e}");
    }
    let many: Vec<&str> = std::iter::repeat_n(a, 33).collect();
    assert_eq!(
        prepare(&h, &claim(4), &many).unwrap_err().code(),
        "dra.too_many"
    );
    assert!(h.mdev.sysfs.devices().unwrap().is_empty());
}

#[test]
fn a_record_left_in_transit_by_a_killed_process_is_undone_by_the_next_caller() {
    let d = tempfile::tempdir().unwrap();
    let h = host(d.path());
    let r = h.dra_resources().unwrap();
    let a = device(&r, "mdev", "nv-8q", 0);
    let c = claim(5);
    let p = prepare(&h, &c, &[a]).unwrap();
    let uuid: Uuid = p.devices[0].id.parse().unwrap();
    // As if killed after the record said `preparing` and the device was made.
    let path = record_path(d.path(), &c.uid);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("\"prepared\"", "\"preparing\"")).unwrap();
    // The next caller (any prepare or unprepare) undoes it first.
    let other = device(&r, "mdev", "gvt-small", 0);
    prepare(&h, &claim(6), &[other]).unwrap();
    assert!(h.mdev.sysfs.device(&uuid).unwrap().is_none());
    assert!(!path.exists());
    // The kubelet's retry of the killed prepare then makes it afresh, same UUID.
    let again = prepare(&h, &c, &[a]).unwrap();
    assert_eq!(again.devices[0].id, uuid.to_string());
    // A corrupt record is named and skipped by the listing, never read as empty.
    std::fs::write(&path, b"{not json").unwrap();
    let e = h.dra_unprepare(&c).unwrap_err();
    assert_eq!(e.code(), "dra.bad_record", "{e}");
    assert!(path.exists());
}

/// Prepares every device `r` publishes, one claim each, and unprepares it.
fn every_published_device_prepares(h: &Fakes, r: &DraResources) {
    for (i, d) in allocatable(r).into_iter().enumerate() {
        let c = claim(0x80 + i as u8);
        let p = prepare(h, &c, &[d.name.as_str()])
            .unwrap_or_else(|e| panic!("published device {} is refused: {e}", d.name));
        assert_eq!(p.devices[0].kind, d.kind, "{}", d.name);
        h.dra_unprepare(&c).unwrap();
    }
}

#[test]
fn a_prepare_takes_exactly_the_devices_that_are_published() {
    // A prepare works out only the parent or PF a name can be on; what it
    // accepts must still be what the whole offer publishes, no more.
    let d = tempfile::tempdir().unwrap();
    let h = host(d.path());
    let before = h.dra_resources().unwrap();
    assert!(before.devices.len() > 10, "{before:#?}");
    every_published_device_prepares(&h, &before);
    // Someone else's devices close types: gvt-big on the budget parent
    // leaves less room, a VF typed by hand pins its card to that type.
    h.mdev
        .start(&StartRequest {
            uuid: Some(Uuid::new_v4()),
            parent: Some("gpu0".parse().unwrap()),
            mdev_type: Some("gvt-big".parse().unwrap()),
            config: None,
        })
        .unwrap();
    let vf0: hostdev_model::pci::PciAddress = "0000:41:00.4".parse().unwrap();
    h.vgpu.sriov.set_type(&vf0, 1150).unwrap();
    let after = h.dra_resources().unwrap();
    every_published_device_prepares(&h, &after);
    // Closed: published still, but no counter lets them be allocated.
    let now = allocatable(&after);
    let gone: Vec<&str> = allocatable(&before)
        .into_iter()
        .filter(|b| !now.iter().any(|a| a.name == b.name))
        .map(|b| b.name.as_str())
        .collect();
    assert!(gone.len() >= 3, "{gone:?}");
    for name in gone.iter().copied().chain(["gpu0-000000-0", "nowhere-1"]) {
        let e = prepare(&h, &claim(0x7f), &[name]).unwrap_err();
        assert_eq!(e.code(), "dra.unknown_device", "{name}: {e}");
    }
    assert!(h.dra_claims().unwrap().is_empty());
}

#[test]
fn hostile_configs_and_vanished_devices_are_refused_before_anything_is_made() {
    use hostdev_core::api::DraDeviceConfig;
    let d = tempfile::tempdir().unwrap();
    let h = host(d.path());
    let r = h.dra_resources().unwrap();
    let nv = device(&r, "mdev", "nv-8q", 0).to_string();
    let vf = device(&r, "vgpu", "NVIDIA L40S-8Q", 0).to_string();
    let with = |dev: &str, c: DraDeviceConfig| DraPrepareRequest {
        claim: claim(0x40),
        devices: vec![DraAllocated {
            request: "r0".into(),
            device: dev.into(),
            config: Some(c),
        }],
    };
    let mac = |m: &str| DraDeviceConfig {
        mac: Some(m.into()),
        ..DraDeviceConfig::default()
    };
    let cases = [
        (with(&nv, mac("01:00:5e:00:00:01")), "multicast"),
        (with(&nv, mac("ff:ff:ff:ff:ff:ff")), "multicast"),
        (with(&nv, mac("00:00:00:00:00:00")), "no address"),
        (with(&nv, mac("not-a-mac")), "not a valid mac"),
        (with(&nv, mac(&"a".repeat(10 << 20))), "10485760 bytes"),
        (
            with(&nv, mac("02:00:00:00:00:01")),
            "an mdev, which takes no MAC",
        ),
        (
            with(
                &vf,
                DraDeviceConfig {
                    mtu: Some(1500),
                    ..DraDeviceConfig::default()
                },
            ),
            "a VF's vGPU, which takes no MAC",
        ),
        (
            with(
                &nv,
                DraDeviceConfig {
                    mtu: Some(10),
                    ..DraDeviceConfig::default()
                },
            ),
            "below IPv4's least",
        ),
    ];
    for (req, why) in &cases {
        let e = h.dra_prepare(req).unwrap_err();
        assert_eq!(e.code(), "dra.bad_config", "{e}");
        assert!(e.to_string().contains(why), "{e}");
        assert!(
            e.to_string().len() < 300,
            "the message echoes the input: {e}"
        );
    }
    // An empty configuration asks for nothing and is taken.
    prepare(&h, &claim(0x41), &[&nv]).unwrap();
    h.dra_prepare(&with(&vf, DraDeviceConfig::default()))
        .unwrap();
    h.dra_unprepare(&claim(0x40)).unwrap();
    h.dra_unprepare(&claim(0x41)).unwrap();
    // A device whose parent went away (driver unloaded) between the
    // scheduler's choice and the prepare.
    h.mdev.sysfs.remove_parent("gpu1");
    let e = prepare(&h, &claim(0x42), &[&nv]).unwrap_err();
    assert_eq!(e.code(), "dra.unknown_device", "{e}");
    assert!(h.dra_claims().unwrap().is_empty());
    assert!(h.mdev.sysfs.devices().unwrap().is_empty());
    let records = d.path().join("var/lib/hostdev/dra/claims");
    let left: Vec<_> = std::fs::read_dir(&records)
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn vdpa_templates_are_offered_and_a_claim_gets_a_vhost_vdpa_device_with_its_mac() {
    use hostdev_core::api::DraDeviceConfig;
    use hostdev_vdpa::VdpaClient;
    let d = tempfile::tempdir().unwrap();
    let h = host(d.path());
    vdpasim_net(&h);
    h.vdpa.client().unwrap().add_mgmtdev("vdpasim_blk", 2, &[]);
    dra_toml(
        d.path(),
        r#"
[[vdpa]]
template = "net"
mgmtdev = "vdpasim_net"
count = 2
mac_base = "02:00:00:00:10:00"
mtu = 1500

[[vdpa]]
template = "blk"
mgmtdev = "vdpasim_blk"
count = 1

[[vdpa]]
template = "gone"
mgmtdev = "pci/0000:99:00.1"
count = 1
"#,
    );
    let r = h.dra_resources().unwrap();
    let vdpa: Vec<_> = r.devices.iter().filter(|x| x.kind == Kind::Vdpa).collect();
    assert_eq!(vdpa.len(), 2, "{vdpa:#?}");
    assert!(vdpa.iter().all(
        |x| x.attributes["mgmtdev"] == DraValue::String("vdpasim_net".into())
            && x.attributes["mtu"] == DraValue::Int(1500)
            && x.consumes.is_empty()
    ));
    assert!(
        r.notes.iter().any(|n| n.contains("makes no net devices")),
        "{:?}",
        r.notes
    );
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("0000:99:00.1 is not there")),
        "{:?}",
        r.notes
    );
    let names: Vec<&str> = vdpa.iter().map(|x| x.name.as_str()).collect();
    let by_slot = |s: i64| {
        vdpa.iter()
            .find(|x| x.attributes["slot"] == DraValue::Int(s))
            .map(|x| x.name.clone())
            .unwrap()
    };
    // Slot 1 without parameters: the template's base plus one.
    let p = prepare(&h, &claim(0x60), &[&by_slot(1)]).unwrap();
    let dev = &p.devices[0];
    assert_eq!(dev.kind, Kind::Vdpa);
    assert_eq!(dev.nodes.len(), 1, "{dev:#?}");
    assert!(
        dev.nodes[0].path.starts_with("/dev/vhost-vdpa-"),
        "{dev:#?}"
    );
    assert_eq!(
        dev.metadata["mac"],
        DraValue::String("02:00:00:00:10:01".into())
    );
    let live = h.vdpa.client().unwrap().devs().unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].name, dev.id);
    // Slot 0 with the claim's MAC and MTU.
    let c = claim(0x61);
    let p = h
        .dra_prepare(&DraPrepareRequest {
            claim: c.clone(),
            devices: vec![DraAllocated {
                request: "nic".into(),
                device: by_slot(0),
                config: Some(DraDeviceConfig {
                    mac: Some("02:11:22:33:44:55".into()),
                    mtu: Some(9000),
                    queues: Some(2),
                }),
            }],
        })
        .unwrap();
    assert_eq!(
        p.devices[0].metadata["mac"],
        DraValue::String("02:11:22:33:44:55".into())
    );
    let cfg = h
        .vdpa
        .client()
        .unwrap()
        .config(&p.devices[0].id.parse().unwrap())
        .unwrap();
    assert_eq!(cfg.mac.as_deref(), Some("02:11:22:33:44:55"));
    assert_eq!(cfg.mtu, Some(9000));
    // Unprepare removes exactly the claim's device.
    h.dra_unprepare(&c).unwrap();
    h.dra_unprepare(&claim(0x60)).unwrap();
    assert!(h.vdpa.client().unwrap().devs().unwrap().is_empty());
    // A multicast MAC is refused before anything is made.
    let e = h
        .dra_prepare(&DraPrepareRequest {
            claim: claim(0x62),
            devices: vec![DraAllocated {
                request: "nic".into(),
                device: names[0].to_string(),
                config: Some(DraDeviceConfig {
                    mac: Some("03:00:00:00:00:01".into()),
                    ..DraDeviceConfig::default()
                }),
            }],
        })
        .unwrap_err();
    assert_eq!(e.code(), "dra.bad_config", "{e}");
    assert!(h.vdpa.client().unwrap().devs().unwrap().is_empty());
    // A bad template file offers no vDPA device and says why.
    dra_toml(
        d.path(),
        "[[vdpa]]\ntemplate = \"x\"\nmgmtdev = \"vdpasim_net\"\ncount = 1\nmacc = 1\n",
    );
    let r = h.dra_resources().unwrap();
    assert!(r.devices.iter().all(|x| x.kind != Kind::Vdpa));
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("unknown field") && n.contains("macc")),
        "{:?}",
        r.notes
    );
}

#[test]
fn vdpa_templates_without_the_vdpa_family_leave_the_rest_of_the_offer_whole() {
    let d = tempfile::tempdir().unwrap();
    let mut h = host(d.path());
    h.vdpa = Vdpas::lazy(d.path(), || Err(hostdev_vdpa::VdpaError::NoFamily));
    dra_toml(
        d.path(),
        "[[vdpa]]\ntemplate = \"net\"\nmgmtdev = \"vdpasim_net\"\ncount = 1\n",
    );
    let r = h.dra_resources().unwrap();
    assert!(r.devices.iter().any(|x| x.kind == Kind::Mdev));
    assert!(r.devices.iter().all(|x| x.kind != Kind::Vdpa));
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("no vDPA template is offered")),
        "{:?}",
        r.notes
    );
}

#[test]
fn a_prepared_claim_whose_devices_a_reboot_took_gets_them_back_when_asked_again() {
    let d = tempfile::tempdir().unwrap();
    let h = host(d.path());
    let before = h.dra_resources().unwrap();
    let nv = device(&before, "mdev", "nv-8q", 0);
    let vf = device(&before, "vgpu", "NVIDIA L40S-8Q", 0);
    let c = claim(7);
    let p = prepare(&h, &c, &[nv, vf]).unwrap();
    let uuid: Uuid = p.devices[0].id.parse().unwrap();
    let vf_addr: hostdev_model::pci::PciAddress = p.devices[1].id.parse().unwrap();
    // A reboot: the kernel forgets the mdev and the VF's type; the record
    // (on disk) says `prepared`.
    h.mdev.sysfs.remove(&uuid).unwrap();
    h.vgpu.sriov.set_type(&vf_addr, 0).unwrap();
    assert!(h.mdev.sysfs.devices().unwrap().is_empty());
    // What is published is what the host can create again: the offer of
    // the fresh host.
    let after = h.dra_resources().unwrap();
    assert_eq!(after.devices, before.devices);
    assert_eq!(after.counter_sets, before.counter_sets);
    // The restarted kubelet asks again: the same devices are made again
    // (same UUID, same VF and type) and the answer is the same.
    let again = prepare(&h, &c, &[nv, vf]).unwrap();
    assert!(again.again);
    assert_eq!(again.devices, p.devices);
    assert!(h.mdev.sysfs.device(&uuid).unwrap().is_some());
    assert_eq!(h.mdev.sysfs.devices().unwrap().len(), 1);
    let typed: Vec<_> = h
        .vgpu
        .sriov
        .vfs(&"0000:41:00.0".parse().unwrap())
        .unwrap()
        .into_iter()
        .filter(|x| x.current != 0)
        .collect();
    assert_eq!(typed.len(), 1);
    assert_eq!((&typed[0].address, typed[0].current), (&vf_addr, 1151));
    // Asked once more: nothing new made; unprepare removes both.
    assert_eq!(prepare(&h, &c, &[nv, vf]).unwrap().devices, p.devices);
    assert_eq!(h.mdev.sysfs.devices().unwrap().len(), 1);
    assert_eq!(h.dra_unprepare(&c).unwrap().removed.len(), 2);
    assert!(h.mdev.sysfs.devices().unwrap().is_empty());
}

#[test]
fn a_claim_prepared_while_the_offer_is_worked_out_is_not_someone_elses_capacity() {
    let d = tempfile::tempdir().unwrap();
    let h = host(d.path());
    let before = h.dra_resources().unwrap();
    let nv = device(&before, "mdev", "nv-8q", 0);
    // A prepare beside the offer: its record is written and its mdev made
    // after the offer read the records and before it looks at sysfs.
    let raced = h
        .dra_resources_racing(|| {
            prepare(&h, &claim(9), &[nv]).unwrap();
        })
        .unwrap();
    // The claim's device is Kubernetes' own (the scheduler counts it): the
    // offer is the one without it, as before the prepare and after it.
    assert_eq!(raced.counter_sets, before.counter_sets);
    assert_eq!(raced.devices, before.devices);
    assert_eq!(h.dra_resources().unwrap(), raced);
}

fn mdev_of(h: &Fakes, ty: &str) -> Vec<Uuid> {
    h.mdev
        .sysfs
        .devices()
        .unwrap()
        .into_iter()
        .filter(|d| d.mdev_type.as_str() == ty)
        .map(|d| d.uuid)
        .collect()
}

#[test]
fn one_claims_stuck_device_fails_its_own_calls_and_no_other_claims() {
    // Before: a failed removal left an `unpreparing` record that every
    // later prepare and unprepare tried to undo first, failing with it.
    let d = tempfile::tempdir().unwrap();
    let h = host(d.path());
    let r = h.dra_resources().unwrap();
    let a = device(&r, "mdev", "nv-8q", 0);
    let b = device(&r, "mdev", "gvt-small", 0);
    prepare(&h, &claim(1), &[a]).unwrap();
    let stuck = mdev_of(&h, "nv-8q");
    assert_eq!(stuck.len(), 1);
    h.mdev.sysfs.set_busy(stuck[0]);
    assert_eq!(h.dra_unprepare(&claim(1)).unwrap_err().code(), "dra.remove");
    // Another claim prepares and unprepares; the stuck device stays held.
    prepare(&h, &claim(2), &[b]).unwrap();
    assert_eq!(h.dra_unprepare(&claim(2)).unwrap().removed.len(), 1);
    assert_eq!(
        prepare(&h, &claim(3), &[a]).unwrap_err().code(),
        "dra.taken"
    );
    // The claim's own calls say why; once the device is free they finish.
    assert_eq!(
        prepare(&h, &claim(1), &[a]).unwrap_err().code(),
        "dra.remove"
    );
    h.mdev.sysfs.set_free(stuck[0]);
    // (The call's recovery removes it before the claim's own step.)
    h.dra_unprepare(&claim(1)).unwrap();
    assert_nothing_left(&h);
}

#[test]
fn a_prepare_whose_undo_fails_keeps_its_record_until_the_device_goes() {
    // Before: the record was forgotten whatever the undo did, and the
    // device made first stayed on the host owned by no one.
    let d = tempfile::tempdir().unwrap();
    let h = host(d.path());
    let r = h.dra_resources().unwrap();
    let a = device(&r, "mdev", "nv-8q", 0);
    let b = device(&r, "mdev", "gvt-small", 0);
    let c = claim(5);
    // a is made, then b's create fails, and a will not go.
    let a_uuid = Uuid::stable(&format!("dra/{}/r0/{a}", c.uid));
    h.mdev.sysfs.set_busy(a_uuid);
    h.mdev.sysfs.fail_create_after(1, 5 /* EIO */);
    assert_eq!(prepare(&h, &c, &[a, b]).unwrap_err().code(), "dra.create");
    assert_eq!(mdev_of(&h, "nv-8q"), vec![a_uuid]);
    assert!(record_path(d.path(), &c.uid).exists());
    // Held: another claim cannot take a; the next call's recovery removes it.
    assert_eq!(
        prepare(&h, &claim(6), &[a]).unwrap_err().code(),
        "dra.taken"
    );
    h.mdev.sysfs.set_free(a_uuid);
    let p = prepare(&h, &claim(6), &[a]).unwrap();
    assert_eq!(p.devices.len(), 1);
    assert_eq!(mdev_of(&h, "nv-8q").len(), 1);
    h.dra_unprepare(&claim(6)).unwrap();
    assert_nothing_left(&h);
}

#[test]
fn a_vf_that_cannot_be_read_at_unprepare_is_an_error_not_a_vf_gone() {
    // Before: any error finding the VF's PF read as "the VF is gone": the
    // record was forgotten and the VF kept the claim's type, owned by no one.
    let d = tempfile::tempdir().unwrap();
    let h = host(d.path());
    let r = h.dra_resources().unwrap();
    let v = device(&r, "vgpu", "NVIDIA L40S-4Q", 0);
    let c = claim(7);
    prepare(&h, &c, &[v]).unwrap();
    h.vgpu.sriov.make_unreadable("0000:41:00.0");
    assert!(h.dra_unprepare(&c).is_err());
    assert!(record_path(d.path(), &c.uid).exists());
}

#[test]
fn a_device_held_through_vfio_is_not_removed_and_its_record_is_kept_until_let_go() {
    // Before: unprepare removed the mdev (and cleared the VF's type) a VM
    // still held; the real kernel makes that write wait for the VM to let
    // go, with the DRA lock held, so every other claim waited as long.
    let d = tempfile::tempdir().unwrap();
    let mut h = host(d.path());
    let vfio = std::sync::Arc::new(hostdev_vfio::FakeVfio::new());
    h.vfio = vfio.clone();
    let r = h.dra_resources().unwrap();
    let nv = device(&r, "mdev", "nv-8q", 0);
    let vf = device(&r, "vgpu", "NVIDIA L40S-8Q", 0);
    let c = claim(9);
    let p = prepare(&h, &c, &[nv, vf]).unwrap();
    let (uuid, addr) = (p.devices[0].id.clone(), p.devices[1].id.clone());
    let typed = |h: &Fakes| {
        h.vgpu
            .sriov
            .vfs(&"0000:41:00.0".parse().unwrap())
            .unwrap()
            .into_iter()
            .filter(|x| x.current != 0)
            .count()
    };
    // A VM holds the VF: refused with the group named, nothing removed.
    vfio.set(&addr, Err(hostdev_vfio::FakeRefusal::Busy));
    let e = h.dra_unprepare(&c).unwrap_err();
    assert_eq!(e.code(), "dra.remove", "{e}");
    assert!(
        e.chain().contains(&addr) && e.chain().contains("held through VFIO group"),
        "{}",
        e.chain()
    );
    assert_eq!(e.class(), hostdev_core::api::ErrorClass::Conflict, "{e}");
    assert_eq!(typed(&h), 1);
    assert!(record_path(d.path(), &c.uid).exists());
    // Still listed, so the driver's sweep of gone claims tries it again.
    let listed = h.dra_claims().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].claim.uid, c.uid);
    // Another claim is not held up by it.
    let other = device(&h.dra_resources().unwrap(), "mdev", "gvt-small", 0).to_string();
    prepare(&h, &claim(10), &[&other]).unwrap();
    h.dra_unprepare(&claim(10)).unwrap();
    // The VM lets the VF go and holds the mdev: the mdev is refused in turn.
    vfio.forget(&addr);
    vfio.set(&uuid, Err(hostdev_vfio::FakeRefusal::Busy));
    let e = h.dra_unprepare(&c).unwrap_err();
    assert!(e.chain().contains(&uuid), "{}", e.chain());
    assert_eq!(mdev_of(&h, "nv-8q").len(), 1);
    // Let go: the unprepare finishes and nothing is left.
    vfio.forget(&uuid);
    h.dra_unprepare(&c).unwrap();
    assert_eq!(typed(&h), 0);
    assert_nothing_left(&h);
}

#[test]
fn health_says_which_prepared_device_is_gone_and_why() {
    use hostdev_core::api::DraHealthStatus::{Healthy, Unhealthy};
    let d = tempfile::tempdir().unwrap();
    let h = host(d.path());
    let r = h.dra_resources().unwrap();
    let nv = device(&r, "mdev", "nv-8q", 0);
    let vf = device(&r, "vgpu", "NVIDIA L40S-8Q", 0);
    let c = claim(9);
    let p = prepare(&h, &c, &[nv, vf]).unwrap();
    let health = |h: &Fakes| {
        h.dra_health()
            .unwrap()
            .into_iter()
            .map(|x| (x.device, x.health, x.message))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        health(&h),
        [
            (nv.to_string(), Healthy, String::new()),
            (vf.to_string(), Healthy, String::new())
        ]
    );
    let rows = h.dra_health().unwrap();
    assert_eq!(
        (rows[0].claim.uid, rows[0].kind, rows[0].id.as_str()),
        (c.uid, Kind::Mdev, p.devices[0].id.as_str())
    );
    assert_eq!((rows[1].request.as_str(), rows[1].kind), ("r1", Kind::Vgpu));

    // The mdev removed behind hostdev's back; the VF's type cleared.
    let uuid: Uuid = p.devices[0].id.parse().unwrap();
    h.mdev.sysfs.remove(&uuid).unwrap();
    h.vgpu
        .sriov
        .set_type(&p.devices[1].id.parse().unwrap(), 0)
        .unwrap();
    let now = health(&h);
    assert_eq!((now[0].1, now[1].1), (Unhealthy, Unhealthy));
    assert_eq!(
        now[0].2,
        format!("mdev {uuid} (nv-8q on gpu1) is gone from the host")
    );
    assert_eq!(
        now[1].2,
        format!(
            "VF {} no longer has vGPU type NVIDIA L40S-8Q (1151): it has none",
            p.devices[1].id
        )
    );
    // The parent itself gone (its driver unloaded).
    h.mdev.sysfs.remove_parent("gpu1");
    assert_eq!(
        health(&h)[0].2,
        format!(
            "mdev {uuid} is gone with its parent gpu1 (its driver unloaded or the device removed)"
        )
    );
    // Unprepared: nothing to report.
    h.dra_unprepare(&c).unwrap();
    assert!(h.dra_health().unwrap().is_empty());
}

#[test]
fn a_vdpa_device_whose_vhost_node_is_open_is_not_removed_until_closed() {
    // Before: unprepare deleted a vDPA device a VM held through its
    // vhost-vdpa node; the kernel's removal waits for the node to close,
    // with the DRA lock held.
    use hostdev_vdpa::VdpaClient;
    let d = tempfile::tempdir().unwrap();
    let h = host(d.path());
    vdpasim_net(&h);
    dra_toml(
        d.path(),
        "[[vdpa]]\ntemplate = \"net\"\nmgmtdev = \"vdpasim_net\"\ncount = 1\n",
    );
    let r = h.dra_resources().unwrap();
    let dev = r
        .devices
        .iter()
        .find(|x| x.kind == Kind::Vdpa)
        .unwrap()
        .name
        .clone();
    let c = claim(0x70);
    let p = prepare(&h, &c, &[&dev]).unwrap();
    let name = p.devices[0].id.clone();
    h.vdpa.client().unwrap().hold(&name, true);
    let e = h.dra_unprepare(&c).unwrap_err();
    assert_eq!(e.code(), "dra.remove", "{e}");
    assert!(
        e.chain().contains(&name)
            && e.chain()
                .contains("held through its vhost-vdpa node /dev/vhost-vdpa-"),
        "{}",
        e.chain()
    );
    assert_eq!(e.class(), hostdev_core::api::ErrorClass::Conflict, "{e}");
    assert_eq!(h.vdpa.client().unwrap().devs().unwrap().len(), 1);
    assert_eq!(h.dra_claims().unwrap().len(), 1);
    // Closed: the next DRA call (here the unprepare's own recovery of the
    // unfinished record) removes it and forgets the claim.
    h.vdpa.client().unwrap().hold(&name, false);
    h.dra_unprepare(&c).unwrap();
    assert!(h.vdpa.client().unwrap().devs().unwrap().is_empty());
    assert!(h.dra_claims().unwrap().is_empty());
}

#[test]
fn health_tells_an_mdev_made_again_with_another_type_from_the_prepared_one() {
    use hostdev_core::api::DraHealthStatus::{Healthy, Unhealthy};
    let d = tempfile::tempdir().unwrap();
    let h = host(d.path());
    let r = h.dra_resources().unwrap();
    let c = claim(0x71);
    let p = prepare(&h, &c, &[device(&r, "mdev", "gvt-big", 0)]).unwrap();
    let uuid: Uuid = p.devices[0].id.parse().unwrap();
    assert_eq!(h.dra_health().unwrap()[0].health, Healthy);
    // Removed and made again under the same UUID with another type.
    h.mdev.sysfs.remove(&uuid).unwrap();
    h.mdev
        .sysfs
        .create(
            &"gpu0".parse().unwrap(),
            &"gvt-small".parse().unwrap(),
            &uuid,
        )
        .unwrap();
    let now = &h.dra_health().unwrap()[0];
    assert_eq!(now.health, Unhealthy);
    assert_eq!(
        now.message,
        format!("mdev {uuid} is now gvt-small on gpu0, not the gvt-big on gpu0 prepared")
    );
    h.mdev.sysfs.remove(&uuid).unwrap();
    h.dra_unprepare(&c).unwrap();
    assert!(h.dra_health().unwrap().is_empty());
}
