//! The Raft log, vote and purge pointer in SQLite (`log.db`).
//!
//! One writer connection behind a mutex (openraft serialises log I/O anyway) and one
//! reader connection per replication stream.
//!
//! **Group commit.** openraft 0.9's leader calls `append` once per client write, and waits
//! for it before it takes the next message. Committing each entry with `synchronous=FULL`
//! therefore cost one fsync per write, serialised: the leader spent most of its time
//! waiting on the disk (docs/benchmarks.md). Instead an append commits its batch in WAL
//! mode with `synchronous=NORMAL` (the frames are written, so replication streams can read
//! them at once, as openraft requires, but not yet fsynced) and hands openraft's callback
//! to the flusher thread. The flusher fsyncs the WAL once for every append committed
//! before it started, then reports them all flushed. Only then does openraft count the
//! entries as persisted here (for the leader's own vote in the quorum, or a follower's
//! answer to AppendEntries), so an acknowledged write is still on disk on a majority. A
//! vote is fsynced before `save_vote` returns. Checkpoints are safe as SQLite does them
//! with `synchronous=NORMAL`: the WAL is synced before it is copied into the database and
//! the database after.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader, StorageIOError};
use rusqlite::{Connection, OptionalExtension, params};

use crate::faults::Faults;
use crate::sqlite::{self, blocking, read_logs, write_logs};
use crate::types::{Entry, LogId, RaftId, StorageError, TypeConfig, Vote};

const SCHEMA_VERSION: i64 = 1;

/// SQLite-backed [`RaftLogStorage`].
#[derive(Clone)]
pub struct LogStore {
    path: PathBuf,
    writer: Arc<Mutex<Connection>>,
    /// Appends committed but not yet fsynced, for the flusher thread.
    flusher: mpsc::Sender<LogFlushed<TypeConfig>>,
}

/// A read-only view of the log for one replication stream.
pub struct LogReader {
    conn: Arc<Mutex<Connection>>,
}

impl LogStore {
    /// Open or create `log.db` in `dir`.
    pub fn open(dir: &Path) -> Result<Self, rusqlite::Error> {
        Self::open_with_faults(dir, None)
    }

    /// [`LogStore::open`], with every fsync delayed as `faults` says for `node` (tests: a
    /// slow disk).
    pub fn open_with_faults(dir: &Path, faults: Option<(Arc<Faults>, String)>) -> Result<Self, rusqlite::Error> {
        let path = dir.join("log.db");
        let conn = sqlite::open(&path)?;
        // Commits write the WAL; the flusher (or `sync_wal`) makes them durable.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        migrate(&conn)?;
        // Everything written so far (a migration) is made durable before the first append.
        sync_wal(&path).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        let (flusher, pending) = mpsc::channel();
        let wal = path.clone();
        std::thread::Builder::new()
            .name("log-fsync".into())
            .spawn(move || flush_loop(&wal, &pending, faults.as_ref()))
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        Ok(Self {
            path,
            writer: Arc::new(Mutex::new(conn)),
            flusher,
        })
    }

    /// The last purged and the last log id (as openraft's `get_log_state`).
    pub async fn log_state(&self) -> Result<LogState<TypeConfig>, StorageError> {
        self.with_writer(|conn| {
            let last_purged_log_id: Option<LogId> = get_meta(conn, "last_purged").map_err(|e| read_logs(&e))?;
            let last: Option<Vec<u8>> = conn
                .query_row("SELECT entry FROM log ORDER BY idx DESC LIMIT 1", [], |r| r.get(0))
                .optional()
                .map_err(|e| read_logs(&e))?;
            let last_log_id = match last {
                Some(bytes) => {
                    let entry: Entry = serde_json::from_slice(&bytes).map_err(|e| read_logs(&e))?;
                    Some(entry.log_id)
                }
                None => last_purged_log_id,
            };
            Ok(LogState {
                last_purged_log_id,
                last_log_id,
            })
        })
        .await
    }

    /// The Raft id of this incarnation, created on first start and kept in the log database.
    pub fn node_id(&self) -> Result<RaftId, rusqlite::Error> {
        let conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(id) = get_meta::<RaftId>(&conn, "node_id")? {
            return Ok(id);
        }
        // Ids only need to be unique per cluster; keep them below 2^53 so JSON clients
        // (the web UI) can hold them as numbers.
        let id: RaftId = rand::random::<u64>() & ((1 << 53) - 1);
        set_meta(&conn, "node_id", &id)?;
        Ok(id)
    }

    /// Seed a log for a store restored from a backup at `at` (see [`crate::backup`]): the
    /// log starts after `at`, and the vote is `at`'s term, so the first election is
    /// for a later term. Durable when it returns.
    pub fn seed_restored(&self, at: LogId) -> Result<(), rusqlite::Error> {
        let conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let vote = Vote::new(at.leader_id.term, at.leader_id.node_id);
        set_meta(&conn, "last_purged", &at)?;
        set_meta(&conn, "vote", &vote)?;
        sync_wal(&self.path).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
    }

    /// Whether this store never held any Raft state (no vote, no log): a pristine node.
    pub fn is_pristine(&self) -> Result<bool, rusqlite::Error> {
        let conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let vote: Option<Vote> = get_meta(&conn, "vote")?;
        let any_log: Option<i64> = conn
            .query_row("SELECT idx FROM log LIMIT 1", [], |r| r.get(0))
            .optional()?;
        let purged: Option<LogId> = get_meta(&conn, "last_purged")?;
        Ok(vote.is_none() && any_log.is_none() && purged.is_none())
    }

    fn with_writer<T, F>(&self, f: F) -> impl Future<Output = Result<T, StorageError>> + use<T, F>
    where
        F: FnOnce(&mut Connection) -> Result<T, StorageError> + Send + 'static,
        T: Send + 'static,
    {
        let writer = self.writer.clone();
        blocking(move || {
            let mut conn = writer.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut conn)
        })
    }
}

/// fsync the write-ahead log of the database at `db`: every commit whose frames were
/// written before the call is durable when it returns. (Without a WAL file, after a
/// checkpoint that removed it, there is nothing unsynced.)
fn sync_wal(db: &Path) -> std::io::Result<()> {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    match std::fs::File::open(PathBuf::from(wal)) {
        Ok(file) => file.sync_data(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The flusher thread: one fsync for all appends committed before it, then their callbacks
/// in order. Ends when the store is dropped.
fn flush_loop(db: &Path, pending: &mpsc::Receiver<LogFlushed<TypeConfig>>, faults: Option<&(Arc<Faults>, String)>) {
    while let Ok(first) = pending.recv() {
        let mut batch = vec![first];
        if let Some(delay) = faults.and_then(|(f, node)| f.disk_delay(node)) {
            std::thread::sleep(delay);
        }
        batch.extend(pending.try_iter());
        let synced = sync_wal(db);
        if let Err(e) = &synced {
            tracing::error!(error = %e, "fsync of the Raft log failed");
        }
        for callback in batch {
            let result = match &synced {
                Ok(()) => Ok(()),
                Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
            };
            callback.log_io_completed(result);
        }
    }
}

fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version < 1 {
        conn.execute_batch(
            "BEGIN;
             CREATE TABLE IF NOT EXISTS log (idx INTEGER PRIMARY KEY, entry BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
             PRAGMA user_version = 1;
             COMMIT;",
        )?;
    }
    debug_assert!(version <= SCHEMA_VERSION);
    Ok(())
}

fn get_meta<T: serde::de::DeserializeOwned>(conn: &Connection, key: &str) -> rusqlite::Result<Option<T>> {
    let raw: Option<Vec<u8>> = conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?;
    raw.map(|b| {
        serde_json::from_slice(&b)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e)))
    })
    .transpose()
}

fn set_meta<T: serde::Serialize>(conn: &Connection, key: &str, value: &T) -> rusqlite::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![key, bytes],
    )?;
    Ok(())
}

fn range_to_sql<RB: RangeBounds<u64>>(range: &RB) -> (i64, i64) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e,
        Bound::Excluded(&e) => e.saturating_sub(if e == 0 { 0 } else { 1 }),
        Bound::Unbounded => i64::MAX as u64,
    };
    let empty = matches!(range.end_bound(), Bound::Excluded(&0));
    let to_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    if empty { (1, 0) } else { (to_i64(start), to_i64(end)) }
}

fn read_range(conn: &Connection, start: i64, end: i64) -> Result<Vec<Entry>, StorageError> {
    let mut stmt = conn
        .prepare_cached("SELECT entry FROM log WHERE idx >= ?1 AND idx <= ?2 ORDER BY idx")
        .map_err(|e| read_logs(&e))?;
    let rows = stmt
        .query_map(params![start, end], |r| r.get::<_, Vec<u8>>(0))
        .map_err(|e| read_logs(&e))?;
    let mut out = Vec::new();
    for row in rows {
        let bytes = row.map_err(|e| read_logs(&e))?;
        out.push(serde_json::from_slice(&bytes).map_err(|e| read_logs(&e))?);
    }
    Ok(out)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let (start, end) = range_to_sql(&range);
        self.with_writer(move |conn| read_range(conn, start, end)).await
    }
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let (start, end) = range_to_sql(&range);
        let conn = self.conn.clone();
        blocking(move || {
            let conn = conn.lock().unwrap_or_else(|p| p.into_inner());
            read_range(&conn, start, end)
        })
        .await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        self.log_state().await
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        // A dedicated read connection lets replication streams read while appends commit
        // (WAL readers never block the writer). Fall back to sharing the writer if the
        // file cannot be opened a second time.
        match sqlite::open_reader(&self.path) {
            Ok(conn) => LogReader {
                conn: Arc::new(Mutex::new(conn)),
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot open a log reader connection; sharing the writer");
                LogReader {
                    conn: self.writer.clone(),
                }
            }
        }
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let vote = *vote;
        let path = self.path.clone();
        self.with_writer(move |conn| {
            set_meta(conn, "vote", &vote).map_err(|e| StorageIOError::write_vote(&e))?;
            // A vote must be durable before it is cast.
            sync_wal(&path).map_err(|e| StorageIOError::write_vote(&e).into())
        })
        .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.with_writer(|conn| get_meta(conn, "vote").map_err(|e| StorageIOError::read_vote(&e).into()))
            .await
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut rows = Vec::new();
        for entry in entries {
            let idx = i64::try_from(entry.log_id.index).map_err(|e| write_logs(&e))?;
            rows.push((idx, serde_json::to_vec(&entry).map_err(|e| write_logs(&e))?));
        }
        let result = self
            .with_writer(move |conn| {
                let tx = conn.transaction().map_err(|e| write_logs(&e))?;
                {
                    let mut stmt = tx
                        .prepare_cached("INSERT OR REPLACE INTO log (idx, entry) VALUES (?1, ?2)")
                        .map_err(|e| write_logs(&e))?;
                    for (idx, bytes) in &rows {
                        stmt.execute(params![idx, bytes]).map_err(|e| write_logs(&e))?;
                    }
                }
                // synchronous=NORMAL: readable now, durable once the flusher has synced.
                tx.commit().map_err(|e| write_logs(&e))
            })
            .await;
        match result {
            Ok(()) => {
                if let Err(mpsc::SendError(callback)) = self.flusher.send(callback) {
                    // The flusher is gone (it never stops while the store exists): sync here.
                    let path = self.path.clone();
                    let synced = blocking(move || sync_wal(&path).map_err(|e| write_logs(&e))).await;
                    callback.log_io_completed(synced.map_err(|e| std::io::Error::other(e.to_string())));
                }
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(e)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let idx = i64::try_from(log_id.index).map_err(|e| write_logs(&e))?;
        self.with_writer(move |conn| {
            conn.execute("DELETE FROM log WHERE idx >= ?1", [idx])
                .map(|_| ())
                .map_err(|e| write_logs(&e))
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let idx = i64::try_from(log_id.index).map_err(|e| write_logs(&e))?;
        self.with_writer(move |conn| {
            let tx = conn.transaction().map_err(|e| write_logs(&e))?;
            set_meta(&tx, "last_purged", &log_id).map_err(|e| write_logs(&e))?;
            tx.execute("DELETE FROM log WHERE idx <= ?1", [idx])
                .map_err(|e| write_logs(&e))?;
            tx.commit().map_err(|e| write_logs(&e))
        })
        .await
    }
}
