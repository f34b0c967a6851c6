//! The vendor-neutral half of PCI SR-IOV a passthrough needs besides the
//! counts: a PF's `sriov_drivers_autoprobe`, a function's bound driver and
//! IOMMU group, and binding a VF to a driver the way the lab's kernel takes
//! it (`driver_override`, then `bus/pci/drivers_probe`; `vfio-pci` has no
//! ids of its own, so without the override it takes nothing).
//!
//! Owns: those files, behind [`PciBinding`], for [`RealSriov`] and
//! [`FakeSriov`]. Must not: decide which driver a VF should have.

use crate::sriov::{FakeSriov, RealSriov};
use hostdev_model::pci::PciAddress;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;

/// A failed binding step.
#[derive(Debug, thiserror::Error)]
pub enum BindingError {
    /// Reading a file or link failed.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The kernel refused a write.
    #[error("the kernel refused writing '{value}' to {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What was written.
        value: String,
        /// The kernel's error.
        source: io::Error,
    },
    /// A file held something unexpected.
    #[error("{path} is malformed: {why}")]
    Malformed {
        /// The file or link.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// No PCI function at that address.
    #[error("there is no PCI device {0}")]
    NoDevice(PciAddress),
    /// A driver name that cannot be one (it would become a path).
    #[error("'{0}' is not a driver name (letters, digits, '-' and '_', at most 64)")]
    DriverName(String),
    /// The function already has another driver.
    #[error("{dev} is bound to {bound}; unbind it before giving it to {driver}")]
    Bound {
        /// The function.
        dev: PciAddress,
        /// The driver it has.
        bound: String,
        /// The driver asked for.
        driver: String,
    },
    /// The probe ran and the driver did not take the function.
    #[error("{driver} did not take {dev} (it has {})", .bound.as_deref().unwrap_or("no driver"))]
    NotTaken {
        /// The function.
        dev: PciAddress,
        /// The driver asked for.
        driver: String,
        /// What it has instead.
        bound: Option<String>,
    },
}

/// Binding PCI functions to drivers.
pub trait PciBinding: Send + Sync {
    /// `sriov_drivers_autoprobe` of a PF: whether VFs get their driver as
    /// they are added.
    fn autoprobe(&self, pf: &PciAddress) -> Result<bool, BindingError>;
    /// Writes `sriov_drivers_autoprobe`.
    fn set_autoprobe(&self, pf: &PciAddress, on: bool) -> Result<(), BindingError>;
    /// The driver bound to a function, if any.
    fn driver(&self, dev: &PciAddress) -> Result<Option<String>, BindingError>;
    /// A function's IOMMU group, if it has one.
    fn iommu_group(&self, dev: &PciAddress) -> Result<Option<u32>, BindingError>;
    /// Writes a function's `driver_override` (empty clears it).
    fn set_driver_override(&self, dev: &PciAddress, driver: &str) -> Result<(), BindingError>;
    /// Writes a function's address to `bus/pci/drivers_probe`.
    fn probe(&self, dev: &PciAddress) -> Result<(), BindingError>;
    /// Writes a function's address to its driver's `unbind`.
    fn release(&self, dev: &PciAddress, driver: &str) -> Result<(), BindingError>;

    /// Gives an unbound function to `driver`: `driver_override`, then a
    /// probe; an error unless the driver has it afterwards. A function the
    /// driver already has is left as it is.
    fn bind(&self, dev: &PciAddress, driver: &str) -> Result<(), BindingError> {
        let driver = driver_name(driver)?;
        match self.driver(dev)? {
            Some(d) if d == driver => return Ok(()),
            Some(bound) => {
                return Err(BindingError::Bound {
                    dev: dev.clone(),
                    bound,
                    driver: driver.to_string(),
                })
            }
            None => {}
        }
        self.set_driver_override(dev, driver)?;
        let taken = self.probe(dev).and_then(|()| self.driver(dev));
        match taken {
            Ok(Some(d)) if d == driver => Ok(()),
            other => {
                // Not taken: the override goes, so that the function's own
                // driver may have it again.
                let _ = self.set_driver_override(dev, "");
                Err(match other {
                    Err(e) => e,
                    Ok(bound) => BindingError::NotTaken {
                        dev: dev.clone(),
                        driver: driver.to_string(),
                        bound,
                    },
                })
            }
        }
    }

    /// Takes a function from its driver, if it has one, and clears its
    /// `driver_override`.
    fn unbind(&self, dev: &PciAddress) -> Result<(), BindingError> {
        if let Some(d) = self.driver(dev)? {
            self.release(dev, driver_name(&d)?)?;
        }
        self.set_driver_override(dev, "")
    }
}

/// A driver name, checked before it becomes part of a path or a write.
fn driver_name(d: &str) -> Result<&str, BindingError> {
    let ok = !d.is_empty()
        && d.len() <= 64
        && d.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
    ok.then_some(d)
        .ok_or_else(|| BindingError::DriverName(d.chars().take(80).collect()))
}

impl RealSriov {
    fn dev_dir(&self, dev: &PciAddress) -> PathBuf {
        self.root().join("sys/bus/pci/devices").join(dev.as_str())
    }

    /// The device's directory, or `NoDevice` when there is none: a write
    /// into a missing one would read as the kernel refusing it.
    fn present(&self, dev: &PciAddress) -> Result<PathBuf, BindingError> {
        let d = self.dev_dir(dev);
        match fs::symlink_metadata(&d) {
            Ok(_) => Ok(d),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(BindingError::NoDevice(dev.clone()))
            }
            Err(source) => Err(BindingError::Read { path: d, source }),
        }
    }

    fn write_file(path: PathBuf, value: &str) -> Result<(), BindingError> {
        OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|mut f| f.write_all(value.as_bytes()))
            .map_err(|source| BindingError::Write {
                path,
                value: value.trim_end().to_string(),
                source,
            })
    }

    fn link_name(path: PathBuf) -> Result<Option<String>, BindingError> {
        match fs::read_link(&path) {
            Ok(t) => Ok(t.file_name().map(|n| n.to_string_lossy().into_owned())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(BindingError::Read { path, source }),
        }
    }
}

impl PciBinding for RealSriov {
    fn autoprobe(&self, pf: &PciAddress) -> Result<bool, BindingError> {
        let path = self.present(pf)?.join("sriov_drivers_autoprobe");
        match fs::read_to_string(&path).map(|s| s.trim().to_string()) {
            Ok(s) if s == "1" => Ok(true),
            Ok(s) if s == "0" => Ok(false),
            Ok(s) => Err(BindingError::Malformed {
                path,
                why: format!(
                    "'{}' is neither 0 nor 1",
                    s.chars().take(40).collect::<String>()
                ),
            }),
            Err(source) => Err(BindingError::Read { path, source }),
        }
    }

    fn set_autoprobe(&self, pf: &PciAddress, on: bool) -> Result<(), BindingError> {
        let v = if on { "1" } else { "0" };
        Self::write_file(self.present(pf)?.join("sriov_drivers_autoprobe"), v)
    }

    fn driver(&self, dev: &PciAddress) -> Result<Option<String>, BindingError> {
        Self::link_name(self.present(dev)?.join("driver"))
    }

    fn iommu_group(&self, dev: &PciAddress) -> Result<Option<u32>, BindingError> {
        let path = self.present(dev)?.join("iommu_group");
        match Self::link_name(path.clone())? {
            None => Ok(None),
            Some(g) => g.parse().map(Some).map_err(|_| BindingError::Malformed {
                path,
                why: format!(
                    "it names group '{}', not a number",
                    g.chars().take(40).collect::<String>()
                ),
            }),
        }
    }

    fn set_driver_override(&self, dev: &PciAddress, driver: &str) -> Result<(), BindingError> {
        // An empty override is written as a newline, as a shell's echo does.
        let v = if driver.is_empty() { "\n" } else { driver };
        Self::write_file(self.present(dev)?.join("driver_override"), v)
    }

    fn probe(&self, dev: &PciAddress) -> Result<(), BindingError> {
        Self::write_file(self.root().join("sys/bus/pci/drivers_probe"), dev.as_str())
    }

    fn release(&self, dev: &PciAddress, driver: &str) -> Result<(), BindingError> {
        let d = driver_name(driver)?;
        Self::write_file(
            self.root()
                .join("sys/bus/pci/drivers")
                .join(d)
                .join("unbind"),
            dev.as_str(),
        )
    }
}

fn model_err(path: String, value: &str, errno: i32) -> BindingError {
    BindingError::Write {
        path: PathBuf::from(path),
        value: value.to_string(),
        source: io::Error::from_raw_os_error(errno),
    }
}

impl PciBinding for FakeSriov {
    fn autoprobe(&self, pf: &PciAddress) -> Result<bool, BindingError> {
        self.with_model(|m| m.autoprobe(pf.as_str()))
            .ok_or_else(|| BindingError::Read {
                path: PathBuf::from(format!("/sys/bus/pci/devices/{pf}/sriov_drivers_autoprobe")),
                source: io::Error::from(io::ErrorKind::NotFound),
            })
    }

    fn set_autoprobe(&self, pf: &PciAddress, on: bool) -> Result<(), BindingError> {
        let v = if on { "1" } else { "0" };
        self.with_model(|m| m.set_autoprobe(pf.as_str(), on))
            .map_err(|e| {
                model_err(
                    format!("/sys/bus/pci/devices/{pf}/sriov_drivers_autoprobe"),
                    v,
                    e,
                )
            })
    }

    fn driver(&self, dev: &PciAddress) -> Result<Option<String>, BindingError> {
        self.with_model(|m| {
            m.pci_present(dev.as_str())
                .then(|| m.pci_driver(dev.as_str()))
                .ok_or_else(|| BindingError::NoDevice(dev.clone()))
        })
    }

    fn iommu_group(&self, dev: &PciAddress) -> Result<Option<u32>, BindingError> {
        self.with_model(|m| {
            m.pci_present(dev.as_str())
                .then(|| m.vf_group(dev.as_str()))
                .ok_or_else(|| BindingError::NoDevice(dev.clone()))
        })
    }

    fn set_driver_override(&self, dev: &PciAddress, driver: &str) -> Result<(), BindingError> {
        self.with_model(|m| m.set_driver_override(dev.as_str(), driver))
            .map_err(|e| {
                model_err(
                    format!("/sys/bus/pci/devices/{dev}/driver_override"),
                    driver,
                    e,
                )
            })
    }

    fn probe(&self, dev: &PciAddress) -> Result<(), BindingError> {
        self.with_model(|m| m.drivers_probe(dev.as_str()))
            .map_err(|e| model_err("/sys/bus/pci/drivers_probe".into(), dev.as_str(), e))
    }

    fn release(&self, dev: &PciAddress, driver: &str) -> Result<(), BindingError> {
        self.with_model(|m| m.unbind(dev.as_str(), driver))
            .map_err(|e| {
                model_err(
                    format!("/sys/bus/pci/drivers/{driver}/unbind"),
                    dev.as_str(),
                    e,
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The review found a missing device's bind reported as the kernel
    /// refusing a write (ENOENT at open).
    #[test]
    fn a_missing_device_is_named_as_missing_not_as_a_refused_write() {
        let root = tempfile::tempdir().expect("tempdir");
        let s = RealSriov::new(root.path());
        let dev: PciAddress = "0000:01:10.0".parse().expect("address");
        let e = s.bind(&dev, "vfio-pci").expect_err("no device");
        assert!(matches!(e, BindingError::NoDevice(_)), "{e}");
        let f = FakeSriov::new();
        assert!(matches!(
            f.bind(&dev, "vfio-pci"),
            Err(BindingError::NoDevice(_))
        ));
        // An autoprobe file that says something else is malformed, not "on".
        let d = root.path().join("sys/bus/pci/devices/0000:01:00.0");
        std::fs::create_dir_all(&d).expect("dir");
        std::fs::write(d.join("sriov_drivers_autoprobe"), "2\n").expect("write");
        let pf: PciAddress = "0000:01:00.0".parse().expect("address");
        assert!(matches!(
            s.autoprobe(&pf),
            Err(BindingError::Malformed { .. })
        ));
    }

    #[test]
    fn a_driver_name_that_would_be_a_path_is_refused_before_any_write() {
        for bad in ["", "../../x", "vfio pci", "a/b", &"x".repeat(65)] {
            assert!(
                matches!(driver_name(bad), Err(BindingError::DriverName(_))),
                "{bad}"
            );
        }
        assert!(driver_name("vfio-pci").is_ok());
        assert!(driver_name("nvidia_vgpu").is_ok());
    }
}
