//! A store's view of the cluster (`Status` RPC), shown by `/api/cluster/status`.

use crate::ids::SlotId;
use serde::{Deserialize, Serialize};

/// One member of the Raft membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Raft id (the store's incarnation).
    pub raft_id: u64,
    /// Slot name, e.g. `agenda-3`.
    pub node_name: SlotId,
    /// gRPC address.
    pub addr: String,
    /// Voter or learner.
    pub voter: bool,
    /// Last log index known replicated to it (leader only).
    pub matched_index: Option<u64>,
    /// The newest entry format it said it applies (leader only, once it answered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_entry_format: Option<u32>,
}

/// Status of one store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStatus {
    /// Slot name.
    pub node_name: SlotId,
    /// Raft id.
    pub raft_id: u64,
    /// `leader`, `follower`, `candidate` or `learner`.
    pub role: String,
    /// Current term.
    pub term: u64,
    /// Known leader.
    pub leader_id: Option<u64>,
    /// Leader's gRPC address, when known.
    pub leader_addr: Option<String>,
    /// Last index in the local log.
    pub last_log_index: Option<u64>,
    /// Last applied index (the replica's revision).
    pub applied_index: Option<u64>,
    /// Last index covered by the local snapshot.
    pub snapshot_index: Option<u64>,
    /// Current membership.
    pub members: Vec<MemberStatus>,
    /// The newest log entry format this store applies (1 for stores from before formats).
    #[serde(default = "first_format")]
    pub max_entry_format: u32,
    /// The newest entry format this replica has applied.
    #[serde(default = "first_format")]
    pub applied_entry_format: u32,
    /// The format the leader writes new entries in: the newest every member applies
    /// (the cluster format; leader only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_entry_format: Option<u32>,
    /// How long ago this replica was last known to hold everything committed, ms (a
    /// leader: since a quorum last acknowledged it; `None`: not yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_ms: Option<u64>,
    /// How long ago this store last heard from a leader (or was one), ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_contact_ms: Option<u64>,
    /// The NOSPACE alarm, while the data volume is nearly full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm: Option<String>,
    /// Free bytes on the data volume when last read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_free_bytes: Option<u64>,
    /// The cluster's id (new for a cluster restored from a backup; none for clusters
    /// initialised before cluster ids existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// Why this store stopped applying the log, when it has (it is out of the quorum
    /// until an operator acts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halted: Option<String>,
}

fn first_format() -> u32 {
    1
}
