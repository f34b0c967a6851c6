//! `/etc/hostdev/hostdevd.toml`: every key optional, unknown keys refused by
//! name. Owns: the file's shape and defaults. Must not: act on any of it.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the file is unless `--config` says otherwise.
pub const DEFAULT_CONFIG: &str = "/etc/hostdev/hostdevd.toml";

/// The daemon's settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The socket's path.
    pub socket: PathBuf,
    /// The group whose members may read (and the socket's group).
    pub group: String,
    /// Seconds between full rescans of the host (drift and missed events).
    pub resync_interval_secs: u64,
    /// Restart auto-start devices found missing while their parent is there.
    pub repair_drift: bool,
    /// Milliseconds of quiet after a burst of kernel events before acting.
    pub debounce_ms: u64,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Seconds a client has to send its request headers and body.
    pub request_timeout_secs: u64,
    /// Connections served at once; more wait their turn.
    pub max_connections: usize,
    /// Listen for kernel device events (off: resync only).
    pub uevents: bool,
    /// Restore every auto-start definition when the daemon starts.
    pub restore_on_start: bool,
    /// Seconds between pool reconciles (undo interrupted work, end
    /// reservations, free what dead consumers held, fill pre-created pools);
    /// 0: never (run `hostdevctl pool reconcile` yourself).
    pub pool_reconcile_secs: u64,
    /// What the daemon does with the host file (`host_file`): `off`,
    /// `report` (plan it every `host_reconcile_secs` and publish when the
    /// host differs) or `apply` (make the host match it, leaving devices in
    /// use alone).
    pub host_reconcile: HostReconcile,
    /// The host file.
    pub host_file: PathBuf,
    /// Seconds between looks at the host file.
    pub host_reconcile_secs: u64,
}

/// What the daemon does with the host file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostReconcile {
    /// Nothing.
    Off,
    /// Plan it and report drift.
    Report,
    /// Apply it.
    Apply,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            socket: PathBuf::from(hostdev_api::DEFAULT_SOCKET),
            group: "hostdev".into(),
            resync_interval_secs: 30,
            repair_drift: false,
            debounce_ms: 250,
            max_body_bytes: 1 << 20,
            request_timeout_secs: 10,
            max_connections: 256,
            uevents: true,
            restore_on_start: true,
            pool_reconcile_secs: 60,
            host_reconcile: HostReconcile::Report,
            host_file: PathBuf::from("/etc/hostdev/host.toml"),
            host_reconcile_secs: 300,
        }
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid (unknown key, wrong type, bad TOML).
    #[error("the configuration {path} is not valid: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The parser's sentence (names the key).
        message: String,
    },
}

impl Config {
    /// Reads `path`; a missing file is the defaults only when `optional`.
    pub fn load(path: &Path, optional: bool) -> Result<Config, ConfigError> {
        // A regular file of at most 1 MiB: a FIFO given as --config would
        // block the daemon's start forever.
        let read = hostdev_fs::read_regular_within(path, hostdev_fs::Limits::at_most(1 << 20));
        let text = match read {
            Ok(Some(b)) => String::from_utf8_lossy(&b).into_owned(),
            Ok(None) if optional => return Ok(Config::default()),
            Ok(None) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source: std::io::Error::from_raw_os_error(2),
                })
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        Config::parse(&text).map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses the file's text.
    pub fn parse(text: &str) -> Result<Config, String> {
        let c: Config = toml::from_str(text).map_err(|e| e.message().to_string())?;
        if c.resync_interval_secs == 0 {
            return Err("resync_interval_secs must be at least 1".into());
        }
        if c.host_reconcile_secs == 0 {
            return Err(
                "host_reconcile_secs must be at least 1 (host_reconcile = \"off\" turns it off)"
                    .into(),
            );
        }
        if c.max_connections == 0 {
            return Err("max_connections must be at least 1".into());
        }
        Ok(c)
    }

    /// The resync interval.
    pub fn resync(&self) -> Duration {
        Duration::from_secs(self.resync_interval_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_given_as_the_configuration_is_refused_not_waited_on() {
        let t = tempfile::tempdir().unwrap();
        let fifo = t.path().join("c.toml");
        hostdev_testkit::mkfifo(&fifo).unwrap();
        let e = Config::load(&fifo, false).unwrap_err();
        assert!(
            hostdev_core::chain(&e).contains("not a regular file"),
            "{}",
            hostdev_core::chain(&e)
        );
        assert!(Config::load(&t.path().join("none.toml"), true).is_ok());
        assert!(Config::load(&t.path().join("none.toml"), false).is_err());
    }

    #[test]
    fn unknown_keys_are_refused_by_name_and_defaults_fill_the_rest() {
        let e = Config::parse("grup = \"kvm\"\n").unwrap_err();
        assert!(e.contains("grup"), "{e}");
        let c = Config::parse("group = \"kvm\"\nrepair_drift = true\n").unwrap();
        assert_eq!(c.group, "kvm");
        assert!(c.repair_drift);
        assert_eq!(c.resync_interval_secs, 30);
        assert!(Config::parse("resync_interval_secs = 0").is_err());
        assert!(Config::parse("resync_interval_secs = \"x\"").is_err());
        assert!(Config::parse("[[").is_err());
    }
}

#[cfg(test)]
mod shipped {
    #[test]
    fn the_shipped_example_is_the_defaults() {
        let text = include_str!("../../../dist/hostdevd.toml");
        assert_eq!(
            super::Config::parse(text).unwrap(),
            super::Config::default()
        );
        // Every key is documented in it.
        for key in [
            "socket",
            "group",
            "resync_interval_secs",
            "repair_drift",
            "debounce_ms",
            "max_body_bytes",
            "request_timeout_secs",
            "max_connections",
            "uevents",
            "restore_on_start",
            "pool_reconcile_secs",
            "host_reconcile",
            "host_file",
            "host_reconcile_secs",
        ] {
            assert!(text.contains(&format!("#{key} = ")), "{key}");
        }
    }
}
