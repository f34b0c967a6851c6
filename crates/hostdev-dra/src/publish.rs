//! Publishing one node's pool as ResourceSlices through the apiserver,
//! the way Kubernetes' Go helper (`resourceslice` controller) does it: all
//! slices of a pool carry one generation and the pool's slice count; a
//! change writes every slice with the next generation (the scheduler
//! ignores slices of an older generation, so a half-done update never
//! mixes old and new devices), then deletes slices the pool no longer has
//! — except that a change one slice holds, with the slice count kept, is
//! that slice's update alone, in the same generation (the helper's "at most
//! one update API call" rule: one write is atomic by itself). Slices are
//! named `<driver>-<node>-<index>` (cut short with a hash of the whole
//! when that passes the API's 253 bytes: [`slice_name`]) and found again
//! by the field selector `spec.driver=…,spec.nodeName=…`.
//!
//! Whether the apiserver still holds what was last written is asked with a
//! metadata-only list (names and resourceVersions: a few KiB where the
//! whole slices of a large host are megabytes); the slices themselves are
//! listed only when that answer differs from what was written.
//!
//! Every slice is owned by the node's Node object (an ownerReference with
//! its UID, as the Go helper does; read before each full write, so a Node
//! registered again is the owner of what is written next): deleting the
//! Node lets the garbage collector remove the slices of a node that will
//! not come back. A Node that cannot be read leaves slices without an owner
//! (said once) rather than unpublished.
//!
//! An apiserver with the `DRADeviceCompatibilityGroups` gate off drops the
//! devices' `compatibilityGroups` from what it stores, without an error;
//! each write's answer is compared with what was sent, and a drop is kept
//! for the caller to say ([`Publisher::groups_dropped`]): the scheduler
//! there may give a one-type parent claims of two types, and the second
//! fails at prepare.
//!
//! Owns: the slices of this driver on this node. Must not: touch another
//! driver's or node's slices, or decide what is offered.

use crate::slices::Pool;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::resource::v1::{ResourceSlice, ResourceSliceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use std::collections::BTreeMap;

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Listing the existing slices failed.
    #[error("cannot list this node's ResourceSlices")]
    List(#[source] kube::Error),
    /// Creating or updating a slice failed.
    #[error("cannot write ResourceSlice {name}")]
    Write {
        /// The slice.
        name: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// A write task died.
    #[error("a ResourceSlice write was cut short: {0}")]
    Task(String),
    /// The node's Node object (the slices' owner) could not be read.
    #[error("cannot read Node {node}, which owns this node's ResourceSlices")]
    Node {
        /// The node.
        node: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// Deleting an obsolete slice failed.
    #[error("cannot delete ResourceSlice {name}")]
    Delete {
        /// The slice.
        name: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
}

impl PublishError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            PublishError::List(_) => "dra.publish-list",
            PublishError::Write { .. } => "dra.publish-write",
            PublishError::Delete { .. } => "dra.publish-delete",
            PublishError::Task(_) => "dra.publish-task",
            PublishError::Node { .. } => "dra.publish-node",
        }
    }
}

/// Slice writes in flight at once.
pub const WRITERS: usize = 32;

/// One slice's write as the apiserver answered it.
#[derive(Debug)]
struct Wrote {
    name: String,
    version: String,
    /// It was sent compatibility groups and stored none.
    groups_dropped: bool,
}

fn flatten(
    r: Result<Result<Wrote, PublishError>, tokio::task::JoinError>,
) -> Result<Wrote, PublishError> {
    r.map_err(|e| PublishError::Task(e.to_string()))?
}

/// How many compatibility groups a slice's devices name.
fn group_count(spec: &ResourceSliceSpec) -> usize {
    spec.devices
        .iter()
        .flatten()
        .flat_map(|d| d.consumes_counters.iter().flatten())
        .map(|c| c.compatibility_groups.as_ref().map_or(0, Vec::len))
        .sum()
}

/// Whether the apiserver stored `got` without the compatibility groups
/// `sent` had (its `DRADeviceCompatibilityGroups` gate is off).
pub fn groups_dropped(sent: &ResourceSliceSpec, got: &ResourceSliceSpec) -> bool {
    group_count(sent) > 0 && group_count(got) == 0
}

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// The slices already said this.
    Unchanged,
    /// The pool was written with this generation, in this many slices.
    Written {
        /// The pool's new generation.
        generation: i64,
        /// Slices written.
        slices: usize,
        /// Why the whole pool and not one slice.
        why: Why,
    },
    /// One slice changed and was updated alone, in the same generation.
    Updated {
        /// The pool's generation (kept).
        generation: i64,
        /// The slice's index.
        index: usize,
    },
}

/// What this publisher last wrote and the apiserver acknowledged.
#[derive(Debug, Clone, PartialEq)]
struct Written {
    /// The specs (generation 0).
    specs: Vec<ResourceSliceSpec>,
    /// Their generation.
    generation: i64,
    /// Each slice's name and the resourceVersion its write returned.
    versions: BTreeMap<String, String>,
}

/// How to bring the apiserver's slices to a new pool.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// Nothing to write.
    Nothing,
    /// Update slice `i` alone, keeping the generation.
    One(usize),
    /// Write every slice with the next generation.
    All(Why),
}

/// Why the whole pool is written rather than one slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// Nothing was written by this publisher yet.
    First,
    /// The apiserver's slices are not what this publisher's writes left
    /// (edited, deleted or added by someone else, or a write it lost).
    Touched,
    /// The number of slices changed.
    Count(usize, usize),
    /// These slices changed (more than one).
    Changed(Vec<usize>),
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::First => write!(f, "the first write"),
            Why::Touched => write!(f, "the apiserver's slices were not as last written"),
            Why::Count(a, b) => write!(f, "{a} slices became {b}"),
            Why::Changed(v) => {
                let shown: Vec<String> = v.iter().take(8).map(ToString::to_string).collect();
                let more = if v.len() > 8 { ", …" } else { "" };
                write!(f, "{} slices changed ({}{more})", v.len(), shown.join(", "))
            }
        }
    }
}

/// The step from what was written (`last`, if the apiserver's names and
/// resourceVersions, `live`, still are what its writes returned) to `specs`.
fn step(
    last: Option<&Written>,
    live: &BTreeMap<String, String>,
    specs: &[ResourceSliceSpec],
) -> Step {
    let Some(last) = last else {
        return Step::All(Why::First);
    };
    if &last.versions != live {
        return Step::All(Why::Touched);
    }
    if last.specs.len() != specs.len() {
        return Step::All(Why::Count(last.specs.len(), specs.len()));
    }
    let changed: Vec<usize> = (0..specs.len())
        .filter(|i| last.specs[*i] != specs[*i])
        .collect();
    match changed.as_slice() {
        [] => Step::Nothing,
        [i] => Step::One(*i),
        _ => Step::All(Why::Changed(changed)),
    }
}

/// The most bytes an object's name may have (a DNS subdomain).
pub const MAX_NAME: usize = 253;

/// The name of slice `i` of `driver`'s pool on `node`:
/// `<driver>-<node>-<i>`. When that would pass [`MAX_NAME`] (a node name
/// near its own 253 bytes), the `<driver>-<node>` prefix is cut short, as
/// Kubernetes cuts a generateName prefix, and followed by a hash of the
/// whole prefix: these names are fixed rather than given a random suffix
/// by the apiserver, and two nodes whose long names differ only past the
/// cut must still name different slices. The hash (64-bit FNV-1a) is part
/// of the name and must not change between releases.
pub fn slice_name(driver: &str, node: &str, i: usize) -> String {
    let full = format!("{driver}-{node}-{i}");
    if full.len() <= MAX_NAME {
        return full;
    }
    let prefix = format!("{driver}-{node}");
    let hash = prefix.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let tail = format!("-{hash:016x}-{i}");
    let mut keep = MAX_NAME.saturating_sub(tail.len());
    while !prefix.is_char_boundary(keep) {
        keep -= 1;
    }
    // A label must end with a letter or digit: no `-` or `.` before the
    // tail's `-`.
    let cut = prefix[..keep].trim_end_matches(['-', '.']);
    format!("{cut}{tail}")
}

/// Publishes one node's pool.
pub struct Publisher {
    api: Api<ResourceSlice>,
    nodes: Api<Node>,
    driver: String,
    node: String,
    owner: Option<OwnerReference>,
    owner_error: Option<String>,
    last: Option<Written>,
    dropped: Option<String>,
}

/// The ownerReference of a slice owned by Node `name` with `uid`.
pub fn node_owner(name: &str, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: name.to_string(),
        uid: uid.to_string(),
        controller: Some(true),
        block_owner_deletion: None,
    }
}

impl Publisher {
    /// A publisher for `driver` on `node`.
    pub fn new(client: kube::Client, driver: &str, node: &str) -> Publisher {
        Publisher {
            api: Api::all(client.clone()),
            nodes: Api::all(client),
            driver: driver.to_string(),
            node: node.to_string(),
            owner: None,
            owner_error: None,
            last: None,
            dropped: None,
        }
    }

    /// The first slice whose compatibility groups the apiserver dropped
    /// (its `DRADeviceCompatibilityGroups` gate is off), if any was.
    pub fn groups_dropped(&self) -> Option<&str> {
        self.dropped.as_deref()
    }

    fn wrote(&mut self, w: &Wrote) {
        if w.groups_dropped && self.dropped.is_none() {
            self.dropped = Some(w.name.clone());
        }
    }

    /// The slices' owner: the Node, read the first time and again before
    /// every full write (a Node deleted and registered again under the same
    /// name has a new UID, and slices owned by the old one are collected).
    /// One that cannot be read leaves the slices without an owner, said
    /// once, rather than unpublished (an RBAC without `get nodes`, a node
    /// name the Node does not have).
    async fn owner(&mut self, fresh: bool) -> Option<OwnerReference> {
        if fresh {
            self.owner = None;
        }
        if self.owner.is_none() {
            match self.nodes.get(&self.node).await {
                Ok(n) => {
                    self.owner = Some(node_owner(
                        &self.node,
                        n.metadata.uid.as_deref().unwrap_or_default(),
                    ));
                    self.owner_error = None;
                }
                Err(source) => {
                    let e = PublishError::Node {
                        node: self.node.clone(),
                        source,
                    };
                    let said = format!(
                        "{e}: {}",
                        std::error::Error::source(&e)
                            .map(|s| s.to_string())
                            .unwrap_or_default()
                    );
                    if self.owner_error.as_deref() != Some(said.as_str()) {
                        eprintln!("hostdev-dra: slices are published without an owner: {said}");
                        self.owner_error = Some(said);
                    }
                }
            }
        }
        self.owner.clone()
    }

    /// The name of the pool's slice number `i`.
    pub fn slice_name(&self, i: usize) -> String {
        slice_name(&self.driver, &self.node, i)
    }

    fn selector(&self) -> ListParams {
        ListParams::default().fields(&format!(
            "spec.driver={},spec.nodeName={}",
            self.driver, self.node
        ))
    }

    async fn ours(&self) -> Result<BTreeMap<String, ResourceSlice>, PublishError> {
        let list = self
            .api
            .list(&self.selector())
            .await
            .map_err(PublishError::List)?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|s| s.metadata.name.clone().map(|n| (n, s)))
            .collect())
    }

    /// This node's slices' names and resourceVersions.
    async fn versions(&self) -> Result<BTreeMap<String, String>, PublishError> {
        let list = self
            .api
            .list_metadata(&self.selector())
            .await
            .map_err(PublishError::List)?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|m| {
                let name = m.metadata.name?;
                Some((name, m.metadata.resource_version.unwrap_or_default()))
            })
            .collect())
    }

    /// Writes one slice (created when `version` is `None`); its new
    /// resourceVersion.
    async fn write(
        api: Api<ResourceSlice>,
        name: String,
        spec: ResourceSliceSpec,
        version: Option<String>,
        owner: Option<OwnerReference>,
    ) -> Result<Wrote, PublishError> {
        let sent = spec.clone();
        let mut slice = ResourceSlice {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                resource_version: version.clone(),
                owner_references: owner.map(|o| vec![o]),
                ..ObjectMeta::default()
            },
            spec,
        };
        let pp = PostParams::default();
        let r = match version {
            Some(_) => api.replace(&name, &pp, &slice).await,
            None => {
                slice.metadata.resource_version = None;
                api.create(&pp, &slice).await
            }
        };
        match r {
            Ok(s) => Ok(Wrote {
                groups_dropped: groups_dropped(&sent, &s.spec),
                version: s.metadata.resource_version.unwrap_or_default(),
                name,
            }),
            Err(source) => Err(PublishError::Write { name, source }),
        }
    }

    /// Makes the apiserver's slices say `pool`: nothing is written when
    /// they already do (same specs as last written, and the apiserver's
    /// slices are still the ones those writes made).
    pub async fn publish(&mut self, pool: &Pool) -> Result<Published, PublishError> {
        let live = self.versions().await?;
        let why = match step(self.last.as_ref(), &live, &pool.specs) {
            Step::Nothing => return Ok(Published::Unchanged),
            Step::One(i) => {
                let owner = self.owner(false).await;
                if let Some(last) = self.last.as_mut() {
                    let name = slice_name(&self.driver, &self.node, i);
                    let mut spec = pool.specs[i].clone();
                    spec.pool.generation = last.generation;
                    let version = last.versions.get(&name).cloned();
                    let w = Self::write(self.api.clone(), name, spec, version, owner).await?;
                    if w.groups_dropped && self.dropped.is_none() {
                        self.dropped = Some(w.name.clone());
                    }
                    last.versions.insert(w.name, w.version);
                    last.specs[i] = pool.specs[i].clone();
                    return Ok(Published::Updated {
                        generation: last.generation,
                        index: i,
                    });
                }
                Why::First
            }
            Step::All(why) => why,
        };
        let owner = self.owner(true).await;
        // Never a generation this publisher used before, even when every
        // slice was deleted meanwhile (a restarted kubelet does that).
        let floor = self.last.take().map_or(0, |l| l.generation);
        let existing = self.ours().await?;
        let generation = existing
            .values()
            .map(|s| s.spec.pool.generation)
            .max()
            .unwrap_or(0)
            .max(floor)
            + 1;
        // Up to WRITERS slices in flight: a pool of hundreds of slices (the
        // `large` host: 258) written one by one takes half a minute.
        let mut writes = tokio::task::JoinSet::new();
        let mut versions = BTreeMap::new();
        for (i, spec) in pool.specs.iter().enumerate() {
            if writes.len() >= WRITERS {
                if let Some(r) = writes.join_next().await {
                    let w = flatten(r)?;
                    self.wrote(&w);
                    versions.insert(w.name, w.version);
                }
            }
            let name = self.slice_name(i);
            let mut spec = spec.clone();
            spec.pool.generation = generation;
            let old = existing
                .get(&name)
                .map(|o| o.metadata.resource_version.clone().unwrap_or_default());
            writes.spawn(Self::write(
                self.api.clone(),
                name,
                spec,
                old,
                owner.clone(),
            ));
        }
        while let Some(r) = writes.join_next().await {
            let w = flatten(r)?;
            self.wrote(&w);
            versions.insert(w.name, w.version);
        }
        for name in existing.keys().filter(|n| !versions.contains_key(*n)) {
            match self.api.delete(name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(source) => {
                    return Err(PublishError::Delete {
                        name: name.clone(),
                        source,
                    });
                }
            }
        }
        self.last = Some(Written {
            specs: pool.specs.clone(),
            generation,
            versions,
        });
        Ok(Published::Written {
            generation,
            slices: pool.specs.len(),
            why,
        })
    }

    /// Deletes every slice of this driver on this node (a driver told to
    /// withdraw).
    pub async fn withdraw(&mut self) -> Result<usize, PublishError> {
        let existing = self.ours().await?;
        for name in existing.keys() {
            match self.api.delete(name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(source) => {
                    return Err(PublishError::Delete {
                        name: name.clone(),
                        source,
                    });
                }
            }
        }
        self.last = None;
        Ok(existing.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::resource::v1::Device;

    fn spec(devices: &[&str]) -> ResourceSliceSpec {
        ResourceSliceSpec {
            driver: "hostdev.io".into(),
            devices: Some(
                devices
                    .iter()
                    .map(|d| Device {
                        name: d.to_string(),
                        ..Device::default()
                    })
                    .collect(),
            ),
            ..ResourceSliceSpec::default()
        }
    }

    fn written(specs: &[ResourceSliceSpec]) -> Written {
        Written {
            specs: specs.to_vec(),
            generation: 7,
            versions: (0..specs.len())
                .map(|i| (format!("s-{i}"), format!("{}", 100 + i)))
                .collect(),
        }
    }

    #[test]
    fn groups_the_apiserver_did_not_store_are_seen_as_dropped() {
        use k8s_openapi::api::resource::v1::DeviceCounterConsumption;
        let with = |groups: Option<Vec<String>>| {
            let mut s = spec(&["a", "b"]);
            s.devices.as_mut().expect("devices")[1].consumes_counters =
                Some(vec![DeviceCounterConsumption {
                    counter_set: "gpu".into(),
                    compatibility_groups: groups,
                    ..DeviceCounterConsumption::default()
                }]);
            s
        };
        let sent = with(Some(vec!["nvidia-230".into()]));
        // The gate off: the field is gone from the stored object.
        assert!(groups_dropped(&sent, &with(None)));
        assert!(groups_dropped(&sent, &spec(&["a", "b"])));
        // Kept; or none were sent.
        assert!(!groups_dropped(&sent, &sent));
        assert!(!groups_dropped(&with(None), &with(None)));
        assert!(!groups_dropped(&spec(&["a"]), &spec(&["a"])));
    }

    #[test]
    fn one_changed_slice_is_updated_alone_and_more_rewrite_the_pool() {
        let a = vec![spec(&["a"]), spec(&["b"]), spec(&["c"])];
        let w = written(&a);
        let live = w.versions.clone();
        assert_eq!(step(Some(&w), &live, &a), Step::Nothing);
        let mut b = a.clone();
        b[1] = spec(&["b", "b2"]);
        assert_eq!(step(Some(&w), &live, &b), Step::One(1));
        b[2] = spec(&[]);
        assert_eq!(
            step(Some(&w), &live, &b),
            Step::All(Why::Changed(vec![1, 2]))
        );
        assert_eq!(step(Some(&w), &live, &a[..2]), Step::All(Why::Count(3, 2)));
        assert_eq!(step(None, &live, &a), Step::All(Why::First));
        assert_eq!(
            Why::Changed((0..10).collect()).to_string(),
            "10 slices changed (0, 1, 2, 3, 4, 5, 6, 7, …)"
        );
    }

    /// Kubernetes' own test of an object name (IsDNS1123Subdomain): at
    /// most 253 bytes, dot-separated parts of lowercase letters, digits and
    /// `-`, each beginning and ending with a letter or digit.
    fn is_object_name(s: &str) -> bool {
        let alnum =
            |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        s.len() <= MAX_NAME
            && s.split('.').all(|p| {
                alnum(p.chars().next())
                    && alnum(p.chars().last())
                    && p.chars().all(|c| c == '-' || alnum(Some(c)))
            })
    }

    #[test]
    fn slice_names_stay_object_names_and_distinct_whatever_the_names_lengths() {
        assert_eq!(slice_name("hostdev.io", "n1", 3), "hostdev.io-n1-3");
        let driver = format!("{}.io", "d".repeat(60));
        for node in [
            format!("{}.x", "a".repeat(251)),
            format!("{}-{}", "a".repeat(126), "b".repeat(126)),
            format!("{}.{}", "a".repeat(63), "b".repeat(189)),
            "n".repeat(185),
        ] {
            for i in [0, 7, 12_345] {
                let name = slice_name(&driver, &node, i);
                assert!(is_object_name(&name), "{} bytes: {name}", name.len());
                assert!(name.ends_with(&format!("-{i}")), "{name}");
            }
        }
        // Two nodes whose long names differ only past the cut.
        let (a, b) = ("a".repeat(250) + "-x", "a".repeat(250) + "-y");
        assert_ne!(slice_name(&driver, &a, 0), slice_name(&driver, &b, 0));
        assert_ne!(slice_name(&driver, &a, 0), slice_name(&driver, &a, 1));
    }

    #[test]
    fn slices_someone_else_touched_are_rewritten() {
        let a = vec![spec(&["a"]), spec(&["b"])];
        let w = written(&a);
        let mut live = w.versions.clone();
        live.insert("s-1".into(), "999".into());
        assert_eq!(step(Some(&w), &live, &a), Step::All(Why::Touched), "edited");
        let mut live = w.versions.clone();
        live.remove("s-0");
        assert_eq!(
            step(Some(&w), &live, &a),
            Step::All(Why::Touched),
            "deleted"
        );
        let mut live = w.versions.clone();
        live.insert("s-9".into(), "1".into());
        assert_eq!(
            step(Some(&w), &live, &a),
            Step::All(Why::Touched),
            "an extra slice"
        );
    }
}
