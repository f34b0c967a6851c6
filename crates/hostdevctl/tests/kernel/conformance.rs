//! The conformance suite (hostdev-testkit's `conformance`) on the real
//! kernel: the sample mdev drivers and the lab's igb PF through hostdev's
//! real sysfs code. The same checks run against the in-process model
//! (hostdev-testkit's tests) and the FUSE lab (tests/conformance.rs); what
//! the kernel says here decides where they disagree.
//!
//! Owns: nothing but running the suite. Must not: leave devices or VFs.

use super::{kernel, remove_all};
use hostdev_sysfs::sriov::PciSriov;
use hostdev_sysfs::sriov::RealSriov;
use hostdev_sysfs::RealSysfs;
use hostdev_testkit::conformance;
use std::path::Path;

#[test]
#[ignore = "needs the real-kernel lab; run by `cargo xtask kernel-test`"]
fn the_kernels_sample_drivers_pass_the_conformance_suite() {
    let _k = kernel("conformance samples");
    remove_all();
    let s = RealSysfs::new(Path::new("/"));
    let out = conformance::mdev(&s, &conformance::samples());
    remove_all();
    conformance::assert_all("kernel", &out);
}

#[test]
#[ignore = "needs the real-kernel lab; run by `cargo xtask kernel-test`"]
fn the_labs_igb_passes_the_conformance_suite() {
    let _k = kernel("conformance igb");
    let s = RealSriov::new(Path::new("/"));
    let pf = super::sriov::igb_pf(&s);
    let expect = conformance::igb();
    assert_eq!(
        pf.as_str(),
        expect.address,
        "the lab's igb PF is where the suite expects it"
    );
    super::sriov::reset(&s, &pf);
    let out = conformance::sriov(&s, &expect);
    // With VFs enabled, hostdev's vGPU view still has no PF: igb is no
    // NVIDIA driver (it once took every SR-IOV PF for a vGPU PF).
    s.set_num_vfs(&pf, 2).expect("enable 2 VFs");
    let vgpus = hostdev_core::vgpu::Vgpus::new(RealSriov::new(Path::new("/")), Path::new("/"));
    let listed = vgpus.vgpu_pfs().expect("hostdev lists vGPU PFs");
    super::sriov::reset(&s, &pf);
    conformance::assert_all("kernel", &out);
    assert!(
        listed.is_empty(),
        "the igb PF was taken for a vGPU PF: {listed:?}"
    );
}
