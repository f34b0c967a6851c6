//! The Debian packages in the lab guest (a throw-away root: the host's `/`
//! under a tmpfs overlay): install with apt on top of Debian's userland, the
//! man page, bash completion, the udev rule, the units, the mdevctl decision,
//! and a purge that keeps device definitions.

use super::kernel;
use std::path::{Path, PathBuf};
use std::process::Command;

fn sh(script: &str) -> (bool, String) {
    let o = Command::new("/bin/sh")
        .args(["-c", script])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env_remove("HOSTDEV_ROOT")
        .output()
        .expect("sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

fn must(script: &str) -> String {
    let (ok, out) = sh(script);
    assert!(ok, "`{script}` failed:\n{out}");
    out
}

fn debs() -> (PathBuf, PathBuf) {
    let dir = std::env::var_os("HOSTDEV_DEB_DIR")
        .map(PathBuf::from)
        .expect(
            "HOSTDEV_DEB_DIR is not set: `cargo xtask kernel-test` builds the packages and sets it",
        );
    let find = |prefix: &str| -> PathBuf {
        std::fs::read_dir(&dir)
            .expect("deb dir")
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".deb"))
            })
            .unwrap_or_else(|| panic!("no {prefix}*.deb in {}", dir.display()))
    };
    (find("hostdev_"), find("hostdev-mdevctl_"))
}

#[test]
#[ignore = "needs the real-kernel lab; run by `cargo xtask kernel-test`"]
fn the_package_installs_with_apt_and_purge_keeps_mdevctl_definitions() {
    let _k = kernel("package");
    let (main, mdevctl) = debs();
    let main = main.display().to_string();
    // A minimal image may keep dpkg from unpacking man pages; not this root.
    must(
        "sed -i '/path-exclude=\\/usr\\/share\\/man/d' /etc/dpkg/dpkg.cfg.d/* 2>/dev/null || true",
    );
    // apt-get install ./hostdev_*.deb, on top of Debian's userland (no network).
    must(&format!(
        "apt-get install -y -q -o Dpkg::Options::=--force-confnew {main}"
    ));
    assert_eq!(must("command -v hostdevctl").trim(), "/usr/bin/hostdevctl");
    let v = must("hostdevctl --version");
    assert!(v.starts_with("hostdevctl 0.1.0 (commit "), "{v}");

    // man hostdevctl renders (and a subcommand's page too).
    let page = must("MANWIDTH=80 MANPAGER=cat PAGER=cat man hostdevctl 2>&1");
    assert!(
        page.contains("NAME") && page.contains("hostdevctl"),
        "{page}"
    );
    assert!(
        page.contains("SUBCOMMANDS") || page.contains("hostdevctl-mdev"),
        "{page}"
    );
    let sub = must("MANPAGER=cat man hostdevctl-mdev-list 2>&1");
    assert!(sub.contains("--defined"), "{sub}");
    // The daemon's and the simulator's pages (lintian's no-manual-page).
    let daemon = must("MANWIDTH=80 MANPAGER=cat man 8 hostdevd 2>&1");
    assert!(
        daemon.contains("--check-config") && daemon.contains("SIGNALS"),
        "{daemon}"
    );
    let sim = must("MANWIDTH=80 MANPAGER=cat man hostdev-sim 2>&1");
    assert!(
        sim.contains("--profile") && sim.contains("SIGUSR1"),
        "{sim}"
    );

    // bash completion completes subcommands.
    let words = must(
        "bash -c '. /usr/share/bash-completion/completions/hostdevctl; \
         COMP_WORDS=(hostdevctl ); COMP_CWORD=1; COMP_LINE=\"hostdevctl \"; COMP_POINT=11; \
         _hostdevctl hostdevctl \"\" hostdevctl; printf \"%s\\n\" \"${COMPREPLY[@]}\"'",
    );
    for w in ["mdev", "vgpu", "vdpa", "pool", "tree", "apply"] {
        assert!(
            words.lines().any(|l| l == w),
            "no {w} in completions:\n{words}"
        );
    }
    let words = must(
        "bash -c '. /usr/share/bash-completion/completions/hostdevctl; \
         COMP_WORDS=(hostdevctl mdev \"\"); COMP_CWORD=2; COMP_LINE=\"hostdevctl mdev \"; COMP_POINT=16; \
         _hostdevctl hostdevctl \"\" mdev; printf \"%s\\n\" \"${COMPREPLY[@]}\"'",
    );
    for w in ["define", "list", "types", "start"] {
        assert!(words.lines().any(|l| l == w), "no mdev {w}:\n{words}");
    }

    // The udev rule names the installed binary, which is there.
    let rule = std::fs::read_to_string("/usr/lib/udev/rules.d/60-hostdev.rules").expect("rule");
    assert!(
        rule.contains("RUN+=\"/bin/sh -c '{ /usr/bin/hostdevctl mdev start-parent-mdevs %k"),
        "{rule}"
    );
    assert!(rule.contains("logger -t hostdev"), "{rule}");
    assert!(Path::new("/usr/bin/hostdevctl").exists());

    // The units pass systemd-analyze verify; the restore oneshot is enabled.
    must(
        "systemd-analyze verify /usr/lib/systemd/system/hostdevd.service \
         /usr/lib/systemd/system/hostdev-restore.service",
    );
    assert!(
        Path::new("/etc/systemd/system/multi-user.target.wants/hostdev-restore.service").exists(),
        "the restore oneshot is not enabled"
    );
    assert!(Path::new("/etc/hostdev/hostdevd.toml").exists());
    assert!(Path::new("/etc/hostdev/pools.d").is_dir());

    // The drop-in mdevctl takes Debian's mdevctl's place only when asked, and apt says so.
    let sim = must(&format!("apt-get install -s -q {} 2>&1", mdevctl.display()));
    if Path::new("/usr/share/doc/mdevctl").exists() {
        assert!(sim.contains("Remv mdevctl"), "{sim}");
    }
    assert!(sim.contains("Inst hostdev-mdevctl"), "{sim}");
    assert!(
        must("readlink -f /usr/bin/mdevctl").trim() != "/usr/bin/hostdevctl",
        "installing hostdev alone replaced mdevctl"
    );

    // A definition made with the installed binary survives a purge.
    let uuid = "7d1e3a44-52c1-4c0a-9b1e-2a7c1f0e9a01";
    must(&format!(
        "HOSTDEV_SOCKET= hostdevctl mdev define -u {uuid} -p mtty -t mtty-1"
    ));
    let def = format!("/etc/mdevctl.d/mtty/{uuid}");
    assert!(Path::new(&def).exists());
    must("apt-get purge -y -q hostdev");
    assert!(!Path::new("/usr/bin/hostdevctl").exists());
    assert!(!Path::new("/usr/lib/udev/rules.d/60-hostdev.rules").exists());
    assert!(!Path::new("/etc/hostdev/hostdevd.toml").exists());
    assert!(Path::new(&def).exists(), "purge removed {def}");
    let _ = std::fs::remove_file(&def);
}
