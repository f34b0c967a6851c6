//! The kernel's state as sysfs paths: what is at `class/mdev_bus`, the
//! content of a file, what a write to one does. A write parses its text as
//! the kernel's store function would and makes the typed call of
//! [`Kernel`]; no rule is decided here.
//!
//! Owns: the sysfs layout (directories, files, links, their modes). Must
//! not: decide a rule or an errno of its own beyond the file's existence and
//! its text.

use crate::errno::{EACCES, EINVAL, ENOENT};
use crate::kernel::{valid_uuid, Errno, Kernel};
use crate::profile::ParentProfile;
use std::time::Duration;

/// What is at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A directory with these entries.
    Dir(Vec<(String, Kind)>),
    /// A file.
    File {
        /// Whether it can be written (decides the mode shown).
        writable: bool,
    },
    /// A symbolic link with this (relative) target.
    Link(String),
}

/// The kind of a directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Directory.
    Dir,
    /// Regular file.
    File,
    /// Symbolic link.
    Link,
}

pub(crate) fn is_pci(name: &str) -> bool {
    let b = name.as_bytes();
    name.len() == 12 && b[4] == b':' && b[7] == b':' && b[10] == b'.'
}

pub(crate) fn devpath(p: &ParentProfile) -> String {
    p.devpath.clone().unwrap_or_else(|| {
        if is_pci(&p.name) {
            format!("pci0000:00/{}", p.name)
        } else {
            format!("virtual/{0}/{0}", p.name)
        }
    })
}

/// `to` (a path under /sys) relative to the directory `from_dir`.
pub(crate) fn rel(from_dir: &str, to: &str) -> String {
    let depth = from_dir.split('/').filter(|s| !s.is_empty()).count();
    format!("{}{}", "../".repeat(depth), to)
}

pub(crate) fn entries(list: &[(&str, Kind)]) -> Vec<(String, Kind)> {
    list.iter().map(|(n, k)| (n.to_string(), *k)).collect()
}

/// A number as the kernel's `kstrtou32(s, 0, …)` reads one (one trailing
/// newline already taken off): `0x` hex, a leading `0` octal, else decimal;
/// nothing else around it.
pub(crate) fn parse_num(s: &str) -> Option<u32> {
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (h, 16)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, radix).ok()
}

/// A boolean as `kstrtobool` reads one: by its first character (`1yYtT`,
/// `0nNfF`), or `on`/`off` by the second.
fn parse_bool(s: &str) -> Option<bool> {
    let b = s.as_bytes();
    match b.first()? {
        b'1' | b'y' | b'Y' | b't' | b'T' => Some(true),
        b'0' | b'n' | b'N' | b'f' | b'F' => Some(false),
        b'o' | b'O' => match b.get(1)? {
            b'n' | b'N' => Some(true),
            b'f' | b'F' => Some(false),
            _ => None,
        },
        _ => None,
    }
}

impl Kernel {
    /// Which life of its node `path` is in: a path inside a mediated device
    /// gets the device's own number, new each time a device is created, so
    /// that a re-created device's nodes get new inode numbers as the kernel's
    /// do; every other path 0.
    pub fn incarnation(&self, path: &str) -> u64 {
        path.split('/')
            .filter(|c| c.len() == 36)
            .find_map(|c| self.devices.get(c))
            .map_or(0, |d| u64::from(d.group))
    }

    /// What is at `path`, as a lookup by a process sees it: a look at a
    /// device's `driver` is one poll of a late-binding device.
    pub fn look(&mut self, path: &str) -> Option<Node> {
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        if let [.., u, "driver"] = parts.as_slice() {
            if self.devices.contains_key(*u) {
                self.poll_bound(u);
            }
        }
        self.node(path)
    }

    /// What is at `path` (relative to the sysfs mount, no leading '/').
    pub fn node(&self, path: &str) -> Option<Node> {
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        use Kind::*;
        match parts.as_slice() {
            [] => Some(Node::Dir(entries(&[
                ("bus", Dir),
                ("class", Dir),
                ("devices", Dir),
                ("kernel", Dir),
                ("module", Dir),
            ]))),
            ["class"] => Some(Node::Dir(entries(&[("mdev_bus", Dir)]))),
            ["class", "mdev_bus"] => Some(Node::Dir(
                self.profile
                    .parents
                    .iter()
                    .filter(|p| self.up(p.appear_after_ms))
                    .map(|p| (p.name.clone(), Link))
                    .collect(),
            )),
            ["class", "mdev_bus", p] => {
                let i = self.parent_idx(p)?;
                Some(Node::Link(rel(
                    "class/mdev_bus",
                    &format!("devices/{}", devpath(&self.profile.parents[i])),
                )))
            }
            ["bus"] => Some(Node::Dir(entries(&[("mdev", Dir), ("pci", Dir)]))),
            ["bus", "mdev"] => Some(Node::Dir(entries(&[("devices", Dir), ("drivers", Dir)]))),
            ["bus", "mdev", "drivers"] => Some(Node::Dir(entries(&[("vfio_mdev", Dir)]))),
            ["bus", "mdev", "drivers", "vfio_mdev"] => Some(Node::Dir(vec![])),
            ["bus", "mdev", "devices"] => Some(Node::Dir(
                self.devices.keys().map(|u| (u.clone(), Link)).collect(),
            )),
            ["bus", "mdev", "devices", u] => {
                let d = self.devices.get(*u)?;
                let p = &self.profile.parents[d.parent];
                Some(Node::Link(rel(
                    "bus/mdev/devices",
                    &format!("devices/{}/{u}", devpath(p)),
                )))
            }
            ["bus", "pci"] => Some(Node::Dir(entries(&[
                ("devices", Dir),
                ("drivers", Dir),
                ("drivers_probe", File),
            ]))),
            ["bus", "pci", "drivers_probe"] => Some(Node::File { writable: true }),
            ["bus", "pci", "drivers", ..] | ["module", ..] => self.driver_node(&parts[..]),
            ["bus", "pci", "devices"] => Some(Node::Dir(
                self.pci_functions()
                    .into_iter()
                    .map(|(a, _)| (a, Link))
                    .collect(),
            )),
            ["bus", "pci", "devices", a] => {
                let path = self.pci_devpath(a)?;
                Some(Node::Link(rel(
                    "bus/pci/devices",
                    &format!("devices/{path}"),
                )))
            }
            ["kernel"] => Some(Node::Dir(entries(&[("iommu_groups", Dir)]))),
            ["kernel", "iommu_groups"] => Some(Node::Dir(
                self.groups()
                    .into_iter()
                    .map(|g| (g.to_string(), Dir))
                    .collect(),
            )),
            ["kernel", "iommu_groups", g] => self
                .groups()
                .iter()
                .any(|x| x.to_string() == *g)
                .then(|| Node::Dir(vec![])),
            ["devices", rest @ ..] => self.device_node(&rest.join("/")),
            _ => None,
        }
    }

    /// Nodes under /sys/devices.
    fn device_node(&self, path: &str) -> Option<Node> {
        use Kind::*;
        // An SR-IOV function's own directory, found without listing every
        // function (a host of thousands of VFs lists each VF's files): the
        // PF or VF at `pci0000:00/ADDR`, where no mdev parent's directory
        // is, above or below.
        if let Some(rest) = path.strip_prefix("pci0000:00/") {
            let (addr, tail) = rest.split_once('/').unwrap_or((rest, ""));
            let base = format!("pci0000:00/{addr}");
            let parent_near = self.profile.parents.iter().any(|p| {
                let d = devpath(p);
                d == base
                    || base.starts_with(&format!("{d}/"))
                    || d.starts_with(&format!("{base}/"))
            });
            if !parent_near && (self.pf_idx(addr).is_some() || self.vf_of(addr).is_some()) {
                let inner: Vec<&str> = tail.split('/').filter(|s| !s.is_empty()).collect();
                return self.pci_node(addr, &base, &inner);
            }
        }
        // Directories that lead to parents and PCI functions.
        let mut prefixes: Vec<(String, Option<usize>)> = Vec::new();
        for (i, p) in self.profile.parents.iter().enumerate() {
            if self.up(p.appear_after_ms) {
                prefixes.push((devpath(p), Some(i)));
            }
        }
        for (a, dp) in self.pci_functions() {
            if !prefixes.iter().any(|(x, _)| *x == dp) {
                let _ = a;
                prefixes.push((dp, None));
            }
        }
        if path.is_empty() {
            let mut top: Vec<String> = prefixes
                .iter()
                .filter_map(|(p, _)| p.split('/').next().map(String::from))
                .collect();
            top.sort();
            top.dedup();
            return Some(Node::Dir(top.into_iter().map(|n| (n, Dir)).collect()));
        }
        // An intermediate directory?
        let mut children: Vec<String> = prefixes
            .iter()
            .filter_map(|(p, _)| {
                p.strip_prefix(&format!("{path}/"))
                    .and_then(|r| r.split('/').next())
                    .map(String::from)
            })
            .collect();
        if !children.is_empty() {
            children.sort();
            children.dedup();
            return Some(Node::Dir(children.into_iter().map(|n| (n, Dir)).collect()));
        }
        // Inside a device directory.
        let (base, pidx) = prefixes
            .iter()
            .filter(|(p, _)| path == p || path.starts_with(&format!("{p}/")))
            .max_by_key(|(p, _)| p.len())?
            .clone();
        let inner: Vec<&str> = path[base.len()..]
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let addr = base.rsplit('/').next().unwrap_or("");
        if let Some(pi) = pidx {
            if let Some(n) = self.mdev_parent_node(pi, &base, &inner) {
                return Some(n);
            }
        }
        self.pci_node(addr, &base, &inner)
    }

    fn mdev_parent_node(&self, pi: usize, base: &str, inner: &[&str]) -> Option<Node> {
        use Kind::*;
        let p = &self.profile.parents[pi];
        match inner {
            [] => {
                let mut e = vec![
                    ("mdev_supported_types".to_string(), Dir),
                    ("uevent".to_string(), File),
                ];
                for (u, d) in &self.devices {
                    if d.parent == pi {
                        e.push((u.clone(), Dir));
                    }
                }
                if is_pci(&p.name) {
                    e.extend(entries(&[
                        ("vendor", File),
                        ("device", File),
                        ("numa_node", File),
                    ]));
                }
                if p.driver.is_some() {
                    e.push(("driver".into(), Link));
                }
                Some(Node::Dir(e))
            }
            ["uevent"] | ["vendor"] | ["device"] | ["numa_node"] => {
                Some(Node::File { writable: false })
            }
            ["driver"] => p.driver.as_ref().map(|d| {
                Node::Link(rel(
                    &format!("devices/{base}"),
                    &format!("bus/pci/drivers/{d}"),
                ))
            }),
            ["mdev_supported_types"] => Some(Node::Dir(
                p.types.iter().map(|t| (t.id.clone(), Dir)).collect(),
            )),
            ["mdev_supported_types", t] => {
                let ty = p.types.iter().find(|x| x.id == *t)?;
                let mut e = entries(&[
                    ("create", File),
                    ("available_instances", File),
                    ("device_api", File),
                    ("devices", Dir),
                ]);
                if ty.name.is_some() {
                    e.push(("name".into(), File));
                }
                if ty.description.is_some() {
                    e.push(("description".into(), File));
                }
                Some(Node::Dir(e))
            }
            ["mdev_supported_types", t, "devices"] => {
                let ti = p.types.iter().position(|x| x.id == *t)?;
                Some(Node::Dir(
                    self.devices
                        .iter()
                        .filter(|(_, d)| d.parent == pi && d.type_idx == ti)
                        .map(|(u, _)| (u.clone(), Link))
                        .collect(),
                ))
            }
            ["mdev_supported_types", t, "devices", u] => {
                let d = self.devices.get(*u)?;
                (d.parent == pi && p.types[d.type_idx].id == *t).then(|| {
                    Node::Link(rel(
                        &format!("devices/{base}/mdev_supported_types/{t}/devices"),
                        &format!("devices/{base}/{u}"),
                    ))
                })
            }
            ["mdev_supported_types", t, f] => {
                let ty = p.types.iter().find(|x| x.id == *t)?;
                match *f {
                    "create" => Some(Node::File { writable: true }),
                    "available_instances" | "device_api" => Some(Node::File { writable: false }),
                    "name" if ty.name.is_some() => Some(Node::File { writable: false }),
                    "description" if ty.description.is_some() => {
                        Some(Node::File { writable: false })
                    }
                    _ => None,
                }
            }
            [u, rest @ ..] if self.devices.get(*u).is_some_and(|d| d.parent == pi) => {
                let d = &self.devices[*u];
                let ty = &p.types[d.type_idx];
                let dir = format!("devices/{base}/{u}");
                let bound = d.unbound_polls == 0;
                match rest {
                    [] => {
                        let mut e =
                            entries(&[("mdev_type", Link), ("remove", File), ("uevent", File)]);
                        if bound {
                            e.extend(entries(&[("iommu_group", Link), ("driver", Link)]));
                        }
                        e.extend(ty.attrs.iter().map(|a| (a.clone(), File)));
                        if ty.attr_rules.as_deref() == Some("ap-matrix") {
                            e.push(("matrix".into(), File));
                        }
                        Some(Node::Dir(e))
                    }
                    ["mdev_type"] => Some(Node::Link(format!("../mdev_supported_types/{}", ty.id))),
                    ["iommu_group"] if bound => Some(Node::Link(rel(
                        &dir,
                        &format!("kernel/iommu_groups/{}", d.group),
                    ))),
                    ["driver"] if bound => {
                        Some(Node::Link(rel(&dir, "bus/mdev/drivers/vfio_mdev")))
                    }
                    ["remove"] => Some(Node::File { writable: true }),
                    ["uevent"] => Some(Node::File { writable: false }),
                    ["matrix"] if ty.attr_rules.as_deref() == Some("ap-matrix") => {
                        Some(Node::File { writable: false })
                    }
                    [a] if ty.attrs.iter().any(|x| x == a) => Some(Node::File { writable: true }),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// The content of a file.
    pub fn read(&self, path: &str) -> Result<Vec<u8>, Errno> {
        if !matches!(self.node(path), Some(Node::File { .. })) {
            return Err(ENOENT);
        }
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        if let ["module", m, f] = parts.as_slice() {
            return self.module_file(m, f);
        }
        let file = *parts.last().unwrap_or(&"");
        let s = match file {
            "available_instances" | "device_api" | "name" | "description" => {
                let (pi, ti) = self.type_at(&parts).ok_or(ENOENT)?;
                let t = &self.profile.parents[pi].types[ti];
                match file {
                    "available_instances" => format!("{}\n", self.available_at(pi, ti)),
                    "device_api" => format!("{}\n", t.device_api),
                    "name" => format!("{}\n", t.name.clone().unwrap_or_default()),
                    _ => t.description.clone().unwrap_or_default(),
                }
            }
            "create" | "remove" | "bind" | "unbind" | "drivers_probe" => return Err(EACCES),
            "uevent" => String::new(),
            "matrix" => {
                let u = parts[parts.len() - 2];
                let d = self.devices.get(u).ok_or(ENOENT)?;
                let mut out = String::new();
                for a in &d.ap[0] {
                    for dom in &d.ap[1] {
                        out.push_str(&format!("{a:02x}.{dom:04x}\n"));
                    }
                }
                out
            }
            "vendor"
            | "device"
            | "numa_node"
            | "sriov_totalvfs"
            | "sriov_numvfs"
            | "sriov_drivers_autoprobe"
            | "driver_override" => {
                let addr = parts[parts.len() - 2];
                self.pci_attr(addr, file).ok_or(ENOENT)?
            }
            "creatable_vgpu_types" => {
                let (pi, vi) = self.vf_of(parts[parts.len() - 3]).ok_or(ENOENT)?;
                let mut out = String::from("ID    : vGPU Name\n");
                if self.pfs[pi].vfs[vi].current == 0 {
                    for (id, name) in self.creatable(pi) {
                        out.push_str(&format!("{id:<5} : {name}\n"));
                    }
                }
                out
            }
            "current_vgpu_type" => {
                let (pi, vi) = self.vf_of(parts[parts.len() - 3]).ok_or(ENOENT)?;
                format!("{}\n", self.pfs[pi].vfs[vi].current)
            }
            attr => {
                let u = parts[parts.len() - 2];
                let d = self.devices.get(u).ok_or(ENOENT)?;
                if attr.starts_with("assign_") || attr.starts_with("unassign_") {
                    return Err(EACCES); // write-only, as in the kernel
                }
                format!("{}\n", d.attrs.get(attr).cloned().unwrap_or_default())
            }
        };
        Ok(s.into_bytes())
    }

    /// (parent, type) of a path `devices/<devpath>/mdev_supported_types/<t>/<file>`.
    fn type_at(&self, parts: &[&str]) -> Option<(usize, usize)> {
        let n = parts.len();
        if n < 4 || parts[n - 3] != "mdev_supported_types" {
            return None;
        }
        let dp = parts[1..n - 3].join("/");
        let pi = self.profile.parents.iter().position(|p| devpath(p) == dp)?;
        let ti = self.profile.parents[pi]
            .types
            .iter()
            .position(|t| t.id == parts[n - 2])?;
        Some((pi, ti))
    }

    /// The latency a write to `path` should take before [`Kernel::write`] applies it.
    pub fn latency(&self, path: &str) -> Duration {
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let ms = match parts.last() {
            Some(&"create") => self
                .type_at(&parts)
                .map(|(p, _)| self.profile.parents[p].create_latency_ms),
            Some(&"remove") => parts
                .get(parts.len().wrapping_sub(2))
                .and_then(|u| self.devices.get(*u))
                .map(|d| self.profile.parents[d.parent].remove_latency_ms),
            _ => None,
        };
        Duration::from_millis(ms.unwrap_or(0))
    }

    /// Applies a write; `Err(errno)` as the kernel would refuse it.
    pub fn write(&mut self, path: &str, data: &[u8]) -> Result<(), Errno> {
        let Some(Node::File { writable: true }) = self.node(path) else {
            return Err(EACCES);
        };
        let text = String::from_utf8_lossy(data);
        // The kernel's parsers take one trailing newline, as echo writes.
        let value = text.strip_suffix('\n').unwrap_or(&text);
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let file = *parts.last().unwrap_or(&"");
        let up = |n: usize| {
            parts
                .get(parts.len().wrapping_sub(n))
                .copied()
                .unwrap_or("")
        };
        if let ["bus", "pci", rest @ ..] = parts.as_slice() {
            return match rest {
                ["drivers_probe"] => self.drivers_probe(value),
                ["drivers", d, "bind"] => self.bind(value, d),
                ["drivers", d, "unbind"] => self.unbind(value, d),
                _ => Err(EACCES),
            };
        }
        match file {
            "sriov_drivers_autoprobe" => {
                let on = parse_bool(value).ok_or(EINVAL)?;
                self.set_autoprobe(up(2), on)
            }
            "driver_override" => {
                // driver_set_override: at most a page less one, cut at the
                // first newline, kept as written otherwise.
                if data.len() >= 4095 {
                    return Err(EINVAL);
                }
                let name = text.split('\n').next().unwrap_or("");
                self.set_driver_override(up(2), name)
            }
            "create" => {
                let (pi, ti) = self.type_at(&parts).ok_or(ENOENT)?;
                let parent = self.profile.parents[pi].name.clone();
                let tid = self.profile.parents[pi].types[ti].id.clone();
                // create_store: 36 or 37 bytes, the first 36 a UUID.
                let uuid = data.get(..36).and_then(|u| std::str::from_utf8(u).ok());
                match uuid {
                    Some(u) if data.len() <= 37 && valid_uuid(u) => self.create(&parent, &tid, u),
                    _ => Err(EINVAL),
                }
            }
            "remove" => {
                // remove_store: a number; 0 removes nothing and succeeds.
                match parse_num(value) {
                    None => Err(EINVAL),
                    Some(0) => Ok(()),
                    Some(_) => self.remove(up(2)),
                }
            }
            "sriov_numvfs" => {
                // kstrtou16 with base 0: decimal, 0x hex; anything else EINVAL.
                let n = parse_num(value).ok_or(EINVAL)?;
                self.set_num_vfs(up(2), n)
            }
            "current_vgpu_type" => {
                let id = parse_num(value).ok_or(EINVAL)?;
                self.set_vgpu_type(up(3), id)
            }
            attr => self.write_attr(up(2), attr, value),
        }
    }
}
