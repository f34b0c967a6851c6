//! `/metrics` in Prometheus text format: capacity per parent and type,
//! devices by kind and state, definitions by kind and start policy, drift,
//! restore outcomes, request latency, errors by code, events handled.
//! Owns: the metric families and how a snapshot sets them. Must not: read
//! the host itself (the watcher hands it snapshots).

use crate::snapshot::Snapshot;
use hostdev_core::api::{Outcome, RestoreReport};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

macro_rules! labels {
    ($name:ident { $($f:ident),* }) => {
        #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
        struct $name { $($f: String),* }
    };
}
labels!(ParentType { parent, r#type });
labels!(PfType { pf, r#type });
labels!(KindState { kind, state });
labels!(KindStart { kind, start });
labels!(KindDrift { kind, drift });
labels!(KindOutcome { kind, outcome });
labels!(PathL { path });
labels!(CodeL { code });
labels!(TypeL { r#type });
labels!(StateL { state });

fn latency() -> Histogram {
    // 100 µs … ~3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// Every metric the daemon exports.
pub struct Metrics {
    registry: Registry,
    mdev_available: Family<ParentType, Gauge>,
    vgpu_free: Family<PfType, Gauge>,
    devices: Family<KindState, Gauge>,
    definitions: Family<KindStart, Gauge>,
    drift: Family<KindDrift, Gauge>,
    restores: Family<KindOutcome, Counter>,
    requests: Family<PathL, Histogram, fn() -> Histogram>,
    errors: Family<CodeL, Counter>,
    events: Family<TypeL, Counter>,
    uevents: Counter,
    inventory_reused: Counter,
    host_file: Family<StateL, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every family.
    pub fn new() -> Metrics {
        let mut r = Registry::default();
        let m = Metrics {
            mdev_available: Family::default(),
            vgpu_free: Family::default(),
            devices: Family::default(),
            definitions: Family::default(),
            drift: Family::default(),
            restores: Family::default(),
            requests: Family::new_with_constructor(latency),
            errors: Family::default(),
            events: Family::default(),
            uevents: Counter::default(),
            inventory_reused: Counter::default(),
            host_file: Family::default(),
            registry: Registry::default(),
        };
        r.register(
            "hostdev_mdev_available_instances",
            "Instances of an mdev type a parent can still create",
            m.mdev_available.clone(),
        );
        r.register(
            "hostdev_vgpu_free_vfs",
            "VFs of a PF that can take a vGPU type now",
            m.vgpu_free.clone(),
        );
        r.register(
            "hostdev_devices",
            "Devices by kind and state",
            m.devices.clone(),
        );
        r.register(
            "hostdev_definitions",
            "Definitions by kind and start policy",
            m.definitions.clone(),
        );
        r.register(
            "hostdev_drift",
            "Devices that differ from their definitions",
            m.drift.clone(),
        );
        r.register(
            "hostdev_restore_outcomes",
            "Auto-start definitions restored, by kind and outcome",
            m.restores.clone(),
        );
        r.register(
            "hostdev_request_duration_seconds",
            "API request latency by path",
            m.requests.clone(),
        );
        r.register(
            "hostdev_errors",
            "Failed requests and background operations by error code",
            m.errors.clone(),
        );
        r.register(
            "hostdev_events",
            "Events published, by type",
            m.events.clone(),
        );
        r.register(
            "hostdev_uevents",
            "Kernel device events that led the daemon to act",
            m.uevents.clone(),
        );
        r.register(
            "hostdev_inventory_reused",
            "Inventory requests answered from the last reply (nothing had changed)",
            m.inventory_reused.clone(),
        );
        r.register(
            "hostdev_host_file_pending",
            "Changes the host file asks for at the last look, by state (change, blocked)",
            m.host_file.clone(),
        );
        Metrics { registry: r, ..m }
    }

    /// Sets the gauges from a fresh look at the host.
    pub fn observe(&self, s: &Snapshot) {
        self.mdev_available.clear();
        for (p, ts) in &s.mdev_types {
            for t in ts {
                self.mdev_available
                    .get_or_create(&ParentType {
                        parent: p.to_string(),
                        r#type: t.type_id.to_string(),
                    })
                    .set(t.available_instances);
            }
        }
        self.vgpu_free.clear();
        for pf in &s.vgpu_types {
            for t in &pf.types {
                self.vgpu_free
                    .get_or_create(&PfType {
                        pf: pf.pf.to_string(),
                        r#type: t.id.to_string(),
                    })
                    .set(t.free_vfs as i64);
            }
        }
        self.devices.clear();
        self.definitions.clear();
        for d in &s.inventory.devices {
            self.devices
                .get_or_create(&KindState {
                    kind: d.kind.to_string(),
                    state: d.state.as_str().into(),
                })
                .inc();
            if let Some(st) = d.start {
                self.definitions
                    .get_or_create(&KindStart {
                        kind: d.kind.to_string(),
                        start: st.as_str().into(),
                    })
                    .inc();
            }
        }
        self.drift.clear();
        for (dev, how) in &s.drift {
            self.drift
                .get_or_create(&KindDrift {
                    kind: dev.kind.to_string(),
                    drift: how.as_str().into(),
                })
                .inc();
        }
    }

    /// Counts a restore's outcomes.
    pub fn restored(&self, r: &RestoreReport) {
        for row in &r.rows {
            if row.outcome == Outcome::AlreadyRunning {
                continue;
            }
            self.restores
                .get_or_create(&KindOutcome {
                    kind: row.kind.to_string(),
                    outcome: row.outcome.key().into(),
                })
                .inc();
            if let Some(e) = &row.error {
                self.error(&e.code);
            }
        }
    }

    /// Times one request.
    pub fn request(&self, path: &str, secs: f64) {
        self.requests
            .get_or_create(&PathL { path: path.into() })
            .observe(secs);
    }

    /// Counts one failure by code.
    pub fn error(&self, code: &str) {
        self.errors
            .get_or_create(&CodeL { code: code.into() })
            .inc();
    }

    /// Counts one published event.
    pub fn event(&self, t: &str) {
        self.events.get_or_create(&TypeL { r#type: t.into() }).inc();
    }

    /// Counts one inventory answered from the last reply.
    pub fn inventory_reused(&self) {
        self.inventory_reused.inc();
    }

    /// The host file's pending changes at the last look.
    pub fn host_file(&self, changes: usize, blocked: usize) {
        for (state, n) in [("change", changes), ("blocked", blocked)] {
            self.host_file
                .get_or_create(&StateL {
                    state: state.into(),
                })
                .set(n as i64);
        }
    }

    /// Counts one kernel event acted on.
    pub fn uevent(&self) {
        self.uevents.inc();
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
