//! A domain moving between two hosts against the fakes, each host its own
//! root (state database, pools) and its own fake kernel: what the source
//! says it holds (`domain_held`, the specs hostdev's metadata carries), what
//! the destination makes of it (`domain_migrate`: the same UUID for an mdev
//! where free, another VF address for a vGPU, a vDPA device with the
//! source's config), a refusal that leaves nothing, and the reservation's
//! end at `prepare` or by itself.
#![allow(clippy::expect_used)] // tests: a failed expectation is the report

use hostdev_core::api::{
    BindRequest, DomainHeldQuery, DomainMigrateRequest, DomainMigrated, DomainPrepareRequest,
    DomainReleaseRequest, IncomingDevice, Kind,
};
use hostdev_core::vdpa::Vdpas;
use hostdev_core::vgpu::Vgpus;
use hostdev_core::{Callouts, Devices, Host, ARRIVAL_HOLD_SECS};
use hostdev_model::pool::PoolName;
use hostdev_model::probe::{Display, Migration, Probe};
use hostdev_model::Uuid;
use hostdev_store::{PoolDb, RecState};
use hostdev_sysfs::sriov::PciSriov;
use hostdev_sysfs::sriov::{FakeSriov, SriovSysfs};
use hostdev_sysfs::{FakeKernel, FakeType, MdevSysfs};
use hostdev_vdpa::{FakeVdpa, VdpaClient};
use hostdev_vfio::{FakeRefusal, FakeVfio};
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

type Fakes = Devices<(FakeKernel, FakeSriov, FakeVdpa)>;

fn clock() -> i64 {
    2_000_000
}

/// The one test that moves time has its own clock.
static LATE: AtomicI64 = AtomicI64::new(2_000_000);
fn late_clock() -> i64 {
    LATE.load(Ordering::SeqCst)
}

/// A VFIO device that migrates (stop-copy, pre-copy), as mtty does.
fn migrates() -> Probe {
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

/// A host: mtty parent `mtty` (type `mtty-2`, `mdevs` instances), one L40S
/// PF at `pf` with 4 VFs, and vdpasim_net.
fn host(root: &Path, mdev_type: &str, mdevs: u32, pf: &str) -> Fakes {
    host_probed(root, mdev_type, mdevs, pf).0
}

/// [`host`], with the VFIO fake its probes go to.
fn host_probed(root: &Path, mdev_type: &str, mdevs: u32, pf: &str) -> (Fakes, Arc<FakeVfio>) {
    let k = FakeKernel::new();
    k.add_parent("mtty", vec![FakeType::new(mdev_type, mdevs)]);
    let mut h = Host::new(k, root, Callouts::none());
    h.ready_timeout = Duration::from_millis(50);
    let s = FakeSriov::new();
    s.add_pf(pf, 4, 16384, &[(1150, "NVIDIA L40S-4Q", 4096)], true);
    s.set_num_vfs(&pf.parse().expect("pf"), 4).expect("vfs");
    let mut v = Vgpus::new(s, root);
    v.vf_timeout = Duration::from_millis(50);
    let vd = FakeVdpa::new();
    vd.add_mgmtdev("vdpasim_net", 1, &["mac", "mtu"]);
    let vfio = Arc::new(FakeVfio::new());
    vfio.set_fallback(migrates());
    let mut d = Devices::new(h, v, Vdpas::new(vd, root), vfio.clone(), root);
    d.clock = clock;
    (d, vfio)
}

fn pools(root: &Path, mdev_type: &str) {
    let dir = root.join("etc/hostdev/pools.d");
    std::fs::create_dir_all(&dir).expect("dir");
    let w = |n: &str, t: String| std::fs::write(dir.join(format!("{n}.toml")), t).expect("pool");
    w("tty", format!("kind = \"mdev\"\ntype = \"{mdev_type}\"\n"));
    w(
        "l40s",
        "kind = \"vgpu\"\ntype = \"NVIDIA L40S-4Q\"\n".into(),
    );
    w(
        "nics",
        "kind = \"vdpa\"\nlimit = 2\n[vdpa]\nname_prefix = \"vnet\"\nmac_base = \"52:54:00:00:10:00\"\n"
            .into(),
    );
}

fn pool(n: &str) -> PoolName {
    PoolName::new(n).expect("pool name")
}

fn running(d: &Fakes) -> Vec<String> {
    d.mdev
        .sysfs
        .devices()
        .expect("devices")
        .into_iter()
        .map(|a| a.uuid.to_string())
        .collect()
}

/// What the domain holds here, as the request a destination gets (what
/// the hook reads from hostdev's metadata), with the QEMU properties an
/// mdev that migrates needs.
fn incoming(src: &Fakes, dom: Uuid) -> DomainMigrateRequest {
    let held = src
        .domain_held(&DomainHeldQuery { domain: dom })
        .expect("held");
    let rank = |k: Kind| match k {
        Kind::Mdev => 0,
        Kind::Vgpu => 1,
        Kind::Vdpa => 2,
    };
    let mut held = held.devices;
    held.sort_by_key(|h| rank(h.kind));
    DomainMigrateRequest {
        domain: dom,
        name: "mig-vm".into(),
        devices: held
            .into_iter()
            .map(|h| IncomingDevice {
                pool: h.pool,
                kind: h.kind,
                qemu_props: if h.kind == Kind::Mdev {
                    vec![
                        ("x-device-dirty-page-tracking".into(), "off".into()),
                        ("enable-migration".into(), "on".into()),
                    ]
                } else {
                    vec![]
                },
                id: h.id,
                source: h.source,
                spec: h.spec.expect("a spec for each held device"),
            })
            .collect(),
        unlisted_mdevs: vec![],
        dry_run: false,
    }
}

/// The source: a domain started with a bound mtty UUID, a vGPU VF and a
/// vDPA device from pools (the VF and vDPA device as a consumer allocates
/// them); answers the domain and its mdev UUID.
fn source(src: &Fakes) -> (Uuid, Uuid) {
    let (dom, u) = (Uuid::new_v4(), Uuid::new_v4());
    src.bind(&BindRequest {
        pool: pool("tty"),
        uuid: u,
    })
    .expect("bind");
    src.domain_prepare(&DomainPrepareRequest {
        domain: dom,
        name: "mig-vm".into(),
        mdevs: vec![u],
        pci: vec![],
        vdpa: vec![],
    })
    .expect("prepare on the source");
    for p in ["l40s", "nics"] {
        src.allocate(&hostdev_core::api::AllocateRequest {
            pool: pool(p),
            consumer: hostdev_core::api::ConsumerId::new(dom.to_string()).expect("consumer"),
            uuid: None,
            ttl_secs: None,
        })
        .expect("allocate on the source");
    }
    (dom, u)
}

fn binding(d: &Fakes, u: Uuid) -> Option<String> {
    if !PoolDb::path_under(&d.root).exists() {
        return None;
    }
    PoolDb::open(&d.root)
        .expect("db")
        .read(|tx| tx.binding(&u.to_string()))
        .expect("binding")
}

/// Rows of the destination's database held by anyone, with their expiry.
fn held_rows(d: &Fakes) -> Vec<(String, Option<String>, Option<i64>)> {
    if !PoolDb::path_under(&d.root).exists() {
        return vec![];
    }
    let db = PoolDb::open(&d.root).expect("db");
    let mut v = Vec::new();
    for p in ["tty", "l40s", "nics"] {
        for r in db.read(|tx| tx.pool_devices(p)).expect("rows") {
            if r.state == RecState::Allocated && r.held_at((d.clock)()) {
                v.push((r.id, r.consumer, r.expires));
            }
        }
    }
    v
}

#[test]
fn a_domain_arrives_with_the_same_mdev_uuid_another_vf_and_the_sources_vdpa_config() {
    let (t1, t2) = (
        tempfile::tempdir().expect("t"),
        tempfile::tempdir().expect("t"),
    );
    pools(t1.path(), "mtty-2");
    pools(t2.path(), "mtty-2");
    let src = host(t1.path(), "mtty-2", 2, "0000:41:00.0");
    let dst = host(t2.path(), "mtty-2", 2, "0000:81:00.0");
    let (dom, u) = source(&src);
    let req = incoming(&src, dom);
    let kinds: Vec<Kind> = req.devices.iter().map(|d| d.kind).collect();
    assert_eq!(kinds, [Kind::Mdev, Kind::Vgpu, Kind::Vdpa]);
    let vdpa_src = &req.devices[2];
    assert!(
        vdpa_src.source.starts_with("/dev/vhost-vdpa-"),
        "{vdpa_src:?}"
    );

    // A dry run judges and makes nothing.
    let dry = dst
        .domain_migrate(&DomainMigrateRequest {
            dry_run: true,
            ..req.clone()
        })
        .expect("dry run");
    assert!(dry.devices.iter().all(|a| !a.created));
    assert_eq!(dry.devices[0].to, u.to_string(), "the UUID is free here");
    assert!(running(&dst).is_empty() && held_rows(&dst).is_empty());

    let got = dst.domain_migrate(&req).expect("migrate");
    let a: Vec<(&str, &str, &str)> = got
        .devices
        .iter()
        .map(|a| (a.from.as_str(), a.to.as_str(), a.id.as_str()))
        .collect();
    assert_eq!(
        a[0],
        (
            u.to_string().as_str(),
            u.to_string().as_str(),
            u.to_string().as_str()
        )
    );
    assert_eq!(
        (a[1].0, a[1].1),
        ("0000:41:00.4", "0000:81:00.4"),
        "another host, another VF address"
    );
    assert!(a[2].1.starts_with("/dev/vhost-vdpa-"));
    assert!(got.devices.iter().all(|a| a.created && a.spec.is_some()));
    let cfg = |d: &Fakes, n: &str| {
        d.vdpa
            .client()
            .expect("client")
            .config(&n.parse().expect("name"))
            .expect("config")
    };
    assert_eq!(
        cfg(&dst, &got.devices[2].id),
        cfg(&src, &vdpa_src.id),
        "made with the source's config"
    );
    assert_eq!(running(&dst), [u.to_string()]);
    assert_eq!(binding(&dst, u).as_deref(), Some("tty"), "bound here too");
    // Reserved until the domain starts here...
    let rows = held_rows(&dst);
    assert_eq!(rows.len(), 3);
    assert!(rows
        .iter()
        .all(|r| r.1.as_deref() == Some(dom.to_string().as_str())
            && r.2 == Some(clock() + ARRIVAL_HOLD_SECS as i64)));
    // ... where prepare (naming what the rewritten XML names) keeps it.
    dst.domain_prepare(&DomainPrepareRequest {
        domain: dom,
        name: "mig-vm".into(),
        mdevs: vec![u],
        pci: vec![got.devices[1].to.parse().expect("vf")],
        vdpa: vec![got.devices[2].to.clone()],
    })
    .expect("prepare here");
    let rows = held_rows(&dst);
    assert_eq!(rows.len(), 3);
    assert!(
        rows.iter().all(|r| r.2.is_none()),
        "allocations now: {rows:?}"
    );
    // The source's domain stops: its devices go back to its pools.
    let r = src
        .domain_release(&DomainReleaseRequest { domain: dom })
        .expect("release on the source");
    assert_eq!(r.devices.len(), 3);
    assert!(running(&src).is_empty() && held_rows(&src).is_empty());
    // And back again: the UUID is free on the source again.
    let back = src.domain_migrate(&incoming(&dst, dom)).expect("back");
    assert_eq!(back.devices[0].to, u.to_string());
    assert_eq!(back.devices[1].to, "0000:41:00.4");
}

/// hostdev's metadata is written once QEMU has started (the hook's
/// `started`), when QEMU holds the mdev and a probe of it is refused as
/// busy: the spec comes from the answer kept when the domain's `prepare`
/// made the device, before QEMU opened it. Without it a domain started on
/// its first host had no metadata, and so nothing to migrate with.
#[test]
fn a_running_domains_mdev_has_a_spec_while_qemu_holds_it() {
    let t = tempfile::tempdir().expect("t");
    pools(t.path(), "mtty-2");
    let (src, vfio) = host_probed(t.path(), "mtty-2", 2, "0000:41:00.0");
    let (dom, u) = source(&src);
    vfio.set(&u.to_string(), Err(FakeRefusal::Busy));
    let held = src
        .domain_held(&DomainHeldQuery { domain: dom })
        .expect("held");
    let m = held
        .devices
        .iter()
        .find(|h| h.kind == Kind::Mdev)
        .expect("the mdev is held");
    let spec = m
        .spec
        .as_ref()
        .unwrap_or_else(|| panic!("no spec while QEMU holds it: {:?}", m.why));
    assert_eq!(spec.source, u.to_string());
    assert!(
        spec.mdev.as_ref().is_some_and(|s| s.migration.is_some()),
        "the probe's migration facts: {spec:?}"
    );
}

#[test]
fn an_mdev_uuid_taken_here_gets_a_new_one_for_the_rewritten_xml() {
    let (t1, t2) = (
        tempfile::tempdir().expect("t"),
        tempfile::tempdir().expect("t"),
    );
    pools(t1.path(), "mtty-2");
    pools(t2.path(), "mtty-2");
    let src = host(t1.path(), "mtty-2", 2, "0000:41:00.0");
    let dst = host(t2.path(), "mtty-2", 2, "0000:81:00.0");
    let (dom, u) = source(&src);
    dst.mdev
        .sysfs
        .create(
            &"mtty".parse().expect("parent"),
            &"mtty-2".parse().expect("type"),
            &u,
        )
        .expect("another device with that UUID");
    let got = dst.domain_migrate(&incoming(&src, dom)).expect("migrate");
    assert_eq!(got.devices[0].from, u.to_string());
    assert_ne!(got.devices[0].to, u.to_string());
    assert_eq!(got.devices[0].to, got.devices[0].id);
}

/// Each refusal is hostdev's sentence with its code, and the destination
/// is left as it was: no device, no reservation.
#[test]
fn a_destination_that_cannot_serve_refuses_and_leaves_nothing() {
    let t1 = tempfile::tempdir().expect("t");
    pools(t1.path(), "mtty-2");
    let src = host(t1.path(), "mtty-2", 2, "0000:41:00.0");
    let (dom, u) = source(&src);
    let req = incoming(&src, dom);

    // Another type in the pool of the same name.
    let t2 = tempfile::tempdir().expect("t");
    pools(t2.path(), "mtty-1");
    let dst = host(t2.path(), "mtty-1", 2, "0000:81:00.0");
    let e = dst.domain_migrate(&req).unwrap_err();
    assert_eq!(e.code(), "migrate.incompatible", "{e}");
    assert!(
        e.to_string()
            .contains("pool tty here hands out mtty-1, the source's device is mtty-2"),
        "{e}"
    );
    assert!(running(&dst).is_empty() && held_rows(&dst).is_empty());
    assert_eq!(binding(&dst, u), None, "nothing bound either");

    // No room for the last device (the vDPA pool is taken by another
    // domain): the mdev and the VF the first devices got are given back,
    // the mdev's binding undone.
    let t3 = tempfile::tempdir().expect("t");
    pools(t3.path(), "mtty-2");
    let dst = host(t3.path(), "mtty-2", 2, "0000:81:00.0");
    for i in 0..2 {
        dst.allocate(&hostdev_core::api::AllocateRequest {
            pool: pool("nics"),
            consumer: hostdev_core::api::ConsumerId::new(format!("other-vm{i}")).expect("consumer"),
            uuid: None,
            ttl_secs: None,
        })
        .expect("fill the vDPA pool");
    }
    let e = dst.domain_migrate(&req).unwrap_err();
    assert_eq!(e.code(), "pool.exhausted", "{e}");
    assert!(running(&dst).is_empty(), "the mdev made first is gone");
    let rows = held_rows(&dst);
    assert!(
        rows.len() == 2
            && rows
                .iter()
                .all(|r| r.1.as_deref().is_some_and(|c| c.starts_with("other-vm"))),
        "{rows:?}"
    );
    assert_eq!(binding(&dst, u), None, "the binding the mdev got is undone");
    let vfs = dst
        .vgpu
        .sriov
        .vfs(&"0000:81:00.0".parse().expect("pf"))
        .expect("vfs");
    assert!(vfs.iter().all(|v| v.current == 0), "VF type cleared again");

    // A domain started without the QEMU properties an mdev needs to migrate.
    let t4 = tempfile::tempdir().expect("t");
    pools(t4.path(), "mtty-2");
    let dst = host(t4.path(), "mtty-2", 2, "0000:81:00.0");
    let mut bare = req.clone();
    bare.devices[0].qemu_props.clear();
    let e = dst.domain_migrate(&bare).unwrap_err();
    assert_eq!(e.code(), "migrate.qemu_options");
    assert!(
        e.to_string()
            .contains("without x-device-dirty-page-tracking=off,enable-migration=on"),
        "{e}"
    );
    // No pool of that name here.
    std::fs::remove_file(t4.path().join("etc/hostdev/pools.d/l40s.toml")).expect("rm");
    let e = dst.domain_migrate(&req).unwrap_err();
    assert!(e.to_string().contains("l40s"), "{e}");
    // A pool-bound UUID the metadata does not list cannot be judged.
    dst.bind(&BindRequest {
        pool: pool("tty"),
        uuid: u,
    })
    .expect("bind here");
    let e = dst
        .domain_migrate(&DomainMigrateRequest {
            devices: vec![],
            unlisted_mdevs: vec![u],
            ..req.clone()
        })
        .unwrap_err();
    assert_eq!(e.code(), "migrate.no_spec");
    assert!(running(&dst).is_empty() && held_rows(&dst).is_empty());
}

/// A migration that never reaches `prepare` here (the destination's
/// libvirtd killed after the hook answered): the reservation ends by
/// itself and reconcile removes the device; a new attempt first gives back
/// what an earlier one left.
#[test]
fn an_arrival_that_never_starts_is_removed_by_reconcile_or_the_next_attempt() {
    let (t1, t2) = (
        tempfile::tempdir().expect("t"),
        tempfile::tempdir().expect("t"),
    );
    pools(t1.path(), "mtty-2");
    pools(t2.path(), "mtty-2");
    let src = host(t1.path(), "mtty-2", 2, "0000:41:00.0");
    let mut dst = host(t2.path(), "mtty-2", 1, "0000:81:00.0");
    dst.clock = late_clock;
    let (dom, u) = source(&src);
    let req = incoming(&src, dom);
    dst.domain_migrate(&req).expect("first attempt");
    // The pool has one instance: a second attempt can only succeed by
    // giving back what the first left.
    let again = dst.domain_migrate(&req).expect("second attempt");
    assert_eq!(again.devices[0].to, u.to_string());
    assert_eq!(held_rows(&dst).len(), 3);
    LATE.fetch_add(ARRIVAL_HOLD_SECS as i64 + 1, Ordering::SeqCst);
    assert!(held_rows(&dst).is_empty(), "the reservation ended");
    dst.reconcile().expect("reconcile");
    assert!(running(&dst).is_empty(), "reconcile removed the device");
    assert!(dst
        .vdpa
        .client()
        .expect("c")
        .devs()
        .expect("devs")
        .is_empty());
}

/// libvirt runs `migrate begin` before it checks that the domain is not
/// active here: an arrival for a domain that runs here must not take away
/// what it holds (the first version gave back all the domain held here, not
/// only what an unfinished arrival had reserved).
#[test]
fn an_arrival_for_a_domain_running_here_leaves_its_devices_alone() {
    let (t1, t2) = (
        tempfile::tempdir().expect("t"),
        tempfile::tempdir().expect("t"),
    );
    pools(t1.path(), "mtty-2");
    pools(t2.path(), "mtty-2");
    let src = host(t1.path(), "mtty-2", 2, "0000:41:00.0");
    let dst = host(t2.path(), "mtty-2", 2, "0000:81:00.0");
    let (dom, u) = source(&src);
    let mut req = incoming(&src, dom);
    req.devices.truncate(1); // the mdev
    dst.domain_migrate(&req).expect("arrival");
    dst.domain_prepare(&DomainPrepareRequest {
        domain: dom,
        name: "mig-vm".into(),
        mdevs: vec![u],
        pci: vec![],
        vdpa: vec![],
    })
    .expect("started here");
    let again = dst.domain_migrate(&req).expect("another arrival");
    // Served the device it holds (libvirt then refuses to migrate a domain
    // that is active here): nothing made or reserved, nothing given back.
    assert_eq!(again.devices[0].id, u.to_string());
    assert!(!again.devices[0].created);
    assert_eq!(running(&dst), [u.to_string()]);
    let rows = held_rows(&dst);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        rows.iter().any(|r| r.0 == u.to_string() && r.2.is_none()),
        "still the domain's allocation: {rows:?}"
    );
}

/// An arrival prepared here whose release never came (the destination's
/// libvirtd killed after QEMU started), then another arrival of the same
/// domain prepared: the domain holds one VF, not two. Found by the kill -9
/// test of the simulated lab on a faster machine (the domain held three
/// VFs); before, each arrival reserved a fresh VF and each prepare kept it.
#[test]
fn a_second_arrival_after_an_unreleased_one_serves_the_same_devices() {
    let (t1, t2) = (
        tempfile::tempdir().expect("t"),
        tempfile::tempdir().expect("t"),
    );
    pools(t1.path(), "mtty-2");
    pools(t2.path(), "mtty-2");
    let src = host(t1.path(), "mtty-2", 2, "0000:41:00.0");
    let dst = host(t2.path(), "mtty-2", 2, "0000:81:00.0");
    let (dom, _) = source(&src);
    let mut req = incoming(&src, dom);
    req.devices.remove(0); // the VF and the vDPA device
    let prepare = |got: &DomainMigrated| {
        dst.domain_prepare(&DomainPrepareRequest {
            domain: dom,
            name: "mig-vm".into(),
            mdevs: vec![],
            pci: vec![got.devices[0].to.parse().expect("vf")],
            vdpa: vec![got.devices[1].to.clone()],
        })
        .expect("prepare here")
    };
    let first = dst.domain_migrate(&req).expect("first arrival");
    prepare(&first);
    let second = dst.domain_migrate(&req).expect("second arrival");
    prepare(&second);
    let ids = |m: &DomainMigrated| m.devices.iter().map(|a| a.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&second), ids(&first), "the same VF and vDPA device");
    assert!(second.devices.iter().all(|a| !a.created));
    let rows = held_rows(&dst);
    assert_eq!(rows.len(), 2, "one VF and one vDPA device: {rows:?}");
    assert!(rows.iter().all(|r| r.2.is_none()), "{rows:?}");
    let vdpa = dst.vdpa.client().expect("client").devs().expect("devs");
    assert_eq!(vdpa.len(), 1, "{vdpa:?}");
}
