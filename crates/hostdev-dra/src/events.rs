//! Following hostdevd's events (`GET /v1/events`): every device hostdevd
//! sees come or go (a kernel uevent, its resync, a change asked through
//! it, a restore, the host file) wakes the publisher, so a change is
//! published as soon as hostdevd knows of it rather than at the next poll.
//! While the stream is down (hostdevd restarting) it is opened again every
//! second, and the publisher is woken once it is back (events were missed).
//!
//! What the driver's own prepares and unprepares do wakes nothing: a
//! claim's devices are Kubernetes' own, which hostdevd's offer leaves
//! alone (the scheduler counts them), so reading the whole offer after
//! each of them (seconds of CPU on a large host, during a burst of
//! prepares back to back) would change nothing. Those are hostdevd's
//! `changed` events for `/v1/dra/*`, and device events naming a device a
//! prepare answered with ([`Ours`]); a device event is looked at again
//! after [`SETTLE`], since it can come before the prepare's answer.
//!
//! Owns: the stream's connection. Must not: decide what is published (the
//! publisher reads hostdevd's offer when woken).

use hostdev_api::client::Daemon;
use hostdev_api::EventKind;
use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// How long a device event waits for a prepare's answer to name it.
pub const SETTLE: Duration = Duration::from_millis(200);

/// The ids (mdev UUIDs, VF addresses, vDPA names) of devices the driver's
/// prepares answered with, the last [`Ours::KEPT`] of them.
#[derive(Debug, Clone, Default)]
pub struct Ours(Arc<Mutex<(VecDeque<String>, BTreeSet<String>)>>);

impl Ours {
    /// How many ids are kept.
    pub const KEPT: usize = 4096;

    /// Notes a device a prepare made.
    pub fn add(&self, id: &str) {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if g.1.insert(id.to_string()) {
            g.0.push_back(id.to_string());
            if g.0.len() > Self::KEPT {
                if let Some(old) = g.0.pop_front() {
                    g.1.remove(&old);
                }
            }
        }
    }

    /// Whether a prepare answered with this device.
    pub fn has(&self, id: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .contains(id)
    }
}

/// What an event asks of the publisher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wake {
    /// Nothing: a failure report, or the driver's own prepare or unprepare.
    No,
    /// Read the offer again.
    Now,
    /// Read it again unless, after [`SETTLE`], this device is one of ours.
    UnlessOurs(String),
}

/// Sorts one event.
pub fn wakes(what: &EventKind) -> Wake {
    match what {
        EventKind::Failure { .. } => Wake::No,
        EventKind::Changed { operation, .. } if operation.starts_with("/v1/dra/") => Wake::No,
        EventKind::DeviceAdded { device }
        | EventKind::DeviceRemoved { device }
        | EventKind::Drift { device, .. }
        | EventKind::DriftResolved { device, .. } => Wake::UnlessOurs(device.id.clone()),
        _ => Wake::Now,
    }
}

/// Follows the stream until it ends or fails; why it ended.
fn follow(
    socket: &Path,
    changed: &Arc<Notify>,
    health: &Notify,
    ours: &Ours,
    rt: &tokio::runtime::Handle,
) -> String {
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
    health.notify_one();
    loop {
        match events.next_event() {
            Ok(Some(e)) => {
                // Every change may be a prepared device's (one removed by
                // hand, a prepare's or unprepare's): health is cheap to read.
                if !matches!(e.what, EventKind::Failure { .. }) {
                    health.notify_one();
                }
                match wakes(&e.what) {
                    Wake::No => {}
                    Wake::Now => changed.notify_one(),
                    Wake::UnlessOurs(id) if ours.has(&id) => {}
                    Wake::UnlessOurs(id) => {
                        let (changed, ours) = (changed.clone(), ours.clone());
                        rt.spawn(async move {
                            tokio::time::sleep(SETTLE).await;
                            if !ours.has(&id) {
                                changed.notify_one();
                            }
                        });
                    }
                }
            }
            Ok(None) => return "hostdevd ended its event stream".into(),
            Err(e) => return e.to_string(),
        }
    }
}

/// Follows hostdevd's events for as long as the process runs, waking
/// `changed` for each that may change the offer and `health` for every one
/// but a failure report.
pub async fn watch(socket: PathBuf, changed: Arc<Notify>, health: Arc<Notify>, ours: Ours) {
    let mut last = String::new();
    let rt = tokio::runtime::Handle::current();
    loop {
        let (s, c, h, o, r) = (
            socket.clone(),
            changed.clone(),
            health.clone(),
            ours.clone(),
            rt.clone(),
        );
        let why = tokio::task::spawn_blocking(move || follow(&s, &c, &h, &o, &r))
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
    use super::{wakes, Ours, Wake};
    use hostdev_api::{DeviceRef, ErrorBody, ErrorClass, EventKind, Kind};

    #[test]
    fn failures_and_the_drivers_own_prepares_wake_nothing() {
        assert_eq!(
            wakes(&EventKind::Failure {
                during: "resync".into(),
                error: ErrorBody::new(ErrorClass::Failed, "x", "y"),
            }),
            Wake::No
        );
        let changed = |op: &str| EventKind::Changed {
            operation: op.into(),
            target: None,
            uid: 0,
            pid: 1,
        };
        assert_eq!(wakes(&changed("/v1/dra/prepare")), Wake::No);
        assert_eq!(wakes(&changed("/v1/dra/unprepare")), Wake::No);
        assert_eq!(wakes(&changed("/v1/mdev/start")), Wake::Now);
        assert_eq!(
            wakes(&EventKind::HostFile {
                mode: "report".into(),
                changes: 1,
                blocked: 0,
                failed: 0,
            }),
            Wake::Now
        );
        let d = DeviceRef {
            kind: Kind::Mdev,
            id: "u-1".into(),
            parent: "p".into(),
        };
        assert_eq!(
            wakes(&EventKind::DeviceAdded { device: d }),
            Wake::UnlessOurs("u-1".into())
        );
    }

    #[test]
    fn ours_keeps_the_newest_ids_only() {
        let o = Ours::default();
        for i in 0..Ours::KEPT + 10 {
            o.add(&format!("id-{i}"));
        }
        o.add("id-20");
        assert!(!o.has("id-0") && !o.has("id-9"));
        assert!(o.has("id-10") && o.has(&format!("id-{}", Ours::KEPT + 9)));
    }
}
