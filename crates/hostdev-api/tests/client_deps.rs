//! A program that only calls hostdevd (`examples/devices.rs`) links
//! hostdev-api with its `client` feature and none of the host code: no
//! sysfs, store, SQLite, kernel or core crate is in its dependency tree.
#![allow(clippy::expect_used)] // tests: a failed expectation is the report

use std::process::Command;

#[test]
fn a_client_of_the_daemon_links_no_host_code() {
    let o = Command::new(env!("CARGO"))
        .args(["tree", "-p", "hostdev-api", "--features", "client"])
        .args(["-e", "normal", "--prefix", "none", "--offline", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    let tree = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    println!("{tree}");
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for wanted in [
        "hostdev-api",
        "hostdev-model",
        "serde_json",
        "serde_urlencoded",
    ] {
        assert!(
            crates.contains(&wanted),
            "{wanted} is missing from:\n{tree}"
        );
    }
    for host in [
        "hostdev-sysfs",
        "hostdev-store",
        "rusqlite",
        "libsqlite3-sys",
        "hostdev-core",
        "hostdev-vdpa",
        "hostdev-vfio",
        "hostdev-fs",
        "rustix",
    ] {
        assert!(
            !crates.contains(&host),
            "{host} is linked by a client:\n{tree}"
        );
    }
}
