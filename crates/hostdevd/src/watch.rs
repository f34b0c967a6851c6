//! The watcher: looks at the host at start, on kernel events (debounced) and
//! every resync interval; restores when a parent, PF or management device
//! appears (and on drift when configured to repair); publishes device
//! changes, restores and drift as events; keeps the metrics' gauges current.
//! Owns: when to look and when to restore. Must not: wait with a fixed sleep
//! for anything to become ready (the core polls with bounds), or act while
//! shutdown is under way.

use crate::config::HostReconcile;
use crate::snapshot::Snapshot;
use crate::state::{Nudge, Shared};
use hostdev_core::api::events::EventKind;
use hostdev_core::api::{DriftKind, HostApplyRequest, HostFileDoc, Outcome, RestoreReport};
use hostdev_core::restore::error_body;
use hostdev_core::Kernel;
use hostdev_model::host::HostFile;
use hostdev_uevent::{Uevent, UeventSource};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What a kernel event asks of the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Wants {
    /// Nothing.
    Nothing,
    /// Look again (a device came or went).
    Refresh,
    /// Restore, then look again (a parent, PF, VF driver or module arrived).
    Restore,
}

/// Sorts one kernel event.
pub fn classify(u: &Uevent) -> Wants {
    let sub = u.subsystem().unwrap_or("");
    match (u.action.as_str(), sub) {
        // An mdev parent registered with the mdev core.
        ("change", _) if u.get("MDEV_STATE") == Some("registered") => Wants::Restore,
        ("change", _) if u.get("MDEV_STATE").is_some() => Wants::Refresh,
        // A PF or VF bound to its driver (nvidia, vfio-pci), or an auxiliary
        // device (a NIC's vDPA function) bound: parents that may take devices.
        ("bind", "pci" | "auxiliary") => Wants::Restore,
        // A module finished loading (vdpa_sim_net, mtty, nvidia…), or a PCI
        // function (a VF) appeared.
        ("add", "module" | "pci") => Wants::Restore,
        ("add" | "remove" | "unbind", "mdev" | "vdpa" | "pci" | "auxiliary") => Wants::Refresh,
        ("remove", "module") => Wants::Refresh,
        // The socket overflowed: events were lost.
        ("overflow", _) => Wants::Restore,
        _ => Wants::Nothing,
    }
}

/// Reads kernel events on a thread of its own and hands on those that matter.
pub fn spawn_uevents<K: Kernel>(
    mut source: Box<dyn UeventSource>,
    shared: Arc<Shared<K>>,
) -> mpsc::Receiver<Wants> {
    let (tx, rx) = mpsc::channel(1024);
    std::thread::Builder::new()
        .name("uevents".into())
        .spawn(move || loop {
            if *shared.stopping.borrow() {
                return;
            }
            match source.recv(Duration::from_millis(500)) {
                Ok(Some(u)) => {
                    let w = classify(&u);
                    if w != Wants::Nothing {
                        tracing::debug!(action = %u.action, devpath = %u.devpath, "kernel event");
                        shared.metrics.uevent();
                        if tx.blocking_send(w).is_err() {
                            return;
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!("reading kernel events failed: {e}; resync goes on");
                    return;
                }
            }
        })
        .ok();
    rx
}

/// How long after a look that requests caused the next one may start:
/// `debounce`, or four times what that look cost when that is longer.
pub fn request_gap(debounce: Duration, cost: Duration) -> Duration {
    debounce.max(cost.saturating_mul(4))
}

/// Runs until shutdown.
pub async fn watch<K: Kernel>(
    s: Arc<Shared<K>>,
    mut nudges: mpsc::Receiver<Nudge>,
    mut uevents: Option<mpsc::Receiver<Wants>>,
) {
    let mut stopping = s.stopping.subscribe();
    let mut prev: Option<Arc<Snapshot>> = None;
    let at_start = s.config.restore_on_start;
    cycle(&s, &mut prev, "start", at_start).await;
    let mut tick = tokio::time::interval(s.config.resync());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let debounce = Duration::from_millis(s.config.debounce_ms);
    let pools_every = s.config.pool_reconcile_secs;
    let mut last_request_look: Option<(Instant, Duration)> = None;
    let mut pools_tick = tokio::time::interval(Duration::from_secs(pools_every.max(1)));
    pools_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let host_on = s.config.host_reconcile != HostReconcile::Off;
    let mut host_tick =
        tokio::time::interval(Duration::from_secs(s.config.host_reconcile_secs.max(1)));
    host_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut host_last: Option<(usize, usize)> = None;
    loop {
        tokio::select! {
            _ = stopping.changed() => return,
            _ = pools_tick.tick(), if pools_every > 0 => reconcile_pools(&s).await,
            _ = host_tick.tick(), if host_on => reconcile_host(&s, &mut host_last).await,
            _ = tick.tick() => cycle(&s, &mut prev, "resync", false).await,
            Some(_) = nudges.recv() => {
                // Requests are looked at no sooner than `debounce_ms`, or
                // four times what the last such look cost, after it: the
                // first change is seen at once, a stream of them (a pool
                // handing out devices to 64 clients, a burst of DRA
                // prepares) costs one look per period, not one per
                // request, and on a large host (a look of 16 GPUs' types
                // and devices: 150-250 ms on the simulated one) looks take
                // at most a fifth of the daemon's time while the requests
                // that caused them wait for the same CPUs and sysfs.
                if let Some((at, cost)) = last_request_look {
                    tokio::time::sleep_until((at + request_gap(debounce, cost)).into()).await;
                }
                while nudges.try_recv().is_ok() {}
                let began = Instant::now();
                cycle(&s, &mut prev, "request", false).await;
                last_request_look = Some((Instant::now(), began.elapsed()));
            }
            Some(first) = async { match uevents.as_mut() { Some(r) => r.recv().await, None => std::future::pending().await } } => {
                // Debounce: act once the burst is quiet, or after 2 s at most.
                let mut want = first;
                let started = Instant::now();
                if let Some(r) = uevents.as_mut() {
                    while started.elapsed() < Duration::from_secs(2) {
                        match tokio::time::timeout(debounce, r.recv()).await {
                            Ok(Some(w)) => want = want.max(w),
                            _ => break,
                        }
                    }
                }
                cycle(&s, &mut prev, "uevent", want == Wants::Restore).await;
            }
        }
    }
}

fn interesting(r: &RestoreReport) -> RestoreReport {
    RestoreReport {
        rows: r
            .rows
            .iter()
            .filter(|row| row.outcome != Outcome::AlreadyRunning)
            .filter(|row| row.outcome != Outcome::ParentAbsent)
            .cloned()
            .collect(),
        unavailable: Vec::new(),
    }
}

async fn look<K: Kernel>(s: &Arc<Shared<K>>) -> Option<Snapshot> {
    match s.run(|sh| Snapshot::take(&sh.system())).await? {
        Ok(snap) => Some(snap),
        Err(e) => {
            s.metrics.error(e.code());
            s.publish(EventKind::Failure {
                during: "looking at the host".into(),
                error: error_body(&e),
            });
            None
        }
    }
}

/// Reconciles the pools and logs what changed (a host without pools: nothing).
async fn reconcile_pools<K: Kernel>(s: &Arc<Shared<K>>) {
    match s.run(|sh| sh.system().reconcile()).await {
        Some(Ok(r)) => {
            for row in &r.rows {
                tracing::info!(pool = %row.pool, id = %row.id, action = %row.action, "pool reconcile: {}", row.why);
            }
        }
        Some(Err(e)) => tracing::warn!("pool reconcile failed: {}", hostdev_core::chain(&e)),
        None => {}
    }
}

/// Looks at the host file: plans it (report) or applies it (apply), and
/// publishes a `host_file` event when the answer changes (report) or an
/// apply did something. A missing file is no host file: nothing to do.
async fn reconcile_host<K: Kernel>(s: &Arc<Shared<K>>, last: &mut Option<(usize, usize)>) {
    let path = s.root.join(
        s.config
            .host_file
            .strip_prefix("/")
            .unwrap_or(&s.config.host_file),
    );
    // A regular file within the CLI's bound: a FIFO there would hold a
    // worker thread forever.
    let limits = hostdev_fs::Limits::at_most(hostdev_core::HOST_FILE_LIMIT);
    let bytes = match hostdev_fs::read_regular_within(&path, limits) {
        Ok(Some(b)) => b,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!("cannot read the host file {}: {e}", path.display());
            return;
        }
    };
    let parsed = std::str::from_utf8(&bytes)
        .map_err(|_| "it is not UTF-8 text".to_string())
        .and_then(|t| HostFile::parse(t).map_err(|e| e.to_string()));
    let file = match parsed {
        Ok(f) => HostFileDoc {
            path: path.display().to_string(),
            file: f,
        },
        Err(e) => {
            tracing::warn!("the host file {} cannot be used: {e}", path.display());
            s.metrics.error("host.bad_file");
            return;
        }
    };
    let mode = s.config.host_reconcile;
    let answer = s
        .run(move |sh| match mode {
            HostReconcile::Apply => sh
                .system()
                .host_apply(&HostApplyRequest {
                    file: Some(file),
                    force: vec![],
                })
                .map(|r| {
                    (
                        r.count(hostdev_api::ApplyResult::Done),
                        r.count(hostdev_api::ApplyResult::Blocked),
                        r.failed() + r.undone(),
                    )
                }),
            _ => sh
                .system()
                .host_plan(Some(&file))
                .map(|p| (p.changes.len(), p.blocked.len(), 0)),
        })
        .await;
    let (changes, blocked, failed) = match answer {
        Some(Ok(x)) => x,
        Some(Err(e)) => {
            tracing::warn!("host file: {}", hostdev_core::chain(&e));
            s.metrics.error(e.code());
            return;
        }
        None => return,
    };
    let pending = match mode {
        HostReconcile::Apply => (0, blocked),
        _ => (changes, blocked),
    };
    s.metrics.host_file(pending.0, pending.1);
    let news = match mode {
        HostReconcile::Apply => changes + failed > 0 || last.is_none_or(|l| l != pending),
        _ => last.is_none_or(|l| l != pending),
    };
    *last = Some(pending);
    if news && (changes + blocked + failed > 0 || mode == HostReconcile::Report) {
        tracing::info!(changes, blocked, failed, "host file ({mode:?})");
        s.publish(EventKind::HostFile {
            mode: if mode == HostReconcile::Apply {
                "apply"
            } else {
                "report"
            }
            .into(),
            changes,
            blocked,
            failed,
        });
    }
}

/// Restores every auto-start definition now and publishes what it did.
pub async fn restore<K: Kernel>(s: &Arc<Shared<K>>, trigger: &str) -> Option<RestoreReport> {
    let report = s.run(|sh| sh.system().restore(Duration::ZERO)).await?;
    report_restore(s, trigger, &report);
    Some(report)
}

/// Counts a restore's outcomes and publishes the rows that did something.
pub fn report_restore<K: Kernel>(s: &Shared<K>, trigger: &str, report: &RestoreReport) {
    s.metrics.restored(report);
    let shown = interesting(report);
    if !shown.rows.is_empty() {
        tracing::info!(
            trigger,
            started = shown
                .rows
                .iter()
                .filter(|r| r.outcome == Outcome::Started)
                .count(),
            failed = report.failed(),
            "restored auto-start devices"
        );
        s.publish(EventKind::Restored {
            trigger: trigger.into(),
            report: shown,
        });
    }
}

async fn cycle<K: Kernel>(
    s: &Arc<Shared<K>>,
    prev: &mut Option<Arc<Snapshot>>,
    trigger: &str,
    mut act: bool,
) {
    let Some(mut snap) = look(s).await else {
        return;
    };
    if let Some(p) = prev.as_ref() {
        let before = p.parents();
        let appeared: Vec<_> = snap.parents().difference(&before).cloned().collect();
        if !appeared.is_empty() {
            tracing::info!(?appeared, "parents appeared");
            act = true;
        }
    }
    if s.config.repair_drift
        && snap
            .drift
            .iter()
            .any(|(_, k)| *k == DriftKind::AutoNotRunning)
    {
        act = true;
    }
    if act {
        if restore(s, trigger).await.is_none() {
            return;
        }
        match look(s).await {
            Some(again) => snap = again,
            None => return,
        }
    }
    if let Some(p) = prev.as_ref() {
        let (was, is) = (p.running(), snap.running());
        for d in is.difference(&was) {
            s.publish(EventKind::DeviceAdded { device: d.clone() });
        }
        for d in was.difference(&is) {
            s.publish(EventKind::DeviceRemoved { device: d.clone() });
        }
    }
    let none = Default::default();
    let was = prev.as_ref().map(|p| &p.drift).unwrap_or(&none);
    let is = &snap.drift;
    for (d, k) in is.difference(was) {
        tracing::warn!(kind = %d.kind, id = %d.id, parent = %d.parent, drift = k.as_str(), "drift");
        s.publish(EventKind::Drift {
            device: d.clone(),
            drift: *k,
        });
    }
    for (d, k) in was.difference(is) {
        s.publish(EventKind::DriftResolved {
            device: d.clone(),
            drift: *k,
        });
    }
    s.metrics.observe(&snap);
    let snap = Arc::new(snap);
    *s.snapshot.lock().unwrap_or_else(|p| p.into_inner()) = Arc::clone(&snap);
    *prev = Some(snap);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(msg: &[u8]) -> Uevent {
        Uevent::parse(msg).unwrap()
    }

    #[test]
    fn looks_after_requests_are_spaced_by_the_debounce_or_four_times_their_cost() {
        let ms = Duration::from_millis;
        assert_eq!(request_gap(ms(250), ms(3)), ms(250));
        assert_eq!(request_gap(ms(250), ms(200)), ms(800));
        assert_eq!(request_gap(ms(0), Duration::MAX), Duration::MAX);
    }

    #[test]
    fn kernel_events_are_sorted() {
        assert_eq!(
            classify(&ev(
                b"change@/devices/virtual/mtty/mtty\0SUBSYSTEM=mtty\0MDEV_STATE=registered"
            )),
            Wants::Restore
        );
        assert_eq!(
            classify(&ev(b"add@/module/vdpa_sim_net\0SUBSYSTEM=module")),
            Wants::Restore
        );
        assert_eq!(
            classify(&ev(
                b"bind@/devices/pci0000:40/0000:41:00.4\0SUBSYSTEM=pci\0DRIVER=nvidia"
            )),
            Wants::Restore
        );
        // Our own creations: a refresh, never another restore.
        assert_eq!(
            classify(&ev(b"add@/devices/virtual/mtty/mtty/83b8f4f2-509f-382f-3c1e-e6bfe0fa1001\0SUBSYSTEM=mdev")),
            Wants::Refresh
        );
        assert_eq!(
            classify(&ev(b"bind@/devices/virtual/mtty/mtty/83b8f4f2-509f-382f-3c1e-e6bfe0fa1001\0SUBSYSTEM=mdev\0DRIVER=vfio_mdev")),
            Wants::Nothing
        );
        assert_eq!(
            classify(&ev(b"add@/devices/virtual/net/lo\0SUBSYSTEM=net")),
            Wants::Nothing
        );
    }
}
