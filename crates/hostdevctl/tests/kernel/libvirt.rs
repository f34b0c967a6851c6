//! Real libvirtd in the lab guest: its node-device API driving hostdev as its
//! mdevctl, and domains whose devices come from a pool through the qemu hook.
//! Each scenario is a shell script under `tests/libvirt/` printing a
//! transcript; these tests assert on it (and on the kernel afterwards).

use super::{bin_dir, kernel, remove_all};
use std::path::Path;
use std::process::Command;

fn script(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/libvirt")
        .join(name)
}

fn need_libvirt() {
    let have = |p: &str| Path::new(p).exists();
    assert!(
        have("/usr/sbin/libvirtd") && have("/usr/bin/virsh") && have("/usr/bin/mdevctl"),
        "libvirt: needs libvirt-daemon, libvirt-clients and mdevctl installed on the host"
    );
}

#[test]
#[ignore = "needs the real-kernel lab; run by `cargo xtask kernel-test`"]
fn libvirt_nodedev_api_gives_the_same_results_with_hostdev_as_mdevctl() {
    let _k = kernel("libvirt");
    need_libvirt();
    remove_all();
    let script = script("nodedev.sh");
    let transcript = |dir: &Path| {
        let o = Command::new("sh")
            .arg(&script)
            .arg(dir)
            .output()
            .expect("run nodedev.sh");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let peer = transcript(Path::new("/usr/bin"));
    let ours = transcript(&bin_dir());
    assert_eq!(
        peer, ours,
        "libvirt saw a difference between Debian's mdevctl and hostdev"
    );
    // And the scenario did what it says, on the kernel and in the store.
    for expect in [
        "Autostart:      yes",
        "stored: {\"mdev_type\":\"mtty-2\",\"start\":\"auto\",\"attrs\":[]}",
        "kernel: mtty-2",
        "Active:         yes",
        "Undefined node device",
        "stored: 0",
    ] {
        assert!(ours.contains(expect), "missing {expect:?} in:\n{ours}");
    }
}

#[test]
#[ignore = "needs the real-kernel lab; run by `cargo xtask kernel-test`"]
fn libvirt_starts_domains_from_a_pool_through_the_hook() {
    let _k = kernel("libvirt pools");
    need_libvirt();
    assert!(
        Path::new("/usr/bin/qemu-system-x86_64").exists(),
        "libvirt pools: needs qemu-system-x86 on the host (the lab installs it)"
    );
    remove_all();
    let o = Command::new("sh")
        .arg(script("pools.sh"))
        .arg(env!("CARGO_BIN_EXE_hostdevctl"))
        .output()
        .expect("run pools.sh");
    let t = String::from_utf8_lossy(&o.stdout).into_owned();
    // The transcript's steps, in order: each piece must follow the last.
    let steps = [
        "$ virsh start --paused pool-vm1\nDomain 'pool-vm1' started",
        "$ virsh start --paused pool-vm2\nDomain 'pool-vm2' started",
        " 1    pool-vm1   paused",
        " 2    pool-vm2   paused",
        "kernel: b0010000-0000-4000-8000-000000000001 mtty-2",
        "kernel: b0010000-0000-4000-8000-000000000002 mtty-2",
        "kernel: b0010000-0000-4000-8000-000000000003 absent",
        "2 of 2 allocated, 0 free",
        "b0010000-0000-4000-8000-000000000001  mtty    allocated  c0010000-0000-4000-8000-000000000001",
        "b0010000-0000-4000-8000-000000000002  mtty    allocated  c0010000-0000-4000-8000-000000000002",
        // The third exceeds the pool: libvirt's own error carries its sentence.
        "$ virsh start --paused pool-vm3\nerror: Failed to start domain 'pool-vm3'",
        "Hook script execution failed",
        "hostdevctl: error: pool tty is exhausted: 2 of 2 allocated",
        "rc=1",
        "kernel: b0010000-0000-4000-8000-000000000003 absent",
        // Stopping gives the devices back to the kernel and the pool.
        "$ virsh destroy pool-vm1",
        "$ virsh destroy pool-vm2",
        "kernel: b0010000-0000-4000-8000-000000000001 absent\nkernel: b0010000-0000-4000-8000-000000000002 absent\nkernel: b0010000-0000-4000-8000-000000000003 absent",
        "0 of 2 allocated, 2 free",
        "$ virsh start --paused pool-vm3\nDomain 'pool-vm3' started",
        "kernel: b0010000-0000-4000-8000-000000000003 mtty-2",
        "$ virsh destroy pool-vm3",
        "kernel: b0010000-0000-4000-8000-000000000003 absent",
        // Liveness through virsh: a consumer that libvirt does not know and
        // one that is shut off are freed; a running one keeps its device
        // until it stops.
        "$ hostdevctl pool reconcile",
        "freed   its consumer, libvirt domain no-such-vm, is not defined",
        "freed   its consumer, libvirt domain pool-vm2, is not running",
        "1 of 4 allocated, 3 free",
        "allocated  pool-vm1",
        "$ virsh destroy pool-vm1",
        "freed   its consumer, libvirt domain pool-vm1, is not running",
        "live devices: 0",
    ];
    let mut at = 0;
    for s in steps {
        match t[at..].find(s) {
            Some(i) => at += i + s.len(),
            None => panic!("missing, after byte {at}: {s:?}\n--- transcript:\n{t}"),
        }
    }
    // Nothing of the pool is left in the kernel.
    for n in 1..=3 {
        let u = format!("b0010000-0000-4000-8000-00000000000{n}");
        assert!(!super::dev(&u).exists(), "{u} left behind:\n{t}");
    }
}

#[test]
#[ignore = "needs the real-kernel lab; run by `cargo xtask kernel-test`"]
fn libvirt_starts_what_probe_prints_and_the_display_notes_hold() {
    let _k = kernel("libvirt display");
    need_libvirt();
    remove_all();
    let o = Command::new("sh")
        .arg(script("display.sh"))
        .arg(env!("CARGO_BIN_EXE_hostdevctl"))
        .output()
        .expect("run display.sh");
    let t = String::from_utf8_lossy(&o.stdout).into_owned();
    let steps = [
        // mdpy: a region display; libvirt wants a <graphics> for it, as the
        // element's comment says, and starts it with one.
        "== mdpy\n<!-- display='on' needs a <graphics> device",
        "display=\"on\" ramfb=\"on\"",
        "-- mdpy with graphics none\nerror: Failed to create domain",
        "graphics device is needed for attribute value 'display=on' in <hostdev>",
        "-- mdpy with graphics vnc\nDomain 'display-mdpy' created",
        // mbochs: dma-buf; without OpenGL QEMU stops, as its comment says.
        "== mbochs\n<!-- display='on' needs a <graphics> device in the domain; a dma-buf display also needs OpenGL",
        "-- mbochs with graphics vnc\nerror: Failed to create domain",
        "opengl not available",
        // mtty: no display, the plain element starts as it is.
        "== mtty\n<hostdev mode=\"subsystem\" type=\"mdev\" managed=\"no\" model=\"vfio-pci\">",
        "-- mtty with graphics none\nDomain 'display-mtty' created",
    ];
    let mut at = 0;
    for s in steps {
        match t[at..].find(s) {
            Some(i) => at += i + s.len(),
            None => panic!("missing, after byte {at}: {s:?}\n--- transcript:\n{t}"),
        }
    }
}

/// Issue 29's two hosts: two libvirtd 11 instances with QEMU 10, each in its
/// own namespaces with its own host UUID, state and sockets, both with the
/// same mtty pool and hostdev's hook. A running domain holding a pool-bound
/// mtty device goes A → B with plain `virsh migrate --live` and back; B's
/// hook makes it fit B (the UUID is taken in the one kernel both hosts
/// share, so B's device gets another and the XML is rewritten); the
/// source's device leaves the kernel and its pool when the domain leaves. A
/// pool that hands out another type refuses with hostdev's reason in
/// virsh's error, the domain keeps running on A and nothing is made on B.
#[test]
#[ignore = "needs the real-kernel lab, its QEMU 10 and libvirt 11; run by `cargo xtask kernel-test`"]
fn libvirt_migrates_a_pool_device_between_two_hosts() {
    let _k = kernel("libvirt migrate");
    assert!(
        std::env::var_os("LAB_LIBVIRT11").is_some() && std::env::var_os("LAB_QEMU10_ROOT").is_some(),
        "libvirt migrate: LAB_LIBVIRT11 / LAB_QEMU10_ROOT are not set: run it in the lab (`cargo xtask kernel-test`)"
    );
    remove_all();
    let o = Command::new("sh")
        .arg(script("migrate.sh"))
        .arg(env!("CARGO_BIN_EXE_hostdevctl"))
        .output()
        .expect("run migrate.sh");
    let t = String::from_utf8_lossy(&o.stdout).into_owned();
    const U1: &str = "b0020000-0000-4000-8000-000000000001";
    // The UUIDs each arrival got (the first is taken in the one kernel both
    // hosts share while the domain runs on A, so B's device has another).
    let uuid_on = |host: &str| {
        t.split(&format!("uuid on {host}: "))
            .nth(1)
            .and_then(|r| r.lines().next())
            .unwrap_or("")
            .to_string()
    };
    let (on_b, on_a) = (uuid_on("B"), uuid_on("A"));
    assert!(on_b.len() == 36 && on_b != U1, "uuid on B: {on_b:?}\n{t}");
    assert!(on_a.len() == 36 && on_a != on_b, "uuid on A: {on_a:?}\n{t}");
    let show = |host: &str, held: u32| {
        format!(
            "$ [{host}] hostdevctl pool show tty\npool tty: mdev mtty-2 (on-demand, spread); \
             {held} of 2 allocated"
        )
    };
    let steps: Vec<String> = vec![
        "hosts: A B Running hypervisor: QEMU 10.".into(),
        "$ [A] hostdevctl pool bind tty --uuid b0020000-0000-4000-8000-000000000001\nrc=0".into(),
        "$ [A] virsh start mig-vm\nDomain 'mig-vm' started".into(),
        "state on A: running".into(),
        format!("kernel: {U1} mtty-2; \n"),
        // hostdev's metadata, written by the hook's annotation.
        format!("metadata on A: pool=\"tty\" kind=\"mdev\" id=\"{U1}\""),
        "$ [A] virsh migrate --live mig-vm (to B)\nrc=0".into(),
        "state on A: shut off".into(),
        "state on B: running".into(),
        // The source's device left the kernel and its pool.
        format!("kernel: {on_b} mtty-2; \n"),
        show("A", 0),
        show("B", 1),
        format!("metadata on B: pool=\"tty\" kind=\"mdev\" id=\"{on_b}\""),
        "$ [B] virsh migrate --live mig-vm (to A)\nrc=0".into(),
        "state on A: running".into(),
        "state on B: error".into(),
        format!("kernel: {on_a} mtty-2; \n"),
        show("A", 1),
        show("B", 0),
        // Refused by B's hook before QEMU starts there, with hostdev's
        // sentence in virsh's error; nothing made on B, A keeps running.
        "$ [A] virsh migrate --live mig-vm (to B)\nerror: Hook script execution failed".into(),
        "pool tty here hands out mtty-1, the source's device is mtty-2".into(),
        "rc=1".into(),
        "state on A: running".into(),
        "state on B: error".into(),
        format!("kernel: {on_a} mtty-2; \n"),
        "$ [B] hostdevctl pool show tty\npool tty: mdev mtty-1 (on-demand, spread); 0 of 2 allocated"
            .into(),
        // B's pool of the right type is full (another domain holds its one
        // device): refused the same way.
        "$ [B] hostdevctl pool show tty\npool tty: mdev mtty-2 (on-demand, spread); 1 of 1 allocated"
            .into(),
        "$ [A] virsh migrate --live mig-vm (to B)\nerror: Hook script execution failed".into(),
        "pool tty is exhausted: 1 of 1 allocated".into(),
        "rc=1".into(),
        "state on A: running".into(),
        "state on B: error".into(),
        "$ [B] hostdevctl pool show tty\npool tty: mdev mtty-2 (on-demand, spread); 1 of 1 allocated"
            .into(),
        "$ [B] hostdevctl pool release --consumer other-vm".into(),
        "rc=0".into(),
        // The source's spec tells another mtty version; B's policy asks for
        // the same version: refused.
        "$ [A] virsh metadata mig-vm".into(),
        "rc=0".into(),
        "source spec driver: ".into(),
        "$ [A] virsh migrate --live mig-vm (to B)\nerror: Hook script execution failed".into(),
        "the driver differs under the 'version' policy".into(),
        "rc=1".into(),
        "state on A: running".into(),
        "state on B: error".into(),
        format!("kernel: {on_a} mtty-2; \n"),
        "$ [B] hostdevctl pool show tty\npool tty: mdev mtty-2 (on-demand, spread); 0 of 2 allocated"
            .into(),
        "$ [A] virsh destroy mig-vm\nDomain 'mig-vm' destroyed".into(),
        "kernel: \n".into(),
        show("A", 0),
    ];
    let mut at = 0;
    for s in &steps {
        match t[at..].find(s.as_str()) {
            Some(i) => at += i + s.len(),
            None => panic!(
                "missing, after byte {at}: {s:?}\n--- transcript:\n{t}\n--- stderr:\n{}",
                String::from_utf8_lossy(&o.stderr)
            ),
        }
    }
    // The edit of the source's spec took (the refusal is the driver rule's,
    // not a spec that no longer reads).
    let told = t
        .split("source spec driver: ")
        .nth(1)
        .and_then(|r| r.lines().next())
        .unwrap_or("");
    assert!(
        told.contains("0.0-older"),
        "source spec driver: {told:?}\n{t}"
    );
    // While B was full, the kernel held A's device and the other domain's on
    // B, nothing more (the refused arrival made none).
    let full = t
        .split("pool tty is exhausted")
        .nth(1)
        .and_then(|r| r.split("kernel: ").nth(1))
        .and_then(|r| r.lines().next())
        .unwrap_or("");
    assert!(
        full.contains(&format!("{on_a} mtty-2;")) && full.matches("mtty-2;").count() == 2,
        "kernel while B was full: {full:?}\n{t}"
    );
    assert!(
        !Path::new("/sys/class/mdev_bus/mtty/mdev_supported_types/mtty-2/devices")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some()),
        "an mtty-2 device was left behind:\n{t}"
    );
}

#[test]
#[ignore = "needs the real-kernel lab; run by `cargo xtask kernel-test`"]
fn the_hook_gives_an_arriving_vdpa_interface_a_device_with_the_sources_config() {
    let _k = kernel("vdpa arrival");
    assert!(
        std::env::var_os("LAB_LIBVIRT11").is_some() && std::env::var_os("LAB_QEMU10_ROOT").is_some(),
        "vdpa arrival: LAB_LIBVIRT11 / LAB_QEMU10_ROOT are not set: run it in the lab (`cargo xtask kernel-test`)"
    );
    let o = Command::new("sh")
        .arg(script("vdpa-arrival.sh"))
        .arg(env!("CARGO_BIN_EXE_hostdevctl"))
        .output()
        .expect("run vdpa-arrival.sh");
    let t = String::from_utf8_lossy(&o.stdout).into_owned();
    let line = |key: &str| {
        t.split(key)
            .nth(1)
            .and_then(|r| r.lines().next())
            .unwrap_or("")
            .to_string()
    };
    // A's device and the one B's hook made for the arrival: another
    // vhost-vdpa character device, so the XML must change.
    let src = line("source: ");
    let rewritten = line("rewritten: ");
    let dst = rewritten
        .strip_prefix("<source dev=\"")
        .and_then(|r| r.strip_suffix("\"/>"))
        .unwrap_or("")
        .to_string();
    assert!(src.starts_with("/dev/vhost-vdpa-"), "source: {src:?}\n{t}");
    assert!(
        dst.starts_with("/dev/vhost-vdpa-") && dst != src,
        "rewritten: {rewritten:?}\n{t}"
    );
    const MAC: &str = "52:54:00:00:10:00";
    let show = |held: u32| {
        format!(
            "$ [B] hostdevctl pool show nics\npool nics: vdpa bnetN (on-demand, spread); {held} of 2 allocated"
        )
    };
    let steps: Vec<String> = vec![
        "$ [A] hostdevctl pool allocate nics --consumer c0020000-0000-4000-8000-0000000000d1\nanet0"
            .into(),
        "rc=0".into(),
        format!("kernel: anet0 {src} {MAC}; \n"),
        "metadata on A: pool=\"nics\" kind=\"vdpa\" id=\"anet0\"".into(),
        "$ [B] hostdevctl migrate domain".into(),
        "rc=0".into(),
        "$ [B] qemu hook mig-vm migrate begin - < in.xml\nrc=0".into(),
        // The arriving device is B's (its pool's name), with A's creation
        // config: A's MAC, not B's base 52:54:00:00:20:00.
        "metadata out: pool=\"nics\" kind=\"vdpa\" id=\"bnet0\"".into(),
        // The alias and the guest's MAC pass through untouched.
        "kept: 2".into(),
        format!("kernel: anet0 {src} {MAC}; bnet0 {dst} {MAC}; \n"),
        show(1),
        // The family reports no device limit (the pool's `limit` bounds it),
        // and the arrival's reservation ends by itself if libvirt never
        // prepares it.
        "vdpasim_net  1      no limit".into(),
        "bnet0   vdpasim_net  reserved  c0020000-0000-4000-8000-0000000000d1  in ".into(),
        "$ [B] qemu hook mig-vm prepare begin - < out.xml\nrc=0".into(),
        show(1),
        "$ [B] qemu hook mig-vm release end - < out.xml\nrc=0".into(),
        format!("kernel: anet0 {src} {MAC}; \n"),
        show(0),
        // A pool of another kind: hostdev's sentence, nothing printed or made.
        "$ [B] qemu hook mig-vm migrate begin - < in.xml".into(),
        "pool nics here hands out mdev devices, the source's device is vdpa".into(),
        "rc=1".into(),
        "printed: 0 bytes".into(),
        format!("kernel: anet0 {src} {MAC}; \n"),
        "$ [A] hostdevctl pool release --consumer c0020000-0000-4000-8000-0000000000d1".into(),
        "rc=0".into(),
        "kernel: \n".into(),
    ];
    let mut at = 0;
    for s in &steps {
        match t[at..].find(s.as_str()) {
            Some(i) => at += i + s.len(),
            None => panic!(
                "missing, after byte {at}: {s:?}\n--- transcript:\n{t}\n--- stderr:\n{}",
                String::from_utf8_lossy(&o.stderr)
            ),
        }
    }
}
