//! What the core answers: the unified inventory, restore reports, vGPU type
//! availability, and the error body every failure carries (stable code and
//! sentence).

use crate::{ErrorBody, Kind, Target};
use hostdev_model::pci::PciAddress;
use hostdev_model::StartPolicy;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A definition file that could not be used; it is skipped and named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Problem {
    /// The kind of definition.
    pub kind: Kind,
    /// The file.
    pub path: PathBuf,
    /// Why, as a sentence fragment.
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "skipping {}: {}", self.path.display(), self.reason)
    }
}

/// A kind whose kernel interface is not there (a module not loaded); the
/// other kinds are still reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Unavailable {
    /// The kind.
    pub kind: Kind,
    /// Why, as a sentence.
    pub reason: String,
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} devices are not shown: {}", self.kind, self.reason)
    }
}

/// Where a device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeviceState {
    /// It exists (mdev created, VF carries its type, vDPA device present).
    Running,
    /// Defined, but not there now.
    Stopped,
    /// Defined on a VF that does not exist now.
    Absent,
}

impl DeviceState {
    /// The word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::Running => "running",
            DeviceState::Stopped => "stopped",
            DeviceState::Absent => "absent",
        }
    }
}

/// A device's type as every listing names it: its id (an mdev type id, a
/// vGPU type's card-local number, a vDPA device's class) and, where the
/// driver gives one, its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TypeRef {
    /// The id: `nvidia-222`, `1150`, `net`.
    pub id: String,
    /// The name: `GRID T4-2Q`, `NVIDIA L40S-4Q`.
    pub name: Option<String>,
}

impl TypeRef {
    /// A type by id alone.
    pub fn id(id: impl Into<String>) -> Self {
        TypeRef {
            id: id.into(),
            name: None,
        }
    }

    /// A type by id and name.
    pub fn named(id: impl Into<String>, name: impl Into<String>) -> Self {
        TypeRef {
            id: id.into(),
            name: Some(name.into()),
        }
    }
}

impl std::fmt::Display for TypeRef {
    /// `id`, or `id (name)` when it has a name.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{} ({n})", self.id),
            None => f.write_str(&self.id),
        }
    }
}

/// One device of any kind in the unified inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DeviceRow {
    /// Its kind.
    pub kind: Kind,
    /// UUID, VF address or vDPA name, as text.
    pub id: String,
    /// The device, typed: what an operation on it takes.
    pub target: Target,
    /// Parent, PF or management device.
    pub parent: String,
    /// Its type, when known (a vDPA device that is not created has none).
    #[serde(rename = "type")]
    pub type_: Option<TypeRef>,
    /// Where it is.
    pub state: DeviceState,
    /// Start policy; `None` for a device nobody defined (transient).
    pub start: Option<StartPolicy>,
}

/// Every device hostdev manages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Inventory {
    /// Devices: mdevs, then vDPA, then vGPU VFs.
    pub devices: Vec<DeviceRow>,
    /// Definition files that were skipped.
    pub problems: Vec<Problem>,
    /// Kinds that could not be asked.
    pub unavailable: Vec<Unavailable>,
}

/// What happened to one auto-start definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Created now.
    Started,
    /// Was there already; left alone.
    AlreadyRunning,
    /// Its parent is not there (yet).
    ParentAbsent,
    /// Creating it failed.
    Failed,
    /// Its definition file cannot be used.
    Unusable,
}

impl Outcome {
    /// The word for it, as the report shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Started => "started",
            Outcome::AlreadyRunning => "already running",
            Outcome::ParentAbsent => "parent absent",
            Outcome::Failed => "failed",
            Outcome::Unusable => "unusable definition",
        }
    }

    /// The snake_case word of the wire form (`already_running`), for labels.
    pub fn key(self) -> &'static str {
        match self {
            Outcome::Started => "started",
            Outcome::AlreadyRunning => "already_running",
            Outcome::ParentAbsent => "parent_absent",
            Outcome::Failed => "failed",
            Outcome::Unusable => "unusable",
        }
    }

    /// Whether it counts as a failure of the restore.
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::Failed | Outcome::Unusable)
    }
}

/// One row of a restore report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RestoreRow {
    /// The kind.
    pub kind: Kind,
    /// UUID, VF address or vDPA name (the file, for an unusable definition).
    pub id: String,
    /// Parent, PF or management device.
    pub parent: String,
    /// What happened.
    pub outcome: Outcome,
    /// Why it failed.
    pub error: Option<ErrorBody>,
}

/// The result of restoring every auto-start definition of every kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RestoreReport {
    /// One row per definition, unusable files included.
    pub rows: Vec<RestoreRow>,
    /// Kinds that could not be restored because their kernel interface is missing.
    pub unavailable: Vec<Unavailable>,
}

impl RestoreReport {
    /// How many rows are failures.
    pub fn failed(&self) -> usize {
        self.rows.iter().filter(|r| r.outcome.is_failure()).count()
    }
}

/// A vGPU type and how many of a PF's VFs can take it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VgpuTypeRow {
    /// Card-local id.
    pub id: u32,
    /// Name.
    pub name: String,
    /// VFs that list it as creatable now.
    pub free_vfs: usize,
}

/// The vGPU types of one PF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PfTypes {
    /// The PF.
    pub pf: PciAddress,
    /// How many VFs it has enabled.
    pub vfs: usize,
    /// Types by id.
    pub types: Vec<VgpuTypeRow>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_keys_are_the_wire_form() {
        for o in [
            Outcome::Started,
            Outcome::AlreadyRunning,
            Outcome::ParentAbsent,
            Outcome::Failed,
            Outcome::Unusable,
        ] {
            assert_eq!(serde_json::to_value(o).unwrap(), o.key());
        }
    }
}
