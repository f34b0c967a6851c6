//! The socket: created safely (a stale one replaced, a live one refused),
//! mode 0660 and the readers' group; connections accepted with a bound on how
//! many are served at once and how long a client may take to send its
//! headers; each request tagged with the peer's kernel-reported credentials.
//! Owns: the accept loop and graceful connection shutdown. Must not: look at
//! requests (the router does).

use crate::auth::Peer;
use crate::state::Shared;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

/// Why the socket cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// Another daemon answers on it.
    #[error("another hostdevd already answers on {0}")]
    Busy(String),
    /// Something else is at that path.
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotSocket(String),
    /// Creating, binding or setting up the socket failed.
    #[error("cannot set up the socket {path}")]
    Io {
        /// The socket path.
        path: String,
        /// Why.
        source: io::Error,
    },
}

/// Binds the socket at `path` for the group `gid`.
pub fn bind(
    path: &Path,
    gid: Option<u32>,
) -> Result<std::os::unix::net::UnixListener, ListenError> {
    let shown = path.display().to_string();
    let io = |source| ListenError::Io {
        path: shown.clone(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(ListenError::Busy(shown));
            }
            std::fs::remove_file(path).map_err(io)?;
        }
        Ok(_) => return Err(ListenError::NotSocket(shown)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    // Bind with a umask-safe sequence: nobody can connect before the mode
    // and group are set, because the directory entry is created 0600 first.
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o177));
    let l = std::os::unix::net::UnixListener::bind(path);
    rustix::process::umask(old);
    let l = l.map_err(io)?;
    if let Some(g) = gid {
        rustix::fs::chown(path, None, Some(rustix::fs::Gid::from_raw(g)))
            .map_err(|e| io(e.into()))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(io)?;
    l.set_nonblocking(true).map_err(io)?;
    Ok(l)
}

/// Serves `router` on `listener` until `stopping` turns true, then lets the
/// connections finish (bounded by `grace`).
pub async fn serve<K: hostdev_core::Kernel>(
    listener: std::os::unix::net::UnixListener,
    router: Router,
    s: Arc<Shared<K>>,
    grace: Duration,
) -> io::Result<()> {
    let listener = tokio::net::UnixListener::from_std(listener)?;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(s.config.max_connections));
    let header_timeout = Duration::from_secs(s.config.request_timeout_secs);
    let mut stopping = s.stopping.subscribe();
    loop {
        let permit = tokio::select! {
            _ = stopping.changed() => break,
            p = Arc::clone(&slots).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let stream = tokio::select! {
            _ = stopping.changed() => break,
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("accepting a connection failed: {e}");
                    continue;
                }
            },
        };
        let peer = match stream.peer_cred() {
            Ok(c) => Peer {
                uid: c.uid(),
                gid: c.gid(),
                pid: c.pid().unwrap_or(0),
            },
            Err(e) => {
                tracing::warn!("cannot read a client's credentials: {e}; closing it");
                continue;
            }
        };
        let svc = router
            .clone()
            .map_request(move |mut req: axum::http::Request<_>| {
                req.extensions_mut().insert(peer);
                req
            });
        let svc = hyper_util::service::TowerToHyperService::new(svc);
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(TokioIo::new(stream), svc);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some clients did not finish within {} s", grace.as_secs());
    }
    Ok(())
}
