//! The vDPA commands on the real kernel (vdpa_sim_net, vdpa_sim_blk) read
//! the same acting directly and through hostdevd: the same steps are run
//! twice, the second time with the CLI pointed at a daemon, and the two
//! transcripts must be equal (vhost character device numbers, which the
//! kernel counts up, are written `N`); the daemon tells every change that
//! succeeded as a `changed` event.

use crate::{kernel, vdpa_names};
use std::path::Path;
use std::process::Command;

const STEPS: &[&str] = &[
    "vdpa mgmtdev list",
    "vdpa define kt0 --mgmtdev vdpasim_net --mac 02:00:00:00:00:7e --mtu 1500 --auto",
    "vdpa define kt0 --mgmtdev vdpasim_net",
    "vdpa list --defined",
    "vdpa start kt0",
    "vdpa list",
    "vdpa show kt0",
    "vdpa show kt0 --libvirt",
    "vdpa modify kt0 --max-vqp 1",
    "vdpa export kt0",
    "vdpa add kt1 --mgmtdev vdpasim_blk",
    "vdpa add kt1 --mgmtdev vdpasim_blk",
    "vdpa add kt2 --mgmtdev vdpasim_blk --mac 02:00:00:00:00:7f",
    "vdpa show kt1 -o json",
    "vdpa del kt1",
    "vdpa show nosuch -o json",
    "vdpa stop kt0",
    "vdpa undefine kt0",
    "vdpa list -o json",
];

fn transcript(socket: Option<&Path>) -> String {
    let mut out = String::new();
    for line in STEPS {
        let args: Vec<&str> = line.split(' ').collect();
        let mut c = Command::new(env!("CARGO_BIN_EXE_hostdevctl"));
        c.args(&args).env_remove("HOSTDEV_ROOT").env(
            "HOSTDEV_SOCKET",
            socket.map(|s| s.as_os_str()).unwrap_or_default(),
        );
        let o = c.output().expect("run hostdevctl");
        out.push_str(&format!("$ hostdevctl {line}\n"));
        out.push_str(&String::from_utf8_lossy(&o.stdout));
        for l in String::from_utf8_lossy(&o.stderr).lines() {
            out.push_str(&format!("stderr: {l}\n"));
        }
        out.push_str(&format!("rc={}\n", o.status.code().unwrap_or(-1)));
    }
    // /dev/vhost-vdpa-N: the kernel numbers each new device anew.
    let mut norm = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(i) = rest.find("/dev/vhost-vdpa-") {
        let (head, tail) = rest.split_at(i + "/dev/vhost-vdpa-".len());
        norm.push_str(head);
        norm.push('N');
        rest = tail.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    norm.push_str(rest);
    norm
}

#[test]
#[ignore = "needs the real-kernel lab; run by `cargo xtask kernel-test`"]
fn vdpa_commands_read_the_same_directly_and_through_hostdevd() {
    let _k = kernel("vdpa-transcript");
    let direct = transcript(None);
    assert!(vdpa_names().is_empty(), "{direct}");
    assert!(
        direct.contains("$ hostdevctl vdpa start kt0\nrc=0"),
        "{direct}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("hostdev.sock");
    let daemon = crate::common::Daemon::on_host(crate::common::Daemon::QUIET, Some(&socket));
    let through = transcript(Some(&socket));
    let events = crate::common::read_events(&socket, 0);
    drop(daemon);
    assert!(vdpa_names().is_empty(), "{through}");
    assert_eq!(through, direct, "through the daemon differs from directly");
    let changed: Vec<String> = events
        .iter()
        .filter(|e| e["type"] == "changed")
        .map(|e| e["operation"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        changed,
        [
            "/v1/vdpa/define",
            "/v1/vdpa/start",
            "/v1/vdpa/modify",
            "/v1/vdpa/add",
            "/v1/vdpa/del",
            "/v1/vdpa/stop",
            "/v1/vdpa/undefine"
        ],
        "{events:?}"
    );
}
