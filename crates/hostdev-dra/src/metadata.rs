//! Device metadata files (KEP-5304), as Kubernetes' Go helper
//! `k8s.io/dynamic-resource-allocation/kubeletplugin` writes them: per
//! prepared claim and request, a file under the plugin's data directory
//! (`<plugin dir>/dra-device-metadata/<claim UID>/<request>/metadata.json`)
//! holding one `DeviceMetadata` object per API version
//! (`metadata.resource.k8s.io/v1beta1`, then `v1alpha1` for readers that
//! only know that one — a reader takes the first it knows), bind-mounted
//! read-only by a CDI device of kind `<driver>/metadata` at
//! `/var/run/kubernetes.io/dra-device-attributes/resourceclaims/<claim>/<request>/<driver>-metadata.json`
//! (`resourceclaimtemplates/<pod claim name>/…` for a claim made from a
//! template, named by the claim's `resource.kubernetes.io/pod-claim-name`
//! annotation). KubeVirt's virt-launcher reads `mdevUUID` and
//! `resource.kubernetes.io/pciBusID` from it.
//!
//! Owns: the file's shape and places, the metadata CDI spec. Must not:
//! choose the attributes (hostdevd's prepare answer carries them).

use crate::cdi::{self, CdiError, Device, Edits, Mount, Spec};
use crate::files;
use crate::names::base_request;
use hostdev_api::{DraPreparedDevice, DraValue};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where metadata appears in a container.
pub const CONTAINER_DIR: &str = "/var/run/kubernetes.io/dra-device-attributes";

/// The versions written, in order (newest first).
pub const VERSIONS: [&str; 2] = [
    "metadata.resource.k8s.io/v1beta1",
    "metadata.resource.k8s.io/v1alpha1",
];

/// The claim a metadata file is for.
#[derive(Debug, Clone)]
pub struct ClaimRef {
    /// Namespace (checked: a DNS label).
    pub namespace: String,
    /// Name (checked: a DNS subdomain).
    pub name: String,
    /// UID (checked).
    pub uid: String,
    /// The pod's name for the claim when a template made it (checked).
    pub pod_claim_name: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeviceMetadata<'a> {
    api_version: &'a str,
    kind: &'static str,
    metadata: ObjectMeta<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pod_claim_name: Option<&'a str>,
    requests: Vec<Request<'a>>,
}

#[derive(Serialize)]
struct ObjectMeta<'a> {
    name: &'a str,
    namespace: &'a str,
    uid: &'a str,
    generation: i64,
}

#[derive(Serialize)]
struct Request<'a> {
    name: &'a str,
    devices: Vec<MetaDevice<'a>>,
}

#[derive(Serialize)]
struct MetaDevice<'a> {
    driver: &'a str,
    pool: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    attributes: &'a BTreeMap<String, DraValue>,
}

/// The directory of one claim's metadata files, named by the claim's UID:
/// a claim deleted and made again under its name is another claim, whose
/// files the old one's late unprepare must not remove (and a namespace and
/// name together can be longer than a file name may be).
pub fn claim_dir(plugin_dir: &Path, claim: &ClaimRef) -> PathBuf {
    plugin_dir.join("dra-device-metadata").join(&claim.uid)
}

/// The metadata CDI spec file of a claim.
pub fn spec_path(cdi_dir: &Path, driver: &str, uid: &str) -> PathBuf {
    cdi_dir.join(format!("{driver}_metadata_{uid}.json"))
}

/// The file's path inside the container.
pub fn container_path(driver: &str, claim: &ClaimRef, request: &str) -> String {
    let (sub, name) = match &claim.pod_claim_name {
        Some(p) if !p.is_empty() => ("resourceclaimtemplates", p.as_str()),
        _ => ("resourceclaims", claim.name.as_str()),
    };
    format!("{CONTAINER_DIR}/{sub}/{name}/{request}/{driver}-metadata.json")
}

/// The file's bytes for one request: one object per version, each on its
/// own line.
pub fn encode(
    driver: &str,
    pool: &str,
    claim: &ClaimRef,
    request: &str,
    devices: &[&DraPreparedDevice],
) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::new();
    for v in VERSIONS {
        let m = DeviceMetadata {
            api_version: v,
            kind: "DeviceMetadata",
            metadata: ObjectMeta {
                name: &claim.name,
                namespace: &claim.namespace,
                uid: &claim.uid,
                generation: 1,
            },
            pod_claim_name: claim.pod_claim_name.as_deref(),
            requests: vec![Request {
                name: request,
                devices: devices
                    .iter()
                    .map(|d| MetaDevice {
                        driver,
                        pool,
                        name: &d.device,
                        attributes: &d.metadata,
                    })
                    .collect(),
            }],
        };
        out.extend(serde_json::to_vec(&m)?);
        out.push(b'\n');
    }
    Ok(out)
}

/// Writes every request's metadata file and the claim's metadata CDI spec;
/// returns, per base request name, the CDI id to add to its first device.
pub fn write(
    driver: &str,
    pool: &str,
    plugin_dir: &Path,
    cdi_dir: &Path,
    claim: &ClaimRef,
    devices: &[DraPreparedDevice],
) -> Result<BTreeMap<String, String>, CdiError> {
    let mut by_request: BTreeMap<&str, Vec<&DraPreparedDevice>> = BTreeMap::new();
    for d in devices {
        by_request
            .entry(base_request(&d.request))
            .or_default()
            .push(d);
    }
    let dir = claim_dir(plugin_dir, claim);
    let kind = format!("{driver}/metadata");
    let mut spec = Spec {
        cdi_version: cdi::CDI_VERSION.into(),
        kind: kind.clone(),
        devices: Vec::new(),
    };
    let mut ids = BTreeMap::new();
    for (request, devs) in &by_request {
        let file = dir.join(request).join("metadata.json");
        let write_error = |source| CdiError::Write {
            path: file.clone(),
            source,
        };
        let bytes =
            encode(driver, pool, claim, request, devs).map_err(|e| write_error(e.into()))?;
        files::write_atomic(&file, &bytes).map_err(write_error)?;
        let name = format!("{}_{request}", claim.uid);
        spec.devices.push(Device {
            name: name.clone(),
            container_edits: Edits {
                mounts: vec![Mount {
                    host_path: file.to_string_lossy().into_owned(),
                    container_path: container_path(driver, claim, request),
                    options: vec!["ro".into(), "bind".into()],
                }],
                ..Edits::default()
            },
        });
        ids.insert((*request).to_string(), format!("{kind}={name}"));
    }
    cdi::write(&spec_path(cdi_dir, driver, &claim.uid), &spec)?;
    Ok(ids)
}

/// Removes a claim's metadata files and spec.
pub fn remove(
    driver: &str,
    plugin_dir: &Path,
    cdi_dir: &Path,
    claim: &ClaimRef,
) -> Result<(), CdiError> {
    cdi::remove(&spec_path(cdi_dir, driver, &claim.uid))?;
    let dir = claim_dir(plugin_dir, claim);
    files::remove_dir(&dir).map_err(|source| CdiError::Write { path: dir, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostdev_api::Kind;

    fn claim(template: Option<&str>) -> ClaimRef {
        ClaimRef {
            namespace: "vms".into(),
            name: "vm-1-gpu-x7k2".into(),
            uid: "0b0c6a4e-7d7e-4f43-9c55-3d8a5d2f1e10".into(),
            pod_claim_name: template.map(Into::into),
        }
    }

    #[test]
    fn the_file_carries_mdev_uuid_unqualified_in_both_versions() {
        let d = DraPreparedDevice {
            request: "gpu".into(),
            device: "mdev-a".into(),
            kind: Kind::Mdev,
            id: "6d2c0bde-4a51-4e4c-9b3b-1f3d8b0e2a10".into(),
            nodes: vec![],
            metadata: BTreeMap::from([(
                "mdevUUID".into(),
                DraValue::String("6d2c0bde-4a51-4e4c-9b3b-1f3d8b0e2a10".into()),
            )]),
        };
        let bytes = encode("hostdev.io", "node-1", &claim(None), "gpu", &[&d]).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["apiVersion"], "metadata.resource.k8s.io/v1beta1");
        assert_eq!(lines[1]["apiVersion"], "metadata.resource.k8s.io/v1alpha1");
        for l in &lines {
            assert_eq!(l["kind"], "DeviceMetadata");
            assert_eq!(l["metadata"]["uid"], "0b0c6a4e-7d7e-4f43-9c55-3d8a5d2f1e10");
            let dev = &l["requests"][0]["devices"][0];
            assert_eq!(l["requests"][0]["name"], "gpu");
            assert_eq!(
                (dev["driver"].as_str(), dev["pool"].as_str()),
                (Some("hostdev.io"), Some("node-1"))
            );
            assert_eq!(
                dev["attributes"]["mdevUUID"]["string"],
                "6d2c0bde-4a51-4e4c-9b3b-1f3d8b0e2a10"
            );
        }
    }

    #[test]
    fn container_paths_follow_the_claims_origin() {
        assert_eq!(
            container_path("hostdev.io", &claim(None), "gpu"),
            "/var/run/kubernetes.io/dra-device-attributes/resourceclaims/vm-1-gpu-x7k2/gpu/hostdev.io-metadata.json"
        );
        assert_eq!(
            container_path("hostdev.io", &claim(Some("gpu-claim")), "gpu"),
            "/var/run/kubernetes.io/dra-device-attributes/resourceclaimtemplates/gpu-claim/gpu/hostdev.io-metadata.json"
        );
    }

    #[test]
    fn write_then_remove_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let (plugin, cdi_dir) = (d.path().join("plugin"), d.path().join("cdi"));
        let dev = DraPreparedDevice {
            request: "gpu/small".into(),
            device: "vf-a".into(),
            kind: Kind::Vgpu,
            id: "0000:3b:00.4".into(),
            nodes: vec![],
            metadata: BTreeMap::new(),
        };
        let ids = write("hostdev.io", "n", &plugin, &cdi_dir, &claim(None), &[dev]).unwrap();
        assert_eq!(
            ids["gpu"],
            "hostdev.io/metadata=0b0c6a4e-7d7e-4f43-9c55-3d8a5d2f1e10_gpu"
        );
        assert!(claim_dir(&plugin, &claim(None))
            .join("gpu/metadata.json")
            .is_file());
        remove("hostdev.io", &plugin, &cdi_dir, &claim(None)).unwrap();
        assert!(!claim_dir(&plugin, &claim(None)).exists());
        assert_eq!(std::fs::read_dir(&cdi_dir).unwrap().count(), 0);
        remove("hostdev.io", &plugin, &cdi_dir, &claim(None)).unwrap();
    }

    #[test]
    fn a_late_unprepare_of_a_claim_leaves_the_files_of_its_namesake() {
        // Before: the directory was namespace_name, so the old claim's
        // unprepare (the kubelet retries it) removed the new claim's files.
        let d = tempfile::tempdir().unwrap();
        let (plugin, cdi_dir) = (d.path().join("plugin"), d.path().join("cdi"));
        let dev = DraPreparedDevice {
            request: "gpu".into(),
            device: "vf-a".into(),
            kind: Kind::Vgpu,
            id: "0000:3b:00.4".into(),
            nodes: vec![],
            metadata: BTreeMap::new(),
        };
        let old = claim(None);
        let mut new = claim(None);
        new.uid = "6f0e7a1c-1b2d-4c3e-8f4a-5b6c7d8e9f00".into();
        write("hostdev.io", "n", &plugin, &cdi_dir, &new, &[dev]).unwrap();
        remove("hostdev.io", &plugin, &cdi_dir, &old).unwrap();
        assert!(claim_dir(&plugin, &new).join("gpu/metadata.json").is_file());
    }
}
