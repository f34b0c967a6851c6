//! The CLI's vDPA and vGPU commands run in process over the fakes (the
//! fake netlink client `FakeVdpa`, `FakeSriov`, `FakeKernel`), twice on
//! fresh fakes: once acting directly, once through a hostdevd served in
//! this process on a unix socket over fakes of its own. Both transcripts
//! must equal the golden `tests/golden/fakes.txt` byte for byte, the CLI
//! must not have touched the direct host while the daemon answered, and
//! the daemon must have told watchers of every change as a `changed` event.
//! (The simulated lab's vGPU transcript is in `sim.rs`; the real kernel's
//! vDPA transcript in the kernel tier.)
//!
//! Regenerate with `HOSTDEV_REGEN=1 cargo test -p hostdevctl --test
//! inprocess -- --ignored` and review the diff.
#![allow(clippy::expect_used, clippy::unwrap_used)] // tests: a failed expectation is the report

mod common;

use hostdev_core::{Devices, Kernel, Memo, SharedFakes};
use hostdev_sysfs::sriov::FakeSriov;
use hostdev_sysfs::{FakeKernel, FakeType};
use hostdev_vdpa::FakeVdpa;
use hostdevctl::env::Ctx;
use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn fakes(root: &Path) -> SharedFakes {
    let mdev = FakeKernel::new();
    mdev.add_parent("mtty", vec![FakeType::new("mtty-1", 4)]);
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
    let vdpa = FakeVdpa::new();
    vdpa.add_mgmtdev("vdpasim_net", 1, &["mac", "mtu", "max_vqp"]);
    vdpa.add_mgmtdev("vdpasim_blk", 2, &[]);
    SharedFakes {
        mdev: Arc::new(mdev),
        sriov: Arc::new(sriov),
        vdpa: Arc::new(vdpa),
        vfio: Arc::new(hostdev_vfio::FakeVfio::new()),
        root: root.to_path_buf(),
    }
}

/// The commands, as a user types them after `hostdevctl`.
fn steps(root: &Path) -> Vec<Vec<String>> {
    let export = root.join("vdpa0.json");
    let s = |x: &str| x.split(' ').map(str::to_string).collect::<Vec<_>>();
    vec![
        s("vdpa mgmtdev list"),
        s("vdpa mgmtdev list -o json"),
        s("vdpa define vdpa0 --mgmtdev vdpasim_net --mac 00:11:22:33:44:55 --mtu 9000 --auto"),
        s("vdpa define vdpa0 --mgmtdev vdpasim_net"),
        s("vdpa list --defined"),
        s("vdpa start vdpa0"),
        s("vdpa start vdpa0"),
        s("vdpa list"),
        s("vdpa list -o json"),
        s("vdpa show vdpa0"),
        s("vdpa show vdpa0 -o json"),
        s("vdpa show vdpa0 --libvirt"),
        s("vdpa modify vdpa0 --max-vqp 2 --manual"),
        s("vdpa export vdpa0"),
        vec![
            "vdpa".into(),
            "import".into(),
            export.display().to_string(),
            "--name".into(),
            "vdpa1".into(),
            "--define".into(),
        ],
        vec![
            "vdpa".into(),
            "import".into(),
            root.join("nosuch.json").display().to_string(),
        ],
        s("vdpa add t0 --mgmtdev vdpasim_blk"),
        s("vdpa add t0 --mgmtdev vdpasim_blk"),
        s("vdpa add t1 --mgmtdev vdpasim_blk --mtu 1500"),
        s("vdpa add t2 --mgmtdev nosuch"),
        s("vdpa del t0"),
        s("vdpa start nosuch"),
        s("vdpa show nosuch -o json"),
        s("vdpa list --defined -o json"),
        s("vgpu enable --pf 0000:41:00.0 --numvfs 4 --auto"),
        s("vgpu types"),
        s("vgpu define --vf 0000:41:00.4 --type NVIDIA_L40S-4Q"),
        s("vgpu define --pf 0000:41:00.0 --type 1151 --auto"),
        s("vgpu define --vf 0000:41:00.6 --type 1150 -o json"),
        s("vgpu start --vf 0000:41:00.6"),
        s("vgpu start --vf 0000:41:00.6 -o json"),
        s("vgpu list"),
        s("vgpu list --defined -o json"),
        s("vgpu libvirt --vf 0000:41:00.6"),
        s("vgpu libvirt --vf 0000:41:00.7"),
        s("vgpu disable --pf 0000:41:00.0"),
        s("vgpu stop --vf 0000:41:00.6"),
        s("list"),
        s("list -o json"),
        s("tree"),
        s("vdpa stop vdpa0"),
        s("vdpa undefine vdpa0"),
        s("vdpa undefine vdpa1"),
        s("vgpu undefine --vf 0000:41:00.6"),
        s("vgpu undefine --vf 0000:41:00.5"),
        s("vgpu disable --pf 0000:41:00.0 -o json"),
        s("vgpu types -o json"),
    ]
}

fn code(c: ExitCode) -> u8 {
    (0..=4u8).find(|n| c == ExitCode::from(*n)).unwrap_or(255)
}

/// Runs every step with `ctx` and writes the transcript.
fn transcript<D: hostdev_core::Serve>(ctx: &Ctx<D>, root: &Path) -> String {
    let mut out = String::new();
    for args in steps(root) {
        // The export step's output is the import step's file.
        let mut argv: Vec<OsString> = vec!["hostdevctl".into()];
        argv.extend(args.iter().map(OsString::from));
        let (rc, stdout, stderr) =
            hostdevctl::output::capture(|| hostdevctl::native::run_with(ctx, argv));
        if args.starts_with(&["vdpa".to_string(), "export".to_string()]) {
            std::fs::write(root.join("vdpa0.json"), &stdout).expect("export");
        }
        out.push_str(&common::transcript_step(
            &format!("hostdevctl {}", args.join(" ")),
            &stdout,
            &stderr,
            i32::from(code(rc)),
        ));
    }
    out.replace(&root.display().to_string(), "$ROOT")
}

/// A host the CLI must not touch: counts every view made of it.
struct Untouched(Arc<AtomicUsize>, SharedFakes);

impl Untouched {
    fn devices(&self) -> Devices<(Arc<FakeKernel>, Arc<FakeSriov>, Arc<FakeVdpa>)> {
        self.0.fetch_add(1, Ordering::SeqCst);
        self.1.devices(&Memo::default())
    }
}

#[test]
#[ignore = "needs root: hostdevd lets only uid 0 change devices (cargo xtask test runs the api tier as root)"]
fn vdpa_and_vgpu_commands_over_the_fakes_read_the_same_directly_and_through_hostdevd() {
    // Directly.
    let t = tempfile::tempdir().expect("tempdir");
    let f = fakes(t.path());
    let ctx = Ctx::new(false, None, move || f.devices(&Memo::default()));
    let direct = transcript(&ctx, t.path());
    common::check_golden("fakes", &direct);

    // Through a daemon over fakes of its own, in this process.
    let t2 = tempfile::tempdir().expect("tempdir");
    let socket = t2.path().join("hostdev.sock");
    let served = fakes(t2.path());
    let config = hostdevd::config::Config {
        socket: socket.clone(),
        ..Default::default()
    };
    let (shared, _nudges) = hostdevd::state::Shared::new(config, served, None);
    let listener = hostdevd::listen::bind(&socket, None).expect("bind");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let server = rt.spawn(hostdevd::listen::serve(
        listener,
        hostdevd::server::router(Arc::clone(&shared)),
        Arc::clone(&shared),
        std::time::Duration::from_secs(1),
    ));
    let touched = Arc::new(AtomicUsize::new(0));
    let own = Untouched(Arc::clone(&touched), fakes(t2.path()));
    let ctx = Ctx::new(false, Some(socket), move || own.devices());
    let through = transcript(&ctx, t2.path());
    let _ = shared.stopping.send(true);
    let _ = rt.block_on(server);
    assert_eq!(
        touched.load(Ordering::SeqCst),
        0,
        "the CLI acted on the host directly while the daemon answered"
    );
    assert_eq!(
        through, direct,
        "the transcript through the daemon differs from the direct one"
    );

    // The daemon told watchers of each change that succeeded, in order.
    let (past, _rx) = shared.subscribe(Some(0));
    let changed: Vec<String> = past
        .iter()
        .filter_map(|e| match &e.what {
            hostdev_api::events::EventKind::Changed {
                operation, target, ..
            } => Some(format!(
                "{operation} {}",
                target
                    .as_ref()
                    .map(|t| serde_json::to_string(t).unwrap())
                    .unwrap_or_default()
            )),
            _ => None,
        })
        .collect();
    let expected = [
        r#"/v1/vdpa/define {"kind":"vdpa","name":"vdpa0"}"#,
        r#"/v1/vdpa/start {"kind":"vdpa","name":"vdpa0"}"#,
        r#"/v1/vdpa/modify {"kind":"vdpa","name":"vdpa0"}"#,
        r#"/v1/vdpa/import {"kind":"vdpa","name":"vdpa1"}"#,
        r#"/v1/vdpa/add {"kind":"vdpa","name":"t0"}"#,
        r#"/v1/vdpa/del {"kind":"vdpa","name":"t0"}"#,
        r#"/v1/vgpu/pf/enable {"kind":"pf","pf":"0000:41:00.0"}"#,
        r#"/v1/vgpu/define {"kind":"pf","pf":"0000:41:00.0"}"#,
        r#"/v1/vgpu/define {"kind":"vgpu","vf":"0000:41:00.6"}"#,
        r#"/v1/vgpu/start {"kind":"vgpu","vf":"0000:41:00.6"}"#,
        r#"/v1/vgpu/start {"kind":"vgpu","vf":"0000:41:00.6"}"#,
        r#"/v1/vgpu/stop {"kind":"vgpu","vf":"0000:41:00.6"}"#,
        r#"/v1/vdpa/stop {"kind":"vdpa","name":"vdpa0"}"#,
        r#"/v1/vdpa/undefine {"kind":"vdpa","name":"vdpa0"}"#,
        r#"/v1/vdpa/undefine {"kind":"vdpa","name":"vdpa1"}"#,
        r#"/v1/vgpu/undefine {"kind":"vgpu","vf":"0000:41:00.6"}"#,
        r#"/v1/vgpu/pf/disable {"kind":"pf","pf":"0000:41:00.0"}"#,
    ];
    assert_eq!(changed, expected, "the daemon's changed events");
}
