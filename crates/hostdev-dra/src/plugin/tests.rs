//! The plugin's unit tests: claim names, allocation results, the
//! kubelet's error answers, and what a prepare whose files fail undoes.

use super::*;
use hostdev_api::client::RemoteError;
use hostdev_api::{ErrorBody, ErrorClass};

fn daemon(class: ErrorClass) -> ClaimError {
    ClaimError::Daemon(DaemonError::Call(RemoteError::Api {
        status: 409,
        body: ErrorBody::new(class, "dra.create", "held"),
    }))
}

#[test]
fn an_admin_access_result_is_refused_and_other_drivers_results_are_left() {
    use k8s_openapi::api::resource::v1::DeviceRequestAllocationResult as Res;
    let r = ClaimRef {
        namespace: "ns".into(),
        name: "c".into(),
        uid: "0b0c6a4e-7d7e-4f43-9c55-3d8a5d2f1e10".into(),
        pod_claim_name: None,
    };
    let res = |driver: &str, admin: Option<bool>| Res {
        driver: driver.into(),
        pool: "n".into(),
        request: "gpu".into(),
        device: "dev-0".into(),
        admin_access: admin,
        ..Res::default()
    };
    let got = ours(
        &[res("hostdev.io", None), res("other.io", Some(true))],
        "hostdev.io",
        "n",
        &[],
        &r,
    )
    .unwrap();
    assert_eq!(got.len(), 1);
    let e = ours(&[res("hostdev.io", Some(true))], "hostdev.io", "n", &[], &r).unwrap_err();
    assert_eq!(e.code(), "dra.admin-access");
    assert!(
        e.to_string().contains("admin access to device dev-0"),
        "{e}"
    );
}

const UID: &str = "0b0c6a4e-7d7e-4f43-9c55-3d8a5d2f1e10";

#[test]
fn a_claim_the_apiserver_refused_is_named_in_a_sentence_with_the_cause_once() {
    let why = "resourceclaims.resource.k8s.io \"c\" is forbidden: User \"system:serviceaccount:kube-system:hostdev-dra\" cannot get resource \"resourceclaims\"";
    let status = kube::core::Status::failure(why, "Forbidden").with_code(403);
    let e = ClaimError::Fetch {
        namespace: "ns".into(),
        name: "c".into(),
        uid: UID.into(),
        source: Box::new(kube::Error::Api(status.boxed())),
    };
    let s = answer(&e);
    assert!(!s.contains("Status {") && !s.contains("ApiError"), "{s}");
    assert!(s.contains("ResourceClaim ns/c") && s.contains(UID), "{s}");
    assert!(s.contains("403 Forbidden"), "{s}");
    assert_eq!(s.matches("cannot get resource").count(), 1, "{s}");
    assert!(s.ends_with(" [dra.claim-fetch]"), "{s}");
    let cause = std::error::Error::source(&e).expect("the kube error is kept");
    assert!(
        cause.downcast_ref::<Box<kube::Error>>().is_some(),
        "{cause:?}"
    );
}

#[test]
fn a_cdi_spec_that_cannot_be_written_says_why_in_the_kubelets_answer() {
    // A real failure: the spec directory is a regular file.
    let d = tempfile::tempdir().unwrap();
    let not_a_dir = d.path().join("cdi");
    std::fs::write(&not_a_dir, b"").unwrap();
    let (spec, _) = cdi::device_spec("hostdev.io", UID, &[]);
    let path = cdi::device_spec_path(&not_a_dir, "hostdev.io", UID);
    let e = ClaimError::from(cdi::write(&path, &spec).unwrap_err());
    let cause = std::error::Error::source(&e).expect("the io error is kept");
    let io = cause
        .downcast_ref::<std::io::Error>()
        .expect("the cause is the io error");
    let s = answer(&e);
    assert!(s.contains("cannot write the CDI spec"), "{s}");
    assert_eq!(s.matches(&io.to_string()).count(), 1, "{s}");
}

/// A socket where hostdevd's would be that counts the connections made
/// to it, closing each unanswered (the driver's call then fails).
fn counting_socket(path: &std::path::Path) -> Arc<std::sync::atomic::AtomicUsize> {
    let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
    let n = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = Arc::clone(&n);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(conn);
        }
    });
    n
}

#[tokio::test]
async fn failed_files_undo_a_first_prepare_but_never_an_earlier_ones_devices() {
    let d = tempfile::tempdir().unwrap();
    let socket = d.path().join("hostdevd.sock");
    let asked = counting_socket(&socket);
    // A real failure: the CDI directory is a regular file.
    let cdi_dir = d.path().join("cdi");
    std::fs::write(&cdi_dir, b"").unwrap();
    let cfg = Arc::new(Config {
        driver: "hostdev.io".into(),
        node: "n1".into(),
        socket,
        plugin_dir: d.path().join("plugin"),
        cdi_dir,
    });
    // Never reached: this path asks hostdevd only.
    let client =
        kube::Client::try_from(kube::Config::new("https://127.0.0.1:1".parse().unwrap())).unwrap();
    let plugin = Plugin::new(cfg, client, Ours::default());
    let c = pb::Claim {
        namespace: "ns".into(),
        name: "c".into(),
        uid: UID.into(),
    };
    let r = Plugin::claim_ref(&c).unwrap();
    let prepared = |again| hostdev_api::DraPrepared {
        uid: UID.parse().unwrap(),
        devices: vec![hostdev_api::DraPreparedDevice {
            request: "gpu".into(),
            device: "mdev-0000-3b-00-0-nvidia-222-0".into(),
            kind: hostdev_api::Kind::Mdev,
            id: "6d2c0bde-4a51-4e4c-9b3b-1f3d8b0e2a10".into(),
            nodes: Vec::new(),
            metadata: Default::default(),
        }],
        again,
    };
    use std::sync::atomic::Ordering::SeqCst;
    // The kubelet asking again: the earlier prepare's devices stay.
    let e = plugin
        .files_or_undo(&c, &r, &prepared(true))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "dra.cdi-write", "{e}");
    assert_eq!(asked.load(SeqCst), 0, "an earlier prepare was undone");
    // A first prepare: what it made is unprepared.
    let e = plugin
        .files_or_undo(&c, &r, &prepared(false))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "dra.cdi-write", "{e}");
    assert_eq!(asked.load(SeqCst), 1, "a first prepare was not undone");
}

#[test]
fn only_held_capacity_is_waited_for() {
    assert!(daemon(ErrorClass::Exhausted).may_clear());
    assert!(daemon(ErrorClass::Conflict).may_clear());
    assert!(!daemon(ErrorClass::Invalid).may_clear());
    assert!(!daemon(ErrorClass::NotFound).may_clear());
    assert!(!ClaimError::Daemon(DaemonError::Down("/x".into())).may_clear());
    let gone = ClaimError::Gone {
        namespace: "a".into(),
        name: "b".into(),
    };
    assert!(!gone.may_clear());
    assert_eq!(gone.code(), "dra.claim-gone");
}

#[test]
fn kubelet_names_are_checked_before_use() {
    let c = |ns: &str, name: &str, uid: &str| pb::Claim {
        namespace: ns.into(),
        name: name.into(),
        uid: uid.into(),
    };
    let uid = "0b0c6a4e-7d7e-4f43-9c55-3d8a5d2f1e10";
    assert!(Plugin::claim_ref(&c("ns", "claim-1", uid)).is_ok());
    for bad in [
        c("ns", "../../etc", uid),
        c("a/b", "x", uid),
        c("ns", "x", "../../../../../../../../etc/passwd"),
        c("", "x", uid),
    ] {
        let e = Plugin::claim_ref(&bad).unwrap_err();
        assert_eq!(e.code(), "dra.bad-claim-name", "{bad:?}");
    }
}
