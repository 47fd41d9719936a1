//! Online backups: a consistent copy of this store's agenda at a known revision, taken
//! while it goes on applying (see [`crate::backup`] for the file it becomes).

use std::fs;

use tempfile::TempPath;

use super::StoreNode;
use crate::backup::{BackupHeader, FILE_FORMAT};
use crate::error::StoreError;

impl StoreNode {
    /// Copy the agenda into a temporary file under `backups/` (deleted when the returned
    /// path is dropped). With `linearizable`, first wait until this store has applied
    /// every write acknowledged before the call (a read-index round with the leader), so
    /// the copy holds all of them.
    pub async fn backup(&self, linearizable: bool) -> Result<(BackupHeader, TempPath), StoreError> {
        self.check_running()?;
        if linearizable {
            let index = self.read_index(false).await?;
            self.wait_applied(index).await?;
        }
        let dir = self.state.dir().join("backups");
        let io = |e: std::io::Error| StoreError::BadRequest(format!("cannot write the copy: {e}"));
        fs::create_dir_all(&dir).map_err(io)?;
        // VACUUM INTO writes into an empty file.
        let path = tempfile::Builder::new()
            .prefix("copy-")
            .suffix(".db")
            .tempfile_in(&dir)
            .map_err(io)?
            .into_temp_path();
        let (revision, entry_format, schema_version) = self.state.copy_to(path.to_path_buf()).await?;
        let bytes = fs::metadata(&path).map_err(io)?.len();
        let header = BackupHeader {
            format: FILE_FORMAT,
            cluster_id: self.state.cluster_id(),
            revision,
            taken_at_ms: time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000,
            node: self.name.clone(),
            bytes,
            schema_version,
            entry_format,
        };
        tracing::info!(revision, bytes, "backup copy taken");
        Ok((header, path))
    }
}
