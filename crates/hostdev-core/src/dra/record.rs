//! The record of what was prepared for each claim: one JSON file per claim
//! UID under `/var/lib/hostdev/dra/claims/`, written atomically under the
//! host lock. A record is `preparing` (written before the kernel is asked,
//! naming every device the prepare is about to make), `prepared`, or
//! `unpreparing` (written before the first removal). The DRA lock's holder
//! that finds a record in transit knows its writer died and undoes it.
//!
//! Owns: the file format and its reads and writes. Must not: touch the kernel.

use super::DraError;
use crate::{CoreError, Locker};
use hostdev_api::DraClaim;
use hostdev_model::pci::PciAddress;
use hostdev_model::vdpa::{CreateConfig, MgmtDevName, VdpaName};
use hostdev_model::{ParentName, TypeId, Uuid};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The largest record read (32 devices take a few KiB).
const RECORD_LIMIT: u64 = 256 << 10;

/// Where a claim is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Stage {
    /// Written before the first device was made.
    Preparing,
    /// Every device made.
    Prepared,
    /// Written before the first device is removed.
    Unpreparing,
}

/// What prepare makes (or made) for one allocated device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub(crate) enum Made {
    /// An mdev with a UUID derived from the claim, request and device.
    Mdev {
        uuid: Uuid,
        parent: ParentName,
        mdev_type: TypeId,
    },
    /// A VF's vGPU type, set by id from the VF's own list.
    Vgpu {
        vf: PciAddress,
        type_id: u32,
        type_name: String,
    },
    /// A vDPA device with a name derived from the claim, request and
    /// device, on `mgmtdev`, created with `config`.
    Vdpa {
        name: VdpaName,
        mgmtdev: MgmtDevName,
        config: CreateConfig,
    },
}

impl Made {
    /// What kind of device it is.
    pub(crate) fn kind(&self) -> hostdev_api::Kind {
        match self {
            Made::Mdev { .. } => hostdev_api::Kind::Mdev,
            Made::Vgpu { .. } => hostdev_api::Kind::Vgpu,
            Made::Vdpa { .. } => hostdev_api::Kind::Vdpa,
        }
    }

    /// The made device's id: an mdev's UUID, a VF's address.
    pub(crate) fn id(&self) -> String {
        match self {
            Made::Mdev { uuid, .. } => uuid.to_string(),
            Made::Vgpu { vf, .. } => vf.to_string(),
            Made::Vdpa { name, .. } => name.as_str().to_string(),
        }
    }
}

/// One allocated device and what it became.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Entry {
    pub request: String,
    pub device: String,
    pub made: Made,
}

/// One claim's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Record {
    pub claim: DraClaim,
    pub stage: Stage,
    pub devices: Vec<Entry>,
}

pub(crate) fn dir(root: &Path) -> PathBuf {
    super::state_dir(root).join("claims")
}

fn path(root: &Path, uid: &Uuid) -> PathBuf {
    dir(root).join(format!("{uid}.json"))
}

fn parse(p: &Path, bytes: &[u8]) -> Result<Record, CoreError> {
    serde_json::from_slice(bytes).map_err(|e| {
        CoreError::from(DraError::BadRecord {
            path: p.to_path_buf(),
            why: e.to_string(),
        })
    })
}

fn read(p: &Path) -> Result<Option<Record>, CoreError> {
    match hostdev_fs::read_regular_within(p, hostdev_fs::Limits::own_file(RECORD_LIMIT)) {
        Ok(None) => Ok(None),
        Ok(Some(b)) => parse(p, &b).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(DraError::BadRecord {
            path: p.to_path_buf(),
            why: e.to_string(),
        }
        .into()),
    }
}

/// The record of claim `uid`, if any.
pub(crate) fn load(root: &Path, uid: &Uuid) -> Result<Option<Record>, CoreError> {
    read(&path(root, uid))
}

/// Every record, and a sentence for each one that cannot be read (skipped).
pub(crate) fn load_all(root: &Path) -> (Vec<Record>, Vec<String>) {
    let d = dir(root);
    let mut out = Vec::new();
    let mut notes = Vec::new();
    let Ok(rd) = std::fs::read_dir(&d) else {
        return (out, notes);
    };
    let mut names: Vec<String> = rd
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.') && n.ends_with(".json"))
        .collect();
    names.sort();
    for n in names {
        match read(&d.join(&n)) {
            Ok(Some(r)) => out.push(r),
            Ok(None) => {}
            Err(e) => notes.push(e.to_string()),
        }
    }
    (out, notes)
}

/// Writes `rec` atomically under the host lock.
pub(crate) fn save(root: &Path, rec: &Record) -> Result<(), CoreError> {
    let lock = Locker::under(root).lock()?;
    let data = serde_json::to_vec_pretty(rec).map_err(|e| DraError::BadRecord {
        path: path(root, &rec.claim.uid),
        why: e.to_string(),
    })?;
    // The record is of kernel state a reboot discards: see
    // `write_atomic_volatile` for why its directory is not synced.
    hostdev_store::write_atomic_volatile(&lock, &path(root, &rec.claim.uid), &data)?;
    Ok(())
}

/// Removes the record of claim `uid` under the host lock (gone already: done).
pub(crate) fn forget(root: &Path, uid: &Uuid) -> Result<(), CoreError> {
    let _lock = Locker::under(root).lock()?;
    let p = path(root, uid);
    match std::fs::remove_file(&p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(hostdev_store::StoreError::Remove { path: p, source }.into()),
    }
}
