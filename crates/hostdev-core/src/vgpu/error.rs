//! The errors of NVIDIA vGPU and SR-IOV operations: one variant per failed step, each carrying what it
//! concerned, with its stable code (`vgpu.…`), its class and its target
//! kept beside it in this file. Nested into `CoreError` as `CoreError::Vgpu`.
//!
//! Owns: those variants and their codes. Must not: know another kind's errors.

use crate::codes::errno_class;
use hostdev_api::{ErrorClass, ErrorTarget, Holder, Target};
use hostdev_model::pci::PciAddress;
use hostdev_sysfs::sriov::SriovError;
use std::time::Duration;

/// A failed vGPU or SR-IOV operation.
#[derive(Debug, thiserror::Error)]
pub enum VgpuError {
    /// Reading or writing SR-IOV/vGPU sysfs files failed.
    #[error("SR-IOV step failed")]
    Sriov(#[source] Box<hostdev_sysfs::sriov::SriovError>),
    /// The VF does not exist.
    #[error("VF {vf} does not exist (are the VFs of its PF enabled?)")]
    VfAbsent {
        /// The VF.
        vf: PciAddress,
    },
    /// The VF carries no vGPU type: a VM given it would see no vGPU.
    #[error("VF {vf} carries no vGPU type, so a VM given it would see no vGPU; define and start a type on it first")]
    VfUntyped {
        /// The VF.
        vf: PciAddress,
    },
    /// The VF already has a definition.
    #[error("VF {vf} already has a vGPU definition; undefine it first")]
    AlreadyDefined {
        /// The VF.
        vf: PciAddress,
    },
    /// The VF has no definition.
    #[error("VF {vf} has no vGPU definition")]
    NotDefined {
        /// The VF.
        vf: PciAddress,
    },
    /// The PF does not exist or has no SR-IOV.
    #[error("PF {pf} is not an SR-IOV physical function of this host")]
    PfAbsent {
        /// The PF.
        pf: PciAddress,
    },
    /// No free VF of the PF can take the type.
    #[error("PF {pf} has no free VF that can take vGPU type {type_input}")]
    NoFreeVf {
        /// The PF.
        pf: PciAddress,
        /// The type as given.
        type_input: String,
    },
    /// The driver has not set the VF up (no `nvidia/` directory).
    #[error("VF {vf} is not set up by the driver yet (no nvidia/ directory)")]
    VfNotReady {
        /// The VF.
        vf: PciAddress,
    },
    /// The driver did not set the VF up within the bound.
    #[error("VF {vf} was not set up by the driver within {waited:?}")]
    VfNotSetUp {
        /// The VF.
        vf: PciAddress,
        /// How long restore waited.
        waited: Duration,
    },
    /// The VF did not appear after its PF's VFs were enabled.
    #[error("VF {vf} did not appear after the VFs of {pf} were enabled")]
    VfMissing {
        /// The VF.
        vf: PciAddress,
        /// Its PF.
        pf: PciAddress,
    },
    /// The VF already carries a vGPU type.
    #[error("VF {vf} already carries vGPU type {current}; stop it before giving it another")]
    Busy {
        /// The VF.
        vf: PciAddress,
        /// Its current type id.
        current: u32,
    },
    /// The type is not creatable on this VF now.
    #[error("vGPU type {type_input} is not creatable on VF {vf} now (ids are card-local); creatable: {}", list_or_none(.creatable))]
    TypeNotCreatable {
        /// The VF.
        vf: PciAddress,
        /// The type as given or stored.
        type_input: String,
        /// What the VF can take now, as `id (name)`.
        creatable: Vec<String>,
    },
    /// The VF carries a type other than the defined one.
    #[error("VF {vf} carries vGPU type {current} instead of {wanted}; stop it first")]
    WrongType {
        /// The VF.
        vf: PciAddress,
        /// Its current type id.
        current: u32,
        /// The defined type id.
        wanted: u32,
    },
    /// The VF carries no type to clear.
    #[error("VF {vf} carries no vGPU type")]
    NotSet {
        /// The VF.
        vf: PciAddress,
    },
    /// The driver refused to clear the type because a VM uses it.
    #[error("VF {vf} is in use (a VM holds it); stop the VM first")]
    InUse {
        /// The VF.
        vf: PciAddress,
    },
    /// More VFs were asked of a PF than it has.
    #[error("PF {pf} has at most {max} VFs")]
    TooManyVfs {
        /// The PF.
        pf: PciAddress,
        /// `sriov_totalvfs`.
        max: u32,
    },
    /// VFs of the PF carry vGPU types, so its VFs cannot be removed.
    #[error("PF {pf} has VFs that carry vGPU types ({}); stop them before disabling its VFs", .vfs.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", "))]
    PfBusy {
        /// The PF.
        pf: PciAddress,
        /// The VFs with a type.
        vfs: Vec<PciAddress>,
    },
    /// A VF of the PF is held through VFIO: writing 0 VFs would make the
    /// kernel wait for it to be let go (with hostdev's lock held).
    #[error("PF {pf} keeps its VFs: VF {vf} is held through VFIO group {group} (a VM?), and the kernel would wait until it is let go; stop what holds it first")]
    VfHeld {
        /// The PF.
        pf: PciAddress,
        /// The held VF.
        vf: PciAddress,
        /// Its IOMMU group.
        group: String,
    },
    /// The PF has another VF count enabled, which changes only through 0.
    #[error("PF {pf} has {enabled} VFs enabled; the kernel changes the count only through 0, which would remove their vGPUs")]
    VfCountFixed {
        /// The PF.
        pf: PciAddress,
        /// VFs enabled now.
        enabled: u32,
    },
    /// The PF has fewer VFs enabled than its definitions need.
    #[error("PF {pf} has {enabled} VFs enabled but {needed} are needed; the count changes only through 0")]
    TooFewVfs {
        /// The PF.
        pf: PciAddress,
        /// VFs enabled now.
        enabled: u32,
        /// VFs the definitions need.
        needed: u32,
    },
    /// A VF definition names an index the PF cannot have.
    #[error("VF {vf} is VF number {index} of {pf}, which has at most {total} VFs")]
    VfBeyondTotal {
        /// The VF.
        vf: PciAddress,
        /// The PF.
        pf: PciAddress,
        /// Its index in the definition.
        index: u32,
        /// `sriov_totalvfs`.
        total: u32,
    },
    /// The VFs of a PF were not set up in time.
    #[error("the VFs of {pf} were not set up by the driver within {waited:?}")]
    VfsNotReady {
        /// The PF.
        pf: PciAddress,
        /// How long apply waited.
        waited: Duration,
    },
}

impl From<SriovError> for VgpuError {
    fn from(e: SriovError) -> Self {
        VgpuError::Sriov(Box::new(e))
    }
}

impl VgpuError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Sriov { .. } => "vgpu.sysfs",
            Self::VfAbsent { .. } => "vgpu.vf_absent",
            Self::VfUntyped { .. } => "vgpu.vf_untyped",
            Self::AlreadyDefined { .. } => "vgpu.already_defined",
            Self::NotDefined { .. } => "vgpu.not_defined",
            Self::PfAbsent { .. } => "vgpu.pf_absent",
            Self::NoFreeVf { .. } => "vgpu.no_free_vf",
            Self::VfNotReady { .. } => "vgpu.vf_not_ready",
            Self::VfNotSetUp { .. } => "vgpu.vf_not_set_up",
            Self::VfMissing { .. } => "vgpu.vf_missing",
            Self::Busy { .. } => "vgpu.busy",
            Self::TypeNotCreatable { .. } => "vgpu.type_not_creatable",
            Self::WrongType { .. } => "vgpu.wrong_type",
            Self::NotSet { .. } => "vgpu.not_set",
            Self::InUse { .. } => "vgpu.in_use",
            Self::TooManyVfs { .. } => "vgpu.too_many_vfs",
            Self::PfBusy { .. } => "vgpu.pf_busy",
            Self::VfCountFixed { .. } => "vgpu.vf_count_fixed",
            Self::VfHeld { .. } => "vgpu.vf_held",
            Self::TooFewVfs { .. } => "vgpu.too_few_vfs",
            Self::VfBeyondTotal { .. } => "vgpu.vf_beyond_total",
            Self::VfsNotReady { .. } => "vgpu.vfs_not_ready",
        }
    }

    /// What a caller can do about it.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Sriov(e) => match &**e {
                SriovError::NumVfs { source, .. } | SriovError::SetType { source, .. } => {
                    errno_class(source)
                }
                SriovError::NoProfile { .. } => ErrorClass::Invalid,
                _ => ErrorClass::Failed,
            },
            Self::VfAbsent { .. } => ErrorClass::NotFound,
            Self::VfUntyped { .. } => ErrorClass::Conflict,
            Self::AlreadyDefined { .. } => ErrorClass::Exists,
            Self::NotDefined { .. } => ErrorClass::NotFound,
            Self::PfAbsent { .. } => ErrorClass::NotFound,
            Self::NoFreeVf { .. } => ErrorClass::Exhausted,
            Self::VfNotReady { .. } => ErrorClass::Conflict,
            Self::VfNotSetUp { .. } => ErrorClass::Failed,
            Self::VfMissing { .. } => ErrorClass::NotFound,
            Self::Busy { .. } => ErrorClass::Conflict,
            Self::TypeNotCreatable { .. } => ErrorClass::Invalid,
            Self::WrongType { .. } => ErrorClass::Conflict,
            Self::NotSet { .. } => ErrorClass::Conflict,
            Self::InUse { .. } => ErrorClass::Conflict,
            Self::TooManyVfs { .. } => ErrorClass::Invalid,
            Self::PfBusy { .. } => ErrorClass::Conflict,
            Self::VfCountFixed { .. } => ErrorClass::Conflict,
            Self::VfHeld { .. } => ErrorClass::Conflict,
            Self::TooFewVfs { .. } => ErrorClass::Conflict,
            Self::VfBeyondTotal { .. } => ErrorClass::Invalid,
            Self::VfsNotReady { .. } => ErrorClass::Failed,
        }
    }

    /// The VF or PF it concerns.
    pub fn target(&self) -> Option<ErrorTarget> {
        use VgpuError::*;
        match self {
            VfAbsent { vf }
            | VfUntyped { vf }
            | AlreadyDefined { vf }
            | NotDefined { vf }
            | VfNotReady { vf }
            | VfNotSetUp { vf, .. }
            | VfMissing { vf, .. }
            | Busy { vf, .. }
            | TypeNotCreatable { vf, .. }
            | WrongType { vf, .. }
            | NotSet { vf }
            | InUse { vf }
            | VfBeyondTotal { vf, .. } => Some(Target::Vgpu { vf: vf.clone() }.into()),
            PfAbsent { pf }
            | NoFreeVf { pf, .. }
            | TooManyVfs { pf, .. }
            | VfCountFixed { pf, .. }
            | VfHeld { pf, .. }
            | PfBusy { pf, .. }
            | TooFewVfs { pf, .. }
            | VfsNotReady { pf, .. } => Some(Holder::Pf { pf: pf.clone() }.into()),
            Sriov(_) => None,
        }
    }

    /// The type is not creatable on `vf`, listing what it can take.
    pub(crate) fn not_creatable(
        vf: &PciAddress,
        type_input: String,
        creatable: &[hostdev_model::vgpu::VgpuType],
    ) -> Self {
        VgpuError::TypeNotCreatable {
            vf: vf.clone(),
            type_input,
            creatable: creatable
                .iter()
                .map(|t| format!("{} ({})", t.id, t.name))
                .collect(),
        }
    }
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}
