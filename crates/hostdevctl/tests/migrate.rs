//! `hostdevctl migrate` for NVIDIA vGPUs between two simulated hosts: the
//! source's L40S numbers `NVIDIA L40S-4Q` 1150, the destination's L40S
//! numbers it 1180, and the destination's H100 uses 1150 for another type.
//! The spec travels by name; the H100 is refused with the reason. Needs
//! FUSE: `#[ignore]`d with its reason and run by `cargo xtask test`.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests: a failed expectation is the report

mod common;

use common::{ok, require_fuse, Bins, Sim};
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
