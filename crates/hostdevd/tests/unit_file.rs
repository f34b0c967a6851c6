//! The shipped systemd unit lets hostdevd do its work. Nothing here boots
//! systemd (the kernel lab's init is not systemd), so the unit's sandbox is
//! read as systemd reads it: under `ProtectSystem=strict` every path the
//! daemon writes must be a `ReadWritePaths=` entry or a state/runtime
//! directory, and device access must stay open (no `DeviceAllow=`, and no
//! option that implies one, as `ProtectClock=yes` and `PrivateDevices=yes`
//! do), since the daemon opens `/dev/vfio/*` and `/dev/vhost-vdpa-N`.
#![allow(clippy::expect_used, clippy::unwrap_used)] // tests: a failed expectation is the report

use std::path::Path;

/// Every `key=value` of the `[Service]` section, in order.
fn service(unit: &str) -> Vec<(String, String)> {
    let mut in_service = false;
    let mut out = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            in_service = line == "[Service]";
            continue;
        }
        if !in_service || line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

/// What the unit's sandbox gets wrong, one sentence each.
fn faults(unit: &str) -> Vec<String> {
    let svc = service(unit);
    let all = |key: &str| -> Vec<String> {
        svc.iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .collect()
    };
    let mut writable = all("ReadWritePaths");
    writable.extend(
        all("StateDirectory")
            .iter()
            .map(|d| format!("/var/lib/{d}")),
    );
    writable.extend(all("RuntimeDirectory").iter().map(|d| format!("/run/{d}")));
    let mut out = Vec::new();
    if all("ProtectSystem").iter().any(|v| v == "strict") {
        // Where the daemon writes (hostdev-core and hostdev-store): sysfs,
        // mdevctl's and hostdev's definitions, its lock, its socket, and
        // its state (pools.db, host-managed.json, probe-cache.json, dra/).
        for p in [
            "/sys",
            "/etc/mdevctl.d",
            "/etc/hostdev",
            "/run/lock",
            "/run/hostdev",
            "/var/lib/hostdev",
        ] {
            if !writable
                .iter()
                .any(|w| Path::new(p).starts_with(w.trim_start_matches(['-', '+'])))
            {
                out.push(format!("{p} is read-only under ProtectSystem=strict"));
            }
        }
    }
    for (key, closes) in [
        ("ProtectClock", "yes"),
        ("PrivateDevices", "yes"),
        ("DevicePolicy", "closed"),
        ("DevicePolicy", "strict"),
    ] {
        if all(key).iter().any(|v| v == closes) {
            out.push(format!(
                "{key}={closes} closes the device nodes the daemon opens"
            ));
        }
    }
    if !all("DeviceAllow").is_empty() {
        out.push("DeviceAllow= closes every device it does not list".into());
    }
    out
}

#[test]
fn the_shipped_unit_leaves_the_daemon_its_state_and_its_devices() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dist/systemd/hostdevd.service");
    let unit = std::fs::read_to_string(&path).expect("the unit");
    assert_eq!(faults(&unit), Vec::<String>::new(), "{}", path.display());
}

#[test]
fn the_check_finds_what_the_first_unit_got_wrong() {
    // The unit as first shipped: /var/lib/hostdev read-only (pools.db, the
    // DRA records) and ProtectClock=yes closing /dev/vfio.
    let old = "[Service]\nProtectSystem=strict\nReadWritePaths=/sys /etc/mdevctl.d /etc/hostdev /run/hostdev /run/lock\nProtectClock=yes\n";
    assert_eq!(
        faults(old),
        [
            "/var/lib/hostdev is read-only under ProtectSystem=strict",
            "ProtectClock=yes closes the device nodes the daemon opens"
        ]
    );
    assert!(faults("[Service]\nDeviceAllow=char-vfio rw\n")[0].starts_with("DeviceAllow="));
    assert!(faults("[Service]\nProtectSystem=strict\nStateDirectory=hostdev\nReadWritePaths=/sys /etc/mdevctl.d /etc/hostdev /run/lock\nRuntimeDirectory=hostdev\n").is_empty());
}
