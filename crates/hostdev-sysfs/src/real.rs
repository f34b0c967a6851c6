//! The real sysfs tree under a root prefix (`/` on a host, a directory in tests,
//! a FUSE mount under the simulated lab).

use crate::{ActiveDevice, MdevSysfs, Readiness, SysfsError};
use hostdev_model::format::TypeInfo;
use hostdev_model::{AttrName, ParentName, TypeId, Uuid};
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// sysfs below `root` (`root/sys/...`).
#[derive(Debug, Clone)]
pub struct RealSysfs {
    class: PathBuf,
    bus: PathBuf,
}

impl RealSysfs {
    /// sysfs of the host whose filesystem root is `root`.
    pub fn new(root: &Path) -> Self {
        RealSysfs {
            class: root.join("sys/class/mdev_bus"),
            bus: root.join("sys/bus/mdev/devices"),
        }
    }

    fn types_dir(&self, parent: &ParentName) -> PathBuf {
        self.class
            .join(parent.as_str())
            .join("mdev_supported_types")
    }

    fn read_type(&self, dir: &Path, t: TypeId) -> Result<TypeInfo, SysfsError> {
        let avail_path = dir.join("available_instances");
        let avail = read_trimmed(&avail_path)?;
        let available_instances = avail.parse().map_err(|_| SysfsError::Malformed {
            path: avail_path,
            content: avail,
            expected: "a number",
        })?;
        Ok(TypeInfo {
            type_id: t,
            available_instances,
            device_api: read_trimmed(&dir.join("device_api"))?,
            name: read_optional(&dir.join("name"))?.map(|s| s.trim().to_string()),
            description: read_optional(&dir.join("description"))?,
        })
    }

    fn active_from_link(&self, uuid: Uuid) -> Result<Option<ActiveDevice>, SysfsError> {
        let link = self.bus.join(uuid.to_string());
        let target = match fs::read_link(&link) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(SysfsError::Read { path: link, source }),
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
        let type_link = link.join("mdev_type");
        let type_target = match fs::read_link(&type_link) {
            Ok(t) => t,
            // Removed between the two reads: not running any more.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(SysfsError::Read {
                    path: type_link,
                    source,
                })
            }
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

fn read_trimmed(path: &Path) -> Result<String, SysfsError> {
    fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|source| SysfsError::Read {
            path: path.to_path_buf(),
            source,
        })
}

fn read_optional(path: &Path) -> Result<Option<String>, SysfsError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SysfsError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Names in a directory; a missing directory is empty.
fn dir_names(path: &Path) -> Result<Vec<String>, SysfsError> {
    let rd = match fs::read_dir(path) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(SysfsError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let mut names = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|source| SysfsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        if let Some(n) = ent.file_name().to_str() {
            names.push(n.to_string());
        }
    }
    names.sort();
    Ok(names)
}

/// Writes `data` to an existing sysfs file: never creates or truncates.
fn write_existing(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).open(path)?;
    f.write_all(data)
}

impl MdevSysfs for RealSysfs {
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
        let dir = self.types_dir(parent);
        let mut out = Vec::new();
        for n in dir_names(&dir)? {
            if let Ok(t) = TypeId::new(n.clone()) {
                out.push(self.read_type(&dir.join(&n), t)?);
            }
        }
        Ok(out)
    }

    fn type_info(&self, parent: &ParentName, t: &TypeId) -> Result<Option<TypeInfo>, SysfsError> {
        let dir = self.types_dir(parent).join(t.as_str());
        if !dir.is_dir() {
            return Ok(None);
        }
        self.read_type(&dir, t.clone()).map(Some)
    }

    fn devices(&self) -> Result<Vec<ActiveDevice>, SysfsError> {
        let mut out = Vec::new();
        for n in dir_names(&self.bus)? {
            if let Ok(u) = n.parse::<Uuid>() {
                if let Some(d) = self.active_from_link(u)? {
                    out.push(d);
                }
            }
        }
        out.sort_by_key(|d| d.uuid);
        Ok(out)
    }

    fn device(&self, uuid: &Uuid) -> Result<Option<ActiveDevice>, SysfsError> {
        self.active_from_link(*uuid)
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
        let dir = self.bus.join(uuid.to_string());
        Readiness {
            present: dir.is_dir(),
            driver_bound: fs::symlink_metadata(dir.join("driver")).is_ok(),
            iommu_group: fs::symlink_metadata(dir.join("iommu_group")).is_ok(),
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
