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

/// A profile path naming a FIFO hung the simulator before anything was
/// mounted, and a huge file was read whole; both are refused with a
/// sentence now.
#[test]
fn a_fifo_or_a_huge_file_as_the_profile_is_refused_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("profile.fifo");
    let st = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(st.success());
    let huge = dir.path().join("huge.toml");
    std::fs::write(&huge, vec![b'#'; 2 << 20]).expect("write");
    for (profile, why) in [(&fifo, "not a regular file"), (&huge, "larger than 1 MiB")] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hostdev-sim"))
            .args(["run", "--root"])
            .arg(dir.path().join("root"))
            .arg("--profile")
            .arg(profile)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let t0 = std::time::Instant::now();
        while child.try_wait().expect("wait").is_none() {
            if t0.elapsed() > std::time::Duration::from_secs(10) {
                let _ = child.kill();
                panic!(
                    "hostdev-sim still runs 10 s after being given {}",
                    profile.display()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let o = child.wait_with_output().expect("output");
        assert!(!o.status.success());
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains(why), "{e}");
    }
}
