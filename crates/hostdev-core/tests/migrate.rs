//! Migration against the fakes: the vDPA trial device and what a killed
//! check left behind.
#![allow(clippy::expect_used)] // tests: a failed expectation is the report

use hostdev_core::api::{ExportTarget, MigrateCheckRequest};
use hostdev_core::vdpa::Vdpas;
use hostdev_core::vgpu::Vgpus;
use hostdev_core::{Callouts, Devices, Host};
use hostdev_model::migrate::{DriverPolicy, Verdict};
use hostdev_model::pci::PciAddress;
use hostdev_model::vdpa::{CreateConfig, MgmtDevName, VdpaName};
use hostdev_sysfs::sriov::{FakeSriov, PciSriov, PfInfo, SriovError, SriovSysfs, VfInfo};
use hostdev_sysfs::FakeKernel;
use hostdev_vdpa::{FakeVdpa, VdpaClient};
use hostdev_vfio::FakeVfio;
use std::sync::Arc;

/// What a fake device answers: VFIO migration (stop-copy p2p, and
/// pre-copy when asked) or none.
fn answer(migrates: bool, pre_copy: bool) -> hostdev_model::probe::Probe {
    use hostdev_model::probe::{Display, Migration, Probe};
    Probe {
        device_api: "vfio-pci".into(),
        reset: true,
        regions: vec![],
        irqs: vec![],
        display: Display::None,
        migration: migrates.then_some(Migration {
            stop_copy: true,
            p2p: true,
            pre_copy,
        }),
        dma_logging: false,
    }
}

#[test]
fn a_vdpa_check_removes_what_a_killed_check_left_and_leaves_a_live_ones() {
    let t = tempfile::tempdir().expect("tempdir");
    let vd = FakeVdpa::new();
    vd.add_mgmtdev("vdpasim_net", 1, &["mac", "mtu"]);
    let d = Devices::new(
        Host::new(FakeKernel::new(), t.path(), Callouts::none()),
        Vgpus::new(FakeSriov::new(), t.path()),
        Vdpas::new(vd, t.path()),
        Arc::new(FakeVfio::new()),
        t.path(),
    );
    let c = d.vdpa.client().expect("client");
    let m = MgmtDevName::parse("vdpasim_net").expect("mgmtdev");
    let name = |s: &str| s.parse::<VdpaName>().expect("name");
    c.add(&name("v0"), &m, &CreateConfig::default())
        .expect("source");
    // A trial of a process that is gone, and one of this (live) process.
    let live = format!("hdchk{}-99", std::process::id());
    c.add(&name("hdchk4000000000-0"), &m, &CreateConfig::default())
        .expect("dead trial");
    c.add(&name(&live), &m, &CreateConfig::default())
        .expect("live trial");
    let spec = d
        .migrate_export(&ExportTarget::Vdpa(name("v0")))
        .expect("export");
    let r = d
        .migrate_check(&MigrateCheckRequest {
            spec,
            device: None,
            mgmtdev: Some(m),
            driver_policy: DriverPolicy::Exact,
        })
        .expect("check");
    assert_eq!(r.verdict, Verdict::Compatible, "{r:?}");
    let mut left: Vec<String> = c
        .devs()
        .expect("devs")
        .into_iter()
        .map(|d| d.name)
        .collect();
    left.sort();
    assert_eq!(
        left,
        [live, "v0".to_string()],
        "the dead trial and this check's own trial are gone"
    );
}

/// A vGPU whose VF answers through VFIO: the spec carries the answer; a
/// destination VF that answers "no migration" is refused, one that answers
/// stop-copy under another id for the same name is compatible.
#[test]
fn a_probed_vgpu_spec_is_judged_by_name_and_by_each_vfs_answer() {
    use hostdev_api::{MigratePrepareRequest, ProbeTarget};

    let host = |ids: (u32, u32), vfio: Arc<FakeVfio>| {
        let t = tempfile::tempdir().expect("tempdir");
        let s = FakeSriov::new();
        s.add_pf(
            "0000:41:00.0",
            4,
            49152,
            &[
                (ids.0, "NVIDIA L40S-4Q", 4096),
                (ids.1, "NVIDIA L40S-8Q", 8192),
            ],
            true,
        );
        s.add_pf(
            "0000:c1:00.0",
            4,
            81920,
            &[(1150, "NVIDIA H100-80C", 81920)],
            true,
        );
        let pf = |a: &str| a.parse::<PciAddress>().expect("pf");
        s.set_num_vfs(&pf("0000:41:00.0"), 2).expect("vfs");
        s.set_num_vfs(&pf("0000:c1:00.0"), 2).expect("vfs");
        let d = Devices::new(
            Host::new(FakeKernel::new(), t.path(), Callouts::none()),
            Vgpus::new(s, t.path()),
            Vdpas::new(FakeVdpa::new(), t.path()),
            vfio,
            t.path(),
        );
        (t, d)
    };
    let answer = |migrates: bool| answer(migrates, false);
    let vf = "0000:41:00.4".parse::<PciAddress>().expect("vf");
    let src_vfio = Arc::new(FakeVfio::new());
    src_vfio.set(vf.as_str(), Ok(answer(true)));
    let (_t1, src) = host((1150, 1151), src_vfio);
    src.vgpu.sriov.set_type(&vf, 1150).expect("type");
    let spec = src
        .migrate_export(&ExportTarget::Vgpu(vf.clone()))
        .expect("export");
    let v = spec.vgpu.as_ref().expect("vgpu spec");
    assert_eq!(v.type_name, "NVIDIA L40S-4Q", "named from the card's lists");
    assert!(v.migration.is_some_and(|m| m.stop_copy) && v.unprobed.is_none());

    let dst_vfio = Arc::new(FakeVfio::new());
    let (_t2, dst) = host((1180, 1181), Arc::clone(&dst_vfio));
    let check = |device: Option<ProbeTarget>| {
        dst.migrate_check(&MigrateCheckRequest {
            spec: spec.clone(),
            device,
            mgmtdev: None,
            driver_policy: DriverPolicy::Exact,
        })
        .expect("check")
    };
    assert_eq!(check(None).verdict, Verdict::Compatible);
    let p = dst
        .migrate_prepare(&MigratePrepareRequest {
            spec: spec.clone(),
            uuid: None,
            dry_run: false,
        })
        .expect("prepare");
    assert_eq!(p.id, "0000:41:00.4");
    dst_vfio.set("0000:41:00.4", Ok(answer(false)));
    let r = check(Some(ProbeTarget::Pci(vf.clone())));
    assert_eq!(r.verdict, Verdict::Incompatible, "{r:?}");
    assert!(r
        .reasons
        .iter()
        .any(|x| x.rule == "migration" && x.why.contains("destination VF has no VFIO migration")));
    dst_vfio.set("0000:41:00.4", Ok(answer(true)));
    assert_eq!(
        check(Some(ProbeTarget::Pci(vf))).verdict,
        Verdict::Compatible
    );
}

/// An mdev spec without a destination device: the parent prepare would use
/// is judged through a type probe (nothing left behind), with a capacity
/// line; a host without room or without the type is incompatible.
#[test]
fn an_mdev_spec_is_judged_against_what_the_host_could_create() {
    use hostdev_model::{ParentName, TypeId, Uuid};
    use hostdev_sysfs::{FakeType, MdevSysfs};
    let probe = |migrates: bool| answer(migrates, true);
    let host = |max: u32, t: &std::path::Path| {
        let k = FakeKernel::new();
        k.add_parent("mtty", vec![FakeType::new("mtty-2", max)]);
        let vfio = Arc::new(FakeVfio::new());
        vfio.set_fallback(probe(true));
        Devices::new(
            Host::new(k, t, Callouts::none()),
            Vgpus::new(FakeSriov::new(), t),
            Vdpas::new(FakeVdpa::new(), t),
            vfio,
            t,
        )
    };
    let t1 = tempfile::tempdir().expect("tempdir");
    let src = host(2, t1.path());
    let u = Uuid::new_v4();
    let p: ParentName = "mtty".parse().expect("parent");
    let ty: TypeId = "mtty-2".parse().expect("type");
    src.mdev.sysfs.create(&p, &ty, &u).expect("create");
    let spec = src.migrate_export(&ExportTarget::Mdev(u)).expect("export");

    let t2 = tempfile::tempdir().expect("tempdir");
    let dst = host(1, t2.path());
    let check = |d: &Devices<(FakeKernel, FakeSriov, FakeVdpa)>| {
        d.migrate_check(&MigrateCheckRequest {
            spec: spec.clone(),
            device: None,
            mgmtdev: None,
            driver_policy: DriverPolicy::Exact,
        })
        .expect("check")
    };
    let r = check(&dst);
    assert_eq!(r.verdict, Verdict::CompatibleWithChanges, "{r:?}");
    assert!(r
        .reasons
        .iter()
        .any(|x| x.rule == "capacity" && x.why.contains("judged on mtty through a type probe")));
    assert!(
        dst.mdev.sysfs.devices().expect("devices").is_empty(),
        "the type probe's device is gone"
    );
    // Full: the one instance is taken.
    dst.mdev
        .sysfs
        .create(&p, &ty, &Uuid::new_v4())
        .expect("fill");
    let r = check(&dst);
    assert_eq!(r.verdict, Verdict::Incompatible);
    assert!(r.reasons[0].why.contains("mtty has no room left"), "{r:?}");
}

/// The fake SR-IOV interface, with one thing another process does at the
/// moment a PF's facts are read (between prepare's look and its define).
struct Racing {
    inner: FakeSriov,
    at: String,
    then: std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl PciSriov for Racing {
    fn pfs(&self) -> Result<Vec<PfInfo>, SriovError> {
        self.inner.pfs()
    }
    fn pf(&self, pf: &PciAddress) -> Result<Option<PfInfo>, SriovError> {
        self.inner.pf(pf)
    }
    fn vf_addresses(&self, pf: &PciAddress) -> Result<Vec<(u32, PciAddress)>, SriovError> {
        self.inner.vf_addresses(pf)
    }
    fn physfn(&self, vf: &PciAddress) -> Option<PciAddress> {
        self.inner.physfn(vf)
    }
    fn set_num_vfs(&self, pf: &PciAddress, n: u32) -> Result<(), SriovError> {
        self.inner.set_num_vfs(pf, n)
    }
    fn pf_facts(&self, pf: &PciAddress) -> hostdev_model::pool::MemberFacts {
        if pf.as_str() == self.at {
            let then = self.then.lock().expect("hook").take();
            if let Some(f) = then {
                f();
            }
        }
        self.inner.pf_facts(pf)
    }
}

impl SriovSysfs for Racing {
    fn vfs(&self, pf: &PciAddress) -> Result<Vec<VfInfo>, SriovError> {
        self.inner.vfs(pf)
    }
    fn set_type(&self, vf: &PciAddress, type_id: u32) -> Result<(), SriovError> {
        self.inner.set_type(vf, type_id)
    }
}

/// Two `migrate prepare` of a vGPU at once: the one that lost the race for
/// the first free VF failed with "VF … already has a vGPU definition;
/// undefine it first" while free VFs remained (advice that would break the
/// other migration). The loser takes the next free VF.
#[test]
fn a_prepare_that_loses_its_vf_to_another_takes_the_next_free_one() {
    use hostdev_model::vgpu::VgpuDefinition;
    let t = tempfile::tempdir().expect("tempdir");
    let s = FakeSriov::new();
    for pf in ["0000:41:00.0", "0000:c1:00.0"] {
        s.add_pf(pf, 4, 16384, &[(1150, "NVIDIA L40S-4Q", 4096)], true);
        s.set_num_vfs(&pf.parse().expect("pf"), 4).expect("vfs");
    }
    let racing = Racing {
        inner: s,
        at: "0000:c1:00.0".into(),
        then: std::sync::Mutex::new(None),
    };
    let d = Devices::new(
        Host::new(FakeKernel::new(), t.path(), Callouts::none()),
        Vgpus::new(racing, t.path()),
        Vdpas::new(FakeVdpa::new(), t.path()),
        Arc::new(FakeVfio::new()),
        t.path(),
    );
    let source: PciAddress = "0000:41:00.4".parse().expect("vf");
    d.vgpu.sriov.set_type(&source, 1150).expect("type");
    let spec = d
        .migrate_export(&ExportTarget::Vgpu(source))
        .expect("export");
    // The other migration defines the VF this one is about to take.
    let taken: PciAddress = "0000:41:00.5".parse().expect("vf");
    let root = t.path().to_path_buf();
    let other = taken.clone();
    *d.vgpu.sriov.then.lock().expect("hook") = Some(Box::new(move || {
        let lock = hostdev_store::HostLock::acquire(&hostdev_store::HostLock::path_under(&root))
            .expect("lock");
        hostdev_store::JsonDir::<VgpuDefinition>::new(&root, "etc/hostdev/vgpu.d")
            .save(
                &lock,
                other.as_str(),
                &VgpuDefinition {
                    vf: other.clone(),
                    pf: "0000:41:00.0".parse().expect("pf"),
                    vf_index: 1,
                    type_id: 1150,
                    type_name: "NVIDIA L40S-4Q".into(),
                    start: hostdev_model::StartPolicy::Manual,
                },
            )
            .expect("the other's definition");
    }));
    let p = d
        .migrate_prepare(&hostdev_core::api::MigratePrepareRequest {
            spec,
            uuid: None,
            dry_run: false,
        })
        .expect("the next free VF");
    assert_eq!(p.id, "0000:41:00.6", "{p:?}");
    assert!(
        d.vgpu.defs.exists("0000:41:00.5"),
        "the other's definition is left alone"
    );
}
