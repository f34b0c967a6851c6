//! Mediated-device definitions: what mdevctl stores in `/etc/mdevctl.d/<parent>/<uuid>`.
//!
//! Owns: parsing a definition from JSON bytes (strictly: wrong types are errors,
//! never panics) and the edits `modify` makes. Must not: read or write files.

use crate::names::{AttrName, NameError, TypeId};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

/// When a defined device is started: the one start policy of every kind
/// (mdev, vGPU, SR-IOV PF, vDPA), stored and sent as `"auto"`/`"manual"`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum StartPolicy {
    /// Started when its parent appears (`"start": "auto"`).
    Auto,
    /// Started only on request (`"start": "manual"`).
    #[default]
    Manual,
}

impl StartPolicy {
    /// The word mdevctl uses.
    pub fn as_str(self) -> &'static str {
        match self {
            StartPolicy::Auto => "auto",
            StartPolicy::Manual => "manual",
        }
    }
}

impl StartPolicy {
    /// `Auto` when `auto` is set.
    pub fn from_auto(auto: bool) -> Self {
        if auto {
            StartPolicy::Auto
        } else {
            StartPolicy::Manual
        }
    }
}

impl fmt::Display for StartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One attribute written to the device after create, in order.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Attr {
    /// The sysfs attribute name (validated when the device is started).
    pub name: String,
    /// The value written.
    pub value: String,
}

/// A definition of a mediated device (without its UUID and parent, which are its path).
/// Its serde form is the wire form of hostdev's API; mdevctl's file format is
/// [`MdevConfig::from_json`] and `format::definition_file`.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct MdevConfig {
    /// The mdev type id.
    pub mdev_type: TypeId,
    /// Start policy.
    pub start: StartPolicy,
    /// Attributes in the order they are written.
    pub attrs: Vec<Attr>,
}

/// Why a definition's JSON was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Not JSON at all.
    #[error("it is not valid JSON ({0})")]
    Json(String),
    /// JSON, but not an object.
    #[error("it is not a JSON object")]
    NotObject,
    /// `mdev_type` absent.
    #[error("it has no \"mdev_type\"")]
    NoType,
    /// `start` absent.
    #[error("it has no \"start\"")]
    NoStart,
    /// A field of the wrong JSON type.
    #[error("\"{field}\" must be {expected}")]
    WrongType {
        /// The field.
        field: String,
        /// What it must be.
        expected: &'static str,
    },
    /// `start` is neither auto nor manual.
    #[error("\"start\" must be \"auto\" or \"manual\", not \"{0}\"")]
    BadStart(String),
    /// A name inside is unusable.
    #[error(transparent)]
    Name(#[from] NameError),
}

impl MdevConfig {
    /// A new manual definition of `mdev_type` with no attributes.
    pub fn new(mdev_type: TypeId) -> Self {
        MdevConfig {
            mdev_type,
            start: StartPolicy::Manual,
            attrs: Vec::new(),
        }
    }

    /// Parses mdevctl's definition JSON (`mdev_type` and `start` required).
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        Self::from_json_with_type(bytes, None)
    }

    /// Like [`MdevConfig::from_json`], using `fallback_type` when the JSON has no `mdev_type`.
    pub fn from_json_with_type(
        bytes: &[u8],
        fallback_type: Option<&TypeId>,
    ) -> Result<Self, ConfigError> {
        // Fast path: a well-formed file decodes straight into borrowed strings.
        // Anything unusual takes the slow path, which explains what is wrong.
        if let Ok(raw) = serde_json::from_slice::<RawConfig<'_>>(bytes) {
            if let Some(c) = raw.into_config(fallback_type) {
                return Ok(c);
            }
        }
        let v: Value =
            serde_json::from_slice(bytes).map_err(|e| ConfigError::Json(e.to_string()))?;
        Self::from_value(&v, fallback_type)
    }

    /// Parses an already-decoded JSON value.
    pub fn from_value(v: &Value, fallback_type: Option<&TypeId>) -> Result<Self, ConfigError> {
        let obj = v.as_object().ok_or(ConfigError::NotObject)?;
        let mdev_type = match obj.get("mdev_type") {
            Some(Value::String(s)) => TypeId::new(s.clone())?,
            Some(_) => {
                return Err(ConfigError::WrongType {
                    field: "mdev_type".into(),
                    expected: "a string",
                })
            }
            None => fallback_type.cloned().ok_or(ConfigError::NoType)?,
        };
        let start = match obj.get("start") {
            // mdevctl refuses a definition without a start policy; so do we.
            None | Some(Value::Null) => return Err(ConfigError::NoStart),
            Some(Value::String(s)) if s == "auto" => StartPolicy::Auto,
            Some(Value::String(s)) if s == "manual" => StartPolicy::Manual,
            Some(Value::String(s)) => return Err(ConfigError::BadStart(s.clone())),
            Some(_) => {
                return Err(ConfigError::WrongType {
                    field: "start".into(),
                    expected: "a string",
                })
            }
        };
        let attrs = match obj.get("attrs") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => parse_attrs(items)?,
            Some(_) => {
                return Err(ConfigError::WrongType {
                    field: "attrs".into(),
                    expected: "an array",
                })
            }
        };
        Ok(MdevConfig {
            mdev_type,
            start,
            attrs,
        })
    }

    /// Inserts an attribute at `index` (the end when `None`).
    pub fn add_attr(&mut self, index: Option<usize>, attr: Attr) -> Result<(), EditError> {
        match index {
            None => self.attrs.push(attr),
            Some(i) if i <= self.attrs.len() => self.attrs.insert(i, attr),
            Some(i) => return Err(EditError::BadIndex(i)),
        }
        Ok(())
    }

    /// Removes the attribute at `index` (the last when `None`; with no
    /// attributes that is a no-op, as in mdevctl).
    pub fn del_attr(&mut self, index: Option<usize>) -> Result<Option<Attr>, EditError> {
        match index {
            None => Ok(self.attrs.pop()),
            Some(i) if i < self.attrs.len() => Ok(Some(self.attrs.remove(i))),
            Some(i) => Err(EditError::BadIndex(i)),
        }
    }
}

/// Why an edit of a definition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// The index is past the end of the attribute list.
    #[error("attribute index {0} is invalid")]
    BadIndex(usize),
}

/// The shape of a good definition, for the fast path.
#[derive(serde::Deserialize, schemars::JsonSchema)]
struct RawConfig<'a> {
    #[serde(borrow)]
    mdev_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    start: Option<Cow<'a, str>>,
    #[serde(borrow)]
    attrs: Option<Vec<BTreeMap<Cow<'a, str>, Cow<'a, str>>>>,
}

impl RawConfig<'_> {
    /// `None` when anything needs the slow path's explanation.
    fn into_config(self, fallback_type: Option<&TypeId>) -> Option<MdevConfig> {
        let mdev_type = match self.mdev_type {
            Some(t) => TypeId::new(t.into_owned()).ok()?,
            None => fallback_type?.clone(),
        };
        let start = match self.start.as_deref() {
            Some("auto") => StartPolicy::Auto,
            Some("manual") => StartPolicy::Manual,
            _ => return None,
        };
        let mut attrs = Vec::new();
        for obj in self.attrs.unwrap_or_default() {
            for (name, value) in obj {
                AttrName::new(name.as_ref()).ok()?;
                attrs.push(Attr {
                    name: name.into_owned(),
                    value: value.into_owned(),
                });
            }
        }
        Some(MdevConfig {
            mdev_type,
            start,
            attrs,
        })
    }
}

fn parse_attrs(items: &[Value]) -> Result<Vec<Attr>, ConfigError> {
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let obj = item.as_object().ok_or_else(|| ConfigError::WrongType {
            field: format!("attrs[{i}]"),
            expected: "an object of name and value",
        })?;
        for (name, value) in obj {
            let value = value.as_str().ok_or_else(|| ConfigError::WrongType {
                field: format!("attrs[{i}].{name}"),
                expected: "a string",
            })?;
            // The name is checked again (against the device directory) at start;
            // here it must at least be a safe path component.
            AttrName::new(name.clone())?;
            out.push(Attr {
                name: name.clone(),
                value: value.to_string(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mdevctl_definition() {
        let c = MdevConfig::from_json(
            br#"{"mdev_type":"mtty-1","start":"auto","attrs":[{"foo":"bar"},{"a":"1"}]}"#,
        )
        .unwrap();
        assert_eq!(c.mdev_type.as_str(), "mtty-1");
        assert_eq!(c.start, StartPolicy::Auto);
        assert_eq!(c.attrs.len(), 2);
        assert_eq!(c.attrs[0].name, "foo");
    }

    #[test]
    fn non_string_attribute_is_an_error_not_a_panic() {
        let e = MdevConfig::from_json(br#"{"mdev_type":"t","start":"auto","attrs":[{"a":1}]}"#)
            .unwrap_err();
        assert_eq!(e.to_string(), "\"attrs[0].a\" must be a string");
    }

    #[test]
    fn malformed_inputs_are_errors() {
        for bad in [
            &b""[..],
            b"{",
            b"[]",
            b"{\"start\":\"auto\"}",
            b"{\"mdev_type\":1}",
            b"{\"mdev_type\":\"t\"}",
            b"{\"mdev_type\":\"t\",\"start\":\"sometimes\"}",
            b"{\"mdev_type\":\"t\",\"start\":\"auto\",\"attrs\":{}}",
            b"{\"mdev_type\":\"t\",\"start\":\"auto\",\"attrs\":[1]}",
            b"{\"mdev_type\":\"../x\"}",
            b"{\"mdev_type\":\"t\",\"attrs\":[{\"../remove\":\"1\"}]}",
        ] {
            assert!(
                MdevConfig::from_json(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn attr_edits_follow_mdevctl_indices() {
        let mut c = MdevConfig::new(TypeId::new("t").unwrap());
        let a = |n: &str| Attr {
            name: n.into(),
            value: "v".into(),
        };
        c.add_attr(None, a("x")).unwrap();
        c.add_attr(Some(0), a("y")).unwrap();
        assert_eq!(c.attrs[0].name, "y");
        assert_eq!(c.add_attr(Some(5), a("z")), Err(EditError::BadIndex(5)));
        assert_eq!(c.del_attr(None).unwrap().unwrap().name, "x");
        assert_eq!(c.del_attr(Some(3)), Err(EditError::BadIndex(3)));
        c.del_attr(Some(0)).unwrap();
        assert_eq!(c.del_attr(None), Ok(None));
    }
}
