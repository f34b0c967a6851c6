//! The PCI side of the path view: functions, SR-IOV PFs and VFs, NVIDIA's
//! `nvidia/` files on VFs, drivers and modules.
//!
//! Owns: their sysfs layout. Must not: decide a rule (the kernel module does).

use crate::errno::ENOENT;
use crate::kernel::{Errno, Kernel};
use crate::profile::ModuleProfile;
use crate::view::{devpath, entries, is_pci, rel, Kind, Node};

impl Kernel {
    /// Every PCI function now present: (address, devpath).
    pub(crate) fn pci_functions(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for p in &self.profile.parents {
            if is_pci(&p.name) && self.up(p.appear_after_ms) {
                out.push((p.name.clone(), devpath(p)));
            }
        }
        for (i, pf) in self.profile.sriov.iter().enumerate() {
            if self.pf_idx(&pf.address).is_none() {
                continue;
            }
            out.push((pf.address.clone(), format!("pci0000:00/{}", pf.address)));
            for v in 0..self.pfs[i].numvfs {
                if let Some(a) = self.vf_addr(i, v) {
                    out.push((a.clone(), format!("pci0000:00/{a}")));
                }
            }
        }
        out.sort();
        out
    }

    /// The devpath of PCI function `a` if it is present now (as
    /// [`Kernel::pci_functions`] lists it), found without listing them all.
    pub(crate) fn pci_devpath(&self, a: &str) -> Option<String> {
        let own = self
            .profile
            .parents
            .iter()
            .filter(|p| p.name == a && is_pci(&p.name) && self.up(p.appear_after_ms))
            .map(devpath);
        let sriov = (self.pf_idx(a).is_some() || self.vf_of(a).is_some())
            .then(|| format!("pci0000:00/{a}"));
        own.chain(sriov).min()
    }

    pub(crate) fn pci_node(&self, addr: &str, base: &str, inner: &[&str]) -> Option<Node> {
        use Kind::*;
        let dir = format!("devices/{base}");
        if let Some(pi) = self.pf_idx(addr) {
            let pf = &self.pfs[pi];
            let driver = &self.profile.sriov[pi].driver;
            return match inner {
                [] => {
                    let mut e = entries(&[
                        ("vendor", File),
                        ("device", File),
                        ("numa_node", File),
                        ("sriov_totalvfs", File),
                        ("sriov_numvfs", File),
                        ("sriov_drivers_autoprobe", File),
                    ]);
                    if !pf.unbound {
                        e.push(("driver".into(), Link));
                    }
                    e.extend((0..pf.numvfs).map(|v| (format!("virtfn{v}"), Link)));
                    Some(Node::Dir(e))
                }
                ["sriov_numvfs"] | ["sriov_drivers_autoprobe"] => {
                    Some(Node::File { writable: true })
                }
                ["vendor"] | ["device"] | ["numa_node"] | ["sriov_totalvfs"] => {
                    Some(Node::File { writable: false })
                }
                ["driver"] if !pf.unbound => {
                    Some(Node::Link(rel(&dir, &format!("bus/pci/drivers/{driver}"))))
                }
                [v] => {
                    let n: u32 = v.strip_prefix("virtfn")?.parse().ok()?;
                    if n >= pf.numvfs {
                        return None;
                    }
                    Some(Node::Link(format!("../{}", self.vf_addr(pi, n)?)))
                }
                _ => None,
            };
        }
        let (pi, vi) = self.vf_of(addr)?;
        let pf_addr = &self.profile.sriov[pi].address;
        let ready = self.vf_ready(pi);
        let vf = &self.pfs[pi].vfs[vi];
        match inner {
            [] => {
                let mut e = entries(&[
                    ("vendor", File),
                    ("device", File),
                    ("numa_node", File),
                    ("physfn", Link),
                    ("driver_override", File),
                    ("iommu_group", Link),
                ]);
                if vf.driver.is_some() {
                    e.push(("driver".into(), Link));
                }
                if ready {
                    e.push(("nvidia".into(), Dir));
                }
                Some(Node::Dir(e))
            }
            ["vendor"] | ["device"] | ["numa_node"] => Some(Node::File { writable: false }),
            ["driver_override"] => Some(Node::File { writable: true }),
            ["physfn"] => Some(Node::Link(format!("../{pf_addr}"))),
            ["driver"] => vf
                .driver
                .as_ref()
                .map(|d| Node::Link(rel(&dir, &format!("bus/pci/drivers/{d}")))),
            ["iommu_group"] => Some(Node::Link(rel(
                &dir,
                &format!("kernel/iommu_groups/{}", vf.group),
            ))),
            ["nvidia"] if ready => Some(Node::Dir(entries(&[
                ("creatable_vgpu_types", File),
                ("current_vgpu_type", File),
            ]))),
            ["nvidia", "creatable_vgpu_types"] if ready => Some(Node::File { writable: false }),
            ["nvidia", "current_vgpu_type"] if ready => Some(Node::File { writable: true }),
            _ => None,
        }
    }

    pub(crate) fn pci_attr(&self, addr: &str, file: &str) -> Option<String> {
        if let Some(p) = self.profile.parents.iter().find(|p| p.name == addr) {
            return match file {
                "vendor" => Some(format!(
                    "{}\n",
                    p.vendor.clone().unwrap_or_else(|| "0x0000".into())
                )),
                "device" => Some(format!(
                    "{}\n",
                    p.device.clone().unwrap_or_else(|| "0x0000".into())
                )),
                "numa_node" => Some(format!("{}\n", p.numa_node)),
                _ => None,
            };
        }
        let (pi, is_vf) = match self.pf_idx(addr) {
            Some(i) => (i, false),
            None => (self.vf_of(addr)?.0, true),
        };
        let pf = &self.profile.sriov[pi];
        match file {
            "vendor" => Some(format!("{}\n", pf.vendor)),
            "device" => Some(format!(
                "{}\n",
                pf.device.clone().unwrap_or_else(|| "0x0000".into())
            )),
            "numa_node" => Some(format!("{}\n", pf.numa_node)),
            "sriov_totalvfs" if !is_vf => Some(format!("{}\n", self.total_vfs(pi))),
            "sriov_numvfs" if !is_vf => Some(format!("{}\n", self.pfs[pi].numvfs)),
            "sriov_drivers_autoprobe" if !is_vf => {
                Some(format!("{}\n", u8::from(!self.pfs[pi].no_autoprobe)))
            }
            "driver_override" if is_vf => Some(format!(
                "{}\n",
                self.driver_override(addr).as_deref().unwrap_or("(null)")
            )),
            _ => None,
        }
    }

    /// Every IOMMU group in use: mediated devices' and VFs'.
    pub(crate) fn groups(&self) -> Vec<u32> {
        let mut g: Vec<u32> = self.devices.values().map(|d| d.group).collect();
        for (i, pf) in self.pfs.iter().enumerate() {
            if self.pf_idx(&self.profile.sriov[i].address).is_some() {
                g.extend(pf.vfs.iter().map(|v| v.group));
            }
        }
        g.sort_unstable();
        g.dedup();
        g
    }

    /// A module the profile declares.
    pub(crate) fn module(&self, name: &str) -> Option<&ModuleProfile> {
        self.profile.modules.iter().find(|m| m.name == name)
    }

    /// PCI drivers bound to something: the parents' and the PFs'.
    pub(crate) fn pci_drivers(&self) -> Vec<String> {
        let mut d: Vec<String> = self
            .profile
            .parents
            .iter()
            .filter(|p| is_pci(&p.name))
            .filter_map(|p| p.driver.clone())
            .collect();
        d.extend(self.profile.sriov.iter().map(|p| p.driver.clone()));
        d.extend(self.vf_drivers());
        d.sort();
        d.dedup();
        d
    }

    /// `bus/pci/drivers/...` and `module/...`.
    pub(crate) fn driver_node(&self, parts: &[&str]) -> Option<Node> {
        use Kind::*;
        match parts {
            ["bus", "pci", "drivers"] => Some(Node::Dir(
                self.pci_drivers().into_iter().map(|d| (d, Dir)).collect(),
            )),
            ["bus", "pci", "drivers", d] => self.pci_drivers().iter().any(|x| x == d).then(|| {
                let mut e = entries(&[("bind", File), ("unbind", File)]);
                if self.module(d).is_some() {
                    e.push(("module".into(), Link));
                }
                Node::Dir(e)
            }),
            ["bus", "pci", "drivers", d, "bind" | "unbind"] => self
                .pci_drivers()
                .iter()
                .any(|x| x == d)
                .then_some(Node::File { writable: true }),
            ["bus", "pci", "drivers", d, "module"] => self.module(d).map(|m| {
                Node::Link(rel(
                    &format!("bus/pci/drivers/{d}"),
                    &format!("module/{}", m.name),
                ))
            }),
            ["module"] => Some(Node::Dir(
                self.profile
                    .modules
                    .iter()
                    .map(|m| (m.name.clone(), Dir))
                    .collect(),
            )),
            ["module", m] => self.module(m).map(|m| {
                let mut e = Vec::new();
                if m.version.is_some() {
                    e.push(("version".to_string(), File));
                }
                if m.srcversion.is_some() {
                    e.push(("srcversion".to_string(), File));
                }
                Node::Dir(e)
            }),
            ["module", m, "version"] => self
                .module(m)?
                .version
                .as_ref()
                .map(|_| Node::File { writable: false }),
            ["module", m, "srcversion"] => self
                .module(m)?
                .srcversion
                .as_ref()
                .map(|_| Node::File { writable: false }),
            _ => None,
        }
    }

    /// `module/<m>/version|srcversion`.
    pub(crate) fn module_file(&self, m: &str, f: &str) -> Result<Vec<u8>, Errno> {
        let m = self.module(m).ok_or(ENOENT)?;
        let v = if f == "version" {
            &m.version
        } else {
            &m.srcversion
        };
        v.as_ref()
            .map(|v| format!("{v}\n").into_bytes())
            .ok_or(ENOENT)
    }
}
