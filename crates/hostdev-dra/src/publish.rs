//! Publishing one node's pool as ResourceSlices through the apiserver,
//! the way Kubernetes' Go helper (`resourceslice` controller) does it: all
//! slices of a pool carry one generation and the pool's slice count; a
//! change writes every slice with the next generation (the scheduler
//! ignores slices of an older generation, so a half-done update never
//! mixes old and new devices), then deletes slices the pool no longer has.
//! Slices are named `<driver>-<node>-<index>` and found again by the field
//! selector `spec.driver=…,spec.nodeName=…`.
//!
//! Owns: the slices of this driver on this node. Must not: touch another
//! driver's or node's slices, or decide what is offered.

use crate::slices::Pool;
use k8s_openapi::api::resource::v1::{ResourceSlice, ResourceSliceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
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
        }
    }
}

/// Slice writes in flight at once.
const WRITERS: usize = 16;

fn flatten(
    r: Result<Result<(), PublishError>, tokio::task::JoinError>,
) -> Result<(), PublishError> {
    r.map_err(|e| PublishError::Task(e.to_string()))?
}

/// What a publish did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// The slices already said this.
    Unchanged,
    /// The pool was written with this generation, in this many slices.
    Written {
        /// The pool's new generation.
        generation: i64,
        /// Slices written.
        slices: usize,
    },
}

/// Publishes one node's pool.
pub struct Publisher {
    api: Api<ResourceSlice>,
    driver: String,
    node: String,
    /// The specs last written (generation 0) and their generation.
    last: Option<(Vec<ResourceSliceSpec>, i64)>,
}

impl Publisher {
    /// A publisher for `driver` on `node`.
    pub fn new(client: kube::Client, driver: &str, node: &str) -> Publisher {
        Publisher {
            api: Api::all(client),
            driver: driver.to_string(),
            node: node.to_string(),
            last: None,
        }
    }

    /// The name of the pool's slice number `i`.
    pub fn slice_name(&self, i: usize) -> String {
        format!("{}-{}-{i}", self.driver, self.node)
    }

    async fn ours(&self) -> Result<BTreeMap<String, ResourceSlice>, PublishError> {
        let lp = ListParams::default().fields(&format!(
            "spec.driver={},spec.nodeName={}",
            self.driver, self.node
        ));
        let list = self.api.list(&lp).await.map_err(PublishError::List)?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|s| s.metadata.name.clone().map(|n| (n, s)))
            .collect())
    }

    /// Makes the apiserver's slices say `pool`: nothing is written when
    /// they already do (same specs as last written, same names and
    /// generation in the apiserver).
    pub async fn publish(&mut self, pool: &Pool) -> Result<Published, PublishError> {
        let existing = self.ours().await?;
        let unchanged = self.last.as_ref().is_some_and(|(specs, generation)| {
            *specs == pool.specs
                && existing.len() == specs.len()
                && (0..specs.len()).all(|i| {
                    existing
                        .get(&self.slice_name(i))
                        .is_some_and(|s| s.spec.pool.generation == *generation)
                })
        });
        if unchanged {
            return Ok(Published::Unchanged);
        }
        let generation = existing
            .values()
            .map(|s| s.spec.pool.generation)
            .max()
            .unwrap_or(0)
            .max(self.last.as_ref().map_or(0, |l| l.1))
            + 1;
        // Up to WRITERS slices in flight: a pool of hundreds of slices (the
        // `large` host: 258) written one by one takes half a minute.
        let mut writes = tokio::task::JoinSet::new();
        for (i, spec) in pool.specs.iter().enumerate() {
            if writes.len() >= WRITERS {
                if let Some(r) = writes.join_next().await {
                    flatten(r)?;
                }
            }
            let name = self.slice_name(i);
            let mut spec = spec.clone();
            spec.pool.generation = generation;
            let mut slice = ResourceSlice {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    ..ObjectMeta::default()
                },
                spec,
            };
            let old = existing
                .get(&name)
                .map(|o| o.metadata.resource_version.clone());
            let api = self.api.clone();
            writes.spawn(async move {
                let pp = PostParams::default();
                let r = match old {
                    Some(version) => {
                        slice.metadata.resource_version = version;
                        api.replace(&name, &pp, &slice).await
                    }
                    None => api.create(&pp, &slice).await,
                };
                r.map(|_| ())
                    .map_err(|source| PublishError::Write { name, source })
            });
        }
        while let Some(r) = writes.join_next().await {
            flatten(r)?;
        }
        let keep: Vec<String> = (0..pool.specs.len()).map(|i| self.slice_name(i)).collect();
        for name in existing.keys().filter(|n| !keep.contains(n)) {
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
        self.last = Some((pool.specs.clone(), generation));
        Ok(Published::Written {
            generation,
            slices: pool.specs.len(),
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
