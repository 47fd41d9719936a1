//! The gossip loop: every `GOSSIP_INTERVAL_MS`, apply the failure-detection timers, raise
//! the own heartbeat and exchange the whole table (push-pull) with `GOSSIP_FANOUT` random
//! peers. A peer that does not answer is normal (it may be down): logged at debug level.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::agent::{Agent, Target};
use crate::peers::Peers;
use agenda_shared::rpc::member::Source;

/// Run gossip rounds until `token` is cancelled.
pub(crate) async fn run(agent: Arc<Agent>, peers: Arc<Peers>, token: CancellationToken) {
    let mut ticker = tokio::time::interval(agent.timings.gossip_interval());
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = ticker.tick() => {}
        }
        agent.tick();
        let targets = agent.gossip_targets(agent.timings.gossip_fanout);
        let round = futures::future::join_all(targets.into_iter().map(|t| exchange(&agent, &peers, t)));
        tokio::select! {
            _ = token.cancelled() => break,
            _ = round => {}
        }
    }
}

/// Tell up to `fanout` alive peers that this agent is leaving (its entry is already
/// `left`). Best effort, bounded by the gossip timeout.
pub(crate) async fn announce_leave(agent: &Agent, peers: &Peers) {
    let targets = agent.alive_targets(agent.timings.gossip_fanout);
    let told = targets.len();
    futures::future::join_all(targets.into_iter().map(|t| exchange(agent, peers, t))).await;
    tracing::info!(node = %agent.node_id(), peers = told, "leave announced");
}

/// One push-pull exchange with `target`; merges the answer.
async fn exchange(agent: &Agent, peers: &Peers, target: Target) {
    let me = agent.node_id();
    if agent.faults.blocked(me, target.node.as_deref().unwrap_or_default()) {
        return;
    }
    let mut client = match peers.client(&target.addr) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(addr = %target.addr, error = %e, "bad peer address");
            return;
        }
    };
    let digest = agent.digest();
    let reply = match tokio::time::timeout(agent.timings.gossip_timeout(), client.gossip(digest)).await {
        Ok(Ok(reply)) => reply.into_inner(),
        Ok(Err(status)) => {
            tracing::debug!(addr = %target.addr, code = ?status.code(), message = status.message(), "gossip refused");
            return;
        }
        Err(_) => {
            tracing::debug!(addr = %target.addr, "gossip timed out");
            return;
        }
    };
    if reply.from_node_id == me {
        agent.note_own_addr(&target.addr);
        return;
    }
    // The answer may come from an agent that was isolated since the call started.
    if agent.faults.blocked(&reply.from_node_id, me) {
        return;
    }
    let origin = match target.origin {
        Source::Seed | Source::Dns => target.origin,
        _ => Source::Gossip,
    };
    if let Err(e) = agent.merge_digest(reply, origin) {
        tracing::warn!(addr = %target.addr, error = %e, "invalid gossip answer ignored");
    }
}
