use super::*;
use crate::migrate::{MdevSpec, ParentSpec, SPEC_VERSION};
use crate::probe::DriverIdentity;

fn spec(t: &str) -> MigrationSpec {
    MigrationSpec {
        hostdev_migration_spec: SPEC_VERSION,
        source: "b0020000-0000-4000-8000-000000000001".into(),
        mdev: Some(MdevSpec {
            type_id: t.into(),
            device_api: "vfio-pci".into(),
            attrs: vec![],
            parent: ParentSpec {
                name: "mtty".into(),
                vendor: None,
                device: None,
            },
            driver: DriverIdentity {
                driver: Some("mtty".into()),
                ..DriverIdentity::default()
            },
            migration: None,
        }),
        vgpu: None,
        vdpa: None,
    }
}

fn meta(id: &str) -> MetaDevice {
    MetaDevice {
        pool: "tty".into(),
        kind: "mdev".into(),
        id: id.into(),
        source: id.into(),
        spec: spec("mtty-2"),
    }
}

const U1: &str = "b0020000-0000-4000-8000-000000000001";
const U2: &str = "b0020000-0000-4000-8000-000000000002";

/// A domain as libvirt 11 writes its migratable XML (abridged), with
/// hostdev's element as `virsh metadata --key hostdev` stores it.
fn domain(meta_el: &str) -> String {
    format!(
        r#"<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>mig-vm</name>
  <uuid>c0020000-0000-4000-8000-000000000001</uuid>
  <metadata>
    <other:x xmlns:other="urn:other">keep &amp; me</other:x>
    {meta_el}
  </metadata>
  <devices>
    <!-- a comment -->
    <disk type='file' device='disk'><source file='/a&amp;b.img'/><target dev='vda'/></disk>
    <hostdev mode='subsystem' type='mdev' managed='no' model='vfio-pci' display='off'>
      <source>
        <address uuid='{U1}'/>
      </source>
      <alias name='ua-gpu0'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/>
    </hostdev>
    <hostdev mode='subsystem' type='pci' managed='no'>
      <source>
        <address domain='0x0000' bus='0x41' slot='0x00' function='0x4'/>
      </source>
      <alias name='hostdev1'/>
    </hostdev>
    <interface type='vdpa'>
      <mac address='52:54:00:12:00:00'/>
      <source dev='/dev/vhost-vdpa-0'/>
      <model type='virtio'/>
    </interface>
  </devices>
  <qemu:override>
    <qemu:device alias='ua-gpu0'>
      <qemu:frontend>
        <qemu:property name='x-device-dirty-page-tracking' type='string' value='off'/>
        <qemu:property name='enable-migration' type='string' value='on'/>
      </qemu:frontend>
    </qemu:device>
  </qemu:override>
</domain>
"#
    )
}

#[test]
fn a_domain_reads_as_its_devices_metadata_and_overrides() {
    let el = format!(
        "<hostdev:devices xmlns:hostdev=\"{METADATA_NS}\"><device pool=\"tty\" kind=\"mdev\" id=\"{U1}\" source=\"{U1}\">{}</device></hostdev:devices>",
        serde_json::to_string(&spec("mtty-2")).unwrap().replace('"', "&quot;")
    );
    let d = read_domain(&domain(&el)).unwrap();
    assert_eq!(d.name, "mig-vm");
    assert_eq!(
        d.devices,
        vec![
            XmlDevice {
                source: XmlSource::Mdev(U1.parse().unwrap()),
                alias: Some("ua-gpu0".into()),
            },
            XmlDevice {
                source: XmlSource::Pci("0000:41:00.4".parse().unwrap()),
                alias: Some("hostdev1".into()),
            },
            XmlDevice {
                source: XmlSource::Vdpa("/dev/vhost-vdpa-0".into()),
                alias: None,
            },
        ]
    );
    assert_eq!(d.meta, vec![meta(U1)]);
    assert_eq!(
        d.qemu_props(&XmlSource::Mdev(U1.parse().unwrap())),
        vec![
            (
                "x-device-dirty-page-tracking".to_string(),
                "off".to_string()
            ),
            ("enable-migration".to_string(), "on".to_string())
        ]
    );
    assert!(d
        .qemu_props(&XmlSource::Pci("0000:41:00.4".parse().unwrap()))
        .is_empty());
    // Another namespace's element of the same name is not hostdev's.
    let foreign = "<x:devices xmlns:x=\"urn:other:2\"><device pool=\"p\"/></x:devices>";
    assert!(read_domain(&domain(foreign)).unwrap().meta.is_empty());
}

#[test]
fn a_damaged_metadata_entry_is_refused_not_guessed() {
    for (el, want) in [
        (
            format!("<hostdev:devices xmlns:hostdev=\"{METADATA_NS}\"><device pool=\"tty\" kind=\"mdev\" id=\"x\" source=\"x\">{{\"hostdev_migration_spec\":1</device></hostdev:devices>"),
            "unreadable spec for x",
        ),
        (
            format!("<hostdev:devices xmlns:hostdev=\"{METADATA_NS}\"><device kind=\"mdev\" id=\"x\" source=\"x\">{{}}</device></hostdev:devices>"),
            "no pool attribute",
        ),
        (
            format!(
                "<h:devices xmlns:h=\"{METADATA_NS}\">{}</h:devices>",
                format!(
                    "<device pool=\"p\" kind=\"k\" id=\"i\" source=\"s\">{}</device>",
                    serde_json::to_string(&spec("mtty-2")).unwrap().replace('"', "&quot;")
                )
                .repeat(MAX_META_DEVICES + 1)
            ),
            "more than 256",
        ),
    ] {
        let e = read_domain(&domain(&el)).unwrap_err();
        assert!(e.contains(want), "{e}");
    }
    let whole = domain("");
    let e = read_domain(&whole[..whole.len() - 20]).unwrap_err();
    assert!(e.contains("not well-formed"), "{e}");
}

#[test]
fn rewriting_changes_the_sources_and_hostdevs_metadata_and_nothing_else() {
    let old = format!(
        "<hostdev:devices xmlns:hostdev=\"{METADATA_NS}\"><device pool=\"tty\" kind=\"mdev\" id=\"{U1}\" source=\"{U1}\">{}</device></hostdev:devices>",
        serde_json::to_string(&spec("mtty-2")).unwrap().replace('"', "&quot;")
    );
    let xml = domain(&old);
    let rw = DomainRewrite {
        sources: vec![
            (
                XmlSource::Mdev(U1.parse().unwrap()),
                XmlSource::Mdev(U2.parse().unwrap()),
            ),
            (
                XmlSource::Pci("0000:41:00.4".parse().unwrap()),
                XmlSource::Pci("0000:c1:01.2".parse().unwrap()),
            ),
            (
                XmlSource::Vdpa("/dev/vhost-vdpa-0".into()),
                XmlSource::Vdpa("/dev/vhost-vdpa-3".into()),
            ),
        ],
        meta: vec![meta(U2)],
    };
    let out = rewrite_domain(&xml, &rw).unwrap();
    let d = read_domain(&out).unwrap();
    let sources: Vec<String> = d.devices.iter().map(|d| d.source.text()).collect();
    assert_eq!(sources, [U2, "0000:c1:01.2", "/dev/vhost-vdpa-3"]);
    assert_eq!(d.meta, vec![meta(U2)]);
    assert_eq!(d.devices[0].alias.as_deref(), Some("ua-gpu0"));
    assert_eq!(d.overrides, read_domain(&xml).unwrap().overrides);
    // Everything else byte for byte: undo the three sources and the
    // element, and the document is the same.
    let back = out
        .replace(U2, U1)
        .replace(
            "domain=\"0x0000\" bus=\"0xc1\" slot=\"0x01\" function=\"0x2\"",
            "domain='0x0000' bus='0x41' slot='0x00' function='0x4'",
        )
        .replace("dev=\"/dev/vhost-vdpa-3\"", "dev='/dev/vhost-vdpa-0'")
        .replace(&metadata_element(&[meta(U1)], true), &old)
        .replace(&format!("uuid=\"{U1}\""), &format!("uuid='{U1}'"));
    assert_eq!(back, xml);
    assert!(out.contains("<other:x xmlns:other=\"urn:other\">keep &amp; me</other:x>"));
    assert!(out.contains("<source file='/a&amp;b.img'/>") && out.contains("<!-- a comment -->"));
    // A source the domain does not name is an error, not a silent no-op.
    let missing = DomainRewrite {
        sources: vec![(
            XmlSource::Mdev(U2.parse().unwrap()),
            XmlSource::Mdev(U1.parse().unwrap()),
        )],
        meta: vec![],
    };
    assert!(rewrite_domain(&xml, &missing)
        .unwrap_err()
        .contains("names no device"));
}

#[test]
fn the_metadata_element_is_added_where_there_was_none() {
    let with = rewrite_domain(
        &domain(""),
        &DomainRewrite {
            sources: vec![],
            meta: vec![meta(U1)],
        },
    )
    .unwrap();
    assert_eq!(read_domain(&with).unwrap().meta, vec![meta(U1)]);
    let bare = domain("").replace(
        "  <metadata>\n    <other:x xmlns:other=\"urn:other\">keep &amp; me</other:x>\n    \n  </metadata>\n",
        "",
    );
    assert!(!bare.contains("<metadata>"), "{bare}");
    let added = rewrite_domain(
        &bare,
        &DomainRewrite {
            sources: vec![],
            meta: vec![meta(U1)],
        },
    )
    .unwrap();
    assert_eq!(read_domain(&added).unwrap().meta, vec![meta(U1)]);
    let empty = bare.replace("<devices>", "<metadata/><devices>");
    let added = rewrite_domain(
        &empty,
        &DomainRewrite {
            sources: vec![],
            meta: vec![meta(U1)],
        },
    )
    .unwrap();
    assert_eq!(read_domain(&added).unwrap().meta, vec![meta(U1)]);
    // An empty list removes hostdev's element.
    let removed = rewrite_domain(&with, &DomainRewrite::default()).unwrap();
    assert!(read_domain(&removed).unwrap().meta.is_empty());
    assert!(removed.contains("keep &amp; me"));
}

#[test]
fn the_bare_element_is_what_libvirt_stores_under_the_key() {
    // `virsh metadata --key hostdev --set BARE` stores BARE with the
    // namespace declared on its root: the same element as with_ns.
    let bare = metadata_element(&[meta(U1)], false);
    assert!(bare.starts_with("<devices><device pool=\"tty\""), "{bare}");
    let stored = bare
        .replacen(
            "<devices>",
            &format!("<hostdev:devices xmlns:hostdev=\"{METADATA_NS}\">"),
            1,
        )
        .replace("</devices>", "</hostdev:devices>");
    assert_eq!(stored, metadata_element(&[meta(U1)], true));
}
