//! The Kubernetes lab (`k8s/lab/`, a Go module of its own): builds its
//! binaries (`k8s/lab/build.sh`: kube-apiserver, kube-controller-manager,
//! kube-scheduler, kubelet, kubectl, etcd, containerd, its shim, ctr and runc
//! from their own Go modules, into `~/.cache/hostdev/k8s-lab/<version>-<key>/bin`),
//! starts a one-node cluster beside a `hostdev-sim` mount
//! (`cargo xtask k8s-lab`), and runs the Kubernetes test tier (`k8s/lab/labtest`)
//! for `cargo xtask test`.
//!
//! This module owns only the hook-up: what the tier needs from the machine,
//! building, and handing over to the Go launcher (`k8s/lab/k8slab`), which
//! owns the processes. It must not start or stop any process of the lab
//! itself.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

fn lab_dir() -> PathBuf {
    crate::workspace_root().join("k8s/lab")
}

/// The go command: on PATH, else Go's own install directory.
fn go() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("go"))
            .find(|g| g.is_file())
    });
    on_path.or_else(|| {
        let g = PathBuf::from("/usr/local/go/bin/go");
        g.is_file().then_some(g)
    })
}

fn go_cmd(go: &Path) -> Command {
    let mut c = Command::new(go);
    c.current_dir(lab_dir());
    // The go command and gofmt beside it; the build's cgo needs gcc from PATH.
    if let (Some(dir), Some(path)) = (go.parent(), std::env::var_os("PATH")) {
        let mut paths = vec![dir.to_path_buf()];
        paths.extend(std::env::split_paths(&path));
        if let Ok(joined) = std::env::join_paths(paths) {
            c.env("PATH", joined);
        }
    }
    c
}

/// Whether `p` is a 64-bit little-endian ELF executable without a program
/// interpreter (PT_INTERP): the images have no libc, so busybox must be static.
fn is_static_elf(p: &Path) -> bool {
    const PT_INTERP: u32 = 3;
    // The ELF header and program headers sit in the first pages; a
    // non-regular file (a FIFO) is refused before it is read.
    let head = || -> std::io::Result<Vec<u8>> {
        use std::io::Read;
        if !std::fs::metadata(p)?.is_file() {
            return Err(std::io::ErrorKind::InvalidInput.into());
        }
        let f = std::fs::File::open(p)?;
        let mut b = Vec::new();
        f.take(64 << 10).read_to_end(&mut b)?;
        Ok(b)
    };
    let Ok(b) = head() else {
        return false;
    };
    if b.len() < 64 || !b.starts_with(b"\x7fELF\x02\x01") {
        return false;
    }
    let u16_at = |o: usize| b.get(o..o + 2).map(|s| u16::from_le_bytes([s[0], s[1]]));
    let (Some(phoff), Some(phentsize), Some(phnum)) = (
        b.get(32..40)
            .and_then(|s| s.try_into().ok())
            .map(u64::from_le_bytes),
        u16_at(54),
        u16_at(56),
    ) else {
        return false;
    };
    let Ok(phoff) = usize::try_from(phoff) else {
        return false;
    };
    (0..usize::from(phnum)).all(|i| {
        let at = phoff.saturating_add(i.saturating_mul(usize::from(phentsize)));
        b.get(at..at + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
            .is_some_and(|t| t != PT_INTERP)
    })
}

/// What the Kubernetes tier lacks on this machine, in words.
pub fn missing() -> Vec<String> {
    let mut m = Vec::new();
    if go().is_none() {
        m.push("Go (the go command, on PATH or in /usr/local/go/bin)".to_string());
    }
    if !crate::is_root() {
        m.push("root (the kubelet, containerd and runc manage cgroups and mounts)".into());
    }
    if !Path::new("/usr/include/seccomp.h").exists() || !crate::have_command("gcc", "--version") {
        m.push("gcc and libseccomp-dev (runc is built with cgo and seccomp)".into());
    }
    if !is_static_elf(Path::new("/bin/busybox")) {
        m.push("Debian's busybox-static at /bin/busybox (the pause and test images)".into());
    }
    if !Path::new("/usr/lib/cni/loopback").exists() {
        m.push("Debian's containernetworking-plugins (/usr/lib/cni)".into());
    }
    if !Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
        && !Path::new("/sys/fs/cgroup/memory/cgroup.procs").exists()
    {
        m.push("a cgroup hierarchy at /sys/fs/cgroup (v2, or v1 with cpu and memory)".into());
    }
    if !Path::new("/dev/fuse").exists() || !crate::have_command("fusermount3", "-V") {
        m.push("FUSE (/dev/fuse and fusermount3 from fuse3) for hostdev-sim".into());
    }
    m
}

/// Runs `k8s/lab/build.sh` and returns the directory of the binaries.
pub fn build() -> Result<PathBuf> {
    let go = go().context("Go is missing: install it at /usr/local/go (the go command is needed to build the Kubernetes lab)")?;
    let out = Command::new(lab_dir().join("build.sh"))
        .current_dir(lab_dir())
        .env(
            "PATH",
            format!(
                "{}:{}",
                go.parent().unwrap_or(Path::new("/")).display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run k8s/lab/build.sh")?;
    if !out.status.success() {
        bail!("building the Kubernetes lab failed (k8s/lab/build.sh)");
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let bin = stdout
        .lines()
        .last()
        .map(str::trim)
        .filter(|l| l.starts_with('/'))
        .context("k8s/lab/build.sh printed no binary directory")?;
    Ok(PathBuf::from(bin))
}

/// Builds hostdev-sim and returns its path.
fn build_sim() -> Result<PathBuf> {
    let st = crate::cargo()
        .args(["build", "-q", "--locked", "-p", "hostdev-sim"])
        .status()
        .context("cannot run cargo to build hostdev-sim")?;
    if !st.success() {
        bail!("building hostdev-sim failed");
    }
    Ok(crate::workspace_root().join("target/debug/hostdev-sim"))
}

/// Builds what the DRA tests run beside the lab (hostdev-sim, hostdevd,
/// hostdevctl, hostdev-dra) and returns their directory. Release builds:
/// the tier's benchmarks (prepare latency, publish time) measure what ships
/// (a debug hostdevd read the `large` host's offer 3 to 4 times slower).
/// Two cargo calls: the first builds exactly what `cargo xtask deb` builds,
/// so the packages reuse it (built with hostdev-dra, shared dependencies
/// would take its features and be built again for the packages).
fn build_dra() -> Result<PathBuf> {
    for packages in [
        &["hostdevctl", "hostdevd", "hostdev-sim"][..],
        &["hostdev-dra"][..],
    ] {
        let mut c = crate::cargo();
        c.args(["build", "-q", "--release", "--locked"]);
        for p in packages {
            c.args(["-p", p]);
        }
        let st = c
            .status()
            .context("cannot run cargo to build the DRA driver and hostdevd")?;
        if !st.success() {
            bail!("building {} failed", packages.join(", "));
        }
    }
    Ok(crate::workspace_root().join("target/release"))
}

/// `cargo xtask k8s-lab [K8SLAB-OPTION…]`: builds, then hands over to the
/// launcher (exec), which runs until Ctrl-C (or `--then CMD` exits).
pub fn lab(args: &[String]) -> Result<ExitCode> {
    let go = go().context("Go is missing: install it at /usr/local/go (the go command is needed to build the Kubernetes lab)")?;
    let bin = build()?;
    let sim = build_sim()?;
    let launcher = crate::workspace_root().join("target/k8s-lab/k8slab");
    let st = go_cmd(&go)
        .args(["build", "-trimpath", "-o"])
        .arg(&launcher)
        .arg("./k8slab")
        .status()
        .context("cannot run go build")?;
    if !st.success() {
        bail!("building the lab's launcher (k8s/lab/k8slab) failed");
    }
    let mut c = Command::new(&launcher);
    c.arg("--bin").arg(&bin).arg("--sim").arg(&sim).args(args);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // The launcher takes this process's place, so that Ctrl-C reaches
        // it alone and the shell waits until it has stopped the lab.
        let err = c.exec();
        bail!("cannot run {}: {err}", launcher.display());
    }
    #[allow(unreachable_code)]
    {
        let st = c.status()?;
        Ok(ExitCode::from(st.code().unwrap_or(1) as u8))
    }
}

/// The Kubernetes tier of `cargo xtask test`: `Ok(true)` when it ran and
/// passed. `required`: a missing prerequisite fails instead of leaving the
/// tier out.
pub fn tier(required: bool) -> Result<bool> {
    const NAME: &str =
        "kubernetes (a one-node cluster built from Kubernetes' Go modules; k8s/lab/labtest)";
    let missing = missing();
    if !missing.is_empty() {
        let what = missing.join("; ");
        if required {
            eprintln!("xtask: tier {NAME} cannot run: it needs {what} (HOSTDEV_REQUIRE_PEER=1)");
            return Ok(false);
        }
        eprintln!("xtask: tier {NAME} left out: it needs {what}");
        return Ok(true);
    }
    println!("xtask: tier {NAME}");
    let go = go().context("Go is missing")?;
    let bin = build()?;
    let dra = build_dra()?;
    let st = go_cmd(&go)
        .args([
            "test",
            "-trimpath",
            "-count=1",
            "-v",
            "-timeout=30m",
            "./labtest",
            "./cluster",
        ])
        .env("HOSTDEV_K8S_LAB_BIN", &bin)
        .env("HOSTDEV_K8S_LAB_SIM", dra.join("hostdev-sim"))
        .env("HOSTDEV_DRA_BIN", &dra)
        .status()
        .context("cannot run go test")?;
    Ok(st.success())
}
