//! The libvirt hook's `migrate begin` in process over two fake hosts (each
//! its own root and fakes; their PFs at other addresses): the source's
//! domain XML carries hostdev's metadata as `libvirt-hook annotate` writes
//! it, the destination's hook answers the XML libvirt would take, with the
//! VF's and the vDPA device's sources rewritten, its own metadata, and
//! every other byte as it came; a destination that cannot serve answers
//! hostdev's sentence and keeps nothing.
#![allow(clippy::expect_used)] // tests: a failed expectation is the report

use hostdev_core::api::{AllocateRequest, ConsumerId, PoolName};
use hostdev_core::{Kernel, Memo, SharedFakes};
use hostdev_model::libvirt::domain::{read_domain, XmlSource};
use hostdev_sysfs::sriov::PciSriov;
use hostdev_sysfs::sriov::{FakeSriov, SriovSysfs};
use hostdev_sysfs::FakeKernel;
use hostdev_vdpa::FakeVdpa;
use hostdevctl::env::Ctx;
use hostdevctl::pool::{domain_metadata, hook_answer};
use std::path::Path;
use std::sync::Arc;

fn fakes(root: &Path, pf: &str) -> SharedFakes {
    let sriov = FakeSriov::new();
    sriov.add_pf(pf, 4, 16384, &[(1150, "NVIDIA L40S-4Q", 4096)], true);
    sriov.set_num_vfs(&pf.parse().expect("pf"), 4).expect("vfs");
    let vdpa = FakeVdpa::new();
    vdpa.add_mgmtdev("vdpasim_net", 1, &["mac", "mtu"]);
    let dir = root.join("etc/hostdev/pools.d");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(
        dir.join("l40s.toml"),
        "kind = \"vgpu\"\ntype = \"NVIDIA L40S-4Q\"\n",
    )
    .expect("pool");
    std::fs::write(
        dir.join("nics.toml"),
        "kind = \"vdpa\"\nlimit = 2\n[vdpa]\nname_prefix = \"vnet\"\nmac_base = \"52:54:00:00:10:00\"\n",
    )
    .expect("pool");
    SharedFakes {
        mdev: Arc::new(FakeKernel::new()),
        sriov: Arc::new(sriov),
        vdpa: Arc::new(vdpa),
        vfio: Arc::new(hostdev_vfio::FakeVfio::new()),
        root: root.to_path_buf(),
    }
}

type FakeCtx = Ctx<hostdev_core::Devices<(Arc<FakeKernel>, Arc<FakeSriov>, Arc<FakeVdpa>)>>;

fn ctx(f: &SharedFakes) -> FakeCtx {
    let f = f.clone();
    Ctx::new(false, None, move || f.devices(&Memo::default()))
}

const DOM: &str = "c0020000-0000-4000-8000-0000000000a1";

/// The domain as the source's libvirt hands it to the destination's hook
/// (migratable XML, abridged), naming the source's devices.
fn domain_xml(vf: &str, vhost: &str, meta: &str) -> String {
    let a: Vec<&str> = vf.split([':', '.']).collect();
    format!(
        r#"<domain type='kvm' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>mig-vm</name>
  <uuid>{DOM}</uuid>
  <metadata>
    <other:x xmlns:other="urn:other">keep &amp; me</other:x>
    {meta}
  </metadata>
  <devices>
    <!-- hand-written, kept -->
    <disk type='file' device='disk'><source file='/img/a&amp;b.qcow2'/><target dev='vda'/></disk>
    <hostdev mode='subsystem' type='pci' managed='no'>
      <source>
        <address domain='0x{}' bus='0x{}' slot='0x{}' function='0x{}'/>
      </source>
      <alias name='ua-vgpu0'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x06' function='0x0'/>
    </hostdev>
    <interface type='vdpa'>
      <mac address='52:54:00:00:10:00'/>
      <source dev='{vhost}'/>
      <model type='virtio'/>
    </interface>
  </devices>
</domain>
"#,
        a[0], a[1], a[2], a[3]
    )
}

/// The vhost path of a vDPA device the domain holds, as the domain XML
/// names it.
fn vhost(c: &FakeCtx, name: &str) -> String {
    c.call(&hostdev_core::api::DomainHeldQuery {
        domain: DOM.parse().expect("uuid"),
    })
    .expect("held")
    .devices
    .into_iter()
    .find(|h| h.id == name)
    .map(|h| h.source)
    .expect("the domain holds it")
}

/// The source: a domain holding a VF and a vDPA device from its pools
/// (allocated for the domain's UUID); answers the XML with its metadata.
fn source(f: &SharedFakes) -> String {
    let c = ctx(f);
    for p in ["l40s", "nics"] {
        c.call(&AllocateRequest {
            pool: PoolName::new(p).expect("pool"),
            consumer: ConsumerId::new(DOM).expect("consumer"),
            uuid: None,
            ttl_secs: None,
        })
        .expect("allocate on the source");
    }
    let meta = domain_metadata(&c, DOM.parse().expect("uuid"), true)
        .expect("metadata")
        .expect("the domain holds pool devices");
    let vhost = vhost(&c, "vnet0");
    domain_xml("0000:41:00.4", &vhost, &meta)
}

#[test]
fn migrate_begin_rewrites_the_vf_and_vdpa_sources_and_keeps_every_other_byte() {
    let (t1, t2) = (
        tempfile::tempdir().expect("t"),
        tempfile::tempdir().expect("t"),
    );
    let src = fakes(t1.path(), "0000:41:00.0");
    let dst = fakes(t2.path(), "0000:81:00.0");
    // Another domain holds the destination's first vDPA device: the
    // arriving one gets another vhost path.
    ctx(&dst)
        .call(&AllocateRequest {
            pool: PoolName::new("nics").expect("pool"),
            consumer: ConsumerId::new("other-vm").expect("consumer"),
            uuid: None,
            ttl_secs: None,
        })
        .expect("other vm");
    let xml = source(&src);
    let out = hook_answer(&ctx(&dst), "migrate", "begin", &xml)
        .expect("the destination serves the domain")
        .expect("the XML changes");
    let d = read_domain(&out).expect("what the hook prints is a domain libvirt reads");
    let sources: Vec<XmlSource> = d.devices.iter().map(|x| x.source.clone()).collect();
    let vhost1 = vhost(&ctx(&dst), "vnet1");
    assert_eq!(
        sources,
        [
            XmlSource::Pci("0000:81:00.4".parse().expect("vf")),
            XmlSource::Vdpa(vhost1.clone()),
        ]
    );
    // This host's metadata: its own devices and specs.
    let ids: Vec<(&str, &str)> = d
        .meta
        .iter()
        .map(|m| (m.id.as_str(), m.source.as_str()))
        .collect();
    assert_eq!(
        ids,
        [("0000:81:00.4", "0000:81:00.4"), ("vnet1", vhost1.as_str())]
    );
    assert_eq!(
        d.meta[0].spec.vgpu.as_ref().map(|v| v.card.pf.as_str()),
        Some("0000:81:00.0")
    );
    // Every other byte as it came: the XML with the sources put back and
    // hostdev's element cut out is the input with its element cut out.
    let cut = |x: &str| {
        let a = x.find("<hostdev:devices").expect("element");
        let b = x.find("</hostdev:devices>").expect("end") + "</hostdev:devices>".len();
        format!("{}{}", &x[..a], &x[b..])
    };
    // (The two rewritten elements are written anew, with double quotes.)
    let back = cut(&out)
        .replace(
            r#"<address domain="0x0000" bus="0x81" slot="0x00" function="0x4"/>"#,
            "<address domain='0x0000' bus='0x41' slot='0x00' function='0x4'/>",
        )
        .replace(
            &format!(r#"<source dev="{vhost1}"/>"#),
            "<source dev='/dev/vhost-vdpa-0'/>",
        );
    assert_eq!(back, cut(&xml));
    // The arrival is held for the domain here.
    let held = ctx(&dst)
        .call(&hostdev_core::api::DomainHeldQuery {
            domain: DOM.parse().expect("uuid"),
        })
        .expect("held");
    assert_eq!(held.devices.len(), 2);
    // Other operations print nothing.
    assert_eq!(
        hook_answer(&ctx(&dst), "stopped", "end", &xml).expect("stopped"),
        None
    );
}

#[test]
fn a_destination_without_the_pool_refuses_with_hostdevs_sentence_and_keeps_nothing() {
    let (t1, t2) = (
        tempfile::tempdir().expect("t"),
        tempfile::tempdir().expect("t"),
    );
    let src = fakes(t1.path(), "0000:41:00.0");
    let dst = fakes(t2.path(), "0000:81:00.0");
    std::fs::remove_file(t2.path().join("etc/hostdev/pools.d/nics.toml")).expect("rm");
    let xml = source(&src);
    let e = hook_answer(&ctx(&dst), "migrate", "begin", &xml).unwrap_err();
    let msg = format!("{e:#}");
    assert!(msg.contains("nics"), "{msg}");
    let held = ctx(&dst)
        .call(&hostdev_core::api::DomainHeldQuery {
            domain: DOM.parse().expect("uuid"),
        })
        .expect("held");
    assert!(held.devices.is_empty(), "{held:?}");
    let vfs = dst
        .sriov
        .vfs(&"0000:81:00.0".parse().expect("pf"))
        .expect("vfs");
    assert!(vfs.iter().all(|v| v.current == 0), "no VF type left set");
    // A domain without hostdev's metadata and no pool mdev: unchanged.
    let plain = domain_xml("0000:41:00.4", "/dev/vhost-vdpa-0", "");
    assert_eq!(
        hook_answer(&ctx(&dst), "migrate", "begin", &plain).expect("plain"),
        None
    );
}
