//! When to hold an election: a pre-vote before every one (Raft thesis §9.6).
//!
//! openraft 0.9 starts an election as soon as a follower's timer runs out, with a higher
//! term. A node that was paused, partitioned or restarted therefore comes back with a term
//! the healthy leader has never seen; the leader's next AppendEntries meets the higher
//! vote and steps down, and the cluster stops writing for an election although nothing
//! was wrong with it. openraft 0.9 has no pre-vote, so this module holds the elections
//! itself (openraft's own timer is off, `enable_elect = false`):
//!
//! - every store remembers when it last heard from a leader ([`LeaderContact`]: an
//!   accepted AppendEntries or snapshot chunk, a vote it granted, or being the leader);
//! - a voter that has heard nothing for a random time in `[ELECTION_MIN_MS,
//!   ELECTION_MAX_MS]` asks the other voters "would you vote for me?" ([`PreVoteRequest`])
//!   with its last log id; nothing changes on their side;
//! - a store says yes only when it has not heard from a leader for `ELECTION_MIN_MS` itself
//!   (a leader: when no quorum acknowledged it for that long) and the candidate's log is at
//!   least as up to date as its own — the two checks openraft's real vote makes;
//! - with a yes from a majority of every configuration (joint ones included), the store
//!   asks openraft to start the election (`Trigger::elect`) at once, without waiting for
//!   the slower answers (a frozen old leader answers only when the wait runs out) — unless
//!   it heard from a leader or granted a vote while it asked: then another candidate
//!   was faster, and an election would only depose it.
//!
//! So a node that cannot win never raises the term. openraft's leader lease (votes are
//! refused for `election_timeout_max` after hearing from a leader) is set to
//! `ELECTION_MIN_MS` (see [`crate::config::Timings::raft_config`]) so a pre-vote granted
//! is a vote that will not be refused for the lease. Safety stays openraft's: a pre-vote
//! only decides *when* to call an election, never who wins it.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use agenda_shared::auth::Receiver;
use agenda_shared::proto::RaftPayload;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use openraft::ServerState;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::node::StoreNode;
use crate::types::{LogId, NodeInfo, RaftId, StorageError};

/// When this store last heard from a leader.
#[derive(Debug)]
pub struct LeaderContact {
    last: Mutex<Instant>,
}

impl Default for LeaderContact {
    /// A store that just started counts as having heard from a leader now: it waits a
    /// whole election timeout before asking for votes, and refuses pre-votes for as long.
    fn default() -> Self {
        Self {
            last: Mutex::new(Instant::now()),
        }
    }
}

impl LeaderContact {
    /// A leader (or a candidate this store voted for) was heard from just now.
    pub fn heard(&self) {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        *last = (*last).max(now);
    }

    /// How long since then.
    pub fn silence(&self) -> Duration {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).elapsed()
    }
}

/// "Would you vote for me?": the candidate and its last log id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreVoteRequest {
    /// The asking store's Raft id.
    pub candidate: RaftId,
    /// Its last log id (`None`: an empty log).
    pub last_log_id: Option<LogId>,
}

/// The answer to a [`PreVoteRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreVoteResponse {
    /// Whether this store would vote for the candidate now.
    pub granted: bool,
    /// Why not, for the logs.
    pub reason: Option<String>,
}

impl PreVoteResponse {
    fn deny(reason: impl Into<String>) -> Self {
        Self {
            granted: false,
            reason: Some(reason.into()),
        }
    }
}

impl StoreNode {
    /// The last log id this store holds (`Err` when the log cannot be read).
    async fn last_log_id(&self) -> Result<Option<LogId>, StorageError> {
        Ok(self.log.log_state().await?.last_log_id)
    }

    /// Answer a pre-vote: yes when no leader has been heard from for `ELECTION_MIN_MS` and
    /// the candidate's log is at least as up to date as this store's.
    pub async fn answer_pre_vote(&self, req: &PreVoteRequest) -> PreVoteResponse {
        let quiet = Duration::from_millis(self.timings.election_min_ms);
        let metrics = self.raft.metrics().borrow().clone();
        if metrics.state == ServerState::Leader {
            let acked = metrics.millis_since_quorum_ack.map(Duration::from_millis);
            if acked.is_some_and(|a| a < quiet) {
                return PreVoteResponse::deny("this store leads and a quorum follows it");
            }
        } else if self.contact.silence() < quiet {
            return PreVoteResponse::deny("a leader was heard from recently");
        }
        let mine = match self.last_log_id().await {
            Ok(mine) => mine,
            Err(e) => return PreVoteResponse::deny(format!("cannot read the log: {e}")),
        };
        if req.last_log_id < mine {
            return PreVoteResponse::deny(format!(
                "the candidate's log ({:?}) is behind this store's ({mine:?})",
                req.last_log_id
            ));
        }
        PreVoteResponse {
            granted: true,
            reason: None,
        }
    }

    /// Ask `peer` for its pre-vote. A store that does not know the RPC (an older release)
    /// says yes: that is how elections worked before it.
    async fn ask_pre_vote(&self, id: RaftId, peer: &NodeInfo, req: &[u8], wait: Duration) -> bool {
        if self.faults.blocked(&self.name, &peer.node_name) {
            return false;
        }
        let to = Receiver::addr(peer.addr.clone())
            .node(peer.node_name.to_string())
            .raft(id);
        let Ok(mut client) = self.peers.raft(&to) else {
            return false;
        };
        let payload = RaftPayload {
            data: req.to_vec(),
            blob: Vec::new(),
            target: id,
        };
        let call = async {
            // A frozen end answers nothing until it thaws (tests only).
            self.faults.wait_thawed(&self.name, &peer.node_name).await;
            client.pre_vote(payload).await
        };
        match tokio::time::timeout(wait, call).await {
            Ok(Ok(reply)) => match serde_json::from_slice::<PreVoteResponse>(&reply.get_ref().data) {
                Ok(answer) => {
                    if !answer.granted {
                        tracing::debug!(peer = %peer, reason = answer.reason.as_deref().unwrap_or(""), "pre-vote refused");
                    }
                    answer.granted
                }
                Err(e) => {
                    tracing::warn!(peer = %peer, error = %e, "undecodable pre-vote answer");
                    false
                }
            },
            Ok(Err(status)) => status.code() == tonic::Code::Unimplemented,
            Err(_) => false,
        }
    }

    /// One pre-vote round: whether a majority of every configuration would vote for this
    /// store now.
    async fn pre_vote_round(&self) -> bool {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership().clone();
        let last_log_id = match self.last_log_id().await {
            Ok(last) => last,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the log for a pre-vote");
                return false;
            }
        };
        let request = PreVoteRequest {
            candidate: self.raft_id,
            last_log_id,
        };
        let Ok(body) = serde_json::to_vec(&request) else {
            return false;
        };
        let wait = Duration::from_millis(self.timings.election_min_ms / 2);
        let peers: Vec<(RaftId, NodeInfo)> = membership
            .voter_ids()
            .filter(|id| *id != self.raft_id)
            .filter_map(|id| membership.get_node(&id).map(|n| (id, n.clone())))
            .collect();
        let mut answers: FuturesUnordered<_> = peers
            .iter()
            .map(|(id, node)| {
                let body = &body;
                async move { (*id, self.ask_pre_vote(*id, node, body, wait).await) }
            })
            .collect();
        let mut granted = BTreeSet::from([self.raft_id]);
        let won = |granted: &BTreeSet<RaftId>| {
            membership
                .get_joint_config()
                .iter()
                .all(|config| config.iter().filter(|id| granted.contains(id)).count() * 2 > config.len())
        };
        // Decide as soon as a majority said yes: a dead or frozen peer (often the old
        // leader) answers only when `wait` runs out, and every millisecond spent waiting
        // for it is a millisecond without writes and a chance for a second candidate.
        while !won(&granted) {
            match answers.next().await {
                Some((id, true)) => {
                    granted.insert(id);
                }
                Some((_, false)) => {}
                None => return false,
            }
        }
        true
    }
}

/// Hold elections for `node` until `shutdown`: after a random silence in `[min, max]`, a
/// pre-vote round, then openraft's election if a majority said yes.
pub(crate) async fn run(node: StoreNode, shutdown: CancellationToken) {
    let timings = node.timings.clone();
    let tick = Duration::from_millis((timings.heartbeat_ms / 2).clamp(10, 50));
    let timeout = || Duration::from_millis(rand::rng().random_range(timings.election_min_ms..=timings.election_max_ms));
    let mut threshold = timeout();
    let mut last_attempt = Instant::now();
    async {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(tick) => {}
            }
            let (state, voter) = {
                let m = node.raft.metrics().borrow().clone();
                let voter = m
                    .membership_config
                    .membership()
                    .voter_ids()
                    .any(|id| id == node.raft_id);
                (m.state, voter)
            };
            if state == ServerState::Leader {
                node.contact.heard();
                continue;
            }
            if !voter || state == ServerState::Shutdown {
                continue;
            }
            if node.contact.silence() < threshold || last_attempt.elapsed() < threshold {
                continue;
            }
            last_attempt = Instant::now();
            threshold = timeout();
            if node.pre_vote_round().await {
                // A round that took long (a starved process: the answers sat in queues)
                // speaks of a past moment: a leader may have been elected since, whose
                // first message has not reached this store yet. Ask again later.
                if last_attempt.elapsed() > Duration::from_millis(timings.election_min_ms / 2) {
                    tracing::debug!(took = ?last_attempt.elapsed(), "pre-vote won too slowly to act on: no election");
                    continue;
                }
                // Another candidate may have won meanwhile (this store granted it a vote
                // or heard its first AppendEntries): an election now would raise the term
                // over a fresh leader and depose it.
                if node.contact.silence() < last_attempt.elapsed() {
                    tracing::debug!("pre-vote won, but a leader or candidate was heard from since: no election");
                    continue;
                }
                tracing::info!("pre-vote won: starting an election");
                if let Err(e) = node.raft.trigger().elect().await {
                    tracing::warn!(error = %e, "could not start an election");
                    return;
                }
            } else {
                tracing::debug!("pre-vote lost: no election");
            }
        }
    }
    .instrument(tracing::info_span!("elections"))
    .await
}
