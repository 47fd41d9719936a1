//! Online backups of the whole agenda: the file format, its verification, and seeding a
//! new cluster from one (restore).
//!
//! A backup is a consistent copy of one store's state database (`VACUUM INTO` on a read
//! transaction, so the store keeps applying meanwhile) at a known revision. The file:
//!
//! ```text
//! AGENDA-BACKUP\n
//! {header JSON}\n            BackupHeader: format, cluster id, revision, time, size, …
//! <bytes of SQLite database>   exactly header.bytes of them
//! SHA256 <hex>\n             of everything above
//! ```
//!
//! Restore seeds **one** store with it, as a new cluster of one voter with a new cluster
//! id, starting at the backup's revision; the other stores join it empty and catch up by
//! snapshot (`docs/operations.md` §7 has the recipes).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use openraft::{CommittedLeaderId, Membership};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::log_store::LogStore;
use crate::types::{LogId, NodeInfo, RaftId, StoredMembership};

/// First line of every backup file.
pub const MAGIC: &str = "AGENDA-BACKUP";
/// The version of the file format this build writes and reads.
pub const FILE_FORMAT: u32 = 1;
/// Longest header line read.
const MAX_HEADER: usize = 64 * 1024;
/// Bytes per streamed chunk.
pub const CHUNK: usize = 256 * 1024;

/// What a backup says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupHeader {
    /// File format ([`FILE_FORMAT`]).
    pub format: u32,
    /// The cluster it was taken from (`None` for clusters created before cluster ids).
    pub cluster_id: Option<String>,
    /// The revision (log index) the copy holds: every write acknowledged at or below it.
    pub revision: u64,
    /// Unix milliseconds when the copy was taken.
    pub taken_at_ms: i64,
    /// The store it was taken from.
    pub node: String,
    /// Bytes of the database that follow the header.
    pub bytes: u64,
    /// The database's schema version (`PRAGMA user_version`).
    pub schema_version: u32,
    /// The newest log entry format applied into it.
    pub entry_format: u32,
}

/// Why a backup cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Reading or writing failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// It is not a backup, or it is damaged.
    #[error("not a usable backup: {0}")]
    Invalid(String),
    /// SQLite refused the database inside.
    #[error("the database inside the backup: {0}")]
    Database(#[from] rusqlite::Error),
}

fn invalid(what: impl Into<String>) -> BackupError {
    BackupError::Invalid(what.into())
}

/// Writes a backup file as its parts arrive, hashing as it goes.
pub struct BackupWriter {
    file: fs::File,
    path: PathBuf,
    tmp: PathBuf,
    hash: Sha256,
    data_hash: Sha256,
    header: BackupHeader,
    written: u64,
}

impl BackupWriter {
    /// Start `path` (written as `path.partial`, renamed when complete) with `header`.
    pub fn create(path: &Path, header: BackupHeader) -> Result<Self, BackupError> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".partial");
        let tmp = PathBuf::from(tmp);
        let mut file = fs::File::create(&tmp)?;
        let mut hash = Sha256::new();
        let head = format!(
            "{MAGIC}\n{}\n",
            serde_json::to_string(&header).map_err(std::io::Error::other)?
        );
        file.write_all(head.as_bytes())?;
        hash.update(head.as_bytes());
        Ok(Self {
            file,
            path: path.to_owned(),
            tmp,
            hash,
            data_hash: Sha256::new(),
            header,
            written: 0,
        })
    }

    /// Append database bytes.
    pub fn data(&mut self, bytes: &[u8]) -> Result<(), BackupError> {
        self.written += bytes.len() as u64;
        if self.written > self.header.bytes {
            return Err(invalid("the store sent more bytes than its header announced"));
        }
        self.file.write_all(bytes)?;
        self.hash.update(bytes);
        self.data_hash.update(bytes);
        Ok(())
    }

    /// Check the store's checksum of the database bytes, write the trailer and make the
    /// file durable under its name.
    pub fn finish(mut self, sent_sha256: &str) -> Result<BackupHeader, BackupError> {
        if self.written != self.header.bytes {
            return Err(invalid(format!(
                "the stream ended after {} of {} bytes",
                self.written, self.header.bytes
            )));
        }
        let got = hex::encode(self.data_hash.finalize_reset());
        if got != sent_sha256 {
            return Err(invalid("the database bytes do not match the store's checksum"));
        }
        let trailer = format!("SHA256 {}\n", hex::encode(self.hash.finalize_reset()));
        self.file.write_all(trailer.as_bytes())?;
        self.file.sync_all()?;
        fs::rename(&self.tmp, &self.path)?;
        Ok(self.header.clone())
    }
}

impl Drop for BackupWriter {
    fn drop(&mut self) {
        // A finished writer renamed its file; an abandoned one leaves nothing behind.
        let _ = fs::remove_file(&self.tmp);
    }
}

/// Check `path` whole (magic, header, size, checksum, and the database's own integrity
/// and revision) and return its header.
pub fn verify(path: &Path) -> Result<BackupHeader, BackupError> {
    let dir = tempfile::tempdir()?;
    let (header, db) = extract(path, dir.path())?;
    check_database(&db, &header)?;
    Ok(header)
}

/// Read the header of `path` and copy its database to `dir/state.db`, checking the size
/// and the checksum.
fn extract(path: &Path, dir: &Path) -> Result<(BackupHeader, PathBuf), BackupError> {
    let mut input = BufReader::new(fs::File::open(path)?);
    let mut hash = Sha256::new();
    let mut line = Vec::new();
    let read_line = |input: &mut BufReader<fs::File>, line: &mut Vec<u8>| -> Result<(), BackupError> {
        line.clear();
        input.by_ref().take(MAX_HEADER as u64).read_until(b'\n', line)?;
        if line.last() != Some(&b'\n') {
            return Err(invalid("the file ends inside its header (truncated, or not a backup)"));
        }
        Ok(())
    };
    read_line(&mut input, &mut line)?;
    if line != format!("{MAGIC}\n").as_bytes() {
        return Err(invalid(format!("it does not start with {MAGIC}")));
    }
    hash.update(&line);
    read_line(&mut input, &mut line)?;
    hash.update(&line);
    let header: BackupHeader =
        serde_json::from_slice(&line).map_err(|e| invalid(format!("its header is not readable: {e}")))?;
    if header.format != FILE_FORMAT {
        return Err(invalid(format!(
            "file format {} (this version reads format {FILE_FORMAT})",
            header.format
        )));
    }
    let db = dir.join("state.db");
    let mut out = fs::File::create(&db)?;
    let mut left = header.bytes;
    let mut buf = vec![0u8; CHUNK];
    while left > 0 {
        let want = usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK);
        let n = input.read(&mut buf[..want])?;
        if n == 0 {
            return Err(invalid(format!(
                "truncated: the database ends {left} bytes short of the {} announced",
                header.bytes
            )));
        }
        hash.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    out.sync_all()?;
    let mut trailer = String::new();
    input
        .by_ref()
        .take(200)
        .read_to_string(&mut trailer)
        .map_err(|_| invalid("its trailer is not text"))?;
    let Some(sent) = trailer.strip_prefix("SHA256 ").and_then(|t| t.strip_suffix('\n')) else {
        return Err(invalid("truncated: the checksum trailer is missing"));
    };
    if sent != hex::encode(hash.finalize()) {
        return Err(invalid("the checksum does not match: the file is damaged"));
    }
    Ok((header, db))
}

/// SQLite's own integrity check, and the revision the database says it holds.
fn check_database(db: &Path, header: &BackupHeader) -> Result<(), BackupError> {
    let conn = Connection::open(db)?;
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if check != "ok" {
        return Err(invalid(format!("SQLite integrity check: {check}")));
    }
    let applied: Option<Vec<u8>> = conn
        .query_row("SELECT value FROM meta WHERE key = 'last_applied'", [], |r| r.get(0))
        .optional()?;
    let applied: Option<LogId> = applied
        .map(|b| serde_json::from_slice(&b))
        .transpose()
        .map_err(|e| invalid(format!("its last_applied is not readable: {e}")))?;
    if applied.map(|l| l.index) != Some(header.revision) {
        return Err(invalid(format!(
            "the header says revision {}, the database holds {:?}",
            header.revision,
            applied.map(|l| l.index)
        )));
    }
    Ok(())
}

/// What [`restore`] made.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    /// The backup's header.
    pub header: BackupHeader,
    /// The new cluster's id.
    pub cluster_id: String,
    /// The Raft id of the seeded store.
    pub raft_id: RaftId,
}

/// Seed the store of `slot`, reachable by the others at `advertise`, in the empty folder
/// `data_dir` with the backup `from`: a cluster of one voter, with a new cluster id, at
/// the backup's revision. Refuses a damaged backup and a folder that holds a store.
pub fn restore(from: &Path, data_dir: &Path, slot: &str, advertise: &str) -> Result<Restored, BackupError> {
    if slot.trim().is_empty() || advertise.trim().is_empty() {
        return Err(invalid(
            "restore needs the slot (agenda-N) and the address the store advertises",
        ));
    }
    fs::create_dir_all(data_dir)?;
    for name in ["log.db", "state.db"] {
        if data_dir.join(name).exists() {
            return Err(invalid(format!(
                "{} already holds a store ({name}); restore into an empty folder",
                data_dir.display()
            )));
        }
    }
    let scratch = tempfile::tempdir_in(data_dir)?;
    let (header, db) = extract(from, scratch.path())?;
    check_database(&db, &header)?;

    let log = LogStore::open(data_dir)?;
    let raft_id = log.node_id()?;
    // The new cluster's history starts at the backup's revision, in term 1 of a leader
    // that is this store: the first election makes term 2 and appends after it.
    let at = LogId::new(CommittedLeaderId::new(1, raft_id), header.revision);
    let nodes: BTreeMap<RaftId, NodeInfo> = [(
        raft_id,
        NodeInfo {
            addr: advertise.to_owned(),
            node_name: slot.to_owned(),
        },
    )]
    .into();
    let membership = StoredMembership::new(Some(at), Membership::new(vec![BTreeSet::from([raft_id])], nodes));
    let cluster_id = uuid::Uuid::new_v4().to_string();
    {
        let conn = Connection::open(&db)?;
        let set = |key: &str, value: Vec<u8>| {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
        };
        set("last_applied", json(&at))?;
        set("membership", json(&membership))?;
        set(crate::state::CLUSTER_ID_KEY, json(&cluster_id))?;
        conn.execute_batch("PRAGMA journal_mode = DELETE;")?;
    }
    fs::rename(&db, data_dir.join("state.db"))?;
    log.seed_restored(at)?;
    fs::File::open(data_dir)?.sync_all()?;
    Ok(Restored {
        header,
        cluster_id,
        raft_id,
    })
}

/// JSON bytes of a value, for the `meta` table.
fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("meta values serialise")
}
