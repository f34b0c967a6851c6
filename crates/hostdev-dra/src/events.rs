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
//! Nor does an event that a read of the offer begun after it already saw
//! ([`LastRead`]): one stamped before that read began, or a device event
//! for a device an operation through hostdevd named before it (the look
//! after each operation tells of its device again).
//!
//! Owns: the stream's connection. Must not: decide what is published (the
//! publisher reads hostdevd's offer when woken).

use hostdev_api::client::Daemon;
use hostdev_api::{ErrorTarget, EventKind, Target};
use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// How long a device event waits for a prepare's answer to name it.
pub const SETTLE: Duration = Duration::from_millis(200);

/// How many devices named by operations are remembered ([`changed_device`]).
const TOLD: usize = 256;

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

/// When the publisher last began reading hostdevd's offer (milliseconds
/// since the Unix epoch, as events are stamped; both clocks are the node's).
/// An event stamped before that is covered by that read: hostdevd sends an
/// event once what it tells of is done, so a read begun later sees it.
/// Without this, a change through hostdevd woke the publisher twice — its
/// `changed` event at once, the look's device events 200 ms later
/// ([`SETTLE`]) — and the second full read of a large host's offer
/// (300-600 ms) delayed the publish of the next change by as much.
#[derive(Debug, Clone, Default)]
pub struct LastRead(Arc<std::sync::atomic::AtomicU64>);

impl LastRead {
    /// Notes that a read of the offer begins now.
    pub fn begins(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.0.store(now, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether a read begun after an event stamped `unix_ms` (the same
    /// millisecond is not after it).
    pub fn covers(&self, unix_ms: u64) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst) > unix_ms
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

/// The device a `changed` event (an operation asked through hostdevd)
/// names, as device events name it: an mdev's UUID, a VF's address, a vDPA
/// device's name.
pub fn changed_device(what: &EventKind) -> Option<String> {
    match what {
        EventKind::Changed {
            target: Some(ErrorTarget::Device(t)),
            ..
        } => Some(match t {
            Target::Mdev { uuid, .. } => uuid.to_string(),
            Target::Vgpu { vf } => vf.to_string(),
            Target::Vdpa { name } => name.as_str().to_string(),
        }),
        _ => None,
    }
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
    read: &LastRead,
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
    // Devices operations through hostdevd named lately, with their events'
    // stamps: the look after the operation tells of the same device again
    // (added, drift) once it has read the whole host, after the publisher
    // may already have begun the read that sees it.
    let mut told: VecDeque<(String, u64)> = VecDeque::new();
    loop {
        match events.next_event() {
            Ok(Some(e)) => {
                // Every change may be a prepared device's (one removed by
                // hand, a prepare's or unprepare's): health is cheap to read.
                if !matches!(e.what, EventKind::Failure { .. }) {
                    health.notify_one();
                }
                if let Some(id) = changed_device(&e.what) {
                    if told.len() >= TOLD {
                        told.pop_front();
                    }
                    told.push_back((id, e.unix_ms));
                }
                match wakes(&e.what) {
                    Wake::No => {}
                    Wake::Now if read.covers(e.unix_ms) => {}
                    Wake::Now => changed.notify_one(),
                    Wake::UnlessOurs(id) if ours.has(&id) => {}
                    Wake::UnlessOurs(id) => {
                        // Covered by a read begun after the operation that
                        // named this device, if one did, else after this.
                        let stamp = told
                            .iter()
                            .rev()
                            .find(|(t, _)| *t == id)
                            .map_or(e.unix_ms, |(_, ms)| *ms);
                        let (changed, ours, read) = (changed.clone(), ours.clone(), read.clone());
                        rt.spawn(async move {
                            tokio::time::sleep(SETTLE).await;
                            if !ours.has(&id) && !read.covers(stamp) {
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
pub async fn watch(
    socket: PathBuf,
    changed: Arc<Notify>,
    health: Arc<Notify>,
    ours: Ours,
    read: LastRead,
) {
    let mut last = String::new();
    let rt = tokio::runtime::Handle::current();
    loop {
        let (s, c, h, o, l, r) = (
            socket.clone(),
            changed.clone(),
            health.clone(),
            ours.clone(),
            read.clone(),
            rt.clone(),
        );
        let why = tokio::task::spawn_blocking(move || follow(&s, &c, &h, &o, &l, &r))
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
    use super::{changed_device, wakes, LastRead, Ours, Wake};
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
    fn an_operation_names_its_device_as_device_events_do() {
        use hostdev_api::{ErrorTarget, Target};
        let changed = |target| EventKind::Changed {
            operation: "/v1/mdev/start".into(),
            target,
            uid: 0,
            pid: 1,
        };
        let u = "5ca1ab1e-0000-4000-8000-000000000001";
        assert_eq!(
            changed_device(&changed(Some(ErrorTarget::Device(Target::Mdev {
                uuid: u.parse().unwrap(),
                parent: None,
            })))),
            Some(u.to_string())
        );
        assert_eq!(
            changed_device(&changed(Some(ErrorTarget::Device(Target::Vgpu {
                vf: "0000:41:00.4".parse().unwrap(),
            })))),
            Some("0000:41:00.4".to_string())
        );
        assert_eq!(changed_device(&changed(None)), None);
    }

    #[test]
    fn an_event_is_covered_only_by_a_read_begun_after_it() {
        let r = LastRead::default();
        assert!(!r.covers(0), "no read yet");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        r.begins();
        assert!(r.covers(now - 1000));
        assert!(!r.covers(now + 1000), "an event after the read began");
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
