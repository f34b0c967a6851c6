//! The host file on the real kernel: mtty, mdpy and mbochs devices and two
//! vdpa_sim_net NICs applied, planned again (no diff), changed, applied;
//! Debian's mdevctl and iproute2 agree with the result at each step. A
//! device whose VFIO group a process holds (as QEMU would) is blocked, and
//! taken once released. An empty file removes everything the file made.

use super::{dev, kernel, read, remove_all, run, vdpa_json, vdpa_names};
use std::path::Path;
use std::process::Command;

fn host_file(name: &str, text: &str) -> String {
    let p = std::env::temp_dir().join(format!("hostdev-{name}-{}.toml", std::process::id()));
    std::fs::write(&p, format!("[host]\nid = \"kernel-lab\"\n{text}")).expect("host file");
    p.to_str().expect("path").to_string()
}

fn host(args: &[&str]) -> (i32, String) {
    let o = run("hostdevctl", args);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

/// (UUID, parent, type) of every mdev as Debian's mdevctl lists it.
fn peer_list(defined: bool) -> Vec<(String, String, String)> {
    let mut args = vec!["list"];
    if defined {
        args.push("--defined");
    }
    let o = Command::new("/usr/bin/mdevctl")
        .args(&args)
        .output()
        .expect("Debian's mdevctl");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut v: Vec<(String, String, String)> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.into(), w.next()?.into(), w.next()?.into()))
        })
        .collect();
    v.sort();
    v
}

fn of_type(list: &[(String, String, String)], parent: &str, t: &str) -> usize {
    list.iter()
        .filter(|(_, p, ty)| p == parent && ty == t)
        .count()
}

const FIRST: &str = r#"
[[mdev]]
select = { parents = ["mtty"] }
type = "mtty-2"
count = 2

[[mdev]]
select = { parents = ["mdpy"] }
type = "mdpy-vga"
count = 1

[[mdev]]
select = { parents = ["mbochs"] }
type = "mbochs-small"
count = 2

[[vdpa]]
name = "hf0"
mgmtdev = "vdpasim_net"
mac = "52:54:00:00:30:00"
mtu = 1500

[[vdpa]]
name = "hf1"
mgmtdev = "vdpasim_net"
mac = "52:54:00:00:30:01"
"#;

#[test]
#[ignore = "needs the real-kernel lab; run by `cargo xtask kernel-test`"]
fn a_host_file_is_applied_changed_and_emptied_as_mdevctl_and_iproute2_see_it() {
    let _k = kernel("host file");
    assert!(
        Path::new("/usr/bin/mdevctl").exists(),
        "Debian's mdevctl is the peer here (.ci/run installs it)"
    );
    remove_all();
    let vdpa_before = vdpa_names();
    let first = host_file("first", FIRST);
    let (code, out) = host(&["plan", "--file", &first]);
    assert_eq!(code, 2, "{out}");
    let (code, out) = host(&["apply", "--file", &first]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("7 done, 0 failed"), "{out}");
    let live = peer_list(false);
    assert_eq!(of_type(&live, "mtty", "mtty-2"), 2, "{live:?}");
    assert_eq!(of_type(&live, "mdpy", "mdpy-vga"), 1, "{live:?}");
    assert_eq!(of_type(&live, "mbochs", "mbochs-small"), 2, "{live:?}");
    assert_eq!(
        peer_list(true).len(),
        5,
        "Debian's mdevctl reads every definition"
    );
    for (name, mac, mtu) in [
        ("hf0", "52:54:00:00:30:00", Some(1500)),
        ("hf1", "52:54:00:00:30:01", None),
    ] {
        let cfg = vdpa_json(&["dev", "config", "show", name, "-j"]);
        assert_eq!(cfg["config"][name]["mac"], mac, "{cfg}");
        if let Some(m) = mtu {
            assert_eq!(cfg["config"][name]["mtu"], m, "{cfg}");
        }
        assert_eq!(
            vdpa_json(&["dev", "show", name, "-j"])["dev"][name]["mgmtdev"],
            "vdpasim_net"
        );
    }
    let (code, out) = host(&["plan", "--file", &first]);
    assert_eq!(code, 0, "no diff after apply: {out}");
    assert!(out.contains("0 to change, 0 blocked"), "{out}");

    // Changed: mtty retyped (one device held by a process, as QEMU holds
    // it), mbochs down to one, hf0's MTU changes, hf1 leaves the file.
    let mtty: Vec<String> = live
        .iter()
        .filter(|(_, p, _)| p == "mtty")
        .map(|(u, _, _)| u.clone())
        .collect();
    let group = std::fs::read_link(dev(&mtty[0]).join("iommu_group")).expect("group");
    let held = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(Path::new("/dev/vfio").join(group.file_name().expect("n")))
        .expect("hold the group");
    let changed = FIRST
        .replace("mtty-2", "mtty-1")
        .replace(
            "type = \"mbochs-small\"\ncount = 2",
            "type = \"mbochs-small\"\ncount = 1",
        )
        .replace("mtu = 1500", "mtu = 4000");
    let changed = changed[..changed.find("[[vdpa]]\nname = \"hf1\"").expect("hf1")].to_string();
    let second = host_file("second", &changed);
    let (code, out) = host(&["apply", "--file", &second]);
    assert_eq!(code, 2, "the held device is blocked, the rest done: {out}");
    assert!(
        out.contains(&mtty[0]) && out.contains("VFIO group") && out.contains("0 failed"),
        "{out}"
    );
    let live = peer_list(false);
    assert!(
        live.iter().any(|(u, _, t)| u == &mtty[0] && t == "mtty-2"),
        "held one untouched: {live:?}"
    );
    assert!(
        live.iter().any(|(u, _, t)| u == &mtty[1] && t == "mtty-1"),
        "the other retyped: {live:?}"
    );
    assert_eq!(of_type(&live, "mbochs", "mbochs-small"), 1, "{live:?}");
    let cfg = vdpa_json(&["dev", "config", "show", "hf0", "-j"]);
    assert_eq!(cfg["config"]["hf0"]["mtu"], 4000, "{cfg}");
    assert!(!vdpa_names().contains(&"hf1".to_string()), "hf1 removed");
    drop(held);
    let (code, out) = host(&["apply", "--file", &second]);
    assert_eq!(code, 0, "released, it is retyped: {out}");
    assert_eq!(of_type(&peer_list(false), "mtty", "mtty-1"), 2);
    assert_eq!(
        read(dev(&mtty[0]).join("mdev_type/name")),
        read("/sys/class/mdev_bus/mtty/mdev_supported_types/mtty-1/name")
    );
    let (code, out) = host(&["plan", "--file", &second]);
    assert_eq!(code, 0, "{out}");

    // Empty: everything the file made goes, nothing else.
    let empty = host_file("empty", "");
    let (code, out) = host(&["apply", "--file", &empty]);
    assert_eq!(code, 0, "{out}");
    assert!(
        peer_list(false).is_empty() && peer_list(true).is_empty(),
        "{out}"
    );
    assert_eq!(vdpa_names(), vdpa_before);
    for f in [first, second, empty] {
        let _ = std::fs::remove_file(f);
    }
}
