//! Leader transfer: hand leadership to another voter on request (`agenda-admin leader
//! transfer`) and when the leader's store stops gracefully, so a rolling update moves
//! leadership away before each stop instead of leaving the cluster to notice a silence.
//!
//! openraft 0.9 has no transfer, and its followers refuse votes while their leader lease
//! runs (`ELECTION_MIN_MS` after they last heard from the leader). So the leader:
//!
//! 1. stops taking writes (callers are told "not the leader" and follow the change);
//! 2. waits until the target holds its whole log (bounded);
//! 3. stops its heartbeats, so the followers' leases run out;
//! 4. asks the target to stand for election (`StandForElection`): the target calls its
//!    election as soon as it has heard nothing for `ELECTION_MIN_MS`, without the random
//!    wait and the pre-vote — ahead of every other voter, whose timers start there;
//! 5. waits (bounded) until another leader is known, then turns heartbeats and writes back
//!    on (a follower by then; the leader again if the transfer failed).
//!
//! Safety stays openraft's: the target wins only with a majority's votes, and its log is
//! complete, so nothing committed is lost.

use std::sync::atomic::Ordering;
use std::time::Duration;

use agenda_shared::proto::StandForElectionRequest;
use agenda_shared::proto::admin_client::AdminClient;
use openraft::ServerState;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::StoreNode;
use crate::error::StoreError;
use crate::types::RaftId;

/// What a transfer did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transferred {
    /// The voter asked to take over.
    pub target: RaftId,
    /// The leader known when the transfer ended (the target, unless another voter won).
    pub leader: Option<RaftId>,
    /// How long writes were refused here, ms.
    pub paused_ms: u64,
}

impl StoreNode {
    /// Hand leadership to `to` (`None`: the voter with the most of the log). Only the
    /// leader can; `Err(NotLeader)` elsewhere.
    pub async fn transfer_leadership(&self, to: Option<RaftId>) -> Result<Transferred, StoreError> {
        let m = self.raft.metrics().borrow().clone();
        if m.state != ServerState::Leader {
            return Err(StoreError::NotLeader);
        }
        let voters: Vec<RaftId> = m
            .membership_config
            .membership()
            .voter_ids()
            .filter(|id| *id != self.raft_id)
            .collect();
        let matched = |id: RaftId| {
            m.replication
                .as_ref()
                .and_then(|r| r.get(&id).copied().flatten())
                .map(|l| l.index)
        };
        let target = match to {
            Some(id) if voters.contains(&id) => id,
            Some(id) => {
                return Err(StoreError::BadRequest(format!(
                    "{id} is not another voter of the cluster"
                )));
            }
            None => *voters
                .iter()
                .max_by_key(|id| matched(**id))
                .ok_or_else(|| StoreError::BadRequest("there is no other voter to hand over to".into()))?,
        };
        let node = m
            .membership_config
            .membership()
            .get_node(&target)
            .cloned()
            .ok_or_else(|| StoreError::BadRequest(format!("{target} has no address")))?;

        let started = Instant::now();
        self.transferring.store(true, Ordering::SeqCst);
        tracing::info!(target, to = %node, "leader transfer: writes paused");
        let outcome = self.hand_over(target, &node.addr, &node.node_name).await;
        self.raft.runtime_config().heartbeat(true);
        self.transferring.store(false, Ordering::SeqCst);
        let leader = self.raft.metrics().borrow().current_leader;
        let paused_ms = started.elapsed().as_millis() as u64;
        match outcome {
            Ok(()) => tracing::info!(target, ?leader, paused_ms, "leader transfer done"),
            Err(ref e) => tracing::warn!(target, ?leader, paused_ms, error = %e, "leader transfer failed"),
        }
        outcome.map(|()| Transferred {
            target,
            leader,
            paused_ms,
        })
    }

    async fn hand_over(&self, target: RaftId, addr: &str, node_name: &str) -> Result<(), StoreError> {
        if self.faults.blocked(&self.name, node_name) {
            return Err(StoreError::QuorumUnavailable("the target cannot be reached".into()));
        }
        let quiet = Duration::from_millis(self.timings.election_min_ms);
        // 2. The target catches up with everything written so far (writes are paused).
        let caught_up = Instant::now() + quiet * 4;
        loop {
            let m = self.raft.metrics().borrow().clone();
            let last = m.last_log_index;
            let theirs = m
                .replication
                .as_ref()
                .and_then(|r| r.get(&target).copied().flatten())
                .map(|l| l.index);
            if theirs.is_some() && theirs >= last {
                break;
            }
            if Instant::now() >= caught_up {
                return Err(StoreError::QuorumUnavailable(format!(
                    "the target did not catch up in time (it holds {theirs:?} of {last:?})"
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // 3. Silence: the followers' leases run out ELECTION_MIN_MS from now.
        self.raft.runtime_config().heartbeat(false);
        // 4. The target stands as soon as they have.
        let channel = self
            .peers
            .channel(addr)
            .map_err(|e| StoreError::QuorumUnavailable(format!("cannot reach the target: {e}")))?;
        let mut client = AdminClient::new(channel);
        let ask = async {
            self.faults.wait_thawed(&self.name, node_name).await;
            client.stand_for_election(StandForElectionRequest {}).await
        };
        match tokio::time::timeout(quiet, ask).await {
            Ok(Ok(_)) => {}
            Ok(Err(s)) => {
                return Err(StoreError::QuorumUnavailable(format!(
                    "the target refused to stand: {}",
                    s.message()
                )));
            }
            Err(_) => {
                return Err(StoreError::QuorumUnavailable(
                    "the target did not answer in time".into(),
                ));
            }
        }
        // 5. Someone else leads.
        let deadline = Instant::now() + quiet * 2 + Duration::from_millis(self.timings.election_max_ms * 2);
        let mut rx = self.raft.metrics();
        loop {
            if rx.borrow_and_update().current_leader.is_some_and(|l| l != self.raft_id) {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, rx.changed()).await.is_err() {
                return Err(StoreError::QuorumUnavailable(
                    "no other leader was elected in time; this store leads on".into(),
                ));
            }
        }
    }

    /// This store was asked to take over: call an election as soon as no leader has been
    /// heard for `ELECTION_MIN_MS` (every follower's lease has then run out), bounded by
    /// twice `ELECTION_MAX_MS`. Returns at once; the election happens in the background.
    pub fn stand_for_election(&self) -> Result<(), StoreError> {
        self.check_running()?;
        let node = self.clone();
        tokio::spawn(async move {
            let quiet = Duration::from_millis(node.timings.election_min_ms);
            let give_up = Instant::now() + Duration::from_millis(node.timings.election_max_ms * 2);
            while node.contact.silence() < quiet {
                if Instant::now() >= give_up {
                    tracing::info!("asked to stand for election, but the leader is still heard: not standing");
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tracing::info!("standing for election on the leader's request");
            if let Err(e) = node.raft.trigger().elect().await {
                tracing::warn!(error = %e, "could not start the election");
            }
        });
        Ok(())
    }
}
