//! Unit tests of the model, through its path view, on the simulator's
//! built-in profiles.

use super::*;

/// The simulator's built-in profiles (its `profiles/` directory).
const BUILTIN: &[(&str, &str)] = &[
    ("demo", include_str!("../../hostdev-sim/profiles/demo.toml")),
    (
        "samples",
        include_str!("../../hostdev-sim/profiles/samples.toml"),
    ),
    (
        "nvidia-sriov",
        include_str!("../../hostdev-sim/profiles/nvidia-sriov.toml"),
    ),
    (
        "vfio-ap",
        include_str!("../../hostdev-sim/profiles/vfio-ap.toml"),
    ),
];

fn kernel(name: &str) -> Kernel {
    let text = BUILTIN
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .unwrap();
    let p: Profile = toml::from_str(text).unwrap();
    p.check().unwrap();
    Kernel::new(p)
}

const U1: &str = "11111111-2222-4333-8444-555555555501";
const U2: &str = "11111111-2222-4333-8444-555555555502";

fn avail(k: &Kernel, p: &str, t: &str) -> String {
    String::from_utf8(
        k.read(&format!(
            "devices/{p}/mdev_supported_types/{t}/available_instances"
        ))
        .unwrap(),
    )
    .unwrap()
}

#[test]
fn one_type_per_parent() {
    let mut k = kernel("demo");
    let p = "pci0000:00/0000:3b:00.0";
    k.write(
        &format!("devices/{p}/mdev_supported_types/nvidia-230/create"),
        U1.as_bytes(),
    )
    .unwrap();
    assert_eq!(avail(&k, p, "nvidia-230"), "1\n");
    assert_eq!(avail(&k, p, "nvidia-222"), "0\n");
    assert_eq!(
        k.write(
            &format!("devices/{p}/mdev_supported_types/nvidia-222/create"),
            U2.as_bytes()
        ),
        Err(22)
    );
    assert!(matches!(
        k.node(&format!("bus/mdev/devices/{U1}")),
        Some(Node::Link(_))
    ));
    k.write(&format!("devices/{p}/{U1}/remove"), b"1").unwrap();
    assert_eq!(avail(&k, p, "nvidia-222"), "16\n");
}

#[test]
fn shared_budget_and_kernel_errnos() {
    let mut k = kernel("samples");
    let p = "virtual/mbochs/mbochs";
    k.write(
        &format!("devices/{p}/mdev_supported_types/mbochs-large/create"),
        U1.as_bytes(),
    )
    .unwrap();
    assert_eq!(avail(&k, p, "mbochs-small"), "48\n");
    assert_eq!(
        k.write(
            &format!("devices/{p}/mdev_supported_types/mbochs-small/create"),
            U1.as_bytes()
        ),
        Err(17)
    );
    assert_eq!(
        k.write(
            &format!("devices/{p}/mdev_supported_types/mbochs-small/create"),
            b"nope"
        ),
        Err(22)
    );
    let l = match k.node("class/mdev_bus/mbochs") {
        Some(Node::Link(l)) => l,
        other => panic!("{other:?}"),
    };
    assert_eq!(l, "../../devices/virtual/mbochs/mbochs");
}

#[test]
fn vfio_ap_validates_assignments() {
    let mut k = kernel("vfio-ap");
    let p = "vfio_ap/matrix";
    k.write(
        &format!("devices/{p}/mdev_supported_types/vfio_ap-passthrough/create"),
        U1.as_bytes(),
    )
    .unwrap();
    k.write(&format!("devices/{p}/{U1}/assign_adapter"), b"0x05\n")
        .unwrap();
    k.write(&format!("devices/{p}/{U1}/assign_domain"), b"71")
        .unwrap();
    assert_eq!(
        k.write(&format!("devices/{p}/{U1}/assign_domain"), b"banana"),
        Err(22)
    );
    assert_eq!(
        k.write(&format!("devices/{p}/{U1}/assign_adapter"), b"0x1ff"),
        Err(19)
    );
    assert_eq!(
        k.read(&format!("devices/{p}/{U1}/matrix")).unwrap(),
        b"05.0047\n"
    );
}

#[test]
fn sriov_vfs_and_card_local_types() {
    let mut k = kernel("nvidia-sriov");
    let pf = "0000:41:00.0";
    assert!(k
        .node(&format!("devices/pci0000:00/{pf}/virtfn0"))
        .is_none());
    k.write(&format!("devices/pci0000:00/{pf}/sriov_numvfs"), b"4")
        .unwrap();
    let vf = crate::pci::vf_address(pf, 4, 1, 0).unwrap();
    assert_eq!(vf, "0000:41:00.4");
    assert_eq!(
        crate::pci::vf_address(pf, 4, 1, 4).as_deref(),
        Some("0000:41:01.0")
    );
    std::thread::sleep(std::time::Duration::from_millis(30));
    let types = String::from_utf8(
        k.read(&format!(
            "devices/pci0000:00/{vf}/nvidia/creatable_vgpu_types"
        ))
        .unwrap(),
    )
    .unwrap();
    assert!(
        types.starts_with("ID    : vGPU Name\n1150  : NVIDIA L40S-4Q\n"),
        "{types}"
    );
    // 1428 is an id of the other card only.
    assert_eq!(
        k.write(
            &format!("devices/pci0000:00/{vf}/nvidia/current_vgpu_type"),
            b"1428"
        ),
        Err(22)
    );
    k.write(
        &format!("devices/pci0000:00/{vf}/nvidia/current_vgpu_type"),
        b"1152",
    )
    .unwrap();
    let header_only = String::from_utf8(
        k.read(&format!(
            "devices/pci0000:00/{vf}/nvidia/creatable_vgpu_types"
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(header_only, "ID    : vGPU Name\n");
    assert_eq!(
        k.write(&format!("devices/pci0000:00/{pf}/sriov_numvfs"), b"0"),
        Err(16)
    );
    k.reboot();
    assert!(k
        .node(&format!("devices/pci0000:00/{pf}/virtfn0"))
        .is_none());
}

#[test]
fn a_recreated_device_is_a_new_incarnation() {
    let mut k = kernel("demo");
    let p = "pci0000:00/0000:3b:00.0";
    let bus = format!("bus/mdev/devices/{U1}");
    let create = format!("devices/{p}/mdev_supported_types/nvidia-230/create");
    assert_eq!(k.incarnation(&bus), 0);
    k.write(&create, U1.as_bytes()).unwrap();
    let first = k.incarnation(&bus);
    assert_ne!(first, 0);
    assert_eq!(k.incarnation(&format!("devices/{p}/{U1}/mdev_type")), first);
    k.write(&format!("devices/{p}/{U1}/remove"), b"1").unwrap();
    k.write(&create, U1.as_bytes()).unwrap();
    assert_ne!(k.incarnation(&bus), first);
    assert_eq!(
        k.incarnation(&format!("devices/{p}/mdev_supported_types")),
        0
    );
}

#[test]
fn a_pf_driver_links_to_its_module_and_its_versions() {
    let k = kernel("nvidia-sriov");
    assert_eq!(
        k.node("devices/pci0000:00/0000:41:00.0/driver"),
        Some(Node::Link("../../../bus/pci/drivers/nvidia".into()))
    );
    assert_eq!(
        k.node("bus/pci/drivers/nvidia/module"),
        Some(Node::Link("../../../../module/nvidia".into()))
    );
    assert_eq!(k.read("module/nvidia/version").unwrap(), b"550.90.05\n");
    assert!(matches!(
        k.node("module/nvidia"),
        Some(Node::Dir(e)) if e.len() == 2
    ));
    assert!(k.node("module/mtty").is_none());
    assert!(k.read("module/mtty/version").is_err());
}

/// A PF like the lab's igb (offset 0x80, stride 2, igbvf on its VFs).
fn igb() -> Kernel {
    let mut pf = SriovProfile::nvidia("0000:01:00.0", 7, 0, &[]);
    pf.driver = "igb".into();
    pf.vf_driver = Some("igbvf".into());
    pf.first_vf_offset = 0x80;
    pf.vf_stride = 2;
    let mut k = Kernel::default();
    k.add_pf(pf, false);
    k
}

const PF: &str = "devices/pci0000:00/0000:01:00.0";

/// Text is read as the kernel's parsers read it (the hostile review's
/// findings): base-0 numbers (a leading 0 is octal), one trailing newline
/// and nothing else around them, create's 36 or 37 bytes, remove's 0,
/// kstrtobool's first character, driver_override cut at its newline.
#[test]
fn writes_are_parsed_as_the_kernel_parses_them() {
    let mut k = igb();
    assert_eq!(k.write(&format!("{PF}/sriov_numvfs"), b"010\n"), Err(34));
    assert_eq!(
        k.write(&format!("{PF}/sriov_numvfs"), b"  05 \n\n"),
        Err(22)
    );
    k.write(&format!("{PF}/sriov_numvfs"), b"06\n").unwrap();
    assert_eq!(k.pfs()[0].num_vfs, 6);
    k.write(&format!("{PF}/sriov_numvfs"), b"0").unwrap();
    for (text, on) in [("true", true), ("f\n", false), ("On", true), ("off", false)] {
        k.write(&format!("{PF}/sriov_drivers_autoprobe"), text.as_bytes())
            .unwrap();
        assert_eq!(k.autoprobe("0000:01:00.0"), Some(on), "{text}");
    }
    assert_eq!(
        k.write(&format!("{PF}/sriov_drivers_autoprobe"), b"x"),
        Err(22)
    );
    k.write(&format!("{PF}/sriov_numvfs"), b"1").unwrap();
    let vf = "devices/pci0000:00/0000:01:10.0";
    k.write(&format!("{vf}/driver_override"), b" vfio-pci \nrest")
        .unwrap();
    assert_eq!(
        k.driver_override("0000:01:10.0").as_deref(),
        Some(" vfio-pci ")
    );
    assert_eq!(
        k.write(&format!("{vf}/driver_override"), &[b'x'; 4095]),
        Err(22)
    );
    assert_eq!(k.write("bus/pci/drivers_probe", b"0000:01:1f.7"), Err(19));

    let mut m = kernel("samples");
    let create =
        |u: &str| format!("devices/virtual/mtty/mtty/mdev_supported_types/mtty-1/create{u}");
    assert_eq!(
        m.write(&create(""), format!("{U1}\n\n").as_bytes()),
        Err(22)
    );
    m.write(&create(""), format!("{U1}\n").as_bytes()).unwrap();
    let remove = format!("devices/virtual/mtty/mtty/{U1}/remove");
    m.write(&remove, b"0").unwrap();
    assert_eq!(m.devices().len(), 1, "remove 0 removes nothing");
    assert_eq!(m.write(&remove, b"yes"), Err(22));
    m.write(&remove, b"1\n").unwrap();
    assert!(m.devices().is_empty());
}

/// A VF of a PF with autoprobe off and no override cannot be probed; the
/// override alone may take it; vfio-pci never takes an NVIDIA VF.
#[test]
fn vfs_bind_as_the_labs_kernel_binds_them() {
    let mut k = igb();
    let vf = "0000:01:10.0";
    k.set_num_vfs("0000:01:00.0", 2).unwrap();
    assert_eq!(k.pci_driver(vf).as_deref(), Some("igbvf"));
    assert_ne!(k.vf_group(vf), k.vf_group("0000:01:10.2"));
    assert_eq!(
        k.bind(vf, "vfio-pci"),
        Err(19),
        "no override: vfio-pci has no ids"
    );
    k.unbind(vf, "igbvf").unwrap();
    assert_eq!(k.unbind(vf, "igbvf"), Err(19));
    k.set_num_vfs("0000:01:00.0", 0).unwrap();
    k.set_autoprobe("0000:01:00.0", false).unwrap();
    k.set_num_vfs("0000:01:00.0", 1).unwrap();
    assert_eq!(k.pci_driver(vf), None);
    k.drivers_probe(vf).unwrap();
    assert_eq!(
        k.pci_driver(vf),
        None,
        "autoprobe off, no override: not probed"
    );
    assert_eq!(k.bind(vf, "igbvf"), Err(19));
    k.set_driver_override(vf, "vfio-pci").unwrap();
    assert_eq!(
        k.bind(vf, "igbvf"),
        Err(19),
        "the override alone may take it"
    );
    k.drivers_probe(vf).unwrap();
    assert_eq!(k.pci_driver(vf).as_deref(), Some("vfio-pci"));
    assert_eq!(k.bind(vf, "vfio-pci"), Err(16), "bound already");

    let mut n = kernel("nvidia-sriov");
    n.set_num_vfs("0000:41:00.0", 1).unwrap();
    let nvf = "0000:41:00.4";
    assert_eq!(n.pci_driver(nvf).as_deref(), Some("nvidia"));
    n.unbind(nvf, "nvidia").unwrap();
    n.set_driver_override(nvf, "vfio-pci").unwrap();
    n.drivers_probe(nvf).unwrap();
    assert_eq!(n.pci_driver(nvf), None, "vfio-pci never takes an NVIDIA VF");
}

/// VFs past the last bus are ENOMEM with nothing added; an unbound PF
/// driver takes its VFs with it (its remove disables SR-IOV).
#[test]
fn sriov_refuses_vfs_past_the_last_bus_and_a_pf_unbind_takes_the_vfs() {
    let mut pf = SriovProfile::nvidia("0000:ff:1f.0", 7, 0, &[]);
    pf.vf_driver = None;
    let mut k = Kernel::default();
    k.add_pf(pf, false);
    assert_eq!(k.set_num_vfs("0000:ff:1f.0", 7), Err(12));
    assert_eq!(k.pfs()[0].num_vfs, 0);
    k.set_num_vfs("0000:ff:1f.0", 3).unwrap();
    let mut k = igb();
    k.set_num_vfs("0000:01:00.0", 2).unwrap();
    k.bind_pf_driver("0000:01:00.0", false);
    assert_eq!(k.pfs()[0].num_vfs, 0);
    assert_eq!(k.set_num_vfs("0000:01:00.0", 1), Err(2));
}

/// Of several rows that could fire, one failure fires and only it counts
/// as fired; `after` counts every matching operation; a fault stands for
/// the driver, so the core's own refusals (a UUID in use, another nonzero
/// count) come first.
#[test]
fn the_fault_table_fires_one_failure_after_the_cores_own_checks() {
    let mut k = igb();
    k.inject(Fault::errno(FaultOp::Numvfs, "EIO").times(1));
    k.inject(Fault::errno(FaultOp::Numvfs, "EBUSY").times(1));
    assert_eq!(k.set_num_vfs("0000:01:00.0", 1), Err(5));
    assert_eq!(
        k.set_num_vfs("0000:01:00.0", 1),
        Err(16),
        "the second row was not spent"
    );
    k.set_num_vfs("0000:01:00.0", 1).unwrap();
    k.inject(Fault::errno(FaultOp::Numvfs, "EIO"));
    assert_eq!(
        k.set_num_vfs("0000:01:00.0", 2),
        Err(16),
        "EBUSY is the core's, before the driver"
    );

    let mut m = kernel("samples");
    let (p, t) = ("mtty", "mtty-1");
    m.create(p, t, U1).unwrap();
    m.inject(Fault::errno(FaultOp::Create, "EIO"));
    assert_eq!(
        m.create(p, t, U1),
        Err(17),
        "a UUID in use is the core's answer"
    );
    assert_eq!(m.create(p, t, U2), Err(5));
    let mut row = Fault::effect(FaultOp::Create, Effect::LateBind);
    row.polls = 2;
    let mut m = kernel("samples");
    m.inject(row);
    m.inject(Fault::errno(FaultOp::Create, "ENOSPC").after(1).times(1));
    m.create(p, t, U1).unwrap();
    assert_eq!(m.poll_bound(U1), Some(false));
    assert_eq!(m.create(p, t, U2), Err(28));
}

/// Profiles that would make a broken sysfs or a PF the kernel refuses are
/// refused with a sentence.
#[test]
fn a_profile_the_kernel_could_not_have_is_refused() {
    let bad = |edit: &dyn Fn(&mut Profile)| {
        let mut p = Profile::default();
        p.parents.push(ParentProfile::new(
            "mtty",
            Policy::PerType,
            0,
            vec![TypeProfile::new("mtty-1", 1)],
        ));
        p.sriov
            .push(SriovProfile::nvidia("0000:41:00.0", 4, 0, &[]));
        edit(&mut p);
        p.check().expect_err("refused")
    };
    assert!(bad(&|p| p.parents[0].name = "a/b".into()).contains("sysfs entry"));
    assert!(bad(&|p| p.parents[0].devpath = Some("../../etc".into())).contains("devpath"));
    assert!(bad(&|p| p.parents[0].types[0].attrs = vec!["remove".into()]).contains("attribute"));
    assert!(bad(&|p| p.parents[0].create_latency_ms = u64::MAX).contains("ms"));
    assert!(bad(&|p| p.sriov[0].first_vf_offset = 0).contains("First VF Offset 0"));
    assert!(bad(&|p| p.sriov[0].total_vfs = 70_000).contains("u16"));
    assert!(bad(&|p| p.sriov[0].cap_total_vfs = Some(2)).contains("capability"));
    assert!(bad(&|p| p
        .faults
        .push(Fault::errno(FaultOp::Remove, "EIO").for_device(U1)))
    .contains("device"));
}

/// A VF is found by its address alone (the arithmetic backwards, not a scan
/// of every VF): each enabled VF of an igb-like PF (offset 0x80, stride 2)
/// has its directory, link and files; addresses between strides, past the
/// enabled count or of a disabled VF have none.
#[test]
fn vfs_are_found_by_address_and_nothing_between_them() {
    let mut k = igb();
    k.write(&format!("{PF}/sriov_numvfs"), b"3").unwrap();
    for vf in ["0000:01:10.0", "0000:01:10.2", "0000:01:10.4"] {
        assert!(
            matches!(
                k.node(&format!("bus/pci/devices/{vf}")),
                Some(Node::Link(_))
            ),
            "{vf}"
        );
        assert!(
            matches!(
                k.node(&format!("devices/pci0000:00/{vf}")),
                Some(Node::Dir(_))
            ),
            "{vf}"
        );
        assert_eq!(
            k.node(&format!("devices/pci0000:00/{vf}/physfn")),
            Some(Node::Link("../0000:01:00.0".into())),
            "{vf}"
        );
        assert_eq!(k.pf_of(vf), Some("0000:01:00.0"));
    }
    for none in [
        "0000:01:10.1",
        "0000:01:10.6",
        "0000:01:0f.6",
        "0001:01:10.0",
    ] {
        assert_eq!(k.node(&format!("bus/pci/devices/{none}")), None, "{none}");
        assert_eq!(
            k.node(&format!("devices/pci0000:00/{none}")),
            None,
            "{none}"
        );
    }
    k.write(&format!("{PF}/sriov_numvfs"), b"0").unwrap();
    assert_eq!(
        k.node("bus/pci/devices/0000:01:10.0"),
        None,
        "gone with numvfs 0"
    );
}
