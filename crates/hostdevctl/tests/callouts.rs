//! mdevctl's callout protocol: scripts in etc/mdevctl.d/scripts.d/callouts see
//! the argv and JSON mdevctl gives them; exit 2 passes to the next script; a
//! failing `pre` aborts unless --force; notifiers all run; `get attributes`
//! supplies a running device's attributes to `list`.
#![allow(clippy::expect_used)] // tests: a failed expectation is the report

mod common;

use common::{show, tree, Bins};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const U: &str = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001";

fn script(dir: &Path, name: &str, body: &str) {
    std::fs::create_dir_all(dir).expect("dir");
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn callouts_see_mdevctls_protocol_and_can_refuse() {
    let bins = Bins::new();
    let t = tree(&hostdev_testkit::fixed());
    let callouts = t.path().join("etc/mdevctl.d/scripts.d/callouts");
    let notifiers = t.path().join("etc/mdevctl.d/scripts.d/notifiers");
    let log = t.path().join("log");
    let log = log.display();
    // 10-other does not handle mtty types; 20-mtty does, and refuses "pre modify" for -t mtty-2.
    script(
        &callouts,
        "10-other",
        &format!("echo \"other $*\" >> {log}; exit 2"),
    );
    script(
        &callouts,
        "20-mtty",
        &format!(
            "echo \"mtty $*\" >> {log}; cat >> {log}; echo >> {log}\n\
             case \"$*\" in *'-t mtty-2'*'-e pre -a modify'*) echo 'mtty-2 cannot be modified' >&2; exit 1;; esac\n\
             case \"$*\" in *'-e get -a attributes'*) echo '[{{\"live\":\"yes\"}}]';; esac\nexit 0"
        ),
    );
    script(
        &notifiers,
        "notify",
        &format!("echo \"notify $*\" >> {log}"),
    );

    let o = bins.run(t.path(), "mdevctl", &["modify", "-u", U, "--auto"], None);
    assert!(o.status.success(), "{}", show(&o));
    let text = std::fs::read_to_string(t.path().join("log")).expect("log");
    // 10-other says "not my type" when asked its capabilities, so it is sent nothing else.
    assert!(
        text.contains(&format!(
            "other -t mtty-1 -e get -a capabilities -s none -u {U} -p mtty"
        )),
        "{text}"
    );
    assert!(!text.contains("other -t mtty-1 -e pre"), "{text}");
    assert!(
        text.contains(&format!(
            "mtty -t mtty-1 -e pre -a modify -s none -u {U} -p mtty"
        )),
        "{text}"
    );
    assert!(
        text.contains(
            r#"{"mdev_type":"mtty-1","start":"auto","attrs":[{"foo":"bar"},{"baz":"quux"}]}"#
        ),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "mtty -t mtty-1 -e post -a modify -s success -u {U} -p mtty"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "notify -t mtty-1 -e notify -a modify -s success -u {U} -p mtty"
        )),
        "{text}"
    );

    // A refusing pre callout aborts, and nothing is written; --force goes on.
    let path = t
        .path()
        .join("etc/mdevctl.d/mtty/83b8f4f2-509f-382f-3c1e-e6bfe0fa1002");
    let before = std::fs::read(&path).expect("read");
    let o = bins.run(
        t.path(),
        "mdevctl",
        &[
            "modify",
            "-u",
            "83b8f4f2-509f-382f-3c1e-e6bfe0fa1002",
            "-p",
            "mtty",
            "--auto",
        ],
        None,
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("20-mtty refused to modify") && err.contains("mtty-2 cannot be modified"),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).expect("read"), before);
    let o = bins.run(
        t.path(),
        "mdevctl",
        &[
            "modify",
            "-u",
            "83b8f4f2-509f-382f-3c1e-e6bfe0fa1002",
            "-p",
            "mtty",
            "--auto",
            "--force",
        ],
        None,
    );
    assert!(o.status.success(), "{}", show(&o));
    assert_ne!(std::fs::read(&path).expect("read"), before);

    // get attributes: the running device's attributes come from the script.
    let o = bins.run(t.path(), "mdevctl", &["list", "-v", "-u", U], None);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(r#"@{0}: {"live":"yes"}"#),
        "{}",
        show(&o)
    );
}

#[test]
fn versioned_callouts_get_only_what_they_declare() {
    let bins = Bins::new();
    let t = tree(&hostdev_testkit::fixed());
    let callouts = t.path().join("etc/mdevctl.d/scripts.d/callouts");
    let log = t.path().join("log");
    let log = log.display();
    script(
        &callouts,
        "05-v2",
        &format!(
            "echo \"v2 $*\" >> {log}\n\
             case \"$*\" in *'-t mtty-1'*) ;; *) exit 2;; esac\n\
             case \"$*\" in *'-e get -a capabilities'*) echo '{{\"supports\":{{\"version\":2,\"actions\":[\"define\"],\"events\":[\"pre\",\"post\"]}}}}';; esac\n\
             exit 0"
        ),
    );
    let o = bins.run(t.path(), "mdevctl", &["modify", "-u", U, "--manual"], None);
    assert!(o.status.success(), "{}", show(&o));
    let o = bins.run(
        t.path(),
        "mdevctl",
        &[
            "define",
            "-u",
            "11111111-0000-4000-8000-000000000001",
            "-p",
            "mtty",
            "-t",
            "mtty-1",
        ],
        None,
    );
    assert!(o.status.success(), "{}", show(&o));
    let text = std::fs::read_to_string(t.path().join("log")).expect("log");
    assert!(text.contains("-e get -a capabilities"), "{text}");
    assert!(
        !text.contains("-a modify"),
        "a version 2 script that declared only define got modify:\n{text}"
    );
    assert!(
        text.contains("-e pre -a define") && text.contains("-e post -a define -s success"),
        "{text}"
    );
}
