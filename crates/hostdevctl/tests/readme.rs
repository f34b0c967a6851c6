//! Every example in the README, run: each `hostdevctl …` / `mdevctl …` line
//! of its code blocks runs on the simulated lab's `demo` profile, in README
//! order (state carries over, as for a reader typing them), with the
//! README's `cat > /etc/… <<'TOML'` files written under the lab root. The
//! README's hardware is mapped to the demo host's (below). An example must
//! succeed (or exit with the status the README documents for it), or fail
//! for the one reason listed for it here — hardware the simulator does not
//! have — where the kernel tier runs it for real.
//!
//! Needs FUSE: `#[ignore]`d with its reason and run by `cargo xtask test`.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests: a failed expectation is the report

mod common;

use common::{require_fuse, Bins, Sim};
use std::process::Command;

/// The README's hardware and placeholders → the demo lab's.
const MAP: &[(&str, &str)] = &[
    ("83b8f4f2-...", "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001"),
    // The README's pool is on T4 nvidia-260 (a 4Q); demo's T4 offers nvidia-230.
    ("nvidia-260", "nvidia-230"),
];

/// Examples that need what the simulator has not: (start of the line, what
/// the failure says, where it runs for real).
const ELSEWHERE: &[(&str, &str, &str)] = &[
    ("hostdevctl vdpa", "vdpa netlink family", "kernel tier: vdpa_add_show_del_agree_with_iproute2, vdpa_autostart_recreates_and_export_import_compare_equal"),
    ("hostdevctl vdpa import", "defined already", "on another host: kernel tier vdpa_autostart_recreates_and_export_import_compare_equal"),
    ("hostdevctl probe", "VFIO is not available", "kernel tier: probe.rs"),
    ("hostdevctl probe", "not bound to a VFIO driver", "kernel tier: probe.rs"),
    ("hostdevctl -o libvirt probe", "VFIO is not available", "kernel tier: probe.rs"),
    ("hostdevctl migrate export", "VFIO is not available", "kernel tier: migrate.rs; the vGPU form in migrate.rs"),
    // The spec comes from the export just above, which needs VFIO here.
    ("hostdevctl migrate", "spec.json is not a hostdev migration spec", "kernel tier: migrate.rs"),
];

/// Exit statuses the README documents as answers, not failures.
fn documented(line: &str, code: i32) -> bool {
    (line.starts_with("hostdevctl plan") || line.starts_with("hostdevctl apply")) && code == 2
        || line.starts_with("hostdevctl migrate check") && (code == 3 || code == 4)
}

#[test]
#[ignore = "needs FUSE (fuse3) for the simulated lab; run by `cargo xtask test`"]
fn every_readme_example_runs_on_the_lab_or_where_the_kernel_is() {
    require_fuse("readme");
    let bins = Bins::new();
    let sim = Sim::start("demo");
    let root = sim.path().to_path_buf();
    let cwd = tempfile::tempdir().expect("cwd");
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README");
    let bin_dir = bins
        .path("hostdevctl")
        .parent()
        .expect("bin dir")
        .to_path_buf();
    let links = tempfile::tempdir().expect("links");
    for n in ["mdevctl", "lsmdev"] {
        std::os::unix::fs::symlink(bins.path("hostdevctl"), links.path().join(n)).expect("link");
    }
    let path = format!(
        "{}:{}:/usr/bin:/bin",
        links.path().display(),
        bin_dir.display()
    );
    // What the README's examples lean on that no block of it makes: a running
    // mdev with the README's UUID, and a host file.
    bins.run(
        &root,
        "hostdevctl",
        &[
            "mdev",
            "start",
            "-u",
            "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001",
            "-p",
            "mtty",
            "-t",
            "mtty-2",
        ],
        None,
    );
    let host_file = "[host]\nid = \"demo\"\n[[mdev]]\nselect = { parents = [\"mtty\"] }\ntype = \"mtty-1\"\ncount = 2\n";
    std::fs::create_dir_all(root.join("etc/hostdev")).expect("etc");
    std::fs::write(root.join("etc/hostdev/host.toml"), host_file).expect("host file");
    std::fs::write(cwd.path().join("other.toml"), host_file).expect("other");
    std::fs::create_dir_all(root.join("etc/bash_completion.d")).expect("completions dir");

    let mut last_uuid = String::new();
    let (mut ran, mut problems) = (0, Vec::new());
    let mut lines = readme.lines();
    while let Some(raw) = lines.next() {
        let Some(line) = raw.strip_prefix("    ") else {
            continue;
        };
        let line = line.trim_end();
        // A file the README writes: under the lab root.
        if let Some(rest) = line.strip_prefix("cat > ") {
            let (path, tag) = rest.split_once(" <<").expect("heredoc");
            let tag = tag.trim_matches('\'');
            let mut text = String::new();
            for l in lines.by_ref() {
                let l = l.strip_prefix("    ").unwrap_or(l);
                if l == tag {
                    break;
                }
                text.push_str(l);
                text.push('\n');
            }
            for (from, to) in MAP {
                text = text.replace(from, to);
            }
            let p = root.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, text).expect("write");
            continue;
        }
        if !(line.starts_with("hostdevctl ")
            || line.starts_with("mdevctl ")
            || line.starts_with("lsmdev"))
        {
            continue;
        }
        // Drop the comment (README comments follow two spaces and a #).
        let cmd = line.split("  #").next().unwrap_or(line).trim().to_string();
        let mut cmd = cmd.replace("UUID", &last_uuid);
        // Files an example writes outside the root prefix land under it too.
        for dir in ["/etc/", "/usr/local/"] {
            cmd = cmd.replace(&format!(" {dir}"), &format!(" {}{dir}", root.display()));
        }
        for (from, to) in MAP {
            cmd = cmd.replace(from, to);
        }
        let o = Command::new("sh")
            .args(["-c", &cmd])
            .current_dir(cwd.path())
            .env("PATH", &path)
            .env("HOSTDEV_ROOT", &root)
            .env("HOSTDEV_SOCKET", "")
            .env("HOSTDEV_NO_PROGRESS", "1")
            .output()
            .expect("sh");
        ran += 1;
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        if let Some(u) = out
            .lines()
            .find(|l| l.len() == 36 && l.matches('-').count() == 4)
        {
            last_uuid = u.to_string();
        }
        let code = o.status.code().unwrap_or(-1);
        if code == 0 || documented(&cmd, code) {
            continue;
        }
        match ELSEWHERE
            .iter()
            .find(|(start, why, _)| cmd.starts_with(start) && err.contains(why))
        {
            Some(_) => {}
            None => problems.push(format!(
                "README example `{line}` (run as `{cmd}`) exit {code}:\n{out}{err}"
            )),
        }
    }
    assert!(ran >= 40, "only {ran} README examples found");
    assert!(
        problems.is_empty(),
        "{} examples fail:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
