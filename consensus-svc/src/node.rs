//! The store's request logic, independent of gRPC: writes through Raft (forwarded to the
//! leader when this node is a follower), reads at the three consistency levels, the
//! notification feed and the status report.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use agenda_shared::command::{ExecuteResult, Request};
use agenda_shared::model::Notification;
use agenda_shared::proto::{ExecuteRequest, QueryRequest};
use agenda_shared::query::{Query, QueryOutcome};
use agenda_shared::status::{MemberStatus, StoreStatus};
use openraft::ServerState;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::Timings;
use crate::error::StoreError;
use crate::faults::Faults;
use crate::peers::Peers;
use crate::state::StateStore;
use crate::types::{NodeId, NodeInfo, Raft};

/// How a read is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadConsistency {
    /// Leader read-index.
    Linearizable,
    /// This replica, now.
    Local,
    /// This replica once it has applied the revision.
    MinRevision(u64),
}

/// One store: its Raft handle, state machine and outgoing clients.
#[derive(Clone)]
pub struct StoreNode {
    pub(crate) raft: Raft,
    pub(crate) state: StateStore,
    pub(crate) peers: Arc<Peers>,
    pub(crate) faults: Arc<Faults>,
    pub(crate) name: String,
    pub(crate) raft_id: NodeId,
    pub(crate) timings: Timings,
    pub(crate) shutdown: CancellationToken,
}

/// Notifications fetched per database read when streaming a backlog.
const WATCH_BATCH: u32 = 256;

impl StoreNode {
    /// The Raft handle.
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The state machine.
    pub fn state(&self) -> &StateStore {
        &self.state
    }

    /// Wait (bounded) until some leader is known; returns it.
    async fn known_leader(&self) -> Option<(NodeId, Option<NodeInfo>)> {
        let mut rx = self.raft.metrics();
        let deadline = tokio::time::Instant::now() + self.timings.leader_wait();
        loop {
            let found = {
                let m = rx.borrow_and_update();
                m.current_leader.map(|id| {
                    let node = m.membership_config.nodes().find(|(nid, _)| **nid == id).map(|(_, n)| n.clone());
                    (id, node)
                })
            };
            if found.is_some() {
                return found;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                _ => return None,
            }
        }
    }

    /// Propose a command. A follower forwards it to the leader (same request id); without
    /// a leader the caller gets `Unavailable` and nothing is written locally.
    pub async fn execute(&self, req: Request, forwarded: bool) -> Result<ExecuteResult, StoreError> {
        // Two rounds: an election can make this node the leader while we looked for one.
        for _ in 0..2 {
            let attempt = tokio::time::timeout(self.timings.write_timeout(), self.raft.client_write(req.clone())).await;
            let err = match attempt {
                Err(_) => {
                    return Err(StoreError::QuorumUnavailable(
                        "the write was not committed in time; retry with the same request id".into(),
                    ));
                }
                Ok(Ok(resp)) => {
                    return resp
                        .data
                        .0
                        .ok_or_else(|| StoreError::Fatal("command entry applied without a result".into()));
                }
                Ok(Err(e)) => e,
            };
            let Some(fwd) = err.forward_to_leader::<NodeInfo>() else {
                return Err(StoreError::Fatal(err.to_string()));
            };
            let leader = match (fwd.leader_id, fwd.leader_node.clone()) {
                (Some(id), node) => Some((id, node)),
                (None, _) => self.known_leader().await,
            };
            let Some((leader_id, leader_node)) = leader else {
                return Err(StoreError::NoLeader);
            };
            if leader_id == self.raft_id {
                continue;
            }
            let Some(node) = leader_node else {
                return Err(StoreError::NoLeader);
            };
            if forwarded {
                return Err(StoreError::NotLeader {
                    leader_addr: Some(node.addr),
                });
            }
            return self.forward_execute(&node, &req).await;
        }
        Err(StoreError::NoLeader)
    }

    async fn forward_execute(&self, leader: &NodeInfo, req: &Request) -> Result<ExecuteResult, StoreError> {
        if self.faults.blocked(&self.name, &leader.node_name) {
            return Err(StoreError::NoLeader);
        }
        let mut client = self.peers.store(&leader.addr).map_err(|_| StoreError::NoLeader)?;
        let request = serde_json::to_vec(req).map_err(|e| StoreError::BadRequest(e.to_string()))?;
        let call = client.execute(ExecuteRequest {
            request,
            forwarded: true,
        });
        let reply = tokio::time::timeout(self.timings.write_timeout() + Duration::from_secs(1), call)
            .await
            .map_err(|_| StoreError::QuorumUnavailable("the leader did not answer in time".into()))?
            .map_err(|status| match status.code() {
                tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled => {
                    StoreError::QuorumUnavailable(status.message().to_owned())
                }
                _ => StoreError::Forwarded(status),
            })?
            .into_inner();
        let outcome = serde_json::from_slice(&reply.outcome)
            .map_err(|e| StoreError::BadRequest(format!("leader answered an undecodable outcome: {e}")))?;
        Ok(ExecuteResult {
            revision: reply.revision,
            replayed: reply.replayed,
            outcome,
        })
    }

    /// Serve a read at the requested consistency.
    pub async fn query(
        &self,
        query: Query,
        consistency: ReadConsistency,
        forwarded: bool,
    ) -> Result<(u64, QueryOutcome), StoreError> {
        match consistency {
            ReadConsistency::Local => {}
            ReadConsistency::MinRevision(wanted) => self.wait_applied(wanted).await?,
            ReadConsistency::Linearizable => {
                let check = tokio::time::timeout(self.timings.write_timeout(), self.raft.ensure_linearizable()).await;
                match check {
                    Err(_) => return Err(StoreError::QuorumUnavailable("read-index timed out".into())),
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        let Some(fwd) = e.forward_to_leader::<NodeInfo>() else {
                            return Err(StoreError::QuorumUnavailable(e.to_string()));
                        };
                        let node = match fwd.leader_node.clone() {
                            Some(n) => Some(n),
                            None => self.known_leader().await.and_then(|(_, n)| n),
                        };
                        let Some(node) = node else {
                            return Err(StoreError::NoLeader);
                        };
                        if forwarded {
                            return Err(StoreError::NotLeader {
                                leader_addr: Some(node.addr),
                            });
                        }
                        return self.forward_query(&node, &query).await;
                    }
                }
            }
        }
        Ok(self.state.query(query).await?)
    }

    async fn forward_query(&self, leader: &NodeInfo, query: &Query) -> Result<(u64, QueryOutcome), StoreError> {
        if self.faults.blocked(&self.name, &leader.node_name) {
            return Err(StoreError::NoLeader);
        }
        let mut client = self.peers.store(&leader.addr).map_err(|_| StoreError::NoLeader)?;
        let bytes = serde_json::to_vec(query).map_err(|e| StoreError::BadRequest(e.to_string()))?;
        let call = client.query(QueryRequest {
            consistency: agenda_shared::proto::Consistency::Linearizable as i32,
            min_revision: 0,
            query: bytes,
            forwarded: true,
        });
        let reply = tokio::time::timeout(self.timings.write_timeout() + Duration::from_secs(1), call)
            .await
            .map_err(|_| StoreError::QuorumUnavailable("the leader did not answer in time".into()))?
            .map_err(|status| match status.code() {
                tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled => {
                    StoreError::QuorumUnavailable(status.message().to_owned())
                }
                _ => StoreError::Forwarded(status),
            })?
            .into_inner();
        let outcome = serde_json::from_slice(&reply.result)
            .map_err(|e| StoreError::BadRequest(format!("leader answered an undecodable result: {e}")))?;
        Ok((reply.revision, outcome))
    }

    /// Wait until this replica has applied `wanted`, bounded by the read timeout.
    pub async fn wait_applied(&self, wanted: u64) -> Result<(), StoreError> {
        let mut rx = self.state.applied_index();
        let deadline = tokio::time::Instant::now() + self.timings.write_timeout();
        loop {
            let applied = *rx.borrow_and_update();
            if applied >= wanted {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                _ => return Err(StoreError::RevisionNotReached { wanted, applied }),
            }
        }
    }

    /// Stream notifications with revision > `after` (of `user`, or everybody's), then the
    /// live ones, in revision order. `None` marks the end of the backlog ("caught up").
    /// The stream ends when the receiver goes away or the node shuts down.
    pub fn watch(&self, after: u64, user: Option<Uuid>) -> mpsc::Receiver<Result<WatchItem, StoreError>> {
        let (tx, rx) = mpsc::channel(WATCH_BATCH as usize);
        let state = self.state.clone();
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let mut cursor = after;
            let mut caught_up = false;
            let mut applied_rx = state.applied_index();
            loop {
                applied_rx.borrow_and_update();
                let (applied, items) = match state.notifications_after(cursor, user, WATCH_BATCH).await {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = tx.send(Err(StoreError::Storage(e))).await;
                        return;
                    }
                };
                let full = items.len() == WATCH_BATCH as usize;
                for n in items {
                    cursor = cursor.max(n.revision);
                    if tx.send(Ok(WatchItem::Notification(n))).await.is_err() {
                        return;
                    }
                }
                if full {
                    continue;
                }
                // Everything up to `applied` has been read: later notifications can only
                // come from later entries, so the cursor may move to `applied`.
                cursor = cursor.max(applied);
                if !caught_up {
                    caught_up = true;
                    if tx.send(Ok(WatchItem::CaughtUp(applied))).await.is_err() {
                        return;
                    }
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tx.closed() => return,
                    changed = applied_rx.changed() => if changed.is_err() { return },
                }
            }
        });
        rx
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
        let voters: BTreeSet<NodeId> = m.membership_config.voter_ids().collect();
        let matched: BTreeMap<NodeId, Option<u64>> = m
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
        }
    }
}

/// An item of the notification feed.
#[derive(Debug, Clone)]
pub enum WatchItem {
    /// A committed notification.
    Notification(Notification),
    /// The backlog is delivered; the applied index at that moment.
    CaughtUp(u64),
}
