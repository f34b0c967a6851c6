//! The API document against the live daemon: an independent validator
//! (openapi-spec-validator, from PyPI) accepts `docs/openapi.json`, then a
//! schema-driven fuzzer (schemathesis, from PyPI) sends requests made from
//! it to hostdevd serving the simulated lab — once as root, once as a
//! member of the readers' group (a real other user, through `setpriv`) —
//! for a bounded time each (`HOSTDEV_API_FUZZ_SECONDS`, default 60). No
//! answer may be a 5xx, have a status the document does not list for the
//! operation, or violate the schema the document gives it. How many
//! requests were sent is printed.
//!
//! The fuzzer speaks TCP; socat (run as the peer whose rights are tested)
//! carries each connection to the daemon's unix socket, so the daemon sees
//! that peer's credentials.
#![allow(clippy::expect_used)] // tests: a failed expectation is the report

mod common;

use common::{require_fuse, Daemon, Sim};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn document() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

fn need(cmd: &str, arg: &str) {
    let ok = Command::new(cmd)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "the schema fuzz needs {cmd} (socat from Debian; schemathesis and openapi-spec-validator from PyPI: .ci/run installs them)"
    );
}

/// A port free on loopback now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// socat on `port`, run as `peer` (setpriv arguments; empty: root).
struct Relay(Child);

impl Relay {
    fn start(port: u16, socket: &Path, peer: &[&str]) -> Relay {
        let mut c = if peer.is_empty() {
            Command::new("socat")
        } else {
            let mut c = Command::new("setpriv");
            c.args(peer).arg("socat");
            c
        };
        let child = c
            .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"))
            .arg(format!("UNIX-CONNECT:{}", socket.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn socat");
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "socat did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Relay(child)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs schemathesis against `port` for `secs`; the number of requests
/// (test cases) it made.
fn fuzz(port: u16, secs: u64, who: &str, report: &Path) -> u64 {
    let o = Command::new("schemathesis")
        .arg("run")
        .arg(document())
        .args(["-u", &format!("http://127.0.0.1:{port}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        // A stream that never ends; read by the daemon tier instead.
        .args(["--exclude-path", "/v1/events"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-time", &secs.to_string()])
        .args(["--request-timeout", "30"])
        .args(["--seed", "24"])
        .arg("--report-junit-path")
        .arg(report)
        .env("NO_COLOR", "1")
        .output()
        .expect("run schemathesis");
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    // "Test cases:" is followed by "  N generated, …".
    let generated = out
        .lines()
        .skip_while(|l| l.trim() != "Test cases:")
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    println!("schema fuzz as {who}: {generated} requests in at most {secs} s");
    assert!(
        o.status.success(),
        "schemathesis found problems as {who}:\n{out}\n{err}"
    );
    assert!(
        generated > 0,
        "schemathesis sent nothing as {who}:\n{out}\n{err}"
    );
    generated
}

#[test]
#[ignore = "needs FUSE, root, setpriv, socat, schemathesis and openapi-spec-validator; run by `cargo xtask test`"]
fn the_document_is_valid_and_a_schema_fuzz_of_the_live_daemon_finds_nothing() {
    require_fuse("api_fuzz");
    need("socat", "-V");
    need("setpriv", "--version");
    need("schemathesis", "--version");
    need("openapi-spec-validator", "--help");
    let v = Command::new("openapi-spec-validator")
        .arg(document())
        .output()
        .expect("run openapi-spec-validator");
    assert!(
        v.status.success(),
        "openapi-spec-validator refused docs/openapi.json:\n{}{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );

    let secs: u64 = std::env::var("HOSTDEV_API_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let users = std::fs::read_to_string("/etc/group")
        .expect("/etc/group")
        .lines()
        .find_map(|l| {
            l.strip_prefix("users:x:")?
                .split(':')
                .next()?
                .parse::<u32>()
                .ok()
        })
        .expect("the group 'users' exists on Debian");
    let sim = Sim::start("demo");
    let d = Daemon::start(
        sim.path(),
        "restore_on_start = false\nuevents = false\nresync_interval_secs = 3600\ngroup = \"users\"\n",
    );
    let reports = tempfile::tempdir().expect("tempdir");
    let mut total = 0;
    {
        let port = free_port();
        let _relay = Relay::start(port, &d.socket, &[]);
        total += fuzz(port, secs, "root", &reports.path().join("root.xml"));
    }
    {
        let port = free_port();
        let regid = format!("--regid={users}");
        let _relay = Relay::start(
            port,
            &d.socket,
            &["--reuid=65534", &regid, "--clear-groups"],
        );
        total += fuzz(
            port,
            secs,
            "a member of 'users'",
            &reports.path().join("group.xml"),
        );
    }
    // The daemon is still serving after all of it.
    let (status, _) = common::http_get(&d.socket, "/v1/devices");
    assert!(status.contains("200"), "{status}");
    println!("schema fuzz: {total} requests in all, no 5xx, no reply off its schema");
}
