//! The cross-kind restore that `hostdevctl autostart` (and later the daemon)
//! runs: mdevs, vGPUs and vDPA devices at once — they are independent
//! hardware — into one report with a row per definition. An unusable
//! definition file is a row of its own; a kind whose kernel interface is
//! missing is reported as unavailable while the others are restored; a panic
//! is the failure of the devices it stopped, never a vanished row.

use crate::system::Devices;
use crate::{CoreError, DeviceOutcome};
use hostdev_api::{ErrorBody, Kind, Outcome, RestoreReport, RestoreRow, Unavailable};
use hostdev_store::{LoadProblem, StoreError};
use hostdev_sysfs::sriov::SriovSysfs;
use hostdev_sysfs::MdevSysfs;
use hostdev_vdpa::VdpaClient;
use std::fmt::Display;
use std::time::Duration;

/// The error body of a failure: its class, stable code, chain and target.
pub fn error_body(e: &CoreError) -> ErrorBody {
    e.body()
}

/// One report row per (parent, device, outcome).
fn rows<P: Display, I: Display>(kind: Kind, r: Vec<(P, I, DeviceOutcome)>) -> Vec<RestoreRow> {
    r.into_iter()
        .map(|(p, id, o)| row(kind, &p, &id, o))
        .collect()
}

fn row(kind: Kind, parent: &dyn Display, id: &dyn Display, o: DeviceOutcome) -> RestoreRow {
    let (outcome, error) = match o {
        DeviceOutcome::Started => (Outcome::Started, None),
        DeviceOutcome::AlreadyRunning => (Outcome::AlreadyRunning, None),
        DeviceOutcome::ParentAbsent => (Outcome::ParentAbsent, None),
        DeviceOutcome::Failed(e) => (Outcome::Failed, Some(error_body(&e))),
    };
    RestoreRow {
        kind,
        id: id.to_string(),
        parent: parent.to_string(),
        outcome,
        error,
    }
}

fn unusable(kind: Kind, p: LoadProblem) -> RestoreRow {
    let id = p.path.display().to_string();
    let e = CoreError::Store(StoreError::Definition {
        path: p.path,
        reason: p.reason,
    });
    RestoreRow {
        kind,
        id,
        parent: "-".into(),
        outcome: Outcome::Unusable,
        error: Some(error_body(&e)),
    }
}

type KindResult = Result<(Vec<RestoreRow>, Vec<LoadProblem>), CoreError>;

impl<S: MdevSysfs, V: SriovSysfs, C: VdpaClient> Devices<S, V, C> {
    /// Restores every auto-start definition of every kind; parents absent now
    /// are waited for up to `wait`.
    pub fn restore(&self, wait: Duration) -> RestoreReport {
        let (m, v, d) = std::thread::scope(|s| {
            let v = s.spawn(|| -> KindResult {
                let (r, ps) = self.vgpu.restore(wait)?;
                Ok((rows(Kind::Vgpu, r), ps))
            });
            let d = s.spawn(|| -> KindResult {
                let (r, ps) = self.vdpa.restore()?;
                Ok((rows(Kind::Vdpa, r), ps))
            });
            let m = s.spawn(|| -> KindResult {
                let r = self.mdev.autostart_wait(wait)?;
                Ok((rows(Kind::Mdev, r.devices), r.problems))
            });
            let join = |h: std::thread::ScopedJoinHandle<'_, KindResult>, kind: Kind| {
                h.join().unwrap_or_else(|_| {
                    Err(CoreError::RestorePanicked {
                        device: format!("every {kind} device"),
                    })
                })
            };
            (
                join(m, Kind::Mdev),
                join(v, Kind::Vgpu),
                join(d, Kind::Vdpa),
            )
        });
        let mut report = RestoreReport::default();
        for (kind, r) in [(Kind::Mdev, m), (Kind::Vgpu, v), (Kind::Vdpa, d)] {
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
