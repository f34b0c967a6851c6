//! The conformance suite (hostdev-testkit's `conformance`) on the simulated
//! lab: hostdev's real sysfs code (`RealSysfs`, `RealSriov`) reading and
//! writing the FUSE-mounted simulator, which serves the same kernel model
//! the in-process fakes drive. The same checks run in process
//! (hostdev-testkit's tests) and on the real kernel (tests/kernel).
#![allow(clippy::expect_used, clippy::unwrap_used)] // tests: a failed expectation is the report

mod common;

use common::{require_fuse, Sim};
use hostdev_sysfs::sriov::RealSriov;
use hostdev_sysfs::RealSysfs;
use hostdev_testkit::conformance;

#[test]
#[ignore = "needs FUSE (fuse3) for the simulated lab; run by `cargo xtask test`"]
fn the_simulated_sample_drivers_pass_the_conformance_suite() {
    require_fuse("conformance samples");
    let sim = Sim::start("samples");
    let s = RealSysfs::new(sim.path());
    conformance::assert_all("FUSE lab", &conformance::mdev(&s, &conformance::samples()));
}

#[test]
#[ignore = "needs FUSE (fuse3) for the simulated lab; run by `cargo xtask test`"]
fn the_simulated_sriov_pfs_pass_the_conformance_suite() {
    require_fuse("conformance sriov");
    let sim = Sim::start("igb");
    let s = RealSriov::new(sim.path());
    conformance::assert_all("FUSE lab", &conformance::sriov(&s, &conformance::igb()));
    drop(sim);
    let sim = Sim::start("nvidia-sriov");
    let s = RealSriov::new(sim.path());
    let text = hostdev_sim::profile::BUILTIN
        .iter()
        .find(|(n, _)| *n == "nvidia-sriov")
        .map(|(_, t)| *t)
        .unwrap_or_default();
    let profile = hostdev_sim::profile::parse(text).expect("the built-in profile parses");
    for pf in &profile.sriov {
        let out = conformance::sriov(&s, &conformance::pf_expect(pf));
        conformance::assert_all("FUSE lab", &out);
    }
}
