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
    if p.faults.iter().any(|f| f.effect == Some(Effect::Panic)) {
        return Err(ProfileError::Invalid(
            "effect \"panic\" is for the in-process fakes: in the simulator it would take the \
             whole mount down"
                .into(),
        ));
    }
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
    fn a_fault_row_that_makes_no_sense_is_refused_with_a_sentence() {
        let base = "[[parent]]\nname = \"mtty\"\ntype = []\n";
        for (row, why) in [
            ("op = \"create\"\n", "exactly one of errno and effect"),
            ("op = \"create\"\nerrno = \"EWHAT\"\n", "EWHAT"),
            (
                "op = \"remove\"\neffect = \"race\"\n",
                "effects of a create",
            ),
            ("op = \"create\"\neffect = \"panic\"\n", "whole mount down"),
        ] {
            let e = parse(&format!("{base}[[fault]]\n{row}")).expect_err(row);
            assert!(e.to_string().contains(why), "{row}: {e}");
        }
        let pf = "[[sriov]]\naddress = \"0000:41:00.g\"\ntotal_vfs = 1\n";
        assert!(parse(pf).is_err());
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(parse("[[parent]]\nname = \"x\"\ntypo = 1\ntype = []\n").is_err());
    }
}
