//! Claims hostdevd holds records of that the apiserver no longer has.
//!
//! The kubelet unprepares a claim when its last pod goes, from its own
//! checkpoint; a kubelet that lost that checkpoint (a rebuilt node, a wiped
//! kubelet directory) never asks, and the claim's devices would stay made
//! for ever. A claim in use cannot be deleted (its `reservedFor` holds it),
//! so one the apiserver does not have — gone, or replaced by a claim of the
//! same name with another UID — has no pod: what hostdevd made for it is
//! removed, with its CDI and metadata files, under the plugin's lock like
//! any kubelet call. Not at once: a pod deleted by force leaves its
//! containers to the kubelet for a while after its claim is gone, so a
//! claim is unprepared only once it has been missing for a grace period
//! (seen missing by an earlier sweep at least that long ago).
//!
//! Owns: finding those claims and unpreparing them. Must not: touch a
//! claim the apiserver has, or one it could not be asked about.

use super::{pb, Plugin, DAEMON_TIMEOUT};
use crate::daemon;
use hostdev_api::DraClaimsQuery;
use k8s_openapi::api::resource::v1::ResourceClaim;
use kube::api::Api;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What became of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gone {
    /// The apiserver has no such claim: unprepared.
    Unprepared {
        /// `namespace/name (uid)`.
        claim: String,
        /// Why it was taken for gone.
        why: &'static str,
    },
    /// Missing, but not yet for the grace period: kept for now.
    Waiting {
        /// `namespace/name (uid)`.
        claim: String,
    },
    /// It could not be unprepared, or not asked about: kept.
    Kept {
        /// `namespace/name (uid)`.
        claim: String,
        /// Why.
        why: String,
    },
}

impl Plugin {
    /// Unprepares every claim hostdevd holds a record of that the
    /// apiserver no longer has; a claim it has, or could not be asked
    /// about, is left alone.
    ///
    /// `missing` holds, by claim UID, when a sweep first found each claim
    /// missing; a claim is unprepared once that is `grace` ago, and one
    /// found again (or gone from hostdevd) leaves the map.
    pub async fn unprepare_gone(
        &self,
        missing: &mut HashMap<String, Instant>,
        grace: Duration,
    ) -> Result<Vec<Gone>, daemon::DaemonError> {
        let rows = daemon::call(&self.cfg.socket, DraClaimsQuery {}, DAEMON_TIMEOUT).await?;
        let before = std::mem::take(missing);
        let mut out = Vec::new();
        for row in rows {
            let c = row.claim;
            let claim = format!("{}/{} ({})", c.namespace, c.name, c.uid);
            let pc = pb::Claim {
                namespace: c.namespace.clone(),
                name: c.name.clone(),
                uid: c.uid.to_string(),
            };
            // A record without a name (never written by this driver) or
            // with one the API would refuse cannot be asked about.
            if let Err(e) = Self::claim_ref(&pc) {
                out.push(Gone::Kept {
                    claim,
                    why: e.to_string(),
                });
                continue;
            }
            let api: Api<ResourceClaim> = Api::namespaced(self.client.clone(), &c.namespace);
            let why = match api.get_opt(&c.name).await {
                Ok(None) => "the apiserver has no claim of that name",
                Ok(Some(now)) if now.metadata.uid.as_deref() != Some(pc.uid.as_str()) => {
                    "the claim of that name has another UID"
                }
                Ok(Some(_)) => continue,
                Err(e) => {
                    out.push(Gone::Kept {
                        claim,
                        why: format!("the apiserver could not be asked: {e}"),
                    });
                    continue;
                }
            };
            let since = before.get(&pc.uid).copied().unwrap_or_else(Instant::now);
            if since.elapsed() < grace {
                missing.insert(pc.uid.clone(), since);
                out.push(Gone::Waiting { claim });
                continue;
            }
            let _one = self.serial.lock().await;
            out.push(match self.unprepare_claim(&pc).await {
                Ok(()) => Gone::Unprepared { claim, why },
                Err(e) => {
                    // Still missing since then: tried again at the next
                    // sweep (a device a VM holds is refused until it goes).
                    missing.insert(pc.uid.clone(), since);
                    Gone::Kept {
                        claim,
                        why: format!("unprepare failed: {e}"),
                    }
                }
            });
        }
        Ok(out)
    }
}
