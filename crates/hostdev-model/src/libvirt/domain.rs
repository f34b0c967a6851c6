//! A whole domain's XML as libvirt hands it to a hook: what hostdev needs to
//! read from it (the devices hostdev can serve, hostdev's element in
//! `<metadata>`, the QEMU properties `<qemu:override>` sets per device) and
//! the one change hostdev makes to it when a domain arrives by migration
//! (device sources rewritten, hostdev's metadata element replaced, every
//! other byte passed through).
//!
//! hostdev's metadata element (namespace [`METADATA_NS`], key
//! [`METADATA_KEY`]) lists the pool devices a domain holds on the host that
//! wrote it, each with the migration spec a destination judges with:
//!
//! ```xml
//! <hostdev:devices xmlns:hostdev="urn:hostdev:domain:1">
//!   <device pool="tty" kind="mdev" id="UUID" source="UUID">{spec JSON}</device>
//! </hostdev:devices>
//! ```
//!
//! Owns: reading and rewriting those parts, in one linear pass each, of a
//! well-formed document only. Must not: decide which device goes where (the
//! core does) or look anything up.

use crate::migrate::MigrationSpec;
use crate::pci::PciAddress;
use crate::Uuid;
use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesEnd, BytesStart, BytesText, Event};
use quick_xml::name::QName;
use quick_xml::{Reader, Writer};
use std::collections::BTreeMap;

/// The XML namespace of hostdev's element in a domain's `<metadata>`.
pub const METADATA_NS: &str = "urn:hostdev:domain:1";
/// The prefix libvirt gives it (`virsh metadata --key`).
pub const METADATA_KEY: &str = "hostdev";
/// The most devices hostdev's metadata element may list.
pub const MAX_META_DEVICES: usize = 256;

/// What the domain XML names as a device's source on its host.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum XmlSource {
    /// `<hostdev type='mdev'><source><address uuid=…>`.
    Mdev(Uuid),
    /// `<hostdev type='pci'><source><address domain= bus= slot= function=>`.
    Pci(PciAddress),
    /// `<interface type='vdpa'><source dev=…>` (a `/dev/vhost-vdpa-N` path).
    Vdpa(String),
}

impl XmlSource {
    /// As written in hostdev's metadata (`source="…"`): the UUID, the PCI
    /// address or the path.
    pub fn text(&self) -> String {
        match self {
            XmlSource::Mdev(u) => u.to_string(),
            XmlSource::Pci(a) => a.to_string(),
            XmlSource::Vdpa(p) => p.clone(),
        }
    }
}

/// One device element of the domain that hostdev could serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlDevice {
    /// Its source.
    pub source: XmlSource,
    /// Its `<alias name=…>`, where it has one.
    pub alias: Option<String>,
}

/// One entry of hostdev's metadata element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaDevice {
    /// The pool the device came from.
    pub pool: String,
    /// `mdev`, `vgpu` or `vdpa`.
    pub kind: String,
    /// The device on the host that wrote the entry (mdev UUID, VF address,
    /// vDPA name).
    pub id: String,
    /// What the domain XML names for it there ([`XmlSource::text`]).
    pub source: String,
    /// Its migration spec.
    pub spec: MigrationSpec,
}

/// What hostdev reads from a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainXml {
    /// `<domain><uuid>`.
    pub uuid: Uuid,
    /// `<domain><name>`.
    pub name: String,
    /// mdev and PCI `<hostdev>`s and vDPA `<interface>`s, in document order.
    pub devices: Vec<XmlDevice>,
    /// hostdev's metadata entries (empty without the element).
    pub meta: Vec<MetaDevice>,
    /// The QEMU frontend properties `<qemu:override>` sets, by device alias.
    pub overrides: BTreeMap<String, Vec<(String, String)>>,
}

impl DomainXml {
    /// The properties the domain's `<qemu:override>` gives the device whose
    /// source is `s` (none without an alias or an override).
    pub fn qemu_props(&self, s: &XmlSource) -> Vec<(String, String)> {
        self.devices
            .iter()
            .find(|d| &d.source == s)
            .and_then(|d| d.alias.as_ref())
            .and_then(|a| self.overrides.get(a))
            .cloned()
            .unwrap_or_default()
    }
}

fn local(name: &[u8]) -> &[u8] {
    match name.iter().position(|b| *b == b':') {
        Some(i) => &name[i + 1..],
        None => name,
    }
}

fn attr(e: &BytesStart<'_>, k: &[u8]) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.as_ref() == k)
        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
}

/// Whether `e` declares hostdev's namespace for its own prefix.
fn is_hostdev_meta(e: &BytesStart<'_>) -> bool {
    let name = e.name();
    let raw = name.as_ref();
    let decl = match raw.iter().position(|b| *b == b':') {
        Some(i) => [b"xmlns:".as_slice(), &raw[..i]].concat(),
        None => b"xmlns".to_vec(),
    };
    attr(e, &decl).as_deref() == Some(METADATA_NS)
}

/// A PCI address from libvirt's four attributes (hex with `0x`, or decimal).
fn pci_from(e: &BytesStart<'_>) -> Result<Option<PciAddress>, String> {
    let num = |k: &[u8], max: u32| -> Result<Option<u32>, String> {
        let Some(v) = attr(e, k) else { return Ok(None) };
        let n = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
            Some(h) => u32::from_str_radix(h, 16),
            None => v.parse::<u32>(),
        };
        match n {
            Ok(n) if n <= max => Ok(Some(n)),
            _ => Err(format!(
                "a PCI address's {} is not a number up to {max:#x}",
                String::from_utf8_lossy(k)
            )),
        }
    };
    let (d, b, s, f) = (
        num(b"domain", 0xffff)?,
        num(b"bus", 0xff)?,
        num(b"slot", 0x1f)?,
        num(b"function", 7)?,
    );
    match (b, s, f) {
        (Some(b), Some(s), Some(f)) => {
            let text = format!("{:04x}:{b:02x}:{s:02x}.{f:x}", d.unwrap_or(0));
            text.parse().map(Some).map_err(|e| format!("{e}"))
        }
        _ => Ok(None),
    }
}

fn bad(why: impl std::fmt::Display) -> String {
    format!("the domain XML is not well-formed: {why}")
}

/// The element kinds a device source may sit in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Holder {
    None,
    Mdev,
    Pci,
    Vdpa,
    Other,
}

/// A pass over the document: the path of open elements (local names), the
/// device element it is in, and the checks both passes share.
struct Walk {
    path: Vec<String>,
    holder: Holder,
    roots: usize,
}

impl Walk {
    fn new() -> Walk {
        Walk {
            path: Vec::new(),
            holder: Holder::None,
            roots: 0,
        }
    }

    fn at(&self, want: &[&str]) -> bool {
        self.path.len() == want.len() && self.path.iter().zip(want).all(|(p, w)| p == w)
    }

    /// An opening tag: checks the root and the depth, notes the device
    /// element it opens.
    fn open(&mut self, e: &BytesStart<'_>) -> Result<String, String> {
        if self.path.is_empty() {
            self.roots += 1;
            if self.roots > 1 {
                return Err(bad("it has more than one root element"));
            }
            if e.name().as_ref() != b"domain" {
                return Err("the XML is not a domain: its root element is not <domain>".into());
            }
        }
        if self.path.len() >= super::MAX_DEPTH {
            return Err(format!(
                "the domain XML is nested deeper than {} elements",
                super::MAX_DEPTH
            ));
        }
        let tag = String::from_utf8_lossy(local(e.name().as_ref())).into_owned();
        if self.at(&["domain", "devices"]) {
            let t = attr(e, b"type");
            self.holder = match (tag.as_str(), t.as_deref()) {
                ("hostdev", Some("mdev")) => Holder::Mdev,
                ("hostdev", Some("pci")) => Holder::Pci,
                ("interface", Some("vdpa")) => Holder::Vdpa,
                _ => Holder::Other,
            };
        }
        Ok(tag)
    }

    /// The source this element names, if it is a device's source.
    fn source(&self, tag: &str, e: &BytesStart<'_>) -> Result<Option<XmlSource>, String> {
        Ok(match self.holder {
            Holder::Mdev
                if tag == "address" && self.at(&["domain", "devices", "hostdev", "source"]) =>
            {
                match attr(e, b"uuid") {
                    Some(u) => Some(XmlSource::Mdev(
                        Uuid::parse_lenient(&u).map_err(|e| e.to_string())?,
                    )),
                    None => None,
                }
            }
            Holder::Pci
                if tag == "address" && self.at(&["domain", "devices", "hostdev", "source"]) =>
            {
                pci_from(e)?.map(XmlSource::Pci)
            }
            Holder::Vdpa if tag == "source" && self.at(&["domain", "devices", "interface"]) => {
                attr(e, b"dev").map(XmlSource::Vdpa)
            }
            _ => None,
        })
    }

    fn close(&mut self) -> Result<(), String> {
        if self.path.len() == 3 && self.path[1] == "devices" {
            self.holder = Holder::None;
        }
        self.path
            .pop()
            .map(|_| ())
            .ok_or_else(|| bad("a closing tag has no opening one"))
    }

    fn finish(&self) -> Result<(), String> {
        if let Some(open) = self.path.last() {
            return Err(bad(format!(
                "it ends before <{}> is closed (a truncated document)",
                crate::quote::quote(open)
            )));
        }
        if self.roots == 0 {
            return Err(bad("it has no root element"));
        }
        Ok(())
    }
}

/// One `<device>` of hostdev's metadata element: its attributes, then its
/// text (the spec) once the element closes.
fn meta_entry(e: &BytesStart<'_>) -> Result<(String, String, String, String), String> {
    let need = |k: &str| {
        attr(e, k.as_bytes()).ok_or_else(|| {
            format!("an entry of hostdev's metadata in the domain XML has no {k} attribute")
        })
    };
    Ok((need("pool")?, need("kind")?, need("id")?, need("source")?))
}

/// Reads a domain's XML: only a well-formed document whose one root is
/// `<domain>`, at most [`super::MAX_DEPTH`] deep. hostdev's metadata entries
/// must each carry a spec this hostdev reads; a damaged entry is an error
/// (a migration judged without it would be a guess).
pub fn read_domain(xml: &str) -> Result<DomainXml, String> {
    let mut r = Reader::from_str(xml);
    r.config_mut().check_end_names = true;
    let mut w = Walk::new();
    let (mut uuid, mut name) = (None, None);
    let mut devices: Vec<XmlDevice> = Vec::new();
    let mut meta = Vec::new();
    // Inside hostdev's metadata element: its depth; inside an entry: the
    // entry's attributes and text so far.
    let mut in_meta: Option<usize> = None;
    let mut entry: Option<((String, String, String, String), String)> = None;
    let mut overrides: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut override_alias: Option<String> = None;
    loop {
        let ev = r
            .read_event()
            .map_err(|e| bad(format!("at byte {}: {e}", r.error_position())))?;
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(ev, Event::Empty(_));
                let tag = w.open(e)?;
                if let Some(s) = w.source(&tag, e)? {
                    devices.push(XmlDevice {
                        source: s,
                        alias: None,
                    });
                }
                if tag == "alias"
                    && w.path.len() == 3
                    && w.path[1] == "devices"
                    && matches!(w.holder, Holder::Mdev | Holder::Pci | Holder::Vdpa)
                {
                    if let Some(d) = devices.last_mut() {
                        d.alias = attr(e, b"name");
                    }
                }
                if w.at(&["domain", "metadata"]) && is_hostdev_meta(e) {
                    in_meta = Some(w.path.len() + 1);
                }
                if in_meta == Some(w.path.len()) && tag == "device" {
                    if meta.len() >= MAX_META_DEVICES {
                        return Err(format!(
                            "hostdev's metadata in the domain XML lists more than {MAX_META_DEVICES} devices"
                        ));
                    }
                    entry = Some((meta_entry(e)?, String::new()));
                }
                if w.at(&["domain", "override"]) && tag == "device" {
                    override_alias = attr(e, b"alias");
                }
                if w.at(&["domain", "override", "device", "frontend"]) && tag == "property" {
                    if let (Some(a), Some(n), Some(v)) =
                        (&override_alias, attr(e, b"name"), attr(e, b"value"))
                    {
                        overrides.entry(a.clone()).or_default().push((n, v));
                    }
                }
                if !empty {
                    w.path.push(tag);
                } else if let Some((a, text)) = entry.take().filter(|_| tag == "device") {
                    meta.push(meta_device(a, &text)?);
                }
            }
            Event::End(_) => {
                if in_meta.is_some_and(|d| w.path.len() == d + 1) {
                    if let Some((a, text)) = entry.take() {
                        meta.push(meta_device(a, &text)?);
                    }
                }
                if in_meta == Some(w.path.len()) {
                    in_meta = None;
                }
                w.close()?;
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(bad)?;
                if let Some((_, s)) = entry.as_mut() {
                    s.push_str(&text);
                } else if w.path.len() == 2 && w.path[0] == "domain" {
                    match w.path[1].as_str() {
                        "uuid" => uuid = Some(text.trim().to_string()),
                        "name" => name = Some(text.trim().to_string()),
                        _ => {}
                    }
                }
            }
            Event::CData(t) => {
                if let Some((_, s)) = entry.as_mut() {
                    s.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    w.finish()?;
    let uuid = uuid.ok_or("the domain XML has no <uuid>")?;
    Ok(DomainXml {
        uuid: Uuid::parse_lenient(&uuid).map_err(|e| e.to_string())?,
        name: name.unwrap_or_default(),
        devices,
        meta,
        overrides,
    })
}

fn meta_device(a: (String, String, String, String), text: &str) -> Result<MetaDevice, String> {
    let (pool, kind, id, source) = a;
    let spec: MigrationSpec = serde_json::from_str(text.trim()).map_err(|e| {
        format!(
            "hostdev's metadata in the domain XML has an unreadable spec for {}: {e}",
            crate::quote::quote(&id)
        )
    })?;
    Ok(MetaDevice {
        pool,
        kind,
        id,
        source,
        spec,
    })
}

/// What changes when a domain arrives: sources replaced (`from`, `to`), and
/// hostdev's metadata element replaced by one listing `meta` (or removed
/// when `meta` is empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainRewrite {
    /// Each source the domain names that is another device here.
    pub sources: Vec<(XmlSource, XmlSource)>,
    /// hostdev's entries for this host.
    pub meta: Vec<MetaDevice>,
}

/// hostdev's metadata element listing `meta`; `with_ns`: with its namespace
/// declared under [`METADATA_KEY`] (as in a domain's XML), else bare (what
/// `virsh metadata --set` takes: libvirt adds the namespace).
pub fn metadata_element(meta: &[MetaDevice], with_ns: bool) -> String {
    let mut w = Writer::new(Vec::new());
    let root = if with_ns {
        format!("{METADATA_KEY}:devices")
    } else {
        "devices".to_string()
    };
    let mut start = BytesStart::new(root.as_str());
    if with_ns {
        start.push_attribute((format!("xmlns:{METADATA_KEY}").as_str(), METADATA_NS));
    }
    // Writing into a Vec cannot fail; an empty string would show if it did.
    let mut write = || -> std::io::Result<()> {
        w.write_event(Event::Start(start.clone()))?;
        for m in meta {
            let spec = serde_json::to_string(&m.spec).unwrap_or_default();
            let el = BytesStart::new("device").with_attributes([
                ("pool", m.pool.as_str()),
                ("kind", m.kind.as_str()),
                ("id", m.id.as_str()),
                ("source", m.source.as_str()),
            ]);
            w.write_event(Event::Start(el))?;
            w.write_event(Event::Text(BytesText::new(&spec)))?;
            w.write_event(Event::End(BytesEnd::new("device")))?;
        }
        w.write_event(Event::End(BytesEnd::new(root.as_str())))
    };
    if write().is_err() {
        return String::new();
    }
    String::from_utf8_lossy(&w.into_inner()).into_owned()
}

/// The element `e` with its source replaced by `to` (attributes of the
/// same element kind; the rest kept byte for byte).
fn replaced(e: &BytesStart<'_>, to: &XmlSource) -> BytesStart<'static> {
    let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
    let mut out = BytesStart::new(name);
    let ours: &[&[u8]] = match to {
        XmlSource::Mdev(_) => &[b"uuid"],
        XmlSource::Pci(_) => &[b"domain", b"bus", b"slot", b"function"],
        XmlSource::Vdpa(_) => &[b"dev"],
    };
    for a in e.attributes().flatten() {
        if !ours.contains(&a.key.as_ref()) {
            out.push_attribute(Attribute {
                key: QName(a.key.as_ref()),
                value: a.value.clone(),
            });
        }
    }
    match to {
        XmlSource::Mdev(u) => out.push_attribute(("uuid", u.to_string().as_str())),
        XmlSource::Pci(p) => {
            let s = p.as_str();
            let hex = |r: std::ops::Range<usize>| format!("0x{}", s.get(r).unwrap_or("0"));
            out.push_attribute(("domain", hex(0..4).as_str()));
            out.push_attribute(("bus", hex(5..7).as_str()));
            out.push_attribute(("slot", hex(8..10).as_str()));
            out.push_attribute(("function", hex(11..12).as_str()));
        }
        XmlSource::Vdpa(d) => out.push_attribute(("dev", d.as_str())),
    }
    out.into_owned()
}

/// Rewrites a domain's XML as `rw` says: every other event is written back
/// as it was read. The document must be well-formed (as [`read_domain`]
/// checks); a source `rw` names that the domain lacks is an error.
pub fn rewrite_domain(xml: &str, rw: &DomainRewrite) -> Result<String, String> {
    let mut r = Reader::from_str(xml);
    r.config_mut().check_end_names = true;
    let mut out = Writer::new(Vec::new());
    let io = |e: std::io::Error| format!("cannot write the domain XML: {e}");
    let mut w = Walk::new();
    let mut done: Vec<bool> = vec![false; rw.sources.len()];
    let element = metadata_element(&rw.meta, true);
    let meta_events = |out: &mut Writer<Vec<u8>>| -> Result<(), String> {
        if rw.meta.is_empty() {
            return Ok(());
        }
        out.get_mut().extend_from_slice(element.as_bytes());
        Ok(())
    };
    let mut skipping: Option<usize> = None;
    let mut meta_written = false;
    let mut saw_metadata = false;
    loop {
        let ev = r
            .read_event()
            .map_err(|e| bad(format!("at byte {}: {e}", r.error_position())))?;
        if let Some(depth) = skipping {
            match &ev {
                Event::Start(_) => {
                    w.path.push(String::new());
                }
                Event::End(_) => {
                    w.close()?;
                    if w.path.len() == depth {
                        skipping = None;
                    }
                }
                Event::Eof => return Err(bad("it ends inside hostdev's metadata")),
                _ => {}
            }
            continue;
        }
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(ev, Event::Empty(_));
                let tag = w.open(e)?;
                if w.at(&["domain", "metadata"]) && is_hostdev_meta(e) {
                    if !meta_written {
                        meta_events(&mut out)?;
                        meta_written = true;
                    }
                    if !empty {
                        skipping = Some(w.path.len());
                        w.path.push(tag);
                    }
                    continue;
                }
                if w.at(&["domain"]) && tag == "metadata" {
                    saw_metadata = true;
                }
                let mut written = false;
                if let Some(s) = w.source(&tag, e)? {
                    if let Some(i) = rw.sources.iter().position(|(from, _)| from == &s) {
                        let new = replaced(e, &rw.sources[i].1);
                        let ev = if empty {
                            Event::Empty(new)
                        } else {
                            Event::Start(new)
                        };
                        out.write_event(ev).map_err(io)?;
                        done[i] = true;
                        written = true;
                    }
                }
                if w.at(&["domain"]) && tag == "metadata" && empty && !rw.meta.is_empty() {
                    // `<metadata/>`: opened, given the element, closed.
                    out.write_event(Event::Start(e.clone())).map_err(io)?;
                    meta_events(&mut out)?;
                    meta_written = true;
                    out.write_event(Event::End(BytesEnd::new(
                        String::from_utf8_lossy(e.name().as_ref()).into_owned(),
                    )))
                    .map_err(io)?;
                    written = true;
                }
                if !written {
                    out.write_event(ev.clone()).map_err(io)?;
                }
                if !empty {
                    w.path.push(tag);
                }
            }
            Event::End(ref e) => {
                if w.at(&["domain", "metadata"]) && !meta_written {
                    meta_events(&mut out)?;
                    meta_written = true;
                }
                if w.at(&["domain"]) && !saw_metadata && !meta_written && !rw.meta.is_empty() {
                    out.get_mut().extend_from_slice(b"<metadata>");
                    meta_events(&mut out)?;
                    out.get_mut().extend_from_slice(b"</metadata>\n");
                    meta_written = true;
                }
                w.close()?;
                out.write_event(Event::End(e.clone())).map_err(io)?;
            }
            Event::Eof => break,
            other => out.write_event(other).map_err(io)?,
        }
    }
    w.finish()?;
    if let Some(i) = done.iter().position(|d| !d) {
        return Err(format!(
            "the domain XML names no device {}",
            crate::quote::quote(&rw.sources[i].0.text())
        ));
    }
    String::from_utf8(out.into_inner()).map_err(|e| format!("cannot write the domain XML: {e}"))
}

#[cfg(test)]
mod tests;
