//! The pool state database's file and connection: opening (schema, WAL,
//! upgrades), and the transactions every statement of [`crate::Tx`] runs in.
//!
//! Owns: one connection per database file per process, shared by every
//! thread (a daemon answering 64 clients keeps one warm page cache and one
//! statement cache instead of 64 that re-read what the others wrote), taken
//! for the length of one transaction. Must not: run statements of its own
//! beyond the schema (those are `Tx`'s), or hold the connection between
//! transactions.
//!
//! Durability: WAL with `synchronous = NORMAL` — a committed transaction
//! survives the process being killed at any instant; a power loss may roll
//! back the last commits, which is safe because the devices they describe
//! (on-demand mdevs, VF types, vDPA devices) do not survive it either and the
//! next reconcile frees what no longer exists.

use crate::pools::Tx;
use crate::StoreError;
use rusqlite::Connection;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS devices (
    id       TEXT PRIMARY KEY NOT NULL,
    pool     TEXT NOT NULL,
    member   TEXT NOT NULL,
    origin   TEXT NOT NULL,
    state    TEXT NOT NULL,
    consumer TEXT,
    since    INTEGER NOT NULL,
    expires  INTEGER,
    element  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS devices_by_pool ON devices (pool, state);
CREATE INDEX IF NOT EXISTS devices_by_member ON devices (pool, member, state);
CREATE INDEX IF NOT EXISTS devices_by_consumer ON devices (consumer);
CREATE TABLE IF NOT EXISTS bindings (
    uuid TEXT PRIMARY KEY NOT NULL,
    pool TEXT NOT NULL
);
PRAGMA user_version = 2;
";

/// 1: the first recorded; 2: `devices_by_member` (placement counts per
/// member without scanning the pool's allocations once per free device).
const SCHEMA_VERSION: i64 = 2;

/// One file's connection, shared by this process's threads.
#[derive(Debug)]
struct Shared {
    /// The file's (device, inode) when opened: a connection is reused only
    /// for the same file, never for one that replaced it.
    file: (u64, u64),
    conn: Mutex<Connection>,
    /// The thread (numbered by [`thread_no`]) inside a transaction on it, 0
    /// when none: a transaction opened inside another on the same thread
    /// gets a connection of its own instead of waiting for itself.
    holder: AtomicU64,
}

/// Every file's shared connection in this process.
static SHARED: Mutex<Vec<(PathBuf, Arc<Shared>)>> = Mutex::new(Vec::new());

fn thread_no() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static NO: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    NO.with(|n| *n)
}

fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The state database.
#[derive(Debug)]
pub struct PoolDb {
    shared: Arc<Shared>,
    path: PathBuf,
    /// How long one transaction waits for another writer's lock before it
    /// gives up naming the holder (see [`PoolDb::waiting`]).
    wait: Duration,
}

/// A transaction's wait for another writer when the caller chose none.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// The connection one transaction runs on: the shared one, held, or (nested
/// on the same thread) one of its own.
enum Held<'a> {
    Shared(MutexGuard<'a, Connection>, &'a AtomicU64),
    Own(Connection),
}

impl Held<'_> {
    fn conn(&self) -> &Connection {
        match self {
            Held::Shared(g, _) => g,
            Held::Own(c) => c,
        }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Held::Shared(_, holder) = self {
            holder.store(0, Ordering::Release);
        }
    }
}

impl PoolDb {
    /// The database file under a root prefix.
    pub fn path_under(root: &Path) -> PathBuf {
        root.join("var/lib/hostdev/pools.db")
    }

    /// The file that says this host keeps pool state: written when the
    /// database is first made, it outlives the database, so a database that
    /// is deleted or emptied later is refused instead of made again.
    pub fn marker_under(root: &Path) -> PathBuf {
        root.join("var/lib/hostdev/pools.created")
    }

    /// Opens (creating it on a host that never had one) the database under
    /// `root`; in a process that has it open already, shares that
    /// connection. Where the marker says a database was made, a missing,
    /// empty or schema-less file is [`StoreError::PoolStateLost`]: the
    /// devices it recorded may exist and be held, and a new empty database
    /// would hand them out again and make a second set.
    pub fn open(root: &Path) -> Result<PoolDb, StoreError> {
        let path = Self::path_under(root);
        let marker = Self::marker_under(root);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let marked = marker.exists();
        let lost = |what: &'static str| StoreError::PoolStateLost {
            path: path.clone(),
            marker: marker.clone(),
            what,
        };
        if marked {
            match fs::metadata(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(lost("is missing"))
                }
                Ok(m) if m.len() == 0 => return Err(lost("is empty")),
                _ => {}
            }
        }
        let mut all = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(file) = file_id(&path) {
            if let Some((_, s)) = all.iter().find(|(p, s)| p == &path && s.file == file) {
                return Ok(PoolDb {
                    shared: Arc::clone(s),
                    path,
                    wait: DEFAULT_WAIT,
                });
            }
        }
        let conn = connect(&path, !marked, DEFAULT_WAIT)?;
        if marked && !has_schema(&conn, &path)? {
            return Err(lost("has no pool tables"));
        }
        let file = file_id(&path).unwrap_or_default();
        let db = PoolDb {
            shared: Arc::new(Shared {
                file,
                conn: Mutex::new(conn),
                holder: AtomicU64::new(0),
            }),
            path,
            wait: DEFAULT_WAIT,
        };
        db.upgrade()?;
        if !marked {
            mark(root, &marker)?;
        }
        all.retain(|(p, _)| p != &db.path);
        all.push((db.path.clone(), Arc::clone(&db.shared)));
        Ok(db)
    }

    /// Creates or upgrades the schema.
    fn upgrade(&self) -> Result<(), StoreError> {
        let version: i64 = self
            .shared
            .conn
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|source| StoreError::Db {
                path: self.path.clone(),
                op: "read the schema version of",
                source,
            })?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Db {
                path: self.path.clone(),
                op: "use",
                source: rusqlite::Error::InvalidParameterName(format!(
                    "its schema version {version} is newer than this hostdev's ({SCHEMA_VERSION})"
                )),
            });
        }
        if version == SCHEMA_VERSION {
            return Ok(());
        }
        self.write(|tx| {
            tx.conn
                .execute_batch(SCHEMA)
                .map_err(|e| tx.fail("create the schema of", e))?;
            // A file from before the version was recorded lacks `element`.
            let has: bool = tx
                .conn
                .query_row(
                    "SELECT count(*) FROM pragma_table_info('devices') WHERE name = 'element'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .map(|n| n > 0)
                .map_err(|e| tx.fail("read the schema of", e))?;
            if !has {
                tx.conn
                    .execute_batch(
                        "ALTER TABLE devices ADD COLUMN element TEXT NOT NULL DEFAULT ''",
                    )
                    .map_err(|e| tx.fail("upgrade the schema of", e))?;
            }
            Ok::<_, StoreError>(())
        })
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The same database, its transactions waiting at most `wait` for
    /// another writer (counted from when each is asked for, the wait for
    /// this process's other threads included). A writer holds the lock for
    /// milliseconds; one that holds it longer is stuck, and the caller
    /// chooses how long it can afford to wait: the libvirt hook blocks a
    /// VM's start, a command someone typed blocks them.
    pub fn waiting(mut self, wait: Duration) -> PoolDb {
        self.wait = wait;
        self
    }

    /// The connection for one transaction, with the busy timeout left of
    /// `wait` from `since`.
    fn hold(&self, since: Instant) -> Result<Held<'_>, StoreError> {
        let me = thread_no();
        let left = || self.wait.saturating_sub(since.elapsed());
        if self.shared.holder.load(Ordering::Acquire) == me {
            return Ok(Held::Own(connect(&self.path, false, left())?));
        }
        let g = self.shared.conn.lock().unwrap_or_else(|p| p.into_inner());
        self.shared.holder.store(me, Ordering::Release);
        let held = Held::Shared(g, &self.shared.holder);
        held.conn()
            .busy_timeout(left())
            .map_err(|source| StoreError::Db {
                path: self.path.clone(),
                op: "set the busy timeout of",
                source,
            })?;
        Ok(held)
    }

    /// Another writer kept the lock for the whole wait: who, if /proc says.
    fn busy(&self, since: Instant) -> StoreError {
        StoreError::DbBusy {
            path: self.path.clone(),
            waited: since.elapsed(),
            holder: holder_of(&self.path),
        }
    }

    /// Runs `f` inside one `BEGIN IMMEDIATE` transaction (the write lock is
    /// taken at the start, so what `f` reads cannot change before it writes);
    /// commits if `f` succeeds, rolls back if it fails.
    pub fn write<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let since = Instant::now();
        let held = self.hold(since)?;
        let conn = held.conn();
        let tx = Tx {
            conn,
            path: &self.path,
        };
        conn.execute_batch("BEGIN IMMEDIATE").map_err(|e| {
            if is_busy(&e) {
                self.busy(since)
            } else {
                tx.fail("begin a transaction on", e)
            }
        })?;
        match f(&tx) {
            Ok(v) => match conn.execute_batch("COMMIT") {
                Ok(()) => Ok(v),
                Err(e) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    Err(tx.fail("commit to", e).into())
                }
            },
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Reads in one snapshot (no write lock).
    pub fn read<T>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let held = self.hold(Instant::now())?;
        let conn = held.conn();
        let tx = Tx {
            conn,
            path: &self.path,
        };
        conn.execute_batch("BEGIN DEFERRED")
            .map_err(|e| tx.fail("begin a read of", e))?;
        let r = f(&tx);
        let _ = conn.execute_batch("ROLLBACK"); // nothing was written
        r
    }
}

/// Writes the marker of a host that keeps pool state (under the host lock;
/// pools' lock holders may call this, which is taken before the host lock).
fn mark(root: &Path, marker: &Path) -> Result<(), StoreError> {
    let lock = crate::HostLock::acquire(&crate::HostLock::path_under(root))?;
    let text = format!(
        "hostdev made its pool state database, pools.db, in this directory (unix time {}).\n\
         While this file exists, a missing or empty pools.db is refused: devices it\n\
         recorded may still exist and be held by virtual machines. Remove this file only\n\
         when no device a pool made exists any more.\n",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    );
    crate::write_atomic(&lock, marker, text.as_bytes())
}

/// Whether the file has the pool tables (a file replaced by an empty
/// database has none).
fn has_schema(conn: &Connection, path: &Path) -> Result<bool, StoreError> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'devices'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
    .map_err(|source| StoreError::Db {
        path: path.to_path_buf(),
        op: "read the schema of",
        source,
    })
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
}

/// Who holds the write lock of the database at `path`, as a phrase: in WAL
/// mode a writer holds a POSIX lock on byte 120 of the `-shm` file
/// (SQLite's WAL_WRITE_LOCK), which `/proc/locks` lists with its pid.
fn holder_of(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let shm = PathBuf::from(format!("{}-shm", path.display()));
    let Ok(m) = fs::metadata(&shm) else {
        return "which process holds it cannot be seen (no -shm file)".into();
    };
    let dev = format!(
        "{:02x}:{:02x}:{}",
        rustix::fs::major(m.dev()),
        rustix::fs::minor(m.dev()),
        m.ino()
    );
    let locks = fs::read_to_string("/proc/locks").unwrap_or_default();
    let mut pids: Vec<u32> = locks
        .lines()
        .filter_map(|l| {
            // "1: POSIX  ADVISORY  WRITE 4242 08:02:131 120 120"; waiters have "->".
            let f: Vec<&str> = l.split_whitespace().collect();
            let [_, kind, _, mode, pid, file, start, end] = f.as_slice() else {
                return None;
            };
            let covers = start.parse::<u64>().is_ok_and(|s| s <= 120)
                && (*end == "EOF" || end.parse::<u64>().is_ok_and(|e| e >= 120));
            (*kind == "POSIX" && *mode == "WRITE" && *file == dev && covers)
                .then(|| pid.parse().ok())
                .flatten()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    if pids.is_empty() {
        return "which process holds it cannot be seen (/proc/locks names none)".into();
    }
    let me = std::process::id();
    let who: Vec<String> = pids
        .into_iter()
        .map(|pid| {
            if pid == me {
                return format!("pid {pid} (this process)");
            }
            let cmd = fs::read(format!("/proc/{pid}/cmdline"))
                .map(|b| {
                    let s: Vec<String> = b
                        .split(|c| *c == 0)
                        .filter(|a| !a.is_empty())
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .collect();
                    s.join(" ")
                })
                .unwrap_or_default();
            let cmd = hostdev_model::quote::quote(&cmd);
            format!("pid {pid} ({cmd}) holds it")
        })
        .collect();
    who.join("; ")
}

/// A new connection in WAL mode with the busy timeout `wait`; the file is
/// created only when `create` (a host that never had pool state).
fn connect(path: &Path, create: bool, wait: Duration) -> Result<Connection, StoreError> {
    use rusqlite::OpenFlags;
    let err = |op: &'static str| {
        let path = path.to_path_buf();
        move |source| StoreError::Db { path, op, source }
    };
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags).map_err(err("open"))?;
    conn.busy_timeout(wait)
        .map_err(err("set the busy timeout of"))?;
    // journal_mode answers a row; WAL persists in the file once set.
    // Switching a fresh file to WAL needs an exclusive lock, and SQLite
    // answers SQLITE_BUSY there without calling the busy handler when
    // another process holds it at that instant (64 processes opening a new
    // file at once did): wait for it here, bounded.
    let t0 = std::time::Instant::now();
    let mode: String = loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)) {
            Ok(m) => break m,
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && t0.elapsed() < wait =>
            {
                std::thread::sleep(Duration::from_millis(5 + u64::from(std::process::id() % 7)));
            }
            Err(e) => return Err(err("open (in WAL mode)")(e)),
        }
    };
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Db {
            path: path.to_path_buf(),
            op: "open (in WAL mode)",
            source: rusqlite::Error::InvalidParameterName(format!("journal_mode is {mode}")),
        });
    }
    conn.execute_batch("PRAGMA synchronous = NORMAL;")
        .map_err(err("configure"))?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DeviceRecord, Origin, RecState};

    fn free(id: &str) -> DeviceRecord {
        DeviceRecord {
            id: id.into(),
            pool: "p".into(),
            member: "m".into(),
            origin: Origin::PreCreated,
            state: RecState::Free,
            consumer: None,
            since: 0,
            expires: None,
            element: String::new(),
        }
    }

    #[test]
    fn one_connection_per_file_is_shared_and_a_replaced_file_gets_its_own() {
        let t = tempfile::tempdir().unwrap();
        let a = PoolDb::open(t.path()).unwrap();
        let b = PoolDb::open(t.path()).unwrap();
        assert!(Arc::ptr_eq(&a.shared, &b.shared));
        a.write(|tx| tx.insert(&free("x"))).unwrap();
        drop((a, b));
        for f in ["pools.db", "pools.db-wal", "pools.db-shm", "pools.created"] {
            let _ = fs::remove_file(t.path().join("var/lib/hostdev").join(f));
        }
        let c = PoolDb::open(t.path()).unwrap();
        assert!(
            c.read(|tx| tx.all_devices()).unwrap().is_empty(),
            "a new file, a new connection"
        );
    }

    #[test]
    fn a_read_inside_a_write_on_the_same_thread_does_not_wait_for_itself() {
        let t = tempfile::tempdir().unwrap();
        let db = PoolDb::open(t.path()).unwrap();
        db.write(|tx| tx.insert(&free("before"))).unwrap();
        let seen = db
            .write(|tx| {
                tx.insert(&free("inside"))?;
                // Its own connection: sees what was committed, not this
                // transaction's rows.
                db.read(|t2| t2.all_devices())
            })
            .unwrap();
        let ids: Vec<_> = seen.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["before"]);
        assert_eq!(db.read(|tx| tx.all_devices()).unwrap().len(), 2);
    }

    #[test]
    fn threads_sharing_the_connection_never_pick_the_same_device() {
        let t = tempfile::tempdir().unwrap();
        let db = PoolDb::open(t.path()).unwrap();
        db.write(|tx| (0..40).try_for_each(|i| tx.insert(&free(&format!("d{i:02}")))))
            .unwrap();
        let got: Vec<Option<String>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..50)
                .map(|i| {
                    let root = t.path().to_path_buf();
                    s.spawn(move || {
                        let db = PoolDb::open(&root).unwrap();
                        db.write(|tx| {
                            let Some(d) = tx.pick_ready("p", 0, false)? else {
                                return Ok::<_, StoreError>(None);
                            };
                            let c = format!("c{i}");
                            tx.set(&d.id, RecState::Allocated, Some(c.as_str()), 0, None)?;
                            Ok(Some(d.id))
                        })
                        .unwrap()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut granted: Vec<_> = got.into_iter().flatten().collect();
        assert_eq!(granted.len(), 40, "40 devices, 50 asks");
        granted.sort();
        granted.dedup();
        assert_eq!(granted.len(), 40, "no device granted twice");
    }

    #[test]
    fn a_version_1_file_gains_the_member_index() {
        let t = tempfile::tempdir().unwrap();
        let path = PoolDb::path_under(t.path());
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let v1 = SCHEMA
            .replace(
                "CREATE INDEX IF NOT EXISTS devices_by_member ON devices (pool, member, state);",
                "",
            )
            .replace("user_version = 2", "user_version = 1");
        Connection::open(&path).unwrap().execute_batch(&v1).unwrap();
        let db = PoolDb::open(t.path()).unwrap();
        let held = db.hold(Instant::now()).unwrap();
        let n: i64 = held
            .conn()
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'devices_by_member'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let v: i64 = held
            .conn()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!((n, v), (1, 2));
    }
}
