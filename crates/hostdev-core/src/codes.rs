//! The stable machine code, class and target of every core error.
//!
//! Owns: those mappings only. Must not: say anything a sentence says.

use crate::CoreError;
use hostdev_api::{ErrorBody, ErrorClass, ErrorTarget, Holder, Target};
use hostdev_model::pool::PoolName;
use hostdev_model::vdpa::VdpaName;
use hostdev_model::vgpu::PciAddress;
use hostdev_model::{ParentName, Uuid};
use hostdev_store::StoreError;
use hostdev_sysfs::sriov::SriovError;
use hostdev_sysfs::SysfsError;
use hostdev_vdpa::VdpaError;
use hostdev_vfio::VfioError;

impl CoreError {
    /// A stable machine code for this failure (`kind.what`), the same across
    /// releases and front-ends, whatever the sentence says.
    pub fn code(&self) -> &'static str {
        use CoreError::*;
        match self {
            Name(_) => "input.bad_name",
            OutOfRange { .. } => "input.out_of_range",
            Inventory(_) => "mdev.inventory",
            Store(e) => match e {
                StoreError::Lock { .. } => "store.lock",
                StoreError::Dir { .. } => "store.dir",
                StoreError::Write { .. } => "store.write",
                StoreError::Remove { .. } => "store.remove",
                StoreError::Definition { .. } => "store.bad_definition",
                StoreError::Db { .. } => "store.db",
                StoreError::PoolStateLost { .. } => "store.pool_state_lost",
                StoreError::DbBusy { .. } => "store.db_busy",
            },
            ReadJson { .. } => "input.read_json",
            BadJson { .. } => "input.bad_json",
            NoParent { .. } => "mdev.no_parent",
            NoType { .. } => "mdev.no_type",
            AlreadyDefined { .. } => "mdev.already_defined",
            NotDefined { .. } => "mdev.not_defined",
            Ambiguous { .. } => "mdev.ambiguous",
            Edit { .. } => "mdev.bad_edit",
            AlreadyRunning { .. } => "mdev.already_running",
            NotRunning { .. } => "mdev.not_running",
            ParentAbsent { .. } => "mdev.parent_absent",
            TypeUnsupported { .. } => "mdev.type_unsupported",
            NoCapacity { .. } => "mdev.no_capacity",
            Create { .. } => "mdev.create",
            NotReady { .. } => "mdev.not_ready",
            NotReadyNoRollback { .. } => "mdev.not_ready_no_rollback",
            Attr { .. } => "mdev.attr",
            AttrNoRollback { .. } => "mdev.attr_no_rollback",
            Remove { .. } => "mdev.remove",
            CalloutRefused { .. } => "mdev.callout_refused",
            LiveNotRunning { .. } => "mdev.live_not_running",
            LiveOtherParent { .. } => "mdev.live_other_parent",
            LiveNeedsConfig { .. } => "mdev.live_needs_config",
            LiveTypeChange { .. } => "mdev.live_type_change",
            LiveAttr { .. } => "mdev.live_attr",
            Sriov(_) => "vgpu.sysfs",
            VfAbsent { .. } => "vgpu.vf_absent",
            VfUntyped { .. } => "vgpu.vf_untyped",
            VgpuAlreadyDefined { .. } => "vgpu.already_defined",
            VgpuNotDefined { .. } => "vgpu.not_defined",
            PfAbsent { .. } => "vgpu.pf_absent",
            NoFreeVf { .. } => "vgpu.no_free_vf",
            VfNotReady { .. } => "vgpu.vf_not_ready",
            VfNotSetUp { .. } => "vgpu.vf_not_set_up",
            VfMissing { .. } => "vgpu.vf_missing",
            VgpuBusy { .. } => "vgpu.busy",
            VgpuTypeNotCreatable { .. } => "vgpu.type_not_creatable",
            VgpuWrongType { .. } => "vgpu.wrong_type",
            VgpuNotSet { .. } => "vgpu.not_set",
            VgpuInUse { .. } => "vgpu.in_use",
            TooManyVfs { .. } => "vgpu.too_many_vfs",
            VfCountFixed { .. } => "vgpu.vf_count_fixed",
            PfBusy { .. } => "vgpu.pf_busy",
            TooFewVfs { .. } => "vgpu.too_few_vfs",
            VfBeyondTotal { .. } => "vgpu.vf_beyond_total",
            Vdpa(e) => match **e {
                hostdev_vdpa::VdpaError::NoFamily => "vdpa.unavailable",
                hostdev_vdpa::VdpaError::Permission { .. } => "vdpa.permission",
                hostdev_vdpa::VdpaError::Exists(_) => "vdpa.exists",
                hostdev_vdpa::VdpaError::NoMgmtDev(_) => "vdpa.no_mgmtdev",
                hostdev_vdpa::VdpaError::NoDevice(_) => "vdpa.no_device",
                hostdev_vdpa::VdpaError::Unsupported { .. } => "vdpa.unsupported",
                _ => "vdpa.kernel",
            },
            Vfio(e) => e.code(),
            NoPciDevice { .. } => "pci.no_device",
            BadSpec { .. } => "migrate.bad_spec",
            HostFile { .. } => "host.bad_file",
            HostRecord { .. } => "host.bad_record",
            NoHostId => "host.no_id",
            VfsNotReady { .. } => "vgpu.vfs_not_ready",
            NotTried { .. } => "host.not_tried",
            NoSysfs { .. } => "host.no_sysfs",
            RulePath { .. } => "udev.rule_path",
            RolledBack { .. } => "host.rolled_back",
            PrepareNoRoom { .. } => "migrate.no_room",
            VdpaValue(_) => "input.bad_vdpa_value",
            VdpaDefined { .. } => "vdpa.already_defined",
            VdpaNotDefined { .. } => "vdpa.not_defined",
            VdpaUnknown { .. } => "vdpa.unknown",
            VdpaUnbound { .. } => "vdpa.unbound",
            BadExport { .. } => "vdpa.bad_export",
            RestorePanicked { .. } => "restore.panicked",
            Install { .. } => "store.install",
            BadAddress(_) => "input.bad_address",
            PoolUnknown { .. } => "pool.unknown",
            PoolExhausted { .. } => "pool.exhausted",
            PoolNoMembers { .. } => "pool.no_members",
            PoolDeviceHeld { .. } => "pool.device_held",
            PoolNotMember { .. } => "pool.not_member",
            PoolMisuse { .. } => "pool.misuse",
            PoolNothingHeld { .. } => "pool.nothing_held",
            PoolUuidTaken { .. } => "pool.uuid_taken",
            PoolAmbiguous { .. } => "pool.ambiguous",
            PoolNotBound { .. } => "pool.not_bound",
            PoolNoRoom { .. } => "pool.no_room",
            PoolFillFailed { .. } => "pool.fill_failed",
            PoolBadTtl { .. } => "pool.bad_ttl",
        }
    }
}

/// The class of a kernel refusal, by its errno: what the caller can do.
pub(crate) fn errno_class(e: &std::io::Error) -> ErrorClass {
    use rustix::io::Errno;
    let Some(n) = e.raw_os_error() else {
        return ErrorClass::Failed;
    };
    let is = |x: Errno| n == x.raw_os_error();
    if is(Errno::EXIST) {
        ErrorClass::Exists
    } else if is(Errno::NOSPC) || is(Errno::DQUOT) || is(Errno::USERS) || is(Errno::NOMEM) {
        ErrorClass::Exhausted
    } else if is(Errno::BUSY) || is(Errno::AGAIN) || is(Errno::INPROGRESS) {
        ErrorClass::Conflict
    } else if is(Errno::INVAL) || is(Errno::RANGE) || is(Errno::OPNOTSUPP) {
        ErrorClass::Invalid
    } else if is(Errno::NOENT) || is(Errno::NODEV) || is(Errno::NXIO) {
        ErrorClass::NotFound
    } else {
        ErrorClass::Failed
    }
}

fn sysfs_class(e: &SysfsError) -> ErrorClass {
    match e {
        SysfsError::Create { source, .. }
        | SysfsError::Remove { source, .. }
        | SysfsError::AttrWrite { source, .. } => errno_class(source),
        SysfsError::NoAttr { .. } => ErrorClass::NotFound,
        SysfsError::AttrNotFile { .. } => ErrorClass::Invalid,
        _ => ErrorClass::Failed,
    }
}

impl CoreError {
    /// What a caller can do about this failure (the HTTP status follows).
    pub fn class(&self) -> ErrorClass {
        use CoreError::*;
        use ErrorClass as C;
        match self {
            Name(_) | BadJson { .. } | NoParent { .. } | NoType { .. } | Edit { .. } => C::Invalid,
            OutOfRange { .. } | PoolBadTtl { .. } => C::Invalid,
            HostRecord { .. } => C::Failed,
            Ambiguous { .. } | TypeUnsupported { .. } | LiveNeedsConfig { .. } => C::Invalid,
            LiveTypeChange { .. } | LiveOtherParent { .. } | RulePath { .. } => C::Invalid,
            VdpaValue(_) | BadExport { .. } | BadAddress(_) | BadSpec { .. } => C::Invalid,
            HostFile { .. } | NoHostId | TooManyVfs { .. } | VfBeyondTotal { .. } => C::Invalid,
            PoolMisuse { .. } | PoolNotMember { .. } | VgpuTypeNotCreatable { .. } => C::Invalid,
            PoolAmbiguous { .. } => C::Invalid,
            ReadJson { .. } => C::Failed,
            NotDefined { .. } | NotRunning { .. } | ParentAbsent { .. } => C::NotFound,
            LiveNotRunning { .. } | VfAbsent { .. } | VgpuNotDefined { .. } => C::NotFound,
            PfAbsent { .. } | NoPciDevice { .. } | VdpaNotDefined { .. } => C::NotFound,
            VdpaUnknown { .. } | PoolUnknown { .. } | PoolNothingHeld { .. } => C::NotFound,
            PoolNotBound { .. } | VfMissing { .. } => C::NotFound,
            AlreadyDefined { .. } | AlreadyRunning { .. } | VgpuAlreadyDefined { .. } => C::Exists,
            VdpaDefined { .. } | PoolUuidTaken { .. } => C::Exists,
            VgpuBusy { .. } | VgpuInUse { .. } | VgpuWrongType { .. } => C::Conflict,
            VfCountFixed { .. } | TooFewVfs { .. } | PoolDeviceHeld { .. } => C::Conflict,
            PfBusy { .. } => C::Conflict,
            VfUntyped { .. } | VgpuNotSet { .. } | VdpaUnbound { .. } => C::Conflict,
            VfNotReady { .. } | CalloutRefused { .. } => C::Conflict,
            NoCapacity { .. } | NoFreeVf { .. } | PoolExhausted { .. } => C::Exhausted,
            PoolNoRoom { .. } | PrepareNoRoom { .. } => C::Exhausted,
            PoolNoMembers { .. } | NoSysfs { .. } => C::Unavailable,
            Create { source, .. } | Attr { source, .. } | LiveAttr { source, .. } => {
                sysfs_class(source)
            }
            Remove { source, .. } => sysfs_class(source),
            Inventory(_) | NotReady { .. } | NotReadyNoRollback { .. } => C::Failed,
            AttrNoRollback { .. } | VfNotSetUp { .. } | VfsNotReady { .. } => C::Failed,
            NotTried { .. } | RolledBack { .. } | PoolFillFailed { .. } => C::Failed,
            Install { .. } => C::Failed,
            RestorePanicked { .. } => C::Internal,
            Store(e) => match e {
                StoreError::Lock { .. } => C::Conflict,
                StoreError::Definition { .. } => C::Invalid,
                _ => C::Failed,
            },
            Sriov(e) => match &**e {
                SriovError::NumVfs { source, .. } | SriovError::SetType { source, .. } => {
                    errno_class(source)
                }
                _ => C::Failed,
            },
            Vdpa(e) => match &**e {
                VdpaError::NoFamily => C::Unavailable,
                VdpaError::Permission { .. } => C::Forbidden,
                VdpaError::Exists(_) => C::Exists,
                VdpaError::NoMgmtDev(_) | VdpaError::NoDevice(_) => C::NotFound,
                VdpaError::Unsupported { .. } | VdpaError::Value(_) => C::Invalid,
                VdpaError::Kernel { source, .. } => errno_class(source),
                _ => C::Failed,
            },
            Vfio(e) => match &**e {
                VfioError::NoVfio { .. } | VfioError::NoType1 { .. } => C::Unavailable,
                VfioError::NoGroup { .. } => C::NotFound,
                VfioError::Busy { .. } | VfioError::NotViable { .. } => C::Conflict,
                _ => C::Failed,
            },
        }
    }

    /// The device, parent, PF, management device or pool this failure
    /// concerns, where the error names one.
    pub fn target(&self) -> Option<ErrorTarget> {
        use CoreError::*;
        let mdev = |uuid: &Uuid| {
            Some(
                Target::Mdev {
                    uuid: *uuid,
                    parent: None,
                }
                .into(),
            )
        };
        let vf = |vf: &PciAddress| Some(Target::Vgpu { vf: vf.clone() }.into());
        let vdpa = |name: &VdpaName| Some(Target::Vdpa { name: name.clone() }.into());
        let pf = |pf: &PciAddress| Some(Holder::Pf { pf: pf.clone() }.into());
        let parent = |p: &ParentName| Some(Holder::Parent { name: p.clone() }.into());
        let pool = |p: &str| {
            PoolName::new(p)
                .ok()
                .map(|name| Holder::Pool { name }.into())
        };
        match self {
            NoParent { uuid }
            | NotRunning { uuid }
            | Create { uuid, .. }
            | NotReady { uuid, .. }
            | Attr { uuid, .. }
            | AttrNoRollback { uuid, .. }
            | Remove { uuid, .. }
            | CalloutRefused { uuid, .. }
            | LiveNotRunning { uuid }
            | LiveNeedsConfig { uuid }
            | LiveTypeChange { uuid }
            | LiveAttr { uuid, .. }
            | NotReadyNoRollback { uuid, .. }
            | Ambiguous { uuid, .. }
            | PoolUuidTaken { uuid, .. }
            | PoolNotBound { uuid }
            | PoolAmbiguous { uuid, .. } => mdev(uuid),
            AlreadyDefined { uuid, parent }
            | Edit { uuid, parent, .. }
            | AlreadyRunning { uuid, parent }
            | LiveOtherParent {
                uuid,
                running_on: parent,
                ..
            } => Some(
                Target::Mdev {
                    uuid: *uuid,
                    parent: Some(parent.clone()),
                }
                .into(),
            ),
            NotDefined { uuid, parent } => Some(
                Target::Mdev {
                    uuid: *uuid,
                    parent: parent.clone(),
                }
                .into(),
            ),
            NoType { parent: p }
            | ParentAbsent { parent: p, .. }
            | TypeUnsupported { parent: p, .. }
            | NoCapacity { parent: p, .. } => parent(p),
            VfAbsent { vf: v }
            | VfUntyped { vf: v }
            | VgpuAlreadyDefined { vf: v }
            | VgpuNotDefined { vf: v }
            | VfNotReady { vf: v }
            | VfNotSetUp { vf: v, .. }
            | VfMissing { vf: v, .. }
            | VgpuBusy { vf: v, .. }
            | VgpuTypeNotCreatable { vf: v, .. }
            | VgpuWrongType { vf: v, .. }
            | VgpuNotSet { vf: v }
            | VgpuInUse { vf: v }
            | VfBeyondTotal { vf: v, .. } => vf(v),
            PfAbsent { pf: p }
            | NoFreeVf { pf: p, .. }
            | TooManyVfs { pf: p, .. }
            | VfCountFixed { pf: p, .. }
            | PfBusy { pf: p, .. }
            | TooFewVfs { pf: p, .. }
            | VfsNotReady { pf: p, .. } => pf(p),
            VdpaDefined { name }
            | VdpaNotDefined { name }
            | VdpaUnknown { name }
            | VdpaUnbound { name }
            | BadExport { name } => vdpa(name),
            PoolUnknown { pool: p, .. }
            | PoolExhausted { pool: p, .. }
            | PoolNoMembers { pool: p }
            | PoolDeviceHeld { pool: p, .. }
            | PoolNotMember { pool: p, .. }
            | PoolMisuse { pool: p, .. }
            | PoolNoRoom { pool: p, .. }
            | PoolFillFailed { pool: p, .. } => pool(p),
            Vdpa(e) => match &**e {
                VdpaError::NoDevice(n) => vdpa(n),
                VdpaError::NoMgmtDev(m) => Some(Holder::Mgmtdev { name: m.clone() }.into()),
                VdpaError::Exists(n) => VdpaName::new(n.clone()).ok().and_then(|n| vdpa(&n)),
                _ => None,
            },
            _ => None,
        }
    }

    /// The error as every front-end shows it: class, code, sentence, target.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            class: self.class(),
            code: self.code().to_string(),
            message: self.chain(),
            target: self.target(),
        }
    }
}
