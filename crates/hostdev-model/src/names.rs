//! Validated names: every string that becomes a path component passes here first.
//!
//! Owns: the rules for UUIDs, parent names, mdev type ids and attribute names.
//! Must not: touch the filesystem (whether an attribute file really exists is
//! the sysfs crate's business).

use std::fmt;
use std::str::FromStr;

/// A name that failed validation, with the reason as a sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The UUID did not parse.
    #[error("'{0}' is not a valid UUID")]
    Uuid(String),
    /// The name is empty.
    #[error("the {kind} name is empty")]
    Empty {
        /// What kind of name it was.
        kind: &'static str,
    },
    /// The name would escape its directory or is otherwise unusable as a path component.
    #[error("the {kind} name '{name}' is refused: {why}")]
    Unsafe {
        /// What kind of name it was.
        kind: &'static str,
        /// The name as given (escaped for display).
        name: String,
        /// Why it is refused.
        why: &'static str,
    },
}

/// Checks that `s` is usable as one path component; `kind` names it in errors.
fn check_component(kind: &'static str, s: &str) -> Result<(), NameError> {
    let unsafe_ = |why| NameError::Unsafe {
        kind,
        name: crate::quote::quote(s),
        why,
    };
    if s.is_empty() {
        return Err(NameError::Empty { kind });
    }
    if s == "." || s == ".." {
        return Err(unsafe_("it names a directory, not an entry in it"));
    }
    if s.contains('/') {
        return Err(unsafe_("it contains '/'"));
    }
    if s.contains('\0') {
        return Err(unsafe_("it contains a NUL byte"));
    }
    if s.chars().any(char::is_control) {
        return Err(unsafe_("it contains a control character"));
    }
    if s.len() > 255 {
        return Err(unsafe_("it is longer than 255 bytes"));
    }
    Ok(())
}

/// A device UUID, always shown lower-case and hyphenated as the kernel does.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Uuid(uuid::Uuid);

impl TryFrom<String> for Uuid {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        s.parse()
    }
}

impl From<Uuid> for String {
    fn from(u: Uuid) -> String {
        u.to_string()
    }
}

impl Uuid {
    /// A fresh random (version 4) UUID.
    pub fn new_v4() -> Self {
        Uuid(uuid::Uuid::new_v4())
    }
    /// A name-based (version 5, SHA-1) UUID of `name` in hostdev's own
    /// namespace: the same name gives the same UUID on every machine.
    pub fn stable(name: &str) -> Self {
        // hostdev's namespace, chosen once: changing it changes every stable UUID.
        const NS: uuid::Uuid = uuid::Uuid::from_u128(0x5a1d_0c3e_6b7f_5e2a_9d41_0b8c_7f3e_21d6);
        Uuid(uuid::Uuid::new_v5(&NS, name.as_bytes()))
    }
    /// The UUID as 16 raw bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
}

impl Uuid {
    /// Parses any form the `uuid` crate accepts (simple, braced, URN, any case),
    /// as mdevctl's command line does; the result is shown canonical.
    pub fn parse_lenient(s: &str) -> Result<Self, NameError> {
        uuid::Uuid::parse_str(s)
            .map(Uuid)
            .map_err(|_| NameError::Uuid(crate::quote::quote(s)))
    }
}

impl FromStr for Uuid {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Only the canonical hyphenated 36-character form is a path name.
        if s.len() != 36 {
            return Err(NameError::Uuid(crate::quote::quote(s)));
        }
        uuid::Uuid::try_parse(s)
            .map(Uuid)
            .map_err(|_| NameError::Uuid(crate::quote::quote(s)))
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

/// The conversions of a validated string name `$name` (which has
/// `fn new(impl Into<String>) -> Result<Self, $err>` and is one `String`):
/// serde's `try_from`/`into`, `FromStr`, `Display`, `AsRef<str>`.
macro_rules! string_name_impls {
    ($name:ident, $err:ty) => {
        impl TryFrom<String> for $name {
            type Error = $err;
            fn try_from(s: String) -> Result<Self, $err> {
                $name::new(s)
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = $err;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::new(s)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}
pub(crate) use string_name_impls;

macro_rules! component_name {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates `s` and wraps it.
            pub fn new(s: impl Into<String>) -> Result<Self, NameError> {
                let s = s.into();
                check_component($kind, &s)?;
                Ok($name(s))
            }
            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        string_name_impls!($name, NameError);
    };
}

component_name!(
    /// The name of an mdev parent device as it appears under `/sys/class/mdev_bus`.
    ParentName,
    "parent"
);
component_name!(
    /// An mdev type id such as `nvidia-63` or `mtty-1`.
    TypeId,
    "mdev type"
);

/// The name of a sysfs attribute of a device, written after create.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct AttrName(String);

impl TryFrom<String> for AttrName {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        AttrName::new(s)
    }
}

impl From<AttrName> for String {
    fn from(n: AttrName) -> String {
        n.0
    }
}

impl AttrName {
    /// Validates `s` as an attribute name: one plain path component, not hidden.
    pub fn new(s: impl Into<String>) -> Result<Self, NameError> {
        let s = s.into();
        check_component("attribute", &s)?;
        if s.starts_with('.') {
            return Err(NameError::Unsafe {
                kind: "attribute",
                name: crate::quote::quote(&s),
                why: "it starts with '.'",
            });
        }
        Ok(AttrName(s))
    }
    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AttrName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_round_trips_lowercase() {
        let u: Uuid = "83B8F4F2-509F-382F-3C1E-E6BFE0FA1001".parse().unwrap();
        assert_eq!(u.to_string(), "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001");
    }

    #[test]
    fn uuid_rejects_other_forms() {
        for s in [
            "",
            "x",
            "83b8f4f2509f382f3c1ee6bfe0fa1001",
            "../83b8f4f2-509f-382f-3c1e-e6bf",
        ] {
            assert!(s.parse::<Uuid>().is_err(), "{s}");
        }
    }

    #[test]
    fn hostile_names_are_refused() {
        for s in ["", ".", "..", "../..", "a/b", "a\0b", "a\nb", "/abs"] {
            assert!(ParentName::new(s).is_err(), "parent {s:?}");
            assert!(TypeId::new(s).is_err(), "type {s:?}");
            assert!(AttrName::new(s).is_err(), "attr {s:?}");
        }
        assert!(AttrName::new("../remove").is_err());
        assert!(AttrName::new(".hidden").is_err());
        assert!(ParentName::new("x".repeat(256)).is_err());
    }

    #[test]
    fn ordinary_names_pass() {
        for s in ["0000:00:02.0", "mtty", "matrix", "0.0.0026"] {
            assert_eq!(ParentName::new(s).unwrap().as_str(), s);
        }
        assert!(TypeId::new("i915-GVTg_V5_4").is_ok());
        assert!(AttrName::new("assign_adapter").is_ok());
    }

    #[test]
    fn error_messages_are_sentences() {
        let e = AttrName::new("a/b").unwrap_err();
        assert_eq!(
            e.to_string(),
            "the attribute name 'a/b' is refused: it contains '/'"
        );
    }
}
