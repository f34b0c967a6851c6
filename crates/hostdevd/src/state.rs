//! What the daemon's tasks share: the configuration, the kernel it serves
//! (the real one, or fakes in a test), the last snapshot, the memo of
//! definitions and devices, the replies kept for reads, the event log and
//! its subscribers, the metrics, and the guard that lets SIGTERM wait for
//! operations in flight.
//! Owns: publishing events (numbered, kept for late subscribers), keeping
//! replies while what they depend on is unchanged, and running one
//! blocking core operation under the in-flight guard. Must not: decide when
//! to restore (the watcher does) or speak HTTP (the server does).

use crate::config::Config;
use crate::metrics::Metrics;
use crate::snapshot::Snapshot;
use axum::body::Bytes;
use hostdev_core::api::events::{Event, EventKind};
use hostdev_core::{Devices, Freshness, Kernel, Memo, RealKernel};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, RwLock};

/// Events kept for subscribers that ask for what they missed.
const HISTORY: usize = 1024;

/// Why the watcher should look at the host again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nudge {
    /// A request changed something: refresh, no restore.
    Changed,
}

/// The host as one operation sees it.
pub type HostOf<K> = Devices<(
    <K as Kernel>::Mdev,
    <K as Kernel>::Sriov,
    <K as Kernel>::Vdpa,
)>;

/// State shared by the server, the watcher and the signal handler.
pub struct Shared<K: Kernel = RealKernel> {
    /// Settings.
    pub config: Config,
    /// The kernel operations run on.
    pub kernel: K,
    /// The root prefix (`HOSTDEV_ROOT`, else `/`).
    pub root: PathBuf,
    /// The readers' group id, if the group exists.
    pub readers: Option<u32>,
    /// Metrics.
    pub metrics: Metrics,
    /// The last look at the host.
    pub snapshot: Mutex<Arc<Snapshot>>,
    /// Held shared by every operation, exclusively by shutdown.
    pub inflight: Arc<RwLock<()>>,
    /// Tells the watcher to look again.
    pub nudge: mpsc::Sender<Nudge>,
    history: Mutex<VecDeque<Event>>,
    events: broadcast::Sender<Event>,
    seq: AtomicU64,
    /// Set once shutdown begins; streams end when it changes.
    pub stopping: tokio::sync::watch::Sender<bool>,
    /// mdev definitions and running mdevs kept between operations.
    pub memo: Memo,
    /// Replies kept for reads, by request (path and query), with what each
    /// was made from; built under the lock, so concurrent requests wait for
    /// one build.
    kept: Mutex<HashMap<String, Kept>>,
}

/// Why an operation did not run to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotRun {
    /// Shutdown had begun: it was not started.
    Stopping,
    /// It panicked; its thread is gone, the daemon goes on.
    Panicked,
}

/// At most this many read replies are kept (distinct requests).
const KEPT: usize = 64;

/// A reply kept for the next request that finds the host the same.
struct Kept {
    freshness: Freshness,
    json: Bytes,
}

impl Shared<RealKernel> {
    /// The real host under `root`.
    pub fn real(
        config: Config,
        root: PathBuf,
        readers: Option<u32>,
    ) -> (Arc<Shared>, mpsc::Receiver<Nudge>) {
        let ready_timeout = std::env::var("HOSTDEV_READY_TIMEOUT_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis);
        let kernel = RealKernel {
            root: root.clone(),
            ready_timeout,
        };
        Shared::new(config, kernel, readers)
    }
}

impl<K: Kernel> Shared<K> {
    /// New shared state over `kernel` and the receiver of nudges (the watcher's).
    pub fn new(
        config: Config,
        kernel: K,
        readers: Option<u32>,
    ) -> (Arc<Shared<K>>, mpsc::Receiver<Nudge>) {
        let (tx, rx) = mpsc::channel(64);
        let (events, _) = broadcast::channel(HISTORY);
        let root = kernel.root().to_path_buf();
        let s = Shared {
            config,
            kernel,
            root,
            readers,
            metrics: Metrics::new(),
            snapshot: Mutex::new(Arc::new(Snapshot::default())),
            inflight: Arc::new(RwLock::new(())),
            nudge: tx,
            history: Mutex::new(VecDeque::with_capacity(HISTORY)),
            events,
            seq: AtomicU64::new(0),
            stopping: tokio::sync::watch::channel(false).0,
            memo: Memo::default(),
            kept: Mutex::new(HashMap::new()),
        };
        (Arc::new(s), rx)
    }

    /// The host for one operation: netlink opened fresh (a reloaded module
    /// gets a new family id), mdev definitions and running mdevs through
    /// the daemon's memo (see [`Memo`]).
    pub fn system(&self) -> HostOf<K> {
        self.kernel.devices(&self.memo)
    }

    /// A read's reply as JSON: the kept one when `freshness` (read before
    /// building) equals the one it was made with, else `build`'s, kept for
    /// the next request with the same `key`. Without a freshness reading
    /// nothing is kept.
    pub fn kept_or<E>(
        &self,
        key: &str,
        freshness: Option<Freshness>,
        build: impl FnOnce() -> Result<Bytes, E>,
    ) -> Result<Bytes, E> {
        let Some(freshness) = freshness else {
            return build();
        };
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = kept.get(key) {
            if k.freshness == freshness {
                self.metrics.inventory_reused();
                return Ok(k.json.clone());
            }
        }
        let json = build()?;
        if kept.len() >= KEPT && !kept.contains_key(key) {
            kept.clear();
        }
        kept.insert(
            key.to_string(),
            Kept {
                freshness,
                json: json.clone(),
            },
        );
        Ok(json)
    }

    /// Runs a blocking core operation off the async threads, counted as in
    /// flight so that shutdown waits for it; `None` once shutdown began.
    pub async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Shared<K>) -> T + Send + 'static,
    ) -> Option<T> {
        // The guard moves into the blocking task: a client that goes away
        // drops this future, not the operation, and shutdown still waits.
        let guard = Arc::clone(&self.inflight).try_read_owned().ok()?;
        if *self.stopping.borrow() {
            return None;
        }
        let me = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let r = f(&me);
            drop(guard);
            r
        })
        .await
        .ok()
    }

    /// Runs one operation of a request as [`Shared::run`] does, telling a
    /// shutdown from a panic.
    pub async fn run_op<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Shared<K>) -> T + Send + 'static,
    ) -> Result<T, NotRun> {
        let guard = Arc::clone(&self.inflight)
            .try_read_owned()
            .map_err(|_| NotRun::Stopping)?;
        if *self.stopping.borrow() {
            return Err(NotRun::Stopping);
        }
        let me = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let r = f(&me);
            drop(guard);
            r
        })
        .await
        .map_err(|_| NotRun::Panicked)
    }

    /// Numbers, keeps and sends one event.
    pub fn publish(&self, what: EventKind) {
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let mut h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let ev = Event {
            seq: self.seq.fetch_add(1, Ordering::SeqCst) + 1,
            unix_ms,
            what,
        };
        self.metrics.event(ev.what.name());
        tracing::debug!(seq = ev.seq, "event {:?}", ev.what);
        if h.len() == HISTORY {
            h.pop_front();
        }
        h.push_back(ev.clone());
        let _ = self.events.send(ev);
    }

    /// Events after `since` still kept, and a receiver for the ones to come
    /// (taken together, so none falls between).
    pub fn subscribe(&self, since: Option<u64>) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let past = match since {
            Some(s) => h.iter().filter(|e| e.seq > s).cloned().collect(),
            None => Vec::new(),
        };
        (past, self.events.subscribe())
    }

    /// The last snapshot.
    pub fn last(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot.lock().unwrap_or_else(|p| p.into_inner()))
    }
}
