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
