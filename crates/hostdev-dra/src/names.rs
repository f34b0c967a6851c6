//! Checks on names that come from the apiserver or the kubelet before they
//! become file names or CDI names: a claim UID, namespace and name, a
//! request name. Kubernetes validates them too; the driver does not rely
//! on it (a name is a path component here).
//!
//! Owns: the shapes the driver accepts. Must not: build paths (the callers
//! do, from checked parts only).

use hostdev_api::dra::is_dns_label;

/// A DNS subdomain (a claim's name, a driver name): dot-separated DNS
/// labels, at most 253 bytes.
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// The most bytes a driver name may have: it is part of each
/// ResourceSlice's name and used as a label value (at most 63 bytes).
pub const MAX_DRIVER_NAME: usize = 63;

/// Why the names the driver is started with are refused.
#[derive(Debug, thiserror::Error)]
pub enum NameError {
    /// The driver name is not a DNS subdomain.
    #[error("the driver name {0:?} is not a DNS subdomain (dot-separated parts of lowercase letters, digits and '-')")]
    Driver(String),
    /// The driver name is too long.
    #[error("the driver name {name:?} is {len} bytes; a driver name is at most {MAX_DRIVER_NAME}, as ResourceSlice names and label values carry it")]
    DriverTooLong {
        /// The name.
        name: String,
        /// Its length.
        len: usize,
    },
    /// The node name is not a DNS subdomain.
    #[error("the node name {0:?} is not a DNS subdomain (dot-separated parts of lowercase letters, digits and '-')")]
    Node(String),
}

/// Checks the driver's and the node's names before either becomes part of
/// a path, a socket's name or an object's name.
pub fn check_names(driver: &str, node: &str) -> Result<(), NameError> {
    if !is_dns_subdomain(driver) {
        return Err(NameError::Driver(driver.to_string()));
    }
    if driver.len() > MAX_DRIVER_NAME {
        return Err(NameError::DriverTooLong {
            name: driver.to_string(),
            len: driver.len(),
        });
    }
    if !is_dns_subdomain(node) {
        return Err(NameError::Node(node.to_string()));
    }
    Ok(())
}

/// A claim UID as the apiserver makes them (a UUID: hex digits and `-`,
/// 36 characters).
pub fn is_uid(s: &str) -> bool {
    s.len() == 36 && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// A request name in an allocation result: a DNS label, or `request/sub`
/// (a prioritized-list subrequest), each part a DNS label.
pub fn is_request(s: &str) -> bool {
    match s.split_once('/') {
        Some((a, b)) => is_dns_label(a) && is_dns_label(b),
        None => is_dns_label(s),
    }
}

/// The request a subrequest belongs to (`gpu/small` → `gpu`).
pub fn base_request(s: &str) -> &str {
    s.split_once('/').map_or(s, |(a, _)| a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_refused() {
        assert!(is_dns_subdomain("hostdev.io") && is_dns_subdomain("claim-1"));
        for bad in ["", ".", "..", "a..b", "../x", "a/b", "A", &"a.".repeat(127)] {
            assert!(!is_dns_subdomain(bad), "{bad:?}");
        }
        assert!(is_uid("0b0c6a4e-7d7e-4f43-9c55-3d8a5d2f1e10"));
        for bad in [
            "",
            "../../../../etc/passwd-aaaaaaaaaaaaaaaaa",
            "x".repeat(36).as_str(),
        ] {
            assert!(!is_uid(bad), "{bad:?}");
        }
        assert!(is_request("gpu") && is_request("gpu/small"));
        for bad in ["", "gpu/", "/x", "a/b/c", "a/..", "GPU"] {
            assert!(!is_request(bad), "{bad:?}");
        }
        assert_eq!(base_request("gpu/small"), "gpu");
        assert_eq!(base_request("gpu"), "gpu");
    }
}
