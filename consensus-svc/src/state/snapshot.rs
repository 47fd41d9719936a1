//! Snapshots of the state database: a page-by-page copy made with SQLite's online backup
//! API inside one read transaction (consistent, and far cheaper than rebuilding the
//! database with `VACUUM INTO`; the copy carries its own `last_applied` and membership),
//! kept under `snapshots/` with `current.json` naming the current one, and installed on a
//! follower with the backup API in one step (atomic).
//!
//! A snapshot's bytes never sit whole in memory: openraft reads and writes them through
//! [`SnapshotData`], a file under `snapshots/`, chunk by chunk (the leader streams from
//! its file, the follower writes each chunk into its own).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use openraft::{RaftSnapshotBuilder, StorageIOError};
use rusqlite::Connection;
use rusqlite::backup::{Backup, StepResult};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};
use uuid::Uuid;

use super::{Inner, read_applied, schema};
use crate::sqlite::blocking;
use crate::types::{Snapshot, SnapshotMeta, StorageError, TypeConfig};

/// Name prefix of a snapshot being received from the leader.
const RECEIVING: &str = "recv-";

/// A snapshot's bytes: a file under `snapshots/`, read or written in place.
#[derive(Debug)]
pub struct SnapshotData {
    path: PathBuf,
    file: tokio::fs::File,
}

impl SnapshotData {
    /// Open an existing snapshot file for reading.
    fn open(path: PathBuf) -> std::io::Result<Self> {
        let file = fs::File::open(&path)?;
        Ok(Self {
            path,
            file: tokio::fs::File::from_std(file),
        })
    }

    /// Create a new, empty file for a snapshot being received.
    fn create(path: PathBuf) -> std::io::Result<Self> {
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok(Self {
            path,
            file: tokio::fs::File::from_std(file),
        })
    }

    /// Where the bytes are.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl AsyncRead for SnapshotData {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().file).poll_read(cx, buf)
    }
}

impl AsyncWrite for SnapshotData {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().file).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().file).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().file).poll_shutdown(cx)
    }
}

impl AsyncSeek for SnapshotData {
    fn start_seek(self: Pin<&mut Self>, position: std::io::SeekFrom) -> std::io::Result<()> {
        Pin::new(&mut self.get_mut().file).start_seek(position)
    }

    fn poll_complete(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<u64>> {
        Pin::new(&mut self.get_mut().file).poll_complete(cx)
    }
}

/// What `snapshots/current.json` records about the current snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct SnapshotFile {
    pub(super) meta: SnapshotMeta,
    pub(super) file: String,
}

impl Inner {
    pub(super) fn current_snapshot_file(&self) -> std::io::Result<Option<SnapshotFile>> {
        match fs::read(self.snapshot_dir.join("current.json")) {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).map_err(std::io::Error::other)?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Make `file` (already durable in `snapshots/`) the current snapshot, atomically, and
    /// delete the previous one.
    fn set_current_snapshot(&self, meta: &SnapshotMeta, file: &str) -> std::io::Result<()> {
        let previous = self.current_snapshot_file()?;
        let record = SnapshotFile {
            meta: meta.clone(),
            file: file.to_owned(),
        };
        let tmp = self.snapshot_dir.join("current.json.tmp");
        {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&serde_json::to_vec(&record).map_err(std::io::Error::other)?)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, self.snapshot_dir.join("current.json"))?;
        fs::File::open(&self.snapshot_dir)?.sync_all()?;
        if let Some(prev) = previous
            && prev.file != file
        {
            let _ = fs::remove_file(self.snapshot_dir.join(prev.file));
        }
        Ok(())
    }

    pub(super) fn build_snapshot(&self) -> Result<Snapshot, StorageError> {
        let _guard = self.snapshot_lock.lock().unwrap_or_else(|p| p.into_inner());
        let file = format!("{}.db", Uuid::now_v7());
        let path = self.snapshot_dir.join(&file);
        let snap_err = |e: &dyn std::error::Error| -> StorageError {
            StorageIOError::write_snapshot(None, &std::io::Error::other(e.to_string())).into()
        };
        // One backup step copies every page inside one read transaction: a consistent
        // view, while apply goes on writing (WAL). The copy carries its own last_applied
        // and membership, which become the snapshot's metadata.
        let copied = self.with_reader(|conn| copy_pages(conn, &path).map_err(|e| snap_err(&e)));
        if let Err(e) = copied {
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        let (last_applied, membership) = {
            let copy = Connection::open(&path).map_err(|e| snap_err(&e))?;
            read_applied(&copy).map_err(|e| snap_err(&e))?
        };
        fs::File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(|e| snap_err(&e))?;
        let snapshot_id = match last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, file.trim_end_matches(".db")),
            None => format!("0-0-{}", file.trim_end_matches(".db")),
        };
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership: membership,
            snapshot_id,
        };
        self.set_current_snapshot(&meta, &file).map_err(|e| snap_err(&e))?;
        let bytes = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        tracing::info!(snapshot = %meta.snapshot_id, bytes, "snapshot built");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(SnapshotData::open(path).map_err(|e| snap_err(&e))?),
        })
    }

    /// A new file for a snapshot the leader is about to send.
    pub(super) fn begin_receiving(&self) -> std::io::Result<SnapshotData> {
        SnapshotData::create(self.snapshot_dir.join(format!("{RECEIVING}{}.db", Uuid::now_v7())))
    }

    /// The current snapshot's file, opened for reading.
    pub(super) fn current_snapshot(&self) -> std::io::Result<Option<Snapshot>> {
        let Some(record) = self.current_snapshot_file()? else {
            return Ok(None);
        };
        let data = SnapshotData::open(self.snapshot_dir.join(&record.file))?;
        Ok(Some(Snapshot {
            meta: record.meta,
            snapshot: Box::new(data),
        }))
    }

    /// Install the snapshot received into `received` (a file from [`Self::begin_receiving`]).
    pub(super) fn install_snapshot(&self, meta: &SnapshotMeta, received: &Path) -> Result<u64, StorageError> {
        let _guard = self.snapshot_lock.lock().unwrap_or_else(|p| p.into_inner());
        let sig = Some(meta.signature());
        let snap_err = |e: &dyn std::error::Error| -> StorageError {
            StorageIOError::write_snapshot(sig.clone(), &std::io::Error::other(e.to_string())).into()
        };
        let file = format!("{}.db", Uuid::now_v7());
        let path = self.snapshot_dir.join(&file);
        let installed = (|| {
            fs::File::open(received)
                .and_then(|f| f.sync_all())
                .map_err(|e| snap_err(&e))?;
            fs::rename(received, &path).map_err(|e| snap_err(&e))?;
            let src = Connection::open(&path).map_err(|e| snap_err(&e))?;
            let (applied, _) = read_applied(&src).map_err(|e| snap_err(&e))?;
            if applied != meta.last_log_id {
                return Err(snap_err(&std::io::Error::other(format!(
                    "snapshot data is at {applied:?}, metadata says {:?}",
                    meta.last_log_id
                ))));
            }
            let mut dst = self.writer.lock().unwrap_or_else(|p| p.into_inner());
            // One step copies every page inside one write transaction: atomic.
            let backup = Backup::new(&src, &mut dst).map_err(|e| snap_err(&e))?;
            backup.step(-1).map_err(|e| snap_err(&e))?;
            drop(backup);
            schema::migrate(&mut dst).map_err(|e| snap_err(&e))?;
            Ok(())
        })();
        if let Err(e) = installed {
            let _ = fs::remove_file(received);
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        self.set_current_snapshot(meta, &file).map_err(|e| snap_err(&e))?;
        let index = meta.last_log_id.map(|l| l.index).unwrap_or(0);
        tracing::info!(snapshot = %meta.snapshot_id, index, "snapshot installed");
        Ok(index)
    }
}

/// Copy every page of `conn`'s database into a new file at `dest`, in one step (one read
/// transaction), and make the copy a self-contained rollback-journal database.
fn copy_pages(conn: &Connection, dest: &Path) -> rusqlite::Result<()> {
    let mut copy = Connection::open(dest)?;
    {
        let backup = Backup::new(conn, &mut copy)?;
        match backup.step(-1)? {
            StepResult::Done => {}
            other => {
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                    Some(format!("snapshot copy did not finish in one step: {other:?}")),
                ));
            }
        }
    }
    // The source is in WAL mode, and so says the copied header; the copy is one file.
    copy.pragma_update(None, "journal_mode", "DELETE")?;
    Ok(())
}

/// Builds snapshots from a consistent copy of the state database.
pub struct SnapshotBuilder {
    pub(super) inner: Arc<Inner>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let inner = self.inner.clone();
        blocking(move || inner.build_snapshot()).await
    }
}
