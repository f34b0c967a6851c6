//! hostdevd's API against hostile and careless clients, on a plain tree (no
//! kernel needed): malformed JSON, unknown fields, oversized bodies, slow and
//! vanished clients, many at once — each gets a 4xx with a sentence or is
//! timed out, and the daemon keeps serving. Also: the configuration refuses
//! unknown keys by name, and docs/openapi.json is not stale.
#![allow(clippy::expect_used)] // tests: a failed expectation is the report

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Daemon {
    child: Child,
    socket: PathBuf,
    _root: tempfile::TempDir,
}

/// hostdevd with `cfg` on `socket` over the tree at `root` (and `envs`),
/// once it answers on its socket (at most 10 s).
fn serving(cfg: &Path, socket: &Path, root: &Path, envs: &[(&str, &str)]) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_hostdevd"))
        .arg("--config")
        .arg(cfg)
        .arg("--socket")
        .arg(socket)
        .env("HOSTDEV_ROOT", root)
        .envs(envs.iter().copied())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let t0 = Instant::now();
    while UnixStream::connect(socket).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(10), "not serving");
        std::thread::sleep(Duration::from_millis(10));
    }
    child
}

impl Daemon {
    fn start(extra: &str) -> Daemon {
        let root = tempfile::tempdir().expect("tempdir");
        hostdev_testkit::write_tree(root.path(), &hostdev_testkit::fixed()).expect("tree");
        let cfg = root.path().join("hostdevd.toml");
        std::fs::write(
            &cfg,
            format!("uevents = false\nrestore_on_start = false\ngroup = \"root\"\nrequest_timeout_secs = 1\nmax_body_bytes = 65536\n{extra}"),
        )
        .expect("config");
        let socket = root.path().join("run/hostdevd.sock");
        let child = serving(
            &cfg,
            &socket,
            root.path(),
            &[("HOSTDEV_READY_TIMEOUT_MS", "200")],
        );
        Daemon {
            child,
            socket,
            _root: root,
        }
    }

    /// One raw request: (status code, body).
    fn raw(&self, req: &[u8]) -> (u16, String) {
        let mut s = UnixStream::connect(&self.socket).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        s.write_all(req).expect("send");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        let status = out
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        (status, body.to_string())
    }

    fn post(&self, path: &str, body: &[u8]) -> (u16, String) {
        let mut r = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        self.raw(&r)
    }

    fn get(&self, path: &str) -> (u16, String) {
        self.raw(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sentence(body: &str) -> (String, String) {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (
        v["code"].as_str().expect("code").to_string(),
        v["message"].as_str().expect("message").to_string(),
    )
}

#[test]
fn bad_requests_get_a_4xx_with_a_sentence_and_the_daemon_keeps_serving() {
    let d = Daemon::start("");
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("/v1/mdev/define", b"{".to_vec(), 400, "request.invalid"),
        ("/v1/mdev/define", b"[1,2]".to_vec(), 400, "request.invalid"),
        (
            "/v1/mdev/define",
            br#"{"parnet":"mtty"}"#.to_vec(),
            400,
            "request.invalid",
        ),
        (
            "/v1/mdev/stop",
            br#"{"uuid":"../../etc/passwd"}"#.to_vec(),
            400,
            "request.invalid",
        ),
        (
            "/v1/mdev/define",
            br#"{"parent":"../..","mdev_type":"x"}"#.to_vec(),
            400,
            "request.invalid",
        ),
        ("/v1/mdev/stop", vec![0xff, 0xfe], 400, "request.invalid"),
        (
            "/v1/mdev/define",
            vec![b' '; 70_000],
            413,
            "request.too_large",
        ),
        ("/v1/nosuch", b"{}".to_vec(), 404, "request.no_route"),
        ("/v1/devices", b"{}".to_vec(), 405, "request.method"),
    ];
    for (path, body, status, code) in cases {
        let (s, b) = d.post(path, &body);
        assert_eq!(s, status, "{path}: {b}");
        let (c, m) = sentence(&b);
        assert_eq!(c, code, "{path}: {m}");
        assert!(m.len() > 20 && !m.contains('\n'), "a sentence: {m}");
    }
    let (s, b) = d.get("/v1/mdev/devices?defined=maybe");
    assert_eq!(s, 400, "{b}");
    let (s, b) = d.get("/v1/mdev/devices?uuid=..%2F..%2Fetc");
    assert_eq!(s, 400, "{b}");
    // A failed operation: the status of its class, with the core's code
    // and the device it concerns.
    let (s, b) = d.post(
        "/v1/mdev/stop",
        br#"{"uuid":"11111111-2222-4333-8444-555555555599"}"#,
    );
    assert_eq!(s, 404, "{b}");
    let v: serde_json::Value = serde_json::from_str(&b).expect("json");
    assert_eq!(v["class"], "not_found", "{b}");
    assert_eq!(v["code"], "mdev.not_running", "{b}");
    assert_eq!(
        v["target"]["uuid"], "11111111-2222-4333-8444-555555555599",
        "{b}"
    );
    // Still serving.
    let (s, b) = d.get("/v1/mdev/devices?defined=true");
    assert_eq!(s, 200, "{b}");
}

#[test]
fn slow_vanished_and_many_clients_do_not_stop_the_daemon() {
    let d = Daemon::start("max_connections = 16\n");
    // Slow: headers never finished — the daemon closes within its timeout.
    let mut slow = UnixStream::connect(&d.socket).expect("connect");
    slow.write_all(b"GET /v1/devices HTTP/1.1\r\nHost:")
        .expect("send");
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let t0 = Instant::now();
    let mut buf = Vec::new();
    let _ = slow.read_to_end(&mut buf);
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "slow client not timed out"
    );
    // Slow body: announced but never sent.
    let (s, b) = d.raw(b"POST /v1/mdev/stop HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 100\r\n\r\n{");
    assert!(s == 408 || s == 0, "{s} {b}");
    // Vanished: connect, half a request, gone.
    for _ in 0..20 {
        let mut v = UnixStream::connect(&d.socket).expect("connect");
        let _ = v.write_all(b"POST /v1/mdev/define HTTP/1.1\r\nContent-Length: 50\r\n\r\n{\"uu");
    }
    // 64 at once, more than max_connections: all answered.
    let sock = d.socket.clone();
    let threads: Vec<_> = (0..64)
        .map(|_| {
            let sock = sock.clone();
            std::thread::spawn(move || {
                let mut s = UnixStream::connect(&sock).expect("connect");
                s.set_read_timeout(Some(Duration::from_secs(30)))
                    .expect("t");
                s.write_all(b"GET /v1/mdev/types HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .expect("send");
                let mut out = String::new();
                let _ = s.read_to_string(&mut out);
                out.starts_with("HTTP/1.1 200")
            })
        })
        .collect();
    let ok = threads
        .into_iter()
        .map(|t| t.join().expect("join"))
        .filter(|ok| *ok)
        .count();
    assert_eq!(ok, 64);
    let (s, _) = d.get("/v1/devices");
    assert_eq!(s, 200);
}

#[test]
fn sigterm_stops_cleanly_and_removes_the_socket() {
    let mut d = Daemon::start("");
    let pid = rustix::process::Pid::from_raw(d.child.id() as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("term");
    let st = d.child.wait().expect("wait");
    assert!(st.success(), "{st:?}");
    assert!(!d.socket.exists());
}

#[test]
fn a_second_daemon_on_the_same_socket_is_refused() {
    let d = Daemon::start("");
    let o = Command::new(env!("CARGO_BIN_EXE_hostdevd"))
        .arg("--socket")
        .arg(&d.socket)
        .env_remove("HOSTDEV_ROOT")
        .output()
        .expect("run");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("another hostdevd already answers"), "{err}");
}

#[test]
fn a_root_prefix_that_is_not_there_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = Command::new(env!("CARGO_BIN_EXE_hostdevd"))
        .arg("--socket")
        .arg(dir.path().join("s.sock"))
        .env("HOSTDEV_ROOT", dir.path().join("typo"))
        .output()
        .expect("run");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("typo (HOSTDEV_ROOT) is not a directory"),
        "{err}"
    );
    assert!(!dir.path().join("s.sock").exists());
}

#[test]
fn unknown_configuration_keys_are_refused_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "resync_interval = 5\n").expect("write");
    let o = Command::new(env!("CARGO_BIN_EXE_hostdevd"))
        .arg("--config")
        .arg(&cfg)
        .arg("--check-config")
        .output()
        .expect("run");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("unknown field `resync_interval`") && err.contains("c.toml"),
        "{err}"
    );
}

#[test]
fn the_checked_in_api_document_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let now = serde_json::to_string_pretty(&hostdevd::openapi::document()).expect("json") + "\n";
    if std::env::var("HOSTDEV_REGEN").as_deref() == Ok("1") {
        std::fs::write(&path, &now).expect("write");
    }
    let kept = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        kept == now,
        "docs/openapi.json is stale: regenerate with HOSTDEV_REGEN=1 cargo test -p hostdevd --test api"
    );
    // Every operation of the vocabulary is in it.
    for r in hostdev_core::api::ops::routes() {
        assert!(now.contains(&format!("\"{}\"", r.path)), "{}", r.path);
    }
}

#[test]
fn a_restore_asked_for_is_reported_as_an_event() {
    let d = Daemon::start("");
    let (s, b) = d.post("/v1/restore", b"{}");
    assert_eq!(s, 200, "{b}");
    let report: serde_json::Value = serde_json::from_str(&b).expect("json");
    assert!(!report["rows"].as_array().expect("rows").is_empty(), "{b}");
    let text = events_since_start(&d.socket, Duration::from_millis(500));
    assert!(
        text.contains("\"type\":\"restored\"") && text.contains("\"trigger\":\"request\""),
        "{text}"
    );
}

/// What the event stream at `socket` sends from its first event until it
/// has been quiet for `quiet` (the stream stays open; the read ends there).
fn events_since_start(socket: &Path, quiet: Duration) -> String {
    let mut st = UnixStream::connect(socket).expect("connect");
    st.set_read_timeout(Some(quiet)).expect("timeout");
    st.write_all(b"GET /v1/events?since=0 HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    while let Ok(n) = st.read(&mut chunk) {
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// The drift events of a daemon serving `root` from its start: what its
/// first look found (read until `min` drift events came, at most 3 s).
fn drift_at_start(root: &Path, min: usize) -> Vec<(String, String)> {
    let cfg = root.join("hostdevd-drift.toml");
    std::fs::write(
        &cfg,
        "uevents = false\nrestore_on_start = false\ngroup = \"root\"\nresync_interval_secs = 3600\n",
    )
    .expect("config");
    let socket = root.join("run/hostdevd.sock");
    let _ = std::fs::remove_file(&socket);
    let mut child = serving(&cfg, &socket, root, &[]);
    let t0 = Instant::now();
    let mut found = Vec::new();
    while t0.elapsed() < Duration::from_secs(3) && found.len() < min {
        found = events_since_start(&socket, Duration::from_millis(200))
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l.trim()).ok())
            .filter(|e| e["type"] == "drift")
            .map(|e| {
                (
                    e["device"]["id"].as_str().unwrap_or_default().to_string(),
                    e["drift"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
    }
    let _ = child.kill();
    let _ = child.wait();
    found
}

/// The fixed tree's undefined running devices at start (at least two), and
/// the parent of the first.
fn undefined_at_start(root: &Path) -> (Vec<String>, String) {
    let undefined: Vec<String> = drift_at_start(root, 2)
        .into_iter()
        .filter(|(_, k)| k == "undefined")
        .map(|(id, _)| id)
        .collect();
    assert!(
        undefined.len() >= 2,
        "the tree runs undefined devices: {undefined:?}"
    );
    let parent = std::fs::read_link(root.join("sys/bus/mdev/devices").join(&undefined[0]))
        .expect("link")
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .expect("parent");
    (undefined, parent)
}

/// hostdevd reported every on-demand pool device as drift (`undefined`) at
/// start and after each restart: a device a pool made is owned, not drift.
#[test]
fn a_pool_device_is_not_drift_at_start_or_after_a_restart() {
    use hostdev_store::{DeviceRecord, Origin, PoolDb, RecState};
    let root = tempfile::tempdir().expect("tempdir");
    hostdev_testkit::write_tree(root.path(), &hostdev_testkit::fixed()).expect("tree");
    let (undefined, parent) = undefined_at_start(root.path());
    let (mine, other) = (&undefined[0], &undefined[1]);
    let pools = root.path().join("etc/hostdev/pools.d");
    std::fs::create_dir_all(&pools).expect("dir");
    std::fs::write(pools.join("p.toml"), "kind = \"mdev\"\ntype = \"mtty-1\"\n").expect("pool");
    let db = PoolDb::open(root.path()).expect("pools.db");
    db.write(|tx| {
        tx.insert(&DeviceRecord {
            id: mine.clone(),
            pool: "p".into(),
            member: parent.clone(),
            origin: Origin::OnDemand,
            state: RecState::Allocated,
            consumer: Some("vm-1".into()),
            since: 0,
            expires: None,
            element: String::new(),
        })
    })
    .expect("record");
    for start in ["start", "restart"] {
        let drift = drift_at_start(root.path(), undefined.len() - 1);
        assert!(
            !drift.iter().any(|(id, _)| id == mine),
            "{start}: the pool's device is not drift: {drift:?}"
        );
        assert!(
            drift.iter().any(|(id, k)| id == other && k == "undefined"),
            "{start}: other undefined devices still are: {drift:?}"
        );
    }
}

/// hostdevd reported every device a DRA claim's prepare made as drift
/// (`undefined`): 160 warnings, events and a drift gauge of 160 in
/// `TestDRAScale`. A claim's device is owned, as a pool's is.
#[test]
fn a_device_a_claim_holds_is_not_drift() {
    let root = tempfile::tempdir().expect("tempdir");
    hostdev_testkit::write_tree(root.path(), &hostdev_testkit::fixed()).expect("tree");
    let (undefined, parent) = undefined_at_start(root.path());
    let (mine, other) = (&undefined[0], &undefined[1]);
    let mdev_type = std::fs::read_link(
        root.path()
            .join("sys/bus/mdev/devices")
            .join(mine)
            .join("mdev_type"),
    )
    .expect("link")
    .file_name()
    .map(|n| n.to_string_lossy().into_owned())
    .expect("type");
    // The record a prepare writes (its on-disk format, which outlives an
    // upgrade), naming the running device.
    let claims = root.path().join("var/lib/hostdev/dra/claims");
    std::fs::create_dir_all(&claims).expect("dir");
    let uid = "00000000-0000-4000-8000-0000000000c1";
    let record = serde_json::json!({
        "claim": {"uid": uid, "namespace": "ns", "name": "vm-1"},
        "stage": "prepared",
        "devices": [{
            "request": "gpu",
            "device": "d-0",
            "made": {"kind": "mdev", "uuid": mine, "parent": parent, "mdev_type": mdev_type},
        }],
    });
    std::fs::write(claims.join(format!("{uid}.json")), record.to_string()).expect("record");
    let drift = drift_at_start(root.path(), undefined.len() - 1);
    assert!(
        !drift.iter().any(|(id, _)| id == mine),
        "the claim's device is not drift: {drift:?}"
    );
    assert!(
        drift.iter().any(|(id, k)| id == other && k == "undefined"),
        "other undefined devices still are: {drift:?}"
    );
}
