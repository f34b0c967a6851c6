//! Bad input and hostile conditions: malformed files, concurrent writers,
//! writers killed mid-write, hostile names, closed pipes.
#![allow(clippy::expect_used)] // tests: a failed expectation is the report

mod common;

use common::{show, tree, Bins};
use hostdev_testkit::snapshot;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const U: &str = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001";

#[test]
fn a_malformed_definition_does_not_hide_its_siblings() {
    let bins = Bins::new();
    let t = tree(&hostdev_testkit::fixed());
    let bad = t
        .path()
        .join("etc/mdevctl.d/mtty/00000000-0000-4000-8000-00000000000b");
    std::fs::write(
        &bad,
        "{\"mdev_type\": \"mtty-1\", \"start\": \"auto\", \"attrs\": [{\"x\": 5}]}",
    )
    .expect("write");
    let torn = t
        .path()
        .join("etc/mdevctl.d/mtty/00000000-0000-4000-8000-00000000000c");
    std::fs::write(&torn, "{\"mdev_type\": \"mt").expect("write");
    let o = bins.run(t.path(), "mdevctl", &["list", "-d"], None);
    assert!(o.status.success(), "{}", show(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.lines().filter(|l| !l.is_empty()).count(), 4, "{out}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&bad.display().to_string()) && err.contains("\"attrs[0].x\" must be a string"),
        "{err}"
    );
    assert!(err.contains(&torn.display().to_string()), "{err}");
}

fn definition_is_valid(path: &Path) -> Result<usize, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let c = hostdev_model::MdevConfig::from_json(&bytes)
        .map_err(|e| format!("{e}: {:?}", String::from_utf8_lossy(&bytes)))?;
    Ok(c.attrs.len())
}

#[test]
fn fifty_concurrent_writers_lose_no_update() {
    let bins = Bins::new();
    let t = tree(&hostdev_testkit::fixed());
    let shared = "11111111-0000-4000-8000-000000000000";
    let o = bins.run(
        t.path(),
        "mdevctl",
        &["define", "-u", shared, "-p", "mtty", "-t", "mtty-1"],
        None,
    );
    assert!(o.status.success(), "{}", show(&o));
    let mut children = Vec::new();
    for i in 0..50 {
        let mut c = Command::new(bins.path("mdevctl"));
        c.env("HOSTDEV_ROOT", t.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if i % 2 == 0 {
            c.args([
                "modify",
                "-u",
                shared,
                &format!("--addattr=a{i}"),
                &format!("--value=v{i}"),
            ]);
        } else {
            c.args([
                "define",
                "-u",
                &format!("11111111-0000-4000-8000-{i:012}"),
                "-p",
                "mtty",
                "-t",
                "mtty-2",
            ]);
        }
        children.push(c.spawn().expect("spawn"));
    }
    for c in children {
        let o = c.wait_with_output().expect("wait");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let dir = t.path().join("etc/mdevctl.d/mtty");
    assert_eq!(definition_is_valid(&dir.join(shared)), Ok(25));
    for i in (1..50).step_by(2) {
        assert_eq!(
            definition_is_valid(&dir.join(format!("11111111-0000-4000-8000-{i:012}"))),
            Ok(0)
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .expect("read dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}

#[test]
fn a_writer_killed_at_any_point_never_leaves_a_torn_definition() {
    let bins = Bins::new();
    let t = tree(&hostdev_testkit::fixed());
    let path = t.path().join("etc/mdevctl.d/mtty").join(U);
    let big = "x".repeat(64 * 1024);
    // Kill points are spread over the time one uninterrupted run takes here.
    let t0 = std::time::Instant::now();
    let o = bins.run(
        t.path(),
        "mdevctl",
        &[
            "modify",
            "-u",
            U,
            "--addattr=warmup",
            &format!("--value={big}"),
        ],
        None,
    );
    assert!(o.status.success(), "{}", show(&o));
    let span = (t0.elapsed().as_micros() as u64 * 3 / 2).max(1000);
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for i in 0..120 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut c = Command::new(bins.path("mdevctl"))
            .args([
                "modify",
                "-u",
                U,
                &format!("--addattr=k{i}"),
                &format!("--value={big}"),
            ])
            .env("HOSTDEV_ROOT", t.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_micros(seed % span));
        let _ = c.kill();
        let _ = c.wait();
        if let Err(e) = definition_is_valid(&path) {
            panic!("after kill #{i} the definition is torn: {e}");
        }
    }
    // Both kinds of run happened: some writes completed, some were cut short.
    let kept = definition_is_valid(&path).expect("valid") - 3;
    assert!(kept > 0 && kept < 120, "{kept} of 120 writes completed");
    let o = bins.run(t.path(), "mdevctl", &["list", "-d", "-u", U], None);
    assert!(o.status.success(), "{}", show(&o));
}

#[test]
fn hostile_names_are_refused_with_nothing_written() {
    let bins = Bins::new();
    let t = tree(&hostdev_testkit::fixed());
    let before = snapshot(t.path());
    let cases: [&[&str]; 7] = [
        &["modify", "-u", U, "--addattr=../remove", "--value=1"],
        &["modify", "-u", U, "--addattr=a/b", "--value=1"],
        &["modify", "-u", U, "--addattr=..", "--value=1"],
        &[
            "define",
            "-u",
            "11111111-0000-4000-8000-000000000001",
            "-p",
            "../..",
            "-t",
            "mtty-1",
        ],
        &[
            "define",
            "-u",
            "11111111-0000-4000-8000-000000000001",
            "-p",
            "mtty",
            "-t",
            "../x",
        ],
        &["start", "-p", "../../sys/class", "-t", "mtty-1"],
        &["undefine", "-u", U, "-p", "mtty/../mdpy"],
    ];
    for args in cases {
        let o = bins.run(t.path(), "mdevctl", args, None);
        assert!(!o.status.success(), "mdevctl {args:?} was accepted");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("refused") || err.contains("invalid value"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    assert!(before == snapshot(t.path()), "the tree changed");
}

#[test]
fn a_closed_pipe_is_success() {
    let bins = Bins::new();
    let t = tempfile::tempdir().expect("tempdir");
    hostdev_testkit::write_tree(t.path(), &hostdev_testkit::generate(3, 4, 8, 400, 800))
        .expect("tree");
    let mut c = Command::new(bins.path("mdevctl"))
        .args(["list", "-d", "--dumpjson"])
        .env("HOSTDEV_ROOT", t.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(c.stdout.take());
    let o = c.wait_with_output().expect("wait");
    assert!(o.status.success(), "{}", show(&o));
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn garbage_arguments_never_panic() {
    let bins = Bins::new();
    let t = tree(&hostdev_testkit::fixed());
    let cases: [&[&str]; 8] = [
        &[],
        &["list", "-u", ""],
        &["list", "-p", "\u{1}\u{2}"],
        &["types", "-p", "../../.."],
        &["modify", "-u", U, "--index", "99999999999"],
        &["start", "-u", U, "--jsonfile", "/nonexistent"],
        &["define", "-p", "mtty", "--jsonfile", "/dev/null"],
        &["stop", "-u", "00000000-0000-0000-0000-000000000000"],
    ];
    for args in cases {
        let o = bins.run(t.path(), "mdevctl", args, None);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
