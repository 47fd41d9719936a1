//! Reads at the three consistency levels. A linearizable read learns the read index (from
//! this node's own leadership round, or from the leader), waits until this replica has
//! applied it, and is served here: every store serves its own reads. Concurrent reads share
//! leadership rounds ([`ReadRounds`]). A local read is refused when this replica is stale.

use agenda_shared::query::UserQuery;
use agenda_shared::query::{Principal, Query, QueryOutcome};
use agenda_shared::rpc::store::ReadConsistency;
use openraft::ServerState;
use tokio::time::Instant;
use tracing::Instrument;
use uuid::Uuid;

use super::{Retry, StoreNode};
use crate::error::StoreError;
use crate::types::{NodeInfo, RaftId};

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
    Result<u64, openraft::error::RaftError<RaftId, openraft::error::CheckIsLeaderError<RaftId, NodeInfo>>>;

#[derive(Debug, Default)]
struct RoundState {
    waiting: Vec<tokio::sync::oneshot::Sender<RoundResult>>,
    running: bool,
}

/// Pause between two read-index rounds that did not reach a quorum.
const READ_INDEX_RETRY: std::time::Duration = std::time::Duration::from_millis(100);

impl StoreNode {
    /// Leadership rounds run for linearizable reads so far (see [`ReadRounds`]).
    pub fn read_rounds(&self) -> u64 {
        self.reads.run.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Serve a read at the requested consistency. A linearizable read learns the read index
    /// (from its own leadership round, or from the leader), waits until this replica has
    /// applied it, and is then served here: every store serves its own reads.
    ///
    /// A `local` read is refused (`StaleReplica`) when this replica was last known to be up
    /// to date longer ago than `max_local_staleness_ms`, so its staleness is bounded.
    pub async fn query(
        &self,
        query: Query,
        principal: Option<Principal>,
        consistency: ReadConsistency,
        forwarded: bool,
    ) -> Result<(u64, QueryOutcome), StoreError> {
        self.check_running()?;
        match consistency {
            ReadConsistency::Local => self.check_fresh()?,
            ReadConsistency::MinRevision(wanted) => self.wait_applied(wanted).await?,
            ReadConsistency::Linearizable => {
                let index = self.read_index(forwarded).await?;
                self.wait_applied(index).await?;
            }
        }
        Ok(self.state.query(query, principal).await?)
    }

    /// How long ago this replica was last known to hold everything committed: a leader
    /// since its last quorum acknowledgement, a follower since the latest leader contact it
    /// has applied (see [`Freshness`]). `None` when unknown.
    pub fn staleness(&self) -> Option<std::time::Duration> {
        let m = self.raft.metrics().borrow().clone();
        if m.state == ServerState::Leader {
            if m.membership_config.voter_ids().count() <= 1 {
                return Some(std::time::Duration::ZERO);
            }
            return m.millis_since_quorum_ack.map(std::time::Duration::from_millis);
        }
        let applied = m.last_applied.map_or(0, |l| l.index);
        self.freshness.staleness(applied, std::time::Instant::now())
    }

    fn check_fresh(&self) -> Result<(), StoreError> {
        let limit = self.timings.max_local_staleness();
        match self.staleness() {
            Some(lag) if lag <= limit => Ok(()),
            lag => Err(StoreError::StaleReplica {
                lag_ms: lag.map(|l| l.as_millis() as u64),
            }),
        }
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
                return Err(StoreError::NotLeader);
            }
            match self.forward_read_index(leader_id, &node, deadline).await {
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
            tokio::spawn(async move { node.run_rounds().await }.in_current_span());
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
    async fn forward_read_index(&self, leader_id: RaftId, leader: &NodeInfo, deadline: Instant) -> Result<u64, Retry> {
        let asked = self
            .forward(leader_id, leader, deadline, |mut client| async move {
                client.read_index().await
            })
            .await;
        match asked {
            Ok(index) => Ok(index),
            Err(Retry::Fail(StoreError::Forwarded(status))) if status.code() == tonic::Code::Unimplemented => {
                let probe = Query::User(UserQuery { user_id: Uuid::nil() });
                let (revision, _) = self
                    .forward(leader_id, leader, deadline, |mut client| async move {
                        client.query(&probe, None, ReadConsistency::Linearizable, true).await
                    })
                    .await?;
                Ok(revision)
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
}
