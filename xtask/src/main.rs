//! `cargo xtask kernel-test [FILTER…]`: builds the real-kernel tests on the
//! host, boots the lab guest (`xtask/lab/lab.sh`: Debian 6.12 kernel under
//! QEMU 10 with vfio-mdev, mtty/mdpy/mbochs, vdpa and its simulators, an igb
//! SR-IOV NIC behind an emulated IOMMU, the host's userland shared in), runs them inside it and exits with their status, printing the
//! usual `N passed, N failed` line.
//!
//! `cargo xtask test` is the README's test command: the whole workspace's
//! tests, then the tiers that are `#[ignore]`d for a prerequisite (FUSE for the
//! simulated lab, Debian's mdevctl in a private mount namespace), each run
//! where its prerequisite is present. With `HOSTDEV_REQUIRE_PEER=1` (CI sets
//! it) a missing prerequisite fails the run instead of leaving the tier out.
//!
//! `cargo xtask lab -- CMD` runs any command in the guest (for exploring).
//!
//! `cargo xtask k8s-lab [OPTION…]` starts the one-node Kubernetes lab
//! (`k8s/lab`, see `k8s.rs`) until Ctrl-C; `cargo xtask test` runs its tier,
//! `cargo xtask k8s-test` that tier alone.

mod deb;
mod k8s;

use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Builds the kernel test binaries and returns their paths.
fn build_tests() -> Result<Vec<PathBuf>> {
    // The daemon the kernel tests start, beside hostdevctl in target/debug.
    let st = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(workspace_root())
        .args(["build", "-q", "-p", "hostdevd", "--bin", "hostdevd"])
        .status()
        .context("cannot run cargo to build hostdevd")?;
    if !st.success() {
        bail!("building hostdevd failed");
    }
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(workspace_root())
        .args([
            "test",
            "-p",
            "hostdevctl",
            "--test",
            "kernel",
            "--no-run",
            "--message-format=json",
        ])
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run cargo to build the kernel tests")?;
    if !out.status.success() {
        bail!("building the kernel tests failed");
    }
    let mut exes = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["reason"] == "compiler-artifact" && v["target"]["name"] == "kernel" {
            if let Some(exe) = v["executable"].as_str() {
                exes.push(PathBuf::from(exe));
            }
        }
    }
    if exes.is_empty() {
        bail!("cargo built no kernel test binary");
    }
    Ok(exes)
}

fn lab() -> PathBuf {
    workspace_root().join("xtask/lab/lab.sh")
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn kernel_test(filters: &[String]) -> Result<ExitCode> {
    let exes = build_tests()?;
    // The package test installs these in the guest.
    deb::deb(&workspace_root())?;
    let status = Command::new(lab())
        .arg("prepare")
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("preparing the kernel lab failed");
    }
    let mut cmd = String::from("rc=0; ");
    for exe in &exes {
        cmd.push_str(&shell_quote(&exe.display().to_string()));
        cmd.push_str(" --test-threads=1 --color=never --ignored");
        for f in filters {
            cmd.push(' ');
            cmd.push_str(&shell_quote(f));
        }
        cmd.push_str(" || rc=$?; ");
    }
    cmd.push_str("exit $rc");
    let mut child = Command::new(lab())
        .arg("run")
        .arg(&cmd)
        .env("HOSTDEV_DEB_DIR", workspace_root().join("target/debian"))
        .current_dir(workspace_root())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start the kernel lab")?;
    let (mut passed, mut failed) = (0u64, 0u64);
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let line = line?;
            println!("{line}");
            // libtest: "test result: ok. 12 passed; 0 failed; 0 ignored; ..."
            if let Some(rest) = line.strip_prefix("test result: ") {
                let num = |word: &str| {
                    rest.split(';')
                        .find_map(|p| {
                            p.trim()
                                .trim_start_matches("ok. ")
                                .trim_start_matches("FAILED. ")
                                .strip_suffix(word)
                        })
                        .and_then(|n| n.trim().parse::<u64>().ok())
                        .unwrap_or(0)
                };
                passed += num(" passed");
                failed += num(" failed");
            }
        }
    }
    let status = child.wait()?;
    println!("kernel tier: {passed} passed, {failed} failed");
    if status.success() && failed == 0 && passed > 0 {
        Ok(ExitCode::SUCCESS)
    } else {
        if passed == 0 && failed == 0 {
            eprintln!(
                "xtask: no kernel test ran (lab exit status {:?})",
                status.code()
            );
        }
        Ok(ExitCode::FAILURE)
    }
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(workspace_root());
    c
}

fn have_command(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A tier of ignored tests, the test binaries holding them, and what it needs.
struct Tier {
    name: &'static str,
    tests: &'static [&'static str],
    missing: Vec<&'static str>,
    /// The tier's tests print figures worth reading when they pass (the
    /// schema fuzz's request counts): libtest's --show-output.
    show_output: bool,
}

fn tiers() -> Vec<Tier> {
    let fuse = Path::new("/dev/fuse").exists() && have_command("fusermount3", "-V");
    let root = is_root();
    let peer =
        Path::new("/usr/bin/mdevctl").exists() && root && have_command("unshare", "--version");
    let mut sim_missing = Vec::new();
    if !fuse {
        sim_missing.push("FUSE (/dev/fuse and fusermount3 from fuse3)");
    }
    if !peer {
        sim_missing.push("Debian's mdevctl and root for a private mount namespace");
    }
    let mut daemon_missing = Vec::new();
    if !fuse {
        daemon_missing.push("FUSE (/dev/fuse and fusermount3 from fuse3)");
    }
    if !(root && have_command("setpriv", "--version") && have_command("curl", "--version")) {
        daemon_missing.push("root, setpriv (util-linux) and curl to act as other users");
    }
    let mut fuzz_missing = daemon_missing.clone();
    if !have_command("socat", "-V") {
        fuzz_missing.push("socat (Debian's socat)");
    }
    if !(have_command("schemathesis", "--version")
        && have_command("openapi-spec-validator", "--help"))
    {
        fuzz_missing.push("schemathesis and openapi-spec-validator (pip install, see .ci/run)");
    }
    vec![
        Tier {
            name: "differential (Debian's mdevctl in a private mount namespace)",
            tests: &["differential"],
            missing: if peer {
                vec![]
            } else {
                vec!["Debian's mdevctl and root for a private mount namespace"]
            },
            show_output: false,
        },
        Tier {
            name: "simulated lab (FUSE, with Debian's mdevctl as the peer)",
            tests: &["sim", "migrate", "host", "cli", "readme", "vgpu_golden", "conformance"],
            missing: sim_missing,
            show_output: false,
        },
        Tier {
            name: "api in process (the CLI over fakes, directly and through hostdevd; root)",
            tests: &["inprocess"],
            missing: if root {
                vec![]
            } else {
                vec!["root (hostdevd lets only uid 0 change devices)"]
            },
            show_output: false,
        },
        Tier {
            name: "daemon (hostdevd on the simulated lab; peers as other users)",
            tests: &["daemon", "pools"],
            missing: daemon_missing,
            show_output: false,
        },
        Tier {
            name: "schema fuzz (the API document validated; schemathesis against hostdevd on the simulated lab as root and as a group member)",
            tests: &["api_fuzz"],
            missing: fuzz_missing,
            show_output: true,
        },
    ]
}

fn is_root() -> bool {
    // No libc in xtask: ask id(1), which every machine here has.
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn test(extra: &[String]) -> Result<ExitCode> {
    let required = std::env::var("HOSTDEV_REQUIRE_PEER").as_deref() == Ok("1");
    let status = cargo()
        .args(["test", "--workspace", "--locked"])
        .args(extra)
        .status()
        .context("cannot run cargo test")?;
    if !status.success() {
        return Ok(ExitCode::FAILURE);
    }
    let mut failed = false;
    for t in tiers() {
        if !t.missing.is_empty() {
            let what = t.missing.join("; ");
            if required {
                eprintln!(
                    "xtask: tier {} cannot run: it needs {what} (HOSTDEV_REQUIRE_PEER=1)",
                    t.name
                );
                failed = true;
            } else {
                eprintln!("xtask: tier {} left out: it needs {what}", t.name);
            }
            continue;
        }
        println!("xtask: tier {}", t.name);
        let mut c = cargo();
        c.args(["test", "--locked", "-p", "hostdevctl"]);
        for b in t.tests {
            c.args(["--test", b]);
        }
        c.args(extra).args(["--", "--ignored"]);
        if t.show_output {
            c.arg("--show-output");
        }
        if !c.status().context("cannot run cargo test")?.success() {
            failed = true;
        }
    }
    if !k8s::tier(required)? {
        failed = true;
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn main() -> Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("kernel-test") => kernel_test(&args[1..]),
        Some("test") => test(&args[1..]),
        Some("k8s-lab") => k8s::lab(&args[1..]),
        Some("k8s-test") => {
            let required = std::env::var("HOSTDEV_REQUIRE_PEER").as_deref() == Ok("1");
            Ok(if k8s::tier(required)? {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Some("deb") => {
            deb::deb(&workspace_root())?;
            Ok(ExitCode::SUCCESS)
        }
        Some("lab") => {
            let rest: Vec<&String> = args[1..].iter().skip_while(|a| *a == "--").collect();
            let cmd = rest
                .iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            let status = Command::new(lab()).arg("run").arg(cmd).status()?;
            Ok(ExitCode::from(status.code().unwrap_or(125) as u8))
        }
        _ => {
            eprintln!("usage: cargo xtask test [CARGO-TEST-OPTION…] | cargo xtask kernel-test [TEST-FILTER…] | cargo xtask deb | cargo xtask lab -- COMMAND | cargo xtask k8s-lab [--dir DIR] [--then CMD] [--extra 'COMPONENT=ARG …'] | cargo xtask k8s-test");
            Ok(ExitCode::from(2))
        }
    }
}
