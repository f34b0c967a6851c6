//! The simulated kernel: mdev parents, types and devices, PCI functions with
//! SR-IOV and NVIDIA's `nvidia/` interface, and the vendor rules of a profile.
//! It answers path-based questions (what is at `class/mdev_bus`, read this
//! file, write that one) so that any filesystem front-end can expose it.
//!
//! Owns: kernel semantics and their errnos. Must not: know about FUSE.

use crate::profile::{errno, Fault, ParentProfile, Policy, Profile, SriovProfile};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

mod pci;

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

/// A write the model wants delayed (create/remove latency) before it is applied.
pub type Delay = Duration;

#[derive(Debug, Clone)]
struct Device {
    parent: usize,
    type_idx: usize,
    attrs: BTreeMap<String, String>,
    group: u32,
    /// vfio-ap: assigned adapters, domains, control domains.
    ap: [Vec<u32>; 3],
}

#[derive(Debug, Clone, Default)]
struct Vf {
    current: u32,
}

#[derive(Debug, Clone, Default)]
struct Pf {
    numvfs: u32,
    vfs: Vec<Vf>,
    vfs_since: Option<Instant>,
}

/// The simulated kernel state.
#[derive(Debug)]
pub struct Kernel {
    profile: Profile,
    booted: Instant,
    devices: BTreeMap<String, Device>,
    pfs: Vec<Pf>,
    fault_fired: Vec<u32>,
    /// Matching operations seen per fault (for `after`).
    fault_seen: Vec<u32>,
    next_group: u32,
}

fn err(name: &str) -> i32 {
    errno(name).unwrap_or(22)
}

fn is_pci(name: &str) -> bool {
    let b = name.as_bytes();
    name.len() == 12 && b[4] == b':' && b[7] == b':' && b[10] == b'.'
}

fn devpath(p: &ParentProfile) -> String {
    p.devpath.clone().unwrap_or_else(|| {
        if is_pci(&p.name) {
            format!("pci0000:00/{}", p.name)
        } else {
            format!("virtual/{0}/{0}", p.name)
        }
    })
}

/// The address of VF `i` of a PF (functions after the PF's, 8 per device).
pub fn vf_address(pf: &str, i: u32) -> String {
    let (prefix, rest) = pf.split_at(8); // "0000:41:"
    let dev = u32::from_str_radix(&rest[..2], 16).unwrap_or(0);
    let n = dev * 8 + 4 + i;
    format!("{prefix}{:02x}.{}", n / 8, n % 8)
}

/// `to` (a path under /sys) relative to the directory `from_dir`.
fn rel(from_dir: &str, to: &str) -> String {
    let depth = from_dir.split('/').filter(|s| !s.is_empty()).count();
    format!("{}{}", "../".repeat(depth), to)
}

fn entries(list: &[(&str, Kind)]) -> Vec<(String, Kind)> {
    list.iter().map(|(n, k)| (n.to_string(), *k)).collect()
}

fn parse_num(s: &str) -> Option<u32> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

fn valid_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

impl Kernel {
    /// A freshly booted host with this profile.
    pub fn new(profile: Profile) -> Kernel {
        let n = profile.sriov.len();
        let f = profile.faults.len();
        Kernel {
            profile,
            booted: Instant::now(),
            devices: BTreeMap::new(),
            pfs: vec![Pf::default(); n],
            fault_fired: vec![0; f],
            fault_seen: vec![0; f],
            next_group: 10,
        }
    }

    /// What a reboot does: devices gone, VFs disabled, types cleared, late parents late again.
    pub fn reboot(&mut self) {
        let p = std::mem::take(&mut self.profile);
        *self = Kernel::new(p);
    }

    fn up(&self, after_ms: u64) -> bool {
        self.booted.elapsed() >= Duration::from_millis(after_ms)
    }

    fn parent_idx(&self, name: &str) -> Option<usize> {
        self.profile
            .parents
            .iter()
            .position(|p| p.name == name)
            .filter(|&i| self.up(self.profile.parents[i].appear_after_ms))
    }

    fn pf_idx(&self, addr: &str) -> Option<usize> {
        self.profile
            .sriov
            .iter()
            .position(|p| p.address == addr)
            .filter(|&i| self.up(self.profile.sriov[i].appear_after_ms))
    }

    /// (pf index, vf number) of a VF address that exists now.
    fn vf_of(&self, addr: &str) -> Option<(usize, usize)> {
        for (i, pf) in self.profile.sriov.iter().enumerate() {
            if !self.up(pf.appear_after_ms) {
                continue;
            }
            for v in 0..self.pfs[i].numvfs {
                if vf_address(&pf.address, v) == addr {
                    return Some((i, v as usize));
                }
            }
        }
        None
    }

    fn vf_ready(&self, pf: usize) -> bool {
        let ready = Duration::from_millis(self.profile.sriov[pf].vf_ready_ms);
        self.pfs[pf].vfs_since.is_some_and(|t| t.elapsed() >= ready)
    }

    fn available(&self, p: usize, t: usize) -> u32 {
        let parent = &self.profile.parents[p];
        let on_parent = || self.devices.values().filter(|d| d.parent == p);
        match parent.policy {
            Policy::PerType => {
                let used = on_parent().filter(|d| d.type_idx == t).count() as u32;
                parent.types[t].max.saturating_sub(used)
            }
            Policy::OneType => {
                if on_parent().any(|d| d.type_idx != t) {
                    return 0;
                }
                let used = on_parent().count() as u32;
                parent.types[t].max.saturating_sub(used)
            }
            Policy::SharedBudget => {
                let used: u32 = on_parent().map(|d| parent.types[d.type_idx].cost).sum();
                parent.budget.saturating_sub(used) / parent.types[t].cost.max(1)
            }
        }
    }

    /// Fires a matching fault, if any; returns its errno.
    fn fault(&mut self, op: &str, parent: &str, name: &str) -> Option<i32> {
        for (i, f) in self.profile.faults.iter().enumerate() {
            let Fault {
                op: fop,
                parent: fp,
                name: fname,
                errno: e,
                times,
                after,
            } = f;
            if fop == op
                && fp.as_deref().is_none_or(|x| x == parent)
                && fname.as_deref().is_none_or(|x| x == name)
            {
                self.fault_seen[i] += 1;
                if self.fault_seen[i] <= *after || (*times != 0 && self.fault_fired[i] >= *times) {
                    continue;
                }
                self.fault_fired[i] += 1;
                return Some(err(e));
            }
        }
        None
    }

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
            ["bus", "pci"] => Some(Node::Dir(entries(&[("devices", Dir), ("drivers", Dir)]))),
            ["bus", "pci", "drivers", ..] | ["module", ..] => self.driver_node(&parts[..]),
            ["bus", "pci", "devices"] => Some(Node::Dir(
                self.pci_functions()
                    .into_iter()
                    .map(|(a, _)| (a, Link))
                    .collect(),
            )),
            ["bus", "pci", "devices", a] => {
                let (_, path) = self.pci_functions().into_iter().find(|(x, _)| x == a)?;
                Some(Node::Link(rel(
                    "bus/pci/devices",
                    &format!("devices/{path}"),
                )))
            }
            ["kernel"] => Some(Node::Dir(entries(&[("iommu_groups", Dir)]))),
            ["kernel", "iommu_groups"] => Some(Node::Dir(
                self.devices
                    .values()
                    .map(|d| (d.group.to_string(), Dir))
                    .collect(),
            )),
            ["kernel", "iommu_groups", g] => self
                .devices
                .values()
                .any(|d| d.group.to_string() == *g)
                .then(|| Node::Dir(vec![])),
            ["devices", rest @ ..] => self.device_node(&rest.join("/")),
            _ => None,
        }
    }

    /// Nodes under /sys/devices.
    fn device_node(&self, path: &str) -> Option<Node> {
        use Kind::*;
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
                match rest {
                    [] => {
                        let mut e = entries(&[
                            ("mdev_type", Link),
                            ("remove", File),
                            ("iommu_group", Link),
                            ("driver", Link),
                            ("uevent", File),
                        ]);
                        e.extend(ty.attrs.iter().map(|a| (a.clone(), File)));
                        if ty.attr_rules.as_deref() == Some("ap-matrix") {
                            e.push(("matrix".into(), File));
                        }
                        Some(Node::Dir(e))
                    }
                    ["mdev_type"] => Some(Node::Link(format!("../mdev_supported_types/{}", ty.id))),
                    ["iommu_group"] => Some(Node::Link(rel(
                        &dir,
                        &format!("kernel/iommu_groups/{}", d.group),
                    ))),
                    ["driver"] => Some(Node::Link(rel(&dir, "bus/mdev/drivers/vfio_mdev"))),
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
    pub fn read(&self, path: &str) -> Result<Vec<u8>, i32> {
        if !matches!(self.node(path), Some(Node::File { .. })) {
            return Err(err("ENOENT"));
        }
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        if let ["module", m, f] = parts.as_slice() {
            return self.module_file(m, f);
        }
        let file = *parts.last().unwrap_or(&"");
        let s = match file {
            "available_instances" | "device_api" | "name" | "description" => {
                let (pi, ti) = self.type_at(&parts).ok_or(err("ENOENT"))?;
                let t = &self.profile.parents[pi].types[ti];
                match file {
                    "available_instances" => format!("{}\n", self.available(pi, ti)),
                    "device_api" => format!("{}\n", t.device_api),
                    "name" => format!("{}\n", t.name.clone().unwrap_or_default()),
                    _ => t.description.clone().unwrap_or_default(),
                }
            }
            "create" | "remove" => return Err(err("EACCES")),
            "uevent" => String::new(),
            "matrix" => {
                let u = parts[parts.len() - 2];
                let d = self.devices.get(u).ok_or(err("ENOENT"))?;
                let mut out = String::new();
                for a in &d.ap[0] {
                    for dom in &d.ap[1] {
                        out.push_str(&format!("{a:02x}.{dom:04x}\n"));
                    }
                }
                out
            }
            "vendor" | "device" | "numa_node" | "sriov_totalvfs" | "sriov_numvfs" => {
                let addr = parts[parts.len() - 2];
                self.pci_attr(addr, file).ok_or(err("ENOENT"))?
            }
            "creatable_vgpu_types" => {
                let (pi, vi) = self.vf_of(parts[parts.len() - 3]).ok_or(err("ENOENT"))?;
                let mut out = String::from("ID    : vGPU Name\n");
                if self.pfs[pi].vfs[vi].current == 0 {
                    for (id, name) in self.creatable(pi) {
                        out.push_str(&format!("{id:<5} : {name}\n"));
                    }
                }
                out
            }
            "current_vgpu_type" => {
                let (pi, vi) = self.vf_of(parts[parts.len() - 3]).ok_or(err("ENOENT"))?;
                format!("{}\n", self.pfs[pi].vfs[vi].current)
            }
            attr => {
                let u = parts[parts.len() - 2];
                let d = self.devices.get(u).ok_or(err("ENOENT"))?;
                if attr.starts_with("assign_") || attr.starts_with("unassign_") {
                    return Err(13); // write-only, as in the kernel
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
    pub fn latency(&self, path: &str) -> Delay {
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
    pub fn write(&mut self, path: &str, data: &[u8]) -> Result<(), i32> {
        let Some(Node::File { writable: true }) = self.node(path) else {
            return Err(13);
        };
        let text = String::from_utf8_lossy(data);
        let value = text.trim_end_matches('\n').trim_end_matches('\0');
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let file = *parts.last().unwrap_or(&"");
        match file {
            "create" => {
                let (pi, ti) = self.type_at(&parts).ok_or(err("ENOENT"))?;
                let parent = self.profile.parents[pi].name.clone();
                let tid = self.profile.parents[pi].types[ti].id.clone();
                if !valid_uuid(value) {
                    return Err(err("EINVAL"));
                }
                let uuid = value.to_ascii_lowercase();
                if let Some(e) = self.fault("create", &parent, &tid) {
                    return Err(e);
                }
                if self.devices.contains_key(&uuid) {
                    return Err(err("EEXIST"));
                }
                if self.available(pi, ti) == 0 {
                    let full = self.profile.parents[pi]
                        .full_errno
                        .clone()
                        .unwrap_or_else(|| "EUSERS".into());
                    return Err(err(&full));
                }
                let group = self.next_group;
                self.next_group += 1;
                self.devices.insert(
                    uuid,
                    Device {
                        parent: pi,
                        type_idx: ti,
                        attrs: BTreeMap::new(),
                        group,
                        ap: Default::default(),
                    },
                );
                Ok(())
            }
            "remove" => {
                let u = parts[parts.len() - 2].to_string();
                let d = self.devices.get(&u).ok_or(err("ENODEV"))?;
                let parent = self.profile.parents[d.parent].name.clone();
                if value != "1" {
                    return Err(err("EINVAL"));
                }
                if let Some(e) = self.fault("remove", &parent, &u) {
                    return Err(e);
                }
                self.devices.remove(&u);
                Ok(())
            }
            "sriov_numvfs" => {
                let addr = parts[parts.len() - 2];
                let pi = self.pf_idx(addr).ok_or(err("ENODEV"))?;
                let n = parse_num(value).ok_or(err("EINVAL"))?;
                if n > self.profile.sriov[pi].total_vfs {
                    return Err(err("ERANGE"));
                }
                let pf = &mut self.pfs[pi];
                if n != 0 && pf.numvfs != 0 && n != pf.numvfs {
                    return Err(err("EBUSY"));
                }
                if n == 0 && pf.vfs.iter().any(|v| v.current != 0) {
                    // The real driver refuses while vGPUs are configured.
                    return Err(err("EBUSY"));
                }
                if n != pf.numvfs {
                    pf.numvfs = n;
                    pf.vfs = vec![Vf::default(); n as usize];
                    pf.vfs_since = (n > 0).then(Instant::now);
                }
                Ok(())
            }
            "current_vgpu_type" => {
                let addr = parts[parts.len() - 3];
                let (pi, vi) = self.vf_of(addr).ok_or(err("ENODEV"))?;
                let id = parse_num(value).ok_or(err("EINVAL"))?;
                let pf_addr = self.profile.sriov[pi].address.clone();
                let op = if id == 0 { "vgpu-clear" } else { "vgpu-type" };
                if let Some(e) = self.fault(op, &pf_addr, addr) {
                    return Err(e);
                }
                if id == 0 {
                    self.pfs[pi].vfs[vi].current = 0;
                    return Ok(());
                }
                if self.pfs[pi].vfs[vi].current != 0 {
                    return Err(err("EBUSY"));
                }
                if !self.creatable(pi).iter().any(|(x, _)| *x == id) {
                    return Err(err("EINVAL"));
                }
                self.pfs[pi].vfs[vi].current = id;
                Ok(())
            }
            attr => {
                let u = parts[parts.len() - 2].to_string();
                let d = self.devices.get(&u).ok_or(err("ENODEV"))?;
                let parent = self.profile.parents[d.parent].name.clone();
                let rules = self.profile.parents[d.parent].types[d.type_idx]
                    .attr_rules
                    .clone();
                if let Some(e) = self.fault("attr", &parent, attr) {
                    return Err(e);
                }
                let d = self.devices.get_mut(&u).ok_or(err("ENODEV"))?;
                if rules.as_deref() == Some("ap-matrix") {
                    return ap_matrix_write(d, attr, value);
                }
                d.attrs.insert(attr.to_string(), value.to_string());
                Ok(())
            }
        }
    }
}

/// vfio-ap: adapters 0..=255, domains 0..=255 (hex with 0x, or decimal).
fn ap_matrix_write(d: &mut Device, attr: &str, value: &str) -> Result<(), i32> {
    let n = parse_num(value).ok_or(22)?;
    let (slot, assign) = match attr {
        "assign_adapter" => (0, true),
        "assign_domain" => (1, true),
        "assign_control_domain" => (2, true),
        "unassign_adapter" => (0, false),
        "unassign_domain" => (1, false),
        "unassign_control_domain" => (2, false),
        _ => return Err(22),
    };
    if n > 255 {
        return Err(19); // ENODEV: not in the host's AP configuration
    }
    let list = &mut d.ap[slot];
    if assign {
        if !list.contains(&n) {
            list.push(n);
            list.sort_unstable();
        }
    } else {
        list.retain(|x| *x != n);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
