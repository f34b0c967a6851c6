//! What a hostile operator found in the command line (issue 25), on
//! generated trees (no FUSE): consumer ids that cut or blank a message,
//! files that are FIFOs.
#![allow(clippy::expect_used)] // tests: a failed expectation is the report

mod common;

use common::{show, tree, Bins};

/// Every stderr line under `-o json` is one JSON object with an error.
fn json_errors(stderr: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// A consumer id with a newline cut the `-o json` message at the newline
/// (the reason was lost); one of only spaces was accepted and shown blank.
#[test]
fn consumer_ids_are_validated_and_the_reason_survives_json() {
    let bins = Bins::new();
    let t = tree(&hostdev_testkit::fixed());
    let dir = t.path().join("etc/hostdev/pools.d");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("p.toml"), "kind = \"mdev\"\ntype = \"mtty-1\"\n").expect("pool");
    for bad in ["a\nb", "   ", " vm", "vm ", "vm\u{202e}gpj"] {
        let o = bins.run(
            t.path(),
            "hostdevctl",
            &["-o", "json", "pool", "allocate", "p", "--consumer", bad],
            None,
        );
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", show(&o));
        let errs = json_errors(&o.stderr);
        assert_eq!(errs.len(), 1, "{bad:?}: {}", show(&o));
        let m = errs[0]["error"]["message"].as_str().expect("message");
        assert!(
            m.contains("is not a consumer id") && m.contains(&bad.escape_debug().to_string()),
            "{bad:?}: {m}"
        );
    }
}

/// With another process holding `pools.db`'s write lock, `pool allocate`
/// (and the libvirt hook, which blocks a VM's start) waited the full 60 s
/// busy timeout, then said only "database is locked".
#[test]
fn a_stuck_writer_of_the_pool_database_is_named_after_a_bounded_wait() {
    use std::io::BufRead;
    let bins = Bins::new();
    let t = tree(&hostdev_testkit::fixed());
    let dir = t.path().join("etc/hostdev/pools.d");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("p.toml"), "kind = \"mdev\"\ntype = \"mtty-1\"\n").expect("pool");
    let mut holder =
        std::process::Command::new(common::sibling_binary("hostdev-testkit", "hostdev-testkit"))
            .arg("hold-pools-db")
            .arg(t.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("holder");
    let mut line = String::new();
    std::io::BufReader::new(holder.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    assert_eq!(line.trim(), "held");
    let o = bins.run(
        t.path(),
        "hostdevctl",
        &["-o", "json", "pool", "allocate", "p", "--consumer", "vm-1"],
        None,
    );
    drop(holder.stdin.take());
    let _ = holder.wait();
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let errs = json_errors(&o.stderr);
    assert_eq!(errs[0]["error"]["code"], "store.db_busy", "{}", show(&o));
    let m = errs[0]["error"]["message"].as_str().expect("message");
    assert!(
        m.contains(&format!("pid {} (", holder.id())) && m.contains("hold-pools-db"),
        "the holder is named: {m}"
    );
    // Released, the same allocation goes through.
    let o = bins.run(
        t.path(),
        "hostdevctl",
        &["-o", "json", "pool", "allocate", "p", "--consumer", "vm-1"],
        None,
    );
    let errs = json_errors(&o.stderr);
    assert!(
        errs.iter().all(|e| e["error"]["code"] != "store.db_busy"),
        "{}",
        show(&o)
    );
}

/// Runs `hostdevctl args…` on `root`, killing it after 20 s: `None` if it
/// had to be killed (it hung).
fn bounded(
    bins: &Bins,
    root: &std::path::Path,
    args: &[&str],
    stdin: &[u8],
) -> Option<std::process::Output> {
    use std::io::Write;
    let mut child = std::process::Command::new(bins.path("hostdevctl"))
        .args(args)
        .env("HOSTDEV_ROOT", root)
        .env("HOSTDEV_SOCKET", "")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(stdin);
    }
    let t0 = std::time::Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if t0.elapsed() > std::time::Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Some(child.wait_with_output().expect("output"))
}

/// `apply --file FIFO`, `plan --from-vgpu-device-manager FIFO` and
/// `migrate prepare FIFO` blocked forever: files given on the command line
/// were read with no type or size check.
#[test]
fn fifos_and_huge_files_given_as_input_are_refused_not_waited_on() {
    let bins = Bins::new();
    let t = tree(&hostdev_testkit::fixed());
    let fifo = t.path().join("fifo");
    hostdev_testkit::mkfifo(&fifo).expect("fifo");
    let huge = t.path().join("huge");
    std::fs::write(&huge, vec![b'#'; 20 << 20]).expect("huge");
    for path in [&fifo, &huge] {
        let p = path.to_str().expect("path");
        for args in [
            vec!["apply", "--file", p],
            vec!["plan", "--file", p],
            vec!["plan", "--from-vgpu-device-manager", p, "-c", "x"],
            vec!["migrate", "prepare", p],
            vec!["migrate", "check", p],
            vec!["vdpa", "import", p, "--define"],
            vec![
                "mdev",
                "define",
                "-u",
                "11111111-0000-4000-8000-000000000001",
                "-p",
                "mtty",
                "--jsonfile",
                p,
            ],
        ] {
            let o = bounded(&bins, t.path(), &args, b"")
                .unwrap_or_else(|| panic!("{args:?} hung on {p}"));
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(1), "{args:?}: {}", show(&o));
            assert!(
                err.contains("not a regular file") || err.contains("larger than"),
                "{args:?}: {err}"
            );
        }
    }
    // libvirt passes a definition as --jsonfile /dev/stdin: still read.
    let json = br#"{"mdev_type": "mtty-1", "start": "manual", "attrs": []}"#;
    let o = bounded(
        &bins,
        t.path(),
        &[
            "mdevctl",
            "define",
            "-u",
            "11111111-0000-4000-8000-000000000002",
            "-p",
            "mtty",
            "--jsonfile",
            "/dev/stdin",
        ],
        json,
    )
    .expect("stdin");
    assert!(o.status.success(), "{}", show(&o));
}

/// Under `-o json`, an apply that exits 1 left its errors only inside the
/// report on stdout: stderr had no `{"error": …}` line, unlike every other
/// failing command.
#[test]
fn a_failed_apply_says_what_failed_on_stderr_as_every_command_does() {
    let bins = Bins::new();
    let t = tree(&hostdev_testkit::fixed());
    // On a plain tree a created device never appears: the create fails.
    let file = t.path().join("host.toml");
    std::fs::write(
        &file,
        "[host]\nid = \"t\"\n[[mdev_device]]\nuuid = \"11111111-2222-4333-8444-555555555555\"\nparent = \"mtty\"\ntype = \"mtty-1\"\n",
    )
    .expect("file");
    let o = bins.run(
        t.path(),
        "hostdevctl",
        &[
            "-o",
            "json",
            "apply",
            "--file",
            file.to_str().expect("path"),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("the report");
    assert_eq!(report["outcomes"][0]["result"], "failed", "{}", show(&o));
    let errs = json_errors(&o.stderr);
    assert_eq!(errs.len(), 1, "{}", show(&o));
    assert_eq!(errs[0]["error"]["code"], "host.apply_failed");
    let m = errs[0]["error"]["message"].as_str().expect("message");
    assert!(
        m.contains("11111111-2222-4333-8444-555555555555") && m.contains("did not become ready"),
        "{m}"
    );
}
