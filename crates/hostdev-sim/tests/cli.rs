//! The simulator's command line without mounting anything (mounting is
//! covered by hostdevctl's end-to-end tests). Also makes `cargo test
//! --workspace` build the `hostdev-sim` binary those tests run.
#![allow(clippy::expect_used)] // tests: a failed expectation is the report

use std::process::Command;

fn sim(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hostdev-sim"))
        .args(args)
        .output()
        .expect("run hostdev-sim")
}

#[test]
fn profiles_lists_every_builtin_profile() {
    let o = sim(&["profiles"]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    for name in ["demo", "large", "nvidia-sriov", "vfio-ap", "samples", "igb"] {
        assert!(
            out.lines().any(|l| l.starts_with(name)),
            "{name} missing in:\n{out}"
        );
    }
}

#[test]
fn bad_usage_and_bad_profiles_are_explained() {
    assert_eq!(sim(&[]).status.code(), Some(2));
    let dir = std::env::temp_dir().join(format!("hostdev-sim-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let o = sim(&[
        "run",
        "--root",
        dir.to_str().expect("utf8"),
        "--profile",
        "no-such-profile",
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("neither a built-in profile"),
        "{o:?}"
    );
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[[parent]]\nname = 1\n").expect("write");
    let o = sim(&[
        "run",
        "--root",
        dir.to_str().expect("utf8"),
        "--profile",
        bad.to_str().expect("utf8"),
    ]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("is malformed"),
        "{o:?}"
    );
    let o = sim(&["reboot", "--root", dir.to_str().expect("utf8")]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no simulator runs"),
        "{o:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
