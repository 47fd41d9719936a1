//! The agenda state machine in SQLite (`state.db`).
//!
//! - `apply` runs a whole batch of committed entries in one transaction that also moves
//!   `last_applied` and the membership: after a crash the database holds either all or
//!   none of a batch, so no entry is applied twice or skipped.
//! - Snapshots (`snapshot`) are consistent page copies of the database made with SQLite's
//!   online backup API on a read connection (the copy carries its own `last_applied`),
//!   kept under `snapshots/`, streamed from and into files, and installed on a follower
//!   with the backup API in one step (atomic).
//! - Reads use a small pool of read-only connections on the blocking pool; WAL lets them
//!   run while apply writes.

mod apply;
mod read;
mod schema;
mod snapshot;

pub use snapshot::{SnapshotBuilder, SnapshotData};

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use agenda_shared::model::Notification;
use agenda_shared::query::{Principal, Query, QueryOutcome};
use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, OptionalSend, StorageIOError};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use tokio::sync::watch;
use uuid::Uuid;

use crate::entry::{FORMAT_SINGLE, Proposal, SUPPORTED_FORMAT};
use crate::sqlite::{self, blocking, read_sm, write_sm};
use crate::types::{ApplyResponse, Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig};

/// Most read connections kept open for reuse.
const READER_POOL: usize = 8;

/// The state machine handle (cheap to clone; all clones share one database).
#[derive(Clone)]
pub struct StateStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    snapshot_dir: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    applied: watch::Sender<u64>,
    /// Serialises snapshot building and installing.
    snapshot_lock: Mutex<()>,
    /// The newest entry format this store applies ([`crate::entry`]).
    max_format: AtomicU32,
    /// The newest entry format applied so far (`meta.entry_format`): the cluster has
    /// written it, so no leader goes back below it.
    applied_format: AtomicU32,
    /// Why this store stopped applying (an entry of a format it does not apply).
    halted: Mutex<Option<String>>,
    /// The cluster's id (`meta.cluster_id`), once known.
    cluster_id: Mutex<Option<String>>,
}

/// `meta` key of [`Inner::applied_format`].
const ENTRY_FORMAT_KEY: &str = "entry_format";
/// `meta` key of the cluster's id: derived from the cluster's first entry (its initial
/// membership) by every replica that applies it, copied by snapshots, and new for a
/// cluster restored from a backup. Clusters initialised before it existed have none.
pub const CLUSTER_ID_KEY: &str = "cluster_id";

impl StateStore {
    /// Open or create `state.db` (and `snapshots/`) in `dir`.
    pub fn open(dir: &Path) -> Result<Self, anyhow::Error> {
        let path = dir.join("state.db");
        let snapshot_dir = dir.join("snapshots");
        fs::create_dir_all(&snapshot_dir)?;
        let mut conn = sqlite::open(&path)?;
        schema::migrate(&mut conn)?;
        let (applied, _) = read_applied(&conn)?;
        let applied_format = read_entry_format(&conn)?;
        let cluster_id = read_cluster_id(&conn)?;
        let store = Self {
            inner: Arc::new(Inner {
                path,
                snapshot_dir,
                writer: Mutex::new(conn),
                readers: Mutex::new(Vec::new()),
                applied: watch::channel(applied.map(|l| l.index).unwrap_or(0)).0,
                snapshot_lock: Mutex::new(()),
                max_format: AtomicU32::new(SUPPORTED_FORMAT),
                applied_format: AtomicU32::new(applied_format),
                halted: Mutex::new(None),
                cluster_id: Mutex::new(cluster_id),
            }),
        };
        store.remove_stale_snapshot_files()?;
        Ok(store)
    }

    /// Apply entry formats up to `format` only (at most [`SUPPORTED_FORMAT`]): a store
    /// behaving as an older version would, for mixed-version tests and rehearsals.
    pub fn set_max_entry_format(&self, format: u32) {
        self.inner
            .max_format
            .store(format.clamp(FORMAT_SINGLE, SUPPORTED_FORMAT), Ordering::Relaxed);
    }

    /// The newest entry format this store applies.
    pub fn max_entry_format(&self) -> u32 {
        self.inner.max_format.load(Ordering::Relaxed)
    }

    /// The newest entry format applied so far on this replica.
    pub fn applied_entry_format(&self) -> u32 {
        self.inner.applied_format.load(Ordering::Relaxed)
    }

    /// The cluster's id, when it has one (see [`CLUSTER_ID_KEY`]).
    pub fn cluster_id(&self) -> Option<String> {
        self.inner.cluster_id.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The folder of the state database.
    pub fn dir(&self) -> &Path {
        self.inner.path.parent().unwrap_or(Path::new("."))
    }

    /// Why this store stopped applying, once it has.
    pub fn halted(&self) -> Option<String> {
        self.inner.halted.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Applied index, observable: changes after every applied batch.
    pub fn applied_index(&self) -> watch::Receiver<u64> {
        self.inner.applied.subscribe()
    }

    /// Answer a query on a read connection, for `principal` when a signed-in user asks (see
    /// [`Principal`]); returns the applied index the read saw.
    pub async fn query(&self, query: Query, principal: Option<Principal>) -> Result<(u64, QueryOutcome), StorageError> {
        let inner = self.inner.clone();
        blocking(move || {
            inner.with_reader(|conn| {
                let tx = conn.unchecked_transaction().map_err(|e| read_sm(&e))?;
                let revision = read_applied(&tx)
                    .map_err(|e| read_sm(&e))?
                    .0
                    .map(|l| l.index)
                    .unwrap_or(0);
                let outcome = read::query(&tx, &query, principal.as_ref()).map_err(|e| read_sm(&e))?;
                Ok((revision, outcome))
            })
        })
        .await
    }

    /// Notifications after `after` (optionally of one user; see
    /// [`read::notifications_after`] for the position), oldest first, and the applied index
    /// the read saw. `Ok(None)` when retention has deleted notifications after `after`: the
    /// reader missed some and must resynchronise.
    pub async fn notifications_after(
        &self,
        after: (u64, Option<Uuid>),
        user: Option<Uuid>,
        limit: u32,
    ) -> Result<Option<(u64, Vec<Notification>)>, StorageError> {
        let inner = self.inner.clone();
        blocking(move || {
            inner.with_reader(|conn| {
                let tx = conn.unchecked_transaction().map_err(|e| read_sm(&e))?;
                if after.0 < read::notifications_pruned_through(&tx).map_err(|e| read_sm(&e))? {
                    return Ok(None);
                }
                let revision = read_applied(&tx)
                    .map_err(|e| read_sm(&e))?
                    .0
                    .map(|l| l.index)
                    .unwrap_or(0);
                let items = read::notifications_after(&tx, after, user, limit).map_err(|e| read_sm(&e))?;
                Ok(Some((revision, items)))
            })
        })
        .await
    }

    /// A consistent copy of the whole database in `dest` (which must not exist), taken on a
    /// read transaction while apply goes on: the applied index it holds, its newest entry
    /// format and its schema version.
    pub async fn copy_to(&self, dest: PathBuf) -> Result<(u64, u32, u32), StorageError> {
        let inner = self.inner.clone();
        blocking(move || inner.copy_to(&dest)).await
    }

    /// Canonical dump of the agenda tables (for determinism checks across replicas).
    pub async fn canonical_dump(&self) -> Result<String, StorageError> {
        let inner = self.inner.clone();
        blocking(move || inner.with_reader(|conn| dump(conn).map_err(|e| read_sm(&e)))).await
    }

    fn remove_stale_snapshot_files(&self) -> std::io::Result<()> {
        let current = self.inner.current_snapshot_file()?.map(|f| f.file);
        for entry in fs::read_dir(&self.inner.snapshot_dir)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            // Older snapshots, and what a crash left: half-received files, journals.
            if name != "current.json" && Some(&name) != current.as_ref() {
                let _ = fs::remove_file(self.inner.snapshot_dir.join(&name));
            }
        }
        Ok(())
    }
}

fn read_applied(conn: &Connection) -> rusqlite::Result<(Option<LogId>, StoredMembership)> {
    let get = |key: &str| -> rusqlite::Result<Option<Vec<u8>>> {
        conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
    };
    let decode_err =
        |e: serde_json::Error| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e));
    let applied = get("last_applied")?
        .map(|b| serde_json::from_slice(&b).map_err(decode_err))
        .transpose()?;
    let membership = get("membership")?
        .map(|b| serde_json::from_slice(&b).map_err(decode_err))
        .transpose()?
        .unwrap_or_default();
    Ok((applied, membership))
}

fn read_entry_format(conn: &Connection) -> rusqlite::Result<u32> {
    let value: Option<Vec<u8>> = conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [ENTRY_FORMAT_KEY], |r| {
            r.get(0)
        })
        .optional()?;
    value.map_or(Ok(FORMAT_SINGLE), |b| {
        serde_json::from_slice(&b)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e)))
    })
}

fn read_cluster_id(conn: &Connection) -> rusqlite::Result<Option<String>> {
    let value: Option<Vec<u8>> = conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [CLUSTER_ID_KEY], |r| r.get(0))
        .optional()?;
    value
        .map(|b| {
            serde_json::from_slice(&b)
                .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e)))
        })
        .transpose()
}

fn write_meta<T: Serialize>(conn: &Connection, key: &str, value: &T) -> rusqlite::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![key, bytes],
    )?;
    Ok(())
}

fn dump(conn: &Connection) -> rusqlite::Result<String> {
    let mut out = String::new();
    for (table, order) in [
        ("users", "id"),
        ("groups", "id"),
        ("members", "group_id, user_id"),
        ("group_invitations", "seq"),
        ("appointments", "id"),
        ("participants", "appointment_id, user_id"),
        ("notifications", "id"),
        ("audit", "seq"),
        ("idempotency", "actor, request_id"),
    ] {
        let mut stmt = conn.prepare(&format!("SELECT * FROM {table} ORDER BY {order}"))?;
        let cols = stmt.column_count();
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            out.push_str(table);
            for i in 0..cols {
                let v: rusqlite::types::Value = row.get(i)?;
                out.push_str(&format!("|{v:?}"));
            }
            out.push('\n');
        }
    }
    Ok(out)
}

impl Inner {
    fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> Result<T, StorageError>) -> Result<T, StorageError> {
        let pooled = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match pooled {
            Some(c) => c,
            None => sqlite::open_reader(&self.path).map_err(|e| read_sm(&e))?,
        };
        let result = f(&conn);
        let mut pool = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < READER_POOL {
            pool.push(conn);
        }
        result
    }

    fn apply_batch(&self, entries: Vec<Entry>) -> Result<(u64, Vec<ApplyResponse>), StorageError> {
        let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut tx = conn.transaction().map_err(|e| write_sm(&e))?;
        let mut responses = Vec::with_capacity(entries.len());
        let mut last = None;
        let max_format = self.max_format.load(Ordering::Relaxed);
        let was_format = self.applied_format.load(Ordering::Relaxed);
        let mut format_now = was_format;
        let mut new_cluster_id = None;
        for entry in entries {
            let revision = entry.log_id.index;
            match entry.payload {
                EntryPayload::Blank => responses.push(ApplyResponse(Vec::new())),
                EntryPayload::Normal(ref proposal) => {
                    let format = proposal.format();
                    if format > max_format || matches!(proposal, Proposal::Unknown { .. }) {
                        return Err(self.halt(revision, format, max_format));
                    }
                    let mut results = Vec::with_capacity(proposal.requests().len());
                    let notified = std::cell::Cell::new(0);
                    for req in proposal.requests() {
                        results.push(apply::execute(&mut tx, revision, req, &notified).map_err(|e| write_sm(&e))?);
                    }
                    format_now = format_now.max(format);
                    responses.push(ApplyResponse(results));
                }
                EntryPayload::Membership(ref m) => {
                    let stored = StoredMembership::new(Some(entry.log_id), m.clone());
                    write_meta(&tx, "membership", &stored).map_err(|e| write_sm(&e))?;
                    if entry.log_id.index == 0
                        && new_cluster_id.is_none()
                        && self.cluster_id.lock().unwrap_or_else(|p| p.into_inner()).is_none()
                    {
                        // The cluster's first entry: every replica that applies it derives
                        // the same id from it.
                        let first = serde_json::to_vec(&stored).map_err(|e| write_sm(&e))?;
                        let id = hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(&first)[..16]);
                        write_meta(&tx, CLUSTER_ID_KEY, &id).map_err(|e| write_sm(&e))?;
                        new_cluster_id = Some(id);
                    }
                    responses.push(ApplyResponse(Vec::new()));
                }
            }
            last = Some(entry.log_id);
        }
        if let Some(log_id) = last {
            write_meta(&tx, "last_applied", &log_id).map_err(|e| write_sm(&e))?;
        }
        if format_now > was_format {
            write_meta(&tx, ENTRY_FORMAT_KEY, &format_now).map_err(|e| write_sm(&e))?;
        }
        tx.commit().map_err(|e| write_sm(&e))?;
        self.applied_format.store(format_now, Ordering::Relaxed);
        if new_cluster_id.is_some() {
            *self.cluster_id.lock().unwrap_or_else(|p| p.into_inner()) = new_cluster_id;
        }
        Ok((last.map(|l| l.index).unwrap_or(0), responses))
    }

    /// Stop applying at entry `index`, of a format this store does not apply: nothing of
    /// the batch is written, the error stops Raft on this store (it leaves the quorum
    /// instead of diverging) and is kept for the status.
    fn halt(&self, index: u64, format: u32, max_format: u32) -> StorageError {
        let reason = format!(
            "log entry {index} is written in entry format {format}, and this store applies formats up to \
             {max_format}: it stopped applying; upgrade it to a version that supports format {format}"
        );
        tracing::error!(index, format, max_format, "{reason}");
        *self.halted.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.clone());
        // Wake the watchers, which end their feeds.
        self.applied.send_modify(|_| {});
        write_sm(&std::io::Error::other(reason))
    }

    /// Re-read what a newly installed snapshot carries.
    fn reload_entry_format(&self) -> Result<(), StorageError> {
        let conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let format = read_entry_format(&conn).map_err(|e| read_sm(&e))?;
        self.applied_format.store(format, Ordering::Relaxed);
        let id = read_cluster_id(&conn).map_err(|e| read_sm(&e))?;
        *self.cluster_id.lock().unwrap_or_else(|p| p.into_inner()) = id;
        Ok(())
    }

    /// Copy the database, consistently, to `dest` (which must not exist); returns the
    /// applied index and the newest entry format the copy holds.
    pub(super) fn copy_to(&self, dest: &Path) -> Result<(u64, u32, u32), StorageError> {
        self.with_reader(|conn| {
            conn.execute("VACUUM INTO ?1", [dest.to_string_lossy()])
                .map_err(|e| read_sm(&e))?;
            Ok(())
        })?;
        let copy = Connection::open(dest).map_err(|e| read_sm(&e))?;
        let revision = read_applied(&copy).map_err(|e| read_sm(&e))?.0.map_or(0, |l| l.index);
        let format = read_entry_format(&copy).map_err(|e| read_sm(&e))?;
        let schema: u32 = copy
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| read_sm(&e))?;
        Ok((revision, format, schema))
    }
}

impl RaftStateMachine<TypeConfig> for StateStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let inner = self.inner.clone();
        blocking(move || {
            let conn = inner.writer.lock().unwrap_or_else(|p| p.into_inner());
            read_applied(&conn).map_err(|e| read_sm(&e))
        })
        .await
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ApplyResponse>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let inner = self.inner.clone();
        let (applied, responses) = blocking(move || inner.apply_batch(entries)).await?;
        self.inner.applied.send_replace(applied);
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            inner: self.inner.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotData>, StorageError> {
        let inner = self.inner.clone();
        blocking(move || {
            inner
                .begin_receiving()
                .map(Box::new)
                .map_err(|e| StorageIOError::write_snapshot(None, &e).into())
        })
        .await
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: Box<SnapshotData>) -> Result<(), StorageError> {
        let inner = self.inner.clone();
        let meta_owned = meta.clone();
        let received = snapshot.path().to_path_buf();
        drop(snapshot);
        let index = blocking(move || {
            let index = inner.install_snapshot(&meta_owned, &received)?;
            inner.reload_entry_format()?;
            Ok(index)
        })
        .await?;
        self.inner.applied.send_replace(index);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let inner = self.inner.clone();
        blocking(move || inner.current_snapshot().map_err(|e| read_sm(&e))).await
    }
}
