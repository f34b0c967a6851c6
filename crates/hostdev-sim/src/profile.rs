//! Profiles: what simulated hardware a host has, as TOML (schema in
//! docs/simulator.md), described by hostdev-kmodel's types. Built-in
//! profiles live in `profiles/*.toml`.
//!
//! Owns: reading profiles and the built-in ones. Must not: hold run-time
//! state or rules (hostdev-kmodel's).

pub use hostdev_kmodel::profile::*;

/// A profile that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// Not TOML of the schema.
    #[error(transparent)]
    Toml(#[from] toml::de::Error),
    /// TOML of the schema that makes no sense.
    #[error("{0}")]
    Invalid(String),
}

/// Parses and checks a profile.
pub fn parse(text: &str) -> Result<Profile, ProfileError> {
    let p: Profile = toml::from_str(text)?;
    p.check().map_err(ProfileError::Invalid)?;
    Ok(p)
}

/// The built-in profiles: (name, TOML).
pub const BUILTIN: &[(&str, &str)] = &[
    ("demo", include_str!("../profiles/demo.toml")),
    ("large", include_str!("../profiles/large.toml")),
    (
        "nvidia-sriov",
        include_str!("../profiles/nvidia-sriov.toml"),
    ),
    ("vfio-ap", include_str!("../profiles/vfio-ap.toml")),
    ("samples", include_str!("../profiles/samples.toml")),
    ("igb", include_str!("../profiles/igb.toml")),
];

/// An errno name as a number.
pub fn errno(name: &str) -> Option<i32> {
    hostdev_kmodel::errno::by_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_profiles_parse() {
        for (name, text) in BUILTIN {
            let p = parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!p.description.is_empty(), "{name}");
            for f in &p.faults {
                assert!(f.check().is_ok(), "{name}: {f:?}");
            }
        }
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(parse("[[parent]]\nname = \"x\"\ntypo = 1\ntype = []\n").is_err());
    }
}
