//! Following hostdevd's events (`GET /v1/events`): every device hostdevd
//! sees come or go (a kernel uevent, its resync, a change asked through
//! it, a restore, the host file) wakes the publisher, so a change is
//! published as soon as hostdevd knows of it rather than at the next poll.
//! While the stream is down (hostdevd restarting) it is opened again every
//! second, and the publisher is woken once it is back (events were missed).
//!
//! Owns: the stream's connection. Must not: decide what is published (the
//! publisher reads hostdevd's offer when woken).

use hostdev_api::client::Daemon;
use hostdev_api::EventKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Whether an event may change what the node offers: anything but a
/// failure report.
pub fn wakes(what: &EventKind) -> bool {
    !matches!(what, EventKind::Failure { .. })
}

/// Follows the stream until it ends or fails; why it ended.
fn follow(socket: &Path, changed: &Notify) -> String {
    let Some(d) = Daemon::connect(socket) else {
        return format!("hostdevd does not answer on {}", socket.display());
    };
    let mut events = match d.events(None) {
        Ok(e) => e,
        Err(e) => return e.to_string(),
    };
    eprintln!("hostdev-dra: following hostdevd's events");
    // Whatever happened while nobody followed.
    changed.notify_one();
    loop {
        match events.next_event() {
            Ok(Some(e)) => {
                if wakes(&e.what) {
                    changed.notify_one();
                }
            }
            Ok(None) => return "hostdevd ended its event stream".into(),
            Err(e) => return e.to_string(),
        }
    }
}

/// Follows hostdevd's events for as long as the process runs, waking
/// `changed` for each that may change the offer.
pub async fn watch(socket: PathBuf, changed: Arc<Notify>) {
    let mut last = String::new();
    loop {
        let (s, c) = (socket.clone(), changed.clone());
        let why = tokio::task::spawn_blocking(move || follow(&s, &c))
            .await
            .unwrap_or_else(|e| format!("the event reader died: {e}"));
        if why != last {
            eprintln!(
                "hostdev-dra: not following hostdevd's events (trying again every second): {why}"
            );
            last = why;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::wakes;
    use hostdev_api::{ErrorBody, ErrorClass, EventKind};

    #[test]
    fn only_failures_leave_the_offer_alone() {
        assert!(!wakes(&EventKind::Failure {
            during: "resync".into(),
            error: ErrorBody::new(ErrorClass::Failed, "x", "y"),
        }));
        assert!(wakes(&EventKind::HostFile {
            mode: "report".into(),
            changes: 1,
            blocked: 0,
            failed: 0,
        }));
    }
}
