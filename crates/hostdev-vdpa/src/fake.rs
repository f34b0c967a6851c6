//! An in-memory fake of the vdpa family: management devices that accept a
//! given set of options, devices, and the kernel's errnos.

use crate::{CreateConfig, Dev, LiveConfig, MgmtDev, MgmtDevName, VdpaClient, VdpaError};
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

#[derive(Debug, Default)]
struct State {
    mgmt: Vec<(MgmtDev, Vec<&'static str>)>,
    devs: BTreeMap<String, (MgmtDevName, CreateConfig)>,
    log: Vec<String>,
}

/// The fake. Chosen explicitly by tests.
#[derive(Debug, Default)]
pub struct FakeVdpa {
    st: Mutex<State>,
}

impl FakeVdpa {
    /// No management devices.
    pub fn new() -> Self {
        Self::default()
    }

    fn st(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a management device of class `class` accepting `options`.
    pub fn add_mgmtdev(&self, name: &str, class: u32, options: &[&'static str]) {
        let m = MgmtDev {
            name: MgmtDevName::parse(name).unwrap_or(MgmtDevName {
                bus: None,
                dev: name.into(),
            }),
            classes: vec![class],
            max_vqs: Some(3),
            supported_features: Some(0x3_0000_0000),
            other: vec![],
        };
        self.st().mgmt.push((m, options.to_vec()));
    }

    /// Every request, one line each.
    pub fn log(&self) -> Vec<String> {
        self.st().log.clone()
    }

    /// Removes a device behind hostdev's back.
    pub fn vanish(&self, name: &str) {
        self.st().devs.remove(name);
    }
}

impl VdpaClient for FakeVdpa {
    fn mgmtdevs(&self) -> Result<Vec<MgmtDev>, VdpaError> {
        Ok(self.st().mgmt.iter().map(|(m, _)| m.clone()).collect())
    }

    fn devs(&self) -> Result<Vec<Dev>, VdpaError> {
        let names: Vec<String> = self.st().devs.keys().cloned().collect();
        Ok(names
            .iter()
            .filter_map(|n| self.dev(n).ok().flatten())
            .collect())
    }

    fn dev(&self, name: &str) -> Result<Option<Dev>, VdpaError> {
        Ok(self.st().devs.get(name).map(|(m, _)| Dev {
            name: name.to_string(),
            mgmtdev: m.clone(),
            device_id: Some(1),
            vendor_id: Some(0),
            max_vqs: Some(3),
            max_vq_size: Some(256),
            min_vq_size: Some(0),
            other: vec![],
        }))
    }

    fn config(&self, name: &str) -> Result<LiveConfig, VdpaError> {
        let st = self.st();
        let (_, c) = st
            .devs
            .get(name)
            .ok_or_else(|| VdpaError::NotFound(format!("no vDPA device named {name}")))?;
        Ok(LiveConfig {
            mac: c.mac.clone(),
            mtu: c.mtu,
            max_vqp: c.max_vqp,
            features: c.features,
            ..Default::default()
        })
    }

    fn add(&self, name: &str, mgmtdev: &MgmtDevName, cfg: &CreateConfig) -> Result<(), VdpaError> {
        crate::dev_new_nlas(name, mgmtdev, cfg)?;
        let mut st = self.st();
        st.log
            .push(format!("add {name} {mgmtdev} {:?}", cfg.option_names()));
        let Some((_, accepted)) = st.mgmt.iter().find(|(m, _)| &m.name == mgmtdev) else {
            return Err(VdpaError::NotFound(format!(
                "no vDPA management device {mgmtdev}"
            )));
        };
        if cfg.option_names().iter().any(|o| !accepted.contains(o)) {
            return Err(VdpaError::Unsupported {
                mgmtdev: mgmtdev.to_string(),
                options: cfg.option_names(),
            });
        }
        if st.devs.contains_key(name) {
            return Err(VdpaError::Exists(name.to_string()));
        }
        st.devs
            .insert(name.to_string(), (mgmtdev.clone(), cfg.clone()));
        Ok(())
    }

    fn del(&self, name: &str) -> Result<(), VdpaError> {
        let mut st = self.st();
        st.log.push(format!("del {name}"));
        st.devs
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| VdpaError::NotFound(format!("no vDPA device named {name}")))
    }
}
