//! hostdevd, asked from async code: each call is one
//! [`hostdev_api::client::Daemon`] request on a blocking thread.
//!
//! Owns: reaching the socket. Must not: retry a change (a prepare sent is
//! never resent here; the kubelet asks again and hostdevd answers from its
//! record).

use hostdev_api::client::{Daemon, RemoteError};
use hostdev_api::{ErrorBody, ErrorClass, Op};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why asking hostdevd failed.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Nothing answers on the socket.
    #[error("hostdevd does not answer on {0} (is it running?)")]
    Down(PathBuf),
    /// The call failed (hostdevd's sentence, or why it stopped answering).
    #[error(transparent)]
    Call(#[from] RemoteError),
    /// The blocking task died.
    #[error("the call to hostdevd was cut short: {0}")]
    Task(String),
}

impl DaemonError {
    /// The stable code: hostdevd's, or the driver's own.
    pub fn code(&self) -> String {
        match self {
            DaemonError::Down(_) => "dra.daemon-down".into(),
            DaemonError::Call(e) => e.code().to_string(),
            DaemonError::Task(_) => "dra.daemon-task".into(),
        }
    }

    /// What can be done about it.
    pub fn class(&self) -> ErrorClass {
        match self {
            DaemonError::Down(_) => ErrorClass::Stopping,
            DaemonError::Call(e) => e.class(),
            DaemonError::Task(_) => ErrorClass::Internal,
        }
    }

    /// As hostdevd's error body.
    pub fn body(&self) -> ErrorBody {
        match self {
            DaemonError::Call(e) => e.body(),
            other => ErrorBody::new(other.class(), other.code(), other.to_string()),
        }
    }
}

/// Calls `op` on the daemon at `socket`.
pub async fn call<O>(socket: &Path, op: O, timeout: Duration) -> Result<O::Reply, DaemonError>
where
    O: Op + Send + 'static,
    O::Reply: Send + 'static,
{
    let socket = socket.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let d = Daemon::connect(&socket).ok_or_else(|| DaemonError::Down(socket.clone()))?;
        Ok(d.call(&op, timeout)?)
    })
    .await
    .map_err(|e| DaemonError::Task(e.to_string()))?
}
