//! libvirt's domain XML elements for the devices hostdev manages: an mdev
//! `<hostdev type='mdev'>`, a PCI VF `<hostdev type='pci'>` (an NVIDIA vGPU
//! on SR-IOV is handed to the VM as its VF) and a vDPA `<interface type='vdpa'>`.
//!
//! Owns: building them with an XML writer (values escaped by construction);
//! reading and rewriting a whole domain is `domain.rs`.
//! Must not: look anything up; callers pass what the element names.

pub mod domain;

use crate::pci::PciAddress;
use crate::probe::Display;
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

/// The same element for a device whose display a probe has seen: with one
/// (`region` or `dma-buf`), `display='on'`, and for `vfio-pci` `ramfb='on'`
/// so the firmware and boot loader show before the guest's driver loads;
/// without one, the plain element. A comment above says what the domain
/// needs besides: a `<graphics>` device (libvirt refuses `display='on'`
/// without one), and for dma-buf OpenGL (QEMU stops without it).
pub fn mdev_hostdev_probed(uuid: &Uuid, device_api: &str, display: Display) -> String {
    if display == Display::None {
        return mdev_hostdev(uuid, device_api);
    }
    let mut attrs = vec![
        ("mode", "subsystem"),
        ("type", "mdev"),
        ("managed", "no"),
        ("model", device_api),
        ("display", "on"),
    ];
    if device_api == "vfio-pci" {
        attrs.push(("ramfb", "on"));
    }
    let el = El::new("hostdev", &attrs)
        .child(El::new("source", &[]).child(El::new("address", &[("uuid", &uuid.to_string())])))
        .render();
    // Both notes as libvirt 9.0 and QEMU 7.2 behave in the kernel tier.
    let note = if display.needs_opengl() {
        "<!-- display='on' needs a <graphics> device in the domain; a dma-buf display also needs \
         OpenGL: <graphics type='egl-headless'/> and a render node in /dev/dri (the vgem module \
         gives one), or QEMU stops with 'opengl not available' -->"
    } else {
        "<!-- display='on' needs a <graphics> device in the domain (VNC or SPICE) -->"
    };
    format!("{note}\n{el}")
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

/// What libvirt's qemu hook needs from a domain's XML: its UUID and name,
/// and the UUIDs its `<hostdev mode='subsystem' type='mdev'>` elements name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainMdevs {
    /// `<domain><uuid>`.
    pub uuid: Uuid,
    /// `<domain><name>`.
    pub name: String,
    /// `<hostdev type='mdev'><source><address uuid=…>`, in document order.
    pub mdevs: Vec<Uuid>,
}

/// The deepest element nesting a domain may have: libxml2's own default
/// (libvirt's domains are a dozen levels deep).
pub const MAX_DEPTH: usize = 256;

/// Reads a domain's XML (as libvirt hands it to a hook on stdin): only a
/// well-formed document whose one root is `<domain>` (a truncated one is
/// refused, never half-read), at most [`MAX_DEPTH`] deep, in one linear pass
/// (each element is compared with the few places the hook reads, never with
/// the whole path above it).
pub fn domain_mdevs(xml: &str) -> Result<DomainMdevs, String> {
    use quick_xml::events::Event as Ev;
    let mut r = quick_xml::Reader::from_str(xml);
    r.config_mut().check_end_names = true;
    let bad = |why: String| format!("the domain XML is not well-formed: {why}");
    // Open elements' names; only the first four are ever compared.
    let mut path: Vec<String> = Vec::new();
    let mut roots = 0;
    let mut hostdev_mdev = false;
    let (mut uuid, mut name, mut mdevs) = (None, None, Vec::new());
    let attr = |e: &BytesStart<'_>, k: &[u8]| -> Option<String> {
        e.attributes()
            .flatten()
            .find(|a| a.key.as_ref() == k)
            .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
    };
    let at = |path: &[String], want: &[&str]| {
        path.len() == want.len() && path.iter().zip(want).all(|(p, w)| p == w)
    };
    loop {
        let ev = r
            .read_event()
            .map_err(|e| bad(format!("at byte {}: {e}", r.error_position())))?;
        let empty = matches!(ev, Ev::Empty(_));
        match ev {
            Ev::Start(e) | Ev::Empty(e) => {
                if path.is_empty() {
                    roots += 1;
                    if roots > 1 {
                        return Err(bad("it has more than one root element".into()));
                    }
                    if e.name().as_ref() != b"domain" {
                        return Err(
                            "the XML is not a domain: its root element is not <domain>".into()
                        );
                    }
                }
                if path.len() >= MAX_DEPTH {
                    return Err(format!(
                        "the domain XML is nested deeper than {MAX_DEPTH} elements"
                    ));
                }
                let tag = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                if tag == "hostdev" && at(&path, &["domain", "devices"]) {
                    hostdev_mdev = attr(&e, b"type").as_deref() == Some("mdev");
                }
                if hostdev_mdev
                    && tag == "address"
                    && at(&path, &["domain", "devices", "hostdev", "source"])
                {
                    if let Some(u) = attr(&e, b"uuid") {
                        mdevs.push(Uuid::parse_lenient(&u).map_err(|e| e.to_string())?);
                    }
                }
                if !empty {
                    path.push(tag);
                }
            }
            Ev::End(_) => {
                if path.len() == 3 && path[2] == "hostdev" {
                    hostdev_mdev = false;
                }
                if path.pop().is_none() {
                    return Err(bad("a closing tag has no opening one".into()));
                }
            }
            Ev::Text(t) if path.len() == 2 && path[0] == "domain" => {
                let text = t
                    .unescape()
                    .map_err(|e| bad(e.to_string()))?
                    .trim()
                    .to_string();
                match path[1].as_str() {
                    "uuid" => uuid = Some(text),
                    "name" => name = Some(text),
                    _ => {}
                }
            }
            Ev::Eof => break,
            _ => {}
        }
    }
    if let Some(open) = path.last() {
        return Err(bad(format!(
            "it ends before <{}> is closed (a truncated document)",
            crate::quote::quote(open)
        )));
    }
    if roots == 0 {
        return Err(bad("it has no root element".into()));
    }
    let uuid = uuid.ok_or("the domain XML has no <uuid>")?;
    Ok(DomainMdevs {
        uuid: Uuid::parse_lenient(&uuid).map_err(|e| e.to_string())?,
        name: name.unwrap_or_default(),
        mdevs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_domain_names_its_mdevs() {
        let xml = r#"<domain type='kvm'>
  <name>vm&amp;1</name>
  <uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa0</uuid>
  <devices>
    <hostdev mode='subsystem' type='pci'><source><address domain='0' bus='1' slot='0' function='0'/></source></hostdev>
    <hostdev mode='subsystem' type='mdev' model='vfio-pci'>
      <source><address uuid='C2177883-F1BB-47F0-914D-32A22E3A8804'/></source>
    </hostdev>
    <hostdev mode='subsystem' type='mdev' model='vfio-pci'><source><address uuid='a297db4a-f4c2-11e6-90f6-d3b88d6c9525'/></source></hostdev>
  </devices>
</domain>"#;
        let d = domain_mdevs(xml).unwrap();
        assert_eq!(d.name, "vm&1");
        assert_eq!(d.uuid.to_string(), "4dea22b3-1d52-d8f3-2516-782e98ab3fa0");
        let m: Vec<String> = d.mdevs.iter().map(|u| u.to_string()).collect();
        assert_eq!(
            m,
            [
                "c2177883-f1bb-47f0-914d-32a22e3a8804",
                "a297db4a-f4c2-11e6-90f6-d3b88d6c9525"
            ]
        );
        assert!(domain_mdevs("<domain><name>x</name></domain>")
            .unwrap_err()
            .contains("no <uuid>"));
        assert!(domain_mdevs("<domain><uuid>zz</uuid>").is_err());
        assert!(domain_mdevs("<domain><uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa0</uuid><devices><hostdev type='mdev'><source><address uuid='../x'/></source></hostdev></devices></domain>").is_err());
    }

    /// The hook accepted a truncated domain (no closing tags) and made its
    /// device; and a 2 MB domain nested 250 000 deep took 81 s of CPU (the
    /// walk compared the whole open path at every element).
    #[test]
    fn a_domain_that_is_not_well_formed_or_too_deep_is_refused() {
        let head = "<domain><uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa0</uuid><devices>\
                    <hostdev mode='subsystem' type='mdev'><source>\
                    <address uuid='c2177883-f1bb-47f0-914d-32a22e3a8804'/>";
        let whole = format!("{head}</source></hostdev></devices></domain>");
        assert_eq!(domain_mdevs(&whole).expect("whole").mdevs.len(), 1);
        for cut in [head.len(), head.len() + "</source>".len(), whole.len() - 1] {
            let e = domain_mdevs(&whole[..cut]).expect_err("truncated");
            assert!(e.contains("not well-formed"), "{cut}: {e}");
        }
        let two = format!("{whole}<domain/>");
        assert!(domain_mdevs(&two)
            .expect_err("two roots")
            .contains("not well-formed"));
        let deep = format!(
            "<domain><uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa0</uuid>{}{}</domain>",
            "<a>".repeat(20_000),
            "</a>".repeat(20_000)
        );
        let e = domain_mdevs(&deep).expect_err("deep");
        assert!(e.contains("deeper than"), "{e}");
        let other = "<network><uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa0</uuid></network>";
        assert!(domain_mdevs(other)
            .expect_err("not a domain")
            .contains("<domain>"));
    }

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
        assert_eq!(
            mdev_hostdev_probed(&u, "vfio-pci", Display::None),
            mdev_hostdev(&u, "vfio-pci")
        );
        let region = mdev_hostdev_probed(&u, "vfio-pci", Display::Region);
        assert!(
            region.starts_with("<!-- display='on' needs a <graphics> device"),
            "{region}"
        );
        assert!(
            region.contains("\n<hostdev mode=\"subsystem\" type=\"mdev\" managed=\"no\" model=\"vfio-pci\" display=\"on\" ramfb=\"on\">"),
            "{region}"
        );
        let gl = mdev_hostdev_probed(&u, "vfio-pci", Display::DmaBuf);
        assert!(
            gl.contains("OpenGL") && gl.contains("display=\"on\""),
            "{gl}"
        );
        // Values are escaped by the writer, never pasted in.
        assert_eq!(
            vdpa_interface("/dev/vhost-vdpa-0'\"<&"),
            "<interface type=\"vdpa\">\n  <source dev=\"/dev/vhost-vdpa-0&apos;&quot;&lt;&amp;\"/>\n</interface>\n"
        );
    }
}
