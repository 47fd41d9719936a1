//! The store's request logic, independent of gRPC: writes through Raft (forwarded to the
//! leader when this node is a follower), reads at the three consistency levels, the
//! notification feed and the status report.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use agenda_shared::command::{ExecuteResult, Request};
use agenda_shared::model::Notification;
use agenda_shared::proto::store_client::StoreClient;
use agenda_shared::proto::{ExecuteRequest, QueryRequest};
use agenda_shared::query::{Query, QueryOutcome};
use agenda_shared::status::{MemberStatus, StoreStatus};
use openraft::ServerState;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::Timings;
use crate::error::{ERROR_KIND_KEY, StoreError};
use crate::faults::Faults;
use crate::peers::{Peers, SignedChannel};
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
    pub(crate) reads: Arc<ReadRounds>,
}

/// Leadership confirmations shared by concurrent linearizable reads. A read joins the next
/// round that starts after it arrived (a round that began earlier could predate a write the
/// reader already saw acknowledged), so however many reads arrive together, the leader sends
/// one heartbeat round per batch instead of one per read.
#[derive(Debug, Default)]
pub struct ReadRounds {
    state: std::sync::Mutex<RoundState>,
    /// Rounds run so far.
    run: std::sync::atomic::AtomicU64,
}

type RoundResult =
    Result<u64, openraft::error::RaftError<NodeId, openraft::error::CheckIsLeaderError<NodeId, NodeInfo>>>;

#[derive(Debug, Default)]
struct RoundState {
    waiting: Vec<tokio::sync::oneshot::Sender<RoundResult>>,
    running: bool,
}

/// Pause between two read-index rounds that did not reach a quorum.
const READ_INDEX_RETRY: std::time::Duration = std::time::Duration::from_millis(100);

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

    /// Leadership rounds run for linearizable reads so far (see [`ReadRounds`]).
    pub fn read_rounds(&self) -> u64 {
        self.reads.run.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Wait (until `deadline`) for some leader to be known; returns it.
    async fn known_leader(&self, deadline: Instant) -> Option<(NodeId, Option<NodeInfo>)> {
        let mut rx = self.raft.metrics();
        loop {
            let found = {
                let m = rx.borrow_and_update();
                m.current_leader.map(|id| {
                    let node = m
                        .membership_config
                        .nodes()
                        .find(|(nid, _)| **nid == id)
                        .map(|(_, n)| n.clone());
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

    /// Propose a command. A follower forwards it to the leader (same request id, so a
    /// retry after a lost reply is applied once); without a leader the caller gets
    /// `Unavailable` and nothing is written locally. Bounded by the write timeout plus one
    /// leader election.
    pub async fn execute(&self, req: Request, forwarded: bool) -> Result<ExecuteResult, StoreError> {
        let deadline = Instant::now() + self.timings.write_timeout() + self.timings.leader_wait();
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let attempt = tokio::time::timeout(
                remaining.min(self.timings.write_timeout()),
                self.raft.client_write(req.clone()),
            )
            .await;
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
            let leader = self
                .leader_from_hint(fwd.leader_id, fwd.leader_node.clone(), deadline)
                .await?;
            let Some((leader_id, node)) = leader else { continue };
            if forwarded {
                return Err(StoreError::NotLeader {
                    leader_addr: Some(node.addr),
                });
            }
            match self.forward_execute(&node, &req, deadline).await {
                Err(Retry::Again) => self.wait_leader_change(leader_id, deadline).await?,
                Err(Retry::Fail(e)) => return Err(e),
                Ok(result) => return Ok(result),
            }
        }
    }

    /// Resolve where to send a request: `Ok(Some(leader))` for another node, `Ok(None)` when
    /// this node became the leader (try locally again), `Err` when no leader appears in time.
    async fn leader_from_hint(
        &self,
        leader_id: Option<NodeId>,
        leader_node: Option<NodeInfo>,
        deadline: Instant,
    ) -> Result<Option<(NodeId, NodeInfo)>, StoreError> {
        let (id, node) = match leader_id {
            Some(id) => (id, leader_node),
            None => self.known_leader(deadline).await.ok_or(StoreError::NoLeader)?,
        };
        if id == self.raft_id {
            return Ok(None);
        }
        node.map(|n| Some((id, n))).ok_or(StoreError::NoLeader)
    }

    /// After a failed forward to `old`: wait until another leader is known or a short
    /// pause has passed (the failure may have been a passing connection error).
    /// `Err` once the request's deadline has passed.
    async fn wait_leader_change(&self, old: NodeId, deadline: Instant) -> Result<(), StoreError> {
        const PAUSE: std::time::Duration = std::time::Duration::from_millis(200);
        let until = deadline.min(Instant::now() + PAUSE);
        let mut rx = self.raft.metrics();
        loop {
            let current = rx.borrow_and_update().current_leader;
            if current.is_some_and(|c| c != old) {
                return Ok(());
            }
            if tokio::time::timeout_at(until, rx.changed()).await.is_err() {
                return if Instant::now() >= deadline {
                    Err(StoreError::NoLeader)
                } else {
                    Ok(())
                };
            }
        }
    }

    async fn forward_execute(
        &self,
        leader: &NodeInfo,
        req: &Request,
        deadline: Instant,
    ) -> Result<ExecuteResult, Retry> {
        let request = serde_json::to_vec(req).map_err(|e| Retry::Fail(StoreError::BadRequest(e.to_string())))?;
        let reply = self
            .forward(leader, deadline, |mut client| async move {
                client
                    .execute(ExecuteRequest {
                        request,
                        forwarded: true,
                    })
                    .await
            })
            .await?;
        let outcome = serde_json::from_slice(&reply.outcome).map_err(|e| {
            Retry::Fail(StoreError::BadRequest(format!(
                "leader answered an undecodable outcome: {e}"
            )))
        })?;
        Ok(ExecuteResult {
            revision: reply.revision,
            replayed: reply.replayed,
            outcome,
        })
    }

    /// Call the leader. Transport failures and "not the leader any more" answers mean
    /// "retry after the next election"; every other answer is final.
    async fn forward<T, F, Fut>(&self, leader: &NodeInfo, deadline: Instant, call: F) -> Result<T, Retry>
    where
        F: FnOnce(StoreClient<SignedChannel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        if self.faults.blocked(&self.name, &leader.node_name) {
            return Err(Retry::Again);
        }
        let client = self.peers.store(&leader.addr).map_err(|_| Retry::Again)?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, call(client)).await {
            Err(_) => Err(Retry::Fail(StoreError::QuorumUnavailable(
                "the leader did not answer in time".into(),
            ))),
            Ok(Ok(reply)) => Ok(reply.into_inner()),
            Ok(Err(status)) => {
                let kind = status
                    .metadata()
                    .get(ERROR_KIND_KEY)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                match kind.as_deref() {
                    // The leader answered: it is not the leader any more.
                    Some("not_leader" | "no_leader" | "shutting_down") => Err(Retry::Again),
                    // The leader answered with a final error.
                    Some(_) => Err(Retry::Fail(StoreError::Forwarded(status))),
                    // No kind: the call never reached our service (connection refused, reset).
                    None if matches!(
                        status.code(),
                        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
                    ) =>
                    {
                        Err(Retry::Again)
                    }
                    None => Err(Retry::Fail(StoreError::Forwarded(status))),
                }
            }
        }
    }

    /// Serve a read at the requested consistency. A linearizable read learns the read index
    /// (from its own leadership round, or from the leader), waits until this replica has
    /// applied it, and is then served here: every store serves its own reads.
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
                let index = self.read_index(forwarded).await?;
                self.wait_applied(index).await?;
            }
        }
        Ok(self.state.query(query).await?)
    }

    /// The index a linearizable read arriving now must see: confirmed by this node's own
    /// leadership round, or asked of the leader (unless `forwarded`: a leader never asks
    /// on). Bounded by the write timeout plus one leader election.
    pub async fn read_index(&self, forwarded: bool) -> Result<u64, StoreError> {
        let deadline = Instant::now() + self.timings.write_timeout() + self.timings.leader_wait();
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let err = match tokio::time::timeout(remaining, self.leader_round()).await {
                Err(_) => return Err(StoreError::QuorumUnavailable("read-index timed out".into())),
                Ok(Ok(index)) => return Ok(index),
                Ok(Err(e)) => e,
            };
            let Some(fwd) = err.forward_to_leader::<NodeInfo>() else {
                // The leader did not hear from a quorum in this round (a slow or lost
                // heartbeat): try another round until the deadline.
                if Instant::now() + READ_INDEX_RETRY < deadline {
                    tokio::time::sleep(READ_INDEX_RETRY).await;
                    continue;
                }
                return Err(StoreError::QuorumUnavailable(err.to_string()));
            };
            let Some((leader_id, node)) = self
                .leader_from_hint(fwd.leader_id, fwd.leader_node.clone(), deadline)
                .await?
            else {
                continue;
            };
            if forwarded {
                return Err(StoreError::NotLeader {
                    leader_addr: Some(node.addr),
                });
            }
            match self.forward_read_index(&node, deadline).await {
                Err(Retry::Again) => self.wait_leader_change(leader_id, deadline).await?,
                Err(Retry::Fail(e)) => return Err(e),
                Ok(index) => return Ok(index),
            }
        }
    }

    /// Join the next leadership round (see [`ReadRounds`]); the read index when this node is
    /// the leader and heard from a quorum.
    async fn leader_round(&self) -> RoundResult {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let start = {
            let mut state = self.reads.state.lock().unwrap_or_else(|p| p.into_inner());
            state.waiting.push(tx);
            !std::mem::replace(&mut state.running, true)
        };
        if start {
            let node = self.clone();
            tokio::spawn(async move { node.run_rounds().await });
        }
        match rx.await {
            Ok(result) => result,
            // The round task ended without answering: only when the runtime shuts down.
            Err(_) => Err(openraft::error::RaftError::Fatal(openraft::error::Fatal::Stopped)),
        }
    }

    /// Run rounds while reads wait; each round answers the reads that arrived before it.
    async fn run_rounds(&self) {
        loop {
            let batch = {
                let mut state = self.reads.state.lock().unwrap_or_else(|p| p.into_inner());
                if state.waiting.is_empty() {
                    state.running = false;
                    return;
                }
                std::mem::take(&mut state.waiting)
            };
            self.reads.run.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let result = match tokio::time::timeout(self.timings.write_timeout(), self.raft.get_read_log_id()).await {
                Ok(Ok((read_log_id, _applied))) => Ok(read_log_id.map_or(0, |l| l.index)),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(openraft::error::RaftError::APIError(
                    openraft::error::CheckIsLeaderError::QuorumNotEnough(openraft::error::QuorumNotEnough {
                        cluster: "no quorum answered the leadership round in time".into(),
                        got: Default::default(),
                    }),
                )),
            };
            for tx in batch {
                let _ = tx.send(result.clone());
            }
        }
    }

    /// Ask the leader for the read index. A leader from before `ReadIndex` existed (during a
    /// rolling upgrade) answers `Unimplemented`; then a linearizable no-op query gives the
    /// same bound: the revision it answers is its applied index after its own read-index.
    async fn forward_read_index(&self, leader: &NodeInfo, deadline: Instant) -> Result<u64, Retry> {
        let asked = self
            .forward(leader, deadline, |mut client| async move {
                client.read_index(agenda_shared::proto::ReadIndexRequest {}).await
            })
            .await;
        match asked {
            Ok(reply) => Ok(reply.index),
            Err(Retry::Fail(StoreError::Forwarded(status))) if status.code() == tonic::Code::Unimplemented => {
                let probe = Query::User { user_id: Uuid::nil() };
                let bytes =
                    serde_json::to_vec(&probe).map_err(|e| Retry::Fail(StoreError::BadRequest(e.to_string())))?;
                let reply = self
                    .forward(leader, deadline, |mut client| async move {
                        client
                            .query(QueryRequest {
                                consistency: agenda_shared::proto::Consistency::Linearizable as i32,
                                min_revision: 0,
                                query: bytes,
                                forwarded: true,
                            })
                            .await
                    })
                    .await?;
                Ok(reply.revision)
            }
            Err(e) => Err(e),
        }
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

/// Why forwarding to the leader did not produce an answer.
enum Retry {
    /// The leader is gone or moved: retry after the next election.
    Again,
    /// Final.
    Fail(StoreError),
}

/// An item of the notification feed.
#[derive(Debug, Clone)]
pub enum WatchItem {
    /// A committed notification.
    Notification(Notification),
    /// The backlog is delivered; the applied index at that moment.
    CaughtUp(u64),
}
