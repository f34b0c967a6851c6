//! hostdevd's router in process over the fakes (one `FakeKernel`,
//! `FakeSriov`, `FakeVdpa` and `FakeVfio` shared by every operation's view
//! of the host, and a real store in a temp dir), called as tower's
//! `oneshot` with the peer's credentials set as the listener sets them.
//! Every error has the status its class gives (the table in hostdev-api's
//! `ErrorClass`), and every reply of every operation asked here is valid
//! against its schema in the API document, then decodes into its Rust type.
#![allow(clippy::expect_used, clippy::unwrap_used)] // tests: a failed expectation is the report

use axum::body::Body;
use axum::http::Request;
use hostdev_core::SharedFakes;
use hostdev_sysfs::sriov::FakeSriov;
use hostdev_sysfs::sriov::PciSriov;
use hostdev_sysfs::{FakeKernel, FakeType};
use hostdev_vdpa::FakeVdpa;
use hostdevd::auth::Peer;
use hostdevd::config::Config;
use hostdevd::state::Shared;
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt;

const ROOT: Peer = Peer {
    uid: 0,
    gid: 0,
    pid: 1,
};
const STRANGER: Peer = Peer {
    uid: 4242,
    gid: 4242,
    pid: 2,
};

struct Lab {
    _dir: tempfile::TempDir,
    router: axum::Router,
    shared: Arc<Shared<SharedFakes>>,
    fakes: SharedFakes,
}

fn lab() -> Lab {
    let dir = tempfile::tempdir().expect("tempdir");
    let mdev = FakeKernel::new();
    mdev.add_parent(
        "mtty",
        vec![FakeType::new("mtty-1", 4), FakeType::new("mtty-2", 2)],
    );
    let sriov = FakeSriov::new();
    sriov.add_pf(
        "0000:41:00.0",
        4,
        16384,
        &[
            (1150, "NVIDIA L40S-4Q", 4096),
            (1151, "NVIDIA L40S-8Q", 8192),
        ],
        true,
    );
    sriov
        .set_num_vfs(&"0000:41:00.0".parse().unwrap(), 4)
        .unwrap();
    let vdpa = FakeVdpa::new();
    vdpa.add_mgmtdev("vdpasim_net", 1, &["mac", "mtu", "max_vqp"]);
    let fakes = SharedFakes {
        mdev: Arc::new(mdev),
        sriov: Arc::new(sriov),
        vdpa: Arc::new(vdpa),
        vfio: Arc::new(hostdev_vfio::FakeVfio::new()),
        root: dir.path().to_path_buf(),
    };
    let (shared, _nudges) = Shared::new(Config::default(), fakes.clone(), None);
    let router = hostdevd::server::router(Arc::clone(&shared));
    Lab {
        _dir: dir,
        router,
        shared,
        fakes,
    }
}

impl Lab {
    async fn call(&self, peer: Peer, method: &str, path: &str, body: Value) -> (u16, Value) {
        let body = if method == "GET" {
            Body::empty()
        } else {
            Body::from(body.to_string())
        };
        self.raw(peer, method, path, body).await
    }

    async fn raw(&self, peer: Peer, method: &str, path: &str, body: Body) -> (u16, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(body)
            .unwrap();
        req.extensions_mut().insert(peer);
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
            .await
            .unwrap();
        let v = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, v)
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(ROOT, "POST", path, body).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(ROOT, "GET", path, Value::Null).await
    }
}

/// The error's class and code, after checking that its status is the one
/// its class gives.
fn class_of(status: u16, v: &Value) -> (String, String) {
    let class: hostdev_api::ErrorClass =
        serde_json::from_value(v["class"].clone()).unwrap_or_else(|e| panic!("{e}: {v}"));
    assert_eq!(status, class.status(), "{v}");
    assert!(v["message"].as_str().is_some_and(|m| m.len() > 10), "{v}");
    (
        class.as_str().to_string(),
        v["code"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn representative_errors_carry_their_class_and_its_status() {
    let l = lab();
    let u = "6f1c9a3e-2b7d-4c55-9e0a-1d2b3c4d5e01";
    // Defining a UUID that is defined already: exists, 409.
    let def = json!({"uuid": u, "parent": "mtty", "mdev_type": "mtty-1"});
    assert_eq!(l.post("/v1/mdev/define", def.clone()).await.0, 200);
    let (s, v) = l.post("/v1/mdev/define", def).await;
    assert_eq!(
        class_of(s, &v),
        ("exists".into(), "mdev.already_defined".into())
    );
    assert_eq!(
        v["target"],
        json!({"kind": "mdev", "uuid": u, "parent": "mtty"})
    );
    // An unknown pool: not found, 404, naming the pool.
    let (s, v) = l.get("/v1/pools/show?pool=nosuch").await;
    assert_eq!(class_of(s, &v), ("not_found".into(), "pool.unknown".into()));
    assert_eq!(v["target"], json!({"kind": "pool", "name": "nosuch"}));
    // An exhausted pool: exhausted, 409.
    let pools = l.fakes.root.join("etc/hostdev/pools.d");
    std::fs::create_dir_all(&pools).unwrap();
    std::fs::write(
        pools.join("one.toml"),
        "kind = \"mdev\"\ntype = \"mtty-2\"\nmode = \"pre-created\"\ncount = 1\n",
    )
    .unwrap();
    let alloc = |c: &str| json!({"pool": "one", "consumer": c});
    assert_eq!(l.post("/v1/pools/allocate", alloc("vm1")).await.0, 200);
    let (s, v) = l.post("/v1/pools/allocate", alloc("vm2")).await;
    assert_eq!(
        class_of(s, &v),
        ("exhausted".into(), "pool.exhausted".into())
    );
    // A busy VF: it carries a type it was given before, without its
    // definition: conflict, 409.
    let vf = "0000:41:00.4";
    let d = json!({"slot": {"vf": vf}, "type": "1150"});
    assert_eq!(l.post("/v1/vgpu/define", d.clone()).await.0, 200);
    assert_eq!(l.post("/v1/vgpu/start", json!({"vf": vf})).await.0, 200);
    assert_eq!(l.post("/v1/vgpu/undefine", json!({"vf": vf})).await.0, 200);
    let (s, v) = l.post("/v1/vgpu/define", d).await;
    assert_eq!(class_of(s, &v), ("conflict".into(), "vgpu.busy".into()));
    assert_eq!(v["target"], json!({"kind": "vgpu", "vf": vf}));
    // A malformed body: invalid, 400.
    let (s, v) = l
        .raw(ROOT, "POST", "/v1/vgpu/define", Body::from("{\"slot\":"))
        .await;
    assert_eq!(
        class_of(s, &v),
        ("invalid".into(), "request.invalid".into())
    );
    // A stranger's change: forbidden, 403; nothing done.
    let (s, v) = l
        .call(STRANGER, "POST", "/v1/vgpu/stop", json!({"vf": vf}))
        .await;
    assert_eq!(
        class_of(s, &v),
        ("forbidden".into(), "auth.forbidden".into())
    );
    let (_, listing) = l.get("/v1/vgpu/devices").await;
    let row = listing["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["vf"] == vf)
        .cloned()
        .unwrap();
    assert_eq!(row["current"], 1150, "{row}");
    // A method the route does not take: unsupported, 405.
    let (s, v) = l.call(ROOT, "POST", "/v1/devices", json!({})).await;
    assert_eq!(
        class_of(s, &v),
        ("unsupported".into(), "request.method".into())
    );
    // Every change was told to watchers, naming what it concerned.
    let (past, _rx) = l.shared.subscribe(Some(0));
    let changed: Vec<String> = past
        .iter()
        .filter_map(|e| match &e.what {
            hostdev_api::events::EventKind::Changed { operation, .. } => Some(operation.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        changed,
        [
            "/v1/mdev/define",
            "/v1/pools/allocate",
            "/v1/vgpu/define",
            "/v1/vgpu/start",
            "/v1/vgpu/undefine"
        ]
    );
}

/// Checks `reply` against the schema the document gives the operation's
/// 200, then decodes it into `T`.
fn valid<T: serde::de::DeserializeOwned>(doc: &Value, method: &str, path: &str, reply: &Value) {
    let op = &doc["paths"][path][method];
    let schema = op["responses"]["200"]["content"]["application/json"]["schema"].clone();
    assert!(!schema.is_null(), "{method} {path}: no schema");
    let mut whole = schema;
    whole["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    whole["components"] = doc["components"].clone();
    let v = jsonschema::validator_for(&whole).unwrap_or_else(|e| panic!("{path}: {e}"));
    let errors: Vec<String> = v.iter_errors(reply).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{method} {path}: {errors:?}\n{reply}");
    serde_json::from_value::<T>(reply.clone()).unwrap_or_else(|e| panic!("{path}: {e}: {reply}"));
}

#[tokio::test]
async fn every_reply_asked_here_is_valid_against_its_schema_and_decodes() {
    use hostdev_api as a;
    let l = lab();
    let doc = hostdevd::openapi::document();
    let u = "6f1c9a3e-2b7d-4c55-9e0a-1d2b3c4d5e02";
    macro_rules! post {
        ($t:ty, $path:literal, $body:expr) => {{
            let (s, v) = l.post($path, $body).await;
            assert_eq!(s, 200, "{}: {v}", $path);
            valid::<<$t as a::Op>::Reply>(&doc, "post", $path, &v);
            v
        }};
    }
    macro_rules! get {
        ($t:ty, $path:literal) => {{
            let (s, v) = l.get($path).await;
            assert_eq!(s, 200, "{}: {v}", $path);
            let route = $path.split('?').next().unwrap();
            valid::<<$t as a::Op>::Reply>(&doc, "get", route, &v);
            v
        }};
    }
    post!(
        a::DefineRequest,
        "/v1/mdev/define",
        json!({"uuid": u, "parent": "mtty", "mdev_type": "mtty-1", "start": "auto"})
    );
    post!(a::StartRequest, "/v1/mdev/start", json!({"uuid": u}));
    post!(
        a::ModifyRequest,
        "/v1/mdev/modify",
        json!({"uuid": u, "edit": {"start": "manual"}})
    );
    get!(a::ListQuery, "/v1/mdev/devices");
    get!(a::ListQuery, "/v1/mdev/devices?defined=true");
    get!(a::TypesQuery, "/v1/mdev/types");
    post!(
        a::PfEnableRequest,
        "/v1/vgpu/pf/enable",
        json!({"pf": "0000:41:00.0", "numvfs": 4, "start": "auto"})
    );
    get!(a::VgpuTypesQuery, "/v1/vgpu/types");
    post!(
        a::VgpuDefineRequest,
        "/v1/vgpu/define",
        json!({"slot": {"pf": "0000:41:00.0"}, "type": "NVIDIA L40S-8Q", "start": "auto"})
    );
    let v = post!(
        a::VgpuDefineRequest,
        "/v1/vgpu/define",
        json!({"slot": {"vf": "0000:41:00.6"}, "type": "1150"})
    );
    assert_eq!(v["vf"], "0000:41:00.6");
    post!(
        a::VgpuStartRequest,
        "/v1/vgpu/start",
        json!({"vf": "0000:41:00.6"})
    );
    get!(a::VgpuListQuery, "/v1/vgpu/devices");
    get!(a::VgpuLibvirtQuery, "/v1/vgpu/libvirt?vf=0000%3A41%3A00.6");
    post!(
        a::VgpuStopRequest,
        "/v1/vgpu/stop",
        json!({"vf": "0000:41:00.6"})
    );
    get!(a::MgmtDevQuery, "/v1/vdpa/mgmtdevs");
    post!(
        a::VdpaDefineRequest,
        "/v1/vdpa/define",
        json!({"definition": {"name": "vd0", "mgmtdev": {"dev": "vdpasim_net"}, "config": {"mac": "02:00:00:00:00:01", "mtu": 9000}, "start": "auto"}})
    );
    post!(
        a::VdpaStartRequest,
        "/v1/vdpa/start",
        json!({"name": "vd0"})
    );
    post!(
        a::VdpaModifyRequest,
        "/v1/vdpa/modify",
        json!({"name": "vd0", "edit": {"config": {"max_vqp": 2}}})
    );
    get!(a::VdpaListQuery, "/v1/vdpa/devices");
    get!(a::VdpaShowQuery, "/v1/vdpa/show?name=vd0");
    get!(a::VdpaLibvirtQuery, "/v1/vdpa/libvirt?name=vd0");
    let export = get!(a::VdpaExportRequest, "/v1/vdpa/export?name=vd0");
    post!(
        a::VdpaImportRequest,
        "/v1/vdpa/import",
        json!({"export": export, "name": "vd1", "define": true})
    );
    post!(
        a::VdpaAddRequest,
        "/v1/vdpa/add",
        json!({"name": "vd2", "mgmtdev": {"dev": "vdpasim_net"}})
    );
    post!(a::VdpaDelRequest, "/v1/vdpa/del", json!({"name": "vd2"}));
    get!(a::InventoryQuery, "/v1/devices");
    get!(a::TopologyQuery, "/v1/topology");
    post!(a::RestoreRequest, "/v1/restore", json!({}));
    get!(a::PoolListQuery, "/v1/pools");
    post!(a::StopRequest, "/v1/mdev/stop", json!({"uuid": u}));
    post!(a::UndefineRequest, "/v1/mdev/undefine", json!({"uuid": u}));
    post!(a::VdpaStopRequest, "/v1/vdpa/stop", json!({"name": "vd0"}));
    post!(
        a::VdpaUndefineRequest,
        "/v1/vdpa/undefine",
        json!({"name": "vd0"})
    );
    post!(
        a::HostPlanRequest,
        "/v1/host/plan",
        json!({"file": {"path": "t.toml", "file": {"host": {"id": "t"}}}})
    );
    // Every error body is valid against ErrorBody's schema.
    let (s, v) = l.get("/v1/vdpa/show?name=nosuch").await;
    assert_eq!(class_of(s, &v).0, "not_found");
    let mut es = json!({"$ref": "#/components/schemas/ErrorBody"});
    es["components"] = doc["components"].clone();
    es["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    assert!(jsonschema::validator_for(&es).unwrap().is_valid(&v), "{v}");
}

#[tokio::test]
async fn a_read_of_an_unchanged_host_is_sent_again_and_a_change_is_seen() {
    let l = lab();
    let (_, a) = l.get("/v1/devices").await;
    let (_, b) = l.get("/v1/devices").await;
    assert_eq!(a, b);
    let u = "6f1c9a3e-2b7d-4c55-9e0a-1d2b3c4d5e03";
    let def = json!({"uuid": u, "parent": "mtty", "mdev_type": "mtty-1"});
    assert_eq!(l.post("/v1/mdev/define", def).await.0, 200);
    let (_, c) = l.get("/v1/devices").await;
    assert!(c.to_string().contains(u), "{c}");
}

#[test]
fn the_schema_check_refuses_replies_that_break_their_schema() {
    let doc = hostdevd::openapi::document();
    let schema = |path: &str| {
        let mut s = doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
            ["schema"]
            .clone();
        s["components"] = doc["components"].clone();
        s["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
        jsonschema::validator_for(&s).unwrap()
    };
    let inv = schema("/v1/devices");
    assert!(inv.is_valid(&json!({"devices": [], "problems": [], "unavailable": []})));
    assert!(!inv.is_valid(&json!({"problems": [], "unavailable": []})));
    let row = json!({"kind": "mdev", "id": "x", "target": {"kind": "mdev", "uuid": "6f1c9a3e-2b7d-4c55-9e0a-1d2b3c4d5e01"}, "parent": "p", "type": {"id": "t", "name": null}, "state": "running", "start": null});
    assert!(inv.is_valid(&json!({"devices": [row], "problems": [], "unavailable": []})));
    let mut bad = row.clone();
    bad["state"] = json!("sideways");
    assert!(!inv.is_valid(&json!({"devices": [bad], "problems": [], "unavailable": []})));
    let mut bad = row;
    bad["target"]["uuid"] = json!("../../etc");
    assert!(!inv.is_valid(&json!({"devices": [bad], "problems": [], "unavailable": []})));
}
