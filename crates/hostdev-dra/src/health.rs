//! Device health for the kubelet: the `v1.DRAResourceHealth` service
//! (`NodeWatchResources`, a stream), which the kubelet opens when the
//! plugin's registration lists it and shows in each pod's status
//! (`allocatedResourcesStatus`, feature gate `ResourceHealthStatus`, beta
//! and on in 1.37). The report is hostdevd's `GET /v1/dra/health` (every
//! device prepared for a claim: there as made, gone, changed), read when
//! hostdevd tells of any change and every [`POLL`] besides; each stream
//! gets the whole report at once, again on every change and every
//! [`RESEND`] (the kubelet forgets a report after [`TIMEOUT`]). While
//! hostdevd cannot be reached, the devices last reported are sent as
//! unknown, saying why.
//!
//! Owns: the report's shape and the streams. Must not: decide what is
//! healthy (hostdevd does) or report a device no claim was prepared with.

use crate::daemon;
use crate::proto::health_v1 as pb;
use hostdev_api::{DraDeviceHealth, DraHealthQuery, DraHealthStatus};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{mpsc, watch, Notify};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// The service name the kubelet knows health v1 by.
pub const HEALTH_V1_SERVICE: &str = "v1.DRAResourceHealth";
/// How long the kubelet keeps a device's report (sent with each device).
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// How often every stream gets the whole report again.
pub const RESEND: Duration = Duration::from_secs(10);
/// How often hostdevd is asked when no event came (a device removed where
/// no uevent reaches hostdevd).
pub const POLL: Duration = Duration::from_secs(5);
/// The least time between two reads: a burst of prepares (each an event)
/// costs hostdevd one read a second, not one per event.
pub const GAP: Duration = Duration::from_secs(1);
/// The longest message the kubelet keeps, in bytes.
pub const MAX_MESSAGE: usize = 1024;

/// One published device's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The published device's name (in the node's pool).
    pub device: String,
    /// Its health.
    pub health: pb::HealthStatus,
    /// Why, when not healthy.
    pub message: String,
}

fn rank(h: pb::HealthStatus) -> u8 {
    match h {
        pb::HealthStatus::Healthy => 0,
        pb::HealthStatus::Unknown => 1,
        pb::HealthStatus::Unhealthy => 2,
    }
}

/// `m` cut to [`MAX_MESSAGE`] bytes at a character boundary, ending in
/// `...` when cut (the kubelet would cut it by bytes, perhaps inside a
/// character).
pub fn fit(m: &str) -> String {
    if m.len() <= MAX_MESSAGE {
        return m.to_string();
    }
    let mut end = MAX_MESSAGE - 3;
    while !m.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &m[..end])
}

/// The report from hostdevd's answer: one item per published device (the
/// worst, should two records name one), ordered by device name.
pub fn items(rows: &[DraDeviceHealth]) -> Vec<Item> {
    let mut by: BTreeMap<&str, Item> = BTreeMap::new();
    for r in rows {
        let health = match r.health {
            DraHealthStatus::Healthy => pb::HealthStatus::Healthy,
            DraHealthStatus::Unhealthy => pb::HealthStatus::Unhealthy,
            DraHealthStatus::Unknown => pb::HealthStatus::Unknown,
        };
        let it = Item {
            device: r.device.clone(),
            health,
            message: fit(&r.message),
        };
        match by.get(r.device.as_str()) {
            Some(old) if rank(old.health) >= rank(health) => {}
            _ => {
                by.insert(&r.device, it);
            }
        }
    }
    by.into_values().collect()
}

/// While hostdevd cannot be reached: the devices last reported, unknown.
pub fn unknown(last: &[Item], why: &str) -> Vec<Item> {
    last.iter()
        .map(|i| Item {
            device: i.device.clone(),
            health: pb::HealthStatus::Unknown,
            message: fit(&format!("hostdev cannot tell: {why}")),
        })
        .collect()
}

/// What a stream sends: every item, stamped `now`.
pub fn response(pool: &str, items: &[Item], now: SystemTime) -> pb::NodeWatchResourcesResponse {
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    pb::NodeWatchResourcesResponse {
        devices: items
            .iter()
            .map(|i| pb::DeviceHealth {
                device: Some(pb::DeviceIdentifier {
                    pool_name: pool.to_string(),
                    device_name: i.device.clone(),
                }),
                health: i.health.into(),
                last_updated_time: secs,
                health_check_timeout_seconds: i64::try_from(TIMEOUT.as_secs()).unwrap_or(30),
                message: i.message.clone(),
            })
            .collect(),
    }
}

/// The report as last read, and when hostdevd last answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// When it was read (or found unreadable).
    pub at: Instant,
    /// One item per device.
    pub items: Vec<Item>,
}

/// The report (`None` until hostdevd was first asked).
pub type Report = Option<Read>;

/// What a stream sends of `read` now: the report itself, or, when it was
/// not renewed for [`TIMEOUT`] (the reader stalled), every device unknown.
pub fn current(read: &Read, now: Instant) -> Vec<Item> {
    let age = now.saturating_duration_since(read.at);
    if age > TIMEOUT {
        unknown(
            &read.items,
            &format!("hostdevd's answer is {} s old", age.as_secs()),
        )
    } else {
        read.items.clone()
    }
}

/// The lines a change of report prints: one per device whose health
/// changed, or a count when more than five did.
fn changes(last: &[Item], next: &[Item]) -> Vec<String> {
    let mut lines = Vec::new();
    for it in next {
        let before = last.iter().find(|l| l.device == it.device);
        if before.map(|b| b.health) == Some(it.health) {
            continue;
        }
        match it.health {
            pb::HealthStatus::Healthy if before.is_some() => {
                lines.push(format!("device {} is healthy again", it.device));
            }
            pb::HealthStatus::Healthy => {}
            h => lines.push(format!(
                "device {} is {}: {}",
                it.device,
                h.as_str_name().to_lowercase(),
                it.message
            )),
        }
    }
    if lines.len() > 5 {
        let first = lines[0].clone();
        lines = vec![format!(
            "{} devices changed health; the first: {first}",
            lines.len()
        )];
    }
    lines
}

/// Reads hostdevd's health when `wake` is notified (at most once per
/// [`GAP`]) and every [`POLL`], for as long as the process runs, and keeps
/// `tx` current; says when devices turn unhealthy or unknown and when they
/// are healthy again, and when reading fails (once per distinct failure).
pub async fn read_loop(socket: PathBuf, tx: watch::Sender<Report>, wake: Arc<Notify>) {
    let mut failed = String::new();
    loop {
        let last_items = tx
            .borrow()
            .as_ref()
            .map(|r| r.items.clone())
            .unwrap_or_default();
        let next = match daemon::call(&socket, DraHealthQuery {}, Duration::from_secs(10)).await {
            Ok(rows) => {
                failed.clear();
                items(&rows)
            }
            Err(e) => {
                let why = e.to_string();
                if why != failed {
                    eprintln!("hostdev-dra: device health could not be read (tried again every {} s): {why}", POLL.as_secs());
                    failed = why.clone();
                }
                unknown(&last_items, &why)
            }
        };
        for l in changes(&last_items, &next) {
            eprintln!("hostdev-dra: {l}");
        }
        // Stamped now even when hostdevd did not answer: the report then
        // says so, which is news; only a stalled reader leaves it old.
        let at = Instant::now();
        tx.send_if_modified(|cur| {
            let changed = cur.as_ref().map(|r| &r.items) != Some(&next);
            *cur = Some(Read { at, items: next });
            changed
        });
        tokio::time::sleep(GAP).await;
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(POLL.saturating_sub(GAP)) => {}
        }
    }
}

/// The `v1.DRAResourceHealth` service for the node's pool.
pub struct HealthService {
    /// The pool's name (the node's).
    pub pool: String,
    /// The report [`read_loop`] keeps.
    pub report: watch::Receiver<Report>,
}

#[tonic::async_trait]
impl pb::dra_resource_health_server::DraResourceHealth for HealthService {
    type NodeWatchResourcesStream = ReceiverStream<Result<pb::NodeWatchResourcesResponse, Status>>;

    async fn node_watch_resources(
        &self,
        _req: Request<pb::NodeWatchResourcesRequest>,
    ) -> Result<Response<Self::NodeWatchResourcesStream>, Status> {
        let (tx, rx) = mpsc::channel(4);
        let mut report = self.report.clone();
        let pool = self.pool.clone();
        tokio::spawn(async move {
            // Nothing is sent before hostdevd was first asked (an empty
            // report would tell the kubelet nothing); a kubelet gone
            // meanwhile ends the wait.
            tokio::select! {
                r = report.wait_for(Option::is_some) => if r.is_err() { return },
                () = tx.closed() => return,
            }
            loop {
                let now = report
                    .borrow_and_update()
                    .as_ref()
                    .map(|r| current(r, Instant::now()))
                    .unwrap_or_default();
                if tx
                    .send(Ok(response(&pool, &now, SystemTime::now())))
                    .await
                    .is_err()
                {
                    return;
                }
                tokio::select! {
                    r = report.changed() => if r.is_err() { return },
                    () = tokio::time::sleep(RESEND) => {}
                    () = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostdev_api::{DraClaim, Kind};

    fn row(device: &str, health: DraHealthStatus, message: &str) -> DraDeviceHealth {
        DraDeviceHealth {
            claim: DraClaim {
                uid: "00000000-0000-4000-8000-000000000001".parse().unwrap(),
                namespace: "ns".into(),
                name: "c".into(),
            },
            request: "r".into(),
            device: device.into(),
            kind: Kind::Mdev,
            id: "x".into(),
            health,
            message: message.into(),
        }
    }

    #[test]
    fn the_report_has_one_item_per_device_the_worst_and_messages_fit() {
        let long = "é".repeat(600);
        let got = items(&[
            row("b", DraHealthStatus::Healthy, ""),
            row("a", DraHealthStatus::Unhealthy, &long),
            row("b", DraHealthStatus::Unhealthy, "gone"),
            row("b", DraHealthStatus::Unknown, "?"),
        ]);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].device, "a");
        assert!(got[0].message.len() <= MAX_MESSAGE && got[0].message.ends_with("..."));
        assert_eq!(
            (got[1].health, got[1].message.as_str()),
            (pb::HealthStatus::Unhealthy, "gone")
        );
        let r = response(
            "node-1",
            &got,
            SystemTime::UNIX_EPOCH + Duration::from_secs(7),
        );
        let d = &r.devices[1];
        let id = d.device.as_ref().unwrap();
        assert_eq!(
            (id.pool_name.as_str(), id.device_name.as_str()),
            ("node-1", "b")
        );
        assert_eq!((d.health, d.last_updated_time), (2, 7));
        assert_eq!(d.health_check_timeout_seconds, 30);
        // hostdevd unreachable: the same devices, unknown, saying why.
        let u = unknown(&got, "hostdevd does not answer");
        assert!(u.iter().all(|i| i.health == pb::HealthStatus::Unknown
            && i.message == "hostdev cannot tell: hostdevd does not answer"));
        assert_eq!(u.len(), 2);
    }

    #[test]
    fn a_report_not_renewed_in_time_is_sent_as_unknown_and_many_changes_as_a_count() {
        let t0 = Instant::now();
        let it = |d: &str, h| Item {
            device: d.into(),
            health: h,
            message: String::new(),
        };
        let read = Read {
            at: t0,
            items: vec![it("a", pb::HealthStatus::Healthy)],
        };
        assert_eq!(current(&read, t0 + TIMEOUT), read.items);
        let stale = current(&read, t0 + TIMEOUT + Duration::from_secs(5));
        assert_eq!(stale[0].health, pb::HealthStatus::Unknown);
        assert_eq!(
            stale[0].message,
            "hostdev cannot tell: hostdevd's answer is 35 s old"
        );
        let before: Vec<Item> = (0..8)
            .map(|i| it(&format!("d{i}"), pb::HealthStatus::Healthy))
            .collect();
        let after = unknown(&before, "down");
        assert_eq!(
            changes(&before, &after),
            ["8 devices changed health; the first: device d0 is unknown: hostdev cannot tell: down"]
        );
        assert_eq!(
            changes(&after, &before[..1]),
            ["device d0 is healthy again"]
        );
        assert!(
            changes(&[], &before).is_empty(),
            "a new healthy device says nothing"
        );
    }

    #[tokio::test]
    async fn a_stream_waits_for_the_first_report_then_sends_each_change() {
        use pb::dra_resource_health_server::DraResourceHealth;
        use tokio_stream::StreamExt;
        let (tx, rx) = watch::channel(None);
        let svc = HealthService {
            pool: "n".into(),
            report: rx,
        };
        let mut s = svc
            .node_watch_resources(Request::new(pb::NodeWatchResourcesRequest {}))
            .await
            .unwrap()
            .into_inner();
        let early = tokio::time::timeout(Duration::from_millis(100), s.next()).await;
        assert!(early.is_err(), "sent before the first report: {early:?}");
        let ok = Item {
            device: "d".into(),
            health: pb::HealthStatus::Healthy,
            message: String::new(),
        };
        tx.send(Some(Read {
            at: Instant::now(),
            items: vec![ok.clone()],
        }))
        .unwrap();
        let first = s.next().await.unwrap().unwrap();
        assert_eq!(first.devices[0].health, 1);
        tx.send(Some(Read {
            at: Instant::now(),
            items: vec![Item {
                health: pb::HealthStatus::Unhealthy,
                message: "gone".into(),
                ..ok.clone()
            }],
        }))
        .unwrap();
        let second = s.next().await.unwrap().unwrap();
        assert_eq!(
            (second.devices[0].health, second.devices[0].message.as_str()),
            (2, "gone")
        );
    }
}
