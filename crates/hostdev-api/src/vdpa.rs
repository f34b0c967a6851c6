//! vDPA devices (virtio NICs and disks over the kernel's vdpa netlink
//! family): management devices, transient devices, definitions, exports,
//! and the libvirt element.
//!
//! Owns: serde shapes only, including what the kernel reports about
//! management devices and devices (as the core read it; attributes this
//! version does not know are not carried). Must not: talk netlink
//! (hostdev-vdpa does) or decide (hostdev-core's `Vdpas` does).

use crate::ops::{op, Done};
use crate::report::Problem;
use crate::vgpu::LibvirtElement;
use crate::Target;
use hostdev_model::vdpa::{
    CreateConfig, MgmtDevName, VdpaDefinition, VdpaEdit, VdpaExport, VdpaName,
};
use hostdev_model::StartPolicy;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Every management device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MgmtDevQuery {}

/// A management device as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MgmtDevInfo {
    /// Its name.
    pub name: MgmtDevName,
    /// Device classes it makes, as virtio ids (1 net, 2 block).
    pub classes: Vec<u32>,
    /// Most virtqueues a device of it can have.
    pub max_vqs: Option<u32>,
    /// Feature bits a device of it can offer.
    pub supported_features: Option<u64>,
}

/// A device as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VdpaDevice {
    /// Its name.
    pub name: String,
    /// Its management device.
    pub mgmtdev: MgmtDevName,
    /// virtio device id (1 net, 2 block).
    pub device_id: Option<u32>,
    /// Vendor id.
    pub vendor_id: Option<u32>,
    /// Most virtqueues.
    pub max_vqs: Option<u32>,
    /// Largest virtqueue size.
    pub max_vq_size: Option<u16>,
    /// Smallest virtqueue size.
    pub min_vq_size: Option<u16>,
}

/// A device's live config space (it changes as a driver negotiates).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VdpaLiveConfig {
    /// MAC.
    pub mac: Option<String>,
    /// Link status bits.
    pub status: Option<u16>,
    /// Virtqueue pairs.
    pub max_vqp: Option<u16>,
    /// MTU.
    pub mtu: Option<u16>,
    /// Negotiated features.
    pub negotiated_features: Option<u64>,
    /// Device features (kernels 6.1+).
    pub features: Option<u64>,
    /// A block device's config (kernels 6.9+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blk: Option<VdpaBlkConfig>,
}

/// virtio-blk config space.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VdpaBlkConfig {
    /// Capacity in 512-byte sectors.
    pub capacity: Option<u64>,
    /// Largest segment.
    pub size_max: Option<u32>,
    /// Block size.
    pub blk_size: Option<u32>,
    /// Most segments.
    pub seg_max: Option<u32>,
    /// Queues.
    pub num_queues: Option<u16>,
    /// Read-only.
    pub read_only: Option<bool>,
}

/// Create a device now, without a definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VdpaAddRequest {
    /// Its name.
    pub name: VdpaName,
    /// The management device that makes it.
    pub mgmtdev: MgmtDevName,
    /// What it is created with.
    #[serde(default)]
    pub config: CreateConfig,
}

/// Delete a device (`del`; its definition, if any, stays).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VdpaDelRequest {
    /// The device.
    pub name: VdpaName,
}

/// Store a definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VdpaDefineRequest {
    /// The definition.
    pub definition: VdpaDefinition,
}

/// Remove a definition (the device, if any, stays).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VdpaUndefineRequest {
    /// The device.
    pub name: VdpaName,
}

/// Change a definition: options given replace the stored ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VdpaModifyRequest {
    /// The device.
    pub name: VdpaName,
    /// The change.
    pub edit: VdpaEdit,
}

/// Create a defined device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VdpaStartRequest {
    /// The device.
    pub name: VdpaName,
}

/// Delete a defined device (the definition stays).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VdpaStopRequest {
    /// The device.
    pub name: VdpaName,
}

/// Devices and definitions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VdpaListQuery {
    /// Definitions only (this needs no vdpa module).
    #[serde(default)]
    pub defined: bool,
}

/// One device or definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VdpaRow {
    /// Its name.
    pub name: VdpaName,
    /// The device, when it exists.
    pub device: Option<VdpaDevice>,
    /// Its definition, when it has one.
    pub definition: Option<VdpaDefinition>,
}

impl VdpaRow {
    /// The management device it is (or would be) on.
    pub fn mgmtdev(&self) -> Option<&MgmtDevName> {
        self.device
            .as_ref()
            .map(|d| &d.mgmtdev)
            .or(self.definition.as_ref().map(|d| &d.mgmtdev))
    }

    /// Its start policy; `None` for a device nobody defined.
    pub fn start(&self) -> Option<StartPolicy> {
        self.definition.as_ref().map(|d| d.start)
    }
}

/// What `vdpa list` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VdpaListing {
    /// By name.
    pub rows: Vec<VdpaRow>,
    /// Definition files that were skipped.
    pub problems: Vec<Problem>,
}

/// One device, whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VdpaShowQuery {
    /// The device.
    pub name: VdpaName,
}

/// Creation config, live config, limits, vhost device and driver.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VdpaShow {
    /// Its definition.
    pub definition: Option<VdpaDefinition>,
    /// The device, when it exists.
    pub device: Option<VdpaDevice>,
    /// Its live config.
    pub live: Option<VdpaLiveConfig>,
    /// `/dev/vhost-vdpa-N`, when bound to vhost_vdpa.
    pub vhost_dev: Option<String>,
    /// The bound driver.
    pub driver: Option<String>,
}

/// A self-contained spec of what to recreate elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VdpaExportRequest {
    /// The device (defined, or only running).
    pub name: VdpaName,
}

/// Recreate an export here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VdpaImportRequest {
    /// The export, as `vdpa export` wrote it.
    pub export: VdpaExport,
    /// Under another name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<VdpaName>,
    /// Store a definition.
    #[serde(default)]
    pub define: bool,
    /// Create it now.
    #[serde(default)]
    pub start: bool,
}

/// A device's libvirt `<interface type='vdpa'>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VdpaLibvirtQuery {
    /// The device.
    pub name: VdpaName,
}

op!(MgmtDevQuery => Vec<MgmtDevInfo>, Get, "/v1/vdpa/mgmtdevs", "Every vDPA management device.");
op!(VdpaAddRequest => Done, Post, "/v1/vdpa/add", "Create a vDPA device now, without a definition.",
    concerns = |r| Some(Target::Vdpa { name: r.name.clone() }.into()));
op!(VdpaDelRequest => Done, Post, "/v1/vdpa/del", "Delete a vDPA device (its definition stays).",
    concerns = |r| Some(Target::Vdpa { name: r.name.clone() }.into()));
op!(VdpaDefineRequest => Done, Post, "/v1/vdpa/define", "Store a vDPA definition.",
    concerns = |r| Some(Target::Vdpa { name: r.definition.name.clone() }.into()));
op!(VdpaUndefineRequest => Done, Post, "/v1/vdpa/undefine", "Remove a vDPA definition (the device stays).",
    concerns = |r| Some(Target::Vdpa { name: r.name.clone() }.into()));
op!(VdpaModifyRequest => VdpaDefinition, Post, "/v1/vdpa/modify", "Change a vDPA definition; options given replace stored ones.",
    concerns = |r| Some(Target::Vdpa { name: r.name.clone() }.into()));
op!(VdpaStartRequest => Done, Post, "/v1/vdpa/start", "Create a defined vDPA device.",
    concerns = |r| Some(Target::Vdpa { name: r.name.clone() }.into()));
op!(VdpaStopRequest => Done, Post, "/v1/vdpa/stop", "Delete a defined vDPA device (the definition stays).",
    concerns = |r| Some(Target::Vdpa { name: r.name.clone() }.into()));
op!(VdpaListQuery => VdpaListing, Get, "/v1/vdpa/devices", "vDPA devices and definitions.");
op!(VdpaShowQuery => VdpaShow, Get, "/v1/vdpa/show", "One vDPA device: creation and live config, limits, vhost device, driver.",
    concerns = |r| Some(Target::Vdpa { name: r.name.clone() }.into()));
op!(VdpaExportRequest => VdpaExport, Get, "/v1/vdpa/export", "A self-contained spec of what to recreate elsewhere.",
    concerns = |r| Some(Target::Vdpa { name: r.name.clone() }.into()));
op!(VdpaImportRequest => VdpaDefinition, Post, "/v1/vdpa/import", "Recreate an export: define it, create it, or both.",
    concerns = |r| Some(Target::Vdpa { name: r.name.clone().unwrap_or_else(|| r.export.device.name.clone()) }.into()));
op!(VdpaLibvirtQuery => LibvirtElement, Get, "/v1/vdpa/libvirt", "A vDPA device's libvirt <interface type='vdpa'>.",
    concerns = |r| Some(Target::Vdpa { name: r.name.clone() }.into()));
