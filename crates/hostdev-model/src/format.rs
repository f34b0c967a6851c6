//! mdevctl's output formats, byte for byte: `list` and `types` as text and JSON,
//! and the definition file itself.
//!
//! Owns: rendering of already-gathered facts. Must not: gather them (no sysfs,
//! no store access) or decide what is listed (filters live in hostdev-core).

use crate::config::{Attr, MdevConfig};
use crate::names::{ParentName, TypeId, Uuid};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;

/// Serializes an attribute list as mdevctl does: `[{"name":"value"}, …]`.
struct AttrsJson<'a>(&'a [Attr]);

impl Serialize for AttrsJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for a in self.0 {
            seq.serialize_element(&OneEntry(&a.name, &a.value))?;
        }
        seq.end()
    }
}

/// A JSON object with exactly one entry.
struct OneEntry<'a, V: Serialize>(&'a str, V);

impl<V: Serialize> Serialize for OneEntry<'_, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(self.0, &self.1)?;
        m.end()
    }
}

/// The definition object in mdevctl's key order.
#[derive(Serialize)]
struct ConfigJson<'a> {
    mdev_type: &'a str,
    start: &'static str,
    attrs: AttrsJson<'a>,
}

impl<'a> From<&'a MdevConfig> for ConfigJson<'a> {
    fn from(c: &'a MdevConfig) -> Self {
        ConfigJson {
            mdev_type: c.mdev_type.as_str(),
            start: c.start.as_str(),
            attrs: AttrsJson(&c.attrs),
        }
    }
}

fn pretty<T: Serialize>(v: &T) -> String {
    // Serializing these plain structures cannot fail: keys are strings.
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// The bytes of a definition file, exactly as mdevctl writes them (pretty JSON, no newline).
pub fn definition_file(c: &MdevConfig) -> String {
    pretty(&ConfigJson::from(c))
}

/// The compact JSON of a definition, as libvirt sends it and callouts receive it.
pub fn definition_compact(c: &MdevConfig) -> String {
    serde_json::to_string(&ConfigJson::from(c)).unwrap_or_default()
}

/// One device as `list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ListEntry {
    /// Its UUID.
    pub uuid: Uuid,
    /// Its parent.
    pub parent: ParentName,
    /// Type, start policy and attributes.
    pub config: MdevConfig,
    /// Running now.
    pub active: bool,
    /// A definition exists under this parent.
    pub defined: bool,
}

/// Which listing is rendered: it decides the `(defined)`/`(active)` marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// Running devices, marked `(defined)`.
    Active,
    /// Definitions, marked `(active)`.
    Defined,
}

/// `list` as text; entries must already be in output order.
pub fn list_text(entries: &[ListEntry], kind: ListKind, verbose: bool) -> String {
    let mut out = String::with_capacity(entries.len() * 80 + 1);
    for e in entries {
        out.push_str(&e.uuid.to_string());
        out.push(' ');
        out.push_str(e.parent.as_str());
        out.push(' ');
        out.push_str(e.config.mdev_type.as_str());
        out.push(' ');
        out.push_str(e.config.start.as_str());
        match kind {
            ListKind::Active if e.defined => out.push_str(" (defined)"),
            ListKind::Defined if e.active => out.push_str(" (active)"),
            _ => {}
        }
        out.push('\n');
        if verbose && !e.config.attrs.is_empty() {
            out.push_str("  Attrs:\n");
            for (i, a) in e.config.attrs.iter().enumerate() {
                let one = serde_json::to_string(&OneEntry(&a.name, &a.value)).unwrap_or_default();
                out.push_str(&format!("    @{{{i}}}: {one}\n"));
            }
        }
    }
    // mdevctl prints its buffer with println!, so one more newline always follows.
    out.push('\n');
    out
}

/// `list --dumpjson`; `bare_single` is the `-u` form, which prints one match as its bare config.
pub fn list_json(entries: &[ListEntry], bare_single: bool) -> String {
    if bare_single && entries.len() == 1 {
        return pretty(&ConfigJson::from(&entries[0].config)) + "\n";
    }
    if entries.is_empty() {
        return "[]\n".to_string();
    }
    let mut by_parent: BTreeMap<&str, Vec<OneEntry<'_, ConfigJson<'_>>>> = BTreeMap::new();
    let uuids: Vec<String> = entries.iter().map(|e| e.uuid.to_string()).collect();
    for (e, u) in entries.iter().zip(&uuids) {
        by_parent
            .entry(e.parent.as_str())
            .or_default()
            .push(OneEntry(u, ConfigJson::from(&e.config)));
    }
    pretty(&[by_parent]) + "\n"
}

/// One supported type of a parent, as read from sysfs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct TypeInfo {
    /// The type id (directory name).
    pub type_id: TypeId,
    /// `available_instances`.
    pub available_instances: i64,
    /// `device_api`.
    pub device_api: String,
    /// `name`, if the driver provides one.
    pub name: Option<String>,
    /// `description`, if the driver provides one (raw, may hold newlines).
    pub description: Option<String>,
}

/// The parts of a type that never change while its parent stays registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct CachedType {
    /// Inode number of the type's sysfs directory when it was read: a
    /// re-registered parent gets new directories, so a changed number means stale.
    pub ino: u64,
    /// `device_api`.
    pub device_api: String,
    /// `name`.
    pub name: Option<String>,
    /// `description`.
    pub description: Option<String>,
}

/// Static type facts by `"<parent>/<type>"`, so that `types` reads only
/// `available_instances` on a warm host.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct TypeCache {
    /// The entries.
    pub types: BTreeMap<String, CachedType>,
}

impl TypeCache {
    /// The key of one type.
    pub fn key(parent: &str, type_id: &str) -> String {
        format!("{parent}/{type_id}")
    }
}

/// mdevctl folds a multi-line description into one line joined by ", ".
fn fold_description(d: &str) -> String {
    d.trim_end_matches('\n').replace('\n', ", ")
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// `types` as text; parents and their types in output order.
pub fn types_text(parents: &[(ParentName, Vec<TypeInfo>)]) -> String {
    let mut out = String::new();
    for (p, types) in parents {
        out.push_str(p.as_str());
        out.push('\n');
        for t in types {
            out.push_str(&format!(
                "  {}\n    Available instances: {}\n    Device API: {}\n",
                t.type_id, t.available_instances, t.device_api
            ));
            if let Some(n) = non_empty(&t.name) {
                out.push_str(&format!("    Name: {n}\n"));
            }
            if let Some(d) = non_empty(&t.description) {
                out.push_str(&format!("    Description: {}\n", fold_description(d)));
            }
        }
    }
    out.push('\n');
    out
}

#[derive(Serialize, schemars::JsonSchema)]
struct TypeJson<'a> {
    available_instances: i64,
    device_api: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

/// `types --dumpjson`.
pub fn types_json(parents: &[(ParentName, Vec<TypeInfo>)]) -> String {
    if parents.is_empty() {
        return "[]\n".to_string();
    }
    let mut by_parent = BTreeMap::new();
    for (p, types) in parents {
        let list: Vec<_> = types
            .iter()
            .map(|t| {
                OneEntry(
                    t.type_id.as_str(),
                    TypeJson {
                        available_instances: t.available_instances,
                        device_api: &t.device_api,
                        name: non_empty(&t.name),
                        description: non_empty(&t.description).map(fold_description),
                    },
                )
            })
            .collect();
        by_parent.insert(p.as_str(), list);
    }
    pretty(&[by_parent]) + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StartPolicy;

    fn entry(u: &str, p: &str, attrs: &[(&str, &str)]) -> ListEntry {
        ListEntry {
            uuid: u.parse().unwrap(),
            parent: ParentName::new(p).unwrap(),
            config: MdevConfig {
                mdev_type: TypeId::new("mtty-1").unwrap(),
                start: StartPolicy::Auto,
                attrs: attrs
                    .iter()
                    .map(|(n, v)| Attr {
                        name: n.to_string(),
                        value: v.to_string(),
                    })
                    .collect(),
            },
            active: true,
            defined: true,
        }
    }

    #[test]
    fn definition_file_matches_mdevctl() {
        let e = entry(
            "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001",
            "mtty",
            &[("foo", "bar")],
        );
        assert_eq!(
            definition_file(&e.config),
            "{\n  \"mdev_type\": \"mtty-1\",\n  \"start\": \"auto\",\n  \"attrs\": [\n    {\n      \"foo\": \"bar\"\n    }\n  ]\n}"
        );
        let mut c = e.config.clone();
        c.attrs.clear();
        assert_eq!(
            definition_file(&c),
            "{\n  \"mdev_type\": \"mtty-1\",\n  \"start\": \"auto\",\n  \"attrs\": []\n}"
        );
    }

    #[test]
    fn text_list_has_markers_and_trailing_blank_line() {
        let e = entry(
            "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001",
            "mtty",
            &[("a", "1")],
        );
        assert_eq!(
            list_text(std::slice::from_ref(&e), ListKind::Active, true),
            "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001 mtty mtty-1 auto (defined)\n  Attrs:\n    @{0}: {\"a\":\"1\"}\n\n"
        );
        assert_eq!(list_text(&[], ListKind::Defined, false), "\n");
        assert_eq!(list_json(&[], false), "[]\n");
    }

    #[test]
    fn description_is_folded() {
        assert_eq!(fold_description("a: 1\nb: 2\n"), "a: 1, b: 2");
    }
}
