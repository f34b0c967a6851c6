//! An in-memory fake of the vdpa family: management devices of a class that
//! accept a given set of options, devices that report their class's virtio id
//! (1 net, 2 block) as the kernel does, the vhost_vdpa binding each device
//! gets, and the kernel's refusals.

use crate::{
    Binding, CreateConfig, Dev, LiveConfig, MgmtDev, MgmtDevName, VdpaClient, VdpaError, VdpaName,
};
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

#[derive(Debug)]
struct FakeDev {
    mgmtdev: MgmtDevName,
    class: u32,
    config: CreateConfig,
    vhost: u32,
}

#[derive(Debug, Default)]
struct State {
    mgmt: Vec<(MgmtDev, Vec<&'static str>)>,
    devs: BTreeMap<VdpaName, FakeDev>,
    next_vhost: u32,
    log: Vec<String>,
    held: std::collections::BTreeSet<VdpaName>,
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

    /// Adds a management device of virtio class `class` (1 net, 2 block)
    /// accepting `options`.
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

    /// Removes a management device (its module unloaded): its devices go with it.
    pub fn remove_mgmtdev(&self, name: &str) {
        let mut st = self.st();
        st.mgmt.retain(|(m, _)| m.name.to_string() != name);
        st.devs.retain(|_, d| d.mgmtdev.to_string() != name);
    }

    /// Every request, one line each.
    pub fn log(&self) -> Vec<String> {
        self.st().log.clone()
    }

    /// A process opens (`true`) or closes the device's vhost-vdpa node.
    pub fn hold(&self, name: &str, held: bool) {
        let Ok(n) = VdpaName::new(name) else { return };
        let mut st = self.st();
        if held {
            st.held.insert(n);
        } else {
            st.held.remove(&n);
        }
    }

    /// Removes a device behind hostdev's back.
    pub fn vanish(&self, name: &str) {
        self.st().devs.retain(|n, _| n.as_str() != name);
    }
}

impl VdpaClient for FakeVdpa {
    fn mgmtdevs(&self) -> Result<Vec<MgmtDev>, VdpaError> {
        Ok(self.st().mgmt.iter().map(|(m, _)| m.clone()).collect())
    }

    fn devs(&self) -> Result<Vec<Dev>, VdpaError> {
        let names: Vec<VdpaName> = self.st().devs.keys().cloned().collect();
        Ok(names
            .iter()
            .filter_map(|n| self.dev(n).ok().flatten())
            .collect())
    }

    fn dev(&self, name: &VdpaName) -> Result<Option<Dev>, VdpaError> {
        Ok(self.st().devs.get(name).map(|d| Dev {
            name: name.to_string(),
            mgmtdev: d.mgmtdev.clone(),
            device_id: Some(d.class),
            vendor_id: Some(0),
            max_vqs: Some(3),
            max_vq_size: Some(256),
            min_vq_size: Some(0),
            other: vec![],
        }))
    }

    fn config(&self, name: &VdpaName) -> Result<LiveConfig, VdpaError> {
        let st = self.st();
        let d = st
            .devs
            .get(name)
            .ok_or_else(|| VdpaError::NoDevice(name.clone()))?;
        let c = &d.config;
        Ok(LiveConfig {
            mac: c.mac.map(|m| m.to_string()),
            mtu: c.mtu,
            max_vqp: c.max_vqp,
            features: c.features,
            ..Default::default()
        })
    }

    fn add(
        &self,
        name: &VdpaName,
        mgmtdev: &MgmtDevName,
        cfg: &CreateConfig,
    ) -> Result<(), VdpaError> {
        let mut st = self.st();
        st.log
            .push(format!("add {name} {mgmtdev} {:?}", cfg.option_names()));
        let Some((m, accepted)) = st.mgmt.iter().find(|(m, _)| &m.name == mgmtdev) else {
            return Err(VdpaError::NoMgmtDev(mgmtdev.clone()));
        };
        if cfg.option_names().iter().any(|o| !accepted.contains(o)) {
            return Err(VdpaError::Unsupported {
                mgmtdev: mgmtdev.to_string(),
                options: cfg.option_names(),
            });
        }
        let class = m.classes.first().copied().unwrap_or(1);
        if st.devs.contains_key(name) {
            return Err(VdpaError::Exists(name.to_string()));
        }
        let vhost = st.next_vhost;
        st.next_vhost += 1;
        st.devs.insert(
            name.clone(),
            FakeDev {
                mgmtdev: mgmtdev.clone(),
                class,
                config: cfg.clone(),
                vhost,
            },
        );
        Ok(())
    }

    fn del(&self, name: &VdpaName) -> Result<(), VdpaError> {
        let mut st = self.st();
        st.log.push(format!("del {name}"));
        st.devs
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| VdpaError::NoDevice(name.clone()))
    }

    fn binding(&self, name: &VdpaName) -> Result<Binding, VdpaError> {
        Ok(self
            .st()
            .devs
            .get(name)
            .map(|d| Binding {
                vhost_dev: Some(format!("/dev/vhost-vdpa-{}", d.vhost)),
                driver: Some("vhost_vdpa".into()),
            })
            .unwrap_or_default())
    }

    fn held(&self, name: &VdpaName) -> Option<String> {
        let st = self.st();
        let d = st.devs.get(name)?;
        st.held
            .contains(name)
            .then(|| format!("/dev/vhost-vdpa-{}", d.vhost))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_device_reports_the_block_device_id() {
        let f = FakeVdpa::new();
        f.add_mgmtdev("vdpasim_blk", 2, &[]);
        let n = VdpaName::new("blk0").unwrap();
        f.add(
            &n,
            &MgmtDevName::parse("vdpasim_blk").unwrap(),
            &CreateConfig::default(),
        )
        .unwrap();
        assert_eq!(f.dev(&n).unwrap().unwrap().device_id, Some(2));
    }
}
