//! The store's request logic, independent of gRPC. One [`StoreNode`] per store:
//!
//! - `write`: commands through Raft, forwarded to the leader when this node follows;
//! - `read`: reads at the three consistency levels, the read index and its shared rounds,
//!   the staleness bound of local reads;
//! - `watch`: the notification feed;
//! - `status`: this node's view of the cluster.
//!
//! This file holds the node itself and what forwarding to the leader shares.

mod backup;
mod propose;
mod read;
mod status;
mod transfer;
mod watch;
mod write;

use std::sync::Arc;

use agenda_shared::rpc::kind::ErrorKind;
use agenda_shared::rpc::store::{CallError, StoreClient};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::Timings;
use crate::election::LeaderContact;
use crate::error::StoreError;
use crate::faults::Faults;
use crate::freshness::Freshness;
use crate::log_store::LogStore;
use crate::peers::Peers;
use crate::state::StateStore;
use crate::types::{NodeInfo, Raft, RaftId};
use crate::version::FormatGate;

pub use propose::{BATCH_BYTES, IN_FLIGHT, MAX_BATCH, ProposalStats, SLOT_HOLD};
pub(crate) use propose::{ProposalQueue, Proposer, queue as propose_queue};
pub use read::ReadRounds;
pub use transfer::Transferred;
pub use watch::WatchItem;

/// One store: its Raft handle, state machine and outgoing clients.
#[derive(Clone)]
pub struct StoreNode {
    pub(crate) raft: Raft,
    pub(crate) state: StateStore,
    pub(crate) peers: Arc<Peers>,
    pub(crate) faults: Arc<Faults>,
    pub(crate) name: String,
    pub(crate) raft_id: RaftId,
    pub(crate) timings: Timings,
    pub(crate) shutdown: CancellationToken,
    pub(crate) reads: Arc<ReadRounds>,
    /// When this replica was last known to be up to date (bounds `local` reads).
    pub(crate) freshness: Arc<Freshness>,
    /// When this store last heard from a leader (pre-votes, [`crate::election`]).
    pub(crate) contact: Arc<LeaderContact>,
    /// The Raft log (read for its last log id by pre-votes).
    pub(crate) log: LogStore,
    /// The leader's proposal queue (batches concurrent commands).
    pub(crate) proposer: Proposer,
    /// The entry format the leader writes ([`crate::version`]).
    pub(crate) gate: Arc<FormatGate>,
    /// The data volume's free space and its alarm ([`crate::disk`]).
    pub(crate) disk: Arc<crate::disk::DiskGuard>,
    /// Set while this leader hands over ([`transfer`]): it takes no writes.
    pub(crate) transferring: Arc<std::sync::atomic::AtomicBool>,
    /// Automatic backups taken ([`crate::backup_schedule`]).
    pub(crate) backups_taken: Arc<crate::backup_schedule::BackupCount>,
}

/// Why forwarding to the leader did not produce an answer.
enum Retry {
    /// The leader is gone or moved: retry after the next election.
    Again,
    /// Final.
    Fail(StoreError),
}

impl StoreNode {
    /// The Raft handle.
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The state machine.
    pub fn state(&self) -> &StateStore {
        &self.state
    }

    /// Automatic backups this store has taken.
    pub fn backups_taken(&self) -> u64 {
        self.backups_taken.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// What the proposal queue has proposed so far (entries of one and of many commands).
    pub fn proposal_stats(&self) -> &ProposalStats {
        &self.proposer.stats
    }

    /// Tests only: a frozen store (see [`Faults::freeze`]) answers nothing until it thaws,
    /// as a process stopped with SIGSTOP.
    pub(crate) async fn stall_while_frozen(&self) {
        self.faults.wait_thawed(&self.name, &self.name).await;
    }

    /// `ShuttingDown` once this store has begun to stop, `Halted` once it stopped
    /// applying the log: the caller goes to another store.
    fn check_running(&self) -> Result<(), StoreError> {
        if self.shutdown.is_cancelled() {
            return Err(StoreError::ShuttingDown);
        }
        if let Some(reason) = self.state.halted() {
            return Err(StoreError::Halted(reason));
        }
        Ok(())
    }

    /// Wait (until `deadline`) for some leader to be known; returns it.
    async fn known_leader(&self, deadline: Instant) -> Option<(RaftId, Option<NodeInfo>)> {
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

    /// Resolve where to send a request: `Ok(Some(leader))` for another node, `Ok(None)` when
    /// this node became the leader (try locally again), `Err` when no leader appears in time.
    async fn leader_from_hint(
        &self,
        leader_id: Option<RaftId>,
        leader_node: Option<NodeInfo>,
        deadline: Instant,
    ) -> Result<Option<(RaftId, NodeInfo)>, StoreError> {
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
    async fn wait_leader_change(&self, old: RaftId, deadline: Instant) -> Result<(), StoreError> {
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

    /// Resolves once this node knows of a leader other than `old`.
    async fn leader_moved_from(&self, old: RaftId) {
        let mut rx = self.raft.metrics();
        loop {
            if rx.borrow_and_update().current_leader.is_some_and(|c| c != old) {
                return;
            }
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// Call the leader `leader_id`. Transport failures, "not the leader any more" answers
    /// and a new leader becoming known while the call is in flight (the old one may be
    /// frozen or cut off: a call waiting on it would wait as long as it does) mean "retry
    /// with the new leader"; every other answer is final. Retrying is safe: the request
    /// keeps its id, and the log applies a request id once.
    async fn forward<T, F, Fut>(
        &self,
        leader_id: RaftId,
        leader: &NodeInfo,
        deadline: Instant,
        call: F,
    ) -> Result<T, Retry>
    where
        F: FnOnce(StoreClient) -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        if self.faults.blocked(&self.name, &leader.node_name) {
            return Err(Retry::Again);
        }
        let client = self.peers.store(&leader.addr).map_err(|_| Retry::Again)?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let call = async {
            // A frozen end answers nothing until it thaws (tests only).
            self.faults.wait_thawed(&self.name, &leader.node_name).await;
            call(client).await
        };
        let answer = tokio::select! {
            answer = tokio::time::timeout(remaining, call) => answer,
            () = self.leader_moved_from(leader_id) => {
                tracing::debug!(old = leader_id, "the leader changed while a forwarded call waited; retrying");
                return Err(Retry::Again);
            }
        };
        match answer {
            Err(_) => Err(Retry::Fail(StoreError::QuorumUnavailable(
                "the leader did not answer in time".into(),
            ))),
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(CallError::Codec(e))) => {
                Err(Retry::Fail(StoreError::BadRequest(format!("the leader's answer: {e}"))))
            }
            Ok(Err(CallError::Status(status))) => match ErrorKind::of(&status) {
                // The leader answered: it is not the leader any more.
                Some(ErrorKind::NotLeader | ErrorKind::NoLeader | ErrorKind::ShuttingDown) => Err(Retry::Again),
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
            },
        }
    }
}
