//! vDPA devices as configuration: validated device and management-device
//! names, MAC addresses, the creation config the kernel does not remember, the
//! stored definition (`/etc/hostdev/vdpa.d/<name>.json`), the export format,
//! and the typed edit `modify` applies.
//!
//! Owns: those types and their rules (what a name may be, how an edit merges).
//! Must not: talk netlink (hostdev-vdpa encodes these for the kernel) or read
//! and write files (hostdev-store does).

use crate::config::StartPolicy;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A vDPA value that cannot be used, as a sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VdpaValueError {
    /// A device or management device name that cannot be sent or stored.
    #[error("'{0}' is not a usable vDPA device or management device name")]
    Name(String),
    /// A MAC address that does not parse.
    #[error("'{0}' is not a valid mac")]
    Mac(String),
    /// An MTU virtio-net cannot carry.
    #[error("MTU {0} is outside what virtio-net allows (68 to 65535)")]
    Mtu(u16),
}

/// The MTUs a virtio-net device can have: 68 (the least IPv4 needs, and
/// the kernel's `ETH_MIN_MTU`) to 65535.
pub const MTU_RANGE: std::ops::RangeInclusive<u16> = 68..=65535;

/// A vDPA device name: 1 to 64 of `A-Za-z0-9-_.:`, not `.` or `..`, so that
/// it is safe both on the wire and as a file name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct VdpaName(String);

impl VdpaName {
    /// Validates `s`.
    pub fn new(s: impl Into<String>) -> Result<Self, VdpaValueError> {
        let s = s.into();
        let ok = !s.is_empty()
            && s.len() <= 64
            && s != "."
            && s != ".."
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
        if ok {
            Ok(VdpaName(s))
        } else {
            Err(VdpaValueError::Name(crate::quote::quote(&s)))
        }
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

crate::names::string_name_impls!(VdpaName, VdpaValueError);

/// A management device: `vdpasim_net`, or `pci/0000:41:04.2`.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct MgmtDevName {
    /// Bus (`pci`), absent for the simulators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bus: Option<String>,
    /// Device name.
    pub dev: String,
}

impl MgmtDevName {
    /// Parses `dev` or `bus/dev` as iproute2 writes them.
    pub fn parse(s: &str) -> Result<MgmtDevName, VdpaValueError> {
        let bad = || VdpaValueError::Name(crate::quote::quote(s));
        if s.is_empty() || s.chars().any(char::is_control) {
            return Err(bad());
        }
        match s.split_once('/') {
            None => Ok(MgmtDevName {
                bus: None,
                dev: s.to_string(),
            }),
            Some((b, d)) if !b.is_empty() && !d.is_empty() && !d.contains('/') => Ok(MgmtDevName {
                bus: Some(b.to_string()),
                dev: d.to_string(),
            }),
            _ => Err(bad()),
        }
    }
}

impl FromStr for MgmtDevName {
    type Err = VdpaValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MgmtDevName::parse(s)
    }
}

impl fmt::Display for MgmtDevName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.bus {
            Some(b) => write!(f, "{b}/{}", self.dev),
            None => f.write_str(&self.dev),
        }
    }
}

/// A MAC address, shown `00:11:22:33:44:55` (lower case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MacAddr(pub [u8; 6]);

impl FromStr for MacAddr {
    type Err = VdpaValueError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || VdpaValueError::Mac(crate::quote::quote(s));
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 6 {
            return Err(bad());
        }
        let mut out = [0u8; 6];
        for (o, p) in out.iter_mut().zip(parts) {
            if p.len() != 2 {
                return Err(bad());
            }
            *o = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        Ok(MacAddr(out))
    }
}

impl MacAddr {
    /// This address plus `n` in its last three bytes (the vendor's part
    /// kept); `None` when that would carry past `xx:xx:xx:ff:ff:ff`.
    pub fn offset(self, n: u64) -> Option<MacAddr> {
        let b = self.0;
        let low =
            (u64::from(b[3]) << 16 | u64::from(b[4]) << 8 | u64::from(b[5])).checked_add(n)?;
        (low <= 0xff_ffff).then(|| {
            MacAddr([
                b[0],
                b[1],
                b[2],
                (low >> 16) as u8,
                (low >> 8) as u8,
                low as u8,
            ])
        })
    }

    /// How many addresses count up from this one before the last three
    /// bytes would carry (at least 1).
    pub fn addresses_left(self) -> u64 {
        let b = self.0;
        0x100_0000 - (u64::from(b[3]) << 16 | u64::from(b[4]) << 8 | u64::from(b[5]))
    }

    /// Why this address cannot be the first of `count` devices' own
    /// addresses (each the one before plus one), if it cannot, as a
    /// predicate of the address ("is all zeros, …"): all zeros, multicast,
    /// or the count would carry past the last three bytes.
    pub fn base_problem(self, count: u64) -> Option<String> {
        let b = self.0;
        if b == [0; 6] {
            return Some("is all zeros, which is no device's address".to_string());
        }
        if b[0] & 1 == 1 {
            return Some("is a multicast address (the first byte's lowest bit is set)".to_string());
        }
        if count > self.addresses_left() {
            return Some(format!(
                "cannot give {count} addresses: they would carry past {:02x}:{:02x}:{:02x}:ff:ff:ff (the addresses count in the last three bytes)",
                b[0], b[1], b[2]
            ));
        }
        None
    }
}

impl TryFrom<String> for MacAddr {
    type Error = VdpaValueError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<MacAddr> for String {
    fn from(m: MacAddr) -> String {
        m.to_string()
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// What a device is created with: the config the kernel does not remember.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConfig {
    /// MAC address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// MTU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u16>,
    /// Maximum virtqueue pairs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_vqp: Option<u16>,
    /// Device features.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<u64>,
}

impl CreateConfig {
    /// Refuses values no device can be created with (an MTU outside
    /// [`MTU_RANGE`]), so that they are never stored.
    pub fn check(&self) -> Result<(), VdpaValueError> {
        match self.mtu {
            Some(m) if !MTU_RANGE.contains(&m) => Err(VdpaValueError::Mtu(m)),
            _ => Ok(()),
        }
    }

    /// The options given, by their iproute2 names (for error messages).
    pub fn option_names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.mac.is_some() {
            v.push("mac");
        }
        if self.mtu.is_some() {
            v.push("mtu");
        }
        if self.max_vqp.is_some() {
            v.push("max_vqp");
        }
        if self.features.is_some() {
            v.push("features");
        }
        v
    }
}

/// A persistent vDPA device (`/etc/hostdev/vdpa.d/<name>.json`), also the body
/// of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VdpaDefinition {
    /// Device name.
    pub name: VdpaName,
    /// Its management device.
    pub mgmtdev: MgmtDevName,
    /// What it is created with.
    #[serde(default)]
    pub config: CreateConfig,
    /// Start policy.
    #[serde(default)]
    pub start: StartPolicy,
}

/// A typed change of a vDPA definition: each option given replaces the stored
/// one, options not given are kept.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VdpaEdit {
    /// New creation options (only those that are set replace stored ones).
    #[serde(default)]
    pub config: CreateConfig,
    /// New start policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<StartPolicy>,
}

impl VdpaDefinition {
    /// Applies an edit: given options replace stored ones.
    pub fn apply(&mut self, e: &VdpaEdit) {
        let c = &mut self.config;
        c.mac = e.config.mac.or(c.mac);
        c.mtu = e.config.mtu.or(c.mtu);
        c.max_vqp = e.config.max_vqp.or(c.max_vqp);
        c.features = e.config.features.or(c.features);
        if let Some(s) = e.start {
            self.start = s;
        }
    }
}

/// A self-contained spec of what to recreate elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_macs_are_checked() {
        assert_eq!(
            MgmtDevName::parse("pci/0000:41:04.2").unwrap().to_string(),
            "pci/0000:41:04.2"
        );
        assert_eq!(MgmtDevName::parse("vdpasim_net").unwrap().bus, None);
        assert!(MgmtDevName::parse("a/b/c").is_err());
        assert!(VdpaName::new("vdpa0").is_ok());
        for bad in ["", "..", "a/b", "x y", "a\nb"] {
            assert!(VdpaName::new(bad).is_err(), "{bad:?}");
        }
        let m: MacAddr = "00:11:22:33:44:AA".parse().unwrap();
        assert_eq!(m.0, [0, 0x11, 0x22, 0x33, 0x44, 0xaa]);
        assert_eq!(m.to_string(), "00:11:22:33:44:aa");
        assert_eq!(
            "00:11:22:33:44".parse::<MacAddr>().unwrap_err().to_string(),
            "'00:11:22:33:44' is not a valid mac"
        );
        let d: Result<VdpaDefinition, _> =
            serde_json::from_str(r#"{"name":"../x","mgmtdev":{"dev":"vdpasim_net"}}"#);
        assert!(d.is_err(), "a hostile name in a stored file is refused");
    }

    #[test]
    fn an_edit_replaces_only_what_it_gives() {
        let mut d = VdpaDefinition {
            name: VdpaName::new("v0").unwrap(),
            mgmtdev: MgmtDevName::parse("vdpasim_net").unwrap(),
            config: CreateConfig {
                mac: Some("00:11:22:33:44:55".parse().unwrap()),
                mtu: Some(1500),
                ..Default::default()
            },
            start: StartPolicy::Manual,
        };
        d.apply(&VdpaEdit {
            config: CreateConfig {
                mtu: Some(9000),
                ..Default::default()
            },
            start: Some(StartPolicy::Auto),
        });
        assert_eq!(d.config.mtu, Some(9000));
        assert_eq!(
            d.config.mac.map(|m| m.to_string()).as_deref(),
            Some("00:11:22:33:44:55")
        );
        assert_eq!(d.start, StartPolicy::Auto);
        d.apply(&VdpaEdit::default());
        assert_eq!(d.config.mtu, Some(9000));
    }
}
