//! A claim's opaque parameters for this driver: every
//! `status.allocation.devices.config` entry whose `opaque.driver` is ours,
//! decoded as hostdev's `DeviceConfig` (`apiVersion: hostdev.io/v1alpha1`,
//! `kind: DeviceConfig`, then `mac`, `mtu`, `queues`; any other field is
//! refused, naming it) and matched to the requests it names (all of them
//! when it names none; a request `r` covers its subrequests `r/s`), later
//! entries over earlier ones as the API orders them (class before claim).
//! Parameters larger than the API's own bound (10 KiB) are refused unread.
//!
//! Owns: that decoding. Must not: judge the values (hostdevd checks a MAC,
//! an MTU and whether the device takes them at all, before it makes
//! anything), or read another driver's parameters.

use hostdev_api::DraDeviceConfig;
use k8s_openapi::api::resource::v1::DeviceAllocationConfiguration;
use serde::Deserialize;

/// The API version the parameters must carry.
pub const API_VERSION: &str = "hostdev.io/v1alpha1";
/// The kind they must carry.
pub const KIND: &str = "DeviceConfig";
/// The most bytes of parameters read (the API's bound on opaque parameters).
pub const MAX_PARAMETERS: usize = 10 * 1024;

/// Why a claim's parameters are refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Larger than the API allows.
    #[error(
        "opaque parameters {index} for {driver} are {len} bytes; at most {MAX_PARAMETERS} are read"
    )]
    TooLarge {
        /// The entry's place in the allocation's config list.
        index: usize,
        /// This driver.
        driver: String,
        /// Their size.
        len: usize,
    },
    /// Not a `DeviceConfig` of ours (wrong shape, an unknown field, another
    /// version or kind).
    #[error("opaque parameters {index} for {driver} are not a {API_VERSION} {KIND}: {why}")]
    Malformed {
        /// The entry's place.
        index: usize,
        /// This driver.
        driver: String,
        /// What is wrong (serde's sentence names an unknown field).
        why: String,
    },
}

impl ConfigError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            ConfigError::TooLarge { .. } => "dra.config-too-large",
            ConfigError::Malformed { .. } => "dra.config-malformed",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Wire {
    api_version: String,
    kind: String,
    #[serde(default)]
    mac: Option<String>,
    #[serde(default)]
    mtu: Option<u16>,
    #[serde(default)]
    queues: Option<u16>,
}

/// One decoded entry: the requests it names (empty: all) and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The requests (or `request/subrequest`s) it applies to; empty: all.
    pub requests: Vec<String>,
    /// The settings.
    pub config: DraDeviceConfig,
}

/// This driver's entries of an allocation's config list, in order.
pub fn decode(
    driver: &str,
    list: &[DeviceAllocationConfiguration],
) -> Result<Vec<Entry>, ConfigError> {
    let mut out = Vec::new();
    for (index, c) in list.iter().enumerate() {
        let Some(o) = c.opaque.as_ref().filter(|o| o.driver == driver) else {
            continue;
        };
        let raw = serde_json::to_vec(&o.parameters.0).map_err(|e| ConfigError::Malformed {
            index,
            driver: driver.to_string(),
            why: e.to_string(),
        })?;
        if raw.len() > MAX_PARAMETERS {
            return Err(ConfigError::TooLarge {
                index,
                driver: driver.to_string(),
                len: raw.len(),
            });
        }
        let malformed = |why: String| ConfigError::Malformed {
            index,
            driver: driver.to_string(),
            why,
        };
        // serde's sentence names an unknown field: cut, as it is the claim's.
        let w: Wire = serde_json::from_slice(&raw)
            .map_err(|e| malformed(e.to_string().chars().take(200).collect()))?;
        if w.api_version != API_VERSION || w.kind != KIND {
            return Err(malformed(format!(
                "it says apiVersion {:?}, kind {:?}",
                w.api_version.chars().take(64).collect::<String>(),
                w.kind.chars().take(64).collect::<String>()
            )));
        }
        out.push(Entry {
            requests: c.requests.clone().unwrap_or_default(),
            config: DraDeviceConfig {
                mac: w.mac,
                mtu: w.mtu,
                queues: w.queues,
            },
        });
    }
    Ok(out)
}

/// The configuration for allocation result `request` (a request or
/// `request/subrequest`): the last entry that names it, or names nothing.
pub fn for_request(entries: &[Entry], request: &str) -> Option<DraDeviceConfig> {
    let base = crate::names::base_request(request);
    entries
        .iter()
        .rev()
        .find(|e| e.requests.is_empty() || e.requests.iter().any(|r| r == request || r == base))
        .map(|e| e.config.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::resource::v1::OpaqueDeviceConfiguration;
    use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
    use serde_json::json;

    fn entry(
        driver: &str,
        requests: &[&str],
        v: serde_json::Value,
    ) -> DeviceAllocationConfiguration {
        DeviceAllocationConfiguration {
            opaque: Some(OpaqueDeviceConfiguration {
                driver: driver.into(),
                parameters: RawExtension(v),
            }),
            requests: (!requests.is_empty())
                .then(|| requests.iter().map(|r| r.to_string()).collect()),
            source: "FromClaim".into(),
        }
    }

    fn ours(extra: serde_json::Value) -> serde_json::Value {
        let mut v = json!({"apiVersion": API_VERSION, "kind": KIND});
        if let (Some(m), Some(x)) = (v.as_object_mut(), extra.as_object()) {
            m.extend(x.clone());
        }
        v
    }

    #[test]
    fn entries_match_requests_later_over_earlier_and_others_are_skipped() {
        let list = vec![
            entry("hostdev.io", &[], ours(json!({"mtu": 1500}))),
            entry("other.example.com", &[], json!({"anything": [1, 2, 3]})),
            entry(
                "hostdev.io",
                &["nic"],
                ours(json!({"mac": "02:00:00:00:00:01"})),
            ),
        ];
        let e = decode("hostdev.io", &list).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(
            for_request(&e, "nic/fast").unwrap().mac.as_deref(),
            Some("02:00:00:00:00:01")
        );
        assert_eq!(for_request(&e, "gpu").unwrap().mtu, Some(1500));
        assert_eq!(for_request(&[], "gpu"), None);
    }

    #[test]
    fn unknown_fields_other_kinds_and_huge_blobs_are_refused_by_name() {
        let e = decode(
            "hostdev.io",
            &[entry("hostdev.io", &[], ours(json!({"macc": "x"})))],
        )
        .unwrap_err();
        assert_eq!(e.code(), "dra.config-malformed");
        assert!(e.to_string().contains("unknown field `macc`"), "{e}");
        let e = decode(
            "hostdev.io",
            &[entry(
                "hostdev.io",
                &[],
                json!({"apiVersion": "v9", "kind": KIND}),
            )],
        )
        .unwrap_err();
        assert!(e.to_string().contains("\"v9\""), "{e}");
        let e = decode(
            "hostdev.io",
            &[entry("hostdev.io", &[], json!("just a string"))],
        )
        .unwrap_err();
        assert_eq!(e.code(), "dra.config-malformed");
        let blob = ours(json!({"mac": "x".repeat(10 << 20)}));
        let e = decode("hostdev.io", &[entry("hostdev.io", &[], blob)]).unwrap_err();
        assert_eq!(e.code(), "dra.config-too-large");
        assert!(e.to_string().len() < 200, "{e}");
        let e = decode(
            "hostdev.io",
            &[entry("hostdev.io", &[], ours(json!({"mtu": 70000})))],
        )
        .unwrap_err();
        assert_eq!(e.code(), "dra.config-malformed", "{e}");
    }
}
