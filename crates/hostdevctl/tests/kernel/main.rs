//! Real-kernel tests: run inside the lab guest by `cargo xtask kernel-test`
//! (Debian 6.12 kernel with vfio-mdev and the mtty/mdpy/mbochs samples, vDPA
//! simulators, and QEMU's igb SR-IOV NIC behind an emulated IOMMU). Each
//! test asserts on the kernel's own state (sysfs, /dev/vfio), not only on
//! hostdev's output. Each is `#[ignore]`d with the reason, so a plain
//! `cargo test` lists them as ignored; the lab runs them with `--ignored`, and
//! there a missing kernel facility fails the test.
#![allow(clippy::expect_used)] // tests: a failed expectation is the report

#[path = "../common/mod.rs"]
mod common;
mod conformance;
mod dra;
mod host;
mod libvirt;
mod migrate;
mod package;
mod pools;
mod probe;
mod sriov;
mod transcript;

use common::{eventually, http_get, read_events};
use hostdev_core::kernel::{MdevSysfs, RealSysfs};
use hostdev_model::{ParentName, TypeId, Uuid};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};

/// Tests share one kernel: run them one at a time even if threads are allowed.
static KERNEL: Mutex<()> = Mutex::new(());

/// A paused QEMU 10 (q35, TCG, 64 MiB, no defaults, no display, `-S`: its
/// firmware never runs) with one `-device`, from the lab's QEMU
/// (`LAB_QEMU10`, its data directories in `LAB_QEMU10_DATA`); the caller
/// adds what else it needs and spawns it.
fn paused_qemu10(device: &str) -> Command {
    let bin = std::env::var("LAB_QEMU10").expect(
        "LAB_QEMU10 is not set: run it in the lab (`cargo xtask kernel-test`), which fetches QEMU 10",
    );
    let data = std::env::var("LAB_QEMU10_DATA").unwrap_or_default();
    let mut c = Command::new(bin);
    for d in data.split(':').filter(|d| !d.is_empty()) {
        c.args(["-L", d]);
    }
    c.args([
        "-machine",
        "q35",
        "-accel",
        "tcg",
        "-m",
        "64",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-S",
        "-device",
        device,
    ]);
    c
}

fn kernel(test: &str) -> MutexGuard<'static, ()> {
    assert!(
        Path::new("/sys/class/mdev_bus/mtty").exists(),
        "{test}: the sample mdev drivers are not loaded: run it in the lab (`cargo xtask kernel-test`)"
    );
    let guard = KERNEL.lock().unwrap_or_else(|p| p.into_inner());
    sweep_vdpa(test);
    guard
}

/// A test that failed half-way leaves its vDPA devices and definitions
/// behind; the next test starts without them and says what it removed, so
/// one failure is reported once and not again by every vDPA test after it.
/// Best effort: a test that unloaded the simulators leaves nothing to list.
fn sweep_vdpa(test: &str) {
    let left: Vec<String> = Command::new("vdpa")
        .args(["dev", "show", "-j"])
        .output()
        .ok()
        .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
        .and_then(|v| v["dev"].as_object().map(|m| m.keys().cloned().collect()))
        .unwrap_or_default();
    for n in &left {
        let _ = Command::new("vdpa").args(["dev", "del", n]).status();
    }
    let mut defs = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/etc/hostdev/vdpa.d") {
        for e in rd.flatten() {
            defs.push(e.file_name().to_string_lossy().into_owned());
            let _ = std::fs::remove_file(e.path());
        }
    }
    if !left.is_empty() || !defs.is_empty() {
        eprintln!(
            "{test}: removed what an earlier test left behind: vDPA devices {left:?}, definitions {defs:?}"
        );
    }
}

fn bin_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hostdev-kernel-bin-{}", std::process::id()));
    if !dir.exists() {
        std::fs::create_dir_all(&dir).expect("bin dir");
        for n in ["mdevctl", "hostdevctl"] {
            symlink(env!("CARGO_BIN_EXE_hostdevctl"), dir.join(n)).expect("symlink");
        }
    }
    dir
}

fn run(name: &str, args: &[&str]) -> Output {
    Command::new(bin_dir().join(name))
        .args(args)
        .env_remove("HOSTDEV_ROOT")
        .env_remove("MDEVCTL_ENV_ROOT")
        .output()
        .expect("run hostdevctl")
}

fn ok(name: &str, args: &[&str]) -> String {
    let o = run(name, args);
    assert!(
        o.status.success(),
        "{name} {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(name: &str, args: &[&str]) -> String {
    let o = run(name, args);
    assert!(
        !o.status.success(),
        "{name} {args:?} succeeded but should not"
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn dev(u: &str) -> PathBuf {
    Path::new("/sys/bus/mdev/devices").join(u)
}

fn read(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(p.as_ref())
        .unwrap_or_else(|e| panic!("read {}: {e}", p.as_ref().display()))
        .trim()
        .to_string()
}

fn avail(parent: &str, t: &str) -> i64 {
    read(format!(
        "/sys/class/mdev_bus/{parent}/mdev_supported_types/{t}/available_instances"
    ))
    .parse()
    .expect("number")
}

fn type_devices(parent: &str, t: &str) -> usize {
    std::fs::read_dir(format!(
        "/sys/class/mdev_bus/{parent}/mdev_supported_types/{t}/devices"
    ))
    .map(|d| d.count())
    .unwrap_or(0)
}

/// Removes every mdev behind hostdev's back, as a reboot would.
fn remove_all() {
    if let Ok(rd) = std::fs::read_dir("/sys/bus/mdev/devices") {
        for e in rd.flatten() {
            let _ = std::fs::write(e.path().join("remove"), "1");
        }
    }
}

/// Starts a transient device of the type and waits until it is ready.
fn start_transient(parent: &str, t: &str) -> String {
    let u = ok("mdevctl", &["start", "-p", parent, "-t", t])
        .trim()
        .to_string();
    assert_ready(&u, parent, t);
    u
}

fn assert_ready(u: &str, parent: &str, t: &str) {
    let d = dev(u);
    assert!(d.exists(), "{u} is not in sysfs");
    let target = std::fs::canonicalize(&d).expect("canonicalize");
    assert_eq!(
        target
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str()),
        Some(parent)
    );
    let ty = std::fs::read_link(d.join("mdev_type")).expect("mdev_type");
    assert_eq!(ty.file_name().and_then(|n| n.to_str()), Some(t));
    let group = std::fs::read_link(d.join("iommu_group"))
        .expect("iommu_group link exists when start returns");
    let n = group
        .file_name()
        .and_then(|n| n.to_str())
        .expect("group number")
        .to_string();
    assert!(
        Path::new("/dev/vfio").join(&n).exists(),
        "/dev/vfio/{n} exists when start returns"
    );
    assert!(
        std::fs::read_link(d.join("driver")).is_ok(),
        "a driver is bound when start returns"
    );
}

#[test]
#[ignore = "needs the real-kernel lab; run by `cargo xtask kernel-test`"]
fn inventory_matches_sysfs_and_debians_mdevctl() {
    let _k = kernel("inventory");
    let v: serde_json::Value =
        serde_json::from_str(&ok("hostdevctl", &["mdev", "types", "-o", "json"])).expect("json");
    let rows = v.as_array().expect("array");
    for (p, t) in [
        ("mtty", "mtty-1"),
        ("mtty", "mtty-2"),
        ("mdpy", "mdpy-hd"),
        ("mdpy", "mdpy-vga"),
        ("mdpy", "mdpy-xga"),
        ("mbochs", "mbochs-small"),
        ("mbochs", "mbochs-medium"),
        ("mbochs", "mbochs-large"),
    ] {
        let row = rows
            .iter()
            .find(|r| r["parent"] == p && r["type"]["id"] == t)
            .unwrap_or_else(|| panic!("{p}/{t} missing from {v}"));
        let dir = format!("/sys/class/mdev_bus/{p}/mdev_supported_types/{t}");
        assert_eq!(row["available_instances"].as_i64(), Some(avail(p, t)));
        assert_eq!(
            row["device_api"].as_str(),
            Some(read(format!("{dir}/device_api")).as_str())
        );
        assert_eq!(
            row["type"]["name"].as_str(),
            Some(read(format!("{dir}/name")).as_str())
        );
    }
    if Path::new("/usr/bin/mdevctl").exists() {
        for args in [
            &["types"][..],
            &["types", "--dumpjson"],
            &["list"],
            &["list", "-d", "--dumpjson"],
        ] {
            let peer = Command::new("/usr/bin/mdevctl")
                .args(args)
                .output()
                .expect("peer");
            let ours = run("mdevctl", args);
            assert_eq!(
                String::from_utf8_lossy(&peer.stdout),
                String::from_utf8_lossy(&ours.stdout),
                "mdevctl {args:?} differs on the real kernel"
            );
        }
    }
}

#[test]
#[ignore = "needs the real-kernel lab; run by `cargo xtask kernel-test`"]
fn define_start_list_stop_undefine_on_every_sample_driver() {
    let _k = kernel("lifecycle");
    for (i, (p, t)) in [
        ("mtty", "mtty-1"),
        ("mdpy", "mdpy-vga"),
        ("mbochs", "mbochs-small"),
    ]
    .iter()
    .enumerate()
    {
        let u = format!("6e0d5a1c-0000-4000-8000-00000000010{i}");
        let before = avail(p, t);
        ok("mdevctl", &["define", "-u", &u, "-p", p, "-t", t]);
        assert!(Path::new("/etc/mdevctl.d").join(p).join(&u).is_file());
        ok("mdevctl", &["start", "-u", &u]);
        assert_ready(&u, p, t);
        assert_eq!(avail(p, t), before - 1);
        let list = ok("mdevctl", &["list"]);
        assert!(
            list.contains(&format!("{u} {p} {t} manual (defined)")),
            "{list}"
        );
        ok("mdevctl", &["stop", "-u", &u]);
        assert!(!dev(&u).exists(), "{u} still in sysfs after stop");
        assert_eq!(avail(p, t), before);
        ok("mdevctl", &["undefine", "-u", &u]);
        assert!(!Path::new("/etc/mdevctl.d").join(p).join(&u).exists());
    }
}

#[test]
#[ignore = "needs the real-kernel lab; run by `cargo xtask kernel-test`"]
fn transient_start_prints_the_uuid_it_created() {
    let _k = kernel("transient");
    let out = ok("mdevctl", &["start", "-p", "mtty", "-t", "mtty-2"]);
    let u = out.trim();
    u.parse::<Uuid>().expect("a UUID is printed");
    assert_ready(u, "mtty", "mtty-2");
    let list = ok("mdevctl", &["list", "-u", u]);
    assert_eq!(list, format!("{u} mtty mtty-2 manual\n\n"));
    ok("mdevctl", &["stop", "-u", u]);
    assert!(!dev(u).exists());
}

#[test]
#[ignore = "needs the real-kernel lab; run by `cargo xtask kernel-test`"]
fn start_parent_mdevs_restores_auto_definitions_after_their_devices_vanish() {
    let _k = kernel("start-parent-mdevs");
    remove_all();
    let auto: Vec<String> = (0..3)
        .map(|i| format!("6e0d5a1c-0000-4000-8000-00000000020{i}"))
        .collect();
    let manual = "6e0d5a1c-0000-4000-8000-000000000209";
    for u in &auto {
        ok(
            "mdevctl",
            &["define", "-u", u, "-p", "mtty", "-t", "mtty-1", "--auto"],
        );
    }
    ok(
        "mdevctl",
        &["define", "-u", manual, "-p", "mtty", "-t", "mtty-1"],
    );
    // A malformed sibling must not stop the others.
    std::fs::write(
        "/etc/mdevctl.d/mtty/6e0d5a1c-0000-4000-8000-0000000002ff",
        "{torn",
    )
    .expect("write");
    // Exactly what the installed udev rule runs when mtty registers.
    let rule = ok("hostdevctl", &["udev-rule"]);
    assert!(rule.contains("mdev start-parent-mdevs %k"), "{rule}");
    let o = run("hostdevctl", &["mdev", "start-parent-mdevs", "mtty"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for u in &auto {
        assert_ready(u, "mtty", "mtty-1");
    }
    assert!(!dev(manual).exists());
    // Gone behind hostdev's back (as at a reboot): the same command brings them back.
    remove_all();
    assert!(!dev(&auto[0]).exists());
    ok("hostdevctl", &["mdev", "start-parent-mdevs", "mtty"]);
    for u in &auto {
        assert_ready(u, "mtty", "mtty-1");
    }
    // Idempotent: running devices are left alone.
    ok("hostdevctl", &["mdev", "start-parent-mdevs", "mtty"]);
    remove_all();
    for u in auto
        .iter()
        .map(String::as_str)
        .chain([manual, "6e0d5a1c-0000-4000-8000-0000000002ff"])
    {
        let _ = std::fs::remove_file(format!("/etc/mdevctl.d/mtty/{u}"));
    }
}

#[test]
#[ignore = "needs the real-kernel lab; run by `cargo xtask kernel-test`"]
fn capacity_exhaustion_is_clear_and_leaves_nothing_behind() {
    let _k = kernel("capacity");
    remove_all();
    let n = avail("mdpy", "mdpy-hd");
    assert_eq!(n, 4);
    let mut started = Vec::new();
    for _ in 0..n {
        started.push(
            ok("mdevctl", &["start", "-p", "mdpy", "-t", "mdpy-hd"])
                .trim()
                .to_string(),
        );
    }
    let e = err("mdevctl", &["start", "-p", "mdpy", "-t", "mdpy-hd"]);
    assert!(
        e.contains("no available instances of mdpy-hd on mdpy"),
        "{e}"
    );
    assert_eq!(
        type_devices("mdpy", "mdpy-hd"),
        4,
        "the failed start left a device behind"
    );
    // The kernel's own refusal, past hostdev's check, is explained with its errno.
    let s = RealSysfs::new(Path::new("/"));
    let k = s
        .create(
            &ParentName::new("mdpy").expect("p"),
            &TypeId::new("mdpy-hd").expect("t"),
            &Uuid::new_v4(),
        )
        .expect_err("the kernel refuses a fifth");
    assert!(k.to_string().contains("EUSERS"), "{k}");
    for u in &started {
        ok("mdevctl", &["stop", "-u", u]);
    }
    assert_eq!(avail("mdpy", "mdpy-hd"), 4);
}

#[test]
#[ignore = "needs the real-kernel lab; run by `cargo xtask kernel-test`"]
fn a_duplicate_uuid_is_refused() {
    let _k = kernel("duplicate");
    let u = "6e0d5a1c-0000-4000-8000-000000000301";
    ok("mdevctl", &["start", "-u", u, "-p", "mtty", "-t", "mtty-1"]);
    let e = err(
        "mdevctl",
        &["start", "-u", u, "-p", "mdpy", "-t", "mdpy-vga"],
    );
    assert!(e.contains("already running on mtty"), "{e}");
    let s = RealSysfs::new(Path::new("/"));
    let k = s
        .create(
            &ParentName::new("mdpy").expect("p"),
            &TypeId::new("mdpy-vga").expect("t"),
            &u.parse().expect("u"),
        )
        .expect_err("the kernel refuses the same UUID twice");
    assert!(k.to_string().contains("EEXIST"), "{k}");
    assert_eq!(type_devices("mdpy", "mdpy-vga"), 0);
    ok("mdevctl", &["stop", "-u", u]);
}

#[test]
#[ignore = "needs the real-kernel lab; run by `cargo xtask kernel-test`"]
fn mbochs_shared_budget_is_reported_as_the_kernel_accounts_it() {
    let _k = kernel("mbochs");
    remove_all();
    let (s0, m0, l0) = (
        avail("mbochs", "mbochs-small"),
        avail("mbochs", "mbochs-medium"),
        avail("mbochs", "mbochs-large"),
    );
    let u = ok("mdevctl", &["start", "-p", "mbochs", "-t", "mbochs-large"])
        .trim()
        .to_string();
    let (s1, m1, l1) = (
        avail("mbochs", "mbochs-small"),
        avail("mbochs", "mbochs-medium"),
        avail("mbochs", "mbochs-large"),
    );
    assert!(
        s1 < s0 && m1 < m0 && l1 == l0 - 1,
        "({s0},{m0},{l0}) -> ({s1},{m1},{l1})"
    );
    let v: serde_json::Value = serde_json::from_str(&ok(
        "hostdevctl",
        &["mdev", "types", "-p", "mbochs", "-o", "json"],
    ))
    .expect("json");
    for (t, want) in [
        ("mbochs-small", s1),
        ("mbochs-medium", m1),
        ("mbochs-large", l1),
    ] {
        let row = v
            .as_array()
            .expect("array")
            .iter()
            .find(|r| r["type"]["id"] == t)
            .expect("row");
        assert_eq!(row["available_instances"].as_i64(), Some(want), "{t}");
    }
    ok("mdevctl", &["stop", "-u", &u]);
    assert_eq!(avail("mbochs", "mbochs-small"), s0);
}

#[test]
#[ignore = "needs the real-kernel lab; run by `cargo xtask kernel-test`"]
fn a_failing_attribute_rolls_the_device_back() {
    let _k = kernel("attributes");
    remove_all();
    let u = "6e0d5a1c-0000-4000-8000-000000000401";
    let before = avail("mtty", "mtty-2");
    let json = std::env::temp_dir().join("attr.json");
    std::fs::write(
        &json,
        r#"{"mdev_type":"mtty-2","start":"manual","attrs":[{"nosuch_attribute":"1"}]}"#,
    )
    .expect("write");
    let e = err(
        "mdevctl",
        &[
            "start",
            "-u",
            u,
            "-p",
            "mtty",
            "--jsonfile",
            json.to_str().expect("utf8"),
        ],
    );
    assert!(
        e.contains("nosuch_attribute") && e.contains("removed again"),
        "{e}"
    );
    assert!(!dev(u).exists(), "the device was left behind");
    assert_eq!(avail("mtty", "mtty-2"), before);
    // A link out of the device directory is never written through.
    let e = err(
        "mdevctl",
        &["start", "-u", u, "-p", "mtty", "--jsonfile", "/dev/stdin"],
    );
    assert!(!e.contains("panicked"), "{e}");
}

fn vdpa_json(args: &[&str]) -> serde_json::Value {
    let o = Command::new("vdpa")
        .args(args)
        .output()
        .expect("iproute2 vdpa");
    assert!(
        o.status.success(),
        "vdpa {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null)
}

fn vdpa_names() -> Vec<String> {
    let v = vdpa_json(&["dev", "show", "-j"]);
    v["dev"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
#[ignore = "needs the real-kernel lab; run by `cargo xtask kernel-test`"]
fn vdpa_add_show_del_agree_with_iproute2() {
    let _k = kernel("vdpa");
    ok(
        "hostdevctl",
        &[
            "vdpa",
            "add",
            "hv0",
            "--mgmtdev",
            "vdpasim_net",
            "--mac",
            "00:11:22:33:44:55",
            "--mtu",
            "9000",
        ],
    );
    ok(
        "hostdevctl",
        &["vdpa", "add", "hb0", "--mgmtdev", "vdpasim_blk"],
    );
    let dev = vdpa_json(&["dev", "show", "-jp"]);
    assert_eq!(dev["dev"]["hv0"]["mgmtdev"], "vdpasim_net", "{dev}");
    assert_eq!(dev["dev"]["hb0"]["mgmtdev"], "vdpasim_blk", "{dev}");
    let cfg = vdpa_json(&["dev", "config", "show", "hv0", "-jp"]);
    assert_eq!(cfg["config"]["hv0"]["mac"], "00:11:22:33:44:55", "{cfg}");
    assert_eq!(cfg["config"]["hv0"]["mtu"], 9000, "{cfg}");
    let show: serde_json::Value =
        serde_json::from_str(&ok("hostdevctl", &["vdpa", "show", "hv0", "-o", "json"]))
            .expect("json");
    assert_eq!(show["live"]["mac"], "00:11:22:33:44:55");
    assert_eq!(show["device"]["max_vqs"], dev["dev"]["hv0"]["max_vqs"]);
    let vhost = show["vhost_dev"]
        .as_str()
        .expect("vhost device")
        .to_string();
    assert!(Path::new(&vhost).exists(), "{vhost} exists");
    assert_eq!(show["driver"], "vhost_vdpa");
    let xml = ok("hostdevctl", &["vdpa", "show", "hv0", "--libvirt"]);
    assert!(
        xml.contains(&format!(r#"<source dev="{vhost}"/>"#)),
        "{xml}"
    );
    // The unified view lists them with the other kinds.
    let all = ok("hostdevctl", &["list", "-o", "json"]);
    assert!(
        all.contains("\"kind\": \"vdpa\"") && all.contains("\"id\": \"hv0\""),
        "{all}"
    );
    // 6.9+ reports virtio-blk config as attributes 21..: decoded for this kernel.
    let blk: serde_json::Value =
        serde_json::from_str(&ok("hostdevctl", &["vdpa", "show", "hb0", "-o", "json"]))
            .expect("json");
    assert!(
        blk["live"]["blk"]["capacity"].as_u64().unwrap_or(0) > 0,
        "{blk}"
    );
    ok("hostdevctl", &["vdpa", "del", "hv0"]);
    ok("hostdevctl", &["vdpa", "del", "hb0"]);
    assert!(vdpa_names().is_empty());
}

#[test]
#[ignore = "needs the real-kernel lab; run by `cargo xtask kernel-test`"]
fn vdpa_errors_are_clear_and_leave_nothing_half_created() {
    let _k = kernel("vdpa-errors");
    ok(
        "hostdevctl",
        &["vdpa", "add", "he0", "--mgmtdev", "vdpasim_net"],
    );
    for (args, expect) in [
        (
            &["vdpa", "add", "he0", "--mgmtdev", "vdpasim_net"][..],
            "already exists",
        ),
        (
            &["vdpa", "add", "he1", "--mgmtdev", "nosuch"],
            "no vDPA management device nosuch",
        ),
        (
            &[
                "vdpa",
                "add",
                "he1",
                "--mgmtdev",
                "vdpasim_net",
                "--max-vqp",
                "4",
            ],
            "does not support max_vqp (EOPNOTSUPP)",
        ),
        // A feature bit the simulator does not offer: the kernel refuses it
        // (EINVAL, seen on 6.12).
        (
            &[
                "vdpa",
                "add",
                "he1",
                "--mgmtdev",
                "vdpasim_net",
                "--features",
                "0x8000000000000000",
            ],
            "Invalid argument",
        ),
        (&["vdpa", "del", "nosuch"], "no vDPA device named nosuch"),
        (
            &["vdpa", "add", "../x", "--mgmtdev", "vdpasim_net"],
            "not a usable",
        ),
    ] {
        let e = err("hostdevctl", args);
        assert!(e.contains(expect), "{args:?}: {e}");
    }
    assert_eq!(
        vdpa_names(),
        vec!["he0".to_string()],
        "something was half-created"
    );
    ok("hostdevctl", &["vdpa", "del", "he0"]);
}

#[test]
#[ignore = "needs the real-kernel lab; run by `cargo xtask kernel-test`"]
fn vdpa_autostart_recreates_and_export_import_compare_equal() {
    let _k = kernel("vdpa-persist");
    ok(
        "hostdevctl",
        &[
            "vdpa",
            "define",
            "hp0",
            "--mgmtdev",
            "vdpasim_net",
            "--mac",
            "02:00:00:00:00:01",
            "--mtu",
            "1400",
            "--auto",
        ],
    );
    ok("hostdevctl", &["vdpa", "start", "hp0"]);
    // Behind hostdev's back, as a reboot would.
    assert!(Command::new("vdpa")
        .args(["dev", "del", "hp0"])
        .status()
        .expect("vdpa")
        .success());
    assert!(vdpa_names().is_empty());
    let out = ok("hostdevctl", &["autostart", "-o", "json"]);
    assert!(
        out.contains("\"kind\": \"vdpa\"") && out.contains("\"started\""),
        "{out}"
    );
    let cfg = vdpa_json(&["dev", "config", "show", "hp0", "-jp"]);
    assert_eq!(cfg["config"]["hp0"]["mac"], "02:00:00:00:00:01", "{cfg}");
    assert_eq!(cfg["config"]["hp0"]["mtu"], 1400, "{cfg}");
    // Export one name, import under another: the two compare equal.
    let export = ok("hostdevctl", &["vdpa", "export", "hp0"]);
    let file = std::env::temp_dir().join("hp0.json");
    std::fs::write(&file, &export).expect("write");
    ok(
        "hostdevctl",
        &[
            "vdpa",
            "import",
            file.to_str().expect("utf8"),
            "--name",
            "hp1",
            "--define",
            "--start",
        ],
    );
    let a: serde_json::Value = serde_json::from_str(&export).expect("json");
    let b: serde_json::Value =
        serde_json::from_str(&ok("hostdevctl", &["vdpa", "export", "hp1"])).expect("json");
    assert_eq!(a["device"]["config"], b["device"]["config"]);
    assert_eq!(a["device"]["mgmtdev"], b["device"]["mgmtdev"]);
    let c0 = vdpa_json(&["dev", "config", "show", "hp0", "-j"]);
    let c1 = vdpa_json(&["dev", "config", "show", "hp1", "-j"]);
    assert_eq!(c0["config"]["hp0"]["mtu"], c1["config"]["hp1"]["mtu"]);
    assert_eq!(c0["config"]["hp0"]["mac"], c1["config"]["hp1"]["mac"]);
    for n in ["hp0", "hp1"] {
        ok("hostdevctl", &["vdpa", "del", n]);
        ok("hostdevctl", &["vdpa", "undefine", n]);
    }
}

/// Runs the lab's modprobe (`LAB_MODPROBE` points it at the guest's modules).
fn modprobe(args: &[&str]) {
    let base = std::env::var("LAB_MODPROBE").expect("LAB_MODPROBE is set by the lab");
    let st = Command::new("modprobe")
        .args(base.split_whitespace())
        .args(args)
        .status()
        .expect("modprobe");
    assert!(st.success(), "modprobe {args:?} failed");
}

#[test]
#[ignore = "needs the real-kernel lab; run by `cargo xtask kernel-test`"]
fn hostdevd_restores_mdevs_and_vdpa_devices_when_their_drivers_reload() {
    let _k = kernel("hostdevd");
    assert!(
        !Path::new("/etc/udev/rules.d/60-hostdev.rules").exists(),
        "no udev rule may do the daemon's work here"
    );
    let us = [
        ("11111111-2222-4333-8444-5555555555d1", "mtty-1"),
        ("11111111-2222-4333-8444-5555555555d2", "mtty-1"),
        ("11111111-2222-4333-8444-5555555555d3", "mtty-2"),
    ];
    for (u, t) in us {
        ok(
            "mdevctl",
            &["define", "-u", u, "-p", "mtty", "-t", t, "--auto"],
        );
    }
    ok(
        "hostdevctl",
        &[
            "vdpa",
            "define",
            "hd0",
            "--mgmtdev",
            "vdpasim_net",
            "--mac",
            "02:00:00:00:00:0d",
            "--mtu",
            "1380",
            "--auto",
        ],
    );
    // The daemon on the default socket; kernel events only (no resync).
    // Stopped when the test ends, also when it fails half-way: a daemon
    // left on the default socket would answer every later test's CLI calls.
    let daemon = common::Daemon::on_host("resync_interval_secs = 3600\ngroup = \"root\"\n", None);
    let socket = Path::new("/run/hostdev/hostdev.sock");
    let all_mdevs = || us.iter().all(|(u, _)| dev(u).exists());
    eventually(10, "restored at start", || {
        all_mdevs() && vdpa_names().contains(&"hd0".to_string())
    });
    let seen = read_events(socket, 0).len();
    // The driver goes and comes back: its devices go with it, then return.
    modprobe(&["-r", "mtty"]);
    assert!(!all_mdevs());
    modprobe(&["mtty"]);
    eventually(10, "mdevs back after mtty reloaded", all_mdevs);
    // The vDPA driver next, before any change goes through the daemon: a
    // change nudges the daemon to look, and a look that finds vdpasim_net
    // back would restore hd0 as that request's doing, not the uevent's.
    modprobe(&["-r", "vdpa_sim_net"]);
    assert!(!vdpa_names().contains(&"hd0".to_string()));
    modprobe(&["vdpa_sim_net"]);
    eventually(10, "hd0 back after vdpa_sim_net reloaded", || {
        vdpa_names().contains(&"hd0".to_string())
    });
    let cfg = vdpa_json(&["dev", "config", "show", "hd0", "-jp"]);
    assert_eq!(cfg["config"]["hd0"]["mac"], "02:00:00:00:00:0d", "{cfg}");
    assert_eq!(cfg["config"]["hd0"]["mtu"], 1380, "{cfg}");
    // What the daemon remembers of running mdevs rests on a kernel fact: a
    // device removed and created again has a new sysfs node (a new inode
    // number). Checked here, and that the daemon's answer follows at once.
    let (u1, _) = us[0];
    let listed = ok("mdevctl", &["list", "--dumpjson", "-u", u1]);
    assert!(listed.contains("mtty-1"), "{listed}");
    let bus = Path::new("/sys/bus/mdev/devices").join(u1);
    let ino = || std::os::unix::fs::MetadataExt::ino(&bus.symlink_metadata().expect("bus entry"));
    let before = ino();
    std::fs::write(bus.join("remove"), "1").expect("remove");
    std::fs::write(
        "/sys/class/mdev_bus/mtty/mdev_supported_types/mtty-2/create",
        u1,
    )
    .expect("create");
    assert_ne!(ino(), before, "a re-created device's sysfs node is new");
    let listed = ok("mdevctl", &["list", "--dumpjson"]);
    assert!(
        listed.contains(&format!(
            "\"{u1}\": {{\n          \"mdev_type\": \"mtty-2\""
        )),
        "{listed}"
    );
    let (_, metrics) = http_get(socket, "/metrics");
    assert!(
        metrics.contains("path=\"/v1/mdev/devices\""),
        "the listings came through the daemon:\n{metrics}"
    );
    std::fs::write(bus.join("remove"), "1").expect("remove");
    ok("mdevctl", &["start", "-u", u1]);
    // Seen as events, counted in the metrics.
    let events: Vec<serde_json::Value> = read_events(socket, 0).into_iter().skip(seen).collect();
    let restored = |kind: &str| {
        events.iter().any(|e| {
            e["type"] == "restored"
                && e["trigger"] == "uevent"
                && e["report"]["rows"].as_array().is_some_and(|rows| {
                    rows.iter()
                        .any(|r| r["kind"] == kind && r["outcome"] == "started")
                })
        })
    };
    assert!(restored("mdev"), "{events:#?}");
    assert!(restored("vdpa"), "{events:#?}");
    let (_, metrics) = http_get(socket, "/metrics");
    for kind in ["mdev", "vdpa"] {
        let line = format!("hostdev_restore_outcomes_total{{kind=\"{kind}\",outcome=\"started\"}}");
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }
    assert!(metrics.contains("hostdev_uevents_total"), "{metrics}");
    // Stop it (SIGTERM) and clean up directly.
    assert!(daemon.stop().success());
    assert!(!socket.exists());
    for (u, _) in us {
        ok("mdevctl", &["stop", "-u", u]);
        ok("mdevctl", &["undefine", "-u", u]);
    }
    ok("hostdevctl", &["vdpa", "stop", "hd0"]);
    ok("hostdevctl", &["vdpa", "undefine", "hd0"]);
}
