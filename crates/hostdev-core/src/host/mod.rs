//! The declarative host file: `plan` compares what the file wants with the
//! definitions and running devices, and `apply` makes it so, one device at
//! a time, leaving alone what is in use (a VM holds its VFIO group, or a
//! pool has allocated it) unless forced.
//!
//! Owns: the comparison, the in-use test, the record of what the file made
//! (only those are removed when the file drops them), and the order of
//! apply's steps. Must not: parse the file (hostdev-model's `host`), print.
//! Here: mdevs and the shared shapes; `sriov` (NVIDIA PFs and VF types) and
//! `vdpa` plan their own kinds.

mod apply;
mod error;
pub use error::HostError;
mod import;
mod sriov;
mod vdpa;

use crate::Interfaces;
use crate::{CoreError, Devices};
use hostdev_api::Kind;
use hostdev_api::{Action, Change, ChangeKind, HostFileDoc, Plan};
use hostdev_model::host::{desired_mdevs, DesiredMdev, HostFile, Managed, ParentOffer};
use hostdev_model::pci::PciAddress;
use hostdev_model::vdpa::VdpaDefinition;
use hostdev_model::{MdevConfig, StartPolicy, Uuid};
use hostdev_store::{ManagedStore, PoolDb};
use hostdev_sysfs::{ActiveDevice, MdevSysfs};

/// Pool allocations held now, read once per plan.
#[derive(Debug, Default)]
pub(crate) struct Holds {
    /// Device id → what holds it.
    by_id: std::collections::BTreeMap<String, String>,
    /// The pool state could not be read (why): then any device may be
    /// held, and what would stop one is blocked (unknown blocks, never
    /// allows).
    unknown: Option<String>,
}

impl Holds {
    /// What holds the device `id`, or that it cannot be known.
    pub fn get(&self, id: &str) -> Option<String> {
        self.by_id.get(id).cloned().or_else(|| {
            self.unknown.as_ref().map(|why| {
                format!("pool state cannot be read ({why}), so whether a pool holds it is unknown")
            })
        })
    }
}

/// Devices already as the file wants them: (kind, id).
pub(crate) type Kept = Vec<(&'static str, String)>;

/// What a step makes.
#[derive(Debug, Clone)]
pub(crate) enum Want {
    /// An mdev as the file has it.
    Mdev(DesiredMdev),
    /// A PF's VF count.
    Pf { numvfs: u32, start: StartPolicy },
    /// A VF's type, by name (the VF's address may be known only once the
    /// PF's VFs are enabled).
    Vf {
        index: u32,
        type_name: String,
        start: StartPolicy,
    },
    /// A vDPA device.
    Vdpa(VdpaDefinition),
    /// Nothing: a removal.
    Gone,
}

/// What a plan step needs to act.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub change: Change,
    /// What it makes.
    pub want: Want,
    /// It runs now.
    pub running: bool,
    /// Blocked only because this device (in use, on the same parent) keeps
    /// the parent's type: forcing that one releases this one.
    pub waits_on: Option<String>,
}

impl Step {
    /// The wanted mdev, for an mdev step that makes one.
    pub fn mdev(&self) -> Option<&DesiredMdev> {
        match &self.want {
            Want::Mdev(d) => Some(d),
            _ => None,
        }
    }

    /// Steps that must run one after another (and are restored together
    /// when one fails): an mdev parent, a PF with its VFs, a vDPA
    /// management device.
    pub fn group(&self) -> String {
        let family = match self.change.kind.as_str() {
            "sriov" | "vgpu" => "pf",
            k => k,
        };
        format!("{family}:{}", self.change.parent)
    }
}

/// A plan before it is shown or applied.
pub(crate) struct Steps {
    /// What apply does.
    pub steps: Vec<Step>,
    /// What is in use.
    pub blocked: Vec<Step>,
    /// Devices already as wanted.
    pub unchanged: usize,
    /// Entries that select nothing; kinds not applied yet.
    pub notes: Vec<String>,
    /// Devices already as wanted, by kind and id.
    pub kept: Kept,
}

fn describe(c: &MdevConfig) -> String {
    let mut s = format!("{} {}", c.mdev_type, c.start);
    for a in &c.attrs {
        s.push_str(&format!(" {}={}", a.name, a.value));
    }
    s
}

/// The largest host file read (a host file of 10 000 entries is ~1 MiB).
pub const HOST_FILE_LIMIT: u64 = 16 << 20;

impl<K: Interfaces> Devices<K> {
    fn host_id(&self, f: &HostFile) -> Result<String, CoreError> {
        if let Some(id) = f.host.id.as_ref().filter(|s| !s.trim().is_empty()) {
            return Ok(id.trim().to_string());
        }
        std::fs::read_to_string(self.root.join("etc/machine-id"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .ok_or(CoreError::from(HostError::NoHostId))
    }

    /// What holds a running mdev, if anything: a VM (its VFIO group is
    /// open elsewhere) or a pool allocation.
    pub(crate) fn mdev_in_use(&self, u: &Uuid, holds: &Holds) -> Option<String> {
        self.in_use(Kind::Mdev, &u.to_string(), holds)
    }

    /// What holds a VF with a vGPU type: a VM or a pool allocation.
    pub(crate) fn vf_in_use(&self, vf: &PciAddress, holds: &Holds) -> Option<String> {
        self.in_use(Kind::Vgpu, vf.as_str(), holds)
    }

    /// What holds a device of `kind`: its VFIO group held elsewhere (for a
    /// kind VFIO reaches; probing opens nothing else), or a pool allocation
    /// under its id.
    fn in_use(&self, kind: Kind, id: &str, holds: &Holds) -> Option<String> {
        if let Some(target) = self.kind(kind).vfio_target(id) {
            if let Some(group) = self.vfio.held(&target) {
                return Some(format!("in use: VFIO group {group} is held (a VM?)"));
            }
        }
        holds.get(id)
    }

    /// Every pool allocation held now, by device id, with its sentence:
    /// read once per plan. A database that cannot be read (a newer schema,
    /// damage, a lost file) makes every hold unknown, never none.
    fn pool_holds(&self) -> Holds {
        let root = &self.root;
        if !PoolDb::path_under(root).exists() && !PoolDb::marker_under(root).exists() {
            return Holds::default();
        }
        let now = (self.clock)();
        let all = PoolDb::open(root).and_then(|db| db.read(|tx| tx.all_devices()));
        match all {
            Ok(all) => Holds {
                by_id: all
                    .into_iter()
                    .filter(|r| r.held_at(now))
                    .map(|r| {
                        let why = format!(
                            "in use: pool {} allocated it to {}",
                            r.pool,
                            r.consumer.as_deref().unwrap_or("a consumer")
                        );
                        (r.id, why)
                    })
                    .collect(),
                unknown: None,
            },
            Err(e) => Holds {
                by_id: Default::default(),
                unknown: Some(crate::chain(&e)),
            },
        }
    }

    /// The record of what the host file made; one that cannot be read is
    /// an error (see [`CoreError::from(HostError::Record)`]).
    pub(crate) fn load_record(&self) -> Result<Managed, CoreError> {
        let store = ManagedStore::new(&self.root);
        store.load_record().map_err(|e| {
            CoreError::from(HostError::Record {
                path: store.path().to_path_buf(),
                why: match e {
                    hostdev_store::StoreError::Definition { reason, .. } => reason,
                    e => crate::chain(&e),
                },
            })
        })
    }

    /// The steps of `doc` (checked again by the file's rules: it may have
    /// come as JSON), or of the host's own file when none is given.
    pub(crate) fn host_steps(&self, doc: Option<&HostFileDoc>) -> Result<Steps, CoreError> {
        let own;
        let doc = match doc {
            Some(d) => d,
            None => {
                own = self.own_host_file()?;
                &own
            }
        };
        doc.file.validate().map_err(|e| {
            CoreError::from(HostError::BadFile {
                path: doc.path.clone(),
                why: e.to_string(),
            })
        })?;
        self.steps_of(&doc.file, &doc.path)
    }

    /// `/etc/hostdev/host.toml` under the root prefix, read as a regular
    /// file of at most [`HOST_FILE_LIMIT`] bytes.
    fn own_host_file(&self) -> Result<HostFileDoc, CoreError> {
        let path = self.root.join("etc/hostdev/host.toml");
        let bad = |why: String| {
            CoreError::from(HostError::BadFile {
                path: path.display().to_string(),
                why,
            })
        };
        let bytes =
            hostdev_fs::read_regular_within(&path, hostdev_fs::Limits::at_most(HOST_FILE_LIMIT))
                .map_err(|e| bad(format!("it cannot be read ({e})")))?
                .ok_or_else(|| bad("there is no such file".into()))?;
        let text = String::from_utf8(bytes).map_err(|_| bad("it is not UTF-8 text".into()))?;
        let file = HostFile::parse(&text).map_err(|e| bad(e.to_string()))?;
        Ok(HostFileDoc {
            path: path.display().to_string(),
            file,
        })
    }

    pub(crate) fn steps_of(&self, f: &HostFile, path: &str) -> Result<Steps, CoreError> {
        let bad = |why: String| {
            CoreError::from(HostError::BadFile {
                path: path.to_string(),
                why,
            })
        };
        let f = f.clone();
        let host_id = self.host_id(&f)?;
        let sysfs = &self.mdev.sysfs;
        let mut offers = Vec::new();
        for p in sysfs.parents().map_err(CoreError::inventory)? {
            let types = sysfs
                .types(&p)
                .map_err(CoreError::inventory)?
                .into_iter()
                .map(|t| t.type_id)
                .collect();
            offers.push(ParentOffer {
                facts: sysfs.parent_facts(&p),
                types,
            });
        }
        let (want, mut notes) =
            desired_mdevs(&f, &host_id, &offers).map_err(|e| bad(e.to_string()))?;
        let (defs, _problems) = self.mdev.store.load_all()?;
        let running: Vec<ActiveDevice> = sysfs.devices().map_err(CoreError::inventory)?;
        let managed = self.load_record()?;
        let holds = self.pool_holds();
        let mut steps = Vec::new();
        let mut blocked = Vec::new();
        let mut kept: Kept = Vec::new();
        // A step whose device something holds is blocked, with the holder
        // as its reason.
        let mut file = |step: Step, holder: Option<String>| match holder {
            Some(why) => blocked.push(Step {
                change: Change { why, ..step.change },
                ..step
            }),
            None => steps.push(step),
        };
        for d in &want {
            let def = defs.iter().find(|x| x.uuid == d.uuid);
            let live = running.iter().find(|x| x.uuid == d.uuid);
            let to = describe(&d.config);
            let change = |action: Action, from: String, why: &str| Change {
                kind: ChangeKind::Mdev,
                id: d.uuid.to_string(),
                parent: d.parent.to_string(),
                action,
                from,
                to: to.clone(),
                why: why.to_string(),
            };
            let auto = d.config.start == hostdev_model::StartPolicy::Auto;
            let same_live =
                live.is_some_and(|l| l.parent == d.parent && l.mdev_type == d.config.mdev_type);
            let (action, from, why) = match def {
                None if live.is_none() => (
                    Action::Create,
                    "-".to_string(),
                    "the file has it, the host does not",
                ),
                Some(x) if x.parent == d.parent && x.config == d.config => {
                    if auto && live.is_none() {
                        (
                            Action::Start,
                            describe(&x.config),
                            "defined to start automatically, not running",
                        )
                    } else if live.is_some() && !same_live {
                        (
                            Action::Change,
                            describe(&x.config),
                            "it runs with another type or parent",
                        )
                    } else {
                        kept.push(("mdev", d.uuid.to_string()));
                        continue;
                    }
                }
                None if same_live => (
                    Action::Define,
                    "running, not defined".into(),
                    "it runs as wanted but has no definition",
                ),
                Some(x) => (
                    Action::Change,
                    format!("{} on {}", describe(&x.config), x.parent),
                    "its definition differs",
                ),
                None => (
                    Action::Change,
                    "running with another type or parent".into(),
                    "it runs, but not as wanted",
                ),
            };
            // A change restarts a running device when what runs changes.
            let restarts = live.is_some()
                && (action == Action::Change)
                && !(same_live && def.is_some_and(|x| x.config.attrs == d.config.attrs));
            let step = Step {
                change: change(action, from, why),
                want: Want::Mdev(d.clone()),
                running: live.is_some(),
                waits_on: None,
            };
            file(
                step,
                restarts
                    .then(|| self.mdev_in_use(&d.uuid, &holds))
                    .flatten(),
            );
        }
        for u in &managed.mdev {
            if want.iter().any(|d| &d.uuid == u) {
                continue;
            }
            let def = defs.iter().find(|x| &x.uuid == u);
            let live = running.iter().find(|x| &x.uuid == u);
            let Some(parent) = def
                .map(|x| x.parent.clone())
                .or(live.map(|l| l.parent.clone()))
            else {
                continue;
            };
            let step = Step {
                change: Change {
                    kind: ChangeKind::Mdev,
                    id: u.to_string(),
                    parent: parent.to_string(),
                    action: Action::Remove,
                    from: def
                        .map(|x| describe(&x.config))
                        .unwrap_or_else(|| "running".into()),
                    to: "-".into(),
                    why: "the file made it and no longer has it".into(),
                },
                want: Want::Gone,
                running: live.is_some(),
                waits_on: None,
            };
            file(step, live.and_then(|_| self.mdev_in_use(u, &holds)));
        }
        for (step, holder) in self
            .sriov_steps(&f, &managed, &holds, &mut kept, &mut notes, path)?
            .into_iter()
            .chain(self.vdpa_steps(&f, &managed, &holds, &mut kept)?)
        {
            file(step, holder);
        }
        self.wait_for_held(&mut steps, &mut blocked, &running, &holds);
        Ok(Steps {
            steps,
            blocked,
            unchanged: kept.len(),
            notes,
            kept,
        })
    }

    /// A parent that keeps a device in use keeps its type: a creation or
    /// change to another type there, which the parent has no room for now,
    /// waits for that device (the vendor allows one type at a time). The
    /// device is a blocked step's, or one the file does not have at all
    /// that a pool or a VM holds (a pool's own on-demand device): forcing
    /// the first releases the waiting steps, the second must be freed.
    fn wait_for_held(
        &self,
        steps: &mut Vec<Step>,
        blocked: &mut Vec<Step>,
        running: &[ActiveDevice],
        holds: &Holds,
    ) {
        let touched: std::collections::BTreeSet<String> = steps
            .iter()
            .chain(blocked.iter())
            .filter(|s| s.change.kind == ChangeKind::Mdev)
            .map(|s| s.change.id.clone())
            .collect();
        // In-use devices no step touches, by parent (asked once per parent
        // that a step needs room on).
        let mut foreign: std::collections::BTreeMap<
            String,
            Vec<(String, hostdev_model::TypeId, String)>,
        > = Default::default();
        let held: Vec<(String, String, hostdev_model::TypeId)> = blocked
            .iter()
            .filter(|b| b.change.kind == ChangeKind::Mdev)
            .filter_map(|b| {
                let u: Uuid = b.change.id.parse().ok()?;
                let l = running.iter().find(|l| l.uuid == u)?;
                Some((
                    l.parent.to_string(),
                    b.change.id.clone(),
                    l.mdev_type.clone(),
                ))
            })
            .collect();
        let mut i = 0;
        while i < steps.len() {
            let s = &steps[i];
            let needs_room = matches!(
                s.change.action,
                Action::Create | Action::Change | Action::Start
            );
            let waits = s.mdev().filter(|_| needs_room).and_then(|d| {
                let room = || {
                    self.mdev
                        .sysfs
                        .available_instances(&d.parent, &d.config.mdev_type)
                        .ok()
                        .flatten()
                        .unwrap_or(0)
                };
                if let Some((_, id, t)) = held
                    .iter()
                    .find(|(p, _, t)| p == d.parent.as_str() && t != &d.config.mdev_type)
                {
                    return (room() <= 0).then(|| (id.clone(), t.clone(), None));
                }
                if room() > 0 {
                    return None;
                }
                let others = foreign.entry(d.parent.to_string()).or_insert_with(|| {
                    running
                        .iter()
                        .filter(|l| l.parent == d.parent && !touched.contains(&l.uuid.to_string()))
                        .filter_map(|l| {
                            self.mdev_in_use(&l.uuid, holds)
                                .map(|why| (l.uuid.to_string(), l.mdev_type.clone(), why))
                        })
                        .collect()
                });
                others
                    .iter()
                    .find(|(_, t, _)| t != &d.config.mdev_type)
                    .map(|(id, t, why)| (id.clone(), t.clone(), Some(why.clone())))
            });
            match waits {
                Some((id, t, None)) => {
                    let mut w = steps.remove(i);
                    w.change.why = format!(
                        "waits for {id}: it is in use and keeps {} on type {t}, and the parent has no room for another type (apply --force {id} to take both)",
                        w.change.parent
                    );
                    w.waits_on = Some(id);
                    blocked.push(w);
                }
                Some((id, t, Some(why))) => {
                    let mut w = steps.remove(i);
                    w.change.why = format!(
                        "waits for {id}, which the file does not have ({why}): it keeps {} on type {t}, and the parent has no room for another type (free it first)",
                        w.change.parent
                    );
                    blocked.push(w);
                }
                None => i += 1,
            }
        }
    }

    /// The diff between a host file and the host.
    pub fn host_plan(&self, doc: Option<&HostFileDoc>) -> Result<Plan, CoreError> {
        Ok(self.plan_of(self.host_steps(doc)?))
    }

    fn plan_of(&self, s: Steps) -> Plan {
        let Steps {
            steps,
            blocked,
            unchanged,
            notes,
            ..
        } = s;
        Plan {
            changes: steps.into_iter().map(|s| s.change).collect(),
            blocked: blocked.into_iter().map(|s| s.change).collect(),
            unchanged,
            notes,
            warnings: Vec::new(),
            file: None,
        }
    }
}
