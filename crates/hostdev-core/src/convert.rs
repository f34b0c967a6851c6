//! The API's shapes of what the kernel crates and the kinds' modules report:
//! vDPA management devices, devices and live configs without the attributes
//! this version does not know, vGPU rows, skipped definition files.
//!
//! Owns: those field-for-field mappings. Must not: decide or read anything.

use hostdev_api::{
    Kind, MgmtDevInfo, Problem, VdpaBlkConfig, VdpaDevice, VdpaLiveConfig, VdpaRow, VgpuRow,
};
use hostdev_store::LoadProblem;
use hostdev_vdpa::{Dev, LiveConfig, MgmtDev};

/// Skipped definition files of one kind.
pub(crate) fn problems(kind: Kind, ps: Vec<LoadProblem>) -> Vec<Problem> {
    ps.into_iter()
        .map(|p| Problem {
            kind,
            path: p.path,
            reason: p.reason,
        })
        .collect()
}

pub(crate) fn mgmtdev(m: MgmtDev) -> MgmtDevInfo {
    MgmtDevInfo {
        name: m.name,
        classes: m.classes,
        max_vqs: m.max_vqs,
        supported_features: m.supported_features,
    }
}

pub(crate) fn device(d: Dev) -> VdpaDevice {
    VdpaDevice {
        name: d.name,
        mgmtdev: d.mgmtdev,
        device_id: d.device_id,
        vendor_id: d.vendor_id,
        max_vqs: d.max_vqs,
        max_vq_size: d.max_vq_size,
        min_vq_size: d.min_vq_size,
    }
}

pub(crate) fn live(l: LiveConfig) -> VdpaLiveConfig {
    VdpaLiveConfig {
        mac: l.mac,
        status: l.status,
        max_vqp: l.max_vqp,
        mtu: l.mtu,
        negotiated_features: l.negotiated_features,
        features: l.features,
        blk: l.blk.map(|b| VdpaBlkConfig {
            capacity: b.capacity,
            size_max: b.size_max,
            blk_size: b.blk_size,
            seg_max: b.seg_max,
            num_queues: b.num_queues,
            read_only: b.read_only,
        }),
    }
}

pub(crate) fn vdpa_row(r: crate::vdpa::VdpaRow) -> VdpaRow {
    let (name, d, def) = r;
    VdpaRow {
        name,
        device: d.map(device),
        definition: def,
    }
}

pub(crate) fn vgpu_row(r: crate::vgpu::VgpuRow) -> VgpuRow {
    VgpuRow {
        vf: r.vf,
        pf: r.pf,
        current: r.current,
        definition: r.def,
    }
}
