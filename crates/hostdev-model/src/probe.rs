//! What a device answers when opened the way QEMU opens it (VFIO): its
//! device API, regions, interrupts, whether it offers a display and how, and
//! whether its state can migrate.
//!
//! Owns: the vocabulary of a probe's answer and its words. Must not: open
//! anything (hostdev-vfio does).

use serde::{Deserialize, Serialize};

/// A device's answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
    /// The device accepts DMA logging (VFIO_DEVICE_FEATURE_DMA_LOGGING
    /// start and stop) — a claim, not proof: mtty's are stubs, and QEMU 10
    /// still fails at ram_save_setup on it without migration forced on.
    #[serde(default)]
    pub dma_logging: bool,
}

/// One region (BAR, config space, VGA, or a device-specific one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Irq {
    /// Its index.
    pub index: u32,
    /// How many vectors (0: not present).
    pub count: u32,
    /// Signalled through an eventfd.
    pub eventfd: bool,
}

/// How a device offers its display to QEMU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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

/// What a probe's answer depends on besides the type: the vendor driver,
/// its module's version, and the kernel. A cached answer holds only while
/// all of these read the same.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DriverIdentity {
    /// The device's driver (`driver` link).
    pub driver: Option<String>,
    /// The driver's module (`driver/module` link).
    pub module: Option<String>,
    /// The module's `version`, where it declares one.
    pub version: Option<String>,
    /// The module's `srcversion` (a hash of its source).
    pub srcversion: Option<String>,
    /// The kernel release (`/proc/sys/kernel/osrelease`).
    pub kernel: Option<String>,
}

/// One cached answer: a type on a parent, under one driver identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CachedProbe {
    /// The parent.
    pub parent: String,
    /// The type id.
    #[serde(rename = "type")]
    pub type_id: String,
    /// Driver, module versions and kernel when it was probed.
    pub identity: DriverIdentity,
    /// The answer.
    pub probe: Probe,
    /// Unix seconds when it was probed.
    pub at: i64,
}

/// Every cached answer (`/var/lib/hostdev/probe-cache.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProbeCache {
    /// One per (parent, type); a new identity replaces the old answer.
    pub entries: Vec<CachedProbe>,
}

impl ProbeCache {
    /// The answer for `type_id` on `parent` if it was taken under `identity`.
    pub fn get(
        &self,
        parent: &str,
        type_id: &str,
        identity: &DriverIdentity,
    ) -> Option<&CachedProbe> {
        self.entries
            .iter()
            .find(|e| e.parent == parent && e.type_id == type_id && &e.identity == identity)
    }

    /// Records an answer, replacing any for the same parent and type.
    pub fn put(&mut self, e: CachedProbe) {
        self.entries
            .retain(|o| !(o.parent == e.parent && o.type_id == e.type_id));
        self.entries.push(e);
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

    #[test]
    fn a_cached_answer_holds_only_for_the_same_identity() {
        let probe = Probe {
            device_api: "vfio-pci".into(),
            reset: false,
            regions: vec![],
            irqs: vec![],
            display: Display::None,
            migration: None,
            dma_logging: false,
        };
        let id = |v: &str| DriverIdentity {
            driver: Some("mtty".into()),
            srcversion: Some(v.into()),
            ..DriverIdentity::default()
        };
        let mut c = ProbeCache::default();
        let e = |v: &str, at| CachedProbe {
            parent: "mtty".into(),
            type_id: "mtty-2".into(),
            identity: id(v),
            probe: probe.clone(),
            at,
        };
        c.put(e("A", 1));
        assert_eq!(c.get("mtty", "mtty-2", &id("A")).map(|e| e.at), Some(1));
        assert!(
            c.get("mtty", "mtty-2", &id("B")).is_none(),
            "another module version"
        );
        assert!(c.get("mtty", "mtty-1", &id("A")).is_none(), "another type");
        c.put(e("B", 2));
        assert_eq!(
            c.entries.len(),
            1,
            "the new identity replaced the old answer"
        );
    }
}
