//! The driver stops when told to (SIGTERM) while it follows hostdevd's
//! events and hostdevd says nothing: the event stream's reader blocks on
//! its socket, and a runtime that waited for it would never end. The fake
//! hostdevd here answers every request with the head of an event stream
//! and then stays silent; the apiserver is an address nothing listens on.
#![allow(clippy::expect_used, clippy::unwrap_used)] // tests: a failed expectation is the report

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a stopped driver may take before the test calls it hung (a
/// bound on a hang, not a speed: the driver stops in well under a second).
const HUNG: Duration = Duration::from_secs(60);

#[test]
fn sigterm_stops_the_driver_while_hostdevd_is_silent() {
    let d = tempfile::tempdir().unwrap();
    let socket = d.path().join("hostdevd.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    std::thread::spawn(move || {
        let mut open = Vec::new();
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { return };
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ = c.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\n\r\n",
            );
            open.push(c);
        }
    });
    let kubeconfig = d.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: [{name: x, cluster: {server: \"https://127.0.0.1:1\"}}]\n\
         users: [{name: x, user: {token: x}}]\ncontexts: [{name: x, context: {cluster: x, user: x}}]\ncurrent-context: x\n",
    )
    .unwrap();
    let mut driver = Command::new(env!("CARGO_BIN_EXE_hostdev-dra"))
        .args(["--node", "n1", "--interval-ms", "60000", "--socket"])
        .arg(&socket)
        .arg("--kubelet-dir")
        .arg(d.path().join("kubelet"))
        .arg("--cdi-dir")
        .arg(d.path().join("cdi"))
        .env("KUBECONFIG", &kubeconfig)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(driver.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    loop {
        let l = lines
            .next()
            .unwrap_or_else(|| panic!("the driver ended before following the events: {seen:?}"))
            .unwrap();
        if l.contains("following hostdevd's events") {
            break;
        }
        seen.push(l);
    }
    std::thread::spawn(move || for _ in lines {});
    let killed = Command::new("kill")
        .args(["-TERM", &driver.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let asked = Instant::now();
    loop {
        if let Some(status) = driver.try_wait().unwrap() {
            assert!(status.success(), "the driver ended with {status}");
            return;
        }
        if asked.elapsed() > HUNG {
            let _ = driver.kill();
            panic!("the driver did not stop within {HUNG:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
