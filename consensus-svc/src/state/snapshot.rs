//! Snapshots of the state database: built from a consistent copy (`VACUUM INTO` on a read
//! connection; the copy carries its own `last_applied` and membership), kept under
//! `snapshots/` with `current.json` naming the current one, and installed on a follower
//! with SQLite's online backup API in one step (atomic).

use std::fs;
use std::io::{Cursor, Write};
use std::sync::Arc;

use openraft::{RaftSnapshotBuilder, StorageIOError};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Inner, read_applied, schema};
use crate::sqlite::blocking;
use crate::types::{Snapshot, SnapshotMeta, StorageError, TypeConfig};

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
        // VACUUM INTO reads one consistent view; the copy carries its own last_applied and
        // membership, which become the snapshot's metadata.
        self.with_reader(|conn| {
            conn.execute("VACUUM INTO ?1", [path.to_string_lossy()])
                .map(|_| ())
                .map_err(|e| snap_err(&e))
        })?;
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
        let data = fs::read(&path).map_err(|e| snap_err(&e))?;
        tracing::info!(snapshot = %meta.snapshot_id, bytes = data.len(), "snapshot built");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }

    pub(super) fn install_snapshot(&self, meta: &SnapshotMeta, data: Vec<u8>) -> Result<u64, StorageError> {
        let _guard = self.snapshot_lock.lock().unwrap_or_else(|p| p.into_inner());
        let sig = Some(meta.signature());
        let snap_err = |e: &dyn std::error::Error| -> StorageError {
            StorageIOError::write_snapshot(sig.clone(), &std::io::Error::other(e.to_string())).into()
        };
        let file = format!("{}.db", Uuid::now_v7());
        let path = self.snapshot_dir.join(&file);
        {
            let mut f = fs::File::create(&path).map_err(|e| snap_err(&e))?;
            f.write_all(&data).map_err(|e| snap_err(&e))?;
            f.sync_all().map_err(|e| snap_err(&e))?;
        }
        let src = Connection::open(&path).map_err(|e| snap_err(&e))?;
        let (applied, _) = read_applied(&src).map_err(|e| snap_err(&e))?;
        if applied != meta.last_log_id {
            let _ = fs::remove_file(&path);
            return Err(snap_err(&std::io::Error::other(format!(
                "snapshot data is at {applied:?}, metadata says {:?}",
                meta.last_log_id
            ))));
        }
        {
            let mut dst = self.writer.lock().unwrap_or_else(|p| p.into_inner());
            // One step copies every page inside one write transaction: atomic.
            let backup = rusqlite::backup::Backup::new(&src, &mut dst).map_err(|e| snap_err(&e))?;
            backup.step(-1).map_err(|e| snap_err(&e))?;
            drop(backup);
            schema::migrate(&mut dst).map_err(|e| snap_err(&e))?;
        }
        drop(src);
        self.set_current_snapshot(meta, &file).map_err(|e| snap_err(&e))?;
        let index = meta.last_log_id.map(|l| l.index).unwrap_or(0);
        tracing::info!(snapshot = %meta.snapshot_id, index, "snapshot installed");
        Ok(index)
    }
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
