//! Running the driver: the gRPC services on their unix sockets in the
//! kubelet's directories (DRA and health on one, registration on the
//! other), the health reader ([`crate::health`]), and the publish loop: hostdevd's offer read when
//! hostdevd tells of a change ([`crate::events`]; not for the driver's own
//! prepares and unprepares, which do not change the offer), and every
//! interval besides (longer on a host whose offer is
//! costly to read, see [`poll_wait`]: the poll catches what hostdevd cannot
//! tell, such as a device made behind its back where no uevent comes);
//! the slices rewritten when it changed.
//!
//! Owns: the sockets' lifetime and the loop. Must not: hold claim state.

use crate::daemon;
use crate::health::HealthService;
use crate::plugin::{Config, Plugin, Registration};
use crate::proto::dra_v1::dra_plugin_server::DraPluginServer;
use crate::proto::health_v1::dra_resource_health_server::DraResourceHealthServer;
use crate::proto::registration::registration_server::RegistrationServer;
use crate::publish::{Published, Publisher};
use crate::slices;
use hostdev_api::DraResourcesQuery;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UnixListener;
use tokio::sync::Notify;
use tokio_stream::wrappers::UnixListenerStream;

/// Why the driver could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A socket's path holds something that is not a socket.
    #[error("{0} exists and is not a socket; not removing it")]
    NotASocket(PathBuf),
    /// Binding a socket failed.
    #[error("cannot listen on {path}")]
    Bind {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The health reader ended (it panicked).
    #[error("the device health reader stopped: {0}")]
    HealthReader(String),
    /// A gRPC server stopped.
    #[error("the gRPC server on {path} stopped")]
    Serve {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: tonic::transport::Error,
    },
}

/// Listens on `path`, replacing a stale socket (never another file).
pub fn listen(path: &Path) -> Result<UnixListenerStream, StartError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            let _ = std::fs::remove_file(path);
        }
        Ok(_) => return Err(StartError::NotASocket(path.to_path_buf())),
        Err(_) => {}
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| StartError::Bind {
            path: path.to_path_buf(),
            source,
        })?;
    }
    let l = UnixListener::bind(path).map_err(|source| StartError::Bind {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(UnixListenerStream::new(l))
}

/// Connections from `incoming`, each relayed through
/// [`crate::authority`] (the kubelet's registration client sends the socket
/// path as `:authority`, which the HTTP/2 server refuses).
pub fn relayed(
    mut incoming: UnixListenerStream,
) -> tokio_stream::wrappers::ReceiverStream<std::io::Result<tokio::io::DuplexStream>> {
    use tokio_stream::StreamExt;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        while let Some(conn) = incoming.next().await {
            let conn = match conn {
                Ok(c) => c,
                Err(e) => {
                    if tx.send(Err(e)).await.is_err() {
                        return;
                    }
                    continue;
                }
            };
            let (ours, theirs) = tokio::io::duplex(64 * 1024);
            tokio::spawn(async move {
                let _ = crate::authority::relay(conn, ours).await;
            });
            if tx.send(Ok(theirs)).await.is_err() {
                return;
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// How long the publish loop waits for a prepare or unprepare before it
/// reads the offer again: `interval`, or ten times what reading the offer
/// and building the slices last cost (at most a minute), so polling a large
/// host takes a tenth of a core at most.
pub fn poll_wait(interval: Duration, cost: Duration) -> Duration {
    interval
        .max(cost.saturating_mul(10))
        .min(Duration::from_secs(60).max(interval))
}

/// How often claims the apiserver no longer has are looked for (and once
/// at start).
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// How long a claim is missing from the apiserver before its record is
/// unprepared (a pod deleted by force: the kubelet stops its containers
/// after the claim is gone).
const SWEEP_GRACE: Duration = Duration::from_secs(120);

/// Unprepares, from start on every [`SWEEP_EVERY`], the claims hostdevd has
/// records of that the apiserver has not had for [`SWEEP_GRACE`] (see
/// `plugin::gone`).
async fn sweep_gone(plugin: Arc<Plugin>) {
    use crate::plugin::Gone;
    let mut missing = std::collections::HashMap::new();
    // What the last sweep said: a line is printed when it first appears.
    let mut said = std::collections::BTreeSet::new();
    loop {
        let lines: std::collections::BTreeSet<String> =
            match plugin.unprepare_gone(&mut missing, SWEEP_GRACE).await {
                Ok(done) => done
                    .into_iter()
                    .map(|g| match g {
                        Gone::Unprepared { claim, why } => format!(
                            "unprepared claim {claim}, which the apiserver no longer has ({why})"
                        ),
                        Gone::Waiting { claim } => format!(
                            "claim {claim} is missing from the apiserver: its record is unprepared once it has been missing for {} s",
                            SWEEP_GRACE.as_secs()
                        ),
                        Gone::Kept { claim, why } => {
                            format!("kept the record of claim {claim}: {why}")
                        }
                    })
                    .collect(),
                Err(e) => [format!(
                    "the prepared claims could not be read from hostdevd (tried again later): {e}"
                )]
                .into(),
            };
        for l in lines.difference(&said) {
            eprintln!("hostdev-dra: {l}");
        }
        said = lines;
        tokio::time::sleep(SWEEP_EVERY).await;
    }
}

/// The publish loop: runs until the process ends.
pub async fn publish_loop(
    cfg: Arc<Config>,
    client: kube::Client,
    changed: Arc<Notify>,
    read: crate::events::LastRead,
    interval: Duration,
) {
    let mut publisher = Publisher::new(client, &cfg.driver, &cfg.node);
    let mut last_notes: Vec<String> = Vec::new();
    let mut last_error = String::new();
    let mut poll_cost = Duration::ZERO;
    let mut said_groups = false;
    loop {
        let started = Instant::now();
        read.begins();
        let outcome = async {
            let offer = daemon::call(&cfg.socket, DraResourcesQuery {}, Duration::from_secs(30))
                .await
                .map_err(|e| e.to_string())?;
            let offer_ms = started.elapsed().as_millis();
            let pool = slices::pool(&cfg.driver, &cfg.node, &offer);
            poll_cost = started.elapsed();
            let mut notes = offer.notes.clone();
            notes.extend(pool.left_out.iter().cloned());
            let done = publisher.publish(&pool).await.map_err(|e| {
                let mut s = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(x) = src {
                    s.push_str(": ");
                    s.push_str(&x.to_string());
                    src = x.source();
                }
                format!("{s} [{}]", e.code())
            })?;
            Ok::<_, String>((done, notes, offer.devices.len(), offer_ms))
        }
        .await;
        if let Some(slice) = publisher.groups_dropped().filter(|_| !said_groups) {
            eprintln!("hostdev-dra: the apiserver dropped the devices' compatibilityGroups from ResourceSlice {slice} (its feature gate DRADeviceCompatibilityGroups is off): one GPU may be given claims for two types, and the second fails at prepare with the kernel's refusal; turn the gate on for the apiserver and the scheduler");
            said_groups = true;
        }
        match outcome {
            Ok((done, notes, devices, offer_ms)) => {
                match done {
                    Published::Written {
                        generation,
                        slices,
                        why,
                    } => eprintln!(
                        "hostdev-dra: published {devices} devices in {slices} slices, generation {generation}, in {} ms (offer read in {offer_ms} ms; all slices: {why})",
                        started.elapsed().as_millis()
                    ),
                    Published::Updated { generation, index } => eprintln!(
                        "hostdev-dra: published {devices} devices by updating slice {index} alone, generation {generation}, in {} ms (offer read in {offer_ms} ms)",
                        started.elapsed().as_millis()
                    ),
                    Published::Unchanged => {}
                }
                if notes != last_notes {
                    for n in &notes {
                        eprintln!("hostdev-dra: not published: {n}");
                    }
                    last_notes = notes;
                }
                last_error.clear();
            }
            Err(e) => {
                if e != last_error {
                    eprintln!("hostdev-dra: publishing failed (retrying): {e}");
                    last_error = e;
                }
            }
        }
        tokio::select! {
            () = changed.notified() => {}
            () = tokio::time::sleep(poll_wait(interval, poll_cost)) => {}
        }
    }
}

/// Serves both gRPC services and publishes until `stop` resolves.
pub async fn run(
    cfg: Config,
    registry_dir: &Path,
    interval: Duration,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let client = kube::Client::try_default().await?;
    let cfg = Arc::new(cfg);
    let changed = Arc::new(Notify::new());
    let dra_path = cfg.dra_socket();
    let reg_path = registry_dir.join(format!("{}-reg.sock", cfg.driver));
    let dra_incoming = listen(&dra_path)?;
    let ours = crate::events::Ours::default();
    let plugin = Arc::new(Plugin::new(cfg.clone(), client.clone(), ours.clone()));
    let (report_tx, report) = tokio::sync::watch::channel(None);
    let health_wake = Arc::new(Notify::new());
    let dra = tonic::transport::Server::builder()
        .add_service(DraPluginServer::from_arc(plugin.clone()))
        .add_service(DraResourceHealthServer::new(HealthService {
            pool: cfg.node.clone(),
            report,
        }))
        .serve_with_incoming(dra_incoming);
    // Registration last: the kubelet calls the DRA socket as soon as it
    // sees the registration socket.
    let reg_incoming = relayed(listen(&reg_path)?);
    let registration = Registration {
        driver: cfg.driver.clone(),
        endpoint: dra_path.to_string_lossy().into_owned(),
    };
    let reg = tonic::transport::Server::builder()
        .add_service(RegistrationServer::new(registration))
        .serve_with_incoming(reg_incoming);
    let read = crate::events::LastRead::default();
    let following = tokio::spawn(crate::events::watch(
        cfg.socket.clone(),
        changed.clone(),
        health_wake.clone(),
        ours,
        read.clone(),
    ));
    let mut checking = tokio::spawn(crate::health::read_loop(
        cfg.socket.clone(),
        report_tx,
        health_wake,
    ));
    let publishing = tokio::spawn(publish_loop(cfg.clone(), client, changed, read, interval));
    let sweeping = tokio::spawn(sweep_gone(plugin));
    eprintln!(
        "hostdev-dra: driver {} on node {}: {} and {}",
        cfg.driver,
        cfg.node,
        dra_path.display(),
        reg_path.display()
    );
    let result = tokio::select! {
        r = dra => r.map_err(|source| StartError::Serve { path: dra_path.clone(), source }),
        r = reg => r.map_err(|source| StartError::Serve { path: reg_path.clone(), source }),
        // The reader runs for as long as the process: ending, it panicked,
        // and a driver whose health reports would go stale stops instead.
        r = &mut checking => Err(StartError::HealthReader(
            r.err().map_or_else(|| "it returned".to_string(), |e| e.to_string()),
        )),
        () = stop => Ok(()),
    };
    publishing.abort();
    following.abort();
    sweeping.abort();
    checking.abort();
    // The registration socket goes first so the kubelet stops calling.
    let _ = std::fs::remove_file(&reg_path);
    let _ = std::fs::remove_file(&dra_path);
    Ok(result?)
}

#[cfg(test)]
mod tests {
    use super::poll_wait;
    use std::time::Duration;

    #[test]
    fn a_costly_offer_is_read_less_often() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        assert_eq!(poll_wait(s(1), ms(20)), s(1));
        assert_eq!(poll_wait(s(1), ms(300)), s(3));
        assert_eq!(poll_wait(s(1), s(30)), s(60));
        assert_eq!(poll_wait(s(120), s(30)), s(120));
    }
}
