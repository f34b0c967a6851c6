//! Kernel error codes as sentences an operator can act on.

use rustix::io::Errno;
use std::io;

/// Explains an error returned by an mdev sysfs write. Errnos are compared as
/// [`Errno`]s: their numbers differ between architectures (EUSERS is 87 on
/// x86 and arm64, 68 on alpha, 131 on mips).
pub fn describe_errno(e: &io::Error) -> String {
    let Some(errno) = e.raw_os_error().map(Errno::from_raw_os_error) else {
        return e.to_string();
    };
    let what = match errno {
        Errno::EXIST => "a device with this UUID already exists (EEXIST)",
        Errno::INVAL => "the value is not accepted (EINVAL)",
        Errno::USERS => "no more instances of this type can be created (EUSERS)",
        Errno::NOSPC => "the parent has no space left for this device (ENOSPC)",
        Errno::BUSY => "the device or its parent is busy, possibly in use by a VM (EBUSY)",
        Errno::NODEV => "the device or parent no longer exists (ENODEV)",
        Errno::NOENT => "the sysfs file does not exist (ENOENT)",
        Errno::PERM | Errno::ACCESS => "permission denied; run as root (EPERM/EACCES)",
        Errno::OPNOTSUPP => "the operation is not supported by the driver (EOPNOTSUPP)",
        _ => return e.to_string(),
    };
    what.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errnos_are_sentences() {
        let e = io::Error::from(Errno::USERS);
        assert!(describe_errno(&e).contains("EUSERS"));
        let e = io::Error::other("strange");
        assert_eq!(describe_errno(&e), "strange");
    }
}
