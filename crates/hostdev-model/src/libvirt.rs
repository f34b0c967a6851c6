//! libvirt's domain XML elements for the devices hostdev manages: an mdev
//! `<hostdev type='mdev'>`, a PCI VF `<hostdev type='pci'>` (an NVIDIA vGPU
//! on SR-IOV is handed to the VM as its VF) and a vDPA `<interface type='vdpa'>`.
//!
//! Owns: building them with an XML writer (values escaped by construction).
//! Must not: look anything up; callers pass what the element names.

use crate::vgpu::PciAddress;
use crate::Uuid;
use quick_xml::events::{BytesEnd, BytesStart, Event};
use quick_xml::Writer;

/// An element with attributes and children, written with two-space indents.
struct El {
    name: &'static str,
    attrs: Vec<(&'static str, String)>,
    children: Vec<El>,
}

impl El {
    fn new(name: &'static str, attrs: &[(&'static str, &str)]) -> El {
        El {
            name,
            attrs: attrs.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            children: Vec::new(),
        }
    }

    fn child(mut self, c: El) -> El {
        self.children.push(c);
        self
    }

    fn write(&self, w: &mut Writer<Vec<u8>>) -> std::io::Result<()> {
        let start = BytesStart::new(self.name)
            .with_attributes(self.attrs.iter().map(|(k, v)| (*k, v.as_str())));
        if self.children.is_empty() {
            return w.write_event(Event::Empty(start));
        }
        w.write_event(Event::Start(start))?;
        for c in &self.children {
            c.write(w)?;
        }
        w.write_event(Event::End(BytesEnd::new(self.name)))
    }

    fn render(&self) -> String {
        let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
        // Writing into a Vec cannot fail; an empty string would show if it did.
        if self.write(&mut w).is_err() {
            return String::new();
        }
        let mut s = String::from_utf8_lossy(&w.into_inner()).into_owned();
        s.push('\n');
        s
    }
}

/// `<hostdev mode='subsystem' type='mdev'>` for a mediated device; `device_api`
/// is the type's (`vfio-pci`, `vfio-ccw`, `vfio-ap`), which libvirt takes as model.
pub fn mdev_hostdev(uuid: &Uuid, device_api: &str) -> String {
    El::new(
        "hostdev",
        &[
            ("mode", "subsystem"),
            ("type", "mdev"),
            ("managed", "no"),
            ("model", device_api),
        ],
    )
    .child(El::new("source", &[]).child(El::new("address", &[("uuid", &uuid.to_string())])))
    .render()
}

/// `<hostdev mode='subsystem' type='pci'>` for a PCI function (a vGPU's VF).
pub fn pci_hostdev(addr: &PciAddress) -> String {
    let s = addr.as_str(); // validated: dddd:bb:ss.f
    let hex = |r: std::ops::Range<usize>| format!("0x{}", s.get(r).unwrap_or("0"));
    El::new(
        "hostdev",
        &[("mode", "subsystem"), ("type", "pci"), ("managed", "no")],
    )
    .child(El::new("source", &[]).child(El::new(
        "address",
        &[
            ("domain", &hex(0..4)),
            ("bus", &hex(5..7)),
            ("slot", &hex(8..10)),
            ("function", &hex(11..12)),
        ],
    )))
    .render()
}

/// `<interface type='vdpa'>` for a vDPA device bound to vhost_vdpa.
pub fn vdpa_interface(vhost_dev: &str) -> String {
    El::new("interface", &[("type", "vdpa")])
        .child(El::new("source", &[("dev", vhost_dev)]))
        .render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_are_what_libvirt_reads() {
        let a: PciAddress = "0000:41:00.4".parse().unwrap();
        assert_eq!(
            pci_hostdev(&a),
            "<hostdev mode=\"subsystem\" type=\"pci\" managed=\"no\">\n  <source>\n    <address domain=\"0x0000\" bus=\"0x41\" slot=\"0x00\" function=\"0x4\"/>\n  </source>\n</hostdev>\n"
        );
        let u: Uuid = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001".parse().unwrap();
        assert_eq!(
            mdev_hostdev(&u, "vfio-pci"),
            "<hostdev mode=\"subsystem\" type=\"mdev\" managed=\"no\" model=\"vfio-pci\">\n  <source>\n    <address uuid=\"83b8f4f2-509f-382f-3c1e-e6bfe0fa1001\"/>\n  </source>\n</hostdev>\n"
        );
        // Values are escaped by the writer, never pasted in.
        assert_eq!(
            vdpa_interface("/dev/vhost-vdpa-0'\"<&"),
            "<interface type=\"vdpa\">\n  <source dev=\"/dev/vhost-vdpa-0&apos;&quot;&lt;&amp;\"/>\n</interface>\n"
        );
    }
}
