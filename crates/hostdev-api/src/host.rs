//! The declarative host file: the plan (what would change, what is blocked)
//! and what an apply did to each device.
//!
//! Owns: serde shapes only. Must not: compare or act (hostdev-core does).

use crate::ops::op;
use hostdev_model::host::HostFile;
use hostdev_model::vgpu_dm::Spec;
use serde::{Deserialize, Serialize};

/// A host file a client read and parsed (the daemon reads no client paths;
/// it checks the file again by the same rules).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostFileDoc {
    /// Where the client read it (named in messages, never opened).
    pub path: String,
    /// The file.
    pub file: HostFile,
}

/// Show what applying the file would change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostPlanRequest {
    /// The file; the host's own (`/etc/hostdev/host.toml`) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<HostFileDoc>,
    /// Plan another tool's configuration instead, translated first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import: Option<HostImport>,
}

/// NVIDIA vgpu-device-manager's configuration, to translate into a host file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostImport {
    /// Where the client read it (named in messages, never opened).
    pub path: String,
    /// The file, parsed.
    pub spec: Spec,
    /// The named configuration in it (`-c` of `nvidia-vgpu-dm`).
    pub config: String,
}

/// Make the host match the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostApplyRequest {
    /// The file; the host's own (`/etc/hostdev/host.toml`) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<HostFileDoc>,
    /// Devices (UUIDs, VF addresses) changed even though in use.
    #[serde(default)]
    pub force: Vec<String>,
}

/// What a change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Define and (auto) start a new device.
    Create,
    /// Write the definition of a device that runs as wanted.
    Define,
    /// Start a defined device that should run.
    Start,
    /// Redefine (and restart or retype) a device.
    Change,
    /// Stop and undefine a device the file no longer has.
    Remove,
}

impl Action {
    /// The word shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Define => "define",
            Action::Start => "start",
            Action::Change => "change",
            Action::Remove => "remove",
        }
    }
}

/// What a change is about.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// A mediated device.
    Mdev,
    /// A PF's VF count.
    Sriov,
    /// A VF's vGPU type.
    Vgpu,
    /// A vDPA device.
    Vdpa,
}

impl ChangeKind {
    /// The word shown.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Mdev => "mdev",
            ChangeKind::Sriov => "sriov",
            ChangeKind::Vgpu => "vgpu",
            ChangeKind::Vdpa => "vdpa",
        }
    }
}

impl std::fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What became of one change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ApplyResult {
    /// Made.
    Done,
    /// It failed (`error` says why).
    Failed,
    /// Made, then undone because another step of its parent, PF or
    /// management device failed.
    RolledBack,
    /// Not tried: a step of its group failed first.
    NotTried,
    /// Left alone: the device is in use (`--force` it).
    Blocked,
}

impl ApplyResult {
    /// The word shown.
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyResult::Done => "done",
            ApplyResult::Failed => "failed",
            ApplyResult::RolledBack => "rolled-back",
            ApplyResult::NotTried => "not-tried",
            ApplyResult::Blocked => "blocked",
        }
    }
}

/// One device's difference between the file and the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Change {
    /// What it is about.
    pub kind: ChangeKind,
    /// The device (UUID).
    pub id: String,
    /// Its parent.
    pub parent: String,
    /// What applying does.
    pub action: Action,
    /// What it is now (`-` when nothing).
    pub from: String,
    /// What the file wants (`-` when removed).
    pub to: String,
    /// Why: a sentence. For a blocked change, what holds the device.
    pub why: String,
}

/// The diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Plan {
    /// What apply would do.
    pub changes: Vec<Change>,
    /// What apply will not do because the device is in use (`--force ID`).
    pub blocked: Vec<Change>,
    /// Devices already as the file wants.
    pub unchanged: usize,
    /// Sentences about entries that select nothing here.
    pub notes: Vec<String>,
    /// What an import could not carry over (a type no GPU here offers, a
    /// GPU index this host lacks): the plan then removes what the
    /// configuration meant to keep, so the CLI warns and exits 1.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The host file an import translated to (save it as
    /// `/etc/hostdev/host.toml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// One change's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Applied {
    /// The change.
    pub change: Change,
    /// What became of it.
    pub result: ApplyResult,
    /// Why it failed (the error's sentence), or what blocks it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Every device's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ApplyReport {
    /// In the plan's order, blocked ones last.
    pub outcomes: Vec<Applied>,
    /// Devices already as the file wants.
    pub unchanged: usize,
    /// The plan's notes.
    pub notes: Vec<String>,
}

impl ApplyReport {
    /// How many changes had this result.
    pub fn count(&self, result: ApplyResult) -> usize {
        self.outcomes.iter().filter(|o| o.result == result).count()
    }

    /// How many changes failed.
    pub fn failed(&self) -> usize {
        self.count(ApplyResult::Failed)
    }

    /// How many were undone or not tried because a step of their parent
    /// failed.
    pub fn undone(&self) -> usize {
        self.count(ApplyResult::RolledBack) + self.count(ApplyResult::NotTried)
    }
}

op!(HostPlanRequest => Plan, Post, "/v1/host/plan", "What applying a host file would change, and what is blocked because it is in use.");
op!(HostApplyRequest => ApplyReport, Post, "/v1/host/apply", "Make the host match a host file; devices in use are left alone unless forced.");
