//! What a device answers when opened the way QEMU opens it (VFIO): its
//! device API, regions, interrupts, whether it offers a display and how, and
//! whether its state can migrate.
//!
//! Owns: the vocabulary of a probe's answer and its words. Must not: open
//! anything (hostdev-vfio does).

use serde::{Deserialize, Serialize};

/// A device's answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// `vfio-pci`, `vfio-ccw`, `vfio-ap`, `vfio-platform`, … (from the
    /// device's flags).
    pub device_api: String,
    /// The device can be reset (VFIO_DEVICE_FLAGS_RESET).
    pub reset: bool,
    /// Every region the device reports, empty ones included.
    pub regions: Vec<Region>,
    /// Every interrupt index the device reports.
    pub irqs: Vec<Irq>,
    /// The display it offers.
    pub display: Display,
    /// Its migration support; `None`: the device has none.
    pub migration: Option<Migration>,
}

/// One region (BAR, config space, VGA, or a device-specific one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Region {
    /// Its index.
    pub index: u32,
    /// Size in bytes (0: not present).
    pub size: u64,
    /// Readable.
    pub read: bool,
    /// Writable.
    pub write: bool,
    /// Can be mapped.
    pub mmap: bool,
}

/// One interrupt index (INTx, MSI, MSI-X, error, request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Irq {
    /// Its index.
    pub index: u32,
    /// How many vectors (0: not present).
    pub count: u32,
    /// Signalled through an eventfd.
    pub eventfd: bool,
}

/// How a device offers its display to QEMU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Display {
    /// No display (VFIO_DEVICE_QUERY_GFX_PLANE refuses both kinds).
    None,
    /// A framebuffer region QEMU reads (mdpy, NVIDIA): works without OpenGL.
    Region,
    /// dma-buf planes (mbochs, i915 GVT-g): QEMU needs OpenGL (egl-headless
    /// or a GL-capable display) to show them.
    DmaBuf,
}

impl Display {
    /// The word shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Display::None => "none",
            Display::Region => "region",
            Display::DmaBuf => "dma-buf",
        }
    }

    /// Whether QEMU needs OpenGL to show it.
    pub fn needs_opengl(self) -> bool {
        self == Display::DmaBuf
    }
}

/// The VFIO migration v2 flags a device reports (VFIO_DEVICE_FEATURE_MIGRATION).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migration {
    /// STOP_COPY: state saved with the device stopped (the base protocol).
    pub stop_copy: bool,
    /// P2P: a RUNNING_P2P state for peer-to-peer quiescing.
    pub p2p: bool,
    /// PRE_COPY: state sent while the device still runs.
    pub pre_copy: bool,
}

impl Migration {
    /// The flags as words, `stop-copy p2p pre-copy` (those set).
    pub fn words(&self) -> Vec<&'static str> {
        [
            (self.stop_copy, "stop-copy"),
            (self.p2p, "p2p"),
            (self.pre_copy, "pre-copy"),
        ]
        .into_iter()
        .filter_map(|(on, w)| on.then_some(w))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_stable() {
        assert_eq!(
            serde_json::to_string(&Display::DmaBuf).unwrap_or_default(),
            "\"dma-buf\""
        );
        assert!(Display::DmaBuf.needs_opengl() && !Display::Region.needs_opengl());
        let m = Migration {
            stop_copy: true,
            p2p: false,
            pre_copy: true,
        };
        assert_eq!(m.words(), ["stop-copy", "pre-copy"]);
    }
}
