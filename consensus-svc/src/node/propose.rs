//! The leader's proposal queue: commands that arrive while earlier entries are in flight
//! are packed into one Raft entry ([`crate::entry::FORMAT_BATCH`]).
//!
//! openraft 0.9's leader handles one client write per pass through its core, and every
//! store applies one entry per SQLite statement group: with many writers, most of a
//! write's cost is per entry, not per command. The queue keeps at most [`IN_FLIGHT`]
//! entries proposed and not yet applied (an entry gives up its place after
//! [`SLOT_HOLD`]); whatever arrives meanwhile goes into the next entry (bounded by [`MAX_BATCH`] commands and [`BATCH_BYTES`]). A lone command is sent
//! as a format-1 entry. While the cluster format ([`crate::version`]) is below 2 every
//! command is its own format-1 entry, as before batching existed.
//!
//! Each command keeps its own outcome: apply runs them in order, each in its own
//! savepoint with its own idempotency record ([`crate::state`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use agenda_shared::command::{ExecuteResult, MAX_COMMAND_BYTES, Request};
use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::entry::{FORMAT_BATCH, Proposal};
use crate::types::{NodeInfo, Raft, RaftId};
use crate::version::FormatGate;

/// Batch entries proposed and not yet answered, at most.
pub const IN_FLIGHT: usize = 2;
/// Commands in one entry, at most.
pub const MAX_BATCH: usize = 256;
/// Longest one entry holds its in-flight slot: an entry that takes longer to commit (a
/// leader that just lost its quorum, a follower catching up) must not hold up the entries
/// behind it; it still answers its callers when it ends.
pub const SLOT_HOLD: std::time::Duration = std::time::Duration::from_millis(500);
/// JSON bytes of the commands of one entry, at most: one entry never outgrows the largest
/// single command, so it fits an AppendEntries as a single command does.
pub const BATCH_BYTES: usize = MAX_COMMAND_BYTES;

/// What a client write of openraft fails with.
pub(crate) type WriteError = RaftError<RaftId, ClientWriteError<RaftId, NodeInfo>>;

/// How a proposal ended.
pub(crate) enum Proposed {
    /// Committed and applied: the command's result.
    Done(ExecuteResult),
    /// Raft refused or failed it (not the leader, shutting down).
    Raft(WriteError),
    /// The queue stopped (the store is stopping).
    Closed,
    /// The entry applied without one result per command (a bug).
    Broken,
}

struct Pending {
    req: Request,
    bytes: usize,
    reply: oneshot::Sender<Proposed>,
}

/// Counters of what the queue proposed.
#[derive(Debug, Default)]
pub struct ProposalStats {
    /// Entries holding more than one command.
    pub batches: AtomicU64,
    /// Commands sent in those entries.
    pub batched_commands: AtomicU64,
    /// Entries holding one command.
    pub singles: AtomicU64,
}

/// The sending side, held by the node.
#[derive(Clone)]
pub(crate) struct Proposer {
    tx: mpsc::UnboundedSender<Pending>,
    pub(crate) stats: Arc<ProposalStats>,
}

/// The receiving side, run by [`ProposalQueue::run`] once the store serves.
pub(crate) struct ProposalQueue {
    rx: mpsc::UnboundedReceiver<Pending>,
    stats: Arc<ProposalStats>,
}

pub(crate) fn queue() -> (Proposer, ProposalQueue) {
    let (tx, rx) = mpsc::unbounded_channel();
    let stats = Arc::new(ProposalStats::default());
    (
        Proposer {
            tx,
            stats: stats.clone(),
        },
        ProposalQueue { rx, stats },
    )
}

impl Proposer {
    /// Propose `req` (of `bytes` JSON bytes) and wait for its result.
    pub(crate) async fn write(&self, req: Request, bytes: usize) -> Proposed {
        let (reply, answer) = oneshot::channel();
        if self.tx.send(Pending { req, bytes, reply }).is_err() {
            return Proposed::Closed;
        }
        answer.await.unwrap_or(Proposed::Closed)
    }
}

impl ProposalQueue {
    /// Propose what arrives until `stop`; then every waiting caller hears `Closed`.
    pub(crate) async fn run(mut self, raft: Raft, gate: Arc<FormatGate>, stop: CancellationToken) {
        let slots = Arc::new(Semaphore::new(IN_FLIGHT));
        let mut carried: Option<Pending> = None;
        loop {
            let first = match carried.take() {
                Some(p) => p,
                None => tokio::select! {
                    () = stop.cancelled() => return,
                    next = self.rx.recv() => match next {
                        Some(p) => p,
                        None => return,
                    },
                },
            };
            if gate.writing() < FORMAT_BATCH {
                self.stats.singles.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(propose(raft.clone(), vec![first], None).in_current_span());
                continue;
            }
            // Wait for a slot: what arrives meanwhile joins this entry.
            let permit = tokio::select! {
                () = stop.cancelled() => return,
                permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            };
            let mut bytes = first.bytes;
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                let Ok(next) = self.rx.try_recv() else { break };
                if next.reply.is_closed() {
                    // Its caller gave up (timed out and retries elsewhere with the same
                    // request id): proposing it now would only repeat that retry.
                    continue;
                }
                if bytes + next.bytes > BATCH_BYTES {
                    carried = Some(next);
                    break;
                }
                bytes += next.bytes;
                batch.push(next);
            }
            if batch.len() > 1 {
                self.stats.batches.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .batched_commands
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            } else {
                self.stats.singles.fetch_add(1, Ordering::Relaxed);
            }
            tokio::spawn(propose(raft.clone(), batch, Some(permit)).in_current_span());
        }
    }
}

/// Propose one entry holding `batch` and answer each caller.
async fn propose(raft: Raft, batch: Vec<Pending>, permit: Option<OwnedSemaphorePermit>) {
    let (requests, replies): (Vec<Request>, Vec<oneshot::Sender<Proposed>>) =
        batch.into_iter().map(|p| (p.req, p.reply)).unzip();
    let proposal = if requests.len() == 1 {
        Proposal::Single(requests.into_iter().next().expect("one request"))
    } else {
        Proposal::Batch(requests)
    };
    let write = raft.client_write(proposal);
    tokio::pin!(write);
    let outcome = tokio::select! {
        outcome = &mut write => outcome,
        () = tokio::time::sleep(SLOT_HOLD), if permit.is_some() => {
            drop(permit);
            write.await
        }
    };
    match outcome {
        Ok(resp) if resp.data.0.len() == replies.len() => {
            for (reply, result) in replies.into_iter().zip(resp.data.0) {
                let _ = reply.send(Proposed::Done(result));
            }
        }
        Ok(resp) => {
            // Apply answers one result per request: anything else is a bug, reported to
            // every caller as the store failing rather than as a wrong outcome.
            tracing::error!(
                expected = replies.len(),
                got = resp.data.0.len(),
                "an entry applied with the wrong number of results"
            );
            for reply in replies {
                let _ = reply.send(Proposed::Broken);
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Proposed::Raft(e.clone()));
            }
        }
    }
}
