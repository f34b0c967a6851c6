//! The kubelet's side: the `k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin`
//! service (NodePrepareResources, NodeUnprepareResources) and the plugin
//! registration service (`pluginregistration.Registration`, type
//! `DRAPlugin`, services `v1.DRAPlugin` and `v1.DRAResourceHealth`, the
//! latter in [`crate::health`]), behaving as Kubernetes' Go helper
//! `kubeletplugin` does for a driver: calls are serialized (one at a
//! time); each claim is fetched from the apiserver and its UID checked
//! against the kubelet's (a claim deleted and made again under the same
//! name is refused); only allocation results of this driver and this
//! node's pool are prepared, each with the claim's opaque parameters for
//! it ([`crate::config`]); each claim gets its own answer or error; the
//! device metadata files are written and mounted through CDI.
//!
//! Owns: mapping a kubelet call onto hostdevd's prepare/unprepare and the
//! claim's CDI and metadata files. Must not: make or remove a device
//! itself, or keep its own record of what was prepared (hostdevd does;
//! unprepare asks it).

use crate::cdi::{self, CdiError};
use crate::config::{self, ConfigError};
use crate::daemon::{self, DaemonError};
use crate::events::Ours;
use crate::metadata::{self, ClaimRef};
use crate::names::{is_dns_subdomain, is_request, is_uid};
use crate::proto::dra_v1 as pb;
use crate::proto::registration as reg;
use hostdev_api::dra::is_dns_label;
use hostdev_api::{DraAllocated, DraClaim, DraPrepareRequest, DraUnprepareRequest};
use k8s_openapi::api::resource::v1::ResourceClaim;
use kube::api::Api;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tonic::{Request, Response, Status};

/// The annotation naming the pod's claim a template made.
pub const POD_CLAIM_NAME: &str = "resource.kubernetes.io/pod-claim-name";

/// How long one hostdevd prepare or unprepare may take.
const DAEMON_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a prepare that found its capacity still held is tried again.
/// The scheduler hands out capacity as soon as the claim that held it is
/// released, which is before the kubelet has unprepared it; the kubelet's
/// own retry would come only after its backoff (about 90 s measured in the
/// lab). Between tries the driver's lock is free, so that unprepare can
/// run.
pub const PREPARE_PATIENCE: Duration = Duration::from_secs(20);
const PREPARE_RETRY: Duration = Duration::from_millis(250);

/// What the plugin needs to know.
#[derive(Debug, Clone)]
pub struct Config {
    /// The driver name (a DNS subdomain).
    pub driver: String,
    /// The node's name (also the pool's).
    pub node: String,
    /// hostdevd's socket.
    pub socket: PathBuf,
    /// The plugin's directory (`<kubelet>/plugins/<driver>`): its socket
    /// and the metadata files.
    pub plugin_dir: PathBuf,
    /// The CDI spec directory the runtime reads.
    pub cdi_dir: PathBuf,
}

impl Config {
    /// The DRA service socket.
    pub fn dra_socket(&self) -> PathBuf {
        self.plugin_dir.join("dra.sock")
    }
}

/// Why one claim could not be prepared or unprepared (each becomes the
/// claim's `error` for the kubelet, which shows it as the pod's event).
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// The kubelet named the claim with something that is not a name.
    #[error("the kubelet named a claim {what} {value:?}, which is not a valid name")]
    BadName {
        /// Which name.
        what: &'static str,
        /// The value.
        value: String,
    },
    /// Reading the claim from the apiserver failed.
    #[error("cannot read ResourceClaim {namespace}/{name} (UID {uid}) from the apiserver")]
    Fetch {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The kubelet's UID for it.
        uid: String,
        /// Why (told by [`answer`] in a sentence of its own).
        #[source]
        source: Box<kube::Error>,
    },
    /// The claim is not (or no longer) there.
    #[error("ResourceClaim {namespace}/{name} does not exist")]
    Gone {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// The claim by that name is another one.
    #[error("ResourceClaim {namespace}/{name} has UID {found}, not {wanted}: it was deleted and made again")]
    Replaced {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The kubelet's UID.
        wanted: String,
        /// The apiserver's.
        found: String,
    },
    /// The claim is not allocated.
    #[error("ResourceClaim {namespace}/{name} is not allocated")]
    NotAllocated {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// An allocation result names something that is not a name.
    #[error(
        "ResourceClaim {namespace}/{name}'s allocation names {what} {value:?}, which is not valid"
    )]
    BadResult {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Which name.
        what: &'static str,
        /// The value.
        value: String,
    },
    /// An admin-access result: a view of a device another claim may hold,
    /// which hostdev has no way to give without making one.
    #[error("ResourceClaim {namespace}/{name} asks for admin access to device {device}; this driver makes a device per claim and has no shared view of one to give")]
    AdminAccess {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The device.
        device: String,
    },
    /// hostdevd refused or failed.
    #[error("hostdevd: {0}")]
    Daemon(#[from] DaemonError),
    /// The CDI spec or metadata could not be written.
    #[error(transparent)]
    Cdi(#[from] CdiError),
    /// The claim's opaque parameters for this driver are refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl ClaimError {
    /// Whether trying again soon may succeed: hostdevd found the capacity
    /// or the device still held (by a claim being unprepared).
    pub fn may_clear(&self) -> bool {
        matches!(self, ClaimError::Daemon(e)
            if matches!(e.class(), hostdev_api::ErrorClass::Exhausted | hostdev_api::ErrorClass::Conflict))
    }

    /// The stable code.
    pub fn code(&self) -> String {
        match self {
            ClaimError::BadName { .. } => "dra.bad-claim-name".into(),
            ClaimError::Fetch { .. } => "dra.claim-fetch".into(),
            ClaimError::Gone { .. } => "dra.claim-gone".into(),
            ClaimError::Replaced { .. } => "dra.claim-replaced".into(),
            ClaimError::NotAllocated { .. } => "dra.claim-not-allocated".into(),
            ClaimError::BadResult { .. } => "dra.bad-allocation".into(),
            ClaimError::AdminAccess { .. } => "dra.admin-access".into(),
            ClaimError::Daemon(e) => e.code(),
            ClaimError::Cdi(e) => e.code().into(),
            ClaimError::Config(e) => e.code().into(),
        }
    }
}

/// A claim's error as the kubelet is answered with it (it becomes the
/// pod's event): the sentence, each cause in its chain once (one a
/// message already ends with is not told again), then the code. The
/// apiserver's refusal is told as its status code, reason and message
/// (kube's own text for it is Rust `Debug` output); kube's other errors
/// by their causes, which their text only repeats after a type name.
pub fn answer(e: &ClaimError) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = std::error::Error::source(e);
    while let Some(c) = cur {
        cur = c.source();
        let kube = c
            .downcast_ref::<Box<kube::Error>>()
            .map(AsRef::as_ref)
            .or_else(|| c.downcast_ref::<kube::Error>());
        let text = match kube {
            Some(kube::Error::Api(status)) => {
                cur = None;
                apiserver_said(status)
            }
            Some(_) if cur.is_some() => continue,
            _ => c.to_string(),
        };
        if parts.last().is_none_or(|l| !l.ends_with(&text)) {
            parts.push(text);
        }
    }
    format!("{} [{}]", parts.join(": "), e.code())
}

/// The apiserver's refusal as a sentence: `the apiserver answered 403
/// Forbidden: <its message>`.
fn apiserver_said(s: &kube::core::Status) -> String {
    let mut out = String::from("the apiserver answered");
    if s.code != 0 {
        out.push_str(&format!(" {}", s.code));
    }
    if !s.reason.is_empty() {
        out.push_str(&format!(" {}", s.reason));
    }
    if !s.message.is_empty() {
        out.push_str(&format!(": {}", s.message));
    }
    out
}

/// The allocation results of this driver and node (pool), checked, as
/// hostdevd's prepare wants them. An admin-access result is refused: this
/// driver makes a device per claim and has no shared view of one to give
/// (making one would make a device the scheduler never counted, and the
/// claim later given it would find it taken).
fn ours(
    results: &[k8s_openapi::api::resource::v1::DeviceRequestAllocationResult],
    driver: &str,
    node: &str,
    configs: &[config::Entry],
    r: &ClaimRef,
) -> Result<Vec<DraAllocated>, ClaimError> {
    let bad_result = |what, value: &str| ClaimError::BadResult {
        namespace: r.namespace.clone(),
        name: r.name.clone(),
        what,
        value: value.chars().take(80).collect(),
    };
    let mut devices = Vec::new();
    for res in results
        .iter()
        .filter(|x| x.driver == driver && x.pool == node)
    {
        if !is_request(&res.request) {
            return Err(bad_result("request", &res.request));
        }
        if !is_dns_label(&res.device) {
            return Err(bad_result("device", &res.device));
        }
        if res.admin_access == Some(true) {
            return Err(ClaimError::AdminAccess {
                namespace: r.namespace.clone(),
                name: r.name.clone(),
                device: res.device.clone(),
            });
        }
        devices.push(DraAllocated {
            request: res.request.clone(),
            device: res.device.clone(),
            config: config::for_request(configs, &res.request),
        });
    }
    Ok(devices)
}

/// Where one prepare's time went (the driver's log line tells it).
#[derive(Debug, Clone, Copy, Default)]
pub struct Phases {
    /// Reading the claim from the apiserver.
    pub fetch: Duration,
    /// hostdevd's prepare (the device made, its record written).
    pub daemon: Duration,
    /// The CDI spec and metadata files written.
    pub files: Duration,
}

/// The DRA plugin service.
pub struct Plugin {
    cfg: Arc<Config>,
    client: kube::Client,
    serial: Mutex<()>,
    ours: Ours,
}

impl Plugin {
    /// A plugin; the devices its prepares make are noted in `ours`, so
    /// that hostdevd's events about them do not wake the publisher (a
    /// claim's devices do not change the offer).
    pub fn new(cfg: Arc<Config>, client: kube::Client, ours: Ours) -> Plugin {
        Plugin {
            cfg,
            client,
            serial: Mutex::new(()),
            ours,
        }
    }

    fn claim_ref(c: &pb::Claim) -> Result<ClaimRef, ClaimError> {
        let bad = |what, value: &str| ClaimError::BadName {
            what,
            value: value.chars().take(80).collect(),
        };
        if !is_uid(&c.uid) {
            return Err(bad("UID", &c.uid));
        }
        if !is_dns_label(&c.namespace) {
            return Err(bad("namespace", &c.namespace));
        }
        if !is_dns_subdomain(&c.name) {
            return Err(bad("name", &c.name));
        }
        Ok(ClaimRef {
            namespace: c.namespace.clone(),
            name: c.name.clone(),
            uid: c.uid.clone(),
            pod_claim_name: None,
        })
    }

    fn dra_claim(r: &ClaimRef) -> Result<DraClaim, ClaimError> {
        Ok(DraClaim {
            uid: r.uid.parse().map_err(|_| ClaimError::BadName {
                what: "UID",
                value: r.uid.clone(),
            })?,
            namespace: r.namespace.clone(),
            name: r.name.clone(),
        })
    }

    /// Prepares one claim.
    pub async fn prepare_claim(
        &self,
        c: &pb::Claim,
        phases: &mut Phases,
    ) -> Result<Vec<pb::Device>, ClaimError> {
        let mut r = Self::claim_ref(c)?;
        let at = std::time::Instant::now();
        let api: Api<ResourceClaim> = Api::namespaced(self.client.clone(), &r.namespace);
        let claim = api
            .get_opt(&r.name)
            .await
            .map_err(|source| ClaimError::Fetch {
                namespace: r.namespace.clone(),
                name: r.name.clone(),
                uid: r.uid.clone(),
                source: Box::new(source),
            })?
            .ok_or_else(|| ClaimError::Gone {
                namespace: r.namespace.clone(),
                name: r.name.clone(),
            })?;
        phases.fetch = at.elapsed();
        let found = claim.metadata.uid.clone().unwrap_or_default();
        if found != r.uid {
            return Err(ClaimError::Replaced {
                namespace: r.namespace.clone(),
                name: r.name.clone(),
                wanted: r.uid.clone(),
                found,
            });
        }
        r.pod_claim_name = claim
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(POD_CLAIM_NAME))
            .cloned();
        let bad_result = |what, value: &str| ClaimError::BadResult {
            namespace: r.namespace.clone(),
            name: r.name.clone(),
            what,
            value: value.chars().take(80).collect(),
        };
        if let Some(p) = &r.pod_claim_name {
            if !is_dns_label(p) {
                return Err(bad_result("pod claim name", p));
            }
        }
        let allocated = claim
            .status
            .as_ref()
            .and_then(|s| s.allocation.as_ref())
            .and_then(|a| a.devices.as_ref());
        let configs = config::decode(
            &self.cfg.driver,
            allocated
                .and_then(|d| d.config.as_deref())
                .unwrap_or_default(),
        )?;
        let results =
            allocated
                .and_then(|d| d.results.clone())
                .ok_or_else(|| ClaimError::NotAllocated {
                    namespace: r.namespace.clone(),
                    name: r.name.clone(),
                })?;
        let devices = ours(&results, &self.cfg.driver, &self.cfg.node, &configs, &r)?;
        if devices.is_empty() {
            return Ok(Vec::new());
        }
        let req = DraPrepareRequest {
            claim: Self::dra_claim(&r)?,
            devices,
        };
        let at = std::time::Instant::now();
        let prepared = daemon::call(&self.cfg.socket, req, DAEMON_TIMEOUT).await;
        phases.daemon = at.elapsed();
        let prepared = prepared?;
        for d in &prepared.devices {
            self.ours.add(&d.id);
        }
        let at = std::time::Instant::now();
        let out = self.files_or_undo(c, &r, &prepared).await;
        phases.files = at.elapsed();
        out
    }

    /// Writes a prepared claim's files. When that fails, what this call's
    /// prepare made is unprepared (nothing half-made is left), but devices
    /// an earlier prepare gave the claim (hostdevd answered from its
    /// record: the kubelet asks again after its own restart) are kept, as a
    /// running pod may use them. The error is the claim's either way, and
    /// the kubelet asks again.
    async fn files_or_undo(
        &self,
        c: &pb::Claim,
        r: &ClaimRef,
        prepared: &hostdev_api::DraPrepared,
    ) -> Result<Vec<pb::Device>, ClaimError> {
        let e = match self.write_files(r, &prepared.devices) {
            Ok(out) => return Ok(out),
            Err(e) => e,
        };
        if !prepared.again {
            if let Err(undo) = self.unprepare_claim(c).await {
                eprintln!(
                    "hostdev-dra: prepare {}/{} ({}): undoing it after its files failed failed too: {}",
                    r.namespace,
                    r.name,
                    r.uid,
                    answer(&undo)
                );
            }
        }
        Err(e)
    }

    fn write_files(
        &self,
        r: &ClaimRef,
        prepared: &[hostdev_api::DraPreparedDevice],
    ) -> Result<Vec<pb::Device>, ClaimError> {
        let cfg = &self.cfg;
        let (spec, ids) = cdi::device_spec(&cfg.driver, &r.uid, prepared);
        let meta = metadata::write(
            &cfg.driver,
            &cfg.node,
            &cfg.plugin_dir,
            &cfg.cdi_dir,
            r,
            prepared,
        )?;
        cdi::write(
            &cdi::device_spec_path(&cfg.cdi_dir, &cfg.driver, &r.uid),
            &spec,
        )?;
        let mut given = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        for (d, id) in prepared.iter().zip(ids) {
            let mut cdi_ids = vec![id];
            let base = crate::names::base_request(&d.request);
            if given.insert(base.to_string()) {
                if let Some(m) = meta.get(base) {
                    cdi_ids.push(m.clone());
                }
            }
            out.push(pb::Device {
                request_names: vec![d.request.clone()],
                pool_name: cfg.node.clone(),
                device_name: d.device.clone(),
                cdi_device_ids: cdi_ids,
                share_id: None,
            });
        }
        Ok(out)
    }

    /// Unprepares one claim: hostdevd removes what it made, then the
    /// claim's CDI and metadata files go.
    pub async fn unprepare_claim(&self, c: &pb::Claim) -> Result<(), ClaimError> {
        let r = Self::claim_ref(c)?;
        let req = DraUnprepareRequest {
            claim: Self::dra_claim(&r)?,
        };
        let gone = daemon::call(&self.cfg.socket, req, DAEMON_TIMEOUT).await?;
        for id in &gone.removed {
            self.ours.add(id);
        }
        let cfg = &self.cfg;
        cdi::remove(&cdi::device_spec_path(&cfg.cdi_dir, &cfg.driver, &r.uid))?;
        metadata::remove(&cfg.driver, &cfg.plugin_dir, &cfg.cdi_dir, &r)?;
        Ok(())
    }
}

/// Logs one claim's outcome: `took` from the kubelet's call, `work` of it
/// with the driver's lock held (the last try; the rest waited for other
/// calls, which the driver serializes).
fn log_claim(
    what: &str,
    c: &pb::Claim,
    r: &Result<(), String>,
    took: Duration,
    work: Duration,
    phases: Option<Phases>,
) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (took, work) = (ms(took), ms(work));
    let split = phases.map_or(String::new(), |p| {
        format!(
            ": claim read {:.1} ms, hostdevd {:.1} ms, files {:.1} ms",
            ms(p.fetch),
            ms(p.daemon),
            ms(p.files)
        )
    });
    match r {
        Ok(()) => eprintln!(
            "hostdev-dra: {what} {}/{} ({}): done in {took:.1} ms ({work:.1} ms with the lock held{split})",
            c.namespace, c.name, c.uid
        ),
        Err(e) => eprintln!(
            "hostdev-dra: {what} {}/{} ({}): failed in {took:.1} ms ({work:.1} ms with the lock held{split}): {e}",
            c.namespace, c.name, c.uid
        ),
    }
}

/// Logs a call the kubelet gave up on (its connection closed, as when it
/// registers the plugin again): tonic drops the call's future, so the
/// claims' own lines never come. hostdevd finishes a prepare it began; the
/// kubelet's next call is answered from its record.
struct Cancelled {
    what: &'static str,
    claims: String,
    started: std::time::Instant,
    finished: bool,
}

impl Cancelled {
    fn new(what: &'static str, claims: &[pb::Claim]) -> Cancelled {
        let claims = claims
            .iter()
            .map(|c| format!("{}/{} ({})", c.namespace, c.name, c.uid))
            .collect::<Vec<_>>()
            .join(", ");
        Cancelled {
            what,
            claims,
            started: std::time::Instant::now(),
            finished: false,
        }
    }
}

impl Drop for Cancelled {
    fn drop(&mut self) {
        if !self.finished {
            eprintln!(
                "hostdev-dra: {} {}: the kubelet cancelled the call after {:.1} ms; what hostdevd began it finishes, and the kubelet's next call is answered from its record",
                self.what,
                self.claims,
                self.started.elapsed().as_secs_f64() * 1000.0
            );
        }
    }
}

#[tonic::async_trait]
impl pb::dra_plugin_server::DraPlugin for Plugin {
    async fn node_prepare_resources(
        &self,
        req: Request<pb::NodePrepareResourcesRequest>,
    ) -> Result<Response<pb::NodePrepareResourcesResponse>, Status> {
        let mut watch = Cancelled::new("prepare", &req.get_ref().claims);
        let mut claims = HashMap::new();
        for c in &req.get_ref().claims {
            let started = std::time::Instant::now();
            let mut work;
            let mut phases;
            let result = loop {
                let r = {
                    let _one = self.serial.lock().await;
                    let at = std::time::Instant::now();
                    phases = Phases::default();
                    let r = self.prepare_claim(c, &mut phases).await;
                    work = at.elapsed();
                    r
                };
                match r {
                    Err(e) if e.may_clear() && started.elapsed() < PREPARE_PATIENCE => {
                        tokio::time::sleep(PREPARE_RETRY).await;
                    }
                    other => break other,
                }
            };
            let answer = match result {
                Ok(devices) => pb::NodePrepareResourceResponse {
                    devices,
                    error: String::new(),
                },
                Err(e) => pb::NodePrepareResourceResponse {
                    devices: Vec::new(),
                    error: answer(&e),
                },
            };
            let r = if answer.error.is_empty() {
                Ok(())
            } else {
                Err(answer.error.clone())
            };
            log_claim("prepare", c, &r, started.elapsed(), work, Some(phases));
            claims.insert(c.uid.clone(), answer);
        }
        watch.finished = true;
        Ok(Response::new(pb::NodePrepareResourcesResponse { claims }))
    }

    async fn node_unprepare_resources(
        &self,
        req: Request<pb::NodeUnprepareResourcesRequest>,
    ) -> Result<Response<pb::NodeUnprepareResourcesResponse>, Status> {
        let mut watch = Cancelled::new("unprepare", &req.get_ref().claims);
        let _one = self.serial.lock().await;
        let mut claims = HashMap::new();
        for c in &req.get_ref().claims {
            let started = std::time::Instant::now();
            let r = self.unprepare_claim(c).await.map_err(|e| answer(&e));
            log_claim(
                "unprepare",
                c,
                &r,
                started.elapsed(),
                started.elapsed(),
                None,
            );
            claims.insert(
                c.uid.clone(),
                pb::NodeUnprepareResourceResponse {
                    error: r.err().unwrap_or_default(),
                },
            );
        }
        watch.finished = true;
        Ok(Response::new(pb::NodeUnprepareResourcesResponse { claims }))
    }
}

/// The service name the kubelet knows DRA v1 by.
pub const DRA_V1_SERVICE: &str = "v1.DRAPlugin";

/// The plugin registration service.
pub struct Registration {
    /// The driver name.
    pub driver: String,
    /// The DRA socket's absolute path.
    pub endpoint: String,
}

#[tonic::async_trait]
impl reg::registration_server::Registration for Registration {
    async fn get_info(
        &self,
        _req: Request<reg::InfoRequest>,
    ) -> Result<Response<reg::PluginInfo>, Status> {
        Ok(Response::new(reg::PluginInfo {
            r#type: "DRAPlugin".into(),
            name: self.driver.clone(),
            endpoint: self.endpoint.clone(),
            supported_versions: vec![
                DRA_V1_SERVICE.into(),
                crate::health::HEALTH_V1_SERVICE.into(),
            ],
        }))
    }

    async fn notify_registration_status(
        &self,
        req: Request<reg::RegistrationStatus>,
    ) -> Result<Response<reg::RegistrationStatusResponse>, Status> {
        let s = req.get_ref();
        if s.plugin_registered {
            eprintln!("hostdev-dra: the kubelet registered driver {}", self.driver);
        } else {
            eprintln!(
                "hostdev-dra: the kubelet refused driver {}: {}",
                self.driver, s.error
            );
        }
        Ok(Response::new(reg::RegistrationStatusResponse {}))
    }
}

mod gone;
pub use gone::Gone;

#[cfg(test)]
mod tests;
