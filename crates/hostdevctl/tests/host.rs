//! `hostdevctl plan|apply` on the simulated lab (`large`: 16 GPUs that
//! allow one type at a time): from empty to 128 devices, idempotent, one
//! card retyped (drained, then the new type), and the same UUIDs after the
//! definitions are wiped and the file applied again. Needs FUSE:
//! `#[ignore]`d with its reason and run by `cargo xtask test`.
#![allow(clippy::expect_used, clippy::unwrap_used)] // tests: a failed expectation is the report

mod common;

use common::{require_fuse, Bins, Sim};
use std::collections::BTreeSet;
use std::path::Path;

const ALL: &str = r#"
[host]
id = "lab-1"

[[mdev]]
select = { ids = ["10de:1eb8"] }
type = "nvidia-260"
count = 8
"#;

/// The same, but card 0000:1f:00.0 runs four nvidia-262 instead.
const RETYPED: &str = r#"
[host]
id = "lab-1"

[[mdev]]
select = { ids = ["10de:1eb8"], parents = [PARENTS] }
type = "nvidia-260"
count = 8

[[mdev]]
select = { parents = ["0000:1f:00.0"] }
type = "nvidia-262"
count = 4
"#;

fn run(bins: &Bins, root: &Path, args: &[&str]) -> (i32, String) {
    let o = bins.run(root, "hostdevctl", args, None);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

fn running(sim: &Sim) -> BTreeSet<String> {
    std::fs::read_dir(sim.path().join("sys/bus/mdev/devices"))
        .expect("devices")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
#[ignore = "needs FUSE (fuse3) for the simulated lab; run by `cargo xtask test`"]
fn a_host_file_is_planned_applied_idempotently_retyped_and_keeps_its_uuids() {
    require_fuse("host-file");
    let bins = Bins::new();
    let sim = Sim::start("large");
    let r = sim.path();
    let dir = tempfile::tempdir().expect("tempdir");
    let all = dir.path().join("all.toml");
    std::fs::write(&all, ALL).expect("write");
    let all = all.to_str().unwrap();

    let (code, out) = run(&bins, r, &["plan", "--file", all]);
    assert_eq!(code, 2, "changes pending: {out}");
    assert!(out.contains("128 to change, 0 blocked"), "{out}");
    let (code, out) = run(&bins, r, &["apply", "--file", all]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("128 done, 0 failed, 0 undone, 0 blocked"),
        "{out}"
    );
    let first = running(&sim);
    assert_eq!(first.len(), 128);
    let (code, out) = run(&bins, r, &["plan", "--file", all]);
    assert_eq!(code, 0, "nothing left to do: {out}");
    assert!(out.contains("0 to change, 0 blocked (in use; apply --force ID), 128 as wanted"));
    let (code, out) = run(&bins, r, &["apply", "--file", all, "-o", "json"]);
    assert_eq!(code, 0, "{out}");
    let j: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        j["outcomes"].as_array().map(Vec::len),
        Some(0),
        "a second apply does nothing"
    );

    // Retype one card: its first four slots keep their UUIDs with the new
    // type, the other four go; the other cards are untouched.
    let others: Vec<String> = (0x10..0x1f)
        .map(|b| format!("\"0000:{b:02x}:00.0\""))
        .collect();
    let retyped = dir.path().join("retyped.toml");
    std::fs::write(&retyped, RETYPED.replace("PARENTS", &others.join(", "))).expect("write");
    let retyped = retyped.to_str().unwrap();
    let (code, out) = run(&bins, r, &["apply", "--file", retyped]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("8 done, 0 failed, 0 undone, 0 blocked, 120 as wanted"),
        "{out}"
    );
    let now = running(&sim);
    assert_eq!(now.len(), 124);
    assert!(now.is_subset(&first), "retyped slots keep their UUIDs");
    let card = "0000:1f:00.0";
    assert_eq!(
        sim.read(&format!(
            "class/mdev_bus/{card}/mdev_supported_types/nvidia-262/available_instances"
        )),
        "28",
        "four nvidia-262 run on the retyped card"
    );

    // Wiped: devices gone (reboot), definitions and the record removed;
    // the same file gives the same UUIDs.
    sim.reboot();
    std::fs::remove_dir_all(r.join("etc/mdevctl.d")).expect("wipe");
    std::fs::remove_file(r.join("var/lib/hostdev/host-managed.json")).expect("wipe");
    let (code, out) = run(&bins, r, &["apply", "--file", retyped]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(running(&sim), now, "the same UUIDs after a wipe");

    // Regression: with /etc read-only every removal fails and no device is
    // stopped (removal used to stop first, then fail to undefine).
    let fewer = dir.path().join("fewer.toml");
    std::fs::write(
        &fewer,
        std::fs::read_to_string(retyped)
            .unwrap()
            .replacen("count = 8", "count = 6", 1),
    )
    .expect("write");
    let mut ro = std::process::Command::new("unshare");
    ro.args(["--mount", "sh", "-c"])
        .arg(format!(
            "mount --bind {etc} {etc} && mount -o remount,bind,ro {etc} && {bin} apply --file {fewer}",
            etc = r.join("etc").display(),
            bin = bins.path("hostdevctl").display(),
            fewer = fewer.display(),
        ))
        .env("HOSTDEV_ROOT", r)
        .env("HOSTDEV_SOCKET", "");
    let o = ro.output().expect("unshare");
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("0 done, 15 failed, 15 undone") && out.contains("Read-only file system"),
        "{out}"
    );
    assert_eq!(running(&sim), now, "nothing stopped");

    // A file with an unknown key is refused by name and line; nothing changes.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[mdev]]\ntype = \"nvidia-260\"\ncount = 1\ncolour = \"red\"\n",
    )
    .expect("write");
    let (code, out) = run(&bins, r, &["apply", "--file", bad.to_str().unwrap()]);
    assert!(
        code == 1 && out.contains("colour") && out.contains("line 4"),
        "{out}"
    );
    assert_eq!(running(&sim), now);
}

/// One file for a GPU host: 16 mdev cards × 8 devices and two NVIDIA PFs
/// with VF types (each lab has one half; the other half selects nothing).
const GPU_HOST: &str = r#"
[host]
id = "lab-1"

[[mdev]]
select = { ids = ["10de:1eb8"] }
type = "TYPE"
count = 8

[[sriov]]
select = { parents = ["0000:41:00.0"] }
numvfs = 8
types = [{ type = "NVIDIA L40S-4Q", count = 4 }, { type = "L40S_TYPE", count = 2 }]

[[sriov]]
select = { ids = ["10de:2331"] }
numvfs = 4
types = [{ type = "NVIDIA H100-20C", count = 4 }]
"#;

fn gpu_host(dir: &Path, name: &str, mdev_type: &str, l40s: &str) -> String {
    let p = dir.join(name);
    std::fs::write(
        &p,
        GPU_HOST
            .replace("L40S_TYPE", l40s)
            .replace("TYPE", mdev_type),
    )
    .expect("write");
    p.to_str().unwrap().to_string()
}

/// Records an allocation as a pool does, so that the device is in use.
fn allocate(root: &Path, id: &str, member: &str) {
    use hostdev_store::{DeviceRecord, Origin, PoolDb, RecState};
    let db = PoolDb::open(root).expect("pools.db");
    db.write(|tx| {
        tx.insert(&DeviceRecord {
            id: id.into(),
            pool: "vms".into(),
            member: member.into(),
            origin: Origin::PreCreated,
            state: RecState::Allocated,
            consumer: Some("vm-1".into()),
            since: 0,
            expires: None,
            element: String::new(),
        })
    })
    .map_err(|e: hostdev_store::StoreError| e)
    .expect("allocation");
}

fn release(root: &Path, id: &str) {
    let db = hostdev_store::PoolDb::open(root).expect("pools.db");
    db.write(|tx| tx.delete(id))
        .map_err(|e: hostdev_store::StoreError| e)
        .expect("release");
}

fn vf_type(sim: &Sim, vf: &str) -> String {
    sim.read(&format!("bus/pci/devices/{vf}/nvidia/current_vgpu_type"))
}

#[test]
#[ignore = "needs FUSE (fuse3) for the simulated lab; run by `cargo xtask test`"]
fn retyping_every_card_leaves_the_one_in_use_and_sriov_pfs_get_their_vf_types() {
    require_fuse("host-file-in-use");
    let bins = Bins::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let first = gpu_host(d, "first.toml", "nvidia-260", "NVIDIA L40S-8Q");
    let second = gpu_host(d, "second.toml", "nvidia-262", "NVIDIA L40S-12Q");

    // The mdev half, on `large`.
    let gpus = Sim::start("large");
    let r = gpus.path();
    let (code, out) = run(&bins, r, &["apply", "--file", &first]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("note: sriov #1 selects no PF"), "{out}");
    assert_eq!(running(&gpus).len(), 128);
    // A VM holds one device on 0000:1f:00.0 through a pool.
    let card = "0000:1f:00.0";
    let held: String = std::fs::read_dir(r.join(format!("sys/class/mdev_bus/{card}")))
        .expect("card")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.len() == 36)
        .expect("a device on the card");
    allocate(r, &held, card);
    let (code, out) = run(&bins, r, &["-o", "json", "plan", "--file", &second]);
    assert_eq!(code, 2, "{out}");
    let plan: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let blocked = plan["blocked"].as_array().expect("blocked");
    assert!(
        blocked.iter().any(|b| b["id"] == held.as_str()
            && b["why"]
                .as_str()
                .unwrap()
                .contains("pool vms allocated it to vm-1")),
        "{out}"
    );
    assert!(
        blocked
            .iter()
            .filter(|b| b["id"] != held.as_str())
            .all(|b| b["parent"] == card && b["why"].as_str().unwrap().contains("waits for")),
        "only the held card's retypes wait: {out}"
    );
    let (code, out) = run(&bins, r, &["apply", "--file", &second]);
    assert_eq!(code, 2, "blocked, the rest done: {out}");
    assert!(
        out.contains("120 done, 0 failed, 0 undone, 8 blocked"),
        "{out}"
    );
    for b in 0x10..0x1f {
        assert_eq!(
            gpus.avail(&format!("0000:{b:02x}:00.0"), "nvidia-262"),
            24,
            "card {b:x} retyped to eight nvidia-262"
        );
    }
    assert_eq!(
        gpus.avail(card, "nvidia-262"),
        0,
        "the held card keeps its type"
    );
    assert_eq!(gpus.avail(card, "nvidia-260"), 24, "all eight kept");
    assert!(
        running(&gpus).contains(&held),
        "the device in use was not touched"
    );
    // Released, the next apply finishes the card.
    release(r, &held);
    let (code, out) = run(&bins, r, &["apply", "--file", &second]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("8 done, 0 failed"), "{out}");
    assert_eq!(gpus.avail(card, "nvidia-262"), 24);
    let (code, _) = run(&bins, r, &["plan", "--file", &second]);
    assert_eq!(code, 0);
    drop(gpus);

    // The SR-IOV half, on `nvidia-sriov`.
    let pfs = Sim::start("nvidia-sriov");
    let r = pfs.path();
    let (code, out) = run(&bins, r, &["plan", "--file", &first]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("0000:41:00.0 vf0") && out.contains("enables its VFs"),
        "{out}"
    );
    let (code, out) = run(&bins, r, &["apply", "--file", &first]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("12 done, 0 failed"), "2 PFs, 6 + 4 VFs: {out}");
    assert_eq!(pfs.read("bus/pci/devices/0000:41:00.0/sriov_numvfs"), "8");
    assert_eq!(pfs.read("bus/pci/devices/0000:c1:00.0/sriov_numvfs"), "4");
    let l40s: Vec<String> = (4..=7)
        .map(|f| format!("0000:41:00.{f}"))
        .chain((0..=3).map(|f| format!("0000:41:01.{f}")))
        .collect();
    let types: Vec<String> = l40s.iter().map(|v| vf_type(&pfs, v)).collect();
    assert_eq!(
        types,
        ["1150", "1150", "1150", "1150", "1151", "1151", "0", "0"],
        "VFs in index order: four 4Q, two 8Q (ids of this card), two untyped"
    );
    let (code, out) = run(&bins, r, &["plan", "--file", &first]);
    assert_eq!(code, 0, "{out}");
    // The L40S's 8Q VFs become 12Q while a VM holds the second: that one
    // is blocked, the other retyped.
    allocate(r, &l40s[5], "0000:41:00.0");
    let (code, out) = run(&bins, r, &["apply", "--file", &second]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("1 done, 0 failed, 0 undone, 1 blocked"),
        "{out}"
    );
    assert_eq!(vf_type(&pfs, &l40s[4]), "1152");
    assert_eq!(
        vf_type(&pfs, &l40s[5]),
        "1151",
        "the VF in use keeps its type"
    );
    // Wiped definitions and VFs (a reinstall): the same file, the same host.
    release(r, &l40s[5]);
    pfs.reboot();
    std::fs::remove_dir_all(r.join("etc/hostdev")).expect("wipe");
    std::fs::remove_file(r.join("var/lib/hostdev/host-managed.json")).expect("wipe");
    let (code, out) = run(&bins, r, &["apply", "--file", &second]);
    assert_eq!(code, 0, "{out}");
    let again: Vec<String> = l40s.iter().map(|v| vf_type(&pfs, v)).collect();
    assert_eq!(
        again,
        ["1150", "1150", "1150", "1150", "1152", "1152", "0", "0"]
    );
}

fn all_cards(dir: &Path, name: &str, mdev_type: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, ALL.replace("nvidia-260", mdev_type)).expect("write");
    p.to_str().unwrap().to_string()
}

fn on_card(sim: &Sim, card: &str) -> BTreeSet<String> {
    std::fs::read_dir(sim.path().join(format!("sys/class/mdev_bus/{card}")))
        .expect("card")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 36)
        .collect()
}

#[test]
#[ignore = "needs FUSE (fuse3) for the simulated lab; run by `cargo xtask test`"]
fn a_failure_part_way_puts_its_parent_back_and_a_killed_apply_converges() {
    require_fuse("host-file-faults");
    let bins = Bins::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // `large`, where the fourth nvidia-262 made on 0000:13:00.0 fails once.
    let profile = d.join("faulty.toml");
    std::fs::write(
        &profile,
        include_str!("../../hostdev-sim/profiles/large.toml").to_string()
            + "\n[[fault]]\nop = \"create\"\nparent = \"0000:13:00.0\"\nname = \"nvidia-262\"\nerrno = \"EIO\"\nafter = 3\ntimes = 1\n",
    )
    .expect("profile");
    let sim = Sim::start(profile.to_str().unwrap());
    let r = sim.path();
    let t260 = all_cards(d, "260.toml", "nvidia-260");
    let t262 = all_cards(d, "262.toml", "nvidia-262");
    let (code, out) = run(&bins, r, &["apply", "--file", &t260]);
    assert_eq!(code, 0, "{out}");
    let card = "0000:13:00.0";
    let before = on_card(&sim, card);
    assert_eq!(before.len(), 8);

    let (code, out) = run(&bins, r, &["apply", "--file", &t262]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("120 done, 1 failed, 7 undone, 0 blocked"),
        "the other 15 cards complete; this one is put back: {out}"
    );
    assert!(
        out.contains("rolled-back") && out.contains("not-tried"),
        "{out}"
    );
    assert_eq!(
        on_card(&sim, card),
        before,
        "the same devices run on the card"
    );
    assert_eq!(sim.avail(card, "nvidia-260"), 24, "with their old type");
    for u in &before {
        let def = std::fs::read_to_string(r.join(format!("etc/mdevctl.d/{card}/{u}")))
            .expect("definition kept");
        assert!(def.contains("nvidia-260"), "{u}: {def}");
    }
    assert_eq!(
        sim.avail("0000:14:00.0", "nvidia-262"),
        24,
        "another card retyped"
    );

    // The fault fired once: the next apply finishes the card.
    let (code, out) = run(&bins, r, &["apply", "--file", &t262]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("8 done, 0 failed"), "{out}");

    // Killed at three instants while retyping every card, then applied
    // again: the host converges on the file.
    for (i, ms) in [40u64, 250, 700].into_iter().enumerate() {
        let file = if i % 2 == 0 { &t260 } else { &t262 };
        let mut c = std::process::Command::new(bins.path("hostdevctl"));
        c.args(["apply", "--file", file])
            .env("HOSTDEV_ROOT", r)
            .env("HOSTDEV_SOCKET", "")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut child = c.spawn().expect("apply");
        std::thread::sleep(std::time::Duration::from_millis(ms));
        let _ = child.kill();
        let _ = child.wait();
        let (code, out) = run(&bins, r, &["apply", "--file", file]);
        assert_eq!(code, 0, "after a kill at {ms} ms: {out}");
        let (code, out) = run(&bins, r, &["plan", "--file", file]);
        assert_eq!(code, 0, "converged after a kill at {ms} ms: {out}");
        assert_eq!(running(&sim).len(), 128);
        let defs: usize = std::fs::read_dir(r.join("etc/mdevctl.d"))
            .expect("defs")
            .flatten()
            .filter(|e| e.path().is_dir() && e.file_name() != "scripts.d")
            .map(|e| std::fs::read_dir(e.path()).expect("dir").count())
            .sum();
        assert_eq!(
            defs, 128,
            "one definition per device after a kill at {ms} ms"
        );
    }
}

/// The shape of the example in NVIDIA/vgpu-device-manager's README (the
/// model's unit test translates the same file).
const VGPU_DM: &str = include_str!("../../hostdev-model/testdata/vgpu-dm-t4.yaml");

#[test]
#[ignore = "needs FUSE (fuse3) for the simulated lab; run by `cargo xtask test`"]
fn a_vgpu_device_manager_config_is_planned_and_its_translation_applied() {
    require_fuse("host-file-import");
    let bins = Bins::new();
    let sim = Sim::start("large");
    let r = sim.path();
    // The host's identity comes from its machine-id here.
    std::fs::create_dir_all(r.join("etc")).expect("etc");
    std::fs::write(
        r.join("etc/machine-id"),
        "0123456789abcdef0123456789abcdef\n",
    )
    .expect("machine-id");
    let dir = tempfile::tempdir().expect("tempdir");
    let yaml = dir.path().join("config-t4.yaml");
    std::fs::write(&yaml, VGPU_DM).expect("write");
    let yaml = yaml.to_str().unwrap();
    let (code, out) = run(
        &bins,
        r,
        &["plan", "--from-vgpu-device-manager", yaml, "-c", "T4-small"],
    );
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("24 to change"), "16 + 8: {out}");
    let (code, file) = run(
        &bins,
        r,
        &[
            "plan",
            "--from-vgpu-device-manager",
            yaml,
            "-c",
            "T4-small",
            "--show-file",
        ],
    );
    assert_eq!(code, 0, "{file}");
    let host = dir.path().join("host.toml");
    std::fs::write(&host, &file).expect("write");
    let (code, out) = run(&bins, r, &["apply", "--file", host.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    // GPU 0 is the lowest address: 16 T4-1Q (nvidia-257); GPU 1: 8 T4-2Q.
    assert_eq!(sim.avail("0000:10:00.0", "nvidia-257"), 16);
    assert_eq!(sim.avail("0000:11:00.0", "nvidia-258"), 24);
    assert_eq!(running(&sim).len(), 24);
    let (code, out) = run(
        &bins,
        r,
        &["plan", "--from-vgpu-device-manager", yaml, "-c", "T4-large"],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("no configuration \"T4-large\"") && out.contains("T4-1Q, T4-small"),
        "{out}"
    );

    // A configuration whose only type no GPU here offers planned removing
    // every device the file made, with only a note and exit 2: loud now (a
    // warning per loss on stderr, exit 1), the plan still shown.
    let other = dir.path().join("config-a100.yaml");
    std::fs::write(
        &other,
        "version: v1\nvgpu-configs:\n  A100-1Q:\n    - devices: all\n      vgpu-devices:\n        \"A100-1Q\": 4\n",
    )
    .expect("write");
    let other = other.to_str().unwrap();
    for extra in [&[][..], &["--show-file"][..], &["-o", "json"][..]] {
        let mut args = vec!["plan", "--from-vgpu-device-manager", other, "-c", "A100-1Q"];
        args.extend(extra);
        let o = bins.run(r, "hostdevctl", &args, None);
        let (out, err) = (
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
        );
        assert_eq!(o.status.code(), Some(1), "{extra:?}: {out}{err}");
        let warned = err
            .lines()
            .filter(|l| l.contains("offers no type A100-1Q"))
            .count();
        assert_eq!(
            warned, 16,
            "one warning per GPU, on stderr: {extra:?}: {err}"
        );
        if extra.contains(&"-o") {
            for l in err.lines() {
                let j: serde_json::Value = serde_json::from_str(l).expect("JSON line");
                assert!(
                    j.get("warning").is_some() || j.get("error").is_some(),
                    "{l}"
                );
            }
        }
        if extra.is_empty() {
            assert!(
                out.contains("24 to change"),
                "the removals are shown: {out}"
            );
        }
    }
}

/// A pool's own on-demand device on a one-type card was not "in use":
/// retyping that card stopped its 8 file devices, failed (the pool's device
/// kept the card on the old type), restarted them and exited 1, instead of
/// planning them as waiting for it (blocked, exit 2) as the README says.
#[test]
#[ignore = "needs FUSE (fuse3) for the simulated lab; run by `cargo xtask test`"]
fn a_pools_own_device_on_a_one_type_card_holds_the_cards_retype() {
    require_fuse("host-file-pool-device");
    let bins = Bins::new();
    let sim = Sim::start("large");
    let r = sim.path();
    let card = "0000:1f:00.0";
    let pools = r.join("etc/hostdev/pools.d");
    std::fs::create_dir_all(&pools).expect("pools.d");
    std::fs::write(
        pools.join("od.toml"),
        format!("kind = \"mdev\"\ntype = \"nvidia-260\"\n[members]\nparents = [\"{card}\"]\n"),
    )
    .expect("pool");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = |t: &str| {
        let p = dir.path().join(format!("{t}.toml"));
        std::fs::write(
            &p,
            format!("[host]\nid = \"lab-1\"\n[[mdev]]\nselect = {{ parents = [\"{card}\"] }}\ntype = \"{t}\"\ncount = 8\n"),
        )
        .expect("write");
        p.to_str().unwrap().to_string()
    };
    let (old, new) = (file("nvidia-260"), file("nvidia-262"));
    let (code, out) = run(&bins, r, &["apply", "--file", &old]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = run(&bins, r, &["pool", "allocate", "od", "--consumer", "vm-1"]);
    assert_eq!(code, 0, "{out}");
    let held = out.lines().next().unwrap_or_default().to_string();
    let before = on_card(&sim, card);
    assert_eq!(before.len(), 9, "8 of the file's and the pool's");

    let (code, out) = run(&bins, r, &["plan", "--file", &new]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("0 to change, 8 blocked"), "{out}");
    assert!(out.contains(&format!("waits for {held}")), "{out}");
    let (code, out) = run(&bins, r, &["apply", "--file", &new]);
    assert_eq!(code, 2, "blocked, not failed: {out}");
    assert!(
        out.contains("0 done, 0 failed, 0 undone, 8 blocked"),
        "{out}"
    );
    assert_eq!(on_card(&sim, card), before, "nothing was stopped");

    let (code, out) = run(&bins, r, &["pool", "release", "--consumer", "vm-1"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = run(&bins, r, &["apply", "--file", &new]);
    assert_eq!(code, 0, "once released the card is retyped: {out}");
    assert_eq!(sim.avail(card, "nvidia-262"), 24);
}
