//! The conformance suite against the in-process model: hostdev-sysfs's
//! fakes built from the simulator's own profiles (the same hardware the
//! FUSE lab serves), checked against the kernel's behaviour as the suite
//! writes it down. A rule broken on purpose in the model fails it.
#![allow(clippy::expect_used, clippy::unwrap_used)] // tests: a failed expectation is the report

use hostdev_kmodel::Mutant;
use hostdev_sim::profile::{parse, Profile, BUILTIN};
use hostdev_sysfs::sriov::FakeSriov;
use hostdev_sysfs::FakeKernel;
use hostdev_testkit::conformance::{self, Outcome, PfExpect};

fn profile(name: &str) -> Profile {
    let text = BUILTIN
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .unwrap_or_else(|| panic!("no built-in profile {name}"));
    parse(text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The fake mdev kernel with the profile's parents.
fn mdev_fake(name: &str) -> FakeKernel {
    let k = FakeKernel::new();
    for p in profile(name).parents {
        k.add(p);
    }
    k
}

/// The fake SR-IOV kernel with the profile's PFs, and what each must do.
fn sriov_fake(name: &str) -> (FakeSriov, Vec<PfExpect>) {
    let s = FakeSriov::new();
    let mut expect = Vec::new();
    for pf in profile(name).sriov {
        expect.push(conformance::pf_expect(&pf));
        s.add(pf, true);
    }
    (s, expect)
}

fn failed(outcomes: &[Outcome]) -> Vec<&str> {
    outcomes
        .iter()
        .filter(|(_, r)| r.is_err())
        .map(|(n, _)| n.as_str())
        .collect()
}

#[test]
fn the_model_behaves_as_the_kernels_sample_drivers() {
    let k = mdev_fake("samples");
    conformance::assert_all("model", &conformance::mdev(&k, &conformance::samples()));
}

#[test]
fn the_model_behaves_as_the_labs_igb_and_the_nvidia_profile() {
    let (s, _) = sriov_fake("igb");
    conformance::assert_all("model", &conformance::sriov(&s, &conformance::igb()));
    let (s, expect) = sriov_fake("nvidia-sriov");
    for pf in &expect {
        conformance::assert_all("model", &conformance::sriov(&s, pf));
    }
}

/// The suite can fail: the model with one rule broken on purpose (the
/// errno the old FakeSriov gave above the total; the per-type capacity the
/// simulator's profile once gave mtty) fails exactly the check of that rule.
#[test]
fn a_rule_broken_in_the_model_fails_its_check() {
    let (s, _) = sriov_fake("igb");
    s.with_model(|m| m.break_rule(Mutant::RangeAsBusy));
    let out = conformance::sriov(&s, &conformance::igb());
    assert_eq!(
        failed(&out),
        ["0000:01:00.0: refused counts change nothing"],
        "{out:?}"
    );
    let err = out
        .iter()
        .find_map(|(_, r)| r.as_ref().err())
        .map(String::as_str)
        .unwrap_or_default();
    assert!(
        err.contains("got Some(16), the kernel gives Some(34)"),
        "{err}"
    );

    let k = mdev_fake("samples");
    k.with_model(|m| m.break_rule(Mutant::SharedAsPerType));
    let out = conformance::mdev(&k, &conformance::samples());
    let f = failed(&out);
    assert!(
        f.contains(&"mtty: a create's effect on every type"),
        "{f:?}"
    );
    assert!(
        f.iter()
            .all(|n| n.ends_with("a create's effect on every type")),
        "{f:?}"
    );
}
