//! The vGPU commands on the simulated lab's `nvidia-sriov` host (two
//! NVIDIA PFs whose card-local type ids differ), run by the real binary
//! twice on fresh labs: acting directly, and through a hostdevd serving
//! the lab. Both transcripts must equal `tests/golden/vgpu-sim.txt` byte
//! for byte, and the daemon must have told watchers of every change that
//! succeeded as a `changed` event (the CLI made no direct call).
//!
//! Regenerate with `HOSTDEV_REGEN=1 cargo test -p hostdevctl --test
//! vgpu_golden -- --ignored` and review the diff.
#![allow(clippy::expect_used)] // tests: a failed expectation is the report

mod common;

use common::{require_fuse, Bins, Daemon, Sim};
use std::path::Path;

/// A step: the arguments after `hostdevctl`, or a wait for VFs to be set up.
enum Step {
    Run(&'static str),
    WaitVfs(&'static [&'static str]),
}

const STEPS: &[Step] = &[
    Step::Run("vgpu types"),
    Step::Run("vgpu list"),
    Step::Run("vgpu enable --pf 0000:41:00.0 --numvfs 4 --auto"),
    Step::Run("vgpu enable --pf 0000:41:00.0 --numvfs 2"),
    Step::Run("vgpu enable --pf 0000:41:00.0 --numvfs 99"),
    Step::Run("vgpu enable --pf 0000:c1:00.0 --numvfs 2 -o json"),
    Step::WaitVfs(&[
        "0000:41:00.4",
        "0000:41:00.7",
        "0000:c1:00.4",
        "0000:c1:00.5",
    ]),
    Step::Run("vgpu types"),
    Step::Run("vgpu types --pf 0000:c1:00.0 -o json"),
    Step::Run("vgpu define --vf 0000:41:00.4 --type NVIDIA_L40S-4Q"),
    Step::Run("vgpu define --vf 0000:41:00.4 --type 1428"),
    Step::Run("vgpu define --vf 0000:41:00.4 --type 1150 --auto"),
    Step::Run("vgpu define --vf 0000:41:00.4 --type 1151"),
    Step::Run("vgpu define --pf 0000:41:00.0 --type 1151 --auto"),
    Step::Run("vgpu define --vf 0000:c1:00.4 --type 1150 -o json"),
    Step::Run("vgpu define --vf 0000:99:00.4 --type 1150"),
    Step::Run("vgpu list"),
    Step::Run("vgpu list --defined -o json"),
    Step::Run("vgpu start --vf 0000:41:00.4"),
    Step::Run("vgpu start --vf 0000:41:00.4"),
    Step::Run("vgpu start --vf 0000:c1:00.4 -o json"),
    Step::Run("vgpu libvirt --vf 0000:41:00.4"),
    Step::Run("vgpu libvirt --vf 0000:41:00.6"),
    Step::Run("vgpu libvirt --vf 0000:c1:00.4 -o json"),
    Step::Run("autostart"),
    Step::Run("vgpu list"),
    Step::Run("vgpu types --pf 0000:41:00.0"),
    Step::Run("list"),
    Step::Run("vgpu disable --pf 0000:41:00.0"),
    Step::Run("vgpu stop --vf 0000:41:00.4"),
    Step::Run("vgpu stop --vf 0000:41:00.4"),
    Step::Run("vgpu undefine --vf 0000:41:00.4"),
    Step::Run("vgpu undefine --vf 0000:41:00.4"),
    Step::Run("vgpu stop --vf 0000:c1:00.4"),
    Step::Run("vgpu disable --pf 0000:c1:00.0 -o json"),
    Step::Run("vgpu list --defined"),
];

fn transcript(bins: &Bins, sim: &Sim) -> String {
    let root = sim.path();
    let mut out = String::new();
    for s in STEPS {
        match s {
            Step::WaitVfs(vfs) => sim.wait_vfs_ready(vfs),
            Step::Run(line) => {
                let args: Vec<&str> = line.split(' ').collect();
                let o = bins.run(root, "hostdevctl", &args, None);
                out.push_str(&common::transcript_step(
                    &format!("hostdevctl {line}"),
                    &String::from_utf8_lossy(&o.stdout),
                    &String::from_utf8_lossy(&o.stderr),
                    o.status.code().unwrap_or(-1),
                ));
            }
        }
    }
    out.replace(&root.display().to_string(), "$ROOT")
}

/// The `changed` events the daemon told, as `operation target`.
fn changes(socket: &Path) -> Vec<String> {
    common::read_events(socket, 0)
        .into_iter()
        .filter(|e| e["type"] == "changed")
        .map(|e| format!("{} {}", e["operation"].as_str().unwrap_or(""), e["target"]))
        .collect()
}

#[test]
#[ignore = "needs FUSE (fuse3) for the simulated lab; run by `cargo xtask test`"]
fn vgpu_commands_on_the_simulated_lab_read_the_same_directly_and_through_hostdevd() {
    require_fuse("vgpu_golden");
    let mut bins = Bins::new();
    let sim = Sim::start("nvidia-sriov");
    let direct = transcript(&bins, &sim);
    common::check_golden("vgpu-sim", &direct);
    drop(sim);

    let sim = Sim::start("nvidia-sriov");
    let d = Daemon::start(sim.path(), Daemon::QUIET);
    bins.socket = Some(d.socket.clone());
    let through = transcript(&bins, &sim);
    let seen = changes(&d.socket);
    drop(d);
    assert_eq!(
        through, direct,
        "the transcript through the daemon differs from the direct one"
    );
    // Every change that succeeded in the transcript, and nothing else.
    let pf41 = r#"{"kind":"pf","pf":"0000:41:00.0"}"#;
    let pfc1 = r#"{"kind":"pf","pf":"0000:c1:00.0"}"#;
    let vf = |a: &str| format!(r#"{{"kind":"vgpu","vf":"{a}"}}"#);
    let expected = vec![
        format!("/v1/vgpu/pf/enable {pf41}"),
        format!("/v1/vgpu/pf/enable {pfc1}"),
        format!("/v1/vgpu/define {}", vf("0000:41:00.4")),
        format!("/v1/vgpu/define {pf41}"),
        format!("/v1/vgpu/define {}", vf("0000:c1:00.4")),
        format!("/v1/vgpu/start {}", vf("0000:41:00.4")),
        format!("/v1/vgpu/start {}", vf("0000:41:00.4")),
        format!("/v1/vgpu/start {}", vf("0000:c1:00.4")),
        "/v1/restore null".to_string(),
        format!("/v1/vgpu/stop {}", vf("0000:41:00.4")),
        format!("/v1/vgpu/undefine {}", vf("0000:41:00.4")),
        format!("/v1/vgpu/stop {}", vf("0000:c1:00.4")),
        format!("/v1/vgpu/pf/disable {pfc1}"),
    ];
    assert_eq!(seen, expected, "the daemon's changed events");
}
