//! CDI specs (the CNCF Container Device Interface JSON the container
//! runtime reads from its spec directory) for a prepared claim: one file
//! per claim with kind `<driver>/device` and one CDI device per prepared
//! device (its device nodes, and an environment variable naming what was
//! made), and one file per claim with kind `<driver>/metadata` whose
//! devices bind-mount each request's device metadata file (see
//! [`crate::metadata`]) read-only into the container.
//!
//! Owns: the spec shapes, their file names and CDI device ids. Must not:
//! decide what a device is (hostdevd's prepare answer says), or write
//! anything under a name not built from checked parts.

use crate::files;
use hostdev_api::{DraPreparedDevice, Kind};
use serde::Serialize;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// The CDI spec version written: the oldest that has every field used
/// (device nodes, mounts, environment: 0.3.0 had them all; 0.6.0 is
/// what the runtimes of Kubernetes 1.37 read by default and still older
/// than every field's introduction).
pub const CDI_VERSION: &str = "0.6.0";

/// A CDI spec file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// The spec version.
    pub cdi_version: String,
    /// `vendor/class`.
    pub kind: String,
    /// The devices.
    pub devices: Vec<Device>,
}

/// One CDI device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    /// Its name, unique for the kind.
    pub name: String,
    /// What the runtime does to a container that gets it.
    pub container_edits: Edits,
}

/// Container edits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Edits {
    /// `NAME=VALUE`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// Device nodes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub device_nodes: Vec<DeviceNode>,
    /// Bind mounts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
}

/// A device node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceNode {
    /// In the container.
    pub path: String,
    /// On the host.
    pub host_path: String,
}

/// A mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Mount {
    /// On the host.
    pub host_path: String,
    /// In the container.
    pub container_path: String,
    /// Mount options.
    pub options: Vec<String>,
}

/// Why a CDI spec could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum CdiError {
    /// Writing or removing the spec failed.
    #[error("cannot write the CDI spec {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why (the chain's next cause; the message does not repeat it).
        #[source]
        source: std::io::Error,
    },
}

impl CdiError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            CdiError::Write { .. } => "dra.cdi-write",
        }
    }
}

/// The CDI kind of a driver's devices.
pub fn device_kind(driver: &str) -> String {
    format!("{driver}/device")
}

/// The file of a claim's device spec.
pub fn device_spec_path(cdi_dir: &Path, driver: &str, uid: &str) -> PathBuf {
    cdi_dir.join(format!("{driver}_{uid}.json"))
}

/// The environment variable naming what a device is (`HOSTDEV_MDEV_GPU`
/// for request `gpu`, an mdev: its UUID). Where several devices of a claim
/// would share it, each has its own with `_<n>` (0, 1, … in the claim's
/// order) added, and the first also keeps the plain name.
fn env_name(kind: Kind, request: &str) -> String {
    let kind = match kind {
        Kind::Mdev => "MDEV",
        Kind::Vgpu => "VGPU",
        Kind::Vdpa => "VDPA",
    };
    let req: String = request
        .chars()
        .map(|c| match c {
            'a'..='z' => c.to_ascii_uppercase(),
            '0'..='9' => c,
            _ => '_',
        })
        .collect();
    format!("HOSTDEV_{kind}_{req}")
}

/// Whether `p` is a character device.
fn is_char_device(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.file_type().is_char_device())
}

/// The device spec for a claim's prepared devices and each device's CDI
/// id, in the devices' order. A device node whose host path is the
/// container path (a real host) is injected as hostdevd answered it:
/// hostdevd, on the host, checked that it is a character device there
/// (this driver, in its container, does not see the host's `/dev`). One
/// under a root prefix (a simulated host, whose sysfs is a FUSE mount and
/// has no `/dev`) that does not exist is left out, and the node's path is
/// named in the environment instead so a workload sees what it would have
/// got.
pub fn device_spec(driver: &str, uid: &str, devices: &[DraPreparedDevice]) -> (Spec, Vec<String>) {
    let kind = device_kind(driver);
    let mut out = Vec::new();
    let mut ids = Vec::new();
    // Devices whose variable would be the same (a request with several
    // devices, or request names equal once made shell names): a container
    // given them all would see only the last one's value.
    let bases: Vec<String> = devices
        .iter()
        .map(|d| env_name(d.kind, &d.request))
        .collect();
    // Every plain name is reserved for its own devices; a suffixed one
    // skips any name already taken, plain or suffixed (request `gpu`'s
    // second device is never `gpu-0`'s variable).
    let mut taken: std::collections::BTreeSet<String> = bases.iter().cloned().collect();
    let mut first: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    let mut next: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for (d, base) in devices.iter().zip(&bases) {
        let name = format!("{uid}_{}", d.device);
        let shared = bases.iter().filter(|b| *b == base).count() > 1;
        let mut edits = Edits::default();
        let own = if shared {
            // The first keeps the plain name (what a one-device request has).
            if first.insert(base.as_str()) {
                edits.env.push(format!("{base}={}", d.id));
            }
            let n = next.entry(base.as_str()).or_default();
            let own = loop {
                let candidate = format!("{base}_{n}");
                *n += 1;
                if taken.insert(candidate.clone()) {
                    break candidate;
                }
            };
            own
        } else {
            base.clone()
        };
        edits.env.push(format!("{own}={}", d.id));
        let mut simulated = Vec::new();
        for n in &d.nodes {
            if n.host_path == n.path || is_char_device(Path::new(&n.host_path)) {
                edits.device_nodes.push(DeviceNode {
                    path: n.path.clone(),
                    host_path: n.host_path.clone(),
                });
            } else {
                simulated.push(n.path.clone());
            }
        }
        if !simulated.is_empty() {
            edits
                .env
                .push(format!("{own}_SIMULATED_NODES={}", simulated.join(",")));
        }
        ids.push(format!("{kind}={name}"));
        out.push(Device {
            name,
            container_edits: edits,
        });
    }
    (
        Spec {
            cdi_version: CDI_VERSION.into(),
            kind,
            devices: out,
        },
        ids,
    )
}

/// Writes a spec to `path` atomically.
pub fn write(path: &Path, spec: &Spec) -> Result<(), CdiError> {
    let write_error = |source| CdiError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = serde_json::to_vec_pretty(spec).map_err(|e| write_error(e.into()))?;
    bytes.push(b'\n');
    files::write_atomic(path, &bytes).map_err(write_error)
}

/// Removes a spec file (gone already is fine).
pub fn remove(path: &Path) -> Result<(), CdiError> {
    files::remove(path).map_err(|source| CdiError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostdev_api::{DraNode, DraValue};
    use std::collections::BTreeMap;

    fn dev(host_prefix: &str) -> DraPreparedDevice {
        DraPreparedDevice {
            request: "gpu".into(),
            device: "mdev-0000-3b-00-0-nvidia-222-0".into(),
            kind: Kind::Mdev,
            id: "6d2c0bde-4a51-4e4c-9b3b-1f3d8b0e2a10".into(),
            nodes: vec![DraNode {
                path: "/dev/null".into(),
                host_path: format!("{host_prefix}/dev/null"),
            }],
            metadata: BTreeMap::from([(
                "mdevUUID".into(),
                DraValue::String("6d2c0bde-4a51-4e4c-9b3b-1f3d8b0e2a10".into()),
            )]),
        }
    }

    #[test]
    fn a_real_node_is_injected_and_named_by_its_cdi_id() {
        let uid = "0b0c6a4e-7d7e-4f43-9c55-3d8a5d2f1e10";
        let (spec, ids) = device_spec("hostdev.io", uid, &[dev("")]);
        assert_eq!(
            ids,
            vec![format!(
                "hostdev.io/device={uid}_mdev-0000-3b-00-0-nvidia-222-0"
            )]
        );
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["cdiVersion"], "0.6.0");
        assert_eq!(json["kind"], "hostdev.io/device");
        let edits = &json["devices"][0]["containerEdits"];
        assert_eq!(edits["deviceNodes"][0]["path"], "/dev/null");
        assert_eq!(edits["deviceNodes"][0]["hostPath"], "/dev/null");
        assert_eq!(
            edits["env"][0],
            "HOSTDEV_MDEV_GPU=6d2c0bde-4a51-4e4c-9b3b-1f3d8b0e2a10"
        );
    }

    #[test]
    fn a_real_hosts_node_is_taken_as_hostdevd_checked_it_and_a_simulated_missing_one_is_named() {
        // The driver's container does not see the host's /dev (the
        // DaemonSet mounts none): hostdevd checked the node on the host.
        let mut d = dev("");
        d.nodes[0].path = "/dev/vfio/no-such-group".into();
        d.nodes[0].host_path = "/dev/vfio/no-such-group".into();
        let (spec, _) = device_spec("hostdev.io", "u", &[d]);
        let e = &spec.devices[0].container_edits;
        assert_eq!(e.device_nodes[0].host_path, "/dev/vfio/no-such-group");
        let mut d = dev("/tmp/sim-root-that-does-not-exist");
        d.nodes[0].path = "/dev/vfio/7".into();
        d.nodes[0].host_path = "/tmp/sim-root-that-does-not-exist/dev/vfio/7".into();
        let (spec, _) = device_spec("hostdev.io", "u", &[d]);
        let e = &spec.devices[0].container_edits;
        assert!(e.device_nodes.is_empty());
        assert_eq!(e.env[1], "HOSTDEV_MDEV_GPU_SIMULATED_NODES=/dev/vfio/7");
    }

    #[test]
    fn devices_that_would_share_a_variable_each_get_their_own() {
        // Two devices of one request, and a request whose shell name is
        // another's: every variable is set once in the claim's spec.
        let mut a = dev("");
        a.id = "id-a".into();
        let mut b = dev("");
        b.id = "id-b".into();
        b.device = "mdev-b".into();
        let mut c = dev("");
        c.id = "id-c".into();
        c.device = "mdev-c".into();
        c.request = "gpu".into();
        let mut other = dev("");
        other.request = "net-a".into();
        other.device = "mdev-d".into();
        other.id = "id-d".into();
        let mut clash = dev("");
        clash.request = "net_a".into();
        clash.device = "mdev-e".into();
        clash.id = "id-e".into();
        let mut zero = dev("");
        zero.request = "gpu-0".into();
        zero.device = "mdev-f".into();
        zero.id = "id-f".into();
        let (spec, _) = device_spec("hostdev.io", "u", &[a, b, c, other, clash, zero]);
        let env: Vec<&str> = spec
            .devices
            .iter()
            .flat_map(|d| d.container_edits.env.iter().map(String::as_str))
            .collect();
        assert_eq!(
            env,
            [
                // `gpu-0`'s own variable is HOSTDEV_MDEV_GPU_0: request
                // `gpu`'s devices skip it.
                "HOSTDEV_MDEV_GPU=id-a",
                "HOSTDEV_MDEV_GPU_1=id-a",
                "HOSTDEV_MDEV_GPU_2=id-b",
                "HOSTDEV_MDEV_GPU_3=id-c",
                "HOSTDEV_MDEV_NET_A=id-d",
                "HOSTDEV_MDEV_NET_A_0=id-d",
                "HOSTDEV_MDEV_NET_A_1=id-e",
                "HOSTDEV_MDEV_GPU_0=id-f",
            ]
        );
        let names: std::collections::BTreeSet<&str> = env
            .iter()
            .map(|e| e.split('=').next().unwrap_or(""))
            .collect();
        assert_eq!(names.len(), env.len(), "no variable is set twice");
    }

    #[test]
    fn env_names_are_shell_names() {
        assert_eq!(
            env_name(Kind::Vgpu, "gpu/small-1"),
            "HOSTDEV_VGPU_GPU_SMALL_1"
        );
    }
}
