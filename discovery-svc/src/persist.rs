//! The member table on disk: `DATA_DIR/members.json`, written atomically (temporary file,
//! fsync, rename, fsync of the folder) and read back at start.
//!
//! The file is a cache: losing it only means the agent starts from its sources again and
//! refutes what the others remember of it. A file that cannot be parsed is therefore set
//! aside (`members.json.corrupt`) with a warning instead of stopping the agent.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use agenda_shared::rpc::member::Member;

/// Name of the table file inside `DATA_DIR`.
pub const FILE_NAME: &str = "members.json";
/// Version of the file layout.
const FORMAT: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct TableFile {
    format: u32,
    node_id: String,
    saved_at_ms: u64,
    members: Vec<Member>,
}

/// Why the table file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// File system failure.
    #[error("{path}: {source}")]
    Io {
        /// File concerned.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The table could not be encoded.
    #[error("encode: {0}")]
    Encode(#[from] serde_json::Error),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PersistError + '_ {
    move |source| PersistError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Write `members` as `dir/members.json`, atomically.
pub fn save(dir: &Path, node_id: &str, members: &[Member], now_ms: u64) -> Result<(), PersistError> {
    let file = TableFile {
        format: FORMAT,
        node_id: node_id.to_owned(),
        saved_at_ms: now_ms,
        members: members.to_vec(),
    };
    let bytes = serde_json::to_vec_pretty(&file)?;
    let path = dir.join(FILE_NAME);
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    {
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    fs::rename(&tmp, &path).map_err(io(&path))?;
    // Make the rename itself durable.
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
    Ok(())
}

/// Read `dir/members.json`. `Ok(vec![])` when there is none; a file that cannot be parsed
/// (or was written by another node) is set aside with a warning and yields `Ok(vec![])`.
pub fn load(dir: &Path, node_id: &str) -> Result<Vec<Member>, PersistError> {
    let path = dir.join(FILE_NAME);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(&path)(e)),
    };
    let file: TableFile = match serde_json::from_slice(&bytes) {
        Ok(f) => f,
        Err(e) => {
            let aside = dir.join(format!("{FILE_NAME}.corrupt"));
            tracing::warn!(path = %path.display(), error = %e, "unreadable member table set aside; starting empty");
            fs::rename(&path, &aside).map_err(io(&path))?;
            return Ok(Vec::new());
        }
    };
    if file.format != FORMAT || file.node_id != node_id {
        tracing::warn!(
            path = %path.display(),
            format = file.format,
            file_node = %file.node_id,
            "member table of another format or node ignored"
        );
        return Ok(Vec::new());
    }
    Ok(file.members)
}

#[cfg(test)]
mod tests {
    use super::*;
    use agenda_shared::rpc::member::{MemberState, Source};

    fn member(node_id: &str, incarnation: u64) -> Member {
        Member {
            node_id: node_id.into(),
            slot: agenda_shared::rpc::member::parse_slot(node_id).unwrap_or(0),
            store_addr: "store-1:7000".into(),
            api_addr: "api-1:8080".into(),
            discovery_addr: "discovery-1:7100".into(),
            store_raft_id: Some(11),
            store_pristine: false,
            store_has_cluster: true,
            store_cluster_id: Some("cluster-a".into()),
            api_ready: true,
            store_alarms: Vec::new(),
            source: Source::Seed,
            last_seen_ms: 1234,
            incarnation,
            heartbeat: 77,
            state: MemberState::Dead,
        }
    }

    #[test]
    fn the_table_survives_a_round_trip() {
        let dir = tempfile::tempdir().expect("dir");
        let members = vec![member("agenda-1", 4), member("agenda-2", 9)];
        save(dir.path(), "agenda-1", &members, 99).expect("save");
        assert_eq!(load(dir.path(), "agenda-1").expect("load"), members);
        assert!(!dir.path().join("members.json.tmp").exists());

        let newer = vec![member("agenda-1", 5)];
        save(dir.path(), "agenda-1", &newer, 100).expect("save again");
        assert_eq!(load(dir.path(), "agenda-1").expect("load"), newer);
    }

    #[test]
    fn a_missing_file_is_an_empty_table() {
        let dir = tempfile::tempdir().expect("dir");
        assert!(load(dir.path(), "agenda-1").expect("load").is_empty());
    }

    #[test]
    fn a_corrupt_file_is_set_aside_and_another_nodes_file_ignored() {
        let dir = tempfile::tempdir().expect("dir");
        fs::write(dir.path().join(FILE_NAME), b"{not json").expect("write");
        assert!(load(dir.path(), "agenda-1").expect("load").is_empty());
        assert!(dir.path().join("members.json.corrupt").exists());

        save(dir.path(), "agenda-2", &[member("agenda-2", 1)], 1).expect("save");
        assert!(load(dir.path(), "agenda-1").expect("load").is_empty());
    }
}
