//! `hostdev-dra`: hostdev's Kubernetes DRA driver, one per node beside the
//! node's hostdevd (see the crate's library for what each part does).

use clap::Parser;
use hostdev_dra::names::check_names;
use hostdev_dra::plugin::Config;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// mimalloc, as in hostdevd (whose main.rs says why): the driver turns the
/// whole offer into ResourceSlice objects after every change, and glibc's
/// malloc took over half of that time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// hostdev's Kubernetes DRA driver: publishes this node's mediated devices,
/// NVIDIA vGPUs and vDPA devices as ResourceSlices and prepares claims
/// through hostdevd.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The driver name (a DNS subdomain of at most 63 bytes; DeviceClasses
    /// select on it).
    #[arg(long, default_value = "hostdev.io")]
    driver: String,
    /// This node's name (the pool's name too).
    #[arg(long, env = "NODE_NAME")]
    node: String,
    /// hostdevd's socket.
    #[arg(long, default_value = hostdev_api::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// The kubelet's root directory (its plugins/ and plugins_registry/).
    #[arg(long, default_value = "/var/lib/kubelet")]
    kubelet_dir: PathBuf,
    /// The directory the container runtime reads CDI specs from.
    #[arg(long, default_value = "/var/run/cdi")]
    cdi_dir: PathBuf,
    /// How often hostdevd's offer is read besides when hostdevd's events
    /// tell of a change (milliseconds; at least ten times what reading it
    /// costs, so a large host is read less often).
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = check_names(&args.driver, &args.node) {
        eprintln!("hostdev-dra: {e}");
        return ExitCode::from(2);
    }
    let cfg = Config {
        plugin_dir: args.kubelet_dir.join("plugins").join(&args.driver),
        driver: args.driver,
        node: args.node,
        socket: args.socket,
        cdi_dir: args.cdi_dir,
    };
    let registry = args.kubelet_dir.join("plugins_registry");
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hostdev-dra: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let term = rt.block_on(async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    });
    let mut term = match term {
        Ok(t) => t,
        Err(e) => {
            eprintln!("hostdev-dra: cannot catch SIGTERM: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stop = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    let interval = Duration::from_millis(args.interval_ms.max(50));
    let result = rt.block_on(hostdev_dra::run::run(cfg, &registry, interval, stop));
    // The event stream's reader blocks on its socket until hostdevd says
    // something, and dropping a runtime waits for such threads: a stop
    // would wait for hostdevd's next event.
    rt.shutdown_timeout(Duration::from_secs(2));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hostdev-dra: {e:#}");
            ExitCode::FAILURE
        }
    }
}
