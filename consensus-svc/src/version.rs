//! The cluster format: the newest log entry format every member applies (etcd's cluster
//! version, for the log's encoding; [`crate::entry`] lists the formats).
//!
//! The leader asks every member of the membership (voters and learners: a learner applies
//! the log too) which formats it applies, through the `Status` RPC it already serves,
//! once when it becomes leader and then every [`POLL`]. It writes entries in
//!
//! ```text
//! max(format already applied here, min(what every member said, what this store applies))
//! ```
//!
//! and falls back to the format already applied while any member has not answered. A
//! format already applied is one the cluster has committed: every member that did not
//! apply it halted already, so writing it again changes nothing. Writing an older format
//! is always safe (every store applies the formats below its newest), so an unanswered
//! poll can only slow the cluster down, never split it. What remains — a member replaced
//! by an older binary between two polls — ends with that store halting on the entry with
//! a clear error (see [`crate::state`]), never with replicas that disagree.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::future::join_all;
use openraft::ServerState;
use tokio_util::sync::CancellationToken;

use crate::entry::FORMAT_SINGLE;
use crate::node::StoreNode;
use crate::types::RaftId;

/// How often a leader asks the members again.
pub const POLL: Duration = Duration::from_secs(1);
/// Longest a member's answer is waited for.
const ASK_TIMEOUT: Duration = Duration::from_millis(800);

/// What this store knows of the members' formats, and the format it writes.
#[derive(Debug)]
pub struct FormatGate {
    /// Each member's newest format, as it last said (leader only).
    reported: Mutex<BTreeMap<RaftId, u32>>,
    /// The format proposals are written in now.
    writing: AtomicU32,
}

impl Default for FormatGate {
    fn default() -> Self {
        Self {
            reported: Mutex::new(BTreeMap::new()),
            writing: AtomicU32::new(FORMAT_SINGLE),
        }
    }
}

impl FormatGate {
    /// The format new entries are written in.
    pub fn writing(&self) -> u32 {
        self.writing.load(Ordering::Relaxed)
    }

    /// What `member` last said it applies (leader only).
    pub fn reported(&self, member: RaftId) -> Option<u32> {
        self.reported
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&member)
            .copied()
    }

    /// Record the answers of one poll (`None`: no answer) and decide the format.
    fn decide(&self, answers: BTreeMap<RaftId, Option<u32>>, own: u32, applied: u32) -> u32 {
        let mut reported = self.reported.lock().unwrap_or_else(|p| p.into_inner());
        reported.retain(|id, _| answers.contains_key(id));
        let mut all_answered = true;
        let mut lowest = own;
        for (id, answer) in answers {
            match answer {
                Some(f) => {
                    reported.insert(id, f);
                    lowest = lowest.min(f);
                }
                None => all_answered = false,
            }
        }
        let format = if all_answered { lowest.max(applied) } else { applied };
        let format = format.min(own);
        let before = self.writing.swap(format, Ordering::Relaxed);
        if before != format {
            tracing::info!(
                from = before,
                to = format,
                "entry format written by this leader changed"
            );
        }
        format
    }

    fn reset(&self) {
        self.reported.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.writing.store(FORMAT_SINGLE, Ordering::Relaxed);
    }
}

/// Keep this store's [`FormatGate`] current while it leads; until `stop`.
pub async fn run(node: StoreNode, stop: CancellationToken) {
    let mut metrics = node.raft.metrics();
    loop {
        let leading = metrics.borrow_and_update().state == ServerState::Leader;
        if leading {
            poll(&node).await;
        } else {
            node.gate.reset();
        }
        let wait = async {
            if leading {
                tokio::time::sleep(POLL).await;
            } else if metrics.changed().await.is_err() {
                // Raft stopped (a halted store): nothing to decide any more.
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = wait => {}
        }
    }
}

/// Ask every member once and decide.
async fn poll(node: &StoreNode) {
    let members: Vec<_> = {
        let m = node.raft.metrics().borrow().clone();
        m.membership_config.nodes().map(|(id, n)| (*id, n.clone())).collect()
    };
    let own = node.state.max_entry_format();
    let asks = members.into_iter().map(|(id, info)| async move {
        if id == node.raft_id {
            return (id, Some(own));
        }
        if node.faults.blocked(&node.name, &info.node_name) {
            return (id, None);
        }
        let Ok(mut client) = node.peers.store(&info.addr) else {
            return (id, None);
        };
        let answer = tokio::time::timeout(ASK_TIMEOUT, async {
            node.faults.wait_thawed(&node.name, &info.node_name).await;
            client.status().await
        })
        .await;
        match answer {
            Ok(Ok(status)) => (id, Some(status.max_entry_format)),
            _ => (id, None),
        }
    });
    let answers: BTreeMap<_, _> = join_all(asks).await.into_iter().collect();
    node.gate.decide(answers, own, node.state.applied_entry_format());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(list: &[(RaftId, Option<u32>)]) -> BTreeMap<RaftId, Option<u32>> {
        list.iter().copied().collect()
    }

    #[test]
    fn the_newest_format_every_member_applies_is_written() {
        let gate = FormatGate::default();
        assert_eq!(
            gate.decide(answers(&[(1, Some(2)), (2, Some(2)), (3, Some(2))]), 2, 1),
            2
        );
        assert_eq!(
            gate.decide(answers(&[(1, Some(2)), (2, Some(1)), (3, Some(2))]), 2, 1),
            1
        );
        assert_eq!(gate.reported(2), Some(1));
    }

    #[test]
    fn a_silent_member_holds_the_format_at_what_was_applied() {
        let gate = FormatGate::default();
        assert_eq!(gate.decide(answers(&[(1, Some(2)), (2, None)]), 2, 1), 1);
        assert_eq!(gate.decide(answers(&[(1, Some(2)), (2, None)]), 2, 2), 2);
    }

    #[test]
    fn never_above_what_this_store_applies_nor_below_what_the_cluster_wrote() {
        let gate = FormatGate::default();
        assert_eq!(gate.decide(answers(&[(1, Some(1)), (2, Some(3))]), 1, 1), 1);
        assert_eq!(gate.decide(answers(&[(1, Some(2)), (2, Some(1))]), 2, 2), 2);
    }

    #[test]
    fn members_that_left_are_forgotten() {
        let gate = FormatGate::default();
        gate.decide(answers(&[(1, Some(2)), (2, Some(1))]), 2, 1);
        gate.decide(answers(&[(1, Some(2))]), 2, 1);
        assert_eq!(gate.reported(2), None);
    }
}
