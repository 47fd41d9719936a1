//! This node's view of the cluster, for the API's cluster page and for operators.

use std::collections::{BTreeMap, BTreeSet};

use agenda_shared::status::{MemberStatus, StoreStatus};
use openraft::ServerState;

use super::StoreNode;
use crate::types::RaftId;

impl StoreNode {
    /// The names of this store's active alarms, sorted: `halted` (it met a log entry it
    /// cannot apply), `nospace` (its volume is below `MIN_FREE_MB`). Reported to the
    /// slot's agent, hence in every member table and every API's `/metrics`.
    pub fn alarm_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        if self.state.halted().is_some() {
            names.push("halted".to_owned());
        }
        if self.disk.alarm().is_some() {
            names.push("nospace".to_owned());
        }
        names
    }

    /// This node's view of the cluster.
    pub fn status(&self) -> StoreStatus {
        let m = self.raft.metrics().borrow().clone();
        let role = match m.state {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Shutdown => "shutdown",
        };
        let leading = m.state == ServerState::Leader;
        let voters: BTreeSet<RaftId> = m.membership_config.voter_ids().collect();
        let matched: BTreeMap<RaftId, Option<u64>> = m
            .replication
            .as_ref()
            .map(|r| r.iter().map(|(id, l)| (*id, l.map(|l| l.index))).collect())
            .unwrap_or_default();
        let members = m
            .membership_config
            .nodes()
            .map(|(id, node)| MemberStatus {
                raft_id: *id,
                node_name: node.node_name.clone(),
                addr: node.addr.clone(),
                voter: voters.contains(id),
                matched_index: matched.get(id).copied().flatten(),
                max_entry_format: leading.then(|| self.gate.reported(*id)).flatten(),
            })
            .collect::<Vec<_>>();
        let leader_addr = m
            .current_leader
            .and_then(|l| members.iter().find(|mm| mm.raft_id == l).map(|mm| mm.addr.clone()));
        StoreStatus {
            node_name: self.name.clone(),
            raft_id: self.raft_id,
            role: role.to_owned(),
            term: m.current_term,
            leader_id: m.current_leader,
            leader_addr,
            last_log_index: m.last_log_index,
            applied_index: m.last_applied.map(|l| l.index),
            snapshot_index: m.snapshot.map(|l| l.index),
            members,
            max_entry_format: self.state.max_entry_format(),
            applied_entry_format: self.state.applied_entry_format(),
            cluster_entry_format: leading.then(|| self.gate.writing()),
            halted: self.state.halted(),
            cluster_id: self.state.cluster_id(),
            alarm: self.disk.alarm(),
            disk_free_bytes: Some(self.disk.free()).filter(|f| *f != u64::MAX),
            stale_ms: self.staleness().map(|d| d.as_millis() as u64),
            leader_contact_ms: Some(self.contact.silence().as_millis() as u64),
        }
    }
}
