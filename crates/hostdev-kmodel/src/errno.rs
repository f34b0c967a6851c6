//! The errnos the model answers with, by number and by name.
//!
//! Owns: the names a profile may use. Must not: describe errors to people
//! (hostdev-sysfs does that).

/// Operation not permitted.
pub const EPERM: i32 = 1;
/// No such file or directory.
pub const ENOENT: i32 = 2;
/// I/O error.
pub const EIO: i32 = 5;
/// Out of memory (also: a VF past the last bus).
pub const ENOMEM: i32 = 12;
/// Permission denied.
pub const EACCES: i32 = 13;
/// Device or resource busy.
pub const EBUSY: i32 = 16;
/// File exists.
pub const EEXIST: i32 = 17;
/// No such device.
pub const ENODEV: i32 = 19;
/// Invalid argument.
pub const EINVAL: i32 = 22;
/// No space left on device.
pub const ENOSPC: i32 = 28;
/// Result out of range.
pub const ERANGE: i32 = 34;
/// Too many users.
pub const EUSERS: i32 = 87;
/// Operation not supported.
pub const EOPNOTSUPP: i32 = 95;

const NAMES: &[(&str, i32)] = &[
    ("EPERM", EPERM),
    ("ENOENT", ENOENT),
    ("EIO", EIO),
    ("ENOMEM", ENOMEM),
    ("EACCES", EACCES),
    ("EBUSY", EBUSY),
    ("EEXIST", EEXIST),
    ("ENODEV", ENODEV),
    ("EINVAL", EINVAL),
    ("ENOSPC", ENOSPC),
    ("ERANGE", ERANGE),
    ("EUSERS", EUSERS),
    ("EOPNOTSUPP", EOPNOTSUPP),
];

/// An errno name as a number.
pub fn by_name(name: &str) -> Option<i32> {
    NAMES.iter().find(|(n, _)| *n == name).map(|(_, e)| *e)
}

/// An errno number's name, where the model knows it.
pub fn name(errno: i32) -> Option<&'static str> {
    NAMES.iter().find(|(_, e)| *e == errno).map(|(n, _)| *n)
}
