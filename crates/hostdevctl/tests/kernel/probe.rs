//! VFIO probes on the real sample drivers: what the kernel answers when a
//! device is opened as QEMU opens it (DOMAIN.md §4): mtty migrates and has
//! no display, mdpy offers a region display, mbochs a dma-buf one, and a
//! device whose group is held elsewhere is refused as in use.

use super::{err, kernel, ok, remove_all, start_transient as start, type_devices};
use std::path::Path;

fn probe_json(u: &str) -> serde_json::Value {
    serde_json::from_str(&ok("hostdevctl", &["-o", "json", "probe", u])).expect("probe json")
}

/// Opens the device's VFIO group as a VM would; answers its number and
/// the open file (the group is held until it is dropped).
fn hold_group(u: &str) -> (String, std::fs::File) {
    let group = std::fs::read_link(
        Path::new("/sys/bus/mdev/devices")
            .join(u)
            .join("iommu_group"),
    )
    .expect("group link");
    let n = group
        .file_name()
        .and_then(|n| n.to_str())
        .expect("group number")
        .to_string();
    let held = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(Path::new("/dev/vfio").join(&n))
        .expect("hold the group as a VM would");
    (n, held)
}

#[test]
#[ignore = "needs the real-kernel lab; run by `cargo xtask kernel-test`"]
fn probe_reports_display_and_migration_as_the_sample_drivers_implement_them() {
    let _k = kernel("probe");
    remove_all();
    let cases = [
        ("mtty", "mtty-2", "none", true),
        ("mdpy", "mdpy-vga", "region", false),
        ("mbochs", "mbochs-small", "dma-buf", false),
    ];
    for (parent, t, display, migrates) in cases {
        let u = start(parent, t);
        let v = probe_json(&u);
        assert_eq!(v["kind"], "mdev", "{v}");
        assert_eq!(
            (v["parent"].as_str(), v["type"].as_str()),
            (Some(parent), Some(t)),
            "{v}"
        );
        assert_eq!(v["probe"]["device_api"], "vfio-pci", "{v}");
        assert_eq!(v["probe"]["display"], display, "{parent}: {v}");
        if migrates {
            assert_eq!(v["probe"]["migration"]["stop_copy"], true, "{v}");
        } else {
            assert!(v["probe"]["migration"].is_null(), "{parent}: {v}");
        }
        // PCI config space (region 7) is there for every vfio-pci device.
        let regions = v["probe"]["regions"].as_array().expect("regions");
        assert!(
            regions
                .iter()
                .any(|r| r["index"] == 7 && r["size"].as_u64() > Some(0)),
            "{v}"
        );
        let table = ok("hostdevctl", &["probe", &u]);
        assert!(table.contains(&format!("display    {display}")), "{table}");
        ok("mdevctl", &["stop", "-u", &u]);
    }
    remove_all();
}

#[test]
#[ignore = "needs the real-kernel lab; run by `cargo xtask kernel-test`"]
fn a_device_whose_group_is_held_is_reported_in_use_and_the_probe_closes_what_it_opened() {
    let _k = kernel("probe busy");
    remove_all();
    let u = start("mtty", "mtty-1");
    // The probe closes its fds: a second probe (and a VM after it) can open
    // the group again.
    probe_json(&u);
    probe_json(&u);
    let (n, held) = hold_group(&u);
    // Without a cached answer for the type, the refusal is the answer.
    let _ = std::fs::remove_file("/var/lib/hostdev/probe-cache.json");
    let e = err("hostdevctl", &["-o", "json", "probe", &u]);
    assert!(
        e.contains(&format!("{u} is in use: VFIO group {n} is held")),
        "{e}"
    );
    drop(held);
    probe_json(&u);
    let e = err("hostdevctl", &["probe", "not-a-device"]);
    assert!(
        e.contains("is neither an mdev UUID nor a PCI address"),
        "{e}"
    );
    ok("mdevctl", &["stop", "-u", &u]);
    remove_all();
}

#[test]
#[ignore = "needs the real-kernel lab; run by `cargo xtask kernel-test`"]
fn a_type_probe_leaves_no_device_even_when_killed() {
    let _k = kernel("type probe");
    remove_all();
    let v: serde_json::Value = serde_json::from_str(&ok(
        "hostdevctl",
        &[
            "-o", "json", "probe", "--parent", "mdpy", "--type", "mdpy-xga",
        ],
    ))
    .expect("json");
    assert_eq!(v["probe"]["display"], "region", "{v}");
    assert_eq!(
        type_devices("mdpy", "mdpy-xga"),
        0,
        "the probe's device is gone"
    );
    // Killed at instants through its life: the next type probe removes what
    // was left, and itself leaves nothing.
    for delay_ms in [2u64, 5, 10, 20, 30, 45, 60, 90] {
        let mut c = std::process::Command::new(super::bin_dir().join("hostdevctl"))
            .args(["probe", "--parent", "mtty", "--type", "mtty-1"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = c.kill();
        let _ = c.wait();
    }
    // Four at once: each probes its own device; none removes another's.
    let four: Vec<_> = (0..4)
        .map(|_| {
            std::process::Command::new(super::bin_dir().join("hostdevctl"))
                .args(["probe", "--parent", "mtty", "--type", "mtty-2"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for c in four {
        let o = c.wait_with_output().expect("wait");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(
        type_devices("mtty", "mtty-1"),
        0,
        "what the killed probes made is gone"
    );
    assert_eq!(type_devices("mtty", "mtty-2"), 0);
    let markers = std::fs::read_dir("/run/hostdev/probes")
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(markers, 0, "no marker is left");
}

#[test]
#[ignore = "needs the real-kernel lab; run by `cargo xtask kernel-test`"]
fn a_busy_device_gets_the_cached_answer_until_its_module_reads_differently() {
    let _k = kernel("probe cache");
    remove_all();
    let u = start("mtty", "mtty-2");
    let fresh = probe_json(&u);
    assert!(fresh["cached"].is_null(), "{fresh}");
    let (_, held) = hold_group(&u);
    let cached = probe_json(&u);
    assert_eq!(cached["probe"], fresh["probe"], "{cached}");
    assert!(cached["cached"]["age_secs"].is_u64(), "{cached}");
    assert!(
        cached["cached"]["why"]
            .as_str()
            .unwrap_or("")
            .contains("is in use"),
        "{cached}"
    );
    let table = ok("hostdevctl", &["probe", &u]);
    assert!(table.contains("source     the cache,"), "{table}");
    // What the key reads changes (as a reloaded module of another version
    // would show): the cached answer no longer holds.
    let id = &fresh["identity"];
    let file = match (id["srcversion"].as_str(), id["version"].as_str()) {
        (Some(_), _) => format!(
            "/sys/module/{}/srcversion",
            id["module"].as_str().expect("module")
        ),
        (None, Some(_)) => format!(
            "/sys/module/{}/version",
            id["module"].as_str().expect("module")
        ),
        (None, None) => "/proc/sys/kernel/osrelease".to_string(),
    };
    std::fs::write("/tmp/hostdev-other-version", "another-build\n").expect("other");
    let m = std::process::Command::new("mount")
        .args(["--bind", "/tmp/hostdev-other-version", &file])
        .status()
        .expect("mount");
    assert!(m.success(), "bind-mount over {file}");
    let e = err("hostdevctl", &["probe", &u]);
    let _ = std::process::Command::new("umount").arg(&file).status();
    assert!(e.contains("is in use"), "no stale answer: {e}");
    drop(held);
    ok("mdevctl", &["stop", "-u", &u]);
    remove_all();
}
