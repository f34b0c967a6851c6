//! `hostdevctl migrate` for NVIDIA vGPUs between two simulated hosts: the
//! source's L40S numbers `NVIDIA L40S-4Q` 1150, the destination's L40S
//! numbers it 1180, and the destination's H100 uses 1150 for another type.
//! The spec travels by name; the H100 is refused with the reason. Needs
//! FUSE: `#[ignore]`d with its reason and run by `cargo xtask test`.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests: a failed expectation is the report

mod common;

use common::{ok, require_fuse, show, Bins, Sim};
use std::path::Path;

const SRC_VF: &str = "0000:41:00.4";

fn destination_profile(dir: &Path) -> String {
    let builtin = include_str!("../../hostdev-sim/profiles/nvidia-sriov.toml");
    let renumbered = builtin
        .replace(
            "id = 1150\nname = \"NVIDIA L40S-4Q\"",
            "id = 1180\nname = \"NVIDIA L40S-4Q\"",
        )
        .replace("id = 1151\n", "id = 1181\n")
        .replace("id = 1152\n", "id = 1182\n");
    assert!(renumbered.contains("id = 1180") && renumbered.contains("id = 1150"));
    let p = dir.join("destination.toml");
    std::fs::write(&p, renumbered).expect("write profile");
    p.to_str().expect("utf8").to_string()
}

fn enable(bins: &Bins, sim: &Sim, pf: &str, n: &str, vfs: &[&str]) {
    ok(
        bins,
        sim.path(),
        "hostdevctl",
        &["vgpu", "enable", "--pf", pf, "--numvfs", n],
    );
    sim.wait_vfs_ready(vfs);
}

/// Runs `migrate …` on a host; (exit code, stdout, stderr).
fn migrate(bins: &Bins, sim: &Sim, args: &[&str]) -> (i32, String, String) {
    let mut argv = vec!["migrate"];
    argv.extend_from_slice(args);
    let o = bins.run(sim.path(), "hostdevctl", &argv, None);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
#[ignore = "needs FUSE (fuse3) for the simulated lab; run by `cargo xtask test`"]
fn a_vgpu_spec_travels_by_type_name_between_cards_that_number_it_differently() {
    require_fuse("migrate-vgpu");
    let bins = Bins::new();
    let dir = tempfile::tempdir().expect("tempdir");

    // The source: an L40S VF with NVIDIA L40S-4Q (id 1150 on this card).
    let src = Sim::start("nvidia-sriov");
    enable(&bins, &src, "0000:41:00.0", "2", &[SRC_VF, "0000:41:00.5"]);
    let (code, _, err) = migrate(&bins, &src, &["export", SRC_VF]);
    assert!(
        code != 0 && err.contains("carries no vGPU type"),
        "an unconfigured VF has nothing to export: {err}"
    );
    ok(
        &bins,
        src.path(),
        "hostdevctl",
        &["vgpu", "define", "--vf", SRC_VF, "--type", "NVIDIA L40S-4Q"],
    );
    ok(
        &bins,
        src.path(),
        "hostdevctl",
        &["vgpu", "start", "--vf", SRC_VF],
    );
    let (code, spec, err) = migrate(&bins, &src, &["export", SRC_VF]);
    assert_eq!(code, 0, "{err}");
    let j: serde_json::Value = serde_json::from_str(&spec).expect("spec JSON");
    let v = &j["vgpu"];
    assert_eq!(v["type_name"], "NVIDIA L40S-4Q", "{spec}");
    assert_eq!(v["type_id"], 1150);
    assert_eq!(v["card"]["model"], "L40S");
    assert_eq!(v["card"]["device"], "0x26b9");
    assert_eq!(v["driver"]["driver"], "nvidia");
    assert_eq!(v["driver"]["version"], "550.90.05");
    assert!(
        v["unprobed"].as_str().is_some_and(|w| w.contains("VFIO")),
        "the lab VF cannot be opened through VFIO, and the spec says so: {spec}"
    );
    let spec_file = dir.path().join("spec.json");
    std::fs::write(&spec_file, &spec).expect("write spec");
    let spec_arg = spec_file.to_str().expect("utf8");

    // The destination: its L40S numbers the type 1180; one VF only, so it
    // is full once prepare has used it. Its H100 has two free VFs.
    let dst = Sim::start(&destination_profile(dir.path()));
    enable(&bins, &dst, "0000:41:00.0", "1", &["0000:41:00.4"]);
    enable(
        &bins,
        &dst,
        "0000:c1:00.0",
        "2",
        &["0000:c1:00.4", "0000:c1:00.5"],
    );

    let (code, out, err) = migrate(&bins, &dst, &["check", spec_arg]);
    assert_eq!(code, 0, "compatible by name: {out}{err}");
    assert!(
        out.starts_with("verdict: compatible\n")
            && out.contains("NVIDIA L40S-4Q (id 1180 on L40S 0x26b9 at 0000:41:00.0)")
            && out.contains("1 free VFs can take it"),
        "{out}"
    );
    let (code, out, _) = migrate(&bins, &dst, &["check", spec_arg, "-o", "json"]);
    assert_eq!(code, 0);
    let r: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(r["verdict"], "compatible");
    assert!(r["reasons"]
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x["rule"] == "type")));

    // A card model that lacks the type, though it has the source's id.
    let (code, out, _) = migrate(
        &bins,
        &dst,
        &["check", spec_arg, "--device", "0000:c1:00.4"],
    );
    assert_eq!(code, 4, "{out}");
    assert!(
        out.starts_with("verdict: incompatible\n")
            && out.contains("H100 card does not offer NVIDIA L40S-4Q")
            && out.contains("id 1150 here is NVIDIA H100-80C"),
        "{out}"
    );

    // Prepare: a dry run changes nothing; then the type by this card's id.
    let cur = "bus/pci/devices/0000:41:00.4/nvidia/current_vgpu_type";
    let (code, out, err) = migrate(&bins, &dst, &["prepare", spec_arg, "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("would make 0000:41:00.4"), "{out}");
    assert_eq!(dst.read(cur), "0");
    let (code, out, err) = migrate(&bins, &dst, &["prepare", spec_arg]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("made 0000:41:00.4 (NVIDIA L40S-4Q on 0000:41:00.0)")
            && out.contains("NVIDIA L40S-4Q is type id 1180 on this card")
            && out.contains(r#"<address domain="0x0000" bus="0x41" slot="0x00" function="0x4"/>"#),
        "{out}"
    );
    assert_eq!(dst.read(cur), "1180");
    let (code, out, _) = migrate(
        &bins,
        &dst,
        &["check", spec_arg, "--device", "0000:41:00.4"],
    );
    assert_eq!(code, 0, "the prepared VF has the type by name: {out}");

    // Now no card has room: each one is explained, and prepare refuses.
    let (code, out, _) = migrate(&bins, &dst, &["check", spec_arg]);
    assert_eq!(code, 4, "{out}");
    assert!(
        out.contains("none of its 1 VFs is free and set up")
            && out.contains("H100 card does not offer NVIDIA L40S-4Q"),
        "{out}"
    );
    let (code, out, err) = migrate(&bins, &dst, &["prepare", spec_arg]);
    assert!(
        code != 0
            && err.contains("nothing here can take a NVIDIA L40S-4Q device")
            && err.contains("0000:c1:00.0 (H100) has no free VF that offers it"),
        "{out}{err}"
    );
    assert_eq!(
        dst.read("bus/pci/devices/0000:c1:00.4/nvidia/current_vgpu_type"),
        "0"
    );

    // A UUID belongs to an mdev spec only.
    let (code, _, err) = migrate(
        &bins,
        &dst,
        &[
            "prepare",
            spec_arg,
            "--uuid",
            "11111111-2222-4333-8444-555555555555",
        ],
    );
    assert!(
        code != 0 && err.contains("a UUID is given to an mdev only"),
        "{err}"
    );
}

/// The libvirt hook's `migrate begin` between two simulated hosts through
/// its real input and output (the domain XML on stdin, the XML libvirt
/// takes on stdout, hostdev's sentence on stderr): the source's metadata as
/// `libvirt-hook annotate` gives it, the VF's address rewritten where the
/// destination's first VF is taken, `prepare` then `release` on the
/// destination, a dry run with `migrate domain`, and a refusal.
#[test]
#[ignore = "needs FUSE (fuse3) for the simulated lab; run by `cargo xtask test`"]
fn a_domain_with_a_pool_vgpu_arrives_through_the_hooks_real_input_and_output() {
    require_fuse("migrate-domain");
    let bins = Bins::new();
    const DOM: &str = "c0020000-0000-4000-8000-0000000000b1";
    let pool = |sim: &Sim, ty: &str| {
        let dir = sim.path().join("etc/hostdev/pools.d");
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(
            dir.join("l40s.toml"),
            format!("kind = \"vgpu\"\ntype = \"{ty}\"\n[members]\nnuma_node = 0\n"),
        )
        .expect("pool");
    };
    let host = || {
        let sim = Sim::start("nvidia-sriov");
        enable(&bins, &sim, "0000:41:00.0", "4", &[SRC_VF, "0000:41:00.5"]);
        pool(&sim, "NVIDIA L40S-4Q");
        sim
    };
    let src = host();
    let a = ok(
        &bins,
        src.path(),
        "hostdevctl",
        &["pool", "allocate", "l40s", "--consumer", DOM],
    );
    assert!(a.starts_with(SRC_VF), "{a}");
    let meta = ok(
        &bins,
        src.path(),
        "hostdevctl",
        &["libvirt-hook", "annotate", DOM, "--print"],
    );
    assert!(
        meta.starts_with("<hostdev:devices xmlns:hostdev=\"urn:hostdev:domain:1\">")
            && meta.contains(&format!("id=\"{SRC_VF}\"")),
        "{meta}"
    );
    let xml = format!(
        "<domain type='kvm'>\n  <name>mig-vm</name>\n  <uuid>{DOM}</uuid>\n  <metadata>{}</metadata>\n  <devices>\n    <hostdev mode='subsystem' type='pci' managed='no'><source><address domain='0x0000' bus='0x41' slot='0x00' function='0x4'/></source><alias name='ua-vgpu0'/></hostdev>\n  </devices>\n</domain>\n",
        meta.trim_end()
    );
    let hook = |sim: &Sim, op: &str, sub: &str, input: &str| {
        bins.run(
            sim.path(),
            "hostdevctl",
            &["libvirt-hook", "run", "mig-vm", op, sub, "-"],
            Some(input.as_bytes()),
        )
    };

    let dst = host();
    // Another domain holds the destination's first VF.
    ok(
        &bins,
        dst.path(),
        "hostdevctl",
        &["pool", "allocate", "l40s", "--consumer", "other-vm"],
    );
    let path = dst.path().join("incoming.xml");
    std::fs::write(&path, &xml).expect("xml");
    let dry = ok(
        &bins,
        dst.path(),
        "hostdevctl",
        &["migrate", "domain", path.to_str().expect("utf8")],
    );
    assert!(
        dry.contains("l40s") && dry.contains(SRC_VF) && dry.contains("compatible"),
        "{dry}"
    );
    let o = hook(&dst, "migrate", "begin", &xml);
    assert!(o.status.success(), "{}", show(&o));
    let out = String::from_utf8(o.stdout).expect("utf8");
    assert!(
        out.contains(r#"<address domain="0x0000" bus="0x41" slot="0x00" function="0x5"/>"#),
        "the next free VF: {out}"
    );
    assert!(out.contains("id=\"0000:41:00.5\"") && !out.contains(&format!("id=\"{SRC_VF}\"")));
    assert!(out.contains("<alias name='ua-vgpu0'/>"), "{out}");
    let cur = |vf: &str| dst.read(&format!("bus/pci/devices/{vf}/nvidia/current_vgpu_type"));
    assert_eq!(
        cur("0000:41:00.5").trim(),
        "1150",
        "the type is set before QEMU starts"
    );
    // libvirt starts the incoming domain with the XML the hook printed.
    let o = hook(&dst, "prepare", "begin", &out);
    assert!(o.status.success(), "{}", show(&o));
    let held = ok(
        &bins,
        dst.path(),
        "hostdevctl",
        &["-o", "json", "pool", "show", "l40s"],
    );
    let held: serde_json::Value = serde_json::from_str(&held).expect("json");
    let mine = held["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .find(|d| d["id"] == "0000:41:00.5")
        .cloned()
        .expect("the arrival's VF");
    assert_eq!(mine["consumer"], DOM, "{mine}");
    assert!(mine["expires"].is_null(), "an allocation now: {mine}");
    let o = hook(&dst, "release", "end", &out);
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(cur("0000:41:00.5").trim(), "0", "given back at release");

    // A destination whose pool hands out another type refuses with
    // hostdev's sentence on stderr, prints nothing, and sets no VF type.
    let other = Sim::start("nvidia-sriov");
    enable(
        &bins,
        &other,
        "0000:41:00.0",
        "2",
        &[SRC_VF, "0000:41:00.5"],
    );
    pool(&other, "NVIDIA L40S-8Q");
    let o = hook(&other, "migrate", "begin", &xml);
    assert!(!o.status.success());
    assert!(o.stdout.is_empty());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(
            "pool l40s here hands out NVIDIA L40S-8Q, the source's device is NVIDIA L40S-4Q"
        ),
        "{err}"
    );
    for vf in [SRC_VF, "0000:41:00.5"] {
        let t = other.read(&format!("bus/pci/devices/{vf}/nvidia/current_vgpu_type"));
        assert_eq!(t.trim(), "0");
    }
}

/// kill -9 of the destination's hook at random instants of `migrate begin`
/// for a domain holding a pool VF, now and then followed by libvirt's
/// `prepare` or `release` as a libvirtd that went on would run them; then
/// `pool reconcile`: every VF with a vGPU type set is recorded by the pool
/// and held (none half-made), and the arriving domain holds at most one. A
/// last attempt that runs to its end gets the one VF; `release` gives it
/// back.
#[test]
#[ignore = "needs FUSE (fuse3) for the simulated lab; run by `cargo xtask test`"]
fn killing_the_hook_at_each_phase_of_an_arrival_leaves_no_device_without_an_owner() {
    use hostdev_testkit::Rng;
    use std::collections::BTreeSet;
    use std::process::{Command, Stdio};
    require_fuse("migrate-domain kills");
    let bins = Bins::new();
    const DOM: &str = "c0020000-0000-4000-8000-0000000000c1";
    const VFS: [&str; 4] = [
        "0000:41:00.4",
        "0000:41:00.5",
        "0000:41:00.6",
        "0000:41:00.7",
    ];
    let host = || {
        let sim = Sim::start("nvidia-sriov");
        enable(&bins, &sim, "0000:41:00.0", "4", &VFS);
        let d = sim.path().join("etc/hostdev/pools.d");
        std::fs::create_dir_all(&d).expect("dir");
        std::fs::write(
            d.join("l40s.toml"),
            "kind = \"vgpu\"\ntype = \"NVIDIA L40S-4Q\"\n[members]\nnuma_node = 0\n",
        )
        .expect("pool");
        sim
    };
    let xml = |meta: &str| {
        format!(
            "<domain type='kvm'><name>mig-vm</name><uuid>{DOM}</uuid><metadata>{meta}</metadata><devices>\
             <hostdev mode='subsystem' type='pci' managed='no'><source><address domain='0x0000' bus='0x41' slot='0x00' function='0x4'/></source></hostdev>\
             </devices></domain>"
        )
    };
    let hook = |sim: &Sim, op: &str, sub: &str, input: &str| {
        bins.run(
            sim.path(),
            "hostdevctl",
            &["libvirt-hook", "run", "mig-vm", op, sub, "-"],
            Some(input.as_bytes()),
        )
    };
    // The source: the domain holds a VF of its pool; its metadata.
    let src = host();
    ok(
        &bins,
        src.path(),
        "hostdevctl",
        &["pool", "allocate", "l40s", "--consumer", DOM],
    );
    let meta = ok(
        &bins,
        src.path(),
        "hostdevctl",
        &["libvirt-hook", "annotate", DOM, "--print"],
    );
    assert!(meta.starts_with("<hostdev:devices"), "{meta}");
    let incoming = xml(meta.trim_end());

    let dst = host();
    let r = dst.path();
    let mut rng = Rng::new(29);
    let mut printed = None;
    let mut killed = 0;
    // The kill comes at a random instant within a window that follows how
    // long a whole run takes on this machine (narrower after a run that
    // finished, wider after one that was killed), so that about half the
    // runs die mid-way on a fast machine and on a slow one alike.
    let mut window: u64 = 400_000;
    for _ in 0..60 {
        let mut c = Command::new(bins.path("hostdevctl"));
        c.args(["libvirt-hook", "run", "mig-vm", "migrate", "begin", "-"])
            .env("HOSTDEV_ROOT", r)
            .env("HOSTDEV_SOCKET", "")
            .env("HOSTDEV_READY_TIMEOUT_MS", "2000")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = c.spawn().expect("spawn the hook");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin");
            let _ = stdin.write_all(incoming.as_bytes());
        }
        std::thread::sleep(std::time::Duration::from_micros(rng.below(window)));
        let _ = child.kill(); // SIGKILL, or too late
        let out = child.wait_with_output().expect("wait");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && !text.is_empty() {
            printed = Some(text);
        } else if !out.status.success() {
            killed += 1;
        }
        window = if out.status.success() {
            (window * 3 / 4).max(2_000)
        } else {
            (window * 5 / 4).min(2_000_000)
        };
        // A libvirtd that went on: QEMU prepared, or the migration undone.
        if let Some(p) = &printed {
            match rng.below(4) {
                0 => {
                    let _ = hook(&dst, "prepare", "begin", p);
                }
                1 => {
                    let _ = hook(&dst, "release", "end", p);
                }
                _ => {}
            }
        }
    }
    assert!(
        printed.is_some() && killed >= 10,
        "{killed} of 60 killed, some must run to their end"
    );
    let o = bins.run(r, "hostdevctl", &["-o", "json", "pool", "reconcile"], None);
    assert!(o.status.success(), "{}", show(&o));
    let typed: BTreeSet<String> = VFS
        .iter()
        .filter(|vf| {
            dst.read(&format!("bus/pci/devices/{vf}/nvidia/current_vgpu_type"))
                .trim()
                != "0"
        })
        .map(|vf| vf.to_string())
        .collect();
    let pool: serde_json::Value = serde_json::from_str(&ok(
        &bins,
        r,
        "hostdevctl",
        &["-o", "json", "pool", "show", "l40s"],
    ))
    .expect("json");
    let mut owned = BTreeSet::new();
    let mut held_by_dom = 0;
    for d in pool["devices"].as_array().expect("devices") {
        let id = d["id"].as_str().expect("id").to_string();
        let state = d["state"].as_str().expect("state");
        assert!(
            matches!(state, "allocated" | "reserved"),
            "{id} left {state}: {pool}"
        );
        assert!(typed.contains(&id), "{id} is {state} but has no type set");
        if d["consumer"] == DOM {
            held_by_dom += 1;
        }
        owned.insert(id);
    }
    let orphans: Vec<&String> = typed.difference(&owned).collect();
    assert!(
        orphans.is_empty(),
        "VFs with a type no pool owns: {orphans:?}"
    );
    assert!(held_by_dom <= 1, "the domain holds {held_by_dom}: {pool}");
    // An attempt that runs to its end: one VF; release gives it back.
    let o = hook(&dst, "migrate", "begin", &incoming);
    assert!(o.status.success(), "{}", show(&o));
    let out = String::from_utf8(o.stdout).expect("utf8");
    let o = hook(&dst, "prepare", "begin", &out);
    assert!(o.status.success(), "{}", show(&o));
    let held = ok(&bins, r, "hostdevctl", &["pool", "show", "l40s"]);
    assert!(held.contains("1 of 4 allocated"), "{held}");
    let o = hook(&dst, "release", "end", &out);
    assert!(o.status.success(), "{}", show(&o));
    let held = ok(&bins, r, "hostdevctl", &["pool", "show", "l40s"]);
    assert!(held.contains("0 of 4 allocated"), "{held}");
}
