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
