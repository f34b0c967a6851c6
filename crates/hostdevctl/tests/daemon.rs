//! hostdevd on the simulated lab and with real unprivileged peers: late
//! parents and PFs restored by resync, drift reported, each peer's rights,
//! 64 concurrent clients, and kill -9 in the middle of a restore.
//! Needs FUSE, root and setpriv(1): every test is `#[ignore]`d with its reason
//! and run by `cargo xtask test` where it can.
#![allow(clippy::expect_used)] // tests: a failed expectation is the report

mod common;

use common::{eventually, http_get, ok, read_events, require_fuse, show, Bins, Daemon, Sim};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn mdevs(root: &Path) -> usize {
    std::fs::read_dir(root.join("sys/bus/mdev/devices"))
        .map(|d| d.count())
        .unwrap_or(0)
}

const RESYNC: &str = "uevents = false\nresync_interval_secs = 1\ngroup = \"root\"\n";

#[test]
#[ignore = "needs FUSE (fuse3) for the simulated lab; run by `cargo xtask test`"]
fn a_late_parent_is_restored_by_resync_and_a_removed_device_is_drift() {
    require_fuse("daemon late parent");
    let bins = Bins::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let profile = dir.path().join("late.toml");
    std::fs::write(
        &profile,
        "description = \"late\"\n[[parent]]\nname = \"mtty\"\n[[parent.type]]\nid = \"mtty-1\"\nmax = 8\n\
         [[parent]]\nname = \"0000:3b:00.0\"\nappear_after_ms = 2500\n[[parent.type]]\nid = \"nvidia-230\"\nmax = 4\n",
    )
    .expect("write");
    let sim = Sim::start(profile.to_str().expect("utf8"));
    let r = sim.path();
    for (i, p, t) in [
        (1, "mtty", "mtty-1"),
        (2, "mtty", "mtty-1"),
        (3, "0000:3b:00.0", "nvidia-230"),
        (4, "0000:3b:00.0", "nvidia-230"),
    ] {
        let u = format!("11111111-2222-4333-8444-55555555550{i}");
        ok(
            &bins,
            r,
            "mdevctl",
            &["define", "-u", &u, "-p", p, "-t", t, "--auto"],
        );
    }
    // Boot: the daemon starts with the host; the second parent comes late.
    sim.reboot();
    assert_eq!(mdevs(r), 0);
    let d = Daemon::start(r, RESYNC);
    eventually(15, "mtty's devices restored at start", || mdevs(r) == 2);
    eventually(10, "the late parent's devices restored by resync", || {
        mdevs(r) == 4
    });
    let events = read_events(&d.socket, 4);
    assert!(
        events.iter().any(|e| e["type"] == "restored"
            && e["trigger"] == "start"
            && e["report"]["rows"].as_array().map(Vec::len) == Some(2)),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| e["type"] == "restored"
            && e["trigger"] == "resync"
            && e["report"]["rows"][0]["parent"] == "0000:3b:00.0"),
        "{events:?}"
    );
    // Removed behind hostdev's back: drift, reported and counted, not repaired.
    std::fs::write(
        r.join("sys/bus/mdev/devices/11111111-2222-4333-8444-555555555501/remove"),
        "1",
    )
    .expect("remove");
    eventually(5, "drift reported", || {
        read_events(&d.socket, 0).iter().any(|e| {
            e["type"] == "drift"
                && e["drift"] == "auto_not_running"
                && e["device"]["id"] == "11111111-2222-4333-8444-555555555501"
        })
    });
    let (_, metrics) = http_get(&d.socket, "/metrics");
    assert!(
        metrics.contains("hostdev_drift{kind=\"mdev\",drift=\"auto_not_running\"} 1"),
        "{metrics}"
    );
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(mdevs(r), 3, "drift is repaired only when configured");
    // A running device nobody defined is drift too.
    let out = ok(
        &bins,
        r,
        "mdevctl",
        &["start", "-p", "mtty", "-t", "mtty-1"],
    );
    let transient = out.trim().to_string();
    eventually(5, "undefined device reported", || {
        read_events(&d.socket, 0).iter().any(|e| {
            e["type"] == "drift"
                && e["drift"] == "undefined"
                && e["device"]["id"] == transient.as_str()
        })
    });
}

#[test]
#[ignore = "needs FUSE (fuse3) for the simulated lab; run by `cargo xtask test`"]
fn a_late_pf_is_restored_by_resync_with_its_vf_count_and_types() {
    require_fuse("daemon late pf");
    let bins = Bins::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let profile = dir.path().join("sriov.toml");
    let builtin = include_str!("../../hostdev-sim/profiles/nvidia-sriov.toml");
    std::fs::write(
        &profile,
        builtin.replace("appear_after_ms = 0", "appear_after_ms = 2500"),
    )
    .expect("write");
    let sim = Sim::start(profile.to_str().expect("utf8"));
    let r = sim.path();
    let b = "0000:c1:00.0";
    eventually(5, "the late PF appears", || {
        r.join(format!("sys/bus/pci/devices/{b}/sriov_totalvfs"))
            .exists()
    });
    ok(
        &bins,
        r,
        "hostdevctl",
        &["vgpu", "enable", "--pf", b, "--numvfs", "2", "--auto"],
    );
    let vfs = ["0000:c1:00.4", "0000:c1:00.5"];
    eventually(10, "VFs ready", || {
        vfs.iter().all(|v| {
            r.join(format!("sys/bus/pci/devices/{v}/nvidia/current_vgpu_type"))
                .exists()
        })
    });
    for vf in vfs {
        ok(
            &bins,
            r,
            "hostdevctl",
            &["vgpu", "define", "--vf", vf, "--type", "1428", "--auto"],
        );
    }
    sim.reboot();
    let d = Daemon::start(r, RESYNC);
    eventually(20, "the late PF's VFs and types restored", || {
        vfs.iter().all(|v| {
            std::fs::read_to_string(
                r.join(format!("sys/bus/pci/devices/{v}/nvidia/current_vgpu_type")),
            )
            .is_ok_and(|t| t.trim() == "1428")
        })
    });
    let events = read_events(&d.socket, 1);
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "restored" && e["report"]["rows"][0]["kind"] == "vgpu"),
        "{events:?}"
    );
    let (_, metrics) = http_get(&d.socket, "/metrics");
    assert!(
        metrics.contains("hostdev_restore_outcomes_total{kind=\"vgpu\",outcome=\"started\"} 2"),
        "{metrics}"
    );
}

/// `curl` on the socket as another user: (exit status, HTTP status, body).
fn curl_as(user: Option<(u32, u32, &[u32])>, socket: &Path, args: &[&str]) -> (i32, String) {
    let mut c = match user {
        Some((uid, gid, groups)) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"));
            if groups.is_empty() {
                c.arg("--clear-groups");
            } else {
                let g: Vec<String> = groups.iter().map(u32::to_string).collect();
                c.arg(format!("--groups={}", g.join(",")));
            }
            c.arg("curl");
            c
        }
        None => Command::new("curl"),
    };
    c.args(["-s", "-w", "\n%{http_code}", "--unix-socket"])
        .arg(socket)
        .args(args);
    let o = c.output().expect("curl");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

fn users_gid() -> u32 {
    let g = std::fs::read_to_string("/etc/group").expect("/etc/group");
    g.lines()
        .find_map(|l| l.strip_prefix("users:x:"))
        .and_then(|r| r.split(':').next())
        .and_then(|n| n.parse().ok())
        .expect("the group 'users' exists on Debian")
}

#[test]
#[ignore = "needs root, setpriv and curl to act as other users; run by `cargo xtask test`"]
fn each_peer_gets_exactly_its_rights() {
    assert!(
        rustix::process::getuid().is_root()
            && Command::new("setpriv").arg("--version").output().is_ok()
            && Command::new("curl").arg("--version").output().is_ok(),
        "needs root, setpriv and curl"
    );
    let t = common::tree(&hostdev_testkit::fixed());
    let d = Daemon::start(
        t.path(),
        "restore_on_start = false\nuevents = false\nresync_interval_secs = 3600\ngroup = \"users\"\n",
    );
    // The socket's directory must be reachable by others for this test.
    let _ = std::fs::set_permissions(
        t.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    );
    let _ = std::fs::set_permissions(
        t.path().join("run"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    );
    let users = users_gid();
    let define = [
        "-XPOST",
        "-d",
        r#"{"uuid":"11111111-2222-4333-8444-555555555509","parent":"mtty","mdev_type":"mtty-1"}"#,
        "http://x/v1/mdev/define",
    ];
    // Root: everything.
    let (_, out) = curl_as(None, &d.socket, &["http://x/v1/devices"]);
    assert!(out.ends_with("\n200"), "{out}");
    let (_, out) = curl_as(None, &d.socket, &define);
    assert!(out.ends_with("\n200"), "{out}");
    // A member of the group, by primary or supplementary group: reads only.
    for member in [(65534, users, &[][..]), (65534, 65534, &[users][..])] {
        for path in [
            "http://x/v1/devices",
            "http://x/metrics",
            "http://x/v1/mdev/types",
        ] {
            let (_, out) = curl_as(Some(member), &d.socket, &[path]);
            assert!(out.ends_with("\n200"), "{member:?} {path}: {out}");
        }
        let (_, out) = curl_as(Some(member), &d.socket, &define);
        assert!(
            out.ends_with("\n403") && out.contains("only root may change devices"),
            "{member:?}: {out}"
        );
    }
    // A stranger: the socket's mode keeps it out…
    let stranger = (65534, 65534, &[][..]);
    let (rc, out) = curl_as(Some(stranger), &d.socket, &["http://x/v1/devices"]);
    assert_eq!(rc, 7, "connecting must fail: {out}");
    // …and if the mode is loosened, the daemon itself refuses with a sentence.
    std::fs::set_permissions(
        &d.socket,
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .expect("chmod");
    let (_, out) = curl_as(Some(stranger), &d.socket, &["http://x/v1/devices"]);
    assert!(
        out.ends_with("\n403") && out.contains("members of the group 'users'"),
        "{out}"
    );
    let (_, out) = curl_as(Some(stranger), &d.socket, &["http://x/v1/events"]);
    assert!(out.ends_with("\n403"), "{out}");
    // A member's CLI goes through the daemon and sees what root sees.
    let bin = common::sibling_binary("hostdevctl", "hostdevctl");
    let o = Command::new("setpriv")
        .arg("--reuid=65534")
        .arg(format!("--regid={users}"))
        .arg("--clear-groups")
        .arg(&bin)
        .args(["mdev", "list", "--defined"])
        .env("HOSTDEV_ROOT", "/nonexistent")
        .env("HOSTDEV_SOCKET", &d.socket)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("11111111-2222-4333-8444-555555555509"),
        "{}",
        show(&o)
    );
}

#[test]
#[ignore = "needs FUSE (fuse3) for the simulated lab; run by `cargo xtask test`"]
fn sixty_four_clients_at_once_lose_nothing() {
    require_fuse("daemon 64 clients");
    let dir = tempfile::tempdir().expect("tempdir");
    let profile = dir.path().join("wide.toml");
    std::fs::write(
        &profile,
        "description = \"wide\"\n[[parent]]\nname = \"mtty\"\n[[parent.type]]\nid = \"mtty-1\"\nmax = 64\n",
    )
    .expect("write");
    let sim = Sim::start(profile.to_str().expect("utf8"));
    let r = sim.path().to_path_buf();
    let d = Daemon::start(&r, common::Daemon::QUIET);
    let mut bins = Bins::new();
    bins.socket = Some(d.socket.clone());
    let bins = std::sync::Arc::new(bins);
    let threads: Vec<_> = (0..64)
        .map(|i| {
            let (bins, r) = (bins.clone(), r.clone());
            std::thread::spawn(move || {
                let u = format!("11111111-2222-4333-8444-{:012}", i + 1);
                let run = |args: &[&str]| {
                    let o = bins.run(&r, "mdevctl", args, None);
                    assert!(o.status.success(), "client {i} {args:?}: {}", show(&o));
                };
                run(&["define", "-u", &u, "-p", "mtty", "-t", "mtty-1"]);
                run(&["list", "-d"]);
                run(&["start", "-u", &u]);
                run(&["list"]);
                if i % 2 == 0 {
                    run(&["stop", "-u", &u]);
                    run(&["undefine", "-u", &u]);
                }
                run(&["types", "-p", "mtty"]);
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client");
    }
    // Exactly the odd clients' devices: defined and running, nothing half-made.
    let defs = ok(&bins, &r, "mdevctl", &["list", "-d"]);
    let running = ok(&bins, &r, "mdevctl", &["list"]);
    for i in 0..64 {
        let u = format!("11111111-2222-4333-8444-{:012}", i + 1);
        assert_eq!(defs.contains(&u), i % 2 == 1, "definition of client {i}");
        assert_eq!(running.contains(&u), i % 2 == 1, "device of client {i}");
    }
    assert_eq!(mdevs(&r), 32);
}

#[test]
#[ignore = "needs FUSE (fuse3) for the simulated lab; run by `cargo xtask test`"]
fn kill_9_during_a_restore_then_a_restart_converges() {
    require_fuse("daemon kill -9");
    let bins = Bins::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let profile = dir.path().join("slow.toml");
    std::fs::write(
        &profile,
        "description = \"slow\"\n[[parent]]\nname = \"mtty\"\ncreate_latency_ms = 60\n[[parent.type]]\nid = \"mtty-1\"\nmax = 32\n",
    )
    .expect("write");
    let sim = Sim::start(profile.to_str().expect("utf8"));
    let r = sim.path();
    for i in 0..20 {
        let u = format!("11111111-2222-4333-8444-{:012}", i + 1);
        ok(
            &bins,
            r,
            "mdevctl",
            &["define", "-u", &u, "-p", "mtty", "-t", "mtty-1", "--auto"],
        );
    }
    let bin = common::sibling_binary("hostdevd", "hostdevd");
    let cfg = dir.path().join("d.toml");
    std::fs::write(&cfg, RESYNC).expect("config");
    let mut first = Command::new(&bin)
        .arg("--config")
        .arg(&cfg)
        .arg("--socket")
        .arg(r.join("run/hostdevd.sock"))
        .env("HOSTDEV_ROOT", r)
        .spawn()
        .expect("hostdevd");
    eventually(10, "the restore under way", || mdevs(r) >= 3);
    first.kill().expect("kill -9");
    let _ = first.wait();
    let partial = mdevs(r);
    assert!(partial < 20, "killed too late to test anything ({partial})");
    // The stale socket is replaced; the restart restores the rest.
    let d = Daemon::start(r, RESYNC);
    eventually(15, "all 20 restored after the restart", || mdevs(r) == 20);
    let list = ok(&bins, r, "mdevctl", &["list"]);
    assert_eq!(list.matches("(defined)").count(), 20, "{list}");
    drop(d);
}

#[test]
#[ignore = "needs FUSE (fuse3) for the simulated lab; run by `cargo xtask test`"]
fn what_the_daemon_remembers_never_hides_a_change_made_behind_its_back() {
    require_fuse("daemon memo");
    let sim = Sim::start("demo");
    let r = sim.path().to_path_buf();
    let d = Daemon::start(&r, common::Daemon::QUIET);
    let direct = Bins::new();
    let mut through = Bins::new();
    through.socket = Some(d.socket.clone());
    let u = "11111111-2222-4333-8444-555555555501";
    let p = "0000:3b:00.0";
    ok(
        &direct,
        &r,
        "mdevctl",
        &["start", "-u", u, "-p", p, "-t", "nvidia-230"],
    );
    ok(&direct, &r, "mdevctl", &["define", "-u", u]);
    let listed = ok(&through, &r, "mdevctl", &["list", "--dumpjson"]);
    assert!(listed.contains("nvidia-230"), "{listed}");
    // Twice: the second inventory is the kept reply.
    for _ in 0..2 {
        let inv = ok(&through, &r, "hostdevctl", &["list"]);
        assert!(
            inv.contains("nvidia-230") && inv.contains("manual"),
            "{inv}"
        );
    }
    let (_, metrics) = http_get(&d.socket, "/metrics");
    assert!(
        metrics.contains("hostdev_inventory_reused_total 1"),
        "{metrics}"
    );
    // The same UUID removed and created again with another type by hand.
    let dev = r.join(format!("sys/bus/mdev/devices/{u}/remove"));
    std::fs::write(&dev, "1").expect("remove");
    let create = r.join(format!(
        "sys/class/mdev_bus/{p}/mdev_supported_types/nvidia-222/create"
    ));
    std::fs::write(&create, u).expect("create");
    // The definition edited in place (no rename: the directory does not change).
    let def = r.join(format!("etc/mdevctl.d/{p}/{u}"));
    let text = std::fs::read_to_string(&def).expect("definition");
    std::fs::write(&def, text.replace("manual", "auto")).expect("edit");
    for args in [
        &["list", "--dumpjson"][..],
        &["list", "--dumpjson", "--defined"],
        &["list"],
        &["list", "-d"],
    ] {
        assert_eq!(
            ok(&through, &r, "mdevctl", args),
            ok(&direct, &r, "mdevctl", args),
            "mdevctl {args:?} through the daemon"
        );
    }
    let now = ok(&through, &r, "hostdevctl", &["list"]);
    assert_eq!(now, ok(&direct, &r, "hostdevctl", &["list"]));
    assert!(now.contains("nvidia-222") && now.contains("auto"), "{now}");
    // A definition removed by hand is gone at once too.
    std::fs::remove_file(&def).expect("rm");
    let defs = ok(&through, &r, "mdevctl", &["list", "-d"]);
    assert!(!defs.contains(u), "{defs}");
}

#[test]
#[ignore = "needs FUSE (fuse3) for the simulated lab; run by `cargo xtask test`"]
fn the_daemon_reports_host_file_drift_by_default_and_applies_it_when_told() {
    require_fuse("daemon host file");
    let sim = Sim::start("samples");
    let r = sim.path();
    std::fs::create_dir_all(r.join("etc/hostdev")).expect("dir");
    std::fs::write(
        r.join("etc/hostdev/host.toml"),
        "[host]\nid = \"lab\"\n[[mdev]]\nselect = { parents = [\"mtty\"] }\ntype = \"mtty-2\"\ncount = 2\n",
    )
    .expect("host file");
    let quiet = "restore_on_start = false\nuevents = false\nresync_interval_secs = 3600\ngroup = \"root\"\nhost_reconcile_secs = 1\n";
    let metric = |d: &Daemon, state: &str| -> String {
        let (_, m) = http_get(&d.socket, "/metrics");
        m.lines()
            .find(|l| l.starts_with(&format!("hostdev_host_file_pending{{state=\"{state}\"}}")))
            .unwrap_or_default()
            .to_string()
    };
    // Report (the default): the difference is published, nothing is made.
    let d = Daemon::start(r, quiet);
    eventually(10, "two changes pending reported", || {
        metric(&d, "change").ends_with(" 2")
    });
    let events = read_events(&d.socket, 1);
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "host_file" && e["mode"] == "report" && e["changes"] == 2),
        "{events:?}"
    );
    assert_eq!(mdevs(r), 0, "report only");
    drop(d);
    // Apply: the daemon makes the host match the file.
    let d = Daemon::start(r, &format!("{quiet}host_reconcile = \"apply\"\n"));
    eventually(10, "the file's devices made", || mdevs(r) == 2);
    eventually(10, "nothing pending", || {
        metric(&d, "change").ends_with(" 0")
    });
}
