//! The driver is a front-end: it reaches the host only through hostdevd's
//! API client, so no sysfs, store, SQLite, kernel or core crate may be in
//! its dependency tree.
#![allow(clippy::expect_used)] // tests: a failed expectation is the report

use std::process::Command;

#[test]
fn the_driver_links_no_host_code() {
    let o = Command::new(env!("CARGO"))
        .args(["tree", "-p", "hostdev-dra", "-e", "normal"])
        .args(["--prefix", "none", "--offline", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    let tree = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for wanted in ["hostdev-api", "kube", "k8s-openapi", "tonic", "prost"] {
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
    ] {
        assert!(
            !crates.contains(&host),
            "{host} is linked by the driver:\n{tree}"
        );
    }
}
