//! `hostdevctl plan|apply` on the simulated lab (`large`: 16 GPUs that
//! allow one type at a time): from empty to 128 devices, idempotent, one
//! card retyped (drained, then the new type), and the same UUIDs after the
//! definitions are wiped and the file applied again. Needs FUSE:
//! `#[ignore]`d with its reason and run by `cargo xtask test`.
#![allow(clippy::expect_used, clippy::unwrap_used)] // tests: a failed expectation is the report

mod common;

use common::{require_fuse, Bins, Sim};
use std::collections::BTreeSet;
use std::path::Path;

const ALL: &str = r#"
[host]
id = "lab-1"

[[mdev]]
select = { ids = ["10de:1eb8"] }
type = "nvidia-260"
count = 8
"#;

/// The same, but card 0000:1f:00.0 runs four nvidia-262 instead.
const RETYPED: &str = r#"
[host]
id = "lab-1"

[[mdev]]
select = { ids = ["10de:1eb8"], parents = [PARENTS] }
type = "nvidia-260"
count = 8

[[mdev]]
select = { parents = ["0000:1f:00.0"] }
type = "nvidia-262"
count = 4
"#;

fn run(bins: &Bins, root: &Path, args: &[&str]) -> (i32, String) {
    let o = bins.run(root, "hostdevctl", args, None);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

fn running(sim: &Sim) -> BTreeSet<String> {
    std::fs::read_dir(sim.path().join("sys/bus/mdev/devices"))
        .expect("devices")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
#[ignore = "needs FUSE (fuse3) for the simulated lab; run by `cargo xtask test`"]
fn a_host_file_is_planned_applied_idempotently_retyped_and_keeps_its_uuids() {
    require_fuse("host-file");
    let bins = Bins::new();
    let sim = Sim::start("large");
    let r = sim.path();
    let dir = tempfile::tempdir().expect("tempdir");
    let all = dir.path().join("all.toml");
    std::fs::write(&all, ALL).expect("write");
    let all = all.to_str().unwrap();

    let (code, out) = run(&bins, r, &["plan", "--file", all]);
    assert_eq!(code, 2, "changes pending: {out}");
    assert!(out.contains("128 to change, 0 blocked"), "{out}");
    let (code, out) = run(&bins, r, &["apply", "--file", all]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("128 done, 0 failed, 0 undone, 0 blocked"),
        "{out}"
    );
    let first = running(&sim);
    assert_eq!(first.len(), 128);
    let (code, out) = run(&bins, r, &["plan", "--file", all]);
    assert_eq!(code, 0, "nothing left to do: {out}");
    assert!(out.contains("0 to change, 0 blocked (in use; apply --force ID), 128 as wanted"));
    let (code, out) = run(&bins, r, &["apply", "--file", all, "-o", "json"]);
    assert_eq!(code, 0, "{out}");
    let j: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        j["outcomes"].as_array().map(Vec::len),
        Some(0),
        "a second apply does nothing"
    );

    // Retype one card: its first four slots keep their UUIDs with the new
    // type, the other four go; the other cards are untouched.
    let others: Vec<String> = (0x10..0x1f)
        .map(|b| format!("\"0000:{b:02x}:00.0\""))
        .collect();
    let retyped = dir.path().join("retyped.toml");
    std::fs::write(&retyped, RETYPED.replace("PARENTS", &others.join(", "))).expect("write");
    let retyped = retyped.to_str().unwrap();
    let (code, out) = run(&bins, r, &["apply", "--file", retyped]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("8 done, 0 failed, 0 undone, 0 blocked, 120 as wanted"),
        "{out}"
    );
    let now = running(&sim);
    assert_eq!(now.len(), 124);
    assert!(now.is_subset(&first), "retyped slots keep their UUIDs");
    let card = "0000:1f:00.0";
    assert_eq!(
        sim.read(&format!(
            "class/mdev_bus/{card}/mdev_supported_types/nvidia-262/available_instances"
        )),
        "28",
        "four nvidia-262 run on the retyped card"
    );

    // Wiped: devices gone (reboot), definitions and the record removed;
    // the same file gives the same UUIDs.
    sim.reboot();
    std::fs::remove_dir_all(r.join("etc/mdevctl.d")).expect("wipe");
    std::fs::remove_file(r.join("var/lib/hostdev/host-managed.json")).expect("wipe");
    let (code, out) = run(&bins, r, &["apply", "--file", retyped]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(running(&sim), now, "the same UUIDs after a wipe");

    // Regression: with /etc read-only every removal fails and no device is
    // stopped (removal used to stop first, then fail to undefine).
    let fewer = dir.path().join("fewer.toml");
    std::fs::write(
        &fewer,
        std::fs::read_to_string(retyped)
            .unwrap()
            .replacen("count = 8", "count = 6", 1),
    )
    .expect("write");
    let mut ro = std::process::Command::new("unshare");
    ro.args(["--mount", "sh", "-c"])
        .arg(format!(
            "mount --bind {etc} {etc} && mount -o remount,bind,ro {etc} && {bin} apply --file {fewer}",
            etc = r.join("etc").display(),
            bin = bins.path("hostdevctl").display(),
            fewer = fewer.display(),
        ))
        .env("HOSTDEV_ROOT", r)
        .env("HOSTDEV_SOCKET", "");
    let o = ro.output().expect("unshare");
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("0 done, 15 failed, 15 undone") && out.contains("Read-only file system"),
        "{out}"
    );
    assert_eq!(running(&sim), now, "nothing stopped");

    // A file with an unknown key is refused by name and line; nothing changes.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[mdev]]\ntype = \"nvidia-260\"\ncount = 1\ncolour = \"red\"\n",
    )
    .expect("write");
    let (code, out) = run(&bins, r, &["apply", "--file", bad.to_str().unwrap()]);
    assert!(
        code == 1 && out.contains("colour") && out.contains("line 4"),
        "{out}"
    );
    assert_eq!(running(&sim), now);
}
