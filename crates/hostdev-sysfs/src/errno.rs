//! Kernel error codes as sentences an operator can act on.

use std::io;

/// Explains an error returned by an mdev sysfs write.
pub fn describe_errno(e: &io::Error) -> String {
    let what = match e.raw_os_error() {
        Some(17) => "a device with this UUID already exists (EEXIST)",
        Some(22) => "the value is not accepted (EINVAL)",
        Some(87) => "no more instances of this type can be created (EUSERS)",
        Some(28) => "the parent has no space left for this device (ENOSPC)",
        Some(16) => "the device or its parent is busy, possibly in use by a VM (EBUSY)",
        Some(19) => "the device or parent no longer exists (ENODEV)",
        Some(2) => "the sysfs file does not exist (ENOENT)",
        Some(1) | Some(13) => "permission denied; run as root (EPERM/EACCES)",
        Some(95) => "the operation is not supported by the driver (EOPNOTSUPP)",
        _ => return e.to_string(),
    };
    what.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errnos_are_sentences() {
        let e = io::Error::from_raw_os_error(87);
        assert!(describe_errno(&e).contains("EUSERS"));
        let e = io::Error::other("strange");
        assert_eq!(describe_errno(&e), "strange");
    }
}
