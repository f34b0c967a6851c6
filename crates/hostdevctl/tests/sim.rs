//! End-to-end tests on the simulated lab: the real `hostdevctl` (and Debian's
//! mdevctl, in a private mount namespace) against a FUSE-mounted `hostdev-sim`.
//! Needs /dev/fuse and fusermount3 (`apt-get install fuse3`): every test is
//! `#[ignore]`d with its reason and run by `cargo xtask test` where it can.
#![allow(clippy::expect_used)] // tests: a failed expectation is the report

mod common;

use common::{ok, require_fuse, require_peer, show, Bins, Sim};
use std::time::Duration;

#[test]
#[ignore = "needs FUSE (fuse3) for the simulated lab; run by `cargo xtask test`"]
fn vendor_rules_move_available_instances() {
    require_fuse("vendor_rules");
    let bins = Bins::new();
    let sim = Sim::start("demo");
    let r = sim.path();
    // NVIDIA-like: one type at a time per parent.
    let u = ok(
        &bins,
        r,
        "mdevctl",
        &["start", "-p", "0000:3b:00.0", "-t", "nvidia-230"],
    );
    assert_eq!(
        (
            sim.avail("0000:3b:00.0", "nvidia-230"),
            sim.avail("0000:3b:00.0", "nvidia-222")
        ),
        (1, 0)
    );
    let o = bins.run(
        r,
        "mdevctl",
        &["start", "-p", "0000:3b:00.0", "-t", "nvidia-222"],
        None,
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no available instances of nvidia-222"),
        "{}",
        show(&o)
    );
    ok(&bins, r, "mdevctl", &["stop", "-u", u.trim()]);
    assert_eq!(sim.avail("0000:3b:00.0", "nvidia-222"), 16);
    // GVT-g-like: one budget shared across types.
    ok(
        &bins,
        r,
        "mdevctl",
        &["start", "-p", "0000:00:02.0", "-t", "i915-GVTg_V5_4"],
    );
    assert_eq!(
        (
            sim.avail("0000:00:02.0", "i915-GVTg_V5_4"),
            sim.avail("0000:00:02.0", "i915-GVTg_V5_8")
        ),
        (1, 2)
    );
}

#[test]
#[ignore = "needs FUSE (fuse3), Debian's mdevctl and a private mount namespace (root); run by `cargo xtask test`"]
fn debians_mdevctl_and_hostdev_agree_on_the_simulated_host() {
    require_fuse("differential");
    require_peer("differential");
    let bins = Bins::new();
    let (a, b) = (Sim::start("demo"), Sim::start("demo"));
    let steps: [&[&str]; 13] = [
        &["types"],
        &[
            "start",
            "-u",
            "11111111-2222-4333-8444-555555555501",
            "-p",
            "mtty",
            "-t",
            "mtty-2",
        ],
        &[
            "start",
            "-u",
            "11111111-2222-4333-8444-555555555502",
            "-p",
            "0000:00:02.0",
            "-t",
            "i915-GVTg_V5_4",
        ],
        &[
            "start",
            "-u",
            "11111111-2222-4333-8444-555555555503",
            "-p",
            "0000:00:02.0",
            "-t",
            "i915-GVTg_V5_4",
        ],
        &["list"],
        &["types", "--dumpjson"],
        &[
            "define",
            "-u",
            "11111111-2222-4333-8444-555555555501",
            "--auto",
        ],
        &["list", "-d", "-v"],
        &["stop", "-u", "11111111-2222-4333-8444-555555555502"],
        &["types", "-p", "0000:00:02.0"],
        &[
            "start",
            "-u",
            "11111111-2222-4333-8444-555555555504",
            "-p",
            "0000:3b:00.0",
            "-t",
            "nvidia-230",
        ],
        &["types", "-p", "0000:3b:00.0", "--dumpjson"],
        &[
            "start",
            "-u",
            "11111111-2222-4333-8444-555555555505",
            "-p",
            "0000:3b:00.0",
            "-t",
            "nvidia-222",
        ],
    ];
    for step in steps {
        let mut argv = vec!["/usr/bin/mdevctl"];
        argv.extend(step);
        let peer = hostdev_testkit::run_in_tree(a.path(), &argv, None).expect("peer");
        let ours = bins.run(b.path(), "mdevctl", step, None);
        assert_eq!(
            peer.status.code(),
            ours.status.code(),
            "exit status of {step:?}: peer {}",
            String::from_utf8_lossy(&peer.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&peer.stdout),
            String::from_utf8_lossy(&ours.stdout),
            "output of {step:?}"
        );
    }
    ok(&bins, b.path(), "mdevctl", &["list"]);
}

#[test]
#[ignore = "needs FUSE (fuse3) for the simulated lab; run by `cargo xtask test`"]
fn a_failing_attribute_write_is_rolled_back() {
    require_fuse("fault");
    let bins = Bins::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let profile = dir.path().join("fault.toml");
    std::fs::write(
        &profile,
        "description = \"fault\"\n[[parent]]\nname = \"mtty\"\n[[parent.type]]\nid = \"mtty-1\"\nmax = 4\nattrs = [\"a\", \"b\"]\n\
         [[fault]]\nop = \"attr\"\nname = \"b\"\nerrno = \"EIO\"\n",
    )
    .expect("write");
    let sim = Sim::start(profile.to_str().expect("utf8"));
    let json = dir.path().join("d.json");
    std::fs::write(
        &json,
        r#"{"mdev_type":"mtty-1","start":"manual","attrs":[{"a":"1"},{"b":"2"}]}"#,
    )
    .expect("write");
    let o = bins.run(
        sim.path(),
        "mdevctl",
        &[
            "start",
            "-p",
            "mtty",
            "--jsonfile",
            json.to_str().expect("utf8"),
        ],
        None,
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("attribute 'b'") && err.contains("removed again"),
        "{err}"
    );
    assert_eq!(sim.avail("mtty", "mtty-1"), 4, "the device was left behind");
    assert_eq!(
        std::fs::read_dir(sim.path().join("sys/bus/mdev/devices"))
            .expect("dir")
            .count(),
        0
    );
}

#[test]
#[ignore = "needs FUSE (fuse3) for the simulated lab; run by `cargo xtask test`"]
fn reboot_then_autostart_restores_and_a_late_parent_is_waited_for() {
    require_fuse("reboot");
    let bins = Bins::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let profile = dir.path().join("late.toml");
    std::fs::write(
        &profile,
        "description = \"late\"\n[[parent]]\nname = \"mtty\"\n[[parent.type]]\nid = \"mtty-1\"\nmax = 8\n\
         [[parent]]\nname = \"0000:3b:00.0\"\nappear_after_ms = 1500\ncreate_latency_ms = 5\n[[parent.type]]\nid = \"nvidia-230\"\nmax = 4\n",
    )
    .expect("write");
    let sim = Sim::start(profile.to_str().expect("utf8"));
    let r = sim.path();
    for i in 1..=3 {
        ok(
            &bins,
            r,
            "mdevctl",
            &[
                "define",
                "-u",
                &format!("11111111-2222-4333-8444-55555555550{i}"),
                "-p",
                "mtty",
                "-t",
                "mtty-1",
                "--auto",
            ],
        );
    }
    for i in 4..=5 {
        ok(
            &bins,
            r,
            "mdevctl",
            &[
                "define",
                "-u",
                &format!("11111111-2222-4333-8444-55555555550{i}"),
                "-p",
                "0000:3b:00.0",
                "-t",
                "nvidia-230",
                "--auto",
            ],
        );
    }
    // Before the late parent appears: the others start, it is reported absent.
    let out = ok(&bins, r, "hostdevctl", &["autostart", "-o", "json"]);
    assert_eq!(out.matches("\"started\"").count(), 3, "{out}");
    assert_eq!(out.matches("\"parent absent\"").count(), 2, "{out}");
    // A reboot wipes them; autostart --wait restores all, the late parent once it appears.
    sim.reboot();
    assert_eq!(
        std::fs::read_dir(r.join("sys/bus/mdev/devices"))
            .expect("dir")
            .count(),
        0
    );
    let out = ok(
        &bins,
        r,
        "hostdevctl",
        &["autostart", "--wait", "10", "-o", "json"],
    );
    assert_eq!(out.matches("\"started\"").count(), 5, "{out}");
    assert_eq!(
        std::fs::read_dir(r.join("sys/bus/mdev/devices"))
            .expect("dir")
            .count(),
        5
    );
    // Idempotent.
    let out = ok(&bins, r, "hostdevctl", &["autostart", "-o", "json"]);
    assert_eq!(out.matches("\"already running\"").count(), 5, "{out}");
}

#[test]
#[ignore = "needs FUSE (fuse3) for the simulated lab; run by `cargo xtask test`"]
fn vfio_ap_assignments_are_written_in_order_and_validated() {
    require_fuse("vfio-ap");
    let bins = Bins::new();
    let sim = Sim::start("vfio-ap");
    let r = sim.path();
    let u = "11111111-2222-4333-8444-555555555501";
    ok(
        &bins,
        r,
        "mdevctl",
        &[
            "define",
            "-u",
            u,
            "-p",
            "matrix",
            "-t",
            "vfio_ap-passthrough",
        ],
    );
    ok(
        &bins,
        r,
        "mdevctl",
        &["modify", "-u", u, "--addattr=assign_adapter", "--value=5"],
    );
    ok(
        &bins,
        r,
        "mdevctl",
        &["modify", "-u", u, "--addattr=assign_domain", "--value=0x47"],
    );
    ok(&bins, r, "mdevctl", &["start", "-u", u]);
    assert_eq!(sim.read(&format!("bus/mdev/devices/{u}/matrix")), "05.0047");
    ok(&bins, r, "mdevctl", &["stop", "-u", u]);
    ok(
        &bins,
        r,
        "mdevctl",
        &[
            "modify",
            "-u",
            u,
            "--addattr=assign_domain",
            "--value=banana",
        ],
    );
    let o = bins.run(r, "mdevctl", &["start", "-u", u], None);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("EINVAL"),
        "{}",
        show(&o)
    );
    assert!(!r.join("sys/bus/mdev/devices").join(u).exists());
}

#[test]
#[ignore = "needs FUSE (fuse3) for the simulated lab; run by `cargo xtask test`"]
fn sriov_vgpus_are_restored_after_a_reboot_including_a_late_pf() {
    require_fuse("sriov");
    let bins = Bins::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let profile = dir.path().join("sriov.toml");
    // The built-in nvidia-sriov profile, with the second card's driver loading late.
    let builtin = include_str!("../../hostdev-sim/profiles/nvidia-sriov.toml");
    std::fs::write(
        &profile,
        builtin.replace("appear_after_ms = 0", "appear_after_ms = 1500"),
    )
    .expect("write");
    let sim = Sim::start(profile.to_str().expect("utf8"));
    let r = sim.path();
    std::thread::sleep(Duration::from_millis(1600));
    let (a, b) = ("0000:41:00.0", "0000:c1:00.0");
    ok(
        &bins,
        r,
        "hostdevctl",
        &["vgpu", "enable", "--pf", a, "--numvfs", "4", "--auto"],
    );
    ok(
        &bins,
        r,
        "hostdevctl",
        &["vgpu", "enable", "--pf", b, "--numvfs", "4", "--auto"],
    );
    let vfs_a = [
        "0000:41:00.4",
        "0000:41:00.5",
        "0000:41:00.6",
        "0000:41:00.7",
    ];
    let vfs_b = [
        "0000:c1:00.4",
        "0000:c1:00.5",
        "0000:c1:00.6",
        "0000:c1:00.7",
    ];
    sim.wait_vfs_ready(&vfs_a);
    sim.wait_vfs_ready(&vfs_b);
    // An id of one card is refused on the other: 1151 exists only on the L40S.
    let o = bins.run(
        r,
        "hostdevctl",
        &["vgpu", "define", "--vf", vfs_b[0], "--type", "1151"],
        None,
    );
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("card-local"),
        "{}",
        show(&o)
    );
    // 8 VFs across 2 PFs, mixed types, by id and by name.
    let types_a = ["1150", "1151", "NVIDIA L40S-4Q", "1152"];
    let types_b = ["1428", "NVIDIA H100-20C", "1428", "nvidia h100-10c"];
    for (vf, t) in vfs_a.iter().zip(types_a).chain(vfs_b.iter().zip(types_b)) {
        ok(
            &bins,
            r,
            "hostdevctl",
            &["vgpu", "define", "--vf", vf, "--type", t, "--auto"],
        );
    }
    let expect: Vec<(&str, &str)> = vec![
        (vfs_a[0], "1150"),
        (vfs_a[1], "1151"),
        (vfs_a[2], "1150"),
        (vfs_a[3], "1152"),
        (vfs_b[0], "1428"),
        (vfs_b[1], "1429"),
        (vfs_b[2], "1428"),
        (vfs_b[3], "1428"),
    ];
    let out = ok(&bins, r, "hostdevctl", &["autostart", "-o", "json"]);
    assert_eq!(out.matches("\"started\"").count(), 8, "{out}");
    for (vf, t) in &expect {
        assert_eq!(
            sim.read(&format!("bus/pci/devices/{vf}/nvidia/current_vgpu_type")),
            *t,
            "{vf}"
        );
    }
    let list = ok(&bins, r, "hostdevctl", &["list", "-o", "json"]);
    assert_eq!(list.matches("\"kind\": \"vgpu\"").count(), 8, "{list}");
    // A reboot: VFs disabled, types gone, the second card late again.
    sim.reboot();
    assert_eq!(sim.read(&format!("bus/pci/devices/{a}/sriov_numvfs")), "0");
    let out = ok(
        &bins,
        r,
        "hostdevctl",
        &["autostart", "--wait", "20", "-o", "json"],
    );
    assert_eq!(out.matches("\"started\"").count(), 8, "{out}");
    for (vf, t) in &expect {
        assert_eq!(
            sim.read(&format!("bus/pci/devices/{vf}/nvidia/current_vgpu_type")),
            *t,
            "{vf} after reboot"
        );
    }
    // stop clears; the libvirt element names the VF.
    ok(&bins, r, "hostdevctl", &["vgpu", "stop", "--vf", vfs_a[0]]);
    assert_eq!(
        sim.read(&format!(
            "bus/pci/devices/{}/nvidia/current_vgpu_type",
            vfs_a[0]
        )),
        "0"
    );
    // A VF without a type is not handed out: the VM would see no vGPU.
    let o = bins.run(
        r,
        "hostdevctl",
        &["vgpu", "libvirt", "--vf", vfs_a[0]],
        None,
    );
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("carries no vGPU type"),
        "{}",
        show(&o)
    );
    let o = bins.run(
        r,
        "hostdevctl",
        &["vgpu", "libvirt", "--vf", "0000:41:07.7"],
        None,
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("does not exist"),
        "{}",
        show(&o)
    );
    ok(&bins, r, "hostdevctl", &["vgpu", "start", "--vf", vfs_a[0]]);
    let xml = ok(
        &bins,
        r,
        "hostdevctl",
        &["vgpu", "libvirt", "--vf", vfs_a[0]],
    );
    assert!(
        xml.contains(r#"<address domain="0x0000" bus="0x41" slot="0x00" function="0x4"/>"#),
        "{xml}"
    );
}

#[test]
#[ignore = "needs FUSE (fuse3) for the simulated lab; run by `cargo xtask test`"]
fn clearing_a_vgpu_in_use_is_reported_as_in_use() {
    require_fuse("vgpu-busy");
    let bins = Bins::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let profile = dir.path().join("busy.toml");
    let builtin = include_str!("../../hostdev-sim/profiles/nvidia-sriov.toml");
    std::fs::write(&profile, format!("{builtin}\n[[fault]]\nop = \"vgpu-clear\"\nname = \"0000:41:00.4\"\nerrno = \"EBUSY\"\n")).expect("write");
    let sim = Sim::start(profile.to_str().expect("utf8"));
    let r = sim.path();
    ok(
        &bins,
        r,
        "hostdevctl",
        &["vgpu", "enable", "--pf", "0000:41:00.0", "--numvfs", "1"],
    );
    sim.wait_vfs_ready(&["0000:41:00.4"]);
    ok(
        &bins,
        r,
        "hostdevctl",
        &["vgpu", "define", "--vf", "0000:41:00.4", "--type", "1150"],
    );
    ok(
        &bins,
        r,
        "hostdevctl",
        &["vgpu", "start", "--vf", "0000:41:00.4"],
    );
    let o = bins.run(
        r,
        "hostdevctl",
        &["vgpu", "stop", "--vf", "0000:41:00.4"],
        None,
    );
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("in use (a VM holds it)"),
        "{e}"
    );
    assert_eq!(
        sim.read("bus/pci/devices/0000:41:00.4/nvidia/current_vgpu_type"),
        "1150"
    );
}

/// Before: two restores at once (the udev rule and the boot unit) each
/// reported the devices the other created first as failed (EEXIST), although
/// every device ended up running as defined.
#[test]
#[ignore = "needs FUSE (fuse3) for the simulated lab; run by `cargo xtask test`"]
fn two_autostarts_at_once_report_no_device_as_failed() {
    require_fuse("two-autostarts");
    let sim = Sim::start("demo");
    let bins = Bins::new();
    let r = sim.path();
    for _ in 0..6 {
        ok(
            &bins,
            r,
            "hostdevctl",
            &[
                "mdev",
                "define",
                "-p",
                "0000:3b:00.0",
                "-t",
                "nvidia-222",
                "--auto",
            ],
        );
    }
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| bins.run(r, "hostdevctl", &["autostart", "-o", "json"], None));
        let b = s.spawn(|| bins.run(r, "hostdevctl", &["autostart", "-o", "json"], None));
        (a.join().expect("a"), b.join().expect("b"))
    });
    let mut started = 0;
    for o in [&a, &b] {
        assert!(o.status.success(), "{}", show(o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        for row in v.as_array().expect("rows") {
            let result = row["result"].as_str().expect("result");
            assert!(result == "started" || result == "already running", "{row}");
            started += usize::from(result == "started");
        }
    }
    assert_eq!(started, 6, "each device was created exactly once");
    let listed = ok(&bins, r, "hostdevctl", &["mdev", "list", "-o", "json"]);
    assert_eq!(listed.matches("\"kind\": \"mdev\"").count(), 6);
}
