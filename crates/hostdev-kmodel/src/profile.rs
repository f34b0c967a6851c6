//! Profiles: what hardware a modelled host has (parents and their types,
//! SR-IOV PFs and their vGPU types, modules, injected faults). The simulator
//! reads them from TOML (schema in docs/simulator.md); the in-process fakes
//! build them with the constructors here.
//!
//! Owns: the description of hardware and its validation. Must not: hold
//! run-time state (that is [`crate::Kernel`]'s).

use serde::Deserialize;

/// A whole simulated host.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// One line saying what it is.
    #[serde(default)]
    pub description: String,
    /// mdev parents.
    #[serde(default, rename = "parent")]
    pub parents: Vec<ParentProfile>,
    /// SR-IOV physical functions (NVIDIA vGPU without mdev).
    #[serde(default, rename = "sriov")]
    pub sriov: Vec<SriovProfile>,
    /// Injected failures.
    #[serde(default, rename = "fault")]
    pub faults: Vec<Fault>,
    /// Loaded modules that declare versions (`/sys/module/<name>/`); a PCI
    /// driver of the same name links to its module.
    #[serde(default, rename = "module")]
    pub modules: Vec<ModuleProfile>,
}

/// A loaded kernel module.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleProfile {
    /// Its name (`nvidia`).
    pub name: String,
    /// `version`.
    pub version: Option<String>,
    /// `srcversion`.
    pub srcversion: Option<String>,
}

/// How a parent counts capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Each type has its own maximum (mtty, mdpy).
    #[default]
    PerType,
    /// Only one type at a time per parent (NVIDIA mdev vGPUs).
    OneType,
    /// One budget shared by all types (GVT-g, mbochs).
    SharedBudget,
}

/// An mdev parent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParentProfile {
    /// Device name (a PCI address, or a virtual name such as `mtty`).
    pub name: String,
    /// Path under /sys/devices (default: `pci0000:00/<name>` for PCI
    /// addresses, `virtual/<name>/<name>` otherwise).
    pub devpath: Option<String>,
    /// PCI vendor id (`0x10de`), for PCI parents.
    pub vendor: Option<String>,
    /// PCI device id.
    pub device: Option<String>,
    /// NUMA node.
    #[serde(default)]
    pub numa_node: i32,
    /// Bound driver name.
    pub driver: Option<String>,
    /// Capacity rule.
    #[serde(default)]
    pub policy: Policy,
    /// Budget units for `shared-budget`.
    #[serde(default)]
    pub budget: u32,
    /// Milliseconds a create takes.
    #[serde(default)]
    pub create_latency_ms: u64,
    /// Milliseconds a remove takes.
    #[serde(default)]
    pub remove_latency_ms: u64,
    /// The parent registers this long after start or reboot (driver still loading).
    #[serde(default)]
    pub appear_after_ms: u64,
    /// errno for a create beyond capacity (`EUSERS` like the samples, `EINVAL`, `ENOSPC`).
    pub full_errno: Option<String>,
    /// Types.
    #[serde(rename = "type")]
    pub types: Vec<TypeProfile>,
}

/// One mdev type.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TypeProfile {
    /// Type id (directory name).
    pub id: String,
    /// `name`.
    pub name: Option<String>,
    /// `description`.
    pub description: Option<String>,
    /// `device_api`.
    #[serde(default = "vfio_pci")]
    pub device_api: String,
    /// Maximum instances (per-type, one-type).
    #[serde(default)]
    pub max: u32,
    /// Budget units per instance (shared-budget).
    #[serde(default)]
    pub cost: u32,
    /// Writable vendor attributes devices of this type have.
    #[serde(default)]
    pub attrs: Vec<String>,
    /// Validation of attributes: `ap-matrix` (vfio-ap) or none.
    pub attr_rules: Option<String>,
}

fn vfio_pci() -> String {
    "vfio-pci".into()
}

impl TypeProfile {
    /// A vfio-pci type with at most `max` instances and no attributes.
    pub fn new(id: &str, max: u32) -> TypeProfile {
        TypeProfile {
            id: id.to_string(),
            name: None,
            description: None,
            device_api: vfio_pci(),
            max,
            cost: 0,
            attrs: Vec::new(),
            attr_rules: None,
        }
    }

    /// Devices of this type have these attribute files.
    pub fn with_attrs(mut self, attrs: &[&str]) -> TypeProfile {
        self.attrs = attrs.iter().map(|s| s.to_string()).collect();
        self
    }
}

impl ParentProfile {
    /// A parent named `name` counting capacity by `policy` (`budget` units
    /// for a shared budget), present at once, instant.
    pub fn new(name: &str, policy: Policy, budget: u32, types: Vec<TypeProfile>) -> ParentProfile {
        ParentProfile {
            name: name.to_string(),
            devpath: None,
            vendor: None,
            device: None,
            numa_node: 0,
            driver: None,
            policy,
            budget,
            create_latency_ms: 0,
            remove_latency_ms: 0,
            appear_after_ms: 0,
            full_errno: None,
            types,
        }
    }
}

/// A PCI SR-IOV physical function; with `vgpu_type`s, one with NVIDIA's
/// vendor-specific VFIO interface (`nvidia/` on each VF).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SriovProfile {
    /// PCI address of the PF.
    pub address: String,
    /// PCI vendor id.
    #[serde(default = "nvidia")]
    pub vendor: String,
    /// PCI device id.
    pub device: Option<String>,
    /// NUMA node.
    #[serde(default)]
    pub numa_node: i32,
    /// The PF driver (`nvidia`, `igb`).
    #[serde(default = "nvidia_driver")]
    pub driver: String,
    /// The driver that binds the PF's VFs when they are added (`igbvf`;
    /// NVIDIA's VFs stay with `nvidia`, which refuses to give them to
    /// `vfio-pci`).
    #[serde(default = "nvidia_vf_driver")]
    pub vf_driver: Option<String>,
    /// `sriov_totalvfs` while the PF driver is bound (the driver's limit).
    pub total_vfs: u32,
    /// `sriov_totalvfs` with no driver bound: the capability's TotalVFs
    /// (default: `total_vfs`). The 82576 says 8, `igb` lowers it to 7.
    pub cap_total_vfs: Option<u32>,
    /// The capability's First VF Offset, in routing ids from the PF's.
    #[serde(default = "first_vf_offset")]
    pub first_vf_offset: u32,
    /// The capability's VF Stride.
    #[serde(default = "one")]
    pub vf_stride: u32,
    /// Frame buffer to share among VFs, in MiB.
    #[serde(default)]
    pub framebuffer_mb: u32,
    /// The driver loads (and the PF appears) this long after start or reboot.
    #[serde(default)]
    pub appear_after_ms: u64,
    /// After `sriov_numvfs` is written, VFs' `nvidia/` directories appear this much later.
    #[serde(default)]
    pub vf_ready_ms: u64,
    /// vGPU types with this card's own numeric ids (none: a PF without
    /// NVIDIA's interface).
    #[serde(default, rename = "vgpu_type")]
    pub vgpu_types: Vec<VgpuTypeProfile>,
}

fn nvidia_driver() -> String {
    "nvidia".into()
}

fn nvidia_vf_driver() -> Option<String> {
    Some(nvidia_driver())
}

fn first_vf_offset() -> u32 {
    4
}

fn one() -> u32 {
    1
}

impl SriovProfile {
    /// An NVIDIA PF at `address` with `total_vfs` VFs, `framebuffer_mb` MiB
    /// to share and these (id, name, MiB) vGPU types; VFs at function 4
    /// onwards, ready at once.
    pub fn nvidia(
        address: &str,
        total_vfs: u32,
        framebuffer_mb: u32,
        types: &[(u32, &str, u32)],
    ) -> SriovProfile {
        SriovProfile {
            address: address.to_string(),
            vendor: nvidia(),
            device: None,
            numa_node: 0,
            driver: nvidia_driver(),
            vf_driver: nvidia_vf_driver(),
            total_vfs,
            cap_total_vfs: None,
            first_vf_offset: first_vf_offset(),
            vf_stride: 1,
            framebuffer_mb,
            appear_after_ms: 0,
            vf_ready_ms: 0,
            vgpu_types: types
                .iter()
                .map(|(id, name, fb)| VgpuTypeProfile {
                    id: *id,
                    name: name.to_string(),
                    framebuffer_mb: *fb,
                })
                .collect(),
        }
    }

    /// Whether its VFs have NVIDIA's `nvidia/` files.
    pub fn has_vgpu(&self) -> bool {
        !self.vgpu_types.is_empty()
    }
}

fn nvidia() -> String {
    "0x10de".into()
}

/// A vGPU type of an SR-IOV card.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VgpuTypeProfile {
    /// Card-local numeric id.
    pub id: u32,
    /// Name (`NVIDIA L40S-4Q`).
    pub name: String,
    /// Frame buffer per VF, MiB.
    pub framebuffer_mb: u32,
}

/// An injected failure: one row of the model's fault table. Both the
/// simulator's `[[fault]]` entries and the fakes' knobs are rows of it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// Which operation it fires on.
    pub op: FaultOp,
    /// Only on this parent (or PF address).
    pub parent: Option<String>,
    /// Only for this type (create), attribute name (attr), VF address
    /// (vgpu-type, vgpu-clear) or UUID (remove).
    pub name: Option<String>,
    /// Only for this device (a UUID; create).
    pub device: Option<String>,
    /// The errno name it fails with (`EIO`, `EBUSY`, ...); exactly one of
    /// `errno` and `effect`.
    pub errno: Option<String>,
    /// What it does instead of failing with an errno.
    pub effect: Option<Effect>,
    /// For `effect = "late-bind"`: how many looks at the device's driver
    /// find it unbound before it binds.
    #[serde(default)]
    pub polls: u32,
    /// How many times it fires (0 = always).
    #[serde(default)]
    pub times: u32,
    /// How many matching operations it lets pass before it first fires (a
    /// failure part way through a batch); every matching operation counts,
    /// one another row failed included.
    #[serde(default)]
    pub after: u32,
}

/// The operations a fault can fire on.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum FaultOp {
    /// Writing a UUID to a type's `create`.
    Create,
    /// Writing `1` to a device's `remove`.
    Remove,
    /// Writing a device attribute.
    Attr,
    /// Writing a nonzero `current_vgpu_type`.
    VgpuType,
    /// Writing `0` to `current_vgpu_type` (a VM uses it).
    VgpuClear,
    /// Writing `sriov_numvfs`.
    Numvfs,
    /// Listing a PF's VFs (its `virtfnN` links).
    ReadVfs,
}

/// What a fault does other than fail with an errno.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Effect {
    /// Another process wins the race: the device is created (same parent
    /// and type) and this create gets `EEXIST`. Create only.
    Race,
    /// The driver panics (in-process: the calling thread panics).
    Panic,
    /// The device is created but its driver binds only after `polls` looks.
    LateBind,
    /// The device is created and its driver never binds.
    Unbound,
}

impl Fault {
    /// A fault on `op` that fails with `errno` (a name, `EIO`) every time.
    pub fn errno(op: FaultOp, errno: &str) -> Fault {
        Fault {
            op,
            parent: None,
            name: None,
            device: None,
            errno: Some(errno.to_string()),
            effect: None,
            polls: 0,
            times: 0,
            after: 0,
        }
    }

    /// A fault on `op` with an effect other than an errno.
    pub fn effect(op: FaultOp, effect: Effect) -> Fault {
        Fault {
            errno: None,
            effect: Some(effect),
            ..Fault::errno(op, "EIO")
        }
    }

    /// Only on this parent or PF.
    pub fn on_parent(mut self, parent: &str) -> Fault {
        self.parent = Some(parent.to_string());
        self
    }

    /// Only for this type, attribute, VF or UUID (see [`Fault::name`]).
    pub fn named(mut self, name: &str) -> Fault {
        self.name = Some(name.to_string());
        self
    }

    /// Only for this device (create).
    pub fn for_device(mut self, uuid: &str) -> Fault {
        self.device = Some(uuid.to_ascii_lowercase());
        self
    }

    /// Fires `times` times (0 = always).
    pub fn times(mut self, times: u32) -> Fault {
        self.times = times;
        self
    }

    /// After `after` matching operations succeeded.
    pub fn after(mut self, after: u32) -> Fault {
        self.after = after;
        self
    }

    /// Why this row cannot be used, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        match (&self.errno, &self.effect) {
            (Some(e), None) if crate::errno::by_name(e).is_none() => {
                Err(format!("errno {e} is not one the model knows"))
            }
            (Some(_), None) => Ok(()),
            (None, Some(Effect::Race | Effect::LateBind | Effect::Unbound))
                if self.op != FaultOp::Create =>
            {
                Err("race, late-bind and unbound are effects of a create".into())
            }
            (None, Some(_)) => Ok(()),
            _ => Err("a fault has exactly one of errno and effect".into()),
        }?;
        if self.device.is_some() && self.op != FaultOp::Create {
            return Err("a fault's device (a UUID) only selects creates".into());
        }
        if self.name.is_some() && matches!(self.op, FaultOp::Numvfs | FaultOp::ReadVfs) {
            return Err("numvfs and read-vfs faults select by parent (the PF), not by name".into());
        }
        Ok(())
    }
}

/// Files the kernel puts in a mediated device's directory or a PCI
/// function's, which an attribute of a type must not shadow.
const RESERVED_ATTRS: &[&str] = &[
    "mdev_type",
    "remove",
    "iommu_group",
    "driver",
    "uevent",
    "matrix",
    "create",
    "available_instances",
    "device_api",
    "name",
    "description",
    "devices",
    "vendor",
    "device",
    "numa_node",
    "sriov_totalvfs",
    "sriov_numvfs",
    "sriov_drivers_autoprobe",
    "driver_override",
    "physfn",
    "nvidia",
    "subsystem",
    "power",
];

/// Longest a latency or a wait in a profile may be (10 minutes): a write
/// that takes longer is a hung simulator, not a slow driver.
pub const MAX_DELAY_MS: u64 = 600_000;

/// Whether `s` can be one directory entry of sysfs: not empty, not `.` or
/// `..`, no `/` or NUL, at most 255 bytes.
fn entry_name(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && s.len() <= 255 && !s.contains(['/', '\0'])
}

impl Profile {
    /// Why this profile cannot be used, if it cannot: a fault row that
    /// makes no sense; a name that cannot be a sysfs entry; a devpath that
    /// leaves `/sys/devices`; an attribute that would shadow a kernel file;
    /// a PF the kernel would refuse (First VF Offset 0, more than a u16 of
    /// VFs, a capability total below the driver's); a delay past
    /// [`MAX_DELAY_MS`]; two PFs or parents of one name.
    pub fn check(&self) -> Result<(), String> {
        for f in &self.faults {
            f.check()?;
        }
        let delay = |what: &str, ms: u64| {
            if ms > MAX_DELAY_MS {
                Err(format!("{what} of {ms} ms is past {MAX_DELAY_MS} ms"))
            } else {
                Ok(())
            }
        };
        for p in &self.parents {
            if !entry_name(&p.name) {
                return Err(format!("parent name {:?} cannot be a sysfs entry", p.name));
            }
            if let Some(d) = &p.devpath {
                if d.starts_with('/') || !d.split('/').all(entry_name) {
                    return Err(format!(
                        "parent {}: devpath {d:?} must stay under /sys/devices",
                        p.name
                    ));
                }
            }
            delay("create_latency_ms", p.create_latency_ms)?;
            delay("remove_latency_ms", p.remove_latency_ms)?;
            delay("appear_after_ms", p.appear_after_ms)?;
            for t in &p.types {
                if !entry_name(&t.id) {
                    return Err(format!(
                        "parent {}: type id {:?} cannot be a sysfs entry",
                        p.name, t.id
                    ));
                }
                if let Some(a) = t
                    .attrs
                    .iter()
                    .find(|a| !entry_name(a) || RESERVED_ATTRS.contains(&a.as_str()))
                {
                    return Err(format!(
                        "parent {}, type {}: attribute {a:?} cannot be a file of its own there",
                        p.name, t.id
                    ));
                }
            }
        }
        for m in &self.modules {
            if !entry_name(&m.name) {
                return Err(format!("module name {:?} cannot be a sysfs entry", m.name));
            }
        }
        for pf in &self.sriov {
            if crate::pci::parse(&pf.address).is_none() {
                return Err(format!("PF address {} is not dddd:bb:dd.f", pf.address));
            }
            let drivers = std::iter::once(&pf.driver).chain(pf.vf_driver.as_ref());
            if let Some(d) = drivers.into_iter().find(|d| !entry_name(d)) {
                return Err(format!(
                    "PF {}: driver {d:?} cannot be a sysfs entry",
                    pf.address
                ));
            }
            if pf.first_vf_offset == 0 && pf.total_vfs > 0 {
                return Err(format!(
                    "PF {}: First VF Offset 0 would put VF 0 on the PF (the kernel refuses such a PF's SR-IOV)",
                    pf.address
                ));
            }
            if pf.vf_stride == 0 && pf.total_vfs > 1 {
                return Err(format!("PF {}: a VF stride of 0", pf.address));
            }
            if pf.total_vfs > u32::from(u16::MAX) {
                return Err(format!(
                    "PF {}: TotalVFs is a u16, not {}",
                    pf.address, pf.total_vfs
                ));
            }
            if pf.cap_total_vfs.is_some_and(|c| c < pf.total_vfs) {
                return Err(format!(
                    "PF {}: the capability's total is below the driver's {}",
                    pf.address, pf.total_vfs
                ));
            }
            delay("appear_after_ms", pf.appear_after_ms)?;
            delay("vf_ready_ms", pf.vf_ready_ms)?;
        }
        let mut names: Vec<&str> = self.parents.iter().map(|p| p.name.as_str()).collect();
        names.extend(self.sriov.iter().map(|p| p.address.as_str()));
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("{} is declared twice", w[0]));
        }
        Ok(())
    }
}
