//! Probes against the fakes: what the report names (kind, parent, type) and
//! each refusal with its code.
#![allow(clippy::expect_used)] // tests: a failed expectation is the report

use hostdev_core::api::{Kind, ProbeQuery, ProbeTarget, ProbeTypeRequest};
use hostdev_core::vdpa::Vdpas;
use hostdev_core::vgpu::Vgpus;
use hostdev_core::{Callouts, Devices, Host};
use hostdev_model::probe::{Display, Migration, Probe};
use hostdev_model::{ParentName, TypeId, Uuid};
use hostdev_sysfs::sriov::FakeSriov;
use hostdev_sysfs::{FakeKernel, FakeType, MdevSysfs};
use hostdev_vdpa::FakeVdpa;
use hostdev_vfio::{FakeRefusal, FakeVfio};
use std::sync::Arc;

type Fakes = Devices<(FakeKernel, FakeSriov, FakeVdpa)>;

/// The fakes around one kernel fake, probed through `vfio`.
fn host(k: FakeKernel, root: &std::path::Path, vfio: Arc<FakeVfio>) -> Fakes {
    Devices::new(
        Host::new(k, root, Callouts::none()),
        Vgpus::new(FakeSriov::new(), root),
        Vdpas::new(FakeVdpa::new(), root),
        vfio,
        root,
    )
}

fn mtty_like() -> Probe {
    Probe {
        device_api: "vfio-pci".into(),
        reset: true,
        regions: vec![],
        irqs: vec![],
        display: Display::None,
        migration: Some(Migration {
            stop_copy: true,
            p2p: true,
            pre_copy: true,
        }),
        dma_logging: false,
    }
}

#[test]
fn a_probe_names_the_device_and_each_refusal_has_its_code() {
    let t = tempfile::tempdir().expect("tempdir");
    let k = FakeKernel::new();
    k.add_parent("p1", vec![FakeType::new("t-1", 4)]);
    let u = Uuid::new_v4();
    let p: ParentName = "p1".parse().expect("parent");
    let ty: TypeId = "t-1".parse().expect("type");
    k.create(&p, &ty, &u).expect("create");
    let vfio = Arc::new(FakeVfio::new());
    let d = host(k, t.path(), vfio.clone());
    let q = ProbeQuery {
        device: ProbeTarget::Mdev(u),
    };
    // Not bound to a VFIO driver: no group.
    assert_eq!(d.probe(&q).expect_err("no group").code(), "vfio.no_group");
    vfio.set(&u.to_string(), Ok(mtty_like()));
    let r = d.probe(&q).expect("probe");
    assert_eq!(r.kind, Some(Kind::Mdev));
    assert_eq!(
        (r.parent.as_deref(), r.type_id.as_deref()),
        (Some("p1"), Some("t-1"))
    );
    assert_eq!(r.probe, mtty_like());
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    // Where the cache cannot be written the answer still stands, with a
    // warning (here /var/lib/hostdev is a file).
    let other = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(other.path().join("var/lib")).expect("dir");
    std::fs::write(other.path().join("var/lib/hostdev"), "not a dir").expect("file");
    let mut blocked = d;
    blocked.root = other.path().to_path_buf();
    let r2 = blocked.probe(&q).expect("the answer stands");
    assert_eq!(r2.probe, mtty_like());
    assert!(
        r2.warnings.iter().any(|w| w.contains("not cached")),
        "{:?}",
        r2.warnings
    );
    let d = Devices {
        root: t.path().to_path_buf(),
        ..blocked
    };
    // Held by a VM: the answer cached by the last probe, with its age.
    vfio.set(&u.to_string(), Err(FakeRefusal::Busy));
    let r = d.probe(&q).expect("cached answer");
    let note = r.cached.expect("marked as cached");
    assert!(note.why.contains("is in use"), "{}", note.why);
    assert_eq!(r.probe, mtty_like());
    // Without a cache the refusal stands.
    std::fs::remove_file(t.path().join("var/lib/hostdev/probe-cache.json")).expect("rm cache");
    let e = d.probe(&q).expect_err("busy");
    assert_eq!(e.code(), "vfio.busy");
    assert!(e.to_string().contains("is in use"), "{e}");
    // A device that does not run, and a PCI address that names nothing.
    let gone = ProbeQuery {
        device: ProbeTarget::Mdev(Uuid::new_v4()),
    };
    assert_eq!(d.probe(&gone).expect_err("gone").code(), "mdev.not_running");
    let pci = ProbeQuery {
        device: ProbeTarget::Pci("0000:99:00.0".parse().expect("addr")),
    };
    let e = d.probe(&pci).expect_err("no pci");
    assert_eq!(
        (e.code(), e.to_string().as_str()),
        ("pci.no_device", "there is no PCI device 0000:99:00.0")
    );
}

#[test]
fn a_type_probe_leaves_nothing_when_it_fails_and_removes_what_a_killed_one_left() {
    let t = tempfile::tempdir().expect("tempdir");
    let k = FakeKernel::new();
    k.add_parent("p1", vec![FakeType::new("t-1", 4)]);
    let p: ParentName = "p1".parse().expect("parent");
    let ty: TypeId = "t-1".parse().expect("type");
    // A device a killed type probe made, and its marker.
    let left = Uuid::new_v4();
    k.create(&p, &ty, &left).expect("create");
    let markers = t.path().join("run/hostdev/probes");
    std::fs::create_dir_all(&markers).expect("markers");
    std::fs::write(markers.join(left.to_string()), "p1").expect("marker");
    let d = host(k, t.path(), Arc::new(FakeVfio::new()));
    // The fake answers for no device: the probe fails after the device was made.
    let e = d
        .probe_type(&ProbeTypeRequest {
            parent: p.clone(),
            mdev_type: ty.clone(),
        })
        .expect_err("no answer");
    assert_eq!(e.code(), "vfio.no_group");
    assert!(
        d.mdev.sysfs.devices().expect("devices").is_empty(),
        "neither the failed probe's device nor the killed one's is left"
    );
    assert_eq!(
        std::fs::read_dir(&markers).expect("markers").count(),
        0,
        "no marker is left"
    );
}

#[test]
fn a_type_probe_leaves_a_running_probes_device_alone() {
    let t = tempfile::tempdir().expect("tempdir");
    let k = FakeKernel::new();
    k.add_parent("p1", vec![FakeType::new("t-1", 4)]);
    let p: ParentName = "p1".parse().expect("parent");
    let ty: TypeId = "t-1".parse().expect("type");
    // Another probe, alive: its device made, its marker held.
    let other = Uuid::new_v4();
    let held = {
        let lock = hostdev_store::HostLock::acquire(&hostdev_store::HostLock::path_under(t.path()))
            .expect("lock");
        hostdev_store::ProbeMarkers::under(t.path())
            .hold(&lock, &other, "p1")
            .expect("marker")
    };
    k.create(&p, &ty, &other).expect("create");
    let d = host(k, t.path(), Arc::new(FakeVfio::new()));
    let req = ProbeTypeRequest {
        parent: p.clone(),
        mdev_type: ty.clone(),
    };
    let _ = d.probe_type(&req);
    assert!(
        d.mdev.sysfs.device(&other).expect("device").is_some(),
        "the live probe's device is not taken from under it"
    );
    // Once that probe is gone (killed: its lock released), the next removes it.
    drop(held);
    let _ = d.probe_type(&req);
    assert!(d.mdev.sysfs.devices().expect("devices").is_empty());
}
