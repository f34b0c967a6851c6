//! Shared helpers of the end-to-end tests: our binary under its personalities,
//! generated trees, and the gate for tests that need the peer.
#![allow(dead_code)]

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A temp dir holding `bin/{hostdevctl,mdevctl,lsmdev}` links to the built binary.
pub struct Bins {
    pub dir: tempfile::TempDir,
    /// The daemon's socket the commands are pointed at; `None`: act directly.
    pub socket: Option<PathBuf>,
}

impl Bins {
    pub fn new() -> Bins {
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = PathBuf::from(env!("CARGO_BIN_EXE_hostdevctl"));
        std::fs::create_dir_all(dir.path().join("bin")).expect("bin dir");
        for n in ["hostdevctl", "mdevctl", "lsmdev"] {
            symlink(&exe, dir.path().join("bin").join(n)).expect("symlink");
        }
        Bins { dir, socket: None }
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
        match &self.socket {
            Some(s) => cmd.env("HOSTDEV_SOCKET", s),
            None => cmd.env("HOSTDEV_SOCKET", ""),
        };
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

/// A binary of another package of the workspace, built beside ours
/// (`cargo test --workspace` builds it; a narrower run builds it here).
pub fn sibling_binary(package: &str, name: &str) -> PathBuf {
    let ours = PathBuf::from(env!("CARGO_BIN_EXE_hostdevctl"));
    let exe = ours.with_file_name(name);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let ok = Command::new(cargo)
        .args(["build", "-q", "-p", package, "--bin", name])
        .status()
        .map(|s| s.success());
    assert_eq!(ok.ok(), Some(true), "cannot build {name}");
    exe
}

/// A hostdevd serving `root` on `root/run/hostdevd.sock` (no restore at
/// start, no kernel events, no resync during the test); stopped with SIGTERM.
pub struct Daemon {
    pub socket: PathBuf,
    child: std::process::Child,
    _config: tempfile::TempDir,
}

impl Daemon {
    pub fn start(root: &Path, config: &str) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("hostdevd.toml");
        std::fs::write(&cfg, config).expect("config");
        let socket = root.join("run/hostdevd.sock");
        let child = Command::new(sibling_binary("hostdevd", "hostdevd"))
            .arg("--config")
            .arg(&cfg)
            .arg("--socket")
            .arg(&socket)
            .env("HOSTDEV_ROOT", root)
            .env("HOSTDEV_READY_TIMEOUT_MS", "200")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn hostdevd");
        Daemon::serving(child, socket, dir)
    }

    /// A hostdevd on the real host (the kernel lab: no `HOSTDEV_ROOT`),
    /// serving `socket`, or hostdevd's default socket when `None`.
    pub fn on_host(config: &str, socket: Option<&Path>) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("hostdevd.toml");
        std::fs::write(&cfg, config).expect("config");
        // Built beside ours by `cargo xtask kernel-test`: nothing is built
        // inside the lab's guest.
        let exe = PathBuf::from(env!("CARGO_BIN_EXE_hostdevctl")).with_file_name("hostdevd");
        let mut c = Command::new(exe);
        c.arg("--config").arg(&cfg).env_remove("HOSTDEV_ROOT");
        if let Some(s) = socket {
            c.arg("--socket").arg(s);
        }
        let child = c.spawn().expect("spawn hostdevd");
        let socket = socket.map_or_else(
            || PathBuf::from("/run/hostdev/hostdev.sock"),
            Path::to_path_buf,
        );
        Daemon::serving(child, socket, dir)
    }

    /// Waits (10 s at most) until the daemon answers on its socket.
    fn serving(child: Child, socket: PathBuf, config: tempfile::TempDir) -> Daemon {
        let d = Daemon {
            socket,
            child,
            _config: config,
        };
        let t0 = std::time::Instant::now();
        while std::os::unix::net::UnixStream::connect(&d.socket).is_err() {
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(10),
                "hostdevd did not start serving"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        d
    }

    /// Stops the daemon with SIGTERM and says how it exited.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.terminate();
        self.child.wait().expect("wait for hostdevd")
    }

    fn terminate(&mut self) {
        // A child already waited for keeps its pid no longer: never signal it.
        if matches!(self.child.try_wait(), Ok(None)) {
            if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
        }
    }

    /// The quiet configuration of golden runs.
    pub const QUIET: &'static str =
        "restore_on_start = false\nuevents = false\nresync_interval_secs = 3600\ngroup = \"root\"\n";
}

impl Daemon {
    /// Kills the daemon with SIGKILL (no graceful stop) and waits for it.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.terminate();
        let _ = self.child.wait();
    }
}

/// `GET path` on a daemon's socket: status line and body.
pub fn http_get(socket: &Path, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

/// `POST path` with a JSON body on a daemon's socket: status line and body.
pub fn http_post(socket: &Path, path: &str, body: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket).expect("connect");
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    (
        head.lines().next().unwrap_or("").to_string(),
        if chunked {
            dechunk(body)
        } else {
            body.to_string()
        },
    )
}

/// An HTTP/1.1 chunked body's content.
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if n == 0 {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].strip_prefix("\r\n").unwrap_or(&tail[n..]);
    }
    out
}

/// A running simulated lab (`hostdev-sim run`) on a temp root; unmounted on drop.
pub struct Sim {
    root: tempfile::TempDir,
    child: Child,
}

pub fn sim_binary() -> PathBuf {
    let ours = PathBuf::from(env!("CARGO_BIN_EXE_hostdevctl"));
    let sim = ours.with_file_name("hostdev-sim");
    // `cargo test --workspace` builds it; a narrower run must not use a stale one.
    // The simulator's own sources and the kernel model it serves.
    let newest_source = [
        "hostdev-sim/src",
        "hostdev-sim/profiles",
        "hostdev-kmodel/src",
    ]
    .iter()
    .flat_map(|d| {
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(d))
            .into_iter()
            .flatten()
    })
    .flatten()
    .filter_map(|e| e.metadata().ok()?.modified().ok())
    .max();
    let built = std::fs::metadata(&sim).and_then(|m| m.modified()).ok();
    match (built, newest_source) {
        (Some(b), Some(s)) if b >= s => sim,
        (Some(_), None) => sim,
        _ => {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let ok = Command::new(cargo)
                .args(["build", "-q", "-p", "hostdev-sim"])
                .status()
                .map(|s| s.success());
            assert_eq!(
                ok.ok(),
                Some(true),
                "{} is missing or stale and cannot be built",
                sim.display()
            );
            sim
        }
    }
}

/// Fails the test when FUSE is not usable (see `common::require_peer`).
pub fn require_fuse(test: &str) {
    let ok = Path::new("/dev/fuse").exists()
        && Command::new("fusermount3")
            .arg("-V")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
    assert!(ok, "{test}: FUSE is not usable here (install fuse3)");
}

impl Sim {
    pub fn start(profile: &str) -> Sim {
        let root = tempfile::tempdir().expect("tempdir");
        let child = Command::new(sim_binary())
            .args(["run", "--root"])
            .arg(root.path())
            .args(["--profile", profile])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn hostdev-sim");
        let t0 = Instant::now();
        while !root.path().join("run/hostdev-sim.pid").exists()
            || !root.path().join("sys/class").exists()
        {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "hostdev-sim did not mount"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Sim { root, child }
    }

    pub fn path(&self) -> &Path {
        self.root.path()
    }

    pub fn read(&self, p: &str) -> String {
        std::fs::read_to_string(self.path().join("sys").join(p))
            .unwrap_or_else(|e| panic!("{p}: {e}"))
            .trim()
            .to_string()
    }

    pub fn avail(&self, parent: &str, t: &str) -> u32 {
        self.read(&format!(
            "class/mdev_bus/{parent}/mdev_supported_types/{t}/available_instances"
        ))
        .parse()
        .expect("number")
    }

    /// Waits (at most 10 s) until the driver has set these VFs up.
    pub fn wait_vfs_ready(&self, vfs: &[&str]) {
        let t0 = Instant::now();
        while !vfs.iter().all(|v| {
            self.path()
                .join(format!("sys/bus/pci/devices/{v}/nvidia/current_vgpu_type"))
                .exists()
        }) {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "VFs did not get ready"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn reboot(&self) {
        let o = Command::new(sim_binary())
            .args(["reboot", "--root"])
            .arg(self.path())
            .output()
            .expect("reboot");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32);
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let _ = self.child.wait();
    }
}

/// Polls `f` for up to `secs` seconds.
pub fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "not within {secs} s: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The kept events, read from `since=0` until `min` arrived or 2 s passed.
pub fn read_events(socket: &Path, min: usize) -> Vec<serde_json::Value> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    write!(
        s,
        "GET /v1/events?since=0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut buf = Vec::new();
    let t0 = Instant::now();
    let mut chunk = [0u8; 65536];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => {}
        }
        let n = String::from_utf8_lossy(&buf).matches("\"seq\"").count();
        if (n >= min && min > 0) || t0.elapsed() > Duration::from_secs(2) {
            break;
        }
    }
    let text = String::from_utf8_lossy(&buf);
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            l.starts_with('{')
                .then(|| serde_json::from_str(l).ok())
                .flatten()
        })
        .collect()
}

/// Runs a command that must succeed; its stdout.
pub fn ok(bins: &Bins, root: &Path, name: &str, args: &[&str]) -> String {
    let o = bins.run(root, name, args, None);
    assert!(o.status.success(), "{name} {args:?}: {}", show(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Compares `actual` with `tests/golden/NAME.txt` (`HOSTDEV_REGEN=1`
/// writes it instead); a difference leaves `NAME.actual` beside it.
pub fn check_golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.txt"));
    if std::env::var("HOSTDEV_REGEN").as_deref() == Ok("1") {
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected != actual {
        let actual_path = path.with_extension("actual");
        let _ = std::fs::write(&actual_path, actual);
        panic!(
            "{name}: output differs from {}; see {} (HOSTDEV_REGEN=1 to accept)",
            path.display(),
            actual_path.display()
        );
    }
}

/// One command's part of a transcript: the command, its stdout, its
/// stderr lines marked, its exit status.
pub fn transcript_step(command: &str, stdout: &str, stderr: &str, rc: i32) -> String {
    let mut out = format!("$ {command}\n{stdout}");
    for l in stderr.lines() {
        out.push_str(&format!("stderr: {l}\n"));
    }
    out.push_str(&format!("rc={rc}\n\n"));
    out
}
