//! The cross-kind restore that `hostdevctl autostart` (and the daemon)
//! runs: every registered kind ([`crate::kind`]) at once — they are independent
//! hardware — into one report with a row per definition. An unusable
//! definition file is a row of its own; a kind whose kernel interface is
//! missing is reported as unavailable while the others are restored; a panic
//! is the failure of the devices it stopped, never a vanished row.

use crate::kind::{unusable, KindRestore};
use crate::system::Devices;
use crate::CoreError;
use crate::Interfaces;
use hostdev_api::{ErrorBody, RestoreReport, Unavailable};
use std::time::Duration;

/// The error body of a failure: its class, stable code, chain and target.
pub fn error_body(e: &CoreError) -> ErrorBody {
    e.body()
}

impl<K: Interfaces> Devices<K> {
    /// Restores every auto-start definition of every registered kind, each
    /// on its own thread; parents absent now are waited for up to `wait`.
    pub fn restore(&self, wait: Duration) -> RestoreReport {
        let kinds = self.kinds();
        let results: Vec<KindRestore> = std::thread::scope(|s| {
            let hs: Vec<_> = kinds
                .iter()
                .map(|k| s.spawn(move || k.restore(wait)))
                .collect();
            hs.into_iter()
                .zip(kinds.iter())
                .map(|(h, k)| {
                    h.join().unwrap_or_else(|_| {
                        Err(CoreError::RestorePanicked {
                            device: format!("every {} device", k.kind()),
                        })
                    })
                })
                .collect()
        });
        let mut report = RestoreReport::default();
        for (k, r) in kinds.iter().zip(results) {
            let kind = k.kind();
            match r {
                Ok((rows, ps)) => {
                    report
                        .rows
                        .extend(ps.into_iter().map(|p| unusable(kind, p)));
                    report.rows.extend(rows);
                }
                // The kind's definitions could not be read at all (its
                // directory), or its worker panicked outside any device.
                Err(e) => {
                    report.unavailable.push(Unavailable {
                        kind,
                        reason: e.chain(),
                    });
                }
            }
        }
        report
    }
}
