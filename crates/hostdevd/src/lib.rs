//! hostdevd: hostdev's host daemon. It serves the core's operations on a
//! local HTTP API (unix socket, `/v1/...`), restores devices when their
//! parents, PFs or management devices appear (kernel events, resync), reports
//! drift, publishes events and exports metrics.
//!
//! Owns: the daemon's lifecycle ([`run`]): configuration, socket, watcher,
//! signals, systemd notification. Must not: contain operation logic (the
//! core's) or decide anything from what a client says about itself.
#![deny(missing_docs)]

pub mod auth;
pub mod config;
pub mod listen;
pub mod metrics;
pub mod notify;
pub mod openapi;
pub mod server;
pub mod snapshot;
pub mod state;
pub mod watch;

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How long SIGTERM waits for clients after in-flight operations finished.
const GRACE: Duration = Duration::from_secs(5);

/// Runs the daemon until SIGTERM/SIGINT.
pub async fn run(config: config::Config, root: PathBuf) -> Result<()> {
    // Before the socket exists: a client that sees the socket may signal
    // at once, and the signal must find the handler, not the default action.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot handle SIGTERM")?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot handle SIGINT")?;
    let readers = auth::group_gid(std::path::Path::new("/etc"), &config.group);
    if readers.is_none() {
        tracing::warn!(
            group = %config.group,
            "the group does not exist; only root can use the socket"
        );
    }
    let listener = listen::bind(&config.socket, readers)?;
    let socket = config.socket.clone();
    let uevents_on = config.uevents;
    let (shared, nudges) = state::Shared::real(config, root, readers);
    let uevents = if uevents_on {
        match hostdev_uevent::NetlinkUevents::open() {
            Ok(src) => Some(watch::spawn_uevents(Box::new(src), Arc::clone(&shared))),
            Err(e) => {
                tracing::warn!("cannot listen for kernel events ({e}); relying on resync");
                None
            }
        }
    } else {
        None
    };
    let watcher = tokio::spawn(watch::watch(Arc::clone(&shared), nudges, uevents));
    let server = tokio::spawn(listen::serve(
        listener,
        server::router(Arc::clone(&shared)),
        Arc::clone(&shared),
        GRACE,
    ));
    tracing::info!(socket = %socket.display(), "hostdevd is serving");
    notify::notify("READY=1\nSTATUS=serving");
    let watchdog = notify::watchdog_interval().map(|every| {
        tokio::spawn(async move {
            let mut t = tokio::time::interval(every);
            loop {
                t.tick().await;
                notify::notify("WATCHDOG=1");
            }
        })
    });

    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("stopping: finishing operations in flight");
    notify::notify("STOPPING=1\nSTATUS=finishing operations in flight");
    // No new operation starts once the write lock is asked for; those
    // running finish (a device is never left half-created).
    let all_done = Arc::clone(&shared.inflight).write_owned().await;
    let _ = shared.stopping.send(true);
    let _ = watcher.await;
    match server.await {
        Ok(r) => r.context("serving failed")?,
        Err(e) => tracing::warn!("the server task ended badly: {e}"),
    }
    if let Some(w) = watchdog {
        w.abort();
    }
    drop(all_done);
    let _ = std::fs::remove_file(&socket);
    tracing::info!("stopped");
    Ok(())
}
