//! `hostdev-sim`: the simulated hardware lab.
//!
//! ```text
//! hostdev-sim run --root DIR --profile NAME|FILE   mount DIR/sys, stay until SIGTERM/SIGINT
//! hostdev-sim reboot --root DIR                    reset the hardware as a host reboot would
//! hostdev-sim profiles                             list the built-in profiles
//! ```

mod man;

use anyhow::{bail, Context, Result};
use clap::{CommandFactory, Parser};
use hostdev_sim::fs::SimFs;
use hostdev_sim::model::Kernel;
use hostdev_sim::profile::{self, BUILTIN};
use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The simulated hardware lab: a FUSE sysfs with mdev parents, SR-IOV GPUs
/// and a vdpa model, for hostdev's tests and tour.
#[derive(Parser, Debug)]
#[command(
    name = "hostdev-sim",
    version = hostdev_version::VERSION,
    long_about = "The simulated hardware lab: a FUSE-mounted sysfs that behaves like the kernel's mdev core and vendors' drivers (NVIDIA-like one-type GPUs, SR-IOV vGPUs, mtty, vfio-ap), so that hostdev and other programs (Debian's mdevctl, libvirt) can be tried and tested without the hardware."
)]
enum Cli {
    /// Mount DIR/sys with a profile's hardware and stay until SIGTERM or Ctrl-C
    Run {
        /// The root to serve (hostdev is pointed at it with HOSTDEV_ROOT=DIR)
        #[arg(long, value_name = "DIR")]
        root: PathBuf,
        /// A built-in profile (see `hostdev-sim profiles`) or a profile file
        #[arg(long, value_name = "NAME|FILE")]
        profile: String,
        /// FUSE worker threads
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
        threads: u16,
    },
    /// Reset the hardware of a running simulator as a host reboot would
    Reboot {
        /// The served root
        #[arg(long, value_name = "DIR")]
        root: PathBuf,
    },
    /// List the built-in profiles
    Profiles,
    /// Print the manual page (roff)
    #[command(hide = true)]
    Man,
}

/// The largest profile file read (the built-in ones are a few KiB).
const PROFILE_MAX: u64 = 1 << 20;

fn load_profile(spec: &str) -> Result<profile::Profile> {
    let text = match BUILTIN.iter().find(|(n, _)| *n == spec) {
        Some((_, t)) => t.to_string(),
        None => {
            let names: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
            let unreadable = || {
                format!(
                    "'{spec}' is neither a built-in profile ({}) nor a readable profile file",
                    names.join(", ")
                )
            };
            // A profile is a regular file of at most 1 MiB: a FIFO, a device
            // or a huge file is refused before anything is read or mounted.
            let limits = hostdev_fs::Limits::at_most(PROFILE_MAX);
            let bytes = hostdev_fs::read_regular_within(Path::new(spec), limits)
                .with_context(unreadable)?
                .with_context(unreadable)?;
            String::from_utf8(bytes).with_context(|| format!("profile {spec} is not UTF-8"))?
        }
    };
    profile::parse(&text).with_context(|| format!("profile {spec} is malformed"))
}

fn boot_file(root: &Path) -> PathBuf {
    root.join("run/hostdev-sim.boot")
}

/// Empties DIR/run as a reboot empties /run, keeping the simulator's own files.
fn clear_run(root: &Path) {
    if let Ok(rd) = std::fs::read_dir(root.join("run")) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with("hostdev-sim.") {
                continue;
            }
            let p = e.path();
            let _ = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
        }
    }
}

/// The pid of a simulator that serves `root` now, if one does (its pid file
/// names a live process).
fn serving(root: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(root.join("run/hostdev-sim.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let p = rustix::process::Pid::from_raw(pid)?;
    rustix::process::test_kill_process(p).ok()?;
    Some(pid)
}

/// Holds `DIR/run/hostdev-sim.lock` for the simulator's life, so two `run`s
/// on one root cannot both mount it, even when started at the same instant.
fn claim(root: &Path) -> Result<std::fs::File> {
    use rustix::fs::{flock, FlockOperation};
    let run = root.join("run");
    std::fs::create_dir_all(&run).with_context(|| format!("cannot create {}", run.display()))?;
    let path = run.join("hostdev-sim.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
        match serving(root) {
            Some(pid) => bail!(
                "{} is already served by hostdev-sim (pid {pid}); stop it first (kill {pid}) or choose another --root",
                root.display()
            ),
            None => bail!(
                "another hostdev-sim is starting on {} (it holds {}); choose another --root",
                root.display(),
                path.display()
            ),
        }
    }
    Ok(file)
}

fn run(root: &Path, spec: &str, threads: usize) -> Result<()> {
    let profile = load_profile(spec)?;
    let _claim = claim(root)?;
    // A Debian host with mdevctl installed has its script directories.
    for d in [
        "sys",
        "etc/mdevctl.d/scripts.d/callouts",
        "etc/mdevctl.d/scripts.d/notifiers",
        "var",
        "run",
    ] {
        std::fs::create_dir_all(root.join(d))
            .with_context(|| format!("cannot create {}", root.join(d).display()))?;
    }
    let kernel = Arc::new(Mutex::new(Kernel::new(profile)));
    let fs = SimFs::new(Arc::clone(&kernel));
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName("hostdev-sim".into()),
        fuser::MountOption::Subtype("hostdev-sim".into()),
        fuser::MountOption::DefaultPermissions,
    ];
    config.n_threads = Some(threads);
    let signals =
        Signals::new([SIGTERM, SIGINT, SIGUSR1]).context("cannot install signal handlers")?;
    let session = fuser::spawn_mount(fs.clone(), root.join("sys"), &config).with_context(|| {
        format!(
            "cannot mount the simulated sysfs at {} (is fuse3 installed and /dev/fuse usable?)",
            root.join("sys").display()
        )
    })?;
    std::fs::write(
        root.join("run/hostdev-sim.pid"),
        format!("{}\n", std::process::id()),
    )?;
    let mut boots = 1u64;
    std::fs::write(boot_file(root), format!("{boots}\n"))?;
    eprintln!(
        "hostdev-sim: profile {spec} mounted at {}; stop with SIGTERM or Ctrl-C",
        root.join("sys").display()
    );
    let mut signals = signals;
    for sig in signals.forever() {
        match sig {
            SIGUSR1 => {
                lock(&kernel).reboot();
                fs.renumber();
                clear_run(root);
                boots += 1;
                std::fs::write(boot_file(root), format!("{boots}\n"))?;
            }
            _ => break,
        }
    }
    let _ = std::fs::remove_file(root.join("run/hostdev-sim.pid"));
    session
        .umount_and_join()
        .context("unmounting the simulated sysfs failed")?;
    Ok(())
}

fn lock(k: &Mutex<Kernel>) -> std::sync::MutexGuard<'_, Kernel> {
    k.lock().unwrap_or_else(|p| p.into_inner())
}

fn reboot(root: &Path) -> Result<()> {
    let pid_file = root.join("run/hostdev-sim.pid");
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .with_context(|| {
            format!(
                "no simulator runs at {} ({} missing)",
                root.display(),
                pid_file.display()
            )
        })?
        .trim()
        .parse()
        .context("the simulator's pid file is malformed")?;
    let before = std::fs::read_to_string(boot_file(root)).unwrap_or_default();
    let pid = rustix::process::Pid::from_raw(pid).context("the simulator's pid is invalid")?;
    rustix::process::kill_process(pid, rustix::process::Signal::USR1)
        .context("cannot signal the simulator")?;
    let t0 = Instant::now();
    while std::fs::read_to_string(boot_file(root)).unwrap_or_default() == before {
        if t0.elapsed() > Duration::from_secs(10) {
            bail!("the simulator did not reboot within 10 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

fn main() -> ExitCode {
    let r = match Cli::parse() {
        Cli::Profiles => {
            for (name, text) in BUILTIN {
                let d = profile::parse(text)
                    .map(|p| p.description)
                    .unwrap_or_default();
                println!("{name:<14} {d}");
            }
            Ok(())
        }
        Cli::Run {
            root,
            profile,
            threads,
        } => run(&root, &profile, usize::from(threads)),
        Cli::Reboot { root } => reboot(&root),
        Cli::Man => man::page(Cli::command())
            .and_then(|p| std::io::Write::write_all(&mut std::io::stdout(), &p))
            .context("cannot write the manual page"),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "hostdev-sim: {}",
                e.chain()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(": ")
            );
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manual_page_has_every_command_and_option_and_what_clap_cannot_know() {
        let page = String::from_utf8(man::page(Cli::command()).unwrap()).unwrap();
        assert!(page.contains(".TH hostdev-sim 1"), "{page}");
        for sub in Cli::command().get_subcommands() {
            let shown = page.contains(&format!(".TP\n\\fB{}\\fR", sub.get_name()));
            assert_eq!(shown, !sub.is_hide_set(), "{}", sub.get_name());
            for a in sub.get_arguments().filter_map(|a| a.get_long()) {
                if a != "help" {
                    assert!(page.contains(&format!("\\fB\\-\\-{a}\\fR")), "--{a}");
                }
            }
        }
        assert!(
            !page.contains("hostdev\\-sim\\-run(1)"),
            "one page, no per-command pages"
        );
        for s in ["PROFILES", "FILES", "SIGNALS", "EXIT STATUS", "SEE ALSO"] {
            assert!(page.contains(&format!(".SH {s}")), "{s}");
        }
        assert!(page.contains("SIGUSR1") && page.contains("HOSTDEV_ROOT"));
    }
}
