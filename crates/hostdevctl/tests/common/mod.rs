//! Shared helpers of the end-to-end tests: our binary under its personalities,
//! generated trees, and the gate for tests that need the peer.
#![allow(dead_code)]

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A temp dir holding `bin/{hostdevctl,mdevctl,lsmdev}` links to the built binary.
pub struct Bins {
    pub dir: tempfile::TempDir,
}

impl Bins {
    pub fn new() -> Bins {
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = PathBuf::from(env!("CARGO_BIN_EXE_hostdevctl"));
        std::fs::create_dir_all(dir.path().join("bin")).expect("bin dir");
        for n in ["hostdevctl", "mdevctl", "lsmdev"] {
            symlink(&exe, dir.path().join("bin").join(n)).expect("symlink");
        }
        Bins { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join("bin").join(name)
    }

    /// Runs `name args…` with `HOSTDEV_ROOT=root`.
    pub fn run(&self, root: &Path, name: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut cmd = Command::new(self.path(name));
        cmd.args(args)
            .env("HOSTDEV_ROOT", root)
            .env_remove("MDEVCTL_ENV_ROOT")
            .env("HOSTDEV_READY_TIMEOUT_MS", "200");
        run_with_stdin(cmd, stdin)
    }
}

pub fn run_with_stdin(mut cmd: Command, stdin: Option<&[u8]>) -> Output {
    use std::io::Write;
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().expect("spawn");
    if let (Some(data), Some(mut i)) = (stdin, child.stdin.take()) {
        let _ = i.write_all(data);
    }
    child.wait_with_output().expect("wait")
}

/// Fails the test when Debian's mdevctl or a private mount namespace is
/// missing. Tests that need the peer are `#[ignore]`d with the reason, so they
/// run only when asked for (`cargo xtask test` does where the peer is there):
/// asked for and impossible is a failure, never an early `ok`.
pub fn require_peer(test: &str) {
    assert!(
        hostdev_testkit::peer_mdevctl().is_some() && hostdev_testkit::can_unshare(),
        "{test}: needs Debian's mdevctl and unshare(1) as root, which are not available here"
    );
}

/// A fresh tree from `spec` in a temp dir.
pub fn tree(spec: &hostdev_testkit::TreeSpec) -> tempfile::TempDir {
    let t = tempfile::tempdir().expect("tempdir");
    hostdev_testkit::write_tree(t.path(), spec).expect("write tree");
    t
}

/// Status, stdout and stderr in one printable string.
pub fn show(o: &Output) -> String {
    format!(
        "rc={}\n--- stdout\n{}--- stderr\n{}",
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
