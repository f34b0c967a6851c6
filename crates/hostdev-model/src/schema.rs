//! JSON Schemas of the validated names: each is a string, and its schema
//! says as much of the validation rule as JSON Schema can (a pattern, a
//! length), so that a generated client and a schema-driven fuzzer make
//! values the rule accepts. The rule itself stays the type's constructor;
//! a value the schema allows and the rule refuses is still refused.
//!
//! Owns: those schemas. Must not: validate anything.

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use std::borrow::Cow;

/// `impl JsonSchema` for a string newtype: its name, description and the
/// schema's constraints as a JSON object literal.
macro_rules! string_schema {
    ($ty:ty, $name:literal, $desc:literal, { $($k:literal : $v:expr),* $(,)? }) => {
        impl JsonSchema for $ty {
            fn schema_name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({
                    "type": "string",
                    "description": $desc,
                    $($k: $v),*
                })
            }
        }
    };
}

/// One path component: not `.` or `..`, no `/`, no control character.
pub(crate) const COMPONENT: &str = r"^(?!\.\.?$)[^/\u0000-\u001f\u007f-\u009f]+$";

string_schema!(crate::Uuid, "Uuid",
    "A device UUID in its canonical hyphenated form (shown lower-case).",
    { "pattern": "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", "minLength": 36, "maxLength": 36 });
string_schema!(crate::ParentName, "ParentName",
    "An mdev parent's name as under /sys/class/mdev_bus: one path component of at most 255 bytes.",
    { "pattern": COMPONENT, "minLength": 1, "maxLength": 255 });
string_schema!(crate::TypeId, "TypeId",
    "An mdev type id such as nvidia-63 or mtty-1: one path component of at most 255 bytes.",
    { "pattern": COMPONENT, "minLength": 1, "maxLength": 255 });
string_schema!(crate::AttrName, "AttrName",
    "A device attribute's name: one path component of at most 255 bytes, not starting with '.'.",
    { "pattern": r"^[^./\u0000-\u001f\u007f-\u009f][^/\u0000-\u001f\u007f-\u009f]*$", "minLength": 1, "maxLength": 255 });
string_schema!(crate::pci::PciAddress, "PciAddress",
    "A PCI address DDDD:BB:DD.F (shown lower-case).",
    { "pattern": "^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\\.[0-7]$", "minLength": 12, "maxLength": 12 });
string_schema!(crate::vdpa::VdpaName, "VdpaName",
    "A vDPA device name: 1 to 64 of A-Z a-z 0-9 - _ . : (not . or ..).",
    { "pattern": r"^(?!\.\.?$)[A-Za-z0-9_.:-]{1,64}$", "minLength": 1, "maxLength": 64 });
string_schema!(crate::vdpa::MacAddr, "MacAddr",
    "A MAC address, six colon-separated hex bytes (shown lower-case).",
    { "pattern": "^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$", "minLength": 17, "maxLength": 17 });
string_schema!(crate::pool::PoolName, "PoolName",
    "A pool's name: 1 to 64 of A-Z a-z 0-9 _ . -, starting with a letter or digit.",
    { "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", "minLength": 1, "maxLength": 64 });

#[cfg(test)]
mod tests {

    #[test]
    fn schemas_name_their_type_and_say_string() {
        let s = schemars::schema_for!(crate::Uuid);
        assert_eq!(s.get("type").and_then(|t| t.as_str()), Some("string"));
        let s = schemars::schema_for!(crate::pci::PciAddress);
        assert_eq!(s.get("maxLength").and_then(|t| t.as_u64()), Some(12));
    }
}
