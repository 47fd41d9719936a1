//! Automatic backups (`BACKUP_EVERY`, `BACKUP_DIR`, `BACKUP_KEEP`): one store at a time
//! takes them — the leader, which copies from a healthy follower (itself when it has
//! none) exactly as `agenda-admin backup` does, writes the file into its own `BACKUP_DIR`
//! and keeps the newest `BACKUP_KEEP` there.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use agenda_shared::proto::admin_client::AdminClient;
use openraft::ServerState;
use tokio_util::sync::CancellationToken;

use crate::backup::{self, BackupHeader, BackupWriter};
use crate::node::StoreNode;

/// When and where the leader takes backups.
#[derive(Debug, Clone)]
pub struct BackupSchedule {
    /// How often (env `BACKUP_EVERY`, seconds).
    pub every: Duration,
    /// The folder they go to (env `BACKUP_DIR`; default `DATA_DIR/backups`).
    pub dir: PathBuf,
    /// How many are kept there (env `BACKUP_KEEP`, default 7).
    pub keep: usize,
}

/// Backups this store has taken so far (for tests and the log).
#[derive(Debug, Default)]
pub struct BackupCount(pub AtomicU64);

/// Take a backup every `schedule.every` while this store leads; until `stop`.
pub async fn run(node: StoreNode, schedule: BackupSchedule, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(schedule.every) => {}
        }
        if node.raft.metrics().borrow().state != ServerState::Leader {
            continue;
        }
        let taken = tokio::select! {
            () = stop.cancelled() => return,
            taken = take(&node, &schedule) => taken,
        };
        match taken {
            Ok((header, path)) => {
                node.backups_taken.0.fetch_add(1, Ordering::Relaxed);
                tracing::info!(revision = header.revision, from = %header.node, file = %path.display(), "automatic backup taken");
                if let Err(e) = prune(&schedule.dir, schedule.keep) {
                    tracing::warn!(error = %e, dir = %schedule.dir.display(), "old backups could not be removed");
                }
            }
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "automatic backup failed; next try in BACKUP_EVERY"),
        }
    }
}

/// One backup into `schedule.dir`, from a healthy follower or from this store.
async fn take(node: &StoreNode, schedule: &BackupSchedule) -> anyhow::Result<(BackupHeader, PathBuf)> {
    std::fs::create_dir_all(&schedule.dir)?;
    let tmp = schedule.dir.join(format!("incoming-{}.backup", uuid::Uuid::now_v7()));
    let header = match healthy_follower(node).await {
        Some(addr) => {
            let channel = node.peers.channel(&addr)?;
            crate::cli::download(AdminClient::new(channel), &tmp).await?
        }
        None => local(node, &tmp).await?,
    };
    let name = format!("agenda-{:012}-{}.backup", header.revision, header.taken_at_ms);
    let path = schedule.dir.join(name);
    std::fs::rename(&tmp, &path)?;
    Ok((header, path))
}

/// A follower that answers and has not halted.
async fn healthy_follower(node: &StoreNode) -> Option<String> {
    let members: Vec<_> = {
        let m = node.raft.metrics().borrow().clone();
        m.membership_config
            .nodes()
            .filter(|(id, _)| **id != node.raft_id)
            .map(|(_, n)| n.clone())
            .collect()
    };
    for info in members {
        if node.faults.blocked(&node.name, &info.node_name) {
            continue;
        }
        let Ok(mut client) = node.peers.store(&info.addr) else {
            continue;
        };
        if let Ok(Ok(status)) = tokio::time::timeout(Duration::from_secs(2), client.status()).await
            && status.role == "follower"
            && status.halted.is_none()
        {
            return Some(info.addr);
        }
    }
    None
}

/// A backup of this store itself, written to `path`.
async fn local(node: &StoreNode, path: &Path) -> anyhow::Result<BackupHeader> {
    let (header, copy) = node.backup(true).await?;
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || -> anyhow::Result<BackupHeader> {
        use sha2::Digest;
        use std::io::Read;
        let mut writer = BackupWriter::create(&path, header)?;
        let mut file = std::fs::File::open(&copy)?;
        let mut hash = sha2::Sha256::new();
        let mut buf = vec![0u8; backup::CHUNK];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            writer.data(&buf[..n])?;
        }
        let header = writer.finish(&hex::encode(hash.finalize()))?;
        backup::verify(&path)?;
        Ok(header)
    })
    .await?
}

/// Keep the newest `keep` backups of `dir` (by name: revision, then time).
fn prune(dir: &Path, keep: usize) -> std::io::Result<()> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("agenda-") && n.ends_with(".backup"))
        .collect();
    names.sort();
    let excess = names.len().saturating_sub(keep);
    for name in &names[..excess] {
        std::fs::remove_file(dir.join(name))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_keeps_the_newest_backups_and_nothing_else_is_touched() {
        let dir = tempfile::tempdir().expect("dir");
        for name in [
            "agenda-000000000009-100.backup",
            "agenda-000000000120-300.backup",
            "agenda-000000000010-200.backup",
            "notes.txt",
        ] {
            std::fs::write(dir.path().join(name), b"x").expect("write");
        }
        prune(dir.path(), 2).expect("prune");
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("read")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec![
                "agenda-000000000010-200.backup",
                "agenda-000000000120-300.backup",
                "notes.txt"
            ]
        );
    }
}
