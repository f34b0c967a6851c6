//! The stable code, class and target of every core error: a kind's error
//! says its own (`MdevError::code`, …, each beside its variants); here are
//! the few failures no kind owns, and the errno rules the kinds share.
//!
//! Owns: those mappings only. Must not: say anything a sentence says.

use crate::CoreError;
use hostdev_api::{ErrorBody, ErrorClass, ErrorTarget};
use hostdev_store::StoreError;
use hostdev_sysfs::SysfsError;
use hostdev_vfio::VfioError;

impl CoreError {
    /// A stable machine code for this failure (`kind.what`), the same across
    /// releases and front-ends, whatever the sentence says.
    pub fn code(&self) -> &'static str {
        use CoreError::*;
        match self {
            Mdev(e) => e.code(),
            Vgpu(e) => e.code(),
            Vdpa(e) => e.code(),
            Pool(e) => e.code(),
            Host(e) => e.code(),
            Migrate(e) => e.code(),
            Dra(e) => e.code(),
            Name(_) => "input.bad_name",
            OutOfRange { .. } => "input.out_of_range",
            Store(e) => match e {
                StoreError::Lock { .. } => "store.lock",
                StoreError::Dir { .. } => "store.dir",
                StoreError::Write { .. } => "store.write",
                StoreError::Remove { .. } => "store.remove",
                StoreError::Definition { .. } => "store.bad_definition",
                StoreError::Db { .. } => "store.db",
                StoreError::DbBusy { .. } => "store.db_busy",
                StoreError::PoolStateLost { .. } => "store.pool_state_lost",
            },
            Vfio(e) => e.code(),
            RulePath { .. } => "udev.rule_path",
            NoSysfs { .. } => "host.no_sysfs",
            RestorePanicked { .. } => "restore.panicked",
            Install { .. } => "store.install",
            BadAddress(_) => "input.bad_address",
        }
    }

    /// What a caller can do about this failure (the HTTP status follows).
    pub fn class(&self) -> ErrorClass {
        use CoreError::*;
        use ErrorClass as C;
        match self {
            Mdev(e) => e.class(),
            Vgpu(e) => e.class(),
            Vdpa(e) => e.class(),
            Pool(e) => e.class(),
            Host(e) => e.class(),
            Migrate(e) => e.class(),
            Dra(e) => e.class(),
            Name(_) | OutOfRange { .. } | RulePath { .. } | BadAddress(_) => C::Invalid,
            NoSysfs { .. } => C::Unavailable,
            RestorePanicked { .. } => C::Internal,
            Install { .. } => C::Failed,
            Store(e) => match e {
                StoreError::Lock { .. } | StoreError::DbBusy { .. } => C::Conflict,
                StoreError::Definition { .. } => C::Invalid,
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
        match self {
            CoreError::Mdev(e) => e.target(),
            CoreError::Vgpu(e) => e.target(),
            CoreError::Vdpa(e) => e.target(),
            CoreError::Pool(e) => e.target(),
            CoreError::Host(e) => e.target(),
            CoreError::Migrate(e) => e.target(),
            CoreError::Dra(e) => e.target(),
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

pub(crate) fn sysfs_class(e: &SysfsError) -> ErrorClass {
    match e {
        SysfsError::Create { source, .. }
        | SysfsError::Remove { source, .. }
        | SysfsError::AttrWrite { source, .. } => errno_class(source),
        SysfsError::NoAttr { .. } => ErrorClass::NotFound,
        SysfsError::AttrNotFile { .. } => ErrorClass::Invalid,
        _ => ErrorClass::Failed,
    }
}
