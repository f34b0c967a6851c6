//! The errors of hostdev-core: one variant per failed step, each carrying the
//! device, parent or path it concerned.

use hostdev_model::config::{ConfigError, EditError};
use hostdev_model::vdpa::VdpaName;
use hostdev_model::vgpu::PciAddress;
use hostdev_model::{NameError, ParentName, TypeId, Uuid};
use hostdev_store::StoreError;
use hostdev_sysfs::{Readiness, SysfsError};
use std::path::PathBuf;
use std::time::Duration;

/// A failed operation.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A name given on input is unusable.
    #[error(transparent)]
    Name(#[from] NameError),
    /// A number given on input is outside what hostdev takes.
    #[error("{what} {value} is out of range: at most {max}")]
    OutOfRange {
        /// What it is (`the wait`).
        what: &'static str,
        /// As given.
        value: String,
        /// The largest taken.
        max: String,
    },
    /// Reading sysfs failed.
    #[error("cannot read the kernel's mdev state")]
    Inventory(#[source] Box<SysfsError>),
    /// Reading or writing the definition store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A JSON file given on input cannot be read.
    #[error("cannot read JSON file {path}")]
    ReadJson {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A JSON file or stored definition given on input is malformed.
    #[error("{path} is not a usable device definition: {source}")]
    BadJson {
        /// The file.
        path: PathBuf,
        /// Why.
        source: ConfigError,
    },
    /// No parent was given and none can be inferred.
    #[error("no parent was given for mdev {uuid}, and the device is not running to take it from")]
    NoParent {
        /// The device.
        uuid: Uuid,
    },
    /// A parent was given without a UUID and without a type.
    #[error("no mdev type was given for the device on {parent}")]
    NoType {
        /// The parent.
        parent: ParentName,
    },
    /// The device is already defined under this parent.
    #[error("mdev {uuid} is already defined on {parent}")]
    AlreadyDefined {
        /// The device.
        uuid: Uuid,
        /// The parent.
        parent: ParentName,
    },
    /// No definition matches.
    #[error("mdev {uuid} is not defined{}", on_parent(.parent))]
    NotDefined {
        /// The device.
        uuid: Uuid,
        /// The parent it was looked for under, if one was given.
        parent: Option<ParentName>,
    },
    /// Several definitions match and no parent was given.
    #[error("mdev {uuid} is defined on several parents ({})", join(.parents))]
    Ambiguous {
        /// The device.
        uuid: Uuid,
        /// The parents it is defined on.
        parents: Vec<ParentName>,
    },
    /// An edit of a definition is impossible.
    #[error("cannot modify mdev {uuid} on {parent}: {source}")]
    Edit {
        /// The device.
        uuid: Uuid,
        /// The parent.
        parent: ParentName,
        /// Why.
        source: EditError,
    },
    /// The device is running already.
    #[error("mdev {uuid} is already running on {parent}")]
    AlreadyRunning {
        /// The device.
        uuid: Uuid,
        /// Where it runs.
        parent: ParentName,
    },
    /// The device is not running.
    #[error("mdev {uuid} is not running")]
    NotRunning {
        /// The device.
        uuid: Uuid,
    },
    /// The parent is not registered with mdev.
    #[error("parent {parent} is not registered for mdev support{}", hint_text(.hint))]
    ParentAbsent {
        /// The parent.
        parent: ParentName,
        /// A registered parent whose name differs only in case.
        hint: Option<ParentName>,
    },
    /// The parent does not support the type.
    #[error("parent {parent} does not support mdev type {mdev_type}")]
    TypeUnsupported {
        /// The parent.
        parent: ParentName,
        /// The type.
        mdev_type: TypeId,
    },
    /// No instance of the type can be created.
    #[error("no available instances of {mdev_type} on {parent}{}", .why.as_ref().map(|w| format!(": {w}")).unwrap_or_default())]
    NoCapacity {
        /// The parent.
        parent: ParentName,
        /// The type.
        mdev_type: TypeId,
        /// What holds the parent, when that can be seen.
        why: Option<String>,
    },
    /// The kernel refused to create the device.
    #[error("cannot start mdev {uuid}")]
    Create {
        /// The device.
        uuid: Uuid,
        /// The kernel's refusal.
        source: Box<SysfsError>,
    },
    /// The device did not become ready in time; it was removed again.
    #[error("mdev {uuid} did not become ready within {waited:?} ({}); it was removed again", missing(.readiness))]
    NotReady {
        /// The device.
        uuid: Uuid,
        /// How long we waited.
        waited: Duration,
        /// What was there when we gave up.
        readiness: Readiness,
    },
    /// An attribute write failed; the device was removed again.
    #[error("cannot set attribute '{attr}' of mdev {uuid}; the device was removed again")]
    Attr {
        /// The device.
        uuid: Uuid,
        /// The attribute.
        attr: String,
        /// The failure.
        source: Box<SysfsError>,
    },
    /// An attribute write failed and removing the device failed too.
    #[error("cannot set attribute '{attr}' of mdev {uuid}, and removing the device again failed too ({remove_error}); it is still running")]
    AttrNoRollback {
        /// The device.
        uuid: Uuid,
        /// The attribute.
        attr: String,
        /// The failure.
        source: Box<SysfsError>,
        /// Why the rollback failed.
        remove_error: String,
    },
    /// The kernel refused to remove the device.
    #[error("cannot stop mdev {uuid}")]
    Remove {
        /// The device.
        uuid: Uuid,
        /// The kernel's refusal.
        source: Box<SysfsError>,
    },
    /// A callout script refused the operation.
    #[error("callout {script} refused to {action} mdev {uuid} (exit status {status}){}", stderr_hint(.stderr))]
    CalloutRefused {
        /// The script.
        script: PathBuf,
        /// The action.
        action: &'static str,
        /// The device.
        uuid: Uuid,
        /// Its exit status.
        status: i32,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A live change was asked of a device that is not running.
    #[error("cannot modify running mdev {uuid}: it is not running")]
    LiveNotRunning {
        /// The device.
        uuid: Uuid,
    },
    /// A live change named a parent the device does not run on.
    #[error("cannot modify running mdev {uuid}: it runs on {running_on}, not {parent}")]
    LiveOtherParent {
        /// The device.
        uuid: Uuid,
        /// Where it runs.
        running_on: ParentName,
        /// The parent that was named.
        parent: ParentName,
    },
    /// A live change needs the device's whole configuration.
    #[error("cannot modify running mdev {uuid}: a live change takes the device's whole configuration as JSON")]
    LiveNeedsConfig {
        /// The device.
        uuid: Uuid,
    },
    /// A running device's type cannot change.
    #[error("cannot modify running mdev {uuid}: the type of a running device cannot change")]
    LiveTypeChange {
        /// The device.
        uuid: Uuid,
    },
    /// Writing an attribute of a running device failed.
    #[error("cannot modify running mdev {uuid}")]
    LiveAttr {
        /// The device.
        uuid: Uuid,
        /// The kernel's refusal.
        source: Box<SysfsError>,
    },
    /// The device did not become ready, and removing it failed too.
    #[error("mdev {uuid} did not become ready within {waited:?} ({}), and removing it again failed too ({remove_error}); it is still there", missing(.readiness))]
    NotReadyNoRollback {
        /// The device.
        uuid: Uuid,
        /// How long we waited.
        waited: Duration,
        /// What was there when we gave up.
        readiness: Readiness,
        /// Why the removal failed.
        remove_error: String,
    },
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
    VgpuAlreadyDefined {
        /// The VF.
        vf: PciAddress,
    },
    /// The VF has no definition.
    #[error("VF {vf} has no vGPU definition")]
    VgpuNotDefined {
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
    VgpuBusy {
        /// The VF.
        vf: PciAddress,
        /// Its current type id.
        current: u32,
    },
    /// The type is not creatable on this VF now.
    #[error("vGPU type {type_input} is not creatable on VF {vf} now (ids are card-local); creatable: {}", list_or_none(.creatable))]
    VgpuTypeNotCreatable {
        /// The VF.
        vf: PciAddress,
        /// The type as given or stored.
        type_input: String,
        /// What the VF can take now, as `id (name)`.
        creatable: Vec<String>,
    },
    /// The VF carries a type other than the defined one.
    #[error("VF {vf} carries vGPU type {current} instead of {wanted}; stop it first")]
    VgpuWrongType {
        /// The VF.
        vf: PciAddress,
        /// Its current type id.
        current: u32,
        /// The defined type id.
        wanted: u32,
    },
    /// The VF carries no type to clear.
    #[error("VF {vf} carries no vGPU type")]
    VgpuNotSet {
        /// The VF.
        vf: PciAddress,
    },
    /// The driver refused to clear the type because a VM uses it.
    #[error("VF {vf} is in use (a VM holds it); stop the VM first")]
    VgpuInUse {
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
    /// A vDPA step failed.
    #[error("vDPA operation failed")]
    Vdpa(#[source] Box<hostdev_vdpa::VdpaError>),
    /// Opening or asking a device through VFIO failed.
    #[error(transparent)]
    Vfio(Box<hostdev_vfio::VfioError>),
    /// A host file that cannot be used.
    #[error("{path} cannot be used: {why}")]
    HostFile {
        /// Where it came from.
        path: String,
        /// Why (the parser's sentence, with the line).
        why: String,
    },
    /// The record of what the host file made cannot be used.
    #[error("the record of what the host file made, {}, cannot be used ({why}); nothing is planned or applied without it, because only it says which devices the file made. Restore it from a backup, or move it aside to start an empty record (the devices the file made before are then left alone when the file drops them)", path.display())]
    HostRecord {
        /// The record.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The VFs of a PF were not set up in time.
    #[error("the VFs of {pf} were not set up by the driver within {waited:?}")]
    VfsNotReady {
        /// The PF.
        pf: PciAddress,
        /// How long apply waited.
        waited: Duration,
    },
    /// A binary path the udev rule cannot carry.
    #[error("the udev rule cannot name {} (a rule takes an absolute path of letters, digits and /._+-,:@ only; install the binary at such a path)", exe.display())]
    RulePath {
        /// The path.
        exe: PathBuf,
    },
    /// The root prefix has no PCI sysfs: not a Linux host's root, or sysfs
    /// is not mounted there.
    #[error("{} has no sysfs with PCI devices or mdev parents ({} and {} are missing): it is not a Linux host's root, or sysfs is not mounted there", root.display(), root.join("sys/bus/pci").display(), root.join("sys/class/mdev_bus").display())]
    NoSysfs {
        /// The root prefix.
        root: PathBuf,
    },
    /// A step that was not tried because its group could not be read.
    #[error("not tried: {why}")]
    NotTried {
        /// Why.
        why: String,
    },
    /// A step that was done and then undone because another step of its
    /// group (parent, PF, management device) failed.
    #[error("undone: another step on {group} failed, so {group} was put back as it was{}", .trouble.as_ref().map(|t| format!(" (except: {t})")).unwrap_or_default())]
    RolledBack {
        /// The parent, PF or management device.
        group: String,
        /// What could not be put back, if anything.
        trouble: Option<String>,
    },
    /// Stable UUIDs need the host's identity.
    #[error("the host has no identity for stable UUIDs: set [host] id in the host file, or give the machine an /etc/machine-id")]
    NoHostId,
    /// A migration spec that cannot be used.
    #[error("the migration spec cannot be used: {why}")]
    BadSpec {
        /// Why.
        why: String,
    },
    /// No parent can take the device a spec describes.
    #[error("nothing here can take a {type_id} device: {why}")]
    PrepareNoRoom {
        /// The type.
        type_id: String,
        /// Each parent offering it and why it cannot, or that none does.
        why: String,
    },
    /// No PCI function at this address.
    #[error("there is no PCI device {address}")]
    NoPciDevice {
        /// The address asked for.
        address: String,
    },
    /// A vDPA name or value is unusable.
    #[error(transparent)]
    VdpaValue(#[from] hostdev_model::vdpa::VdpaValueError),
    /// A vDPA definition of this name exists already.
    #[error("vDPA device {name} is defined already; undefine or modify it")]
    VdpaDefined {
        /// The device.
        name: VdpaName,
    },
    /// No vDPA definition of this name.
    #[error("vDPA device {name} is not defined")]
    VdpaNotDefined {
        /// The device.
        name: VdpaName,
    },
    /// Neither a vDPA device nor a definition of this name.
    #[error("there is no vDPA device or definition named {name}")]
    VdpaUnknown {
        /// The device.
        name: VdpaName,
    },
    /// The device is not bound to vhost_vdpa (no character device for a VM).
    #[error("vDPA device {name} is not bound to vhost_vdpa (no /dev/vhost-vdpa-N)")]
    VdpaUnbound {
        /// The device.
        name: VdpaName,
    },
    /// An export of another kind or version.
    #[error("the export of {name} is not a hostdev vDPA export (kind vdpa, version 1)")]
    BadExport {
        /// The device named in it.
        name: VdpaName,
    },
    /// Restoring one device panicked; it is reported failed, the others go on.
    #[error("restoring {device} stopped on an internal error (a panic); the other devices were not affected")]
    RestorePanicked {
        /// The device (UUID, VF or name) or, for a whole worker, its parent.
        device: String,
    },
    /// Installing a file (the udev rule) failed.
    #[error("cannot install {path}")]
    Install {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: Box<StoreError>,
    },
    /// A PCI address read back from pool state does not parse.
    #[error(transparent)]
    BadAddress(#[from] hostdev_model::vgpu::PciAddressError),
    /// No pool of that name is defined.
    #[error("no pool '{pool}' is defined (no {path})")]
    PoolUnknown {
        /// The pool.
        pool: String,
        /// Where its file would be.
        path: PathBuf,
    },
    /// Every device the pool can hand out now is held.
    #[error("pool {pool} is exhausted: {allocated} of {capacity} allocated")]
    PoolExhausted {
        /// The pool.
        pool: String,
        /// Held now.
        allocated: u64,
        /// Held plus free now.
        capacity: u64,
    },
    /// No member of the pool is present.
    #[error("pool {pool} has no members on this host: nothing here matches its selector")]
    PoolNoMembers {
        /// The pool.
        pool: String,
    },
    /// The device asked for is held by someone else.
    #[error("{id} of pool {pool} is held by {consumer}")]
    PoolDeviceHeld {
        /// The pool.
        pool: String,
        /// The device.
        id: String,
        /// Its holder.
        consumer: String,
    },
    /// The device asked for is not one of the pool's.
    #[error("{id} is not a device of pool {pool}")]
    PoolNotMember {
        /// The pool.
        pool: String,
        /// The device.
        id: String,
    },
    /// The request does not fit the pool (a UUID for a vGPU pool, a binding
    /// to a pre-created pool).
    #[error("pool {pool}: {why}")]
    PoolMisuse {
        /// The pool.
        pool: String,
        /// Why, as a sentence fragment.
        why: String,
    },
    /// A release named nothing that is held.
    #[error("nothing to release: {what} holds no device of any pool")]
    PoolNothingHeld {
        /// The consumer or device.
        what: String,
    },
    /// A UUID is bound to another pool, or named by a definition already.
    #[error("UUID {uuid} is already {why}")]
    PoolUuidTaken {
        /// The UUID.
        uuid: Uuid,
        /// Bound to which pool, or defined where.
        why: String,
    },
    /// No member can take one of the pool's devices and it holds none.
    #[error("pool {pool} cannot make a device on any member: {why}")]
    PoolNoRoom {
        /// The pool.
        pool: String,
        /// Each member and why, as fragments.
        why: String,
    },
    /// A pre-created pool could not be filled to its count.
    #[error("pool {pool} could not make its pre-created devices: {why}")]
    PoolFillFailed {
        /// The pool.
        pool: String,
        /// What failed.
        why: String,
    },
    /// A reservation time outside what a reservation may last.
    #[error("a reservation lasts 1 second to 30 days ({max} seconds); {ttl} seconds is out of range", max = crate::pool::MAX_TTL_SECS)]
    PoolBadTtl {
        /// The time asked for, in seconds.
        ttl: u64,
    },
    /// An unbind named a UUID bound to no pool.
    #[error("UUID {uuid} is bound to no pool")]
    PoolNotBound {
        /// The UUID.
        uuid: Uuid,
    },
    /// A domain names an unbound UUID and several pools take any UUID.
    #[error(
        "UUID {uuid} is bound to no pool and several pools bind on use ({pools}); bind it to one"
    )]
    PoolAmbiguous {
        /// The UUID.
        uuid: Uuid,
        /// The pools.
        pools: String,
    },
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn on_parent(p: &Option<ParentName>) -> String {
    p.as_ref().map(|p| format!(" on {p}")).unwrap_or_default()
}

fn join(ps: &[ParentName]) -> String {
    ps.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
}

fn hint_text(h: &Option<ParentName>) -> String {
    h.as_ref()
        .map(|h| format!("; did you mean {h}?"))
        .unwrap_or_default()
}

fn missing(r: &Readiness) -> String {
    let mut m = Vec::new();
    if !r.present {
        m.push("no device directory");
    }
    if !r.driver_bound {
        m.push("no driver bound");
    }
    if !r.iommu_group {
        m.push("no IOMMU group");
    }
    m.join(", ")
}

fn stderr_hint(s: &str) -> String {
    let s = s.trim();
    if s.is_empty() {
        String::new()
    } else {
        format!(": {s}")
    }
}

impl From<hostdev_sysfs::sriov::SriovError> for CoreError {
    fn from(e: hostdev_sysfs::sriov::SriovError) -> Self {
        CoreError::Sriov(Box::new(e))
    }
}

impl From<hostdev_vfio::VfioError> for CoreError {
    fn from(e: hostdev_vfio::VfioError) -> Self {
        CoreError::Vfio(Box::new(e))
    }
}

impl From<hostdev_vdpa::VdpaError> for CoreError {
    fn from(e: hostdev_vdpa::VdpaError) -> Self {
        CoreError::Vdpa(Box::new(e))
    }
}

impl CoreError {
    /// The type is not creatable on `vf`, listing what it can take.
    pub(crate) fn not_creatable(
        vf: &PciAddress,
        type_input: String,
        creatable: &[hostdev_model::vgpu::VgpuType],
    ) -> Self {
        CoreError::VgpuTypeNotCreatable {
            vf: vf.clone(),
            type_input,
            creatable: creatable
                .iter()
                .map(|t| format!("{} ({})", t.id, t.name))
                .collect(),
        }
    }

    /// Wraps a failed sysfs read.
    pub(crate) fn inventory(e: SysfsError) -> Self {
        CoreError::Inventory(Box::new(e))
    }

    /// The kernel refused a create because the device exists already
    /// (EEXIST from the mdev core, or the vdpa family's "exists").
    pub fn is_exists(&self) -> bool {
        match self {
            CoreError::Create { source, .. } => matches!(
                &**source,
                SysfsError::Create { source, .. }
                    if source.raw_os_error() == Some(rustix::io::Errno::EXIST.raw_os_error())
            ),
            CoreError::Vdpa(e) => matches!(**e, hostdev_vdpa::VdpaError::Exists(_)),
            _ => false,
        }
    }

    /// The kernel has no vdpa netlink family (module not loaded, or another
    /// network namespace): no vDPA device can exist for this process.
    pub fn is_no_family(&self) -> bool {
        matches!(self, CoreError::Vdpa(e) if matches!(**e, hostdev_vdpa::VdpaError::NoFamily))
    }

    /// The sentence and its causes joined once (thiserror's transparent
    /// variants repeat their source; it is printed once).
    pub fn chain(&self) -> String {
        chain(self)
    }
}

/// Runs one device's restore step so that a panic in it is that device's
/// failure, never a vanished row or an aborted batch.
pub(crate) fn guarded<T>(
    device: &dyn std::fmt::Display,
    f: impl FnOnce() -> Result<T, CoreError>,
) -> Result<T, CoreError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(CoreError::RestorePanicked {
            device: device.to_string(),
        })
    })
}

/// Any error and its sources as one line, each cause printed once.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if parts.last().is_none_or(|l| !l.ends_with(&s)) {
            parts.push(s);
        }
        cur = c.source();
    }
    parts.join(": ")
}
