//! Pools against the fakes and a real state database in a temp dir: what is
//! handed out, to whom, what the kernel fake holds afterwards, and what a
//! killed process leaves for reconcile.
#![allow(clippy::expect_used)] // tests: a failed expectation is the report

use hostdev_core::api::{
    AllocateRequest, BindRequest, ConsumerId, DomainPrepareRequest, DomainReleaseRequest, Kind,
    ReleaseRequest,
};
use hostdev_core::vdpa::Vdpas;
use hostdev_core::vgpu::Vgpus;
use hostdev_core::{Callouts, CoreError, Devices, Host};
use hostdev_model::pool::PoolName;
use hostdev_model::Uuid;
use hostdev_store::{DeviceRecord, Origin, PoolDb, RecState};
use hostdev_sysfs::sriov::PciSriov;
use hostdev_sysfs::sriov::{FakeSriov, SriovSysfs};
use hostdev_sysfs::{FakeKernel, FakeType, MdevSysfs};
use hostdev_vdpa::{FakeVdpa, VdpaClient};
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

type Fakes = Devices<(FakeKernel, FakeSriov, FakeVdpa)>;

fn host(root: &Path) -> Fakes {
    let k = FakeKernel::new();
    k.add_parent("p1", vec![FakeType::new("t-1", 4)]);
    k.add_parent("p2", vec![FakeType::new("t-1", 4)]);
    let mut h = Host::new(k, root, Callouts::none());
    h.ready_timeout = Duration::from_millis(50);
    let s = FakeSriov::new();
    s.add_pf(
        "0000:41:00.0",
        4,
        16384,
        &[(1150, "NVIDIA L40S-4Q", 4096)],
        true,
    );
    s.set_num_vfs(&"0000:41:00.0".parse().expect("pf"), 4)
        .expect("vfs");
    let mut v = Vgpus::new(s, root);
    v.vf_timeout = Duration::from_millis(50);
    let vd = FakeVdpa::new();
    vd.add_mgmtdev("vdpasim_net", 1, &["mac", "mtu"]);
    let mut d = Devices::new(
        h,
        v,
        Vdpas::new(vd, root),
        std::sync::Arc::new(hostdev_vfio::FakeVfio::new()),
        root,
    );
    d.clock = clock;
    d
}

static NOW: AtomicI64 = AtomicI64::new(1_000_000);
fn clock() -> i64 {
    NOW.load(Ordering::SeqCst)
}

fn pool(root: &Path, name: &str, text: &str) -> PoolName {
    let dir = root.join("etc/hostdev/pools.d");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join(format!("{name}.toml")), text).expect("write");
    PoolName::new(name).expect("name")
}

fn alloc(d: &Fakes, p: &PoolName, c: &str) -> Result<hostdev_core::api::Allocation, CoreError> {
    d.allocate(&AllocateRequest {
        pool: p.clone(),
        consumer: ConsumerId::new(c).expect("consumer"),
        uuid: None,
        ttl_secs: None,
    })
}

fn running(d: &Fakes) -> Vec<(String, String)> {
    d.mdev
        .sysfs
        .devices()
        .expect("devices")
        .into_iter()
        .map(|a| (a.uuid.to_string(), a.parent.to_string()))
        .collect()
}

#[test]
fn on_demand_creates_at_allocation_spreads_and_removes_at_release() {
    let t = tempfile::tempdir().expect("tempdir");
    let d = host(t.path());
    let p = pool(
        t.path(),
        "gpu",
        "kind = \"mdev\"\ntype = \"t-1\"\nlimit = 3\n",
    );
    let a = alloc(&d, &p, "vm-a").expect("a");
    let b = alloc(&d, &p, "vm-b").expect("b");
    assert_eq!(a.kind, Kind::Mdev);
    assert_ne!(a.member, b.member, "spread: one device per parent first");
    assert!(
        a.libvirt.contains(&format!("uuid=\"{}\"", a.id)),
        "{}",
        a.libvirt
    );
    assert_eq!(running(&d).len(), 2);
    let again = alloc(&d, &p, "vm-a").expect("again");
    assert_eq!((again.id.as_str(), again.again), (a.id.as_str(), true));
    alloc(&d, &p, "vm-c").expect("c");
    let e = alloc(&d, &p, "vm-d").unwrap_err();
    assert_eq!(e.code(), "pool.exhausted");
    assert_eq!(e.to_string(), "pool gpu is exhausted: 3 of 3 allocated");
    let r = d
        .release(&ReleaseRequest {
            pool: None,
            consumer: Some(ConsumerId::new("vm-a").expect("c")),
            device: None,
        })
        .expect("release");
    assert_eq!(r.devices.len(), 1);
    assert!(r.devices[0].removed);
    assert!(
        !running(&d).iter().any(|(u, _)| u == &a.id),
        "removed at release"
    );
    let e = d
        .release(&ReleaseRequest {
            pool: None,
            consumer: Some(ConsumerId::new("vm-a").expect("c")),
            device: None,
        })
        .unwrap_err();
    assert_eq!(e.code(), "pool.nothing_held");
}

#[test]
fn pack_fills_one_parent_before_the_next() {
    let t = tempfile::tempdir().expect("tempdir");
    let d = host(t.path());
    let p = pool(
        t.path(),
        "g",
        "kind = \"mdev\"\ntype = \"t-1\"\nplacement = \"pack\"\n",
    );
    let members: Vec<String> = (0..5)
        .map(|i| alloc(&d, &p, &format!("vm{i}")).expect("alloc").member)
        .collect();
    assert_eq!(members, ["p1", "p1", "p1", "p1", "p2"]);
}

#[test]
fn pre_created_pools_are_filled_with_definitions_and_hand_out_without_kernel_work() {
    let t = tempfile::tempdir().expect("tempdir");
    let d = host(t.path());
    let p = pool(
        t.path(),
        "ready",
        "kind = \"mdev\"\ntype = \"t-1\"\nmode = \"pre-created\"\ncount = 3\n",
    );
    let rep = d.reconcile().expect("reconcile");
    assert_eq!(
        rep.rows.iter().filter(|r| r.action == "created").count(),
        3,
        "{rep:?}"
    );
    assert_eq!(running(&d).len(), 3);
    let (defs, _) = d.mdev.store.load_all().expect("defs");
    assert_eq!(
        defs.len(),
        3,
        "persistent definitions, restored like any other"
    );
    let before = d.mdev.sysfs.log().len();
    let a = alloc(&d, &p, "vm-a").expect("a");
    alloc(&d, &p, "vm-b").expect("b");
    alloc(&d, &p, "vm-c").expect("c");
    assert_eq!(
        d.mdev.sysfs.log().len(),
        before,
        "no kernel write to allocate"
    );
    let e = alloc(&d, &p, "vm-d").unwrap_err();
    assert_eq!(e.to_string(), "pool ready is exhausted: 3 of 3 allocated");
    d.release(&ReleaseRequest {
        pool: Some(p.clone()),
        consumer: None,
        device: Some(a.id.clone()),
    })
    .expect("release");
    assert_eq!(running(&d).len(), 3, "kept ready");
    assert_eq!(alloc(&d, &p, "vm-d").expect("d").id, a.id);
    // Shrinking the pool removes free devices only.
    pool(
        t.path(),
        "ready",
        "kind = \"mdev\"\ntype = \"t-1\"\nmode = \"pre-created\"\ncount = 1\n",
    );
    let rep = d.reconcile().expect("reconcile");
    assert!(
        rep.rows.iter().all(|r| r.action != "removed"),
        "all 3 are held: {rep:?}"
    );
}

#[test]
fn reservations_expire_by_themselves_and_become_permanent_when_asked_again() {
    let t = tempfile::tempdir().expect("tempdir");
    let d = host(t.path());
    let p = pool(
        t.path(),
        "r",
        "kind = \"mdev\"\ntype = \"t-1\"\nlimit = 1\n",
    );
    let req = |c: &str, ttl| AllocateRequest {
        pool: p.clone(),
        consumer: ConsumerId::new(c).expect("c"),
        uuid: None,
        ttl_secs: ttl,
    };
    let r = d.allocate(&req("dest", Some(60))).expect("reserve");
    assert_eq!(r.expires, Some(clock() + 60));
    assert_eq!(
        d.allocate(&req("other", None)).unwrap_err().code(),
        "pool.exhausted"
    );
    NOW.fetch_add(61, Ordering::SeqCst);
    let show = d.pool_show(&p).expect("show");
    assert_eq!(show.devices[0].state, "expired");
    let o = d
        .allocate(&req("other", None))
        .expect("the expired one is free");
    assert_ne!(o.id, r.id, "an on-demand reservation's device was removed");
    assert_eq!(running(&d).len(), 1);
    // A reservation confirmed in time stays.
    d.release(&ReleaseRequest {
        pool: None,
        consumer: Some(ConsumerId::new("other").expect("c")),
        device: None,
    })
    .expect("release");
    let r = d.allocate(&req("dest", Some(60))).expect("reserve");
    let c = d.allocate(&req("dest", None)).expect("confirm");
    assert_eq!((c.id.as_str(), c.expires), (r.id.as_str(), None));
    NOW.fetch_add(120, Ordering::SeqCst);
    assert_eq!(d.pool_show(&p).expect("show").devices[0].state, "allocated");
}

#[test]
fn what_a_killed_process_left_is_undone_by_the_next_one() {
    let t = tempfile::tempdir().expect("tempdir");
    let d = host(t.path());
    let p = pool(t.path(), "k", "kind = \"mdev\"\ntype = \"t-1\"\n");
    // A process recorded its intent, created the device and died.
    let u = Uuid::new_v4();
    let db = PoolDb::open(t.path()).expect("db");
    db.write::<_, hostdev_store::StoreError>(|tx| {
        tx.insert(&DeviceRecord {
            id: u.to_string(),
            pool: "k".into(),
            member: "p1".into(),
            origin: Origin::OnDemand,
            state: RecState::Creating,
            consumer: Some("vm-dead".into()),
            since: 0,
            expires: None,
            element: String::new(),
        })
    })
    .expect("intent");
    d.mdev
        .sysfs
        .create(&"p1".parse().expect("p"), &"t-1".parse().expect("t"), &u)
        .expect("create");
    // The next allocation (it takes the pools' lock, so no live process owns
    // the row) undoes it first.
    let gone = alloc(&d, &p, "vm-gone").expect("alloc");
    assert!(
        !running(&d).iter().any(|(r, _)| r == &u.to_string()),
        "undone"
    );
    assert!(db
        .read(|tx| tx.device(&u.to_string()))
        .expect("row")
        .is_none());
    // Reconcile does the same, and frees an allocated device that vanished
    // behind the pool's back.
    db.write::<_, hostdev_store::StoreError>(|tx| {
        tx.insert(&DeviceRecord {
            id: u.to_string(),
            pool: "k".into(),
            member: "p2".into(),
            origin: Origin::OnDemand,
            state: RecState::Removing,
            consumer: Some("vm-dead".into()),
            since: 0,
            expires: None,
            element: String::new(),
        })
    })
    .expect("intent");
    d.mdev
        .sysfs
        .remove(&gone.id.parse().expect("u"))
        .expect("remove");
    let rep = d.reconcile().expect("reconcile");
    let actions: Vec<(String, String)> = rep
        .rows
        .iter()
        .map(|r| (r.id.clone(), r.action.clone()))
        .collect();
    assert!(
        actions.contains(&(u.to_string(), "undone".into())),
        "{actions:?}"
    );
    assert!(
        actions.contains(&(gone.id.clone(), "freed".into())),
        "{actions:?}"
    );
    assert!(running(&d).is_empty(), "no device without an owner");
    assert!(
        db.read(|tx| tx.all_devices()).expect("rows").is_empty(),
        "no allocation without a device"
    );
}

#[test]
fn vgpu_pools_set_and_clear_vf_types() {
    let t = tempfile::tempdir().expect("tempdir");
    let d = host(t.path());
    let p = pool(
        t.path(),
        "l40s",
        "kind = \"vgpu\"\ntype = \"NVIDIA L40S-4Q\"\n",
    );
    let a = alloc(&d, &p, "vm-a").expect("a");
    assert_eq!((a.kind, a.member.as_str()), (Kind::Vgpu, "0000:41:00.0"));
    assert!(a.libvirt.contains("type=\"pci\""), "{}", a.libvirt);
    let vfs = d
        .vgpu
        .sriov
        .vfs(&"0000:41:00.0".parse().expect("pf"))
        .expect("vfs");
    assert_eq!(vfs.iter().filter(|v| v.current == 1150).count(), 1);
    d.release(&ReleaseRequest {
        pool: None,
        consumer: Some(ConsumerId::new("vm-a").expect("c")),
        device: None,
    })
    .expect("release");
    let vfs = d
        .vgpu
        .sriov
        .vfs(&"0000:41:00.0".parse().expect("pf"))
        .expect("vfs");
    assert!(
        vfs.iter().all(|v| v.current == 0),
        "type cleared at release"
    );
    // The frame buffer (16 GiB, 4 GiB each) allows four.
    for i in 0..4 {
        alloc(&d, &p, &format!("vm{i}")).expect("alloc");
    }
    assert_eq!(alloc(&d, &p, "vm9").unwrap_err().code(), "pool.exhausted");
}

#[test]
fn vdpa_pools_make_devices_from_the_template() {
    let t = tempfile::tempdir().expect("tempdir");
    let d = host(t.path());
    let p = pool(
        t.path(),
        "nics",
        "kind = \"vdpa\"\nlimit = 2\n[vdpa]\nname_prefix = \"vnet\"\nmac_base = \"52:54:00:00:10:00\"\n",
    );
    let a = alloc(&d, &p, "vm-a").expect("a");
    let b = alloc(&d, &p, "vm-b").expect("b");
    assert_eq!((a.id.as_str(), b.id.as_str()), ("vnet0", "vnet1"));
    let c = d.vdpa.client().expect("client");
    let cfg = c.config(&"vnet1".parse().expect("n")).expect("config");
    assert!(format!("{cfg:?}").contains("52:54:00:00:10:01"), "{cfg:?}");
    assert_eq!(
        alloc(&d, &p, "vm-c").unwrap_err().to_string(),
        "pool nics is exhausted: 2 of 2 allocated"
    );
}

#[test]
fn a_domain_gets_its_bound_uuids_and_a_failed_prepare_leaves_nothing() {
    let t = tempfile::tempdir().expect("tempdir");
    let d = host(t.path());
    let p = pool(
        t.path(),
        "vm",
        "kind = \"mdev\"\ntype = \"t-1\"\nlimit = 1\n",
    );
    let (u1, u2) = (Uuid::new_v4(), Uuid::new_v4());
    for u in [u1, u2] {
        d.bind(&BindRequest {
            pool: p.clone(),
            uuid: u,
        })
        .expect("bind");
    }
    let dom = Uuid::new_v4();
    let e = d
        .domain_prepare(&DomainPrepareRequest {
            domain: dom,
            name: "two".into(),
            mdevs: vec![u1, u2],
            pci: vec![],
            vdpa: vec![],
        })
        .unwrap_err();
    assert_eq!(e.to_string(), "pool vm is exhausted: 1 of 1 allocated");
    assert!(running(&d).is_empty(), "the first device was removed again");
    let got = d
        .domain_prepare(&DomainPrepareRequest {
            domain: dom,
            name: "one".into(),
            mdevs: vec![u1],
            pci: vec![],
            vdpa: vec![],
        })
        .expect("prepare");
    assert_eq!(got[0].id, u1.to_string());
    assert_eq!(running(&d), [(u1.to_string(), got[0].member.clone())]);
    let r = d
        .domain_release(&DomainReleaseRequest { domain: dom })
        .expect("release");
    assert_eq!(r.devices.len(), 1);
    assert!(running(&d).is_empty());
    // A UUID bound elsewhere, or to a pre-created pool, is refused.
    pool(
        t.path(),
        "pre",
        "kind = \"mdev\"\ntype = \"t-1\"\nmode = \"pre-created\"\ncount = 1\n",
    );
    let e = d
        .bind(&BindRequest {
            pool: PoolName::new("pre").expect("n"),
            uuid: u1,
        })
        .unwrap_err();
    assert_eq!(e.code(), "pool.misuse");
}

#[test]
fn unknown_pools_and_uuids_for_other_kinds_are_refused_with_sentences() {
    let t = tempfile::tempdir().expect("tempdir");
    let d = host(t.path());
    let e = alloc(&d, &PoolName::new("nope").expect("n"), "vm").unwrap_err();
    assert_eq!(e.code(), "pool.unknown");
    assert!(
        e.to_string().contains("etc/hostdev/pools.d/nope.toml"),
        "{e}"
    );
    let p = pool(
        t.path(),
        "v",
        "kind = \"vgpu\"\ntype = \"NVIDIA L40S-4Q\"\n",
    );
    let e = d
        .allocate(&AllocateRequest {
            pool: p,
            consumer: ConsumerId::new("vm").expect("c"),
            uuid: Some(Uuid::new_v4()),
            ttl_secs: None,
        })
        .unwrap_err();
    assert_eq!(e.code(), "pool.misuse");
    let bad = pool(
        t.path(),
        "bad",
        "kind = \"mdev\"\ntype = \"t-1\"\nlimt = 3\n",
    );
    let e = alloc(&d, &bad, "vm").unwrap_err();
    assert!(e.to_string().contains("unknown field `limt`"), "{e}");
}

/// hostdevd reconciles every minute on every host: one without pools must
/// not get a database or a lock file for it.
#[test]
fn a_host_without_pools_gets_no_state_files() {
    let t = tempfile::tempdir().expect("tempdir");
    let d = host(t.path());
    let r = d.reconcile().expect("reconcile");
    assert!(r.rows.is_empty() && r.problems.is_empty());
    assert!(d.pool_list().expect("list").pools.is_empty());
    assert!(!t.path().join("var/lib/hostdev").exists());
    assert!(!t.path().join("run/lock/hostdev-pools.lock").exists());
}

/// Hostile-operator pass: a pool whose type no member offers said "exhausted:
/// 0 of 0"; a pre-created pool that could not be filled (read-only /etc)
/// said the same and hid why; one vDPA pool without the module made
/// `pool list` fail for every pool.
#[test]
fn a_pool_that_cannot_make_anything_says_why() {
    let t = tempfile::tempdir().expect("tempdir");
    let d = host(t.path());
    let p = pool(t.path(), "np", "kind = \"mdev\"\ntype = \"nope-1\"\n");
    let e = alloc(&d, &p, "vm").unwrap_err();
    assert_eq!(e.code(), "pool.no_room");
    assert_eq!(
        e.to_string(),
        "pool np cannot make a device on any member: p1: it does not offer type nope-1; p2: it does not offer type nope-1"
    );
    // Definitions cannot be written: /etc/mdevctl.d is a file.
    std::fs::create_dir_all(t.path().join("etc")).expect("etc");
    std::fs::write(t.path().join("etc/mdevctl.d"), "").expect("blocker");
    let p = pool(
        t.path(),
        "pre",
        "kind = \"mdev\"\ntype = \"t-1\"\nmode = \"pre-created\"\ncount = 1\n",
    );
    let e = alloc(&d, &p, "vm").unwrap_err();
    assert_eq!(e.code(), "pool.fill_failed");
    assert!(
        e.to_string()
            .starts_with("pool pre could not make its pre-created devices: "),
        "{e}"
    );
    assert!(running(&d).is_empty(), "nothing left running");
    let mut d = d;
    d.vdpa = Vdpas::lazy(t.path(), || Err(hostdev_vdpa::VdpaError::NoFamily));
    pool(
        t.path(),
        "vd",
        "kind = \"vdpa\"\n[vdpa]\nname_prefix = \"vn\"\n",
    );
    let l = d.pool_list().expect("list");
    assert_eq!(l.pools.len(), 3, "every pool listed");
    assert!(
        l.problems.iter().any(|p| p.reason.contains("vdpa")),
        "{:?}",
        l.problems
    );
}
