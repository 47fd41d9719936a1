//! The openraft type configuration of the store.

use agenda_shared::ids::SlotId;
use std::fmt;

use agenda_shared::command::ExecuteResult;

use crate::entry::Proposal;
use serde::{Deserialize, Serialize};

/// A Raft node as recorded in the membership: where to reach it and which slot it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// gRPC address of the store, `host:port`.
    pub addr: String,
    /// Slot identity (`agenda-3`): one slot may change Raft id when its volume is lost.
    pub node_name: SlotId,
}

impl fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.node_name, self.addr)
    }
}

/// What applying one log entry returns to the proposer: one result per request of the
/// entry, in order. Blank and membership entries carry none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplyResponse(pub Vec<ExecuteResult>);

openraft::declare_raft_types!(
    /// Type configuration of Agenda's Raft group.
    pub TypeConfig:
        D = Proposal,
        R = ApplyResponse,
        NodeId = RaftId,
        Node = NodeInfo,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = crate::state::SnapshotData,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The Raft handle of a store.
pub type Raft = openraft::Raft<TypeConfig>;
/// Raft node id (a store incarnation).
pub use agenda_shared::ids::RaftId;
/// A log entry.
pub type Entry = openraft::Entry<TypeConfig>;
/// A log id.
pub type LogId = openraft::LogId<RaftId>;
/// The vote.
pub type Vote = openraft::Vote<RaftId>;
/// Storage errors reported to openraft.
pub type StorageError = openraft::StorageError<RaftId>;
/// A membership as stored with its log id.
pub type StoredMembership = openraft::StoredMembership<RaftId, NodeInfo>;
/// Snapshot metadata.
pub type SnapshotMeta = openraft::SnapshotMeta<RaftId, NodeInfo>;
/// A snapshot with its data.
pub type Snapshot = openraft::Snapshot<TypeConfig>;
