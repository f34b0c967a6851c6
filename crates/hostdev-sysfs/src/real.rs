//! The real sysfs tree under a root prefix (`/` on a host, a directory in tests,
//! a FUSE mount under the simulated lab).

use crate::{ActiveDevice, MdevSysfs, Readiness, SysfsError};
use hostdev_fs::DirFd;
use hostdev_model::format::{CachedType, TypeCache, TypeInfo};
use hostdev_model::{AttrName, ParentName, TypeId, Uuid};
use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// sysfs below `root` (`root/sys/...`).
#[derive(Debug, Clone)]
pub struct RealSysfs {
    root: PathBuf,
    class: PathBuf,
    bus: PathBuf,
    memo: Option<Arc<DeviceMemo>>,
}

/// Running devices remembered between calls of a long-running process (the
/// daemon), keyed by the inode number of their `/sys/bus/mdev/devices` entry.
///
/// A device's parent and type never change while it exists, and sysfs gives a
/// re-created device a new node with a new inode number, so an entry listed
/// with the number remembered is the device remembered: one directory read
/// answers for every device, and only new devices' links are read.
#[derive(Debug, Default)]
pub struct DeviceMemo {
    known: Mutex<HashMap<Uuid, (u64, ActiveDevice)>>,
}

impl DeviceMemo {
    /// An empty memo.
    pub fn new() -> Self {
        Self::default()
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, (u64, ActiveDevice)>> {
        // Entries are replaced whole: one left by a panicking thread is still true.
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RealSysfs {
    /// sysfs of the host whose filesystem root is `root`.
    pub fn new(root: &Path) -> Self {
        RealSysfs {
            root: root.to_path_buf(),
            class: root.join("sys/class/mdev_bus"),
            bus: root.join("sys/bus/mdev/devices"),
            memo: None,
        }
    }

    /// The same tree, running devices remembered in `memo` between calls.
    pub fn remembering(mut self, memo: Arc<DeviceMemo>) -> Self {
        self.memo = Some(memo);
        self
    }

    fn types_dir(&self, parent: &ParentName) -> PathBuf {
        self.class
            .join(parent.as_str())
            .join("mdev_supported_types")
    }

    fn types_fd(&self, parent: &ParentName) -> Result<Option<DirFd>, SysfsError> {
        let path = self.types_dir(parent);
        match DirFd::open(&path) {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(SysfsError::Read { path, source }),
        }
    }

    fn read_available(
        &self,
        types: &DirFd,
        parent: &ParentName,
        t: &TypeId,
        buf: &mut Vec<u8>,
    ) -> Result<i64, SysfsError> {
        let path = || {
            self.types_dir(parent)
                .join(t.as_str())
                .join("available_instances")
        };
        match types.read_into(&format!("{t}/available_instances"), buf) {
            Ok(true) => {}
            Ok(false) => {
                return Err(SysfsError::Read {
                    path: path(),
                    source: io::Error::from(io::ErrorKind::NotFound),
                })
            }
            Err(source) => {
                return Err(SysfsError::Read {
                    path: path(),
                    source,
                })
            }
        }
        let s = String::from_utf8_lossy(buf);
        s.trim().parse().map_err(|_| SysfsError::Malformed {
            path: path(),
            content: s.trim().to_string(),
            expected: "a number",
        })
    }

    /// Reads one type through the parent's `mdev_supported_types` handle.
    fn read_type(
        &self,
        types: &DirFd,
        parent: &ParentName,
        t: TypeId,
        buf: &mut Vec<u8>,
    ) -> Result<TypeInfo, SysfsError> {
        let path = |f: &str| self.types_dir(parent).join(t.as_str()).join(f);
        let read = |f: &str, buf: &mut Vec<u8>| -> Result<Option<String>, SysfsError> {
            match types.read_into(&format!("{t}/{f}"), buf) {
                Ok(true) => Ok(Some(String::from_utf8_lossy(buf).into_owned())),
                Ok(false) => Ok(None),
                Err(source) => Err(SysfsError::Read {
                    path: path(f),
                    source,
                }),
            }
        };
        let required = |v: Option<String>, f: &str| {
            v.map(|s| s.trim().to_string())
                .ok_or_else(|| SysfsError::Read {
                    path: path(f),
                    source: io::Error::from(io::ErrorKind::NotFound),
                })
        };
        let avail = required(read("available_instances", buf)?, "available_instances")?;
        let available_instances = avail.parse().map_err(|_| SysfsError::Malformed {
            path: path("available_instances"),
            content: avail,
            expected: "a number",
        })?;
        let device_api = required(read("device_api", buf)?, "device_api")?;
        let name = read("name", buf)?.map(|s| s.trim().to_string());
        let description = read("description", buf)?;
        Ok(TypeInfo {
            type_id: t,
            available_instances,
            device_api,
            name,
            description,
        })
    }

    fn bus_fd(&self) -> Result<Option<DirFd>, SysfsError> {
        match DirFd::open(&self.bus) {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(SysfsError::Read {
                path: self.bus.clone(),
                source,
            }),
        }
    }

    /// Reads a device's parent from its link in the bus directory.
    fn parent_from_link(&self, bus: &DirFd, name: &str) -> Result<Option<ParentName>, SysfsError> {
        let link = self.bus.join(name);
        let Some(target) = bus.read_link(name).map_err(|source| SysfsError::Read {
            path: link.clone(),
            source,
        })?
        else {
            return Ok(None);
        };
        // The link points at .../<parent>/<uuid>; the parent is the directory above.
        let parent = target
            .parent()
            .and_then(Path::file_name)
            .and_then(|n| n.to_str())
            .and_then(|n| ParentName::new(n).ok())
            .ok_or_else(|| SysfsError::Malformed {
                path: link.clone(),
                content: target.display().to_string(),
                expected: "a link to <parent>/<uuid>",
            })?;
        Ok(Some(parent))
    }

    /// Reads a device's parent and type from its two links, relative to the bus directory.
    fn active_from_link(
        &self,
        bus: &DirFd,
        uuid: Uuid,
    ) -> Result<Option<ActiveDevice>, SysfsError> {
        let name = uuid.to_string();
        let read_err = |path: PathBuf| move |source| SysfsError::Read { path, source };
        let Some(parent) = self.parent_from_link(bus, &name)? else {
            return Ok(None);
        };
        let type_link = self.bus.join(&name).join("mdev_type");
        // Gone between the two reads: not running any more.
        let Some(type_target) = bus
            .read_link(&format!("{name}/mdev_type"))
            .map_err(read_err(type_link.clone()))?
        else {
            return Ok(None);
        };
        let mdev_type = type_target
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| TypeId::new(n).ok())
            .ok_or_else(|| SysfsError::Malformed {
                path: type_link.clone(),
                content: type_target.display().to_string(),
                expected: "a link to a type directory",
            })?;
        Ok(Some(ActiveDevice {
            uuid,
            parent,
            mdev_type,
        }))
    }
}

/// Names in a directory, sorted; a missing directory is empty.
fn dir_names(path: &Path) -> Result<Vec<String>, SysfsError> {
    let err = |source| SysfsError::Read {
        path: path.to_path_buf(),
        source,
    };
    let d = match DirFd::open(path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(err(e)),
    };
    let mut names: Vec<String> = d
        .entries()
        .map_err(err)?
        .into_iter()
        .map(|e| e.name)
        .collect();
    names.sort();
    Ok(names)
}

/// Writes `data` to an existing sysfs file: never creates or truncates.
fn write_existing(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).open(path)?;
    f.write_all(data)
}

impl MdevSysfs for RealSysfs {
    fn device_driver(&self, uuid: &Uuid) -> hostdev_model::probe::DriverIdentity {
        crate::driver_identity(&self.root, &self.bus.join(uuid.to_string()))
    }

    fn parent_facts(&self, parent: &ParentName) -> hostdev_model::pool::MemberFacts {
        crate::device_facts(&self.class.join(parent.as_str()), parent.as_str())
    }
    fn parents(&self) -> Result<Vec<ParentName>, SysfsError> {
        Ok(dir_names(&self.class)?
            .into_iter()
            .filter_map(|n| ParentName::new(n).ok())
            .collect())
    }

    fn parent_exists(&self, parent: &ParentName) -> bool {
        self.types_dir(parent).is_dir()
    }

    fn types(&self, parent: &ParentName) -> Result<Vec<TypeInfo>, SysfsError> {
        self.types_cached(parent, &TypeCache::default(), &mut Vec::new())
    }

    fn types_cached(
        &self,
        parent: &ParentName,
        cache: &TypeCache,
        fresh: &mut Vec<(String, CachedType)>,
    ) -> Result<Vec<TypeInfo>, SysfsError> {
        let Some(types) = self.types_fd(parent)? else {
            return Ok(Vec::new());
        };
        let mut entries = types.entries().map_err(|source| SysfsError::Read {
            path: self.types_dir(parent),
            source,
        })?;
        entries.sort();
        let mut buf = Vec::with_capacity(4096);
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let Ok(t) = TypeId::new(e.name) else { continue };
            let key = TypeCache::key(parent.as_str(), t.as_str());
            match cache
                .types
                .get(&key)
                .filter(|c| c.ino == e.ino && e.ino != 0)
            {
                Some(c) => {
                    let available_instances = self.read_available(&types, parent, &t, &mut buf)?;
                    out.push(TypeInfo {
                        type_id: t,
                        available_instances,
                        device_api: c.device_api.clone(),
                        name: c.name.clone(),
                        description: c.description.clone(),
                    });
                }
                None => {
                    let info = self.read_type(&types, parent, t, &mut buf)?;
                    fresh.push((
                        key,
                        CachedType {
                            ino: e.ino,
                            device_api: info.device_api.clone(),
                            name: info.name.clone(),
                            description: info.description.clone(),
                        },
                    ));
                    out.push(info);
                }
            }
        }
        Ok(out)
    }

    fn type_info(&self, parent: &ParentName, t: &TypeId) -> Result<Option<TypeInfo>, SysfsError> {
        let Some(types) = self.types_fd(parent)? else {
            return Ok(None);
        };
        if types.open_dir(t.as_str()).is_err() {
            return Ok(None);
        }
        self.read_type(&types, parent, t.clone(), &mut Vec::new())
            .map(Some)
    }

    fn available_instances(
        &self,
        parent: &ParentName,
        t: &TypeId,
    ) -> Result<Option<i64>, SysfsError> {
        // One open and one read: what start needs before it creates.
        let path = self
            .types_dir(parent)
            .join(t.as_str())
            .join("available_instances");
        let text = match std::fs::read_to_string(&path) {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(SysfsError::Read { path, source }),
        };
        text.trim()
            .parse()
            .map(Some)
            .map_err(|_| SysfsError::Malformed {
                path,
                content: text.trim().to_string(),
                expected: "a number",
            })
    }

    fn devices(&self) -> Result<Vec<ActiveDevice>, SysfsError> {
        let Some(bus) = self.bus_fd()? else {
            return Ok(Vec::new());
        };
        let entries = bus.entries().map_err(|source| SysfsError::Read {
            path: self.bus.clone(),
            source,
        })?;
        let mut out = Vec::with_capacity(entries.len());
        let mut known = self.memo.as_ref().map(|m| m.known());
        let mut listed = Vec::with_capacity(entries.len());
        for e in entries {
            let Ok(u) = e.name.parse::<Uuid>() else {
                continue;
            };
            listed.push(u);
            let remembered = known
                .as_ref()
                .and_then(|k| k.get(&u))
                .filter(|(ino, _)| *ino == e.ino && e.ino != 0);
            if let Some((_, d)) = remembered {
                out.push(d.clone());
                continue;
            }
            if let Some(d) = self.active_from_link(&bus, u)? {
                if let Some(k) = known.as_mut() {
                    k.insert(u, (e.ino, d.clone()));
                }
                out.push(d);
            }
        }
        if let Some(k) = known.as_mut() {
            if k.len() > listed.len() {
                let listed: std::collections::HashSet<_> = listed.into_iter().collect();
                k.retain(|u, _| listed.contains(u));
            }
        }
        out.sort_by_key(|d| d.uuid);
        Ok(out)
    }

    /// The bus directory's names and inode numbers, hashed: sysfs gives a
    /// re-created device a new node, so the same pairs are the same devices.
    fn devices_fingerprint(&self) -> Option<u64> {
        use std::hash::{Hash, Hasher};
        let mut entries = match self.bus_fd() {
            Ok(Some(bus)) => bus.entries().ok()?,
            Ok(None) => Vec::new(),
            Err(_) => return None,
        };
        if entries.iter().any(|e| e.ino == 0) {
            return None;
        }
        entries.sort_unstable();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for e in &entries {
            (&e.name, e.ino).hash(&mut h);
        }
        Some(h.finish())
    }

    fn running_parents(&self) -> Result<Vec<(Uuid, ParentName)>, SysfsError> {
        // A device is a child directory of its parent's device directory: one
        // directory read per parent instead of one readlink per device.
        let mut out = Vec::new();
        for parent in self.parents()? {
            let path = self.class.join(parent.as_str());
            let entries = match DirFd::open(&path).and_then(|d| d.entries()) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => return Err(SysfsError::Read { path, source }),
            };
            for e in entries {
                if e.kind != hostdev_fs::Kind::File && e.kind != hostdev_fs::Kind::Link {
                    if let Ok(u) = e.name.parse::<Uuid>() {
                        out.push((u, parent.clone()));
                    }
                }
            }
        }
        Ok(out)
    }

    fn device(&self, uuid: &Uuid) -> Result<Option<ActiveDevice>, SysfsError> {
        match self.bus_fd()? {
            Some(bus) => self.active_from_link(&bus, *uuid),
            None => Ok(None),
        }
    }

    fn create(&self, parent: &ParentName, t: &TypeId, uuid: &Uuid) -> Result<(), SysfsError> {
        let path = self.types_dir(parent).join(t.as_str()).join("create");
        write_existing(&path, uuid.to_string().as_bytes()).map_err(|source| SysfsError::Create {
            uuid: *uuid,
            parent: parent.clone(),
            mdev_type: t.clone(),
            source,
        })
    }

    fn remove(&self, uuid: &Uuid) -> Result<(), SysfsError> {
        let path = self.bus.join(uuid.to_string()).join("remove");
        write_existing(&path, b"1").map_err(|source| SysfsError::Remove {
            uuid: *uuid,
            source,
        })
    }

    fn write_attr(&self, uuid: &Uuid, attr: &AttrName, value: &str) -> Result<(), SysfsError> {
        let path = self.bus.join(uuid.to_string()).join(attr.as_str());
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_file() => {}
            Ok(_) => {
                return Err(SysfsError::AttrNotFile {
                    uuid: *uuid,
                    attr: attr.clone(),
                })
            }
            Err(_) => {
                return Err(SysfsError::NoAttr {
                    uuid: *uuid,
                    attr: attr.clone(),
                })
            }
        }
        write_existing(&path, value.as_bytes()).map_err(|source| SysfsError::AttrWrite {
            uuid: *uuid,
            attr: attr.clone(),
            value: value.to_string(),
            source,
        })
    }

    fn readiness(&self, uuid: &Uuid) -> Readiness {
        // One walk to the device directory, then two one-component lookups.
        let Ok(dir) = DirFd::open(&self.bus.join(uuid.to_string())) else {
            return Readiness::default();
        };
        Readiness {
            present: true,
            driver_bound: matches!(dir.read_link("driver"), Ok(Some(_))),
            iommu_group: matches!(dir.read_link("iommu_group"), Ok(Some(_))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let p = r.join("sys/devices/virtual/mtty");
        let ty = p.join("mdev_supported_types/mtty-1");
        fs::create_dir_all(ty.join("devices")).unwrap();
        fs::write(ty.join("available_instances"), "24\n").unwrap();
        fs::write(ty.join("device_api"), "vfio-pci\n").unwrap();
        fs::write(ty.join("name"), "Single port serial\n").unwrap();
        fs::write(ty.join("create"), "").unwrap();
        fs::create_dir_all(r.join("sys/class/mdev_bus")).unwrap();
        symlink(
            "../../devices/virtual/mtty",
            r.join("sys/class/mdev_bus/mtty"),
        )
        .unwrap();
        let u = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001";
        fs::create_dir_all(p.join(u)).unwrap();
        symlink(
            "../mdev_supported_types/mtty-1",
            p.join(u).join("mdev_type"),
        )
        .unwrap();
        fs::write(p.join(u).join("remove"), "").unwrap();
        symlink("/etc/passwd", p.join(u).join("evil")).unwrap();
        fs::create_dir_all(r.join("sys/bus/mdev/devices")).unwrap();
        symlink(
            format!("../../../devices/virtual/mtty/{u}"),
            r.join("sys/bus/mdev/devices").join(u),
        )
        .unwrap();
        t
    }

    #[test]
    fn a_remembered_device_recreated_with_another_type_is_read_again() {
        let t = tree();
        let r = t.path();
        let p = r.join("sys/devices/virtual/mtty");
        fs::create_dir_all(p.join("mdev_supported_types/mtty-2")).unwrap();
        let memo = Arc::new(DeviceMemo::new());
        let s = RealSysfs::new(r).remembering(memo.clone());
        let types = |s: &RealSysfs| -> Vec<String> {
            s.devices()
                .unwrap()
                .into_iter()
                .map(|d| d.mdev_type.to_string())
                .collect()
        };
        assert_eq!(types(&s), ["mtty-1"]);
        // Remembered: a link changed in place is not looked at again...
        let u = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001";
        fs::remove_file(p.join(u).join("mdev_type")).unwrap();
        symlink(
            "../mdev_supported_types/mtty-2",
            p.join(u).join("mdev_type"),
        )
        .unwrap();
        assert_eq!(types(&s), ["mtty-1"]);
        // ...but a device removed and created again has a new bus entry.
        let bus = r.join("sys/bus/mdev/devices").join(u);
        let keep = r.join("keep");
        symlink(format!("../../../devices/virtual/mtty/{u}"), &keep).unwrap();
        fs::remove_file(&bus).unwrap();
        assert!(types(&s).is_empty());
        fs::rename(&keep, &bus).unwrap();
        assert_eq!(types(&s), ["mtty-2"]);
        assert_eq!(types(&RealSysfs::new(r)), ["mtty-2"]);
    }

    #[test]
    fn reads_parents_types_and_devices() {
        let t = tree();
        let s = RealSysfs::new(t.path());
        assert_eq!(s.parents().unwrap(), vec![ParentName::new("mtty").unwrap()]);
        let types = s.types(&ParentName::new("mtty").unwrap()).unwrap();
        assert_eq!(types[0].available_instances, 24);
        assert_eq!(types[0].name.as_deref(), Some("Single port serial"));
        let d = s.devices().unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].parent.as_str(), "mtty");
        assert_eq!(d[0].mdev_type.as_str(), "mtty-1");
    }

    #[test]
    fn attribute_links_out_of_the_device_are_refused() {
        let t = tree();
        let s = RealSysfs::new(t.path());
        let u: Uuid = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001".parse().unwrap();
        let e = s
            .write_attr(&u, &AttrName::new("evil").unwrap(), "x")
            .unwrap_err();
        assert!(matches!(e, SysfsError::AttrNotFile { .. }));
        let e = s
            .write_attr(&u, &AttrName::new("nosuch").unwrap(), "x")
            .unwrap_err();
        assert!(matches!(e, SysfsError::NoAttr { .. }));
    }

    #[test]
    fn type_cache_is_used_only_while_the_inode_matches() {
        let t = tree();
        let s = RealSysfs::new(t.path());
        let p = ParentName::new("mtty").unwrap();
        let mut fresh = Vec::new();
        let first = s
            .types_cached(&p, &TypeCache::default(), &mut fresh)
            .unwrap();
        assert_eq!(fresh.len(), 1);
        let mut cache = TypeCache::default();
        cache.types.extend(fresh.clone());
        let (key, mut entry) = fresh.pop().unwrap();
        // A valid entry is used (only available_instances is read).
        entry.name = Some("from cache".into());
        cache.types.insert(key.clone(), entry.clone());
        let mut again = Vec::new();
        let warm = s.types_cached(&p, &cache, &mut again).unwrap();
        assert!(again.is_empty());
        assert_eq!(warm[0].name.as_deref(), Some("from cache"));
        assert_eq!(warm[0].available_instances, first[0].available_instances);
        // A re-registered parent has new directories: the entry is stale.
        entry.ino += 1;
        cache.types.insert(key, entry);
        let cold = s.types_cached(&p, &cache, &mut again).unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(cold[0].name.as_deref(), Some("Single port serial"));
    }

    #[test]
    fn writes_never_create_files() {
        let t = tree();
        let s = RealSysfs::new(t.path());
        let u: Uuid = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1002".parse().unwrap();
        assert!(s.remove(&u).is_err());
        assert!(!t
            .path()
            .join("sys/bus/mdev/devices")
            .join(u.to_string())
            .exists());
    }
}
