//! Kubernetes DRA on the real kernel, for vDPA: what the driver asks
//! hostdevd (`GET /v1/dra/resources`, `POST /v1/dra/prepare` and
//! `/v1/dra/unprepare`, keyed by the claim's UID) with the operator's
//! templates on `vdpa_sim_net`. The Kubernetes lab has no vdpa netlink
//! family (the simulator serves sysfs only), so this tier is where a claim's
//! vDPA device is made by the kernel: iproute2 must see the claim's MAC and
//! MTU, the character device the answer names (what the driver's CDI spec
//! injects) must be the one sysfs says the device has, and unprepare must
//! remove that device and nothing else.

use super::{kernel, modprobe, vdpa_json, vdpa_names};
use crate::common::{eventually, http_get, http_post, Daemon};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;

const TEMPLATES: &str = "[[vdpa]]\ntemplate = \"net\"\nmgmtdev = \"vdpasim_net\"\ncount = 2\nmac_base = \"02:00:00:00:30:00\"\nmtu = 1500\n";
const DRA_TOML: &str = "/etc/hostdev/dra.toml";

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn prepare(socket: &Path, uid: &str, device: &str, config: &str) -> (String, serde_json::Value) {
    let body = format!(
        r#"{{"claim":{{"uid":"{uid}","namespace":"default","name":"nic"}},"devices":[{{"request":"nic","device":"{device}"{config}}}]}}"#
    );
    let (status, out) = http_post(socket, "/v1/dra/prepare", &body);
    (status, json(&out))
}

fn unprepare(socket: &Path, uid: &str) -> serde_json::Value {
    let body = format!(r#"{{"claim":{{"uid":"{uid}"}}}}"#);
    let (status, out) = http_post(socket, "/v1/dra/unprepare", &body);
    assert!(status.contains(" 200"), "unprepare {uid}: {status} {out}");
    json(&out)
}

/// `host_path` is a character device with the numbers sysfs gives the
/// vDPA device's vhost-vdpa child.
fn assert_node_is_the_devices(name: &str, host_path: &str) {
    let node = Path::new(host_path);
    let child = node
        .file_name()
        .and_then(|n| n.to_str())
        .expect("node name");
    let want = std::fs::read_to_string(format!("/sys/bus/vdpa/devices/{name}/{child}/dev"))
        .unwrap_or_else(|e| panic!("{name} has no {child} in sysfs: {e}"));
    let md = std::fs::metadata(node).unwrap_or_else(|e| panic!("{host_path}: {e}"));
    assert!(
        md.file_type().is_char_device(),
        "{host_path} is not a character device"
    );
    let got = format!(
        "{}:{}",
        rustix::fs::major(md.rdev()),
        rustix::fs::minor(md.rdev())
    );
    assert_eq!(
        got,
        want.trim(),
        "{host_path} is another device than {name}'s"
    );
}

/// The name of the first device hostdevd offers that `pick` accepts.
fn offered(socket: &Path, what: &str, pick: impl Fn(&serde_json::Value) -> bool) -> String {
    let (status, body) = http_get(socket, "/v1/dra/resources");
    assert!(status.contains(" 200"), "{status} {body}");
    let offer = json(&body);
    offer["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .find(|d| pick(d))
        .and_then(|d| d["name"].as_str())
        .unwrap_or_else(|| panic!("no {what} offered: {offer:#}"))
        .to_string()
}

fn claims(socket: &Path) -> String {
    let (status, body) = http_get(socket, "/v1/dra/claims");
    assert!(status.contains(" 200"), "{status} {body}");
    body
}

#[test]
#[ignore = "needs the real-kernel lab; run by `cargo xtask kernel-test`"]
fn a_dra_claim_gets_a_vdpa_device_on_vdpa_sim_net_and_unprepare_removes_exactly_it() {
    let _k = kernel("dra vdpa");
    std::fs::create_dir_all("/etc/hostdev").expect("/etc/hostdev");
    std::fs::write(DRA_TOML, TEMPLATES).expect("dra.toml");
    // A device made by hand is not the claim's: nothing may touch it.
    let st = Command::new("vdpa")
        .args(["dev", "add", "name", "byhand0", "mgmtdev", "vdpasim_net"])
        .args(["mac", "02:00:00:00:99:01"])
        .status()
        .expect("iproute2 vdpa");
    assert!(st.success(), "vdpa dev add byhand0");
    let before = vdpa_names();

    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("hostdev.sock");
    let daemon = Daemon::on_host(Daemon::QUIET, Some(&socket));

    // The offer: the template's two slots on vdpa_sim_net, plain devices.
    let (status, body) = http_get(&socket, "/v1/dra/resources");
    assert!(status.contains(" 200"), "{status} {body}");
    let offer = json(&body);
    let nics: Vec<&serde_json::Value> = offer["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .filter(|d| d["kind"] == "vdpa")
        .collect();
    assert_eq!(nics.len(), 2, "{offer:#}");
    for n in &nics {
        assert_eq!(n["attributes"]["mgmtdev"]["string"], "vdpasim_net", "{n:#}");
        assert!(
            n.get("consumes").is_none(),
            "a vDPA device draws on no counter: {n:#}"
        );
    }
    let device = nics[0]["name"].as_str().expect("name").to_string();
    let free = nics[1]["name"].as_str().expect("name").to_string();

    // Prepare with the claim's MAC and MTU.
    let uid = "7f3c2a10-0000-4000-8000-00000000d0a1";
    let cfg = r#","config":{"mac":"02:00:00:00:aa:01","mtu":1400}"#;
    let (status, prepared) = prepare(&socket, uid, &device, cfg);
    assert!(status.contains(" 200"), "{status} {prepared:#}");
    let got = &prepared["devices"][0];
    assert_eq!(got["kind"], "vdpa", "{prepared:#}");
    let name = got["id"].as_str().expect("id").to_string();
    assert_eq!(
        got["metadata"]["vdpaDevice"]["string"],
        name.as_str(),
        "{got:#}"
    );
    assert_eq!(
        got["metadata"]["mac"]["string"], "02:00:00:00:aa:01",
        "{got:#}"
    );
    let d = vdpa_json(&["dev", "show", &name, "-j"]);
    assert_eq!(d["dev"][&name]["mgmtdev"], "vdpasim_net", "{d}");
    let c = vdpa_json(&["dev", "config", "show", &name, "-j"]);
    assert_eq!(c["config"][&name]["mac"], "02:00:00:00:aa:01", "{c}");
    assert_eq!(c["config"][&name]["mtu"], 1400, "{c}");
    let nodes = got["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 1, "one vhost-vdpa node, no VFIO: {got:#}");
    let host_path = nodes[0]["host_path"]
        .as_str()
        .expect("host_path")
        .to_string();
    assert!(host_path.starts_with("/dev/vhost-vdpa-"), "{got:#}");
    assert_eq!(nodes[0]["path"], host_path.as_str(), "{got:#}");
    assert_node_is_the_devices(&name, &host_path);
    assert_eq!(vdpa_names().len(), before.len() + 1, "one device made");

    // Asked again (the kubelet retries), and after hostdevd was killed: the
    // same answer from the record, said to be from it, nothing made twice.
    assert_eq!(prepared["again"], false, "a first prepare: {prepared:#}");
    let from_record = |mut answer: serde_json::Value| {
        assert_eq!(
            answer["again"], true,
            "an answer from the record: {answer:#}"
        );
        answer["again"] = prepared["again"].clone();
        answer
    };
    let (_, again) = prepare(&socket, uid, &device, cfg);
    assert_eq!(from_record(again), prepared);
    daemon.kill9();
    let daemon = Daemon::on_host(Daemon::QUIET, Some(&socket));
    assert!(
        claims(&socket).contains(uid),
        "the record outlives hostdevd"
    );
    let (_, again) = prepare(&socket, uid, &device, cfg);
    assert_eq!(from_record(again), prepared);
    assert_eq!(vdpa_names().len(), before.len() + 1, "nothing made twice");

    // The kernel loses the device (the module reloaded, as a reboot would):
    // the kubelet's next ask makes it again with the claim's MAC and MTU.
    modprobe(&["-r", "vdpa_sim_net"]);
    modprobe(&["vdpa_sim_net"]);
    assert!(!vdpa_names().contains(&name), "the reload took {name}");
    let (status, again) = prepare(&socket, uid, &device, cfg);
    assert!(status.contains(" 200"), "{status} {again:#}");
    assert_eq!(again["devices"][0]["id"], name.as_str(), "{again:#}");
    let c = vdpa_json(&["dev", "config", "show", &name, "-j"]);
    assert_eq!(c["config"][&name]["mac"], "02:00:00:00:aa:01", "{c}");
    assert_eq!(c["config"][&name]["mtu"], 1400, "{c}");
    let host_path = again["devices"][0]["nodes"][0]["host_path"]
        .as_str()
        .expect("host_path")
        .to_string();
    assert_node_is_the_devices(&name, &host_path);
    // byhand0 went with the module; hostdev does not make it again.
    let st = Command::new("vdpa")
        .args(["dev", "add", "name", "byhand0", "mgmtdev", "vdpasim_net"])
        .args(["mac", "02:00:00:00:99:01"])
        .status()
        .expect("iproute2 vdpa");
    assert!(st.success(), "vdpa dev add byhand0 again");

    // Hostile claims for the free slot are refused with a sentence, and
    // make nothing.
    let n = vdpa_names().len();
    for (uid, device, cfg, says) in [
        (
            "7f3c2a10-0000-4000-8000-00000000d0a2",
            free.as_str(),
            r#","config":{"mac":"01:00:5e:00:00:01"}"#,
            "unicast",
        ),
        (
            "7f3c2a10-0000-4000-8000-00000000d0a3",
            free.as_str(),
            r#","config":{"mac":"02:00:00:00:aa:02","mtu":0}"#,
            "MTU",
        ),
        (
            "7f3c2a10-0000-4000-8000-00000000d0a4",
            "net-vdpasim-net-99",
            "",
            "net-vdpasim-net-99",
        ),
        (
            "7f3c2a10-0000-4000-8000-00000000d0a5",
            device.as_str(),
            "",
            "is already prepared for claim default/nic",
        ),
    ] {
        let (status, out) = prepare(&socket, uid, device, cfg);
        assert!(!status.contains(" 200"), "{uid} was prepared: {out:#}");
        assert!(out.to_string().contains(says), "{uid}: {status} {out:#}");
        assert!(!claims(&socket).contains(uid), "{uid} left a record");
    }
    assert_eq!(vdpa_names().len(), n, "a refused claim made a device");

    // Unprepare removes exactly the claim's device, once.
    let removed = unprepare(&socket, uid);
    assert_eq!(
        removed["removed"],
        serde_json::json!([name.as_str()]),
        "{removed:#}"
    );
    assert!(!vdpa_names().contains(&name), "{name} is still there");
    assert!(
        vdpa_names().contains(&"byhand0".to_string()),
        "byhand0 was touched"
    );
    eventually(5, "the vhost-vdpa node gone with the device", || {
        !Path::new(&host_path).exists()
    });
    let again = unprepare(&socket, uid);
    assert_eq!(again["removed"], serde_json::json!([]), "{again:#}");
    assert!(!claims(&socket).contains(uid), "the record is gone");
    drop(daemon);

    let _ = Command::new("vdpa")
        .args(["dev", "del", "byhand0"])
        .status();
    let _ = std::fs::remove_file(DRA_TOML);
}

#[test]
#[ignore = "needs the real-kernel lab and its QEMU 10; run by `cargo xtask kernel-test`"]
fn unprepare_of_an_mdev_qemu_holds_is_refused_at_once_and_finishes_once_it_lets_go() {
    let _k = kernel("dra held mdev");
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("hostdev.sock");
    let _daemon = Daemon::on_host(Daemon::QUIET, Some(&socket));
    let device = offered(&socket, "mtty mdev", |d| {
        d["kind"] == "mdev" && d["attributes"]["parent"]["string"] == "mtty"
    });
    let uid = "7f3c2a10-0000-4000-8000-00000000d0b1";
    let (status, prepared) = prepare(&socket, uid, &device, "");
    assert!(status.contains(" 200"), "{status} {prepared:#}");
    let uuid = prepared["devices"][0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let sys = format!("/sys/bus/mdev/devices/{uuid}");
    assert!(Path::new(&sys).exists(), "{sys} once prepared");

    let mut qemu = super::sriov::Holder::start(&format!("vfio-pci,sysfsdev={sys}"));
    eventually(30, "QEMU holds the claim's mdev", || {
        if let Some(w) = qemu.exited() {
            panic!("QEMU did not take {uuid}: {w}");
        }
        qemu.holds()
    });
    // Refused at once, naming the device and its group; the mdev stays and
    // the claim's record too (the kubelet asks again).
    let body = format!(r#"{{"claim":{{"uid":"{uid}"}}}}"#);
    let t0 = std::time::Instant::now();
    let (status, out) = http_post(&socket, "/v1/dra/unprepare", &body);
    let took = t0.elapsed();
    // Past libtest's capture: the lab's output shows it for a passing test.
    eprintln!("dra: held mdev: hostdevd's unprepare refused in {took:?}: {status} {out}");
    assert!(
        !status.contains(" 200"),
        "unprepare of a held mdev: {status} {out}"
    );
    assert!(out.contains("dra.remove"), "{out}");
    assert!(
        out.contains(&uuid) && out.contains("held through VFIO group"),
        "{out}"
    );
    assert!(Path::new(&sys).exists(), "{sys} after the refusal");
    // Kept `unpreparing` (no longer listed as prepared): every later DRA
    // call's recovery tries it again.
    let record = Path::new("/var/lib/hostdev/dra/claims").join(format!("{uid}.json"));
    let kept = std::fs::read_to_string(&record).unwrap_or_default();
    assert!(kept.contains("unpreparing"), "the record is kept: {kept}");
    // Let go: the next unprepare removes it.
    drop(qemu);
    // (Removed by the recovery every DRA call starts with, which finishes
    // a record left `unpreparing`; the answer is a success either way.)
    unprepare(&socket, uid);
    assert!(!Path::new(&sys).exists(), "{sys} after the unprepare");
    assert!(!record.exists(), "the record is gone");
}

#[test]
#[ignore = "needs the real-kernel lab; run by `cargo xtask kernel-test`"]
fn unprepare_of_a_vdpa_device_whose_vhost_node_is_open_is_refused_and_finishes_once_closed() {
    let _k = kernel("dra held vdpa");
    std::fs::create_dir_all("/etc/hostdev").expect("/etc/hostdev");
    std::fs::write(DRA_TOML, TEMPLATES).expect("dra.toml");
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("hostdev.sock");
    let _daemon = Daemon::on_host(Daemon::QUIET, Some(&socket));
    let device = offered(&socket, "vDPA device", |d| d["kind"] == "vdpa");
    let uid = "7f3c2a10-0000-4000-8000-00000000d0c1";
    let (status, prepared) = prepare(&socket, uid, &device, "");
    assert!(status.contains(" 200"), "{status} {prepared:#}");
    let name = prepared["devices"][0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let node = prepared["devices"][0]["nodes"][0]["host_path"]
        .as_str()
        .expect("node")
        .to_string();

    // A process holds the vhost-vdpa node open, as QEMU's vhost-vdpa
    // netdev does (the kernel lets one open it at a time).
    /// Killed when dropped, a failed assertion included.
    struct Holder(std::process::Child);
    impl Drop for Holder {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut holder = Holder(
        Command::new("sh")
            .args([
                "-c",
                r#"exec 3<>"$1"; echo open; exec sleep 600"#,
                "sh",
                &node,
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("sh"),
    );
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.0.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("the holder's line");
    assert_eq!(line.trim(), "open", "the holder could not open {node}");

    let body = format!(r#"{{"claim":{{"uid":"{uid}"}}}}"#);
    let (status, out) = http_post(&socket, "/v1/dra/unprepare", &body);
    assert!(
        status.contains(" 409"),
        "unprepare of a held vDPA device: {status} {out}"
    );
    assert!(
        out.contains("dra.remove") && out.contains(&name) && out.contains(&node),
        "{out}"
    );
    assert!(vdpa_names().contains(&name), "{name} after the refusal");
    let record = Path::new("/var/lib/hostdev/dra/claims").join(format!("{uid}.json"));
    let kept = std::fs::read_to_string(&record).unwrap_or_default();
    assert!(kept.contains("unpreparing"), "the record is kept: {kept}");

    // Closed: the next unprepare (its recovery) removes it.
    drop(holder);
    unprepare(&socket, uid);
    assert!(!vdpa_names().contains(&name), "{name} after the unprepare");
    assert!(!record.exists(), "the record is gone");
    let _ = std::fs::remove_file(DRA_TOML);
}
