//! mdevctl's callout and notifier protocol, so vendor scripts written for
//! mdevctl (vfio-ap's, for example) keep working under hostdev.
//!
//! A callout is run as `SCRIPT -t TYPE -e EVENT -a ACTION -s STATE -u UUID -p PARENT`
//! with the device's JSON on stdin. Exit status 2 means "not my type": the next
//! script is tried. The first script that answers otherwise owns the device; a
//! non-zero `pre` answer aborts the operation unless forced. Notifiers all run.
//!
//! Owns: finding scripts and running them. Must not: decide what an operation
//! does when a callout refuses (the caller does, knowing --force).
//!
//! Versioned scripts (mdevctl 1.3+) are first asked `-e get -a capabilities`
//! and answer `{"supports":{"version":2,"actions":[…],"events":[…]}}`; they
//! are then sent only what they support. A script that answers otherwise is
//! treated as version 1 and sent every event.

use crate::CoreError;
use crate::MdevError;
use hostdev_model::format::definition_compact;
use hostdev_model::{MdevConfig, ParentName, Uuid};
use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// The device a callout is told about.
#[derive(Debug, Clone, Copy)]
pub struct CalloutDevice<'a> {
    /// Its UUID.
    pub uuid: &'a Uuid,
    /// Its parent.
    pub parent: &'a ParentName,
    /// Its configuration (type, start, attributes).
    pub config: &'a MdevConfig,
}

/// Where callouts and notifiers live; [`Callouts::none`] runs nothing.
#[derive(Debug, Clone, Default)]
pub struct Callouts {
    callout_dirs: Vec<PathBuf>,
    notifier_dirs: Vec<PathBuf>,
    /// The callout scripts, found again only when a script directory changes
    /// (listing may ask per device; a daemon lives longer than any script).
    found: ScriptCache,
    /// The notifier scripts, likewise.
    found_notifiers: ScriptCache,
    /// What each script declared it supports, per device type (asked once).
    caps: Arc<Mutex<HashMap<CapsKey, Caps>>>,
}

/// A callout script and its mtime when it was looked at.
#[derive(Debug, Clone)]
struct Script {
    path: PathBuf,
    mtime: Option<SystemTime>,
}

/// The callout scripts as one operation sees them ([`Callouts::snapshot`]).
#[derive(Debug, Clone)]
pub struct CalloutScripts(Vec<Script>);

/// (script, its mtime, device type).
type CapsKey = (PathBuf, Option<SystemTime>, String);

fn mtime(p: &Path) -> Option<SystemTime> {
    fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// The directories' mtimes when they were scanned, and what was found.
type Scanned = (Vec<Option<SystemTime>>, Arc<Vec<PathBuf>>);

/// Scripts found in a set of directories, kept while none of the directories'
/// mtimes (entries added, removed or renamed) has changed.
#[derive(Debug, Clone, Default)]
struct ScriptCache {
    inner: Arc<Mutex<Option<Scanned>>>,
}

impl ScriptCache {
    fn get(&self, dirs: &[PathBuf], scan: fn(&[PathBuf]) -> Vec<PathBuf>) -> Arc<Vec<PathBuf>> {
        let stamp: Vec<Option<SystemTime>> = dirs.iter().map(|d| mtime(d)).collect();
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((s, found)) = g.as_ref() {
            if *s == stamp {
                return found.clone();
            }
        }
        let found = Arc::new(scan(dirs));
        *g = Some((stamp, found.clone()));
        found
    }
}

/// A script's answer to `-e get -a capabilities`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Caps {
    /// Exit 2: the script does not handle this type.
    NotMine,
    /// No usable answer: a version 1 script, sent every event.
    All,
    /// Version 2: only these actions and events.
    Only {
        actions: Vec<String>,
        events: Vec<String>,
    },
}

impl Callouts {
    /// mdevctl's script directories under a root prefix.
    pub fn under(root: &Path) -> Self {
        Callouts {
            callout_dirs: vec![
                root.join("etc/mdevctl.d/scripts.d/callouts"),
                root.join("usr/lib/mdevctl/scripts.d/callouts"),
            ],
            notifier_dirs: vec![
                root.join("etc/mdevctl.d/scripts.d/notifiers"),
                root.join("usr/lib/mdevctl/scripts.d/notifiers"),
            ],
            found: ScriptCache::default(),
            found_notifiers: ScriptCache::default(),
            caps: Arc::default(),
        }
    }

    /// No scripts at all (tests, or hosts that opt out).
    pub fn none() -> Self {
        Callouts::default()
    }

    /// Executable files in `dirs`, by file name; a name in an earlier directory wins.
    fn scripts(dirs: &[PathBuf]) -> Vec<PathBuf> {
        let mut by_name = std::collections::BTreeMap::new();
        for d in dirs {
            let Ok(rd) = fs::read_dir(d) else { continue };
            for e in rd.flatten() {
                let p = e.path();
                let Ok(m) = fs::metadata(&p) else { continue };
                if m.is_file() && m.permissions().mode() & 0o111 != 0 {
                    by_name.entry(e.file_name()).or_insert(p);
                }
            }
        }
        by_name.into_values().collect()
    }

    fn callout_scripts(&self) -> Arc<Vec<PathBuf>> {
        self.found.get(&self.callout_dirs, Self::scripts)
    }

    /// The callout scripts with their mtimes, looked at once for an operation
    /// (a listing asks per device: it takes this once and reuses it).
    pub fn snapshot(&self) -> CalloutScripts {
        CalloutScripts(
            self.callout_scripts()
                .iter()
                .map(|p| Script {
                    mtime: mtime(p),
                    path: p.clone(),
                })
                .collect(),
        )
    }

    fn notifier_scripts(&self) -> Arc<Vec<PathBuf>> {
        self.found_notifiers.get(&self.notifier_dirs, Self::scripts)
    }

    /// Whether `script` wants `event`/`action` for this device's type, asking
    /// its versioned capabilities once per type (mdevctl 1.3's protocol).
    fn wants(&self, script: &Script, event: &str, action: &str, dev: CalloutDevice<'_>) -> bool {
        // A script replaced in place is asked again: its mtime is in the key.
        let key = (
            script.path.clone(),
            script.mtime,
            dev.config.mdev_type.to_string(),
        );
        let cached = self
            .caps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned();
        let caps = cached.unwrap_or_else(|| {
            let c = Self::ask_caps(&script.path, dev);
            self.caps
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, c.clone());
            c
        });
        match caps {
            Caps::NotMine => false,
            Caps::All => true,
            Caps::Only { actions, events } => {
                actions.iter().any(|a| a == action) && events.iter().any(|e| e == event)
            }
        }
    }

    /// Runs a `-e get -a ACTION` query (nothing on stdin): exit code and the
    /// answer with surrounding whitespace and NULs trimmed.
    fn get(script: &Path, action: &str, dev: CalloutDevice<'_>) -> Option<(Option<i32>, String)> {
        let out = Command::new(script)
            .args([
                "-t",
                dev.config.mdev_type.as_str(),
                "-e",
                "get",
                "-a",
                action,
                "-s",
                "none",
            ])
            .args(["-u", &dev.uuid.to_string(), "-p", dev.parent.as_str()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let text = text
            .trim_matches(|c: char| c == '\0' || c.is_whitespace())
            .to_string();
        Some((out.status.code(), text))
    }

    fn ask_caps(script: &Path, dev: CalloutDevice<'_>) -> Caps {
        let Some((code, text)) = Self::get(script, "capabilities", dev) else {
            return Caps::All;
        };
        match code {
            Some(2) => Caps::NotMine,
            Some(0) => {
                let v: serde_json::Value = match serde_json::from_str(&text) {
                    Ok(v) => v,
                    Err(_) => return Caps::All,
                };
                let list = |k: &str| -> Option<Vec<String>> {
                    v["supports"][k].as_array().map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(String::from))
                            .collect()
                    })
                };
                match (
                    v["supports"]["version"].as_u64(),
                    list("actions"),
                    list("events"),
                ) {
                    (Some(n), Some(actions), Some(events)) if n >= 2 => {
                        Caps::Only { actions, events }
                    }
                    _ => Caps::All,
                }
            }
            _ => Caps::All,
        }
    }

    fn run(
        script: &Path,
        event: &str,
        action: &str,
        state: &str,
        dev: CalloutDevice<'_>,
    ) -> Option<(i32, String)> {
        let mut child = Command::new(script)
            .args([
                "-t",
                dev.config.mdev_type.as_str(),
                "-e",
                event,
                "-a",
                action,
                "-s",
                state,
            ])
            .args(["-u", &dev.uuid.to_string(), "-p", dev.parent.as_str()])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .ok()?;
        if let Some(mut stdin) = child.stdin.take() {
            // A script that does not read its stdin is fine: ignore EPIPE.
            let _ = stdin.write_all(definition_compact(dev.config).as_bytes());
        }
        let out = child.wait_with_output().ok()?;
        Some((
            out.status.code().unwrap_or(1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// Runs the `pre` event; the first script not answering 2 decides.
    pub fn pre(&self, action: &'static str, dev: CalloutDevice<'_>) -> Result<(), CoreError> {
        for s in self
            .snapshot()
            .0
            .iter()
            .filter(|s| self.wants(s, "pre", action, dev))
        {
            match Self::run(&s.path, "pre", action, "none", dev) {
                Some((2, _)) => continue,
                Some((0, _)) => return Ok(()),
                Some((status, stderr)) => {
                    return Err(CoreError::from(MdevError::CalloutRefused {
                        script: s.path.clone(),
                        action,
                        uuid: *dev.uuid,
                        status,
                        stderr,
                    }))
                }
                None => continue,
            }
        }
        Ok(())
    }

    /// Runs the `post` event with the outcome, then every notifier.
    pub fn post(&self, action: &'static str, dev: CalloutDevice<'_>, success: bool) {
        let state = if success { "success" } else { "failure" };
        for s in self
            .snapshot()
            .0
            .iter()
            .filter(|s| self.wants(s, "post", action, dev))
        {
            match Self::run(&s.path, "post", action, state, dev) {
                Some((2, _)) | None => continue,
                Some(_) => break,
            }
        }
        for s in self.notifier_scripts().iter() {
            let _ = Self::run(s, "notify", action, state, dev);
        }
    }

    /// Asks the script owning the type for a running device's attributes
    /// (`-e get -a attributes`, nothing on stdin). `None` when no script owns
    /// the type or its answer is unusable.
    pub fn get_attributes(
        &self,
        scripts: &CalloutScripts,
        dev: CalloutDevice<'_>,
    ) -> Option<Vec<hostdev_model::Attr>> {
        for s in scripts
            .0
            .iter()
            .filter(|s| self.wants(s, "get", "attributes", dev))
        {
            let (code, text) = Self::get(&s.path, "attributes", dev)?;
            match code {
                Some(2) | None => continue,
                Some(0) => {
                    let text = text.as_str();
                    if text.is_empty() || text == "[{}]" {
                        return Some(Vec::new());
                    }
                    let wrapped = format!(
                        "{{\"mdev_type\":\"{}\",\"start\":\"manual\",\"attrs\":{text}}}",
                        dev.config.mdev_type
                    );
                    return MdevConfig::from_json(wrapped.as_bytes())
                        .ok()
                        .map(|c| c.attrs);
                }
                Some(_) => return None,
            }
        }
        None
    }

    /// Runs the `live` event for a running device; `Ok(false)` when no script owns the type.
    pub fn live(&self, dev: CalloutDevice<'_>) -> Result<bool, CoreError> {
        for s in self
            .snapshot()
            .0
            .iter()
            .filter(|s| self.wants(s, "live", "modify", dev))
        {
            match Self::run(&s.path, "live", "modify", "none", dev) {
                Some((2, _)) | None => continue,
                Some((0, _)) => return Ok(true),
                Some((status, stderr)) => {
                    return Err(CoreError::from(MdevError::CalloutRefused {
                        script: s.path.clone(),
                        action: "modify",
                        uuid: *dev.uuid,
                        status,
                        stderr,
                    }))
                }
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// Before: scripts were found once per process, so a long-running process
    /// (the daemon) never saw a script installed after its first operation.
    #[test]
    fn a_script_added_later_is_found_by_the_same_process() {
        let t = tempfile::tempdir().unwrap();
        let c = Callouts::under(t.path());
        assert!(c.callout_scripts().is_empty());
        let dir = t.path().join("etc/mdevctl.d/scripts.d/callouts");
        fs::create_dir_all(&dir).unwrap();
        let script = dir.join("vendor");
        fs::write(&script, "#!/bin/sh\nexit 2\n").unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(*c.callout_scripts(), vec![script.clone()]);
        fs::remove_file(&script).unwrap();
        // Directory mtimes have a clock tick's granularity; a rename is enough
        // to change it on any file system, but give it a moment to differ.
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(dir.join("other"), "x").unwrap();
        assert!(
            c.callout_scripts().is_empty(),
            "a removed script is forgotten"
        );
    }
}
