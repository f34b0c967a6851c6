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
