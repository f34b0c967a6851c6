//! Boot-time restore: `start-parent-mdevs PARENT` (what the udev rule runs when
//! a parent registers) and `autostart` (every present parent, in parallel).

use super::Host;
use crate::CoreError;
use hostdev_model::{ParentName, StartPolicy, Uuid};
use hostdev_store::LoadProblem;
use hostdev_sysfs::MdevSysfs;
use std::collections::HashSet;

/// What happened to one auto-start definition.
#[derive(Debug)]
pub enum DeviceOutcome {
    /// Started now.
    Started,
    /// Was already running; left alone.
    AlreadyRunning,
    /// Its parent is not present (yet); the udev rule starts it when it appears.
    ParentAbsent,
    /// Starting it failed. Shared, so one failure that stopped several
    /// devices (an unreadable PF, no vdpa family) stands on each of their rows.
    Failed(std::sync::Arc<CoreError>),
}

/// Per-device results of a restore, in parent then definition order.
#[derive(Debug, Default)]
pub struct AutostartReport {
    /// (parent, uuid, outcome) for each auto-start definition.
    pub devices: Vec<(ParentName, Uuid, DeviceOutcome)>,
    /// Definition files that were skipped.
    pub problems: Vec<LoadProblem>,
}

impl AutostartReport {
    /// How many devices failed to start.
    pub fn failed(&self) -> usize {
        self.devices
            .iter()
            .filter(|(_, _, o)| matches!(o, DeviceOutcome::Failed(_)))
            .count()
    }
}

impl<S: MdevSysfs> Host<S> {
    /// Whether `uuid` runs on `parent` now.
    fn runs_on(&self, uuid: &Uuid, parent: &ParentName) -> bool {
        matches!(self.sysfs.device(uuid), Ok(Some(d)) if &d.parent == parent)
    }

    /// Starts every auto-start definition of `parent`, in UUID order, going on past failures.
    pub fn start_parent_mdevs(&self, parent: &ParentName) -> Result<AutostartReport, CoreError> {
        let (defs, problems) = self.store.load_parent(parent)?;
        let running: HashSet<Uuid> = self
            .sysfs
            .devices()
            .map_err(CoreError::inventory)?
            .into_iter()
            .map(|d| d.uuid)
            .collect();
        let present = self.sysfs.parent_exists(parent);
        let mut report = AutostartReport {
            problems,
            ..Default::default()
        };
        for d in defs
            .into_iter()
            .filter(|d| d.config.start == StartPolicy::Auto)
        {
            let outcome = if running.contains(&d.uuid) {
                DeviceOutcome::AlreadyRunning
            } else if !present {
                DeviceOutcome::ParentAbsent
            } else {
                match crate::error::guarded(&d.uuid, || {
                    self.start_device(&d.uuid, &d.parent, &d.config)
                }) {
                    Ok(()) => DeviceOutcome::Started,
                    // Another restorer (the udev rule, a second autostart)
                    // created it between our look and our create.
                    Err(e) if e.is_exists() && self.runs_on(&d.uuid, &d.parent) => {
                        DeviceOutcome::AlreadyRunning
                    }
                    Err(e) => DeviceOutcome::Failed(e.into()),
                }
            };
            report.devices.push((d.parent, d.uuid, outcome));
        }
        Ok(report)
    }

    /// Like [`Host::autostart`], but parents that are not present yet (a
    /// driver still loading) are waited for, up to `wait`, and restored as
    /// each appears; no fixed sleeps.
    pub fn autostart_wait(&self, wait: std::time::Duration) -> Result<AutostartReport, CoreError> {
        let mut report = self.autostart()?;
        let absent = |r: &AutostartReport| {
            let mut ps: Vec<ParentName> = r
                .devices
                .iter()
                .filter(|(_, _, o)| matches!(o, DeviceOutcome::ParentAbsent))
                .map(|(p, _, _)| p.clone())
                .collect();
            // One restore per parent, however many of its devices waited.
            ps.sort();
            ps.dedup();
            ps
        };
        // Time out with parents still absent: they stay reported as absent.
        let _ = crate::poll::until(
            wait,
            std::time::Duration::from_millis(10),
            std::time::Duration::from_millis(200),
            || {
                for p in absent(&report)
                    .iter()
                    .filter(|p| self.sysfs.parent_exists(p))
                {
                    match self.start_parent_mdevs(p) {
                        Ok(again) => {
                            report.devices.retain(|(rp, _, _)| rp != p);
                            report.devices.extend(again.devices);
                        }
                        Err(e) => report.problems.push(LoadProblem {
                            path: self.store.dir().join(p.as_str()),
                            reason: format!(
                                "its auto-start devices were not restored: {}",
                                e.chain()
                            ),
                        }),
                    }
                }
                if absent(&report).is_empty() {
                    Ok(())
                } else {
                    Err(())
                }
            },
        );
        Ok(report)
    }

    /// Restores every auto-start definition: parents in parallel, each parent's
    /// devices in order. Running devices are left alone, so it is idempotent.
    pub fn autostart(&self) -> Result<AutostartReport, CoreError> {
        let (defs, problems) = self.store.load_all()?;
        let mut parents: Vec<ParentName> = defs
            .iter()
            .filter(|d| d.config.start == StartPolicy::Auto)
            .map(|d| d.parent.clone())
            .collect();
        parents.sort();
        parents.dedup();
        let results: Vec<Result<AutostartReport, CoreError>> = std::thread::scope(|s| {
            let handles: Vec<_> = parents
                .iter()
                .map(|p| s.spawn(move || self.start_parent_mdevs(p)))
                .collect();
            handles
                .into_iter()
                .zip(&parents)
                .map(|(h, p)| {
                    h.join().unwrap_or_else(|_| {
                        Err(CoreError::RestorePanicked {
                            device: p.to_string(),
                        })
                    })
                })
                .collect()
        });
        let mut report = AutostartReport {
            problems,
            ..Default::default()
        };
        // A parent that could not be read at all is reported with its
        // devices; it never aborts the other parents' restore.
        for (r, p) in results.into_iter().zip(&parents) {
            match r {
                Ok(r) => report.devices.extend(r.devices),
                Err(e) => {
                    let msg = e.chain();
                    report.problems.push(LoadProblem {
                        path: self.store.dir().join(p.as_str()),
                        reason: format!("its auto-start devices were not restored: {msg}"),
                    });
                }
            }
        }
        Ok(report)
    }
}
