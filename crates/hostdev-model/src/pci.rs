//! PCI functions' addresses (`DDDD:BB:DD.F`), for every kind that names a
//! PCI function: SR-IOV PFs and VFs whatever their vendor, probes, DRA's
//! `pciBusID`.
//!
//! Owns: parsing and rendering an address. Must not: read sysfs.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A PCI address `DDDD:BB:DD.F`, lower-case, validated before it becomes a path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PciAddress(String);

/// Why a PCI address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a PCI address of the form 0000:41:00.4")]
pub struct PciAddressError(String);

impl FromStr for PciAddress {
    type Err = PciAddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b = s.as_bytes();
        let hex = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_hexdigit);
        let ok = s.len() == 12
            && b[4] == b':'
            && b[7] == b':'
            && b[10] == b'.'
            && hex(0..4)
            && hex(5..7)
            && hex(8..10)
            && (b'0'..=b'7').contains(&b[11]);
        if ok {
            Ok(PciAddress(s.to_ascii_lowercase()))
        } else {
            Err(PciAddressError(crate::quote::quote(s)))
        }
    }
}

impl TryFrom<String> for PciAddress {
    type Error = PciAddressError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<PciAddress> for String {
    fn from(a: PciAddress) -> String {
        a.0
    }
}

impl PciAddress {
    /// The address as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::PciAddress;

    #[test]
    fn pci_addresses_are_validated() {
        assert_eq!(
            "0000:41:00.4".parse::<PciAddress>().unwrap().as_str(),
            "0000:41:00.4"
        );
        assert_eq!(
            "0000:C1:00.0".parse::<PciAddress>().unwrap().as_str(),
            "0000:c1:00.0"
        );
        for bad in [
            "",
            "0000:41:00.8",
            "../../etc/x",
            "0000:41:00.4/",
            "0000:41:0g.0",
        ] {
            assert!(bad.parse::<PciAddress>().is_err(), "{bad}");
        }
    }
}
