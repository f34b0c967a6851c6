//! Differential tests: Debian's mdevctl (in a private mount namespace with the
//! tree bound over /sys and /etc/mdevctl.d) and hostdev's mdevctl personality
//! (with HOSTDEV_ROOT) on the same generated trees must agree byte for byte on
//! list/types, and leave identical definition trees after define/modify/undefine.
#![allow(clippy::expect_used)] // tests: a failed expectation is the report

mod common;

use common::{require_peer, tree, Bins};
use hostdev_testkit::{run_in_tree, snapshot};

fn list_forms(uuids: &[&str], parents: &[&str]) -> Vec<Vec<String>> {
    let mut forms: Vec<Vec<String>> = Vec::new();
    let base: [&[&str]; 8] = [
        &["list"],
        &["list", "-d"],
        &["list", "-v"],
        &["list", "-d", "-v"],
        &["list", "--dumpjson"],
        &["list", "-d", "--dumpjson"],
        &["list", "--dumpjson", "-v"],
        &["list", "--defined", "--verbose", "--dumpjson"],
    ];
    for b in base {
        forms.push(b.iter().map(|s| s.to_string()).collect());
        for u in uuids {
            let mut f: Vec<String> = b.iter().map(|s| s.to_string()).collect();
            f.extend(["-u".to_string(), u.to_string()]);
            forms.push(f);
        }
        for p in parents {
            let mut f: Vec<String> = b.iter().map(|s| s.to_string()).collect();
            f.push(format!("--parent={p}"));
            forms.push(f.clone());
            if let Some(u) = uuids.first() {
                f.extend(["--uuid".to_string(), u.to_string()]);
                forms.push(f);
            }
        }
    }
    for p in parents.iter().map(|p| Some(*p)).chain([None]) {
        for j in [false, true] {
            let mut f = vec!["types".to_string()];
            if let Some(p) = p {
                f.extend(["-p".to_string(), p.to_string()]);
            }
            if j {
                f.push("--dumpjson".into());
            }
            forms.push(f);
        }
    }
    forms
}

fn compare_reads(spec: &hostdev_testkit::TreeSpec, uuids: &[&str], parents: &[&str]) -> usize {
    let bins = Bins::new();
    let t = tree(spec);
    let mut n = 0;
    for form in list_forms(uuids, parents) {
        let args: Vec<&str> = form.iter().map(String::as_str).collect();
        let mut argv = vec!["/usr/bin/mdevctl"];
        argv.extend(&args);
        let peer = run_in_tree(t.path(), &argv, None).expect("run peer");
        let ours = bins.run(t.path(), "mdevctl", &args, None);
        assert_eq!(
            (peer.status.code(), String::from_utf8_lossy(&peer.stdout)),
            (ours.status.code(), String::from_utf8_lossy(&ours.stdout)),
            "mdevctl {form:?} differs (peer stderr: {})",
            String::from_utf8_lossy(&peer.stderr)
        );
        n += 1;
    }
    n
}

#[test]
#[ignore = "needs Debian's mdevctl and a private mount namespace (root); run by `cargo xtask test`"]
fn list_and_types_agree_on_the_fixed_host() {
    require_peer("list_and_types_agree_on_the_fixed_host");
    let n = compare_reads(
        &hostdev_testkit::fixed(),
        &[
            "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001",
            "83b8f4f2-509f-382f-3c1e-e6bfe0fa1002",
            "b1a3c7a4-9b8e-4f0e-8d52-0c6e4c0d2a01",
            "c07ab7b2-8aa2-427a-91c6-ffc949bb77f9",
            "00000000-0000-0000-0000-000000000000",
        ],
        &["mtty", "0000:00:02.0", "nosuch"],
    );
    assert!(n > 100, "only {n} forms compared");
}

#[test]
#[ignore = "needs Debian's mdevctl and a private mount namespace (root); run by `cargo xtask test`"]
fn list_and_types_agree_on_generated_hosts() {
    require_peer("list_and_types_agree_on_generated_hosts");
    for seed in 1..=4u64 {
        let spec = hostdev_testkit::generate(seed, 4, 5, 30, 60);
        let u0 = spec.devices[0].0.clone();
        let u1 = spec.definitions[7].1.clone();
        let p0 = spec.parents[0].name.clone();
        compare_reads(&spec, &[&u0, &u1], &[&p0]);
    }
}

const U3: &str = "11111111-2222-4333-8444-555555555503";
const U4: &str = "11111111-2222-4333-8444-555555555504";
const U5: &str = "11111111-2222-4333-8444-555555555505";
const U6: &str = "11111111-2222-4333-8444-555555555506";
const U7: &str = "11111111-2222-4333-8444-555555555507";

#[test]
#[ignore = "needs Debian's mdevctl and a private mount namespace (root); run by `cargo xtask test`"]
fn definition_sequences_leave_identical_trees() {
    require_peer("definition_sequences_leave_identical_trees");
    let bins = Bins::new();
    let spec = hostdev_testkit::fixed();
    let peer_tree = tree(&spec);
    let our_tree = tree(&spec);
    let files = tempfile::tempdir().expect("tempdir");
    let good = files.path().join("good.json");
    std::fs::write(
        &good,
        r#"{"mdev_type":"mtty-2","start":"auto","attrs":[{"q":"1"},{"r":"two words"}]}"#,
    )
    .expect("write");
    let no_start = files.path().join("no-start.json");
    std::fs::write(&no_start, r#"{"mdev_type":"mtty-2"}"#).expect("write");
    let garbage = files.path().join("garbage.json");
    std::fs::write(&garbage, "{not json").expect("write");
    let missing = files.path().join("missing.json");
    let (good, no_start, garbage, missing) = (
        good.to_str().expect("utf8"),
        no_start.to_str().expect("utf8"),
        garbage.to_str().expect("utf8"),
        missing.to_str().expect("utf8"),
    );
    let steps: Vec<Vec<&str>> = vec![
        vec!["define", "-u", U3, "-p", "mtty", "-t", "mtty-1"],
        vec!["define", "-u", U3, "-p", "mtty", "-t", "mtty-1"],
        vec!["define", "-u", U3, "-p", "mdpy", "-t", "mdpy-vga", "-a"],
        vec!["modify", "-u", U3, "--auto"],
        vec!["modify", "-u", U3, "-p", "mtty", "--auto"],
        vec![
            "modify",
            "-u",
            U3,
            "-p",
            "mtty",
            "--addattr",
            "foo",
            "--value",
            "bar",
        ],
        vec![
            "modify",
            "-u",
            U3,
            "-p",
            "mtty",
            "--addattr=zzz",
            "--value=1",
            "--index=0",
        ],
        vec![
            "modify",
            "-u",
            U3,
            "-p",
            "mtty",
            "--addattr",
            "x",
            "--value",
            "y",
            "--index",
            "7",
        ],
        vec![
            "modify",
            "-u",
            U3,
            "-p",
            "mtty",
            "--delattr",
            "--index",
            "5",
        ],
        vec![
            "modify",
            "-u",
            U3,
            "-p",
            "mtty",
            "--delattr",
            "--index",
            "0",
        ],
        vec!["modify", "-u", U3, "-p", "mtty", "--delattr"],
        vec!["modify", "-u", U3, "-p", "mtty", "--delattr"],
        vec!["modify", "-u", U3, "-p", "mtty", "--delattr"],
        vec!["modify", "-u", U3, "-p", "mtty", "-t", "mtty-2", "--manual"],
        vec!["modify", "-u", U3, "-p", "mtty", "--value", "orphan"],
        vec!["modify", "-u", U3, "-p", "mtty"],
        vec!["modify", "-u", U3, "-p", "nosuch", "--auto"],
        vec!["modify", "-u", U7, "--auto"],
        vec!["define", "-u", "b1a3c7a4-9b8e-4f0e-8d52-0c6e4c0d2a01"],
        vec!["define", "-u", "b1a3c7a4-9b8e-4f0e-8d52-0c6e4c0d2a01"],
        vec!["define", "-u", "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001"],
        vec![
            "define",
            "-u",
            "5269fe7a-18d1-48ad-88e1-3fda4176f536",
            "-p",
            "0000:00:02.0",
            "-a",
        ],
        vec!["define", "-u", U4],
        vec!["define", "-u", U4, "-p", "mtty"],
        vec!["define", "-u", U4, "-a", "-t", "mtty-1"],
        vec!["define", "-u", U4, "-p", "mtty", "--jsonfile", good],
        vec!["define", "-u", U5, "-p", "mtty", "--jsonfile", no_start],
        vec!["define", "-u", U5, "-p", "mtty", "--jsonfile", garbage],
        vec!["define", "-u", U5, "-p", "mtty", "--jsonfile", missing],
        vec!["define", "-u", U6, "-p", "nosuchparent", "-t", "foo"],
        vec![
            "define",
            &"--uuid=11111111-2222-4333-8444-555555555507",
            "--parent=mtty",
            "--type=mtty-2",
        ],
        vec!["modify", "--uuid", U7, "--manual"],
        vec!["modify", "--uuid", U7, "-a"],
        vec!["undefine", "-u", U3, "-p", "mtty"],
        vec!["undefine", "-u", U3],
        vec!["undefine", "-u", U3],
        vec!["undefine", "-u", U6],
        vec!["undefine", "-u", "83b8f4f2-509f-382f-3c1e-e6bfe0fa1002"],
        vec!["list", "--bogus"],
        vec!["define", "-u", "not-a-uuid", "-p", "mtty", "-t", "mtty-1"],
        vec!["modify", "-u", U4, "--addattr", "a"],
        vec!["define", "-p", "mtty", "--jsonfile", good, "-t", "mtty-1"],
        vec!["modify", "-u", U4, "-a", "-m"],
        vec!["undefine"],
    ];
    for step in &steps {
        let mut argv = vec!["/usr/bin/mdevctl"];
        argv.extend(step);
        let peer = run_in_tree(peer_tree.path(), &argv, None).expect("run peer");
        let ours = bins.run(our_tree.path(), "mdevctl", step, None);
        assert_eq!(
            peer.status.code(),
            ours.status.code(),
            "exit status of mdevctl {step:?} differs\npeer: {}\nours: {}",
            String::from_utf8_lossy(&peer.stderr),
            String::from_utf8_lossy(&ours.stderr)
        );
        let a = snapshot(&peer_tree.path().join("etc/mdevctl.d"));
        let b = snapshot(&our_tree.path().join("etc/mdevctl.d"));
        assert_eq!(
            a.iter()
                .map(|(p, c)| (p.clone(), String::from_utf8_lossy(c).into_owned()))
                .collect::<Vec<_>>(),
            b.iter()
                .map(|(p, c)| (p.clone(), String::from_utf8_lossy(c).into_owned()))
                .collect::<Vec<_>>(),
            "stored definitions differ after mdevctl {step:?}"
        );
    }
}

#[test]
#[ignore = "needs Debian's mdevctl and a private mount namespace (root); run by `cargo xtask test`"]
fn generated_uuid_is_printed_and_stored_alike() {
    require_peer("generated_uuid_is_printed_and_stored_alike");
    let bins = Bins::new();
    let spec = hostdev_testkit::fixed();
    let t = tree(&spec);
    let ours = bins.run(
        t.path(),
        "mdevctl",
        &["define", "-p", "mtty", "-t", "mtty-1", "-a"],
        None,
    );
    assert!(ours.status.success());
    let printed = String::from_utf8_lossy(&ours.stdout).trim().to_string();
    let peer = run_in_tree(
        t.path(),
        &["/usr/bin/mdevctl", "list", "-d", "-u", &printed],
        None,
    )
    .expect("peer");
    assert_eq!(
        String::from_utf8_lossy(&peer.stdout),
        format!("{printed} mtty mtty-1 auto\n\n"),
        "the peer reads back what we stored"
    );
}
