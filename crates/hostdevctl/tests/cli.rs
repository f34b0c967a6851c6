//! Every promise `--help` makes: the test walks every subcommand's `--help`
//! (as a user reads it), and every flag found there must have a row below
//! that shows it changes the output or the behaviour on the simulated lab
//! (`D`: the same steps without and with the flag must differ), or name the
//! test that exercises it where the lab cannot (`T`: vDPA kernel objects,
//! VFIO probes). A flag without a row fails the test, so a new flag needs proof.
//! Every command also runs with `-o json`: stdout parses as JSON, and so
//! does each stderr line (warnings and errors).
//!
//! Needs FUSE: `#[ignore]`d with its reason and run by `cargo xtask test`.

#![allow(clippy::expect_used, clippy::unwrap_used)] // tests: a failed expectation is the report

mod common;

use common::{require_fuse, Bins, Sim};
use std::collections::BTreeMap;
use std::path::Path;

const U1: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const U2: &str = "aaaaaaaa-0000-4000-8000-000000000002";
const PF: &str = "0000:41:00.0";

/// One proof: how a flag of a command shows what it does.
enum Proof {
    /// Setup steps; the command without the flag; with it; what to look at after.
    D(&'static str, &'static str, &'static str, &'static str),
    /// A test file, a function in it, and the argument it passes (the flag
    /// or its short form), where the lab cannot show the flag's effect.
    T(&'static str, &'static str, &'static str),
}
use Proof::{D, T};

/// (command path, flag, proof). Steps are `;`-separated hostdevctl argument
/// lists; `!write PATH TEXT`, `!exec PATH TEXT` (an executable),
/// `!save PATH ARGS` (stdout into PATH) and `!show PATH` (a file or a
/// directory's files) act on the lab root; `@` in a step is the lab root.
fn rows() -> Vec<(&'static str, &'static str, Proof)> {
    vec![
        // mdev define
        ("mdev define", "--uuid", D("", "mdev define -p mtty -t mtty-1", "mdev define -u U1 -p mtty -t mtty-1", "mdev list -d -u U1")),
        ("mdev define", "--auto", D("", "mdev define -u U1 -p mtty -t mtty-1", "mdev define -u U1 -p mtty -t mtty-1 --auto", "mdev list -d")),
        ("mdev define", "--parent", D("", "mdev define -u U1 -t mtty-1", "mdev define -u U1 -p mtty -t mtty-1", "mdev list -d")),
        ("mdev define", "--type", D("", "mdev define -u U1 -p mtty", "mdev define -u U1 -p mtty -t mtty-1", "mdev list -d")),
        ("mdev define", "--jsonfile", D("!write f.json {\"mdev_type\":\"mtty-2\",\"start\":\"auto\",\"attrs\":[]}", "mdev define -u U1 -p mtty -t mtty-1", "mdev define -u U1 -p mtty --jsonfile @/f.json", "mdev list -d")),
        // mdev undefine
        ("mdev undefine", "--uuid", D("mdev define -u U1 -p mtty -t mtty-1", "mdev undefine", "mdev undefine -u U1", "mdev list -d")),
        ("mdev undefine", "--parent", D("mdev define -u U1 -p mtty -t mtty-1", "mdev undefine -u U1", "mdev undefine -u U1 -p 0000:3b:00.0", "mdev list -d")),
        // mdev modify
        ("mdev modify", "--uuid", D("mdev define -u U1 -p mtty -t mtty-1", "mdev modify --auto", "mdev modify -u U1 --auto", "mdev list -d")),
        ("mdev modify", "--parent", D("mdev define -u U1 -p mtty -t mtty-1", "mdev modify -u U1 --auto", "mdev modify -u U1 -p 0000:3b:00.0 --auto", "mdev list -d")),
        ("mdev modify", "--type", D("mdev define -u U1 -p mtty -t mtty-1", "mdev modify -u U1 --auto", "mdev modify -u U1 --auto -t mtty-2", "mdev list -d")),
        ("mdev modify", "--addattr", D("mdev define -u U1 -p mtty -t mtty-1", "mdev modify -u U1 --auto", "mdev modify -u U1 --auto --addattr foo --value 1", "mdev list -d -v")),
        ("mdev modify", "--delattr", D("mdev define -u U1 -p mtty -t mtty-1;mdev modify -u U1 --addattr foo --value 1", "mdev modify -u U1 --auto", "mdev modify -u U1 --auto --delattr", "mdev list -d -v")),
        ("mdev modify", "--index", D("mdev define -u U1 -p mtty -t mtty-1;mdev modify -u U1 --addattr a --value 1;mdev modify -u U1 --addattr b --value 2", "mdev modify -u U1 --delattr", "mdev modify -u U1 --delattr -i 1", "mdev list -d -v")),
        ("mdev modify", "--value", D("mdev define -u U1 -p mtty -t mtty-1", "mdev modify -u U1 --addattr foo", "mdev modify -u U1 --addattr foo --value 1", "mdev list -d -v")),
        ("mdev modify", "--auto", D("mdev define -u U1 -p mtty -t mtty-1", "mdev modify -u U1", "mdev modify -u U1 --auto", "mdev list -d")),
        ("mdev modify", "--manual", D("mdev define -u U1 -p mtty -t mtty-1 --auto", "mdev modify -u U1", "mdev modify -u U1 --manual", "mdev list -d")),
        ("mdev modify", "--jsonfile", D("mdev define -u U1 -p mtty -t mtty-1;!write f.json {\"mdev_type\":\"mtty-2\",\"start\":\"manual\",\"attrs\":[]}", "mdev modify -u U1", "mdev modify -u U1 --jsonfile @/f.json", "mdev list -d")),
        ("mdev modify", "--live", D("mdev define -u U1 -p mtty -t mtty-1;mdev start -u U1", "mdev modify -u U1 --addattr foo --value 1", "mdev modify -u U1 --addattr foo --value 1 --live", "mdev list -v;mdev list -d -v")),
        ("mdev modify", "--defined", D("mdev define -u U1 -p mtty -t mtty-1;mdev start -u U1", "mdev modify -u U1 --live --addattr foo --value 1", "mdev modify -u U1 --live --defined --addattr foo --value 1", "mdev list -d -v")),
        ("mdev modify", "--force", D("mdev define -u U1 -p mtty -t mtty-1;!exec etc/mdevctl.d/scripts.d/callouts/refuse #!/bin/sh\nexit 1\n", "mdev modify -u U1 --auto", "mdev modify -u U1 --auto --force", "mdev list -d")),
        // mdev start
        ("mdev start", "--uuid", D("mdev define -u U1 -p mtty -t mtty-1", "mdev start -p mtty -t mtty-2", "mdev start -u U1", "mdev list -u U1")),
        ("mdev start", "--parent", D("", "mdev start -u U2 -t mtty-1", "mdev start -u U2 -p mtty -t mtty-1", "mdev list")),
        ("mdev start", "--type", D("", "mdev start -u U2 -p mtty", "mdev start -u U2 -p mtty -t mtty-1", "mdev list")),
        ("mdev start", "--jsonfile", D("!write f.json {\"mdev_type\":\"mtty-2\",\"start\":\"manual\",\"attrs\":[]}", "mdev start -u U2 -p mtty -t mtty-1", "mdev start -u U2 -p mtty --jsonfile @/f.json", "mdev list")),
        ("mdev stop", "--uuid", D("mdev start -u U1 -p mtty -t mtty-1", "mdev stop", "mdev stop -u U1", "mdev list")),
        // mdev list / types
        ("mdev list", "--defined", D("mdev define -u U1 -p mtty -t mtty-1", "mdev list", "mdev list -d", "")),
        ("mdev list", "--dumpjson", D("mdev start -u U1 -p mtty -t mtty-1", "mdev list", "mdev list --dumpjson", "")),
        ("mdev list", "--verbose", D("mdev define -u U1 -p mtty -t mtty-1;mdev modify -u U1 --addattr foo --value 1", "mdev list -d", "mdev list -d -v", "")),
        ("mdev list", "--uuid", D("mdev start -u U1 -p mtty -t mtty-1;mdev start -u U2 -p mtty -t mtty-1", "mdev list", "mdev list -u U1", "")),
        ("mdev list", "--parent", D("mdev start -u U1 -p mtty -t mtty-1;mdev start -u U2 -p 0000:3b:00.0 -t nvidia-222", "mdev list", "mdev list -p mtty", "")),
        ("mdev types", "--parent", D("", "mdev types", "mdev types -p mtty", "")),
        ("mdev types", "--dumpjson", D("", "mdev types", "mdev types --dumpjson", "")),
        // vdpa: definitions need no kernel; creating needs the vdpa module (kernel tier)
        ("vdpa add", "--mgmtdev", T("kernel/main.rs", "vdpa_add_show_del_agree_with_iproute2", "--mgmtdev")),
        ("vdpa add", "--mac", T("kernel/main.rs", "vdpa_add_show_del_agree_with_iproute2", "--mac")),
        ("vdpa add", "--mtu", T("kernel/main.rs", "vdpa_add_show_del_agree_with_iproute2", "--mtu")),
        ("vdpa add", "--max-vqp", T("kernel/main.rs", "vdpa_errors_are_clear_and_leave_nothing_half_created", "--max-vqp")),
        ("vdpa add", "--features", T("kernel/main.rs", "vdpa_errors_are_clear_and_leave_nothing_half_created", "--features")),
        ("vdpa define", "--mgmtdev", D("", "vdpa define v0", "vdpa define v0 --mgmtdev vdpasim_net", "vdpa list --defined")),
        ("vdpa define", "--mac", D("", "vdpa define v0 --mgmtdev vdpasim_net", "vdpa define v0 --mgmtdev vdpasim_net --mac 02:00:00:00:00:01", "-o json vdpa list --defined")),
        ("vdpa define", "--mtu", D("", "vdpa define v0 --mgmtdev vdpasim_net", "vdpa define v0 --mgmtdev vdpasim_net --mtu 9000", "-o json vdpa list --defined")),
        ("vdpa define", "--max-vqp", D("", "vdpa define v0 --mgmtdev vdpasim_net", "vdpa define v0 --mgmtdev vdpasim_net --max-vqp 2", "-o json vdpa list --defined")),
        ("vdpa define", "--features", D("", "vdpa define v0 --mgmtdev vdpasim_net", "vdpa define v0 --mgmtdev vdpasim_net --features 0x10000", "-o json vdpa list --defined")),
        ("vdpa define", "--auto", D("", "vdpa define v0 --mgmtdev vdpasim_net", "vdpa define v0 --mgmtdev vdpasim_net --auto", "vdpa list --defined")),
        ("vdpa modify", "--mac", D("vdpa define v0 --mgmtdev vdpasim_net", "vdpa modify v0", "vdpa modify v0 --mac 02:00:00:00:00:02", "-o json vdpa list --defined")),
        ("vdpa modify", "--mtu", D("vdpa define v0 --mgmtdev vdpasim_net", "vdpa modify v0", "vdpa modify v0 --mtu 4000", "-o json vdpa list --defined")),
        ("vdpa modify", "--max-vqp", D("vdpa define v0 --mgmtdev vdpasim_net", "vdpa modify v0", "vdpa modify v0 --max-vqp 4", "-o json vdpa list --defined")),
        ("vdpa modify", "--features", D("vdpa define v0 --mgmtdev vdpasim_net", "vdpa modify v0", "vdpa modify v0 --features 0x20", "-o json vdpa list --defined")),
        ("vdpa modify", "--auto", D("vdpa define v0 --mgmtdev vdpasim_net", "vdpa modify v0", "vdpa modify v0 --auto", "vdpa list --defined")),
        ("vdpa modify", "--manual", D("vdpa define v0 --mgmtdev vdpasim_net --auto", "vdpa modify v0", "vdpa modify v0 --manual", "vdpa list --defined")),
        ("vdpa list", "--defined", D("vdpa define v0 --mgmtdev vdpasim_net", "vdpa list", "vdpa list --defined", "")),
        ("vdpa show", "--libvirt", T("kernel/main.rs", "vdpa_add_show_del_agree_with_iproute2", "--libvirt")),
        ("vdpa import", "--name", D("vdpa define v0 --mgmtdev vdpasim_net;!save e.json vdpa export v0;vdpa undefine v0", "vdpa import @/e.json --define", "vdpa import @/e.json --define --name v9", "vdpa list --defined")),
        ("vdpa import", "--define", D("vdpa define v0 --mgmtdev vdpasim_net;!save e.json vdpa export v0;vdpa undefine v0", "vdpa import @/e.json", "vdpa import @/e.json --define", "vdpa list --defined")),
        ("vdpa import", "--start", D("vdpa define v0 --mgmtdev vdpasim_net;!save e.json vdpa export v0;vdpa undefine v0", "vdpa import @/e.json --define", "vdpa import @/e.json --define --start", "vdpa list --defined")),
        // vgpu
        ("vgpu types", "--pf", D("vgpu enable --pf PF --numvfs 2", "vgpu types", "vgpu types --pf 0000:3b:00.0", "")),
        ("vgpu list", "--defined", D("vgpu enable --pf PF --numvfs 2;vgpu define --vf VF1 -t 1150", "vgpu list", "vgpu list -d", "")),
        ("vgpu define", "--vf", D("vgpu enable --pf PF --numvfs 2", "vgpu define -t 1150", "vgpu define --vf VF1 -t 1150", "vgpu list -d")),
        ("vgpu define", "--pf", D("vgpu enable --pf PF --numvfs 2", "vgpu define -t 1150", "vgpu define --pf PF -t 1150", "vgpu list -d")),
        ("vgpu define", "--type", D("vgpu enable --pf PF --numvfs 2", "vgpu define --vf VF1", "vgpu define --vf VF1 -t 1150", "vgpu list -d")),
        ("vgpu define", "--auto", D("vgpu enable --pf PF --numvfs 2", "vgpu define --vf VF1 -t 1150", "vgpu define --vf VF1 -t 1150 --auto", "vgpu list -d")),
        ("vgpu undefine", "--vf", D("vgpu enable --pf PF --numvfs 2;vgpu define --vf VF1 -t 1150", "vgpu undefine", "vgpu undefine --vf VF1", "vgpu list -d")),
        ("vgpu start", "--vf", D("vgpu enable --pf PF --numvfs 2;vgpu define --vf VF1 -t 1150", "vgpu start", "vgpu start --vf VF1", "vgpu list")),
        ("vgpu stop", "--vf", D("vgpu enable --pf PF --numvfs 2;vgpu define --vf VF1 -t 1150;vgpu start --vf VF1", "vgpu stop", "vgpu stop --vf VF1", "vgpu list")),
        ("vgpu enable", "--pf", D("", "vgpu enable --numvfs 2", "vgpu enable --pf PF --numvfs 2", "vgpu list")),
        ("vgpu enable", "--numvfs", D("", "vgpu enable --pf PF --numvfs 1", "vgpu enable --pf PF --numvfs 2", "vgpu list")),
        ("vgpu enable", "--auto", D("", "vgpu enable --pf PF --numvfs 2", "vgpu enable --pf PF --numvfs 2 --auto", "!show etc/hostdev/sriov.d")),
        ("vgpu libvirt", "--vf", D("vgpu enable --pf PF --numvfs 2;vgpu define --vf VF1 -t 1150;vgpu start --vf VF1", "vgpu libvirt", "vgpu libvirt --vf VF1", "")),
        ("vgpu disable", "--pf", D("vgpu enable --pf PF --numvfs 2 --auto", "vgpu disable", "vgpu disable --pf PF", "vgpu list")),
        // pools
        ("pool allocate", "--consumer", D(POOL, "pool allocate p", "pool allocate p --consumer vm-1", "pool show p")),
        ("pool allocate", "--uuid", D(POOL, "pool allocate p --consumer vm-1", "pool allocate p --consumer vm-1 --uuid U1", "mdev list -u U1")),
        ("pool allocate", "--ttl", D(POOL, "pool allocate p --consumer vm-1", "pool allocate p --consumer vm-1 --ttl 1h", "-o json pool show p")),
        ("pool release", "--consumer", D(POOL_HELD, "pool release", "pool release --consumer vm-1", "mdev list")),
        ("pool release", "--device", D(POOL_HELD, "pool release", "pool release --device U1", "mdev list")),
        ("pool bind", "--uuid", D(POOL, "pool bind p", "pool bind p --uuid U2", "pool show p")),
        ("pool unbind", "--uuid", D(POOL_BOUND, "pool unbind", "pool unbind --uuid U2", "pool show p")),
        // probes and migration need VFIO (kernel tier) or two hosts (the migrate tier)
        ("probe", "--parent", T("kernel/probe.rs", "a_type_probe_leaves_no_device_even_when_killed", "--parent")),
        ("probe", "--type", T("kernel/probe.rs", "a_type_probe_leaves_no_device_even_when_killed", "--type")),
        ("migrate check", "--device", T("migrate.rs", "a_vgpu_spec_travels_by_type_name_between_cards_that_number_it_differently", "--device")),
        ("migrate check", "--mgmtdev", T("kernel/migrate.rs", "a_vdpa_spec_is_checked_against_management_devices_and_prepared_identically", "--mgmtdev")),
        ("migrate check", "--driver-policy", D(SPEC, "migrate check @/s.json", "migrate check @/s.json --driver-policy driver", "")),
        ("migrate prepare", "--uuid", T("migrate.rs", "a_vgpu_spec_travels_by_type_name_between_cards_that_number_it_differently", "--uuid")),
        ("migrate prepare", "--dry-run", T("migrate.rs", "a_vgpu_spec_travels_by_type_name_between_cards_that_number_it_differently", "--dry-run")),
        ("libvirt-hook annotate", "--print", T("migrate.rs", "a_domain_with_a_pool_vgpu_arrives_through_the_hooks_real_input_and_output", "--print")),
        // the host file
        ("plan", "--file", D("!write h.toml [[mdev]]\nparent = \"mtty\"\ntype = \"mtty-1\"\ncount = 1\n", "plan", "plan --file @/h.toml", "")),
        ("plan", "--from-vgpu-device-manager", T("host.rs", "a_vgpu_device_manager_config_is_planned_and_its_translation_applied", "--from-vgpu-device-manager")),
        ("plan", "--config", T("host.rs", "a_vgpu_device_manager_config_is_planned_and_its_translation_applied", "-c")),
        ("plan", "--show-file", T("host.rs", "a_vgpu_device_manager_config_is_planned_and_its_translation_applied", "--show-file")),
        ("apply", "--file", D("!write h.toml [[mdev]]\nparent = \"mtty\"\ntype = \"mtty-1\"\ncount = 1\n", "apply", "apply --file @/h.toml", "mdev list -d")),
        // Forcing a held device is the host tier's (pools.db holds it there);
        // here: a --force that names nothing blocked is said.
        ("apply", "--force", D("!write h.toml [[mdev]]\nparent = \"mtty\"\ntype = \"mtty-1\"\ncount = 1\n", "apply --file @/h.toml", "apply --file @/h.toml --force U1", "")),
        // the rest
        ("autostart", "--wait", T("sim.rs", "reboot_then_autostart_restores_and_a_late_parent_is_waited_for", "--wait")),
        ("udev-rule", "--install", D("", "udev-rule", "udev-rule --install", "!show etc/udev/rules.d")),
        ("completions", "--command", D("", "completions bash", "completions bash --command mdevctl", "")),
    ]
}

const SPEC: &str = "vgpu enable --pf PF --numvfs 2;vgpu define --vf VF1 -t 1150;vgpu start --vf VF1;!save s.json migrate export VF1";
const POOL: &str = "!write etc/hostdev/pools.d/p.toml kind = \"mdev\"\ntype = \"mtty-1\"\nmode = \"on-demand\"\n[members]\nparents = [\"mtty\"]\n";
const POOL_HELD: &str = "!write etc/hostdev/pools.d/p.toml kind = \"mdev\"\ntype = \"mtty-1\"\nmode = \"on-demand\"\n[members]\nparents = [\"mtty\"]\n;pool allocate p --consumer vm-1 --uuid U1";
const POOL_BOUND: &str = "!write etc/hostdev/pools.d/p.toml kind = \"mdev\"\ntype = \"mtty-1\"\nmode = \"on-demand\"\n[members]\nparents = [\"mtty\"]\n;pool bind p --uuid U2";

/// Commands without flags of their own, for the `-o json` pass: (path, setup, args).
fn flagless() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        ("vdpa mgmtdev list", "", "vdpa mgmtdev list"),
        ("vdpa del", "", "vdpa del v0"),
        ("vdpa undefine", "vdpa define v0 --mgmtdev vdpasim_net", "vdpa undefine v0"),
        ("vdpa start", "vdpa define v0 --mgmtdev vdpasim_net", "vdpa start v0"),
        ("vdpa stop", "", "vdpa stop v0"),
        ("vdpa export", "vdpa define v0 --mgmtdev vdpasim_net", "vdpa export v0"),
        ("vgpu disable", "vgpu enable --pf PF --numvfs 2", "vgpu disable --pf PF"),
        ("vdpa show", "vdpa define v0 --mgmtdev vdpasim_net", "vdpa show v0"),
        ("vdpa add", "", "vdpa add v1 --mgmtdev vdpasim_net"),
        ("pool list", POOL, "pool list"),
        ("pool show", POOL, "pool show p"),
        ("pool reconcile", POOL, "pool reconcile"),
        ("libvirt-hook print", "", "libvirt-hook print"),
        ("libvirt-hook install", "", "libvirt-hook install"),
        ("libvirt-hook annotate", POOL, "libvirt-hook annotate 0f0f0f0f-0000-4000-8000-000000000001"),
        ("migrate domain", "!write d.xml <domain><name>d</name><uuid>0f0f0f0f-0000-4000-8000-000000000001</uuid></domain>", "migrate domain @/d.xml"),
        ("probe", "mdev start -u U1 -p mtty -t mtty-1", "probe U1"),
        ("migrate export", "vgpu enable --pf PF --numvfs 2;vgpu define --vf VF1 -t 1150;vgpu start --vf VF1", "migrate export VF1"),
        ("migrate check", "vgpu enable --pf PF --numvfs 2;vgpu define --vf VF1 -t 1150;vgpu start --vf VF1;!save s.json migrate export VF1", "migrate check @/s.json --device VF1"),
        ("migrate prepare", "vgpu enable --pf PF --numvfs 2;vgpu define --vf VF1 -t 1150;vgpu start --vf VF1;!save s.json migrate export VF1", "migrate prepare @/s.json --dry-run"),
        ("plan", "", "plan"),
        ("apply", "", "apply"),
        ("list", "mdev start -u U1 -p mtty -t mtty-1", "list"),
        ("autostart", "mdev define -u U1 -p mtty -t mtty-1 --auto", "autostart"),
        ("tree", "mdev start -u U1 -p mtty -t mtty-1", "tree"),
        ("man", "", "man @/man"),
    ]
}

/// The flags and subcommands `--help` shows for one command path.
fn help(bins: &Bins, root: &Path, path: &[String]) -> (Vec<String>, Vec<String>, String) {
    let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
    args.push("--help");
    let o = bins.run(root, "hostdevctl", &args, None);
    assert!(o.status.success(), "{path:?} --help failed");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let (mut section, mut subs, mut flags) = (String::new(), Vec::new(), Vec::new());
    for line in text.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            section = line.to_string();
            continue;
        }
        let word = line.trim_start().split([' ', ',']).next().unwrap_or("");
        match section.as_str() {
            "Commands:" if line.starts_with("  ") && !word.is_empty() && word != "help" => {
                subs.push(word.to_string())
            }
            // An option's own line starts with `-`; its description's
            // continuation lines do not.
            "Options:" if line.trim_start().starts_with('-') => {
                let spec = line.trim_start().split("  ").next().unwrap_or("");
                let long = spec
                    .split_whitespace()
                    .find(|w| w.starts_with("--"))
                    .map(|w| {
                        w.trim_end_matches(',')
                            .split(['=', '<'])
                            .next()
                            .unwrap_or(w)
                            .to_string()
                    });
                if let Some(l) = long {
                    if !["--help", "--version", "--output"].contains(&l.as_str()) {
                        flags.push(l);
                    }
                }
            }
            _ => {}
        }
    }
    (subs, flags, text)
}

struct Lab<'a> {
    bins: &'a Bins,
    sim: &'a Sim,
}

impl Lab<'_> {
    fn root(&self) -> &Path {
        self.sim.path()
    }

    /// A fresh host: no definitions, no state, hardware as after a boot.
    fn reset(&self) {
        let r = self.root();
        if let Ok(rd) = std::fs::read_dir(r.join("etc/mdevctl.d")) {
            for e in rd.flatten() {
                if e.file_name() != "scripts.d" {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        for d in [
            "etc/mdevctl.d/scripts.d/callouts",
            "etc/mdevctl.d/scripts.d/notifiers",
        ] {
            let _ = std::fs::remove_dir_all(r.join(d));
            std::fs::create_dir_all(r.join(d)).expect("scripts dir");
        }
        for d in [
            "etc/hostdev",
            "var/lib/hostdev",
            "etc/udev",
            "etc/libvirt",
            "man",
        ] {
            let _ = std::fs::remove_dir_all(r.join(d));
        }
        for f in ["f.json", "e.json", "s.json", "h.toml"] {
            let _ = std::fs::remove_file(r.join(f));
        }
        self.sim.reboot();
    }

    fn expand(&self, s: &str) -> String {
        s.replace("U1", U1)
            .replace("U2", U2)
            .replace("VF1", "0000:41:00.4")
            .replace("PF", PF)
            .replace('@', &self.root().display().to_string())
    }

    /// Runs one step; what it showed (exit status, stdout, stderr).
    fn step(&self, step: &str) -> String {
        let step = step.trim_start_matches('\n');
        if step.is_empty() {
            return String::new();
        }
        if let Some(rest) = step.strip_prefix('!') {
            let (verb, rest) = rest.split_once(' ').expect("a step's verb and argument");
            let (path, text) = rest.split_once(' ').unwrap_or((rest, ""));
            let p = self.root().join(path);
            match verb {
                "write" | "exec" => {
                    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
                    std::fs::write(&p, text).expect("write");
                    if verb == "exec" {
                        use std::os::unix::fs::PermissionsExt;
                        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
                            .expect("chmod");
                    }
                    return String::new();
                }
                "save" => {
                    let out = self.run(text);
                    assert!(out.0 == 0, "!save {text}: {}", out.2);
                    std::fs::write(&p, &out.1).expect("save");
                    return String::new();
                }
                "show" => {
                    let mut out = String::new();
                    let mut files: Vec<_> = std::fs::read_dir(&p)
                        .map(|rd| rd.flatten().map(|e| e.path()).collect())
                        .unwrap_or_else(|_| vec![p.clone()]);
                    files.sort();
                    for f in files {
                        out += &format!(
                            "{}: {}\n",
                            f.display(),
                            std::fs::read_to_string(&f).unwrap_or_default()
                        );
                    }
                    return out;
                }
                v => panic!("unknown step verb {v}"),
            }
        }
        let (code, out, err) = self.run(step);
        if step.starts_with("vgpu enable") {
            // The driver sets VFs up a moment after they appear (vf_ready_ms).
            std::thread::sleep(std::time::Duration::from_millis(150));
        }
        format!("$ {step}\nexit {code}\n{out}{err}")
    }

    fn run(&self, args: &str) -> (i32, String, String) {
        let args = self.expand(args);
        let argv: Vec<&str> = args.split_whitespace().collect();
        let o = self.bins.run(self.root(), "hostdevctl", &argv, None);
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    fn steps(&self, steps: &str) -> String {
        split_steps(steps).iter().map(|s| self.step(s)).collect()
    }

    /// Setup, then one command, then what is observed: all it showed.
    fn scenario(&self, setup: &str, cmd: &str, observe: &str) -> Result<String, String> {
        self.reset();
        for s in split_steps(setup) {
            let shown = self.step(&s);
            if shown.contains("\nexit ") && !shown.contains("\nexit 0\n") {
                return Err(format!("setup step failed:\n{shown}"));
            }
        }
        Ok(self.step(cmd) + &self.steps(observe))
    }

    /// `-o json`: stdout is JSON, each stderr line is JSON.
    fn json(&self, setup: &str, args: &str) -> Result<(), String> {
        self.reset();
        for s in split_steps(setup) {
            self.step(&s);
        }
        let (code, out, err) = self.run(&format!("-o json {args}"));
        if code == 0 || !out.trim().is_empty() {
            serde_json::from_str::<serde_json::Value>(&out).map_err(|e| {
                format!("`-o json {args}` (exit {code}): stdout is not JSON ({e}):\n{out}")
            })?;
        }
        for line in err.lines() {
            serde_json::from_str::<serde_json::Value>(line)
                .map_err(|e| format!("`-o json {args}`: stderr line is not JSON ({e}): {line}"))?;
        }
        Ok(())
    }
}

/// Steps split at `;` (a `;` inside `!write` text is not used by the rows).
fn split_steps(s: &str) -> Vec<String> {
    s.split(';')
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
#[ignore = "needs FUSE (fuse3) for the simulated lab; run by `cargo xtask test`"]
fn every_flag_in_help_does_something_and_every_command_speaks_json() {
    require_fuse("cli promises");
    let bins = Bins::new();
    let sim = Sim::start("demo");
    let lab = Lab {
        bins: &bins,
        sim: &sim,
    };
    let rows = rows();
    let table: BTreeMap<(&str, &str), &Proof> =
        rows.iter().map(|(p, f, x)| ((*p, *f), x)).collect();
    let tests_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");

    // Walk every subcommand's --help.
    let mut todo: Vec<Vec<String>> = vec![vec![]];
    let mut leaves = Vec::new();
    let mut problems = Vec::new();
    while let Some(path) = todo.pop() {
        if path.first().map(String::as_str) == Some("mdevctl") {
            continue; // mdevctl's own options: the differential tier holds them to Debian's mdevctl
        }
        let (subs, flags, _text) = help(&bins, lab.root(), &path);
        let name = path.join(" ");
        if subs.is_empty() {
            leaves.push(name.clone());
        }
        for s in subs {
            let mut p = path.clone();
            p.push(s);
            todo.push(p);
        }
        for flag in flags {
            match table.get(&(name.as_str(), flag.as_str())) {
                None => problems.push(format!(
                    "`hostdevctl {name} {flag}` has no proof in the table"
                )),
                Some(T(file, func, arg)) => {
                    let src = std::fs::read_to_string(tests_dir.join(file)).unwrap_or_default();
                    // The function's body: from its name to the next test.
                    let body = src
                        .split_once(&format!("fn {func}("))
                        .map(|(_, b)| b.split("#[test]").next().unwrap_or(b))
                        .unwrap_or("");
                    if !body.contains(&format!("\"{arg}\"")) {
                        problems.push(format!(
                            "`{name} {flag}`: {file} has no fn {func} passing \"{arg}\""
                        ));
                    }
                }
                Some(D(setup, without, with, observe)) => {
                    match (
                        lab.scenario(setup, without, observe),
                        lab.scenario(setup, with, observe),
                    ) {
                        (Ok(a), Ok(b)) if a == b => {
                            problems.push(format!("`{name} {flag}` changes nothing:\n{a}"))
                        }
                        (Ok(_), Ok(_)) => {}
                        (Err(e), _) | (_, Err(e)) => problems.push(format!("`{name} {flag}`: {e}")),
                    }
                }
            }
        }
    }
    assert!(leaves.len() > 40, "the walk found only {leaves:?}");

    // -o json for every command: from its first proof, or the flagless list.
    let extra = flagless();
    for leaf in &leaves {
        if leaf == "mdevctl" {
            continue;
        }
        let from_rows = rows.iter().find_map(|(p, _, x)| match x {
            D(setup, _, with, _) if p == leaf => Some((*setup, *with)),
            _ => None,
        });
        let from_extra = extra
            .iter()
            .find(|(p, _, _)| p == leaf)
            .map(|(_, s, a)| (*s, *a));
        let Some((setup, args)) = from_extra.or(from_rows) else {
            problems.push(format!("`hostdevctl {leaf}` has no -o json run"));
            continue;
        };
        if let Err(e) = lab.json(setup, args) {
            problems.push(e);
        }
    }
    // A usage error is JSON too.
    if let Err(e) = lab.json("", "mdev nosuch") {
        problems.push(e);
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Runs `hostdevctl ARGS` on a terminal (a pty from util-linux's `script`);
/// what the terminal showed.
fn on_terminal(bins: &Bins, root: &Path, args: &str, no_color: bool) -> String {
    let mut c = std::process::Command::new("script");
    c.args([
        "-qec",
        &format!("{} {args}", bins.path("hostdevctl").display()),
        "/dev/null",
    ])
    .env("HOSTDEV_ROOT", root)
    .env("HOSTDEV_SOCKET", "")
    .env_remove("NO_COLOR");
    if no_color {
        c.env("NO_COLOR", "1");
    }
    let o = c.output().expect("script (util-linux)");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
#[ignore = "needs FUSE (fuse3) for the simulated lab; run by `cargo xtask test`"]
fn tree_and_progress_draw_on_a_terminal_and_stay_plain_when_piped() {
    require_fuse("terminal");
    let bins = Bins::new();
    let sim = Sim::start("demo");
    let r = sim.path();
    for args in [
        &["mdev", "start", "-u", U1, "-p", "mtty", "-t", "mtty-1"][..],
        &[
            "mdev",
            "define",
            "-u",
            U2,
            "-p",
            "0000:99:00.0",
            "-t",
            "nvidia-222",
            "--auto",
        ],
        &["vgpu", "enable", "--pf", PF, "--numvfs", "2"],
    ] {
        bins.run(r, "hostdevctl", args, None);
    }
    // The tree: coloured on a terminal, the same text plain when piped.
    let tty = on_terminal(&bins, r, "tree", false);
    assert!(tty.contains("\x1b[1mmdev parents\x1b[0m"), "{tty:?}");
    assert!(tty.contains("\x1b[32mrunning\x1b[0m"), "{tty:?}");
    let no_color = on_terminal(&bins, r, "tree", true);
    assert!(!no_color.contains('\x1b'), "NO_COLOR: {no_color:?}");
    let piped = bins.run(r, "hostdevctl", &["tree"], None);
    let piped = String::from_utf8_lossy(&piped.stdout).into_owned();
    assert!(!piped.contains('\x1b'), "{piped:?}");
    for want in [
        "SR-IOV PFs (NVIDIA vGPU)",
        "└─ 0000:41:00.0  2 VFs",
        "mtty-1 Single port serial",
        &format!("{U1}  running  transient"),
        "vDPA management devices",
    ] {
        assert!(piped.contains(want), "no {want:?} in:\n{piped}");
    }
    assert_eq!(
        no_color.replace("\r\n", "\n"),
        piped,
        "NO_COLOR differs from piped"
    );

    // Progress while autostart waits for a parent that is not there: drawn
    // on a terminal, absent when piped.
    let tty = on_terminal(&bins, r, "autostart --wait 2", false);
    assert!(
        tty.contains("\r\x1b[2K")
            && tty.contains("restoring auto-start devices (waiting up to 2 s for parents)"),
        "{tty:?}"
    );
    let piped = bins.run(r, "hostdevctl", &["autostart", "--wait", "2"], None);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&piped.stdout),
        String::from_utf8_lossy(&piped.stderr)
    );
    assert!(!all.contains('\x1b') && !all.contains('\r'), "{all:?}");
    assert!(all.contains("0000:99:00.0"), "{all}");
}

#[test]
#[ignore = "needs FUSE (fuse3) for the simulated lab; run by `cargo xtask test`"]
fn the_simulator_refuses_a_second_run_on_a_served_root_naming_the_pid() {
    require_fuse("sim twice");
    let sim = Sim::start("demo");
    let pid = std::fs::read_to_string(sim.path().join("run/hostdev-sim.pid")).expect("pid file");
    let runs: Vec<_> = (0..2)
        .map(|_| {
            std::process::Command::new(common::sim_binary())
                .args(["run", "--root"])
                .arg(sim.path())
                .args(["--profile", "demo"])
                .output()
                .expect("hostdev-sim")
        })
        .collect();
    for o in runs {
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(&format!(
                "is already served by hostdev-sim (pid {})",
                pid.trim()
            )),
            "{err}"
        );
    }
    // An unknown profile is named before the root is touched.
    let empty = tempfile::tempdir().expect("tempdir");
    let o = std::process::Command::new(common::sim_binary())
        .args(["run", "--root"])
        .arg(empty.path())
        .args(["--profile", "nosuch"])
        .output()
        .expect("hostdev-sim");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("neither a built-in profile (demo,"), "{err}");
    assert_eq!(std::fs::read_dir(empty.path()).expect("dir").count(), 0);
}
