//! What a hostile operator found in pools (issue 25), each against the
//! fakes and a real state database in a temp dir: a reservation time that
//! wraps, a state database that vanished, a stuck writer of the database.
#![allow(clippy::expect_used)] // tests: a failed expectation is the report

use hostdev_core::api::{AllocateRequest, ConsumerId};
use hostdev_core::vdpa::Vdpas;
use hostdev_core::vgpu::Vgpus;
use hostdev_core::{Callouts, CoreError, Devices, Host};
use hostdev_model::pool::PoolName;
use hostdev_sysfs::sriov::FakeSriov;
use hostdev_sysfs::{FakeKernel, FakeType};
use hostdev_vdpa::FakeVdpa;
use std::path::Path;
use std::time::Duration;

type Fakes = Devices<(FakeKernel, FakeSriov, FakeVdpa)>;

fn host(root: &Path) -> Fakes {
    let k = FakeKernel::new();
    k.add_parent("p1", vec![FakeType::new("t-1", 4)]);
    let mut h = Host::new(k, root, Callouts::none());
    h.ready_timeout = Duration::from_millis(50);
    let mut d = Devices::new(
        h,
        Vgpus::new(FakeSriov::new(), root),
        Vdpas::new(FakeVdpa::new(), root),
        std::sync::Arc::new(hostdev_vfio::FakeVfio::new()),
        root,
    );
    d.clock = || 1_000_000;
    d
}

fn pool(root: &Path, name: &str, text: &str) -> PoolName {
    let dir = root.join("etc/hostdev/pools.d");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join(format!("{name}.toml")), text).expect("write");
    PoolName::new(name).expect("name")
}

fn alloc(d: &Fakes, p: &PoolName, c: &str, ttl: Option<u64>) -> Result<String, CoreError> {
    d.allocate(&AllocateRequest {
        pool: p.clone(),
        consumer: ConsumerId::new(c).expect("consumer"),
        uuid: None,
        ttl_secs: ttl,
    })
    .map(|a| a.id)
}

/// `--ttl 18446744073709551615` (or 10^19) wrapped past i64 into an expiry
/// in the past, and `ttl_secs: 0` through the API expired at once: either
/// way the next consumer got the same device.
#[test]
fn a_huge_or_zero_reservation_is_refused_and_never_hands_one_device_to_two() {
    for mode in [
        "mode = \"pre-created\"\ncount = 1\n",
        "mode = \"on-demand\"\nlimit = 1\n",
    ] {
        let t = tempfile::tempdir().expect("tempdir");
        let d = host(t.path());
        let p = pool(
            t.path(),
            "p",
            &format!("kind = \"mdev\"\ntype = \"t-1\"\n{mode}"),
        );
        for ttl in [u64::MAX, 10_000_000_000_000_000_000, 0, 30 * 86_400 + 1] {
            let e = alloc(&d, &p, "a", Some(ttl)).expect_err("out of range");
            assert_eq!(e.code(), "pool.bad_ttl", "{mode} {ttl}: {e}");
            assert!(e.to_string().contains(&ttl.to_string()), "{e}");
        }
        let a = alloc(&d, &p, "a", Some(30 * 86_400)).expect("the longest reservation");
        let e = alloc(&d, &p, "b", None).expect_err("one device, held by a");
        assert_eq!(e.code(), "pool.exhausted", "{mode}: {e}");
        assert_eq!(alloc(&d, &p, "a", None).expect("again"), a);
    }
}

/// A 10 MB line in a pool file gave a 20 MB error (and `GET /v1/pools` a
/// 20 MB reply), a file nested 100 000 deep a 200 KB one, and a pool file
/// linked to another file printed that file's first line.
#[test]
fn errors_about_pool_files_are_bounded_and_never_quote_another_file() {
    let t = tempfile::tempdir().expect("tempdir");
    let d = host(t.path());
    let dir = t.path().join("etc/hostdev/pools.d");
    std::fs::create_dir_all(&dir).expect("dir");
    let huge = format!(
        "kind = \"mdev\"\ntype = \"t-1\"\nx = \"{}\"\n",
        "A".repeat(10 << 20)
    );
    std::fs::write(dir.join("huge.toml"), huge).expect("write");
    let line = format!("kind = \"mdev\"\ntype = {}\n", "B".repeat(20_000));
    std::fs::write(dir.join("line.toml"), line).expect("write");
    for (name, depth) in [("deep", 100_000), ("deep2", 20_000)] {
        let nested = format!(
            "kind = \"mdev\"\ntype = \"t-1\"\nx = {}\n",
            "[".repeat(depth)
        );
        std::fs::write(dir.join(format!("{name}.toml")), nested).expect("write");
    }
    let secret = t.path().join("shadow");
    std::fs::write(&secret, "root:$y$SECRET-HASH:19000:0:99999:7:::\n").expect("write");
    std::os::unix::fs::symlink(&secret, dir.join("linked.toml")).expect("link");
    let l = d.pool_list().expect("list");
    assert_eq!(l.problems.len(), 5, "{:?}", l.problems);
    for p in &l.problems {
        let r = &p.reason;
        assert!(
            r.len() < 400,
            "{}: {} bytes: {}",
            p.path.display(),
            r.len(),
            &r[..r.len().min(400)]
        );
        assert!(!r.contains("SECRET"), "{}: {r}", p.path.display());
    }
    for name in ["huge", "line", "deep", "deep2", "linked"] {
        let e = alloc(&d, &PoolName::new(name).expect("n"), "vm", None).expect_err(name);
        let s = e.to_string();
        assert!(
            s.len() < 500 && !s.contains("SECRET"),
            "{name}: {}",
            &s[..s.len().min(500)]
        );
    }
}

fn running(d: &Fakes) -> usize {
    use hostdev_sysfs::MdevSysfs;
    d.mdev.sysfs.devices().expect("devices").len()
}

/// A deleted or emptied `pools.db` was silently a new database: the
/// allocations were forgotten, the devices stayed owned by nobody, and the
/// next allocation made a second set.
#[test]
fn a_vanished_or_emptied_state_database_is_refused_not_replaced() {
    for how in ["deleted", "emptied"] {
        let t = tempfile::tempdir().expect("tempdir");
        let d = host(t.path());
        let p = pool(t.path(), "p", "kind = \"mdev\"\ntype = \"t-1\"\n");
        alloc(&d, &p, "vm-a", None).expect("a");
        assert_eq!(running(&d), 1);
        let db = t.path().join("var/lib/hostdev/pools.db");
        match how {
            "deleted" => {
                for f in ["pools.db", "pools.db-wal", "pools.db-shm"] {
                    let _ = std::fs::remove_file(t.path().join("var/lib/hostdev").join(f));
                }
            }
            _ => {
                std::fs::write(&db, b"").expect("truncate");
                let _ = std::fs::remove_file(t.path().join("var/lib/hostdev/pools.db-wal"));
            }
        }
        // A new process: nothing of the old file is remembered.
        let e = alloc(&d, &p, "vm-b", None).expect_err(how);
        assert_eq!(e.code(), "store.pool_state_lost", "{how}: {e}");
        let s = e.to_string();
        assert!(s.contains("pools.db") && s.contains("pools.created"), "{s}");
        assert_eq!(running(&d), 1, "{how}: no second set made");
        assert!(d.reconcile().is_err(), "{how}: reconcile refuses too");
        // The documented repair: with no pool device left, remove the marker.
        std::fs::remove_file(t.path().join("var/lib/hostdev/pools.created")).expect("marker");
        alloc(&d, &p, "vm-b", None).expect("a new database");
    }
}
