//! Pool definitions (`/etc/hostdev/pools.d/NAME.toml`) and pool state
//! (`/var/lib/hostdev/pools.db`, SQLite in WAL mode).
//!
//! Owns: reading definition files (one bad file is a [`LoadProblem`], never
//! hiding the others), and every statement run on the database ([`Tx`]),
//! each change inside one `BEGIN IMMEDIATE` transaction
//! ([`crate::PoolDb::write`]).
//! Must not: decide who gets which device (hostdev-core does, inside the
//! transaction [`crate::PoolDb`] opens), open the database itself
//! (`pool_db` does), or talk to the kernel.

use crate::{LoadProblem, StoreError};
use hostdev_model::pool::{PoolDef, PoolName};
use rusqlite::{params, Connection, OptionalExtension};
use std::fs;
use std::path::{Path, PathBuf};

/// The largest pool file read (a pool is a dozen lines).
pub const MAX_POOL_FILE: u64 = 64 << 10;

/// The definition directory under a root prefix.
#[derive(Debug, Clone)]
pub struct PoolDefs {
    dir: PathBuf,
}

impl PoolDefs {
    /// `/etc/hostdev/pools.d` under `root`.
    pub fn under(root: &Path) -> PoolDefs {
        PoolDefs {
            dir: root.join("etc/hostdev/pools.d"),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of `name`.
    pub fn path_of(&self, name: &PoolName) -> PathBuf {
        self.dir.join(format!("{name}.toml"))
    }

    /// One pool; `None` if it has no file. Read only as a regular file of at
    /// most [`MAX_POOL_FILE`] bytes, not through a symbolic link: what is
    /// wrong with it reaches `GET /v1/pools`, which readers who are not root
    /// see, so a link must not name another file of the host.
    pub fn load(&self, name: &PoolName) -> Result<Option<PoolDef>, StoreError> {
        let path = self.path_of(name);
        let limits = hostdev_fs::Limits::own_file(MAX_POOL_FILE);
        let bytes = match hostdev_fs::read_regular_within(&path, limits) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(None),
            Err(e) => {
                return Err(StoreError::Definition {
                    path,
                    reason: format!("it cannot be read: {e}"),
                })
            }
        };
        let text = String::from_utf8(bytes).map_err(|_| StoreError::Definition {
            path: path.clone(),
            reason: "it is not UTF-8 text".into(),
        })?;
        PoolDef::parse(name.clone(), &text)
            .map(Some)
            .map_err(|e| StoreError::Definition {
                path,
                reason: e.to_string(),
            })
    }

    /// Every pool, by name; unusable files are reported and skipped.
    pub fn load_all(&self) -> Result<(Vec<PoolDef>, Vec<LoadProblem>), StoreError> {
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((Vec::new(), Vec::new()))
            }
            Err(source) => {
                return Err(StoreError::Dir {
                    path: self.dir.clone(),
                    source,
                })
            }
        };
        let mut names = Vec::new();
        let mut problems = Vec::new();
        for e in rd.flatten() {
            let file = e.file_name();
            let Some(file) = file.to_str() else { continue };
            if file.starts_with('.') {
                continue; // temp files and editors' swap files
            }
            let Some(stem) = file.strip_suffix(".toml") else {
                continue;
            };
            match PoolName::new(stem) {
                Ok(n) => names.push(n),
                Err(e) => problems.push(LoadProblem {
                    path: e_path(&self.dir, file),
                    reason: e.to_string(),
                }),
            }
        }
        names.sort();
        let mut defs = Vec::new();
        for n in names {
            match self.load(&n) {
                Ok(Some(d)) => defs.push(d),
                Ok(None) => problems.push(LoadProblem {
                    path: self.path_of(&n),
                    reason: "it is not a regular file".into(),
                }),
                Err(StoreError::Definition { path, reason }) => {
                    problems.push(LoadProblem { path, reason })
                }
                Err(e) => return Err(e),
            }
        }
        Ok((defs, problems))
    }
}

fn e_path(dir: &Path, file: &str) -> PathBuf {
    dir.join(file)
}

/// Where a pool's device came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Made by filling a pre-created pool (a persistent definition).
    PreCreated,
    /// Made at allocation; removed at release.
    OnDemand,
}

impl Origin {
    fn as_str(self) -> &'static str {
        match self {
            Origin::PreCreated => "pre-created",
            Origin::OnDemand => "on-demand",
        }
    }
    fn parse(s: &str) -> Origin {
        if s == "pre-created" {
            Origin::PreCreated
        } else {
            Origin::OnDemand
        }
    }
}

/// Where a device is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecState {
    /// Recorded before the kernel was asked to create it; a row left in this
    /// state by a killed process is undone by reconcile.
    Creating,
    /// Ready and held by nobody.
    Free,
    /// Held by a consumer (until `expires`, when set).
    Allocated,
    /// Recorded before the kernel was asked to remove it.
    Removing,
}

impl RecState {
    /// The word stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            RecState::Creating => "creating",
            RecState::Free => "free",
            RecState::Allocated => "allocated",
            RecState::Removing => "removing",
        }
    }
    fn parse(s: &str) -> RecState {
        match s {
            "creating" => RecState::Creating,
            "free" => RecState::Free,
            "allocated" => RecState::Allocated,
            _ => RecState::Removing,
        }
    }
}

/// One device a pool knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// The device: mdev UUID, VF address or vDPA name.
    pub id: String,
    /// Its pool.
    pub pool: String,
    /// The member (parent, PF, management device) it is on.
    pub member: String,
    /// Pre-created or on-demand.
    pub origin: Origin,
    /// Where it is in its life.
    pub state: RecState,
    /// Who holds it.
    pub consumer: Option<String>,
    /// Unix seconds of the last change.
    pub since: i64,
    /// A reservation's end (unix seconds).
    pub expires: Option<i64>,
    /// The libvirt element that hands it to a domain (written when the
    /// device was made, so handing it out reads no sysfs).
    pub element: String,
}

impl DeviceRecord {
    /// Held at `now`: allocated and not an expired reservation.
    pub fn held_at(&self, now: i64) -> bool {
        self.state == RecState::Allocated && self.expires.is_none_or(|e| e > now)
    }
}

/// Statements inside a transaction.
pub struct Tx<'c> {
    pub(crate) conn: &'c Connection,
    pub(crate) path: &'c Path,
}

fn record(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeviceRecord> {
    Ok(DeviceRecord {
        id: r.get(0)?,
        pool: r.get(1)?,
        member: r.get(2)?,
        origin: Origin::parse(&r.get::<_, String>(3)?),
        state: RecState::parse(&r.get::<_, String>(4)?),
        consumer: r.get(5)?,
        since: r.get(6)?,
        expires: r.get(7)?,
        element: r.get(8)?,
    })
}

const COLS: &str = "id, pool, member, origin, state, consumer, since, expires, element";

impl Tx<'_> {
    pub(crate) fn fail(&self, op: &'static str, source: rusqlite::Error) -> StoreError {
        StoreError::Db {
            path: self.path.to_path_buf(),
            op,
            source,
        }
    }

    fn rows(&self, sql: &str, p: impl rusqlite::Params) -> Result<Vec<DeviceRecord>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached(sql)
            .map_err(|e| self.fail("prepare a query of", e))?;
        let rows = st
            .query_map(p, record)
            .map_err(|e| self.fail("query", e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.fail("read", e));
        rows
    }

    /// Every device of `pool`, by member then id.
    pub fn pool_devices(&self, pool: &str) -> Result<Vec<DeviceRecord>, StoreError> {
        self.rows(
            &format!("SELECT {COLS} FROM devices WHERE pool = ?1 ORDER BY member, id"),
            [pool],
        )
    }

    /// Every device of every pool.
    pub fn all_devices(&self) -> Result<Vec<DeviceRecord>, StoreError> {
        self.rows(
            &format!("SELECT {COLS} FROM devices ORDER BY pool, member, id"),
            [],
        )
    }

    /// The devices `consumer` holds in `pool` (any pool if `None`).
    pub fn held_by(
        &self,
        pool: Option<&str>,
        consumer: &str,
    ) -> Result<Vec<DeviceRecord>, StoreError> {
        match pool {
            Some(p) => self.rows(
                &format!(
                    "SELECT {COLS} FROM devices WHERE consumer = ?1 AND pool = ?2 ORDER BY since, id"
                ),
                params![consumer, p],
            ),
            None => self.rows(
                &format!("SELECT {COLS} FROM devices WHERE consumer = ?1 ORDER BY pool, since, id"),
                [consumer],
            ),
        }
    }

    /// One device.
    pub fn device(&self, id: &str) -> Result<Option<DeviceRecord>, StoreError> {
        self.conn
            .prepare_cached(&format!("SELECT {COLS} FROM devices WHERE id = ?1"))
            .map_err(|e| self.fail("prepare a query of", e))?
            .query_row([id], record)
            .optional()
            .map_err(|e| self.fail("query", e))
    }

    /// How many of `pool`'s devices are in a state other than free, counting
    /// reservations that ended before `now` as free.
    pub fn busy_count(&self, pool: &str, now: i64) -> Result<u64, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT count(*) FROM devices WHERE pool = ?1 AND state != 'free' \
                 AND NOT (state = 'allocated' AND expires IS NOT NULL AND expires <= ?2)",
            )
            .map_err(|e| self.fail("prepare a query of", e))?
            .query_row(params![pool, now], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.fail("count the devices of", e))
    }

    /// A free (or expired) pre-created device of `pool`: on the member holding
    /// fewest allocations (`spread`) or most (`pack`), ties by member and id.
    pub fn pick_ready(
        &self,
        pool: &str,
        now: i64,
        pack: bool,
    ) -> Result<Option<DeviceRecord>, StoreError> {
        // Two steps: the member (its allocations counted once per member,
        // not once per free device), then its first free device.
        let free =
            "(state = 'free' OR (state = 'allocated' AND expires IS NOT NULL AND expires <= ?2))";
        let order = if pack { "DESC" } else { "ASC" };
        let member = format!(
            "SELECT f.member FROM (SELECT DISTINCT member FROM devices \
                                   WHERE pool = ?1 AND origin = 'pre-created' AND {free}) f \
             ORDER BY (SELECT count(*) FROM devices a WHERE a.pool = ?1 AND a.member = f.member \
                       AND a.state = 'allocated' AND (a.expires IS NULL OR a.expires > ?2)) {order}, \
                      f.member LIMIT 1"
        );
        let Some(member): Option<String> = self
            .conn
            .prepare_cached(&member)
            .map_err(|e| self.fail("prepare a query of", e))?
            .query_row(params![pool, now], |r| r.get(0))
            .optional()
            .map_err(|e| self.fail("query", e))?
        else {
            return Ok(None);
        };
        let device = format!(
            "SELECT {COLS} FROM devices WHERE pool = ?1 AND member = ?3 \
             AND origin = 'pre-created' AND {free} ORDER BY id LIMIT 1"
        );
        self.conn
            .prepare_cached(&device)
            .map_err(|e| self.fail("prepare a query of", e))?
            .query_row(params![pool, now, member], record)
            .optional()
            .map_err(|e| self.fail("query", e))
    }

    /// Records a device.
    pub fn insert(&self, d: &DeviceRecord) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO devices (id, pool, member, origin, state, consumer, since, expires, element) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .map_err(|e| self.fail("prepare a statement of", e))?
            .execute(params![
                d.id,
                d.pool,
                d.member,
                d.origin.as_str(),
                d.state.as_str(),
                d.consumer,
                d.since,
                d.expires,
                d.element
            ])
            .map(|_| ())
            .map_err(|e| self.fail("record a device in", e))
    }

    /// Sets a device's state, holder and reservation end.
    pub fn set(
        &self,
        id: &str,
        state: RecState,
        consumer: Option<&str>,
        since: i64,
        expires: Option<i64>,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE devices SET state = ?2, consumer = ?3, since = ?4, expires = ?5 WHERE id = ?1",
            )
            .map_err(|e| self.fail("prepare a statement of", e))?
            .execute(params![id, state.as_str(), consumer, since, expires])
            .map(|_| ())
            .map_err(|e| self.fail("update a device in", e))
    }

    /// Records the libvirt element of a device once it is made.
    pub fn set_element(&self, id: &str, element: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE devices SET element = ?2 WHERE id = ?1")
            .map_err(|e| self.fail("prepare a statement of", e))?
            .execute(params![id, element])
            .map(|_| ())
            .map_err(|e| self.fail("update a device in", e))
    }

    /// Forgets a device.
    pub fn delete(&self, id: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("DELETE FROM devices WHERE id = ?1")
            .map_err(|e| self.fail("prepare a statement of", e))?
            .execute([id])
            .map(|_| ())
            .map_err(|e| self.fail("forget a device in", e))
    }

    /// The pool a UUID is bound to.
    pub fn binding(&self, uuid: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .prepare_cached("SELECT pool FROM bindings WHERE uuid = ?1")
            .map_err(|e| self.fail("prepare a query of", e))?
            .query_row([uuid], |r| r.get(0))
            .optional()
            .map_err(|e| self.fail("query", e))
    }

    /// Every binding of `pool` (every pool if `None`): (uuid, pool).
    pub fn bindings(&self, pool: Option<&str>) -> Result<Vec<(String, String)>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT uuid, pool FROM bindings WHERE ?1 IS NULL OR pool = ?1 ORDER BY pool, uuid",
            )
            .map_err(|e| self.fail("prepare a query of", e))?;
        let v = st
            .query_map([pool], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.fail("query", e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.fail("read", e));
        v
    }

    /// Binds a UUID to a pool (replacing nothing: the caller checked).
    pub fn bind(&self, uuid: &str, pool: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO bindings (uuid, pool) VALUES (?1, ?2)")
            .map_err(|e| self.fail("prepare a statement of", e))?
            .execute(params![uuid, pool])
            .map(|_| ())
            .map_err(|e| self.fail("bind a UUID in", e))
    }

    /// Removes a binding; whether there was one.
    pub fn unbind(&self, uuid: &str) -> Result<bool, StoreError> {
        self.conn
            .prepare_cached("DELETE FROM bindings WHERE uuid = ?1")
            .map_err(|e| self.fail("prepare a statement of", e))?
            .execute([uuid])
            .map(|n| n > 0)
            .map_err(|e| self.fail("unbind a UUID in", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PoolDb;

    fn rec(id: &str, member: &str, origin: Origin, state: RecState) -> DeviceRecord {
        DeviceRecord {
            id: id.into(),
            pool: "p".into(),
            member: member.into(),
            origin,
            state,
            consumer: None,
            since: 0,
            expires: None,
            element: String::new(),
        }
    }

    #[test]
    fn a_refusing_body_rolls_back() {
        let t = tempfile::tempdir().unwrap();
        let db = PoolDb::open(t.path()).unwrap();
        let r: Result<(), StoreError> = db.write(|tx| {
            tx.insert(&rec("a", "m", Origin::OnDemand, RecState::Creating))?;
            Err(StoreError::Definition {
                path: "x".into(),
                reason: "refused".into(),
            })
        });
        assert!(r.is_err());
        let n = db.read(|tx| tx.all_devices()).unwrap();
        assert!(n.is_empty(), "rolled back");
        let again = PoolDb::open(t.path()).unwrap();
        assert!(again.read(|tx| tx.all_devices()).unwrap().is_empty());
    }

    #[test]
    fn a_file_without_a_recorded_version_is_upgraded_in_place() {
        let t = tempfile::tempdir().unwrap();
        let path = PoolDb::path_under(t.path());
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE devices (id TEXT PRIMARY KEY NOT NULL, pool TEXT NOT NULL, member TEXT NOT NULL, \
             origin TEXT NOT NULL, state TEXT NOT NULL, consumer TEXT, since INTEGER NOT NULL, expires INTEGER);\
             INSERT INTO devices VALUES ('a', 'p', 'm', 'pre-created', 'free', NULL, 0, NULL);",
        )
        .unwrap();
        drop(c);
        let db = PoolDb::open(t.path()).unwrap();
        let rows = db.read(|tx| tx.all_devices()).unwrap();
        assert_eq!((rows.len(), rows[0].element.as_str()), (1, ""));
    }

    #[test]
    fn ready_devices_are_picked_by_placement_and_expired_ones_are_free() {
        let t = tempfile::tempdir().unwrap();
        let db = PoolDb::open(t.path()).unwrap();
        db.write::<_, StoreError>(|tx| {
            for (id, m) in [("a1", "a"), ("a2", "a"), ("b1", "b"), ("b2", "b")] {
                tx.insert(&rec(id, m, Origin::PreCreated, RecState::Free))?;
            }
            tx.set("a1", RecState::Allocated, Some("vm1"), 0, None)
        })
        .unwrap();
        let pick = |pack| {
            db.read(|tx| tx.pick_ready("p", 100, pack))
                .unwrap()
                .unwrap()
                .id
        };
        assert_eq!(pick(false), "b1", "spread: the member holding fewest");
        assert_eq!(pick(true), "a2", "pack: the member holding most");
        db.write(|tx| tx.set("a1", RecState::Allocated, Some("vm1"), 0, Some(50)))
            .unwrap();
        assert_eq!(db.read(|tx| tx.busy_count("p", 100)).unwrap(), 0);
        assert_eq!(db.read(|tx| tx.busy_count("p", 10)).unwrap(), 1);
        assert_eq!(pick(false), "a1", "an expired reservation is free again");
    }

    #[test]
    fn pool_files_are_loaded_by_name_and_bad_ones_reported() {
        let t = tempfile::tempdir().unwrap();
        let defs = PoolDefs::under(t.path());
        fs::create_dir_all(defs.dir()).unwrap();
        fs::write(
            defs.dir().join("good.toml"),
            "kind = \"mdev\"\ntype = \"mtty-2\"\n",
        )
        .unwrap();
        fs::write(
            defs.dir().join("typo.toml"),
            "kind = \"mdev\"\ntpye = \"mtty-2\"\n",
        )
        .unwrap();
        fs::write(defs.dir().join("bad name.toml"), "").unwrap();
        fs::write(defs.dir().join(".good.toml.tmp"), "junk").unwrap();
        fs::write(defs.dir().join("README"), "junk").unwrap();
        crate::test_fifo(&defs.dir().join("fifo.toml"));
        let (d, p) = defs.load_all().unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].name.as_str(), "good");
        let reasons: Vec<String> = p.iter().map(|p| p.to_string()).collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(
            reasons.iter().any(|r| r.contains("unknown field `tpye`")),
            "{reasons:?}"
        );
        assert!(
            reasons.iter().any(|r| r.contains("not a pool name")),
            "{reasons:?}"
        );
        assert!(
            reasons.iter().any(|r| r.contains("fifo.toml")),
            "{reasons:?}"
        );
    }
}
