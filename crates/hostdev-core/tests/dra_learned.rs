//! The offer against prepares racing it (it takes no lock). Learned
//! capacity: the offer reads a parent's types, then its running devices,
//! and a device made in between is counted in both. Found by
//! `TestDRAScale`: after 160 prepares the `large` pool's removal case
//! rewrote 34 slices (two GPUs' devices had their costs changed by a
//! capacity one too high, then shrunk back). And a burst of claims
//! prepared while the host is looked at, which must never pass for
//! capacity someone else holds (found by the same test: a GPU's slices
//! flipped to held and back, two full rewrites of the pool).
#![allow(clippy::expect_used, clippy::unwrap_used)] // tests: a failed expectation is the report

use hostdev_core::api::{DraAllocated, DraClaim, DraPrepareRequest, DraResources, DraValue};
use hostdev_core::vdpa::Vdpas;
use hostdev_core::vgpu::Vgpus;
use hostdev_core::{Callouts, Devices, Host};
use hostdev_model::format::TypeInfo;
use hostdev_model::pool::MemberFacts;
use hostdev_model::{AttrName, ParentName, TypeId, Uuid};
use hostdev_sysfs::sriov::FakeSriov;
use hostdev_sysfs::{ActiveDevice, FakeKernel, FakeType, MdevSysfs, Readiness, SysfsError};
use hostdev_vdpa::FakeVdpa;
use std::sync::{Arc, Mutex};

/// Something done beside the offer each time it reads the running devices.
type During = Box<dyn FnMut() + Send>;

/// The fake kernel, where a device can be made by "someone else" (`armed`),
/// or anything done (`during`), just before the running devices are read.
struct Racy {
    k: Arc<FakeKernel>,
    armed: Mutex<Option<(ParentName, TypeId, Uuid)>>,
    during: Mutex<Option<During>>,
    /// Reads of a parent's types or of one type.
    type_reads: std::sync::atomic::AtomicUsize,
}

impl Racy {
    fn over(k: &Arc<FakeKernel>) -> Racy {
        Racy {
            k: k.clone(),
            armed: Mutex::new(None),
            during: Mutex::new(None),
            type_reads: Default::default(),
        }
    }
}

impl MdevSysfs for Racy {
    fn parents(&self) -> Result<Vec<ParentName>, SysfsError> {
        self.k.parents()
    }
    fn parent_exists(&self, p: &ParentName) -> bool {
        self.k.parent_exists(p)
    }
    fn types(&self, p: &ParentName) -> Result<Vec<TypeInfo>, SysfsError> {
        self.type_reads
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.k.types(p)
    }
    fn type_info(&self, p: &ParentName, t: &TypeId) -> Result<Option<TypeInfo>, SysfsError> {
        self.type_reads
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.k.type_info(p, t)
    }
    fn devices(&self) -> Result<Vec<ActiveDevice>, SysfsError> {
        if let Some((p, t, u)) = self.armed.lock().unwrap().take() {
            self.k.create(&p, &t, &u)?;
        }
        if let Some(f) = self.during.lock().unwrap().as_mut() {
            f();
        }
        self.k.devices()
    }
    fn parent_facts(&self, p: &ParentName) -> MemberFacts {
        self.k.parent_facts(p)
    }
    fn device(&self, u: &Uuid) -> Result<Option<ActiveDevice>, SysfsError> {
        self.k.device(u)
    }
    fn create(&self, p: &ParentName, t: &TypeId, u: &Uuid) -> Result<(), SysfsError> {
        self.k.create(p, t, u)
    }
    fn remove(&self, u: &Uuid) -> Result<(), SysfsError> {
        self.k.remove(u)
    }
    fn write_attr(&self, u: &Uuid, a: &AttrName, v: &str) -> Result<(), SysfsError> {
        self.k.write_attr(u, a, v)
    }
    fn readiness(&self, u: &Uuid) -> Readiness {
        self.k.readiness(u)
    }
}

fn slots(r: &DraResources, ty: &str) -> usize {
    r.devices
        .iter()
        .filter(|d| d.attributes.get("type") == Some(&DraValue::String(ty.into())))
        .count()
}

#[test]
fn a_device_made_between_the_types_and_the_devices_is_not_learned_as_more_capacity() {
    let d = tempfile::tempdir().unwrap();
    let k = Arc::new(FakeKernel::new());
    // A one-type parent: 4 of "small" or 2 of "big".
    let small = FakeType::new("nv-small", 4);
    let big = FakeType::new("nv-big", 2);
    k.add_parent("gpu1", vec![small, big]);
    let racy = Racy::over(&k);
    let h = Devices::new(
        Host::new(racy, d.path(), Callouts::none()),
        Vgpus::new(FakeSriov::new(), d.path()),
        Vdpas::new(FakeVdpa::new(), d.path()),
        Arc::new(hostdev_vfio::FakeVfio::new()),
        d.path(),
    );
    let first = h.dra_resources().unwrap();
    assert_eq!(slots(&first, "nv-small"), 4, "{first:#?}");
    // Someone else makes an nv-small between the two reads.
    let u: Uuid = "aaaaaaaa-0000-4000-8000-000000000001".parse().unwrap();
    *h.mdev.sysfs.armed.lock().unwrap() =
        Some(("gpu1".parse().unwrap(), "nv-small".parse().unwrap(), u));
    let raced = h.dra_resources().unwrap();
    assert_eq!(
        slots(&raced, "nv-small"),
        4,
        "a capacity of 5 was learned from 4 free plus 1 running: {raced:#?}"
    );
    // Gone again: the offer is the first one, devices and costs alike.
    k.remove(&u).unwrap();
    let after = h.dra_resources().unwrap();
    assert_eq!(after.devices, first.devices);
    assert_eq!(after.counter_sets, first.counter_sets);
}

/// A host of one parent, gpu1 (4 of nv-small or 2 of nv-big), whose mdev
/// sysfs is the [`Racy`] view of the returned kernel.
fn gpu1(root: &std::path::Path) -> (Arc<FakeKernel>, Devices<(Racy, FakeSriov, FakeVdpa)>) {
    let k = Arc::new(FakeKernel::new());
    k.add_parent(
        "gpu1",
        vec![FakeType::new("nv-small", 4), FakeType::new("nv-big", 2)],
    );
    let h = Devices::new(
        Host::new(Racy::over(&k), root, Callouts::none()),
        Vgpus::new(FakeSriov::new(), root),
        Vdpas::new(FakeVdpa::new(), root),
        Arc::new(hostdev_vfio::FakeVfio::new()),
        root,
    );
    (k, h)
}

fn name_of(r: &DraResources, ty: &str, slot: i64) -> String {
    r.devices
        .iter()
        .find(|d| {
            d.attributes.get("type") == Some(&DraValue::String(ty.into()))
                && d.attributes.get("slot") == Some(&DraValue::Int(slot))
        })
        .map(|d| d.name.clone())
        .unwrap()
}

#[test]
fn a_burst_of_claims_prepared_while_the_host_is_read_is_never_someone_elses_capacity() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().to_path_buf();
    let (k, h) = gpu1(&root);
    let before = h.dra_resources().unwrap();
    let names: Vec<String> = (0..4).map(|s| name_of(&before, "nv-small", s)).collect();
    // The kubelet's prepares, through another view of the same kernel and
    // state directory (another request's thread): one each time the offer
    // reads the running devices, as a burst of them would.
    let preparer = Devices::new(
        Host::new(k.clone(), &root, Callouts::none()),
        Vgpus::new(FakeSriov::new(), &root),
        Vdpas::new(FakeVdpa::new(), &root),
        Arc::new(hostdev_vfio::FakeVfio::new()),
        &root,
    );
    let mut next = 0;
    *h.mdev.sysfs.during.lock().unwrap() = Some(Box::new(move || {
        if let Some(name) = names.get(next) {
            let uid = format!("00000000-0000-4000-8000-0000000000{next:02x}");
            preparer
                .dra_prepare(&DraPrepareRequest {
                    claim: DraClaim {
                        uid: uid.parse().unwrap(),
                        namespace: "ns".into(),
                        name: format!("claim-{next}"),
                    },
                    devices: vec![DraAllocated {
                        request: "r".into(),
                        device: name.clone(),
                        config: None,
                    }],
                })
                .unwrap();
            next += 1;
        }
    }));
    let raced = h.dra_resources().unwrap();
    // The claims' devices are Kubernetes' own (the scheduler counts them):
    // the offer is the one without them, counters and devices alike.
    assert_eq!(
        raced.counter_sets, before.counter_sets,
        "a claim's device passed for someone else's: {raced:#?}"
    );
    assert_eq!(raced.devices, before.devices);
    assert!(
        !k.devices().unwrap().is_empty(),
        "nothing was prepared beside the offer: the test showed nothing"
    );
}

fn prepare_one(
    h: &Devices<(Racy, FakeSriov, FakeVdpa)>,
    n: u8,
    name: &str,
) -> Result<hostdev_core::api::DraPrepared, hostdev_core::CoreError> {
    h.dra_prepare(&DraPrepareRequest {
        claim: DraClaim {
            uid: format!("00000000-0000-4000-8000-0000000000{n:02x}")
                .parse()
                .unwrap(),
            namespace: "ns".into(),
            name: format!("claim-{n}"),
        },
        devices: vec![DraAllocated {
            request: "r".into(),
            device: name.into(),
            config: None,
        }],
    })
}

#[test]
fn a_prepare_resolves_names_from_the_learned_capacity_and_reads_types_only_before_any_was_learned()
{
    let d = tempfile::tempdir().unwrap();
    let root = d.path().to_path_buf();
    let (_, h) = gpu1(&root);
    let reads = || {
        h.mdev
            .sysfs
            .type_reads
            .load(std::sync::atomic::Ordering::SeqCst)
    };
    let offer = h.dra_resources().unwrap();
    let small = |s| name_of(&offer, "nv-small", s);
    // Learned by the offer: the prepare reads no type (the create reads
    // its own type's count, as any start does).
    let before = reads();
    prepare_one(&h, 1, &small(0)).unwrap();
    assert!(
        reads() - before <= 1,
        "the prepare read {} types",
        reads() - before
    );
    // A name the offer did not publish is no device.
    assert_eq!(
        prepare_one(&h, 3, &format!("{}9", small(3)))
            .unwrap_err()
            .code(),
        "dra.unknown_device"
    );
    // Nothing learned (the file lost): the prepare reads the types, as the
    // offer would, and still resolves the name.
    std::fs::remove_file(root.join("var/lib/hostdev/dra/capacity.json")).unwrap();
    let before = reads();
    prepare_one(&h, 4, &small(1)).unwrap();
    assert!(reads() - before > 1, "the types were not read");
}

/// A damaged capacity file (a count no kernel gives) while a device runs:
/// the offer published counters of 18446744073709551614 and 32 slots per
/// type (found by hand on the simulated demo host). Such a count is
/// forgotten and learned again from the kernel.
#[test]
fn a_count_no_kernel_could_give_is_learned_again() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().to_path_buf();
    let (k, h) = gpu1(&root);
    let before = h.dra_resources().unwrap();
    // Someone else's device: the parent is not idle, so what was learned
    // is kept over what the kernel shows free.
    k.create(
        &"gpu1".parse().unwrap(),
        &"nv-small".parse().unwrap(),
        &"aaaaaaaa-0000-4000-8000-0000000000ff".parse().unwrap(),
    )
    .unwrap();
    let file = root.join("var/lib/hostdev/dra/capacity.json");
    let mut learned: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    learned["parents"]["gpu1"]["types"]["nv-small"] = u64::MAX.into();
    std::fs::write(&file, learned.to_string()).unwrap();
    let after = h.dra_resources().unwrap();
    assert_eq!(slots(&after, "nv-small"), slots(&before, "nv-small"));
    let most = after
        .counter_sets
        .iter()
        .flat_map(|c| c.counters.values())
        .max()
        .copied()
        .unwrap();
    assert!(most <= 4, "a counter of {most}: {:#?}", after.counter_sets);
}
