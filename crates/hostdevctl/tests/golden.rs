//! Golden transcripts of every command on the fixed host. A transcript shows
//! each command, its stdout, its stderr and its exit status. Regenerate with
//! `HOSTDEV_REGEN=1 cargo test -p hostdevctl --test golden` and review the diff.
#![allow(clippy::expect_used)] // tests: a failed expectation is the report

mod common;

use common::{tree, Bins, Daemon};
use std::path::Path;

struct Step<'a> {
    name: &'a str,
    args: Vec<String>,
    stdin: Option<&'a str>,
}

fn step<'a>(name: &'a str, args: &[&str]) -> Step<'a> {
    Step {
        name,
        args: args.iter().map(|s| s.to_string()).collect(),
        stdin: None,
    }
}

fn transcript(bins: &Bins, root: &Path, steps: &[Step<'_>]) -> String {
    let mut out = String::new();
    let exe = std::fs::canonicalize(env!("CARGO_BIN_EXE_hostdevctl")).expect("exe");
    for s in steps {
        let args: Vec<&str> = s.args.iter().map(String::as_str).collect();
        let o = bins.run(root, s.name, &args, s.stdin.map(str::as_bytes));
        out.push_str(&format!("$ {} {}\n", s.name, s.args.join(" ")));
        if let Some(i) = s.stdin {
            out.push_str(&format!("(stdin: {i})\n"));
        }
        out.push_str(&String::from_utf8_lossy(&o.stdout));
        for l in String::from_utf8_lossy(&o.stderr).lines() {
            out.push_str(&format!("stderr: {l}\n"));
        }
        out.push_str(&format!("rc={}\n\n", o.status.code().unwrap_or(-1)));
    }
    out.replace(&root.display().to_string(), "$ROOT")
        .replace(&exe.display().to_string(), "$BIN")
}

/// Runs `steps` on two fresh trees from `spec`, once acting directly and
/// once through a daemon serving the tree, and checks both against the golden.
fn both(name: &str, spec: &hostdev_testkit::TreeSpec, steps: &[Step<'_>]) {
    let mut bins = Bins::new();
    let t = tree(spec);
    let direct = transcript(&bins, t.path(), steps);
    check(name, &direct);
    let t = tree(spec);
    let d = Daemon::start(t.path(), Daemon::QUIET);
    bins.socket = Some(d.socket.clone());
    let through = transcript(&bins, t.path(), steps);
    // The commands really went through it.
    let (_, metrics) = common::http_get(&d.socket, "/metrics");
    assert!(
        metrics.contains("hostdev_request_duration_seconds_count"),
        "{name}: the daemon served no request:\n{metrics}"
    );
    drop(d);
    assert_eq!(
        through, direct,
        "{name}: the transcript through the daemon differs from the direct one"
    );
}

fn check(name: &str, actual: &str) {
    common::check_golden(name, actual);
}

#[test]
fn mdevctl_inventory() {
    let mut steps = Vec::new();
    for f in [
        &["list"][..],
        &["list", "-v"],
        &["list", "--dumpjson"],
        &["list", "-d"],
        &["list", "-d", "-v"],
        &["list", "-d", "--dumpjson"],
        &[
            "list",
            "-u",
            "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001",
            "--dumpjson",
        ],
        &[
            "list",
            "-d",
            "-u",
            "83b8f4f2-509f-382f-3c1e-e6bfe0fa1002",
            "--dumpjson",
        ],
        &["list", "-d", "--parent=0000:00:02.0"],
        &["list", "-p", "nosuch"],
        &["list", "-p", "nosuch", "--dumpjson"],
        &["types"],
        &["types", "--dumpjson"],
        &["types", "-p", "mtty"],
        &["types", "-p", "nosuch"],
    ] {
        steps.push(step("mdevctl", f));
    }
    steps.push(step("lsmdev", &["-d"]));
    steps.push(step(
        "lsmdev",
        &["--dumpjson", "-u", "b1a3c7a4-9b8e-4f0e-8d52-0c6e4c0d2a01"],
    ));
    both("mdevctl-inventory", &hostdev_testkit::fixed(), &steps);
}

#[test]
fn mdevctl_definitions() {
    let u = "11111111-2222-4333-8444-555555555501";
    let libvirt_json = r#"{"mdev_type":"mtty-2","start":"manual","attrs":[{"foo":"1"}]}"#;
    let mut steps = vec![
        // mdevctl's man page examples
        step(
            "mdevctl",
            &[
                "define",
                "--uuid",
                u,
                "--parent",
                "0000:00:02.0",
                "--type",
                "i915-GVTg_V5_4",
                "--auto",
            ],
        ),
        step(
            "mdevctl",
            &[
                "modify",
                "--uuid",
                u,
                "--addattr=assign_adapter",
                "--value=5",
            ],
        ),
        step(
            "mdevctl",
            &[
                "modify",
                "--uuid",
                u,
                "--addattr=assign_domain",
                "--value=0x47",
                "--index=0",
            ],
        ),
        step("mdevctl", &["list", "-d", "-v", "-u", u]),
        step(
            "mdevctl",
            &["modify", "--uuid", u, "--delattr", "--index=1"],
        ),
        step(
            "mdevctl",
            &[
                "modify",
                "--uuid",
                u,
                "--manual",
                "--type",
                "i915-GVTg_V5_8",
            ],
        ),
        step("mdevctl", &["list", "-d", "--dumpjson", "-u", u]),
        // libvirt's forms
        step("mdevctl", &["list", "--dumpjson", "--defined"]),
        step(
            "mdevctl",
            &["modify", "--defined", "--live", "--jsonfile", "b", "--help"],
        ),
        step("mdevctl", &["undefine", "--uuid", u]),
        step(
            "mdevctl",
            &[
                "modify",
                "--uuid",
                "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001",
                "--manual",
            ],
        ),
        step(
            "mdevctl",
            &[
                "modify",
                "--uuid",
                "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001",
                "--auto",
            ],
        ),
        // errors
        step(
            "mdevctl",
            &["define", "-u", "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001"],
        ),
        step("mdevctl", &["define", "-u", u]),
        step("mdevctl", &["define", "-u", u, "-p", "mtty"]),
        step(
            "mdevctl",
            &[
                "modify",
                "-u",
                "83b8f4f2-509f-382f-3c1e-e6bfe0fa1002",
                "--auto",
            ],
        ),
        step("mdevctl", &["modify", "-u", u, "--auto"]),
        step(
            "mdevctl",
            &[
                "modify",
                "-u",
                "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001",
                "--delattr",
                "--index",
                "9",
            ],
        ),
        step("mdevctl", &["undefine", "-u", u]),
        step("mdevctl", &["stop", "-u", u]),
        step(
            "mdevctl",
            &["start", "-u", "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001"],
        ),
        step("mdevctl", &["start", "-p", "MTTY", "-t", "mtty-1"]),
        step("mdevctl", &["start", "-p", "mtty", "-t", "mtty-9"]),
        step(
            "mdevctl",
            &[
                "define",
                "-u",
                u,
                "-p",
                "mtty",
                "--jsonfile",
                "/nonexistent.json",
            ],
        ),
    ];
    steps.push(Step {
        name: "mdevctl",
        args: [
            "define",
            "--parent=mtty",
            "--jsonfile=/dev/stdin",
            &format!("--uuid={u}"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        stdin: Some(libvirt_json),
    });
    steps.push(Step {
        name: "mdevctl",
        args: [
            "define",
            "--parent=mtty",
            "--jsonfile=/dev/stdin",
            "--uuid=11111111-2222-4333-8444-555555555502",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        stdin: Some(r#"{"mdev_type":"mtty-2","start":"manual","attrs":[{"n":7}]}"#),
    });
    steps.push(step("mdevctl", &["list", "-d", "-v"]));
    both("mdevctl-definitions", &hostdev_testkit::fixed(), &steps);
}

#[test]
fn hostile_input() {
    let u = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001";
    let steps = vec![
        step(
            "mdevctl",
            &["modify", "-u", u, "--addattr=../remove", "--value=1"],
        ),
        step(
            "mdevctl",
            &["modify", "-u", u, "--addattr=a/b", "--value=1"],
        ),
        step(
            "mdevctl",
            &[
                "define",
                "-u",
                "11111111-2222-4333-8444-555555555501",
                "-p",
                "../..",
                "-t",
                "x",
            ],
        ),
        step("mdevctl", &["list", "-u", "../../etc"]),
        step(
            "hostdevctl",
            &["mdev", "start", "-p", "mtty", "-t", "mtty-1\n"],
        ),
    ];
    both("hostile-input", &hostdev_testkit::fixed(), &steps);
}

#[test]
fn native_cli() {
    let steps = vec![
        step("hostdevctl", &["mdev", "list"]),
        step("hostdevctl", &["mdev", "list", "--defined"]),
        step("hostdevctl", &["mdev", "list", "-d", "-o", "json"]),
        step("hostdevctl", &["mdev", "types"]),
        step("hostdevctl", &["mdev", "types", "-p", "mtty", "-o", "json"]),
        step(
            "hostdevctl",
            &[
                "mdev",
                "define",
                "-u",
                "11111111-2222-4333-8444-555555555501",
                "-p",
                "mdpy",
                "-t",
                "mdpy-vga",
            ],
        ),
        step(
            "hostdevctl",
            &["mdev", "stop", "-u", "11111111-2222-4333-8444-555555555501"],
        ),
        step("hostdevctl", &["mdevctl", "list", "-d", "-p", "mdpy"]),
        step("hostdevctl", &["udev-rule"]),
    ];
    both("native-cli", &hostdev_testkit::fixed(), &steps);
}
