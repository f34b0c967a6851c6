//! `cargo xtask deb`: the Debian packages, built with dpkg-deb from a release
//! build (no cargo-deb: the layout below is the whole recipe).
//!
//! - `hostdev`: hostdevctl, hostdevd, hostdev-sim, the udev rule naming
//!   /usr/bin/hostdevctl, the systemd units, man pages (hostdevctl's and
//!   completions from the CLI's clap definition; hostdevd(8) and
//!   hostdev-sim(1) from `hostdevd --man` and `hostdev-sim man`, each from
//!   its own clap definition), /etc/hostdev with hostdevd.toml.
//! - `hostdev-mdevctl`: /usr/bin/mdevctl and lsmdev as links to hostdevctl.
//!   It Conflicts/Replaces/Provides mdevctl, so installing it takes the place
//!   of Debian's mdevctl only when apt is asked to, and says so (apt lists
//!   mdevctl as removed); `hostdev` alone installs beside Debian's mdevctl.
//!
//! Then lintian, when the machine has it: an error fails the build.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

const MAINTAINER: &str = "hostdev developers <hostdev@lists.hostdev.dev>";

fn run(c: &mut Command) -> Result<()> {
    let s = c.status().with_context(|| format!("cannot run {c:?}"))?;
    if !s.success() {
        bail!("{c:?} failed ({s})");
    }
    Ok(())
}

fn output(c: &mut Command) -> Result<String> {
    let o = c.output().with_context(|| format!("cannot run {c:?}"))?;
    if !o.status.success() {
        bail!(
            "{c:?} failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

fn install(from: &Path, to: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to.parent().context("a path with a parent")?)?;
    std::fs::copy(from, to)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn write(to: &Path, text: &str, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to.parent().context("a path with a parent")?)?;
    std::fs::write(to, text).with_context(|| format!("cannot write {}", to.display()))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// gzip -9n (reproducible: no name, no time), as Debian ships docs and pages.
fn gzip(path: &Path) -> Result<()> {
    run(Command::new("gzip").args(["-9nf"]).arg(path))
}

fn changelog(pkg: &str, version: &str, commit: &str) -> String {
    // The commit's date, so that the same commit builds the same package.
    format!(
        "{pkg} ({version}) unstable; urgency=medium\n\n  * Built from commit {commit}.\n\n -- {MAINTAINER}  {}\n",
        commit_date()
    )
}

fn commit_date() -> String {
    output(Command::new("git").args(["log", "-1", "--format=%aD"]))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "Tue, 24 Nov 2026 00:00:00 +0000".into())
}

fn docs(root: &Path, pkg: &str, version: &str, commit: &str, ws: &Path) -> Result<()> {
    let doc = root.join("usr/share/doc").join(pkg);
    install(
        &ws.join("dist/debian/copyright"),
        &doc.join("copyright"),
        0o644,
    )?;
    write(
        &doc.join("changelog"),
        &changelog(pkg, version, commit),
        0o644,
    )?;
    gzip(&doc.join("changelog"))
}

fn installed_size(root: &Path) -> Result<u64> {
    let out = output(
        Command::new("du")
            .args(["-sk", "--exclude=DEBIAN"])
            .arg(root),
    )?;
    Ok(out
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0))
}

fn control(root: &Path, fields: &[(&str, String)], description: &str) -> Result<()> {
    let mut text = String::new();
    for (k, v) in fields {
        text.push_str(&format!("{k}: {v}\n"));
    }
    text.push_str(&format!(
        "Installed-Size: {}\nDescription: {description}\n",
        installed_size(root)?
    ));
    write(&root.join("DEBIAN/control"), &text, 0o644)
}

fn build(root: &Path, out: &Path, name: &str) -> Result<PathBuf> {
    let file = out.join(name);
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zxz", "--build"])
        .arg(root)
        .arg(&file)
        .stdout(std::process::Stdio::null()))?;
    Ok(file)
}

/// Builds both packages into target/debian; returns their paths.
pub fn deb(ws: &Path) -> Result<Vec<PathBuf>> {
    let version = env!("CARGO_PKG_VERSION");
    let commit = output(
        Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .current_dir(ws),
    )
    .map(|s| s.trim().to_string())
    .unwrap_or_else(|_| "unknown".into());
    let arch = output(Command::new("dpkg").arg("--print-architecture"))?
        .trim()
        .to_string();
    eprintln!("xtask: release build of hostdevctl, hostdevd, hostdev-sim");
    run(crate::cargo().args([
        "build",
        "--release",
        "--locked",
        "-p",
        "hostdevctl",
        "-p",
        "hostdevd",
        "-p",
        "hostdev-sim",
    ]))?;
    let rel = ws.join("target/release");
    let out = ws.join("target/debian");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out)?;

    // hostdev
    let r = out.join("hostdev");
    for (bin, dir) in [
        ("hostdevctl", "usr/bin"),
        ("hostdev-sim", "usr/bin"),
        ("hostdevd", "usr/sbin"),
    ] {
        let to = r.join(dir).join(bin);
        install(&rel.join(bin), &to, 0o755)?;
        run(Command::new("strip")
            .args([
                "--strip-unneeded",
                "--remove-section=.comment",
                "--remove-section=.note",
            ])
            .arg(&to))?;
    }
    for unit in ["hostdevd.service", "hostdev-restore.service"] {
        install(
            &ws.join("dist/systemd").join(unit),
            &r.join("usr/lib/systemd/system").join(unit),
            0o644,
        )?;
    }
    let rule = hostdev_core::udev::rule_text(Path::new("/usr/bin/hostdevctl"))?;
    write(
        &r.join("usr/lib/udev/rules.d/60-hostdev.rules"),
        &rule,
        0o644,
    )?;
    install(
        &ws.join("dist/hostdevd.toml"),
        &r.join("etc/hostdev/hostdevd.toml"),
        0o644,
    )?;
    for d in [
        "etc/hostdev/pools.d",
        "etc/hostdev/vgpu.d",
        "etc/hostdev/sriov.d",
        "etc/hostdev/vdpa.d",
        "var/lib/hostdev",
    ] {
        std::fs::create_dir_all(r.join(d))?;
    }
    let ctl = r.join("usr/bin/hostdevctl");
    let pages = out.join("man");
    run(Command::new(&ctl)
        .arg("man")
        .arg(&pages)
        .stdout(std::process::Stdio::null()))?;
    let man1 = r.join("usr/share/man/man1");
    std::fs::create_dir_all(&man1)?;
    for e in std::fs::read_dir(&pages)? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "1") {
            let to = man1.join(p.file_name().context("a file name")?);
            install(&p, &to, 0o644)?;
            gzip(&to)?;
        }
    }
    // The daemon's and the simulator's pages, each from its own binary.
    let man8 = r.join("usr/share/man/man8");
    std::fs::create_dir_all(&man8)?;
    for (bin, args, to) in [
        ("usr/sbin/hostdevd", &["--man"][..], man8.join("hostdevd.8")),
        (
            "usr/bin/hostdev-sim",
            &["man"][..],
            man1.join("hostdev-sim.1"),
        ),
    ] {
        let page = output(Command::new(r.join(bin)).args(args))?;
        write(&to, &page, 0o644)?;
        gzip(&to)?;
    }
    let completions = |p: &str, shell: &str| {
        output(Command::new(&ctl).args(["completions", shell, "--command", p]))
    };
    write(
        &r.join("usr/share/bash-completion/completions/hostdevctl"),
        &completions("hostdevctl", "bash")?,
        0o644,
    )?;
    write(
        &r.join("usr/share/zsh/vendor-completions/_hostdevctl"),
        &completions("hostdevctl", "zsh")?,
        0o644,
    )?;
    write(
        &r.join("usr/share/fish/vendor_completions.d/hostdevctl.fish"),
        &completions("hostdevctl", "fish")?,
        0o644,
    )?;
    docs(&r, "hostdev", version, &commit, ws)?;
    install(
        &ws.join("dist/debian/hostdev.lintian-overrides"),
        &r.join("usr/share/lintian/overrides/hostdev"),
        0o644,
    )?;
    for s in ["postinst", "prerm", "postrm"] {
        install(
            &ws.join("dist/debian").join(format!("hostdev.{s}")),
            &r.join("DEBIAN").join(s),
            0o755,
        )?;
    }
    write(
        &r.join("DEBIAN/conffiles"),
        "/etc/hostdev/hostdevd.toml\n",
        0o644,
    )?;
    control(
        &r,
        &[
            ("Package", "hostdev".into()),
            ("Version", version.into()),
            ("Architecture", arch.clone()),
            ("Maintainer", MAINTAINER.into()),
            ("Section", "admin".into()),
            ("Priority", "optional".into()),
            ("Depends", "libc6 (>= 2.34), libgcc-s1 (>= 4.2)".into()),
            ("Recommends", "fuse3".into()),
            ("Suggests", "hostdev-mdevctl, libvirt-daemon-system".into()),
            ("Homepage", "https://github.com/hostdev/hostdev".into()),
        ],
        "devices for virtual machines: mdevs, NVIDIA SR-IOV vGPUs, vDPA\n \
         hostdev manages the devices a Linux host hands to virtual machines:\n \
         mediated devices (vGPUs, vfio-ap, vfio-ccw), NVIDIA vGPUs on SR-IOV\n \
         virtual functions and vDPA devices, with persistent definitions restored\n \
         at boot, pools, VFIO probes, migration checks and a declarative host file.\n \
         .\n \
         This package has hostdevctl, the daemon hostdevd, the simulated lab\n \
         hostdev-sim, the udev rule and the systemd units. The drop-in mdevctl is\n \
         in hostdev-mdevctl.",
    )?;

    // hostdev-mdevctl
    let m = out.join("hostdev-mdevctl");
    std::fs::create_dir_all(m.join("usr/bin"))?;
    for link in ["mdevctl", "lsmdev"] {
        std::os::unix::fs::symlink("hostdevctl", m.join("usr/bin").join(link))?;
    }
    let man8 = m.join("usr/share/man/man8");
    std::fs::create_dir_all(&man8)?;
    for page in ["mdevctl.8", "lsmdev.8"] {
        install(&pages.join(page), &man8.join(page), 0o644)?;
        gzip(&man8.join(page))?;
    }
    for p in ["mdevctl", "lsmdev"] {
        write(
            &m.join("usr/share/bash-completion/completions").join(p),
            &completions(p, "bash")?,
            0o644,
        )?;
    }
    for d in [
        "etc/mdevctl.d/scripts.d/callouts",
        "etc/mdevctl.d/scripts.d/notifiers",
    ] {
        std::fs::create_dir_all(m.join(d))?;
    }
    docs(&m, "hostdev-mdevctl", version, &commit, ws)?;
    control(
        &m,
        &[
            ("Package", "hostdev-mdevctl".into()),
            ("Version", version.into()),
            ("Architecture", "all".into()),
            ("Maintainer", MAINTAINER.into()),
            ("Section", "admin".into()),
            ("Priority", "optional".into()),
            ("Depends", format!("hostdev (>= {version})")),
            ("Conflicts", "mdevctl".into()),
            ("Replaces", "mdevctl".into()),
            ("Provides", "mdevctl".into()),
            ("Homepage", "https://github.com/hostdev/hostdev".into()),
        ],
        "hostdev as mdevctl and lsmdev (drop-in for libvirt)\n \
         mdevctl and lsmdev as hostdev: the same commands, options and output as\n \
         mdevctl, so that libvirt and scripts drive hostdev unmodified. It takes\n \
         the place of Debian's mdevctl package, which apt removes when this one is\n \
         installed; definitions in /etc/mdevctl.d are shared and stay.",
    )?;

    let debs = vec![
        build(&r, &out, &format!("hostdev_{version}_{arch}.deb"))?,
        build(&m, &out, &format!("hostdev-mdevctl_{version}_all.deb"))?,
    ];
    for d in &debs {
        println!("{}", d.display());
    }
    if Command::new("lintian").arg("--version").output().is_ok() {
        eprintln!("xtask: lintian");
        let status = Command::new("lintian")
            .args(["--fail-on", "error"])
            .args(&debs)
            .status()?;
        if !status.success() {
            bail!("lintian reports errors in the packages");
        }
    } else {
        eprintln!("xtask: lintian is not installed; the packages were not checked (apt-get install lintian)");
    }
    Ok(debs)
}
