//! vDPA devices: create and delete over netlink, and what the kernel forgets —
//! the creation config — kept in `/etc/hostdev/vdpa.d/<name>.json`, restored
//! by `autostart`, exported and imported for a migration destination.
//!
//! Definitions are configuration: define, undefine, modify, listing them and
//! export/import of definitions work on a host where the vdpa module is not
//! loaded. The netlink client is opened only by an operation that touches the
//! kernel, on first use.
//!
//! Owns: those operations, generic over [`VdpaClient`]. Must not: print, or
//! read sysfs itself (the client does).

mod error;
mod seam;
use crate::error::guarded;
use crate::lock::Locker;
use crate::{CoreError, DeviceOutcome};
pub use error::VdpaError;
use hostdev_model::vdpa::{
    CreateConfig, MgmtDevName, VdpaDefinition, VdpaEdit, VdpaExport, VdpaName,
};
use hostdev_model::StartPolicy;
use hostdev_store::{JsonDir, LoadProblem};
use hostdev_vdpa::VdpaError as NetlinkError;
pub use hostdev_vdpa::{Binding, Dev, LiveConfig, MgmtDev, VdpaClient};
use serde::Serialize;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

/// A device and/or its definition, by name.
pub type VdpaRow = (VdpaName, Option<Dev>, Option<VdpaDefinition>);

/// What [`Vdpas::survey`] found.
#[derive(Debug)]
pub struct VdpaSurvey {
    /// Devices and definitions by name (only definitions if the kernel did not answer).
    pub rows: Vec<VdpaRow>,
    /// Definition files that were skipped.
    pub problems: Vec<LoadProblem>,
    /// Why the kernel could not be asked, if it could not.
    pub kernel: Result<(), CoreError>,
}

/// One restored definition: (management device, name, outcome).
pub type VdpaRestored = (MgmtDevName, VdpaName, DeviceOutcome);

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

type Opener<C> = Box<dyn Fn() -> Result<C, NetlinkError> + Send + Sync>;

/// vDPA operations on one host.
pub struct Vdpas<C> {
    client: OnceLock<C>,
    open: Opener<C>,
    /// Serializes attempts to open, so two threads never open two sockets.
    opening: Mutex<()>,
    /// Definitions.
    pub defs: JsonDir<VdpaDefinition>,
    locker: Locker,
}

impl<C> std::fmt::Debug for Vdpas<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vdpas").field("defs", &self.defs).finish()
    }
}

/// The vDPA definition directory under a root prefix (the only place that names it).
pub fn definitions(root: &Path) -> JsonDir<VdpaDefinition> {
    JsonDir::new(root, "etc/hostdev/vdpa.d")
}

impl<C: VdpaClient> Vdpas<C> {
    /// vDPA of the host under `root`, with a client already open (tests, fakes).
    pub fn new(client: C, root: &Path) -> Self {
        let v = Self::lazy(root, || Err(NetlinkError::NoFamily));
        let _ = v.client.set(client);
        v
    }

    /// vDPA of the host under `root`; `open` is called the first time an
    /// operation needs the kernel (and again later if it failed).
    pub fn lazy(
        root: &Path,
        open: impl Fn() -> Result<C, NetlinkError> + Send + Sync + 'static,
    ) -> Self {
        Vdpas {
            client: OnceLock::new(),
            open: Box::new(open),
            opening: Mutex::new(()),
            defs: definitions(root),
            locker: Locker::under(root),
        }
    }

    /// The kernel interface, opened on first use.
    pub fn client(&self) -> Result<&C, CoreError> {
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        let _opening = self.opening.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        let c = (self.open)()?;
        Ok(self.client.get_or_init(|| c))
    }

    /// Management devices.
    pub fn mgmtdevs(&self) -> Result<Vec<MgmtDev>, CoreError> {
        Ok(self.client()?.mgmtdevs()?)
    }

    /// Creates a device now (transient: nothing is stored).
    pub fn add(
        &self,
        name: &VdpaName,
        mgmtdev: &MgmtDevName,
        cfg: &CreateConfig,
    ) -> Result<(), CoreError> {
        cfg.check()?;
        Ok(self.client()?.add(name, mgmtdev, cfg)?)
    }

    /// Deletes a device.
    pub fn del(&self, name: &VdpaName) -> Result<(), CoreError> {
        Ok(self.client()?.del(name)?)
    }

    /// Stores a definition (refusing a name already defined). Needs no kernel.
    pub fn define(&self, d: &VdpaDefinition) -> Result<(), CoreError> {
        d.config.check()?;
        let lock = self.locker.lock()?;
        if self.defs.exists(d.name.as_str()) {
            return Err(CoreError::from(VdpaError::Defined {
                name: d.name.clone(),
            }));
        }
        Ok(self.defs.save(&lock, d.name.as_str(), d)?)
    }

    /// Removes a definition (a malformed one too). Needs no kernel.
    pub fn undefine(&self, name: &VdpaName) -> Result<(), CoreError> {
        let lock = self.locker.lock()?;
        if !self.defs.exists(name.as_str()) {
            return Err(CoreError::from(VdpaError::NotDefined {
                name: name.clone(),
            }));
        }
        Ok(self.defs.remove(&lock, name.as_str())?)
    }

    /// Changes a definition (the running device is not touched). Needs no kernel.
    pub fn modify(&self, name: &VdpaName, edit: &VdpaEdit) -> Result<VdpaDefinition, CoreError> {
        let lock = self.locker.lock()?;
        let mut d = self
            .defs
            .load(name.as_str())?
            .ok_or_else(|| CoreError::from(VdpaError::NotDefined { name: name.clone() }))?;
        d.apply(edit);
        d.config.check()?;
        self.defs.save(&lock, name.as_str(), &d)?;
        Ok(d)
    }

    /// Creates a defined device.
    pub fn start(&self, name: &VdpaName) -> Result<(), CoreError> {
        let d = self
            .defs
            .load(name.as_str())?
            .ok_or_else(|| CoreError::from(VdpaError::NotDefined { name: name.clone() }))?;
        self.add(&d.name, &d.mgmtdev, &d.config)
    }

    /// Definitions only, by name. Needs no kernel.
    pub fn definitions(&self) -> Result<(Vec<VdpaDefinition>, Vec<LoadProblem>), CoreError> {
        let (defs, problems) = self.defs.load_all()?;
        Ok((defs.into_iter().map(|(_, d)| d).collect(), problems))
    }

    /// Definitions (read once) and, when the kernel answers, its devices,
    /// merged by name; `kernel` says why the kernel could not be asked.
    pub fn survey(&self) -> Result<VdpaSurvey, CoreError> {
        let (defs, problems) = self.defs.load_all()?;
        let mut rows: std::collections::BTreeMap<VdpaName, (Option<Dev>, Option<VdpaDefinition>)> =
            Default::default();
        let kernel = self.client().and_then(|c| Ok(c.devs()?)).map(|devs| {
            for d in devs {
                // A kernel name hostdev could not store or name is left out.
                if let Ok(n) = VdpaName::new(d.name.clone()) {
                    rows.entry(n).or_default().0 = Some(d);
                }
            }
        });
        for (_, d) in defs {
            let key = d.name.clone();
            rows.entry(key).or_default().1 = Some(d);
        }
        Ok(VdpaSurvey {
            rows: rows.into_iter().map(|(n, (a, b))| (n, a, b)).collect(),
            problems,
            kernel,
        })
    }

    /// Devices and definitions by name (needs the kernel).
    pub fn list(&self) -> Result<(Vec<VdpaRow>, Vec<LoadProblem>), CoreError> {
        let s = self.survey()?;
        s.kernel?;
        Ok((s.rows, s.problems))
    }

    /// Definitions by name with their devices. Without the kernel's vdpa
    /// family no vDPA device can exist, so each is shown without one; any
    /// other failure to ask the kernel is an error.
    pub fn list_defined(&self) -> Result<(Vec<VdpaRow>, Vec<LoadProblem>), CoreError> {
        let s = self.survey()?;
        match s.kernel {
            Err(e) if !e.is_no_family() => return Err(e),
            _ => {}
        }
        Ok((
            s.rows.into_iter().filter(|r| r.2.is_some()).collect(),
            s.problems,
        ))
    }

    /// Everything known about one device. Without the kernel's vdpa family,
    /// a defined device is shown from its definition alone.
    pub fn show(&self, name: &VdpaName) -> Result<VdpaShow, CoreError> {
        let definition = self.defs.load(name.as_str())?;
        let client = match self.client() {
            Ok(c) => c,
            Err(_) if definition.is_some() => {
                return Ok(VdpaShow {
                    definition,
                    device: None,
                    live: None,
                    vhost_dev: None,
                    driver: None,
                })
            }
            Err(e) => return Err(e),
        };
        let device = client.dev(name)?;
        if definition.is_none() && device.is_none() {
            return Err(CoreError::from(VdpaError::Unknown { name: name.clone() }));
        }
        let (live, binding) = match &device {
            Some(_) => (Some(client.config(name)?), client.binding(name)?),
            None => (None, Binding::default()),
        };
        Ok(VdpaShow {
            definition,
            device,
            live,
            vhost_dev: binding.vhost_dev,
            driver: binding.driver,
        })
    }

    /// libvirt's `<interface type='vdpa'>` for a device bound to vhost_vdpa.
    pub fn libvirt(&self, name: &VdpaName) -> Result<String, CoreError> {
        // The element names a live device: without the kernel, say that.
        self.client()?;
        let s = self.show(name)?;
        let dev = s
            .vhost_dev
            .ok_or_else(|| CoreError::from(VdpaError::Unbound { name: name.clone() }))?;
        Ok(hostdev_model::libvirt::vdpa_interface(&dev))
    }

    /// A spec to recreate the device elsewhere: its definition (no kernel
    /// needed), or for a device hostdev did not define its live config,
    /// marked as such.
    pub fn export(&self, name: &VdpaName) -> Result<VdpaExport, CoreError> {
        if let Some(d) = self.defs.load(name.as_str())? {
            return Ok(VdpaExport {
                hostdev_export: 1,
                kind: "vdpa".into(),
                device: d,
                from_live_config: false,
            });
        }
        let client = self.client()?;
        let dev = client
            .dev(name)?
            .ok_or_else(|| CoreError::from(VdpaError::Unknown { name: name.clone() }))?;
        let live = client.config(name)?;
        Ok(VdpaExport {
            hostdev_export: 1,
            kind: "vdpa".into(),
            device: VdpaDefinition {
                name: name.clone(),
                mgmtdev: dev.mgmtdev,
                config: CreateConfig {
                    mac: live.mac.as_deref().and_then(|m| m.parse().ok()),
                    mtu: live.mtu,
                    max_vqp: None,
                    features: None,
                },
                start: StartPolicy::Manual,
            },
            from_live_config: true,
        })
    }

    /// Recreates an export (under `new_name` if given): define and/or start.
    /// Defining only needs no kernel.
    pub fn import(
        &self,
        e: &VdpaExport,
        new_name: Option<&VdpaName>,
        define: bool,
        start: bool,
    ) -> Result<VdpaDefinition, CoreError> {
        if e.kind != "vdpa" || e.hostdev_export != 1 {
            return Err(CoreError::from(VdpaError::BadExport {
                name: e.device.name.clone(),
            }));
        }
        let mut d = e.device.clone();
        d.config.check()?;
        if let Some(n) = new_name {
            d.name = n.clone();
        }
        if define {
            self.define(&d)?;
        }
        if start || !define {
            self.add(&d.name, &d.mgmtdev, &d.config)?;
        }
        Ok(d)
    }

    /// Creates every auto definition whose device does not exist. A failure or
    /// a panic creating one device is that device's alone.
    pub fn restore(&self) -> Result<(Vec<VdpaRestored>, Vec<LoadProblem>), CoreError> {
        let (defs, problems) = self.defs.load_all()?;
        let autos: Vec<VdpaDefinition> = defs
            .into_iter()
            .map(|(_, d)| d)
            .filter(|d| d.start == StartPolicy::Auto)
            .collect();
        if autos.is_empty() {
            // Nothing to restore: the kernel is not asked (the module may be absent).
            return Ok((Vec::new(), problems));
        }
        // Without the kernel's vdpa family every auto device is a failed row,
        // so none vanishes from the report.
        let listed = self.client().and_then(|c| Ok((c, c.devs()?)));
        let (client, devs) = match listed {
            Ok(x) => x,
            Err(e) => {
                let e = std::sync::Arc::new(e);
                let out = autos
                    .into_iter()
                    .map(|d| (d.mgmtdev, d.name, DeviceOutcome::Failed(e.clone())))
                    .collect();
                return Ok((out, problems));
            }
        };
        let existing: Vec<String> = devs.into_iter().map(|d| d.name).collect();
        let mut out = Vec::new();
        for d in autos {
            let o = if existing.iter().any(|n| n == d.name.as_str()) {
                DeviceOutcome::AlreadyRunning
            } else {
                match guarded(&d.name, || Ok(client.add(&d.name, &d.mgmtdev, &d.config)?)) {
                    Ok(()) => DeviceOutcome::Started,
                    // Another restorer created it since we listed.
                    Err(e) if e.is_exists() => DeviceOutcome::AlreadyRunning,
                    Err(CoreError::Vdpa(VdpaError::Netlink(e)))
                        if matches!(*e, NetlinkError::NoMgmtDev(_)) =>
                    {
                        DeviceOutcome::ParentAbsent
                    }
                    Err(e) => DeviceOutcome::Failed(e.into()),
                }
            };
            out.push((d.mgmtdev, d.name, o));
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

    fn n(s: &str) -> VdpaName {
        VdpaName::new(s).unwrap()
    }

    fn def(name: &str, auto: bool) -> VdpaDefinition {
        VdpaDefinition {
            name: n(name),
            mgmtdev: MgmtDevName::parse("vdpasim_net").unwrap(),
            config: CreateConfig {
                mac: Some("00:11:22:33:44:55".parse().unwrap()),
                mtu: Some(9000),
                ..Default::default()
            },
            start: StartPolicy::from_auto(auto),
        }
    }

    #[test]
    fn autostart_recreates_with_the_same_config() {
        let (_t, v) = vdpas();
        v.define(&def("vdpa0", true)).unwrap();
        v.start(&n("vdpa0")).unwrap();
        v.client().unwrap().vanish("vdpa0");
        let (r, _) = v.restore().unwrap();
        assert!(matches!(r[0].2, DeviceOutcome::Started));
        assert_eq!(
            v.client().unwrap().config(&n("vdpa0")).unwrap().mtu,
            Some(9000)
        );
        let (r, _) = v.restore().unwrap();
        assert!(matches!(r[0].2, DeviceOutcome::AlreadyRunning));
    }

    #[test]
    fn export_import_under_another_name_compares_equal() {
        let (_t, v) = vdpas();
        v.define(&def("vdpa0", false)).unwrap();
        let e = v.export(&n("vdpa0")).unwrap();
        let text = serde_json::to_string(&e).unwrap();
        let back: VdpaExport = serde_json::from_str(&text).unwrap();
        let d = v.import(&back, Some(&n("vdpa1")), true, true).unwrap();
        assert_eq!(d.config, def("vdpa0", false).config);
        let e1 = v.export(&n("vdpa1")).unwrap();
        assert_eq!(e1.device.config, e.device.config);
        assert_eq!(e1.device.mgmtdev, e.device.mgmtdev);
    }

    #[test]
    fn errors_are_sentences_and_nothing_is_half_created() {
        let (_t, v) = vdpas();
        let net = MgmtDevName::parse("vdpasim_net").unwrap();
        v.add(&n("vdpa0"), &net, &CreateConfig::default()).unwrap();
        let e = v
            .add(&n("vdpa0"), &net, &CreateConfig::default())
            .unwrap_err();
        assert_eq!(e.code(), "vdpa.exists");
        assert_eq!(
            e.chain(),
            "vDPA operation failed: a vDPA device named vdpa0 already exists"
        );
        let cfg = CreateConfig {
            max_vqp: Some(4),
            ..Default::default()
        };
        let e = v.add(&n("vdpa1"), &net, &cfg).unwrap_err();
        assert_eq!(e.code(), "vdpa.unsupported");
        assert!(
            e.chain().contains("does not support max_vqp"),
            "{}",
            e.chain()
        );
        assert!(v.client().unwrap().dev(&n("vdpa1")).unwrap().is_none());
        let e = v.del(&n("nosuch")).unwrap_err();
        assert_eq!(
            e.chain(),
            "vDPA operation failed: no vDPA device named nosuch"
        );
    }

    /// `vdpa define --mtu 0` was written (the device could never be made):
    /// an MTU outside virtio-net's 68–65535 is refused at define, modify,
    /// import and add, and nothing is written or made.
    #[test]
    fn mtus_virtio_net_cannot_carry_are_refused_and_nothing_written() {
        let (_t, v) = vdpas();
        let net = MgmtDevName::parse("vdpasim_net").unwrap();
        let mtu = |m| CreateConfig {
            mtu: Some(m),
            ..Default::default()
        };
        for bad in [0, 67] {
            let mut d = def("vdpa0", false);
            d.config = mtu(bad);
            let e = v.define(&d).unwrap_err();
            assert_eq!(e.code(), "input.bad_vdpa_value", "{bad}");
            assert!(e.to_string().contains("68 to 65535"), "{e}");
            assert!(!v.defs.exists("vdpa0"), "nothing written");
            let export = VdpaExport {
                hostdev_export: 1,
                kind: "vdpa".into(),
                device: d.clone(),
                from_live_config: false,
            };
            assert_eq!(
                v.import(&export, None, true, true).unwrap_err().code(),
                "input.bad_vdpa_value"
            );
            assert_eq!(
                v.add(&n("vdpa0"), &net, &mtu(bad)).unwrap_err().code(),
                "input.bad_vdpa_value"
            );
            assert!(v.client().unwrap().dev(&n("vdpa0")).unwrap().is_none());
        }
        v.define(&def("vdpa1", false)).unwrap();
        let edit = VdpaEdit {
            config: mtu(0),
            start: None,
        };
        assert_eq!(
            v.modify(&n("vdpa1"), &edit).unwrap_err().code(),
            "input.bad_vdpa_value"
        );
        assert_eq!(v.defs.load("vdpa1").unwrap().unwrap(), def("vdpa1", false));
        let mut ok = def("vdpa2", false);
        ok.config = mtu(68);
        v.define(&ok).unwrap();
    }

    /// Regression: definitions are configuration. Before, every vDPA command
    /// opened the netlink family first and failed without the vdpa module.
    #[test]
    fn definitions_work_without_the_vdpa_module() {
        let t = tempfile::tempdir().unwrap();
        let v: Vdpas<FakeVdpa> = Vdpas::lazy(t.path(), || Err(NetlinkError::NoFamily));
        v.define(&def("vdpa0", true)).unwrap();
        v.define(&def("vdpa1", false)).unwrap();
        let d = v
            .modify(
                &n("vdpa1"),
                &VdpaEdit {
                    config: CreateConfig {
                        mtu: Some(1500),
                        ..Default::default()
                    },
                    start: None,
                },
            )
            .unwrap();
        assert_eq!(d.config.mtu, Some(1500));
        let (defs, problems) = v.definitions().unwrap();
        assert_eq!(defs.len(), 2);
        assert!(problems.is_empty());
        let e = v.export(&n("vdpa1")).unwrap();
        v.import(&e, Some(&n("vdpa2")), true, false).unwrap();
        assert!(v.show(&n("vdpa2")).unwrap().device.is_none());
        v.undefine(&n("vdpa2")).unwrap();
        // What needs the kernel says so, as a sentence with a stable code.
        let e = v.start(&n("vdpa0")).unwrap_err();
        assert_eq!(e.code(), "vdpa.unavailable");
        assert!(e.chain().contains("load the vdpa module"), "{}", e.chain());
    }

    /// Regression: a copied definition file naming another device is never acted on.
    #[test]
    fn a_definition_naming_another_device_is_reported_and_not_started() {
        let (t, v) = vdpas();
        v.define(&def("vdpa0", true)).unwrap();
        let dir = t.path().join("etc/hostdev/vdpa.d");
        std::fs::copy(dir.join("vdpa0.json"), dir.join("vdpa9.json")).unwrap();
        let (r, problems) = v.restore().unwrap();
        assert_eq!(r.len(), 1, "only vdpa0 is restored: {r:?}");
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].reason.contains("names vdpa0, not vdpa9"),
            "{}",
            problems[0].reason
        );
        assert!(v.start(&n("vdpa9")).is_err());
        assert_eq!(
            v.client().unwrap().log(),
            vec!["add vdpa0 vdpasim_net [\"mac\", \"mtu\"]"]
        );
        v.undefine(&n("vdpa9")).unwrap();
    }

    /// Before: `vdpa list --defined` showed every definition as stopped
    /// without asking the kernel, so a running device read "stopped".
    #[test]
    fn listing_definitions_shows_running_devices_and_needs_no_module() {
        let (_t, v) = vdpas();
        v.define(&def("vdpa0", true)).unwrap();
        v.define(&def("vdpa1", false)).unwrap();
        v.start(&n("vdpa0")).unwrap();
        v.add(
            &n("extra"),
            &MgmtDevName::parse("vdpasim_net").unwrap(),
            &CreateConfig::default(),
        )
        .unwrap();
        let (rows, _) = v.list_defined().unwrap();
        let names: Vec<(&str, bool)> = rows.iter().map(|r| (r.0.as_str(), r.1.is_some())).collect();
        assert_eq!(
            names,
            vec![("vdpa0", true), ("vdpa1", false)],
            "only definitions, with their state"
        );
        let t = tempfile::tempdir().unwrap();
        let none: Vdpas<FakeVdpa> = Vdpas::lazy(t.path(), || Err(NetlinkError::NoFamily));
        none.define(&def("vdpa0", true)).unwrap();
        let (rows, _) = none.list_defined().unwrap();
        assert_eq!(rows.len(), 1);
        assert!(rows[0].1.is_none());
        // Any other failure to ask the kernel is not taken for "not running".
        let denied: Vdpas<FakeVdpa> = Vdpas::lazy(t.path(), || {
            Err(NetlinkError::Permission {
                op: "listing vDPA devices".into(),
            })
        });
        assert_eq!(denied.list_defined().unwrap_err().code(), "vdpa.permission");
        // The libvirt element names a live device: without the module, it says so.
        assert_eq!(
            none.libvirt(&n("vdpa0")).unwrap_err().code(),
            "vdpa.unavailable"
        );
    }
}
