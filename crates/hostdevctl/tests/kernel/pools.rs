//! Pools on the real kernel without libvirt: a vDPA pool creating devices on
//! vdpa_sim_net from its template (iproute2 must see the same MACs and MTU),
//! and a pre-created mdev pool on mdpy filled by reconcile.

use super::{dev, err, kernel, ok, remove_all, vdpa_json, vdpa_names};
use std::path::Path;

fn pool_file(name: &str, text: &str) {
    let dir = Path::new("/etc/hostdev/pools.d");
    std::fs::create_dir_all(dir).expect("pools.d");
    std::fs::write(dir.join(format!("{name}.toml")), text).expect("pool file");
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

#[test]
#[ignore = "needs the real-kernel lab; run by `cargo xtask kernel-test`"]
fn a_vdpa_pool_creates_from_its_template_and_removes_at_release() {
    let _k = kernel("vdpa pool");
    let before = vdpa_names();
    pool_file(
        "knics",
        "kind = \"vdpa\"\nlimit = 2\n[vdpa]\nname_prefix = \"kp\"\nmac_base = \"52:54:00:00:20:00\"\nmtu = 4000\n[members]\nparents = [\"vdpasim_net\"]\n",
    );
    let a = first_line(&ok(
        "hostdevctl",
        &["pool", "allocate", "knics", "--consumer", "vm-a"],
    ));
    let b = first_line(&ok(
        "hostdevctl",
        &["pool", "allocate", "knics", "--consumer", "vm-b"],
    ));
    assert_eq!((a.as_str(), b.as_str()), ("kp0", "kp1"));
    // iproute2 sees what the template says, slot by slot.
    for (name, mac) in [("kp0", "52:54:00:00:20:00"), ("kp1", "52:54:00:00:20:01")] {
        let cfg = vdpa_json(&["dev", "config", "show", name, "-j"]);
        assert_eq!(cfg["config"][name]["mac"], mac, "{cfg}");
        assert_eq!(cfg["config"][name]["mtu"], 4000, "{cfg}");
        let d = vdpa_json(&["dev", "show", name, "-j"]);
        assert_eq!(d["dev"][name]["mgmtdev"], "vdpasim_net", "{d}");
    }
    // Idempotent per consumer; the third consumer is refused.
    let again = first_line(&ok(
        "hostdevctl",
        &["pool", "allocate", "knics", "--consumer", "vm-a"],
    ));
    assert_eq!(again, "kp0");
    let e = err(
        "hostdevctl",
        &["pool", "allocate", "knics", "--consumer", "vm-c"],
    );
    assert!(
        e.contains("pool knics is exhausted: 2 of 2 allocated"),
        "{e}"
    );
    assert_eq!(
        vdpa_names().len(),
        before.len() + 2,
        "the refusal made nothing"
    );
    ok("hostdevctl", &["pool", "release", "--consumer", "vm-a"]);
    ok("hostdevctl", &["pool", "release", "--consumer", "vm-b"]);
    assert_eq!(vdpa_names(), before, "released devices are removed");
    let _ = std::fs::remove_file("/etc/hostdev/pools.d/knics.toml");
}

#[test]
#[ignore = "needs the real-kernel lab; run by `cargo xtask kernel-test`"]
fn a_precreated_mdev_pool_is_filled_by_reconcile_and_hands_out_running_devices() {
    let _k = kernel("pre-created pool");
    remove_all();
    pool_file(
        "kready",
        "kind = \"mdev\"\ntype = \"mdpy-vga\"\nmode = \"pre-created\"\ncount = 2\n",
    );
    let rep = ok("hostdevctl", &["-o", "json", "pool", "reconcile"]);
    let v: serde_json::Value = serde_json::from_str(&rep).expect("json");
    // `-o json pool reconcile` prints its rows.
    let made: Vec<String> = v
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter(|r| r["pool"] == "kready")
                .filter_map(|r| r["id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(made.len(), 2, "{rep}");
    for u in &made {
        assert!(dev(u).exists(), "{u} runs after reconcile");
        // A definition like any other: restored at boot.
        assert!(
            Path::new("/etc/mdevctl.d/mdpy").join(u).exists(),
            "{u} is defined"
        );
    }
    let got = first_line(&ok(
        "hostdevctl",
        &["pool", "allocate", "kready", "--consumer", "vm-1"],
    ));
    assert!(made.contains(&got), "{got} is one of {made:?}");
    ok("hostdevctl", &["pool", "release", "--consumer", "vm-1"]);
    assert!(
        dev(&got).exists(),
        "a pre-created device stays after release"
    );
    // Removing the pool's file and its devices leaves the host as found.
    let _ = std::fs::remove_file("/etc/hostdev/pools.d/kready.toml");
    for u in &made {
        ok("mdevctl", &["undefine", "-u", u]);
    }
    remove_all();
}
