//! `hostdevd`: the host daemon's command line. Reads the configuration, sets
//! up logging (journald's level prefixes when systemd started it) and runs
//! [`hostdevd::run`].

mod man;

use anyhow::Result;
use clap::{CommandFactory, Parser};
use hostdevd::config::{Config, DEFAULT_CONFIG};
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc, not glibc's malloc: the daemon builds and drops large replies
/// (a 16-GPU host's DRA offer is 16 384 devices, 10 MB of JSON) on a few
/// worker threads, and glibc spent a third of that request in
/// `malloc_consolidate` and `unlink_chunk`. Measured in docs/performance.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "hostdevd",
    version = hostdev_version::VERSION,
    about = "hostdev's host daemon",
    long_about = "hostdev's host daemon: serves hostdevctl's operations (mdevs, NVIDIA SR-IOV vGPUs, vDPA devices, pools, the host file) on a local HTTP/1.1 JSON API, restores devices when their parent, PF or vDPA management device appears (kernel uevents, debounced, and a periodic resync), reports drift, streams events and exports Prometheus metrics. Under systemd it is Type=notify with a watchdog."
)]
struct Args {
    /// Configuration file (default /etc/hostdev/hostdevd.toml under the
    /// root prefix; optional unless given here)
    #[arg(long)]
    config: Option<PathBuf>,
    /// Socket path (overrides the configuration)
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Check the configuration and exit
    #[arg(long)]
    check_config: bool,
    /// Print the manual page (roff) and exit
    #[arg(long, hide = true)]
    man: bool,
}

fn root() -> PathBuf {
    std::env::var_os("HOSTDEV_ROOT")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

fn logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("HOSTDEV_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        // journald stamps the time itself.
        b.without_time().with_ansi(false).with_target(false).init();
    } else {
        use std::io::IsTerminal;
        b.with_target(false)
            .with_ansi(std::io::stderr().is_terminal())
            .init();
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.man {
        use std::io::Write;
        let page = man::page(Args::command());
        return match page.and_then(|p| std::io::stdout().write_all(&p)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hostdevd: error: cannot write the manual page: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match start(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hostdevd: error: {}", hostdev_core::chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

fn start(args: Args) -> Result<()> {
    let root = root();
    let mut config = match &args.config {
        Some(p) => Config::load(p, false)?,
        None => Config::load(&root.join(DEFAULT_CONFIG.trim_start_matches('/')), true)?,
    };
    if let Some(s) = args.socket {
        config.socket = s;
    }
    if args.check_config {
        println!("{config:#?}");
        return Ok(());
    }
    // A daemon on a root that is not there would serve an empty host forever.
    if !root.is_dir() {
        anyhow::bail!(
            "the root prefix {} (HOSTDEV_ROOT) is not a directory",
            root.display()
        );
    }
    logging();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(64)
        .enable_all()
        .build()?;
    rt.block_on(hostdevd::run(config, root))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manual_page_has_every_option_and_what_clap_cannot_know() {
        let page = String::from_utf8(man::page(Args::command()).unwrap()).unwrap();
        assert!(page.contains(".TH hostdevd 8"), "{page}");
        for a in Args::command().get_arguments() {
            let Some(long) = a.get_long() else { continue };
            let shown = page.contains(&format!("\\-\\-{}", long.replace('-', "\\-")));
            assert_eq!(shown, !a.is_hide_set(), "--{long}");
        }
        for s in ["FILES", "ENVIRONMENT", "SIGNALS", "EXIT STATUS", "SEE ALSO"] {
            assert!(page.contains(&format!(".SH {s}")), "{s}");
        }
        assert!(page.contains("hostdevd.toml") && page.contains("HOSTDEV_ROOT"));
    }
}
