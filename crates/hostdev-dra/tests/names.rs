//! The driver refuses, before it starts anything, names it would carry
//! into objects the apiserver refuses: a driver name over 63 bytes (it is
//! part of every ResourceSlice's name and a label value).
#![allow(clippy::expect_used, clippy::unwrap_used)] // tests: a failed expectation is the report

use std::process::Command;

#[test]
fn a_driver_name_over_63_bytes_is_refused_at_start_with_a_sentence() {
    let d = tempfile::tempdir().unwrap();
    // A DNS subdomain of 64 bytes.
    let driver = format!("{}.io", "d".repeat(61));
    assert_eq!(driver.len(), 64);
    let o = Command::new(env!("CARGO_BIN_EXE_hostdev-dra"))
        .args(["--node", "n1", "--driver", &driver, "--socket"])
        .arg(d.path().join("hostdevd.sock"))
        .arg("--kubelet-dir")
        .arg(d.path().join("kubelet"))
        .arg("--cdi-dir")
        .arg(d.path().join("cdi"))
        // Nothing to reach: a driver that started would fail at once.
        .env("KUBECONFIG", d.path().join("no-kubeconfig"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&driver) && err.contains("64 bytes") && err.contains("at most 63"),
        "{err}"
    );
    assert!(!d.path().join("kubelet").exists(), "it started: {err}");
}
