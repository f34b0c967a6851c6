//! What the daemon's tasks share: the configuration, the host's root, the
//! last snapshot, the memo of definitions and devices, the event log and its subscribers, the metrics, and the
//! guard that lets SIGTERM wait for operations in flight.
//! Owns: publishing events (numbered, kept for late subscribers) and running
//! one blocking core operation under the in-flight guard. Must not: decide
//! when to restore (the watcher does) or speak HTTP (the server does).

use crate::config::Config;
use crate::metrics::Metrics;
use crate::snapshot::Snapshot;
use axum::body::Bytes;
use hostdev_core::api::events::{Event, EventKind};
use hostdev_core::api::Inventory;
use hostdev_core::inventory::MdevFingerprint;
use hostdev_core::{CoreError, Memo, System};
use std::collections::VecDeque;
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

/// State shared by the server, the watcher and the signal handler.
pub struct Shared {
    /// Settings.
    pub config: Config,
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
    /// How long the core waits for a created device to be ready.
    pub ready_timeout: Option<Duration>,
    /// mdev definitions and running mdevs kept between operations.
    pub memo: Memo,
    /// The last inventory answered, as sent, with what it was made from.
    inventory: Mutex<Option<KeptInventory>>,
}

/// An inventory reply kept for the next request that finds the host the same.
struct KeptInventory {
    mdevs: MdevFingerprint,
    others: Inventory,
    json: Bytes,
}

impl Shared {
    /// New shared state and the receiver of nudges (the watcher's).
    pub fn new(
        config: Config,
        root: PathBuf,
        readers: Option<u32>,
    ) -> (Arc<Shared>, mpsc::Receiver<Nudge>) {
        let (tx, rx) = mpsc::channel(64);
        let (events, _) = broadcast::channel(HISTORY);
        let ready_timeout = std::env::var("HOSTDEV_READY_TIMEOUT_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis);
        let s = Shared {
            config,
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
            ready_timeout,
            memo: Memo::default(),
            inventory: Mutex::new(None),
        };
        (Arc::new(s), rx)
    }

    /// The host on its real interfaces for one operation: netlink opened
    /// fresh (a reloaded module gets a new family id), mdev definitions and
    /// running mdevs through the daemon's memo (see [`Memo`]).
    pub fn system(&self) -> System {
        let mut s = System::remembering(&self.root, &self.memo);
        if let Some(t) = self.ready_timeout {
            s.mdev.ready_timeout = t;
        }
        s
    }

    /// `GET /v1/devices` as JSON. The mdev rows (thousands on a large host)
    /// are answered from the last reply when their fingerprint, taken before
    /// reading, is unchanged and the vDPA and vGPU rows (always read) are the
    /// same; anything else builds the reply anew.
    pub fn inventory_json(&self) -> Result<Result<Bytes, serde_json::Error>, CoreError> {
        let sys = self.system();
        let mdevs = sys.mdev_fingerprint();
        let others = sys.other_kinds();
        let mut kept = self.inventory.lock().unwrap_or_else(|p| p.into_inner());
        if let (Some(k), Some(fp)) = (kept.as_ref(), mdevs) {
            if k.mdevs == fp && k.others == others {
                self.metrics.inventory_reused();
                return Ok(Ok(k.json.clone()));
            }
        }
        // Built under the lock: concurrent requests wait for one build.
        let inv = sys.inventory_with(others.clone())?;
        let json = match serde_json::to_vec(&inv) {
            Ok(j) => Bytes::from(j),
            // Not kept; the caller reports it.
            Err(e) => return Ok(Err(e)),
        };
        *kept = mdevs.map(|mdevs| KeptInventory {
            mdevs,
            others,
            json: json.clone(),
        });
        Ok(Ok(json))
    }

    /// Runs a blocking core operation off the async threads, counted as in
    /// flight so that shutdown waits for it; `None` once shutdown began.
    pub async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Shared) -> T + Send + 'static,
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
