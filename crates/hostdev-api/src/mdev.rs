//! Requests about mediated devices, in typed form: the mdevctl personality
//! translates `--auto/--manual`, `--addattr/--delattr/--index` and
//! `--live/--defined` into these.

use hostdev_model::{MdevConfig, ParentName, StartPolicy, TypeId, Uuid};
use serde::{Deserialize, Serialize};

/// What to list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Definitions instead of running devices.
    #[serde(default)]
    pub defined: bool,
    /// Only this UUID.
    #[serde(default)]
    pub uuid: Option<Uuid>,
    /// Only this parent (compared as a string; never used as a path).
    #[serde(default)]
    pub parent: Option<String>,
}

/// Define a device (a new one, or a running one made persistent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DefineRequest {
    /// UUID; generated when absent.
    #[serde(default)]
    pub uuid: Option<Uuid>,
    /// Parent; taken from the running device when absent.
    #[serde(default)]
    pub parent: Option<ParentName>,
    /// Type; taken from the running device when absent.
    #[serde(default)]
    pub mdev_type: Option<TypeId>,
    /// Start policy (ignored when `config` is given: it has its own).
    #[serde(default)]
    pub start: StartPolicy,
    /// The whole definition (a client parses mdevctl's JSON file into it).
    #[serde(default)]
    pub config: Option<MdevConfig>,
}

/// A change to an attribute list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum AttrEdit {
    /// Insert an attribute at `index` (1-based, as mdevctl counts), or append.
    Add {
        /// Position; appended when absent.
        #[serde(default)]
        index: Option<usize>,
        /// The attribute name (validated before anything is touched).
        name: String,
        /// Its value.
        value: String,
    },
    /// Delete the attribute at `index`, or the last one.
    Delete {
        /// Position; the last when absent.
        #[serde(default)]
        index: Option<usize>,
    },
}

/// A typed edit of an mdev definition; what is not given is kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MdevEdit {
    /// Replace the whole definition (then the other fields must be empty).
    #[serde(default)]
    pub replace: Option<MdevConfig>,
    /// New type.
    #[serde(default)]
    pub mdev_type: Option<TypeId>,
    /// One attribute change.
    #[serde(default)]
    pub attr: Option<AttrEdit>,
    /// New start policy.
    #[serde(default)]
    pub start: Option<StartPolicy>,
}

/// What a modification applies to.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ModifyScope {
    /// The stored definition only.
    #[default]
    Defined,
    /// The running device only.
    Live,
    /// The running device, then the definition.
    Both,
}

impl ModifyScope {
    /// The running device is changed.
    pub fn live(self) -> bool {
        matches!(self, ModifyScope::Live | ModifyScope::Both)
    }
    /// The definition is changed.
    pub fn defined(self) -> bool {
        matches!(self, ModifyScope::Defined | ModifyScope::Both)
    }
}

/// Modify a definition and/or the running device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModifyRequest {
    /// The device.
    pub uuid: Uuid,
    /// Its parent, to pick one of several definitions.
    #[serde(default)]
    pub parent: Option<ParentName>,
    /// The change.
    pub edit: MdevEdit,
    /// What it applies to.
    #[serde(default)]
    pub scope: ModifyScope,
    /// Go on even if a callout refuses.
    #[serde(default)]
    pub force: bool,
}

/// Start a defined device, or a transient one from a type or JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// UUID; generated for transient devices when absent.
    #[serde(default)]
    pub uuid: Option<Uuid>,
    /// Parent.
    #[serde(default)]
    pub parent: Option<ParentName>,
    /// Type (transient device).
    #[serde(default)]
    pub mdev_type: Option<TypeId>,
    /// The whole definition (transient device).
    #[serde(default)]
    pub config: Option<MdevConfig>,
}
