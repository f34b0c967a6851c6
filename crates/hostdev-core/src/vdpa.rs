//! vDPA devices: create and delete over netlink, and what the kernel forgets —
//! the creation config — kept in `/etc/hostdev/vdpa.d/<name>.json`, restored
//! by `autostart`, exported and imported for a migration destination.
//!
//! Owns: those operations, generic over [`VdpaClient`]. Must not: print.

use crate::{CoreError, DeviceOutcome};
use hostdev_store::{HostLock, JsonDir, LoadProblem};
use hostdev_vdpa::{
    check_dev_name, CreateConfig, Dev, LiveConfig, MgmtDevName, VdpaClient, VdpaError,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Start policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum VdpaStart {
    /// Created by `autostart`.
    Auto,
    /// Only on request.
    #[default]
    Manual,
}

/// A persistent vDPA device, also the body of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VdpaDefinition {
    /// Device name.
    pub name: String,
    /// Its management device.
    pub mgmtdev: MgmtDevName,
    /// What it is created with.
    #[serde(default)]
    pub config: CreateConfig,
    /// Start policy.
    #[serde(default)]
    pub start: VdpaStart,
}

/// A self-contained spec of what to recreate elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VdpaExport {
    /// Format version of the export (1).
    pub hostdev_export: u32,
    /// Always "vdpa".
    pub kind: String,
    /// The device.
    pub device: VdpaDefinition,
    /// True when the config came from the live device rather than a definition
    /// (the kernel does not keep the creation config; live config can differ).
    #[serde(default)]
    pub from_live_config: bool,
}

/// A device and/or its definition, by name.
pub type VdpaRow = (String, Option<Dev>, Option<VdpaDefinition>);

/// One restored definition: (management device, name, outcome).
pub type VdpaRestored = (String, String, DeviceOutcome);

/// Everything `show` knows about a device.
#[derive(Debug, Clone, Serialize)]
pub struct VdpaShow {
    /// The definition, if any.
    pub definition: Option<VdpaDefinition>,
    /// The device, if it exists.
    pub device: Option<Dev>,
    /// Live config, if it exists.
    pub live: Option<LiveConfig>,
    /// `/dev/vhost-vdpa-N`, when bound to vhost_vdpa.
    pub vhost_dev: Option<String>,
    /// Bound driver.
    pub driver: Option<String>,
}

/// vDPA operations on one host.
#[derive(Debug)]
pub struct Vdpas<C> {
    /// The kernel interface.
    pub client: C,
    /// Definitions.
    pub defs: JsonDir<VdpaDefinition>,
    sysfs: PathBuf,
    lock_path: PathBuf,
}

fn vdpa_err(e: VdpaError) -> CoreError {
    CoreError::Vdpa(Box::new(e))
}

fn name_err(name: &str, why: &str) -> CoreError {
    CoreError::VdpaRefused {
        name: name.to_string(),
        why: why.to_string(),
    }
}

/// The vDPA definition directory under a root prefix (the only place that names it).
pub fn definitions(root: &Path) -> JsonDir<VdpaDefinition> {
    JsonDir::new(root, "etc/hostdev/vdpa.d")
}

impl<C: VdpaClient> Vdpas<C> {
    /// vDPA of the host whose files live under `root`.
    pub fn new(client: C, root: &Path) -> Self {
        Vdpas {
            client,
            defs: definitions(root),
            sysfs: root.join("sys/bus/vdpa/devices"),
            lock_path: HostLock::path_under(root),
        }
    }

    fn lock(&self) -> Result<HostLock, CoreError> {
        Ok(HostLock::acquire(&self.lock_path)?)
    }

    /// Creates a device now (transient: nothing is stored).
    pub fn add(
        &self,
        name: &str,
        mgmtdev: &MgmtDevName,
        cfg: &CreateConfig,
    ) -> Result<(), CoreError> {
        check_dev_name(name).map_err(vdpa_err)?;
        self.client.add(name, mgmtdev, cfg).map_err(vdpa_err)
    }

    /// Deletes a device.
    pub fn del(&self, name: &str) -> Result<(), CoreError> {
        check_dev_name(name).map_err(vdpa_err)?;
        self.client.del(name).map_err(vdpa_err)
    }

    /// Stores a definition (refusing a name already defined).
    pub fn define(&self, d: &VdpaDefinition) -> Result<(), CoreError> {
        check_dev_name(&d.name).map_err(vdpa_err)?;
        hostdev_vdpa::dev_new_nlas(&d.name, &d.mgmtdev, &d.config).map_err(vdpa_err)?;
        let lock = self.lock()?;
        if self.defs.path_of(&d.name).exists() {
            return Err(name_err(
                &d.name,
                "a vDPA definition of this name exists; undefine or modify it",
            ));
        }
        Ok(self.defs.save(&lock, &d.name, d)?)
    }

    /// Removes a definition.
    pub fn undefine(&self, name: &str) -> Result<(), CoreError> {
        check_dev_name(name).map_err(vdpa_err)?;
        let lock = self.lock()?;
        if !self.defs.path_of(name).exists() {
            return Err(name_err(name, "no vDPA definition of this name"));
        }
        Ok(self.defs.remove(&lock, name)?)
    }

    /// Changes a definition (the running device is not touched).
    pub fn modify(
        &self,
        name: &str,
        f: impl FnOnce(&mut VdpaDefinition),
    ) -> Result<VdpaDefinition, CoreError> {
        check_dev_name(name).map_err(vdpa_err)?;
        let lock = self.lock()?;
        let mut d = self
            .defs
            .load(name)?
            .ok_or_else(|| name_err(name, "no vDPA definition of this name"))?;
        f(&mut d);
        hostdev_vdpa::dev_new_nlas(&d.name, &d.mgmtdev, &d.config).map_err(vdpa_err)?;
        self.defs.save(&lock, name, &d)?;
        Ok(d)
    }

    /// Creates a defined device.
    pub fn start(&self, name: &str) -> Result<(), CoreError> {
        check_dev_name(name).map_err(vdpa_err)?;
        let d = self
            .defs
            .load(name)?
            .ok_or_else(|| name_err(name, "no vDPA definition of this name"))?;
        self.client
            .add(&d.name, &d.mgmtdev, &d.config)
            .map_err(vdpa_err)
    }

    /// Devices and definitions by name.
    pub fn list(&self) -> Result<(Vec<VdpaRow>, Vec<LoadProblem>), CoreError> {
        let (defs, problems) = self.defs.load_all()?;
        let mut rows: std::collections::BTreeMap<String, (Option<Dev>, Option<VdpaDefinition>)> =
            Default::default();
        for d in self.client.devs().map_err(vdpa_err)? {
            let key = d.name.clone();
            rows.entry(key).or_default().0 = Some(d);
        }
        for (_, d) in defs {
            let key = d.name.clone();
            rows.entry(key).or_default().1 = Some(d);
        }
        Ok((
            rows.into_iter().map(|(n, (a, b))| (n, a, b)).collect(),
            problems,
        ))
    }

    /// Everything known about one device.
    pub fn show(&self, name: &str) -> Result<VdpaShow, CoreError> {
        check_dev_name(name).map_err(vdpa_err)?;
        let definition = self.defs.load(name)?;
        let device = self.client.dev(name).map_err(vdpa_err)?;
        if definition.is_none() && device.is_none() {
            return Err(vdpa_err(VdpaError::NotFound(format!(
                "no vDPA device or definition named {name}"
            ))));
        }
        let live = match &device {
            Some(_) => Some(self.client.config(name).map_err(vdpa_err)?),
            None => None,
        };
        let dir = self.sysfs.join(name);
        let vhost_dev = std::fs::read_dir(&dir).ok().and_then(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .find(|n| n.starts_with("vhost-vdpa-"))
                .map(|n| format!("/dev/{n}"))
        });
        let driver = std::fs::read_link(dir.join("driver"))
            .ok()
            .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()));
        Ok(VdpaShow {
            definition,
            device,
            live,
            vhost_dev,
            driver,
        })
    }

    /// A spec to recreate the device elsewhere: its definition, or (for a
    /// device hostdev did not define) its live config, marked as such.
    pub fn export(&self, name: &str) -> Result<VdpaExport, CoreError> {
        let s = self.show(name)?;
        if let Some(d) = s.definition {
            return Ok(VdpaExport {
                hostdev_export: 1,
                kind: "vdpa".into(),
                device: d,
                from_live_config: false,
            });
        }
        // show() errs when there is neither a definition nor a device.
        let Some(dev) = s.device else {
            return Err(name_err(name, "no vDPA device or definition of this name"));
        };
        let live = s.live.unwrap_or_default();
        Ok(VdpaExport {
            hostdev_export: 1,
            kind: "vdpa".into(),
            device: VdpaDefinition {
                name: name.to_string(),
                mgmtdev: dev.mgmtdev,
                config: CreateConfig {
                    mac: live.mac,
                    mtu: live.mtu,
                    max_vqp: None,
                    features: None,
                },
                start: VdpaStart::Manual,
            },
            from_live_config: true,
        })
    }

    /// Recreates an export (under `new_name` if given): define and/or start.
    pub fn import(
        &self,
        e: &VdpaExport,
        new_name: Option<&str>,
        define: bool,
        start: bool,
    ) -> Result<VdpaDefinition, CoreError> {
        if e.kind != "vdpa" || e.hostdev_export != 1 {
            return Err(name_err(
                &e.device.name,
                "not a hostdev vDPA export (kind vdpa, version 1)",
            ));
        }
        let mut d = e.device.clone();
        if let Some(n) = new_name {
            d.name = n.to_string();
        }
        if define {
            self.define(&d)?;
        }
        if start || !define {
            self.client
                .add(&d.name, &d.mgmtdev, &d.config)
                .map_err(vdpa_err)?;
        }
        Ok(d)
    }

    /// Creates every auto definition whose device does not exist.
    pub fn restore(&self) -> Result<(Vec<VdpaRestored>, Vec<LoadProblem>), CoreError> {
        let (defs, problems) = self.defs.load_all()?;
        let existing: Vec<String> = self
            .client
            .devs()
            .map_err(vdpa_err)?
            .into_iter()
            .map(|d| d.name)
            .collect();
        let mut out = Vec::new();
        for (_, d) in defs.into_iter().filter(|(_, d)| d.start == VdpaStart::Auto) {
            let o = if existing.contains(&d.name) {
                DeviceOutcome::AlreadyRunning
            } else {
                match self.client.add(&d.name, &d.mgmtdev, &d.config) {
                    Ok(()) => DeviceOutcome::Started,
                    Err(VdpaError::NotFound(_)) => DeviceOutcome::ParentAbsent,
                    Err(e) => DeviceOutcome::Failed(vdpa_err(e)),
                }
            };
            out.push((d.mgmtdev.to_string(), d.name, o));
        }
        Ok((out, problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostdev_vdpa::FakeVdpa;

    fn vdpas() -> (tempfile::TempDir, Vdpas<FakeVdpa>) {
        let t = tempfile::tempdir().unwrap();
        let f = FakeVdpa::new();
        f.add_mgmtdev("vdpasim_net", 1, &["mac", "mtu", "features"]);
        f.add_mgmtdev("vdpasim_blk", 2, &[]);
        let v = Vdpas::new(f, t.path());
        (t, v)
    }

    fn def(name: &str, auto: bool) -> VdpaDefinition {
        VdpaDefinition {
            name: name.into(),
            mgmtdev: MgmtDevName::parse("vdpasim_net").unwrap(),
            config: CreateConfig {
                mac: Some("00:11:22:33:44:55".into()),
                mtu: Some(9000),
                ..Default::default()
            },
            start: if auto {
                VdpaStart::Auto
            } else {
                VdpaStart::Manual
            },
        }
    }

    #[test]
    fn autostart_recreates_with_the_same_config() {
        let (_t, v) = vdpas();
        v.define(&def("vdpa0", true)).unwrap();
        v.start("vdpa0").unwrap();
        v.client.vanish("vdpa0");
        let (r, _) = v.restore().unwrap();
        assert!(matches!(r[0].2, DeviceOutcome::Started));
        assert_eq!(v.client.config("vdpa0").unwrap().mtu, Some(9000));
        let (r, _) = v.restore().unwrap();
        assert!(matches!(r[0].2, DeviceOutcome::AlreadyRunning));
    }

    #[test]
    fn export_import_under_another_name_compares_equal() {
        let (_t, v) = vdpas();
        v.define(&def("vdpa0", false)).unwrap();
        let e = v.export("vdpa0").unwrap();
        let text = serde_json::to_string(&e).unwrap();
        let back: VdpaExport = serde_json::from_str(&text).unwrap();
        let d = v.import(&back, Some("vdpa1"), true, true).unwrap();
        assert_eq!(d.config, def("vdpa0", false).config);
        let e1 = v.export("vdpa1").unwrap();
        assert_eq!(e1.device.config, e.device.config);
        assert_eq!(e1.device.mgmtdev, e.device.mgmtdev);
    }

    #[test]
    fn errors_are_sentences_and_nothing_is_half_created() {
        let (_t, v) = vdpas();
        v.add(
            "vdpa0",
            &MgmtDevName::parse("vdpasim_net").unwrap(),
            &CreateConfig::default(),
        )
        .unwrap();
        let e = v
            .add(
                "vdpa0",
                &MgmtDevName::parse("vdpasim_net").unwrap(),
                &CreateConfig::default(),
            )
            .unwrap_err();
        assert_eq!(
            format!("{}", std::error::Error::source(&e).unwrap()),
            "a vDPA device named vdpa0 already exists"
        );
        let cfg = CreateConfig {
            max_vqp: Some(4),
            ..Default::default()
        };
        let e = v
            .add("vdpa1", &MgmtDevName::parse("vdpasim_net").unwrap(), &cfg)
            .unwrap_err();
        assert!(format!("{}", std::error::Error::source(&e).unwrap())
            .contains("does not support max_vqp"));
        assert!(v.client.dev("vdpa1").unwrap().is_none());
        assert!(v.del("nosuch").is_err());
        assert!(v
            .add(
                "../x",
                &MgmtDevName::parse("vdpasim_net").unwrap(),
                &CreateConfig::default()
            )
            .is_err());
    }
}
