//! Writes: a command goes through Raft on the leader; a follower forwards it (same request
//! id, so a retry after a lost reply is applied once).

use agenda_shared::command::{ExecuteResult, MAX_COMMAND_BYTES, Request};
use tokio::time::Instant;

use super::propose::Proposed;
use super::{Retry, StoreNode};
use crate::error::StoreError;
use crate::types::{NodeInfo, RaftId};

impl StoreNode {
    /// Propose a command. A follower forwards it to the leader (same request id, so a
    /// retry after a lost reply is applied once); without a leader the caller gets
    /// `Unavailable` and nothing is written locally. Bounded by the write timeout plus one
    /// leader election. A command larger than [`MAX_COMMAND_BYTES`] is refused before it
    /// reaches the log (or a leader), so every entry fits one AppendEntries.
    pub async fn execute(&self, req: Request, forwarded: bool) -> Result<ExecuteResult, StoreError> {
        self.check_running()?;
        if self.disk.space() != crate::disk::Space::Ok {
            return Err(StoreError::NoSpace(self.disk.alarm().unwrap_or_default()));
        }
        if self.transferring.load(std::sync::atomic::Ordering::SeqCst) {
            // Handing leadership over: the caller follows it to the next leader.
            return Err(StoreError::NotLeader);
        }
        let bytes = req.encoded_len();
        if bytes > MAX_COMMAND_BYTES {
            tracing::debug!(
                bytes,
                action = req.command.action(),
                "command refused: too large for the log"
            );
            return Err(StoreError::CommandTooLarge { bytes });
        }
        let deadline = Instant::now() + self.timings.write_timeout() + self.timings.leader_wait();
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let attempt = tokio::time::timeout(
                remaining.min(self.timings.write_timeout()),
                self.proposer.write(req.clone(), bytes),
            )
            .await;
            let err = match attempt {
                Err(_) => {
                    return Err(StoreError::QuorumUnavailable(
                        "the write was not committed in time; retry with the same request id".into(),
                    ));
                }
                Ok(Proposed::Done(result)) => return Ok(result),
                Ok(Proposed::Closed) => return Err(StoreError::ShuttingDown),
                Ok(Proposed::Broken) => {
                    return Err(StoreError::Fatal("command entry applied without its result".into()));
                }
                Ok(Proposed::Raft(e)) => e,
            };
            let Some(fwd) = err.forward_to_leader::<NodeInfo>() else {
                return Err(StoreError::Fatal(err.to_string()));
            };
            let leader = self
                .leader_from_hint(fwd.leader_id, fwd.leader_node.clone(), deadline)
                .await?;
            let Some((leader_id, node)) = leader else { continue };
            if forwarded {
                return Err(StoreError::NotLeader);
            }
            match self.forward_execute(leader_id, &node, &req, deadline).await {
                Err(Retry::Again) => self.wait_leader_change(leader_id, deadline).await?,
                Err(Retry::Fail(e)) => return Err(e),
                Ok(result) => return Ok(result),
            }
        }
    }

    async fn forward_execute(
        &self,
        leader_id: RaftId,
        leader: &NodeInfo,
        req: &Request,
        deadline: Instant,
    ) -> Result<ExecuteResult, Retry> {
        self.forward(leader_id, leader, deadline, |mut client| async move {
            client.execute(req, true).await
        })
        .await
    }
}
