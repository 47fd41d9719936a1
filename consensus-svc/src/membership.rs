//! Self-organising membership: the store reports itself to its slot's discovery agent,
//! bootstraps the cluster like rqlite's `-bootstrap-expect`, and, on the leader, turns the
//! discovered stores into Raft members.
//!
//! - **Report.** Raft id, whether the store is pristine, whether it has a cluster; sent on
//!   change and periodically (the agent gossips it as part of the slot's entry).
//! - **Bootstrap.** A store without a cluster initialises one only when it is the lowest
//!   slot among at least `BOOTSTRAP_EXPECT` alive, pristine stores and no store reports an
//!   existing cluster. The same configuration works on every restart: a store that already
//!   has a cluster never bootstraps, and a pristine store facing an existing cluster waits
//!   to be added.
//! - **Reconcile (leader only, one change per round).** A discovered store that is not a
//!   member becomes a learner; a caught-up learner replaces the voter of its own slot (a
//!   lost volume means a new incarnation) or becomes a voter while there are fewer than
//!   `TARGET_VOTERS`; a stale learner of a slot that moved on is removed; a dead voter is
//!   removed only when `REAP_AFTER_MS` is set and it has been dead that long.
//! - Role transitions and membership changes are written to the replicated audit trail.

use agenda_shared::command::RecordNodeEvent;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use agenda_shared::auth::RpcAuth;
use agenda_shared::command::{Command, Request};
use agenda_shared::discovery_proto::LocalReport;
use agenda_shared::rpc::agent::{MembersWatcher, connect};
use agenda_shared::rpc::member::{Member, MemberState};
use agenda_shared::rpc::tls::ClusterTls;
use openraft::{ChangeMembers, RaftMetrics, ServerState};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::config::MembershipConfig;
use crate::node::StoreNode;
use crate::types::{NodeInfo, RaftId};

/// A learner counts as caught up within this many entries of the leader's log.
const CATCH_UP_LAG: u64 = 64;
/// Re-send the local report at least this often (the agent may have restarted).
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Run the membership loop until `token` is cancelled.
pub(crate) async fn run(
    node: StoreNode,
    config: MembershipConfig,
    auth: RpcAuth,
    tls: ClusterTls,
    token: CancellationToken,
) {
    let watcher = match MembersWatcher::spawn(&config.discovery_addr, auth.clone(), &tls, token.clone()) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(error = %e, addr = %config.discovery_addr, "cannot follow the discovery agent; membership stays manual");
            return;
        }
    };
    let mut agent = match connect(&config.discovery_addr, auth, &tls) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "cannot reach the discovery agent");
            return;
        }
    };
    let mut members_rx = watcher.subscribe();
    let mut metrics_rx = node.raft.metrics();
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_report: Option<(LocalReport, tokio::time::Instant)> = None;
    let mut last_state = ServerState::Learner;
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = ticker.tick() => {}
            r = members_rx.changed() => if r.is_err() { break },
            r = metrics_rx.changed() => if r.is_err() { break },
        }
        let metrics = metrics_rx.borrow_and_update().clone();
        let members = members_rx.borrow_and_update().clone();

        let report = local_report(&node, &metrics);
        let stale = last_report
            .as_ref()
            .is_none_or(|(r, at)| *r != report || at.elapsed() >= REPORT_EVERY);
        if stale {
            match agent.update_local(report.clone()).await {
                Ok(_) => last_report = Some((report, tokio::time::Instant::now())),
                Err(e) => tracing::warn!(error = %e, "discovery agent did not take the local report"),
            }
        }

        if metrics.state != last_state {
            if metrics.state == ServerState::Leader {
                record(
                    &node,
                    "became_leader",
                    format!("{} is leader at term {}", node.name, metrics.current_term),
                );
            }
            last_state = metrics.state;
        }

        let has_cluster = metrics.membership_config.nodes().next().is_some();
        if !has_cluster {
            bootstrap(&node, &config, &members).await;
        } else if metrics.state == ServerState::Leader {
            reconcile(&node, &config, &members, &metrics).await;
        }
    }
    watcher.stop().await;
}

fn local_report(node: &StoreNode, metrics: &RaftMetrics<RaftId, NodeInfo>) -> LocalReport {
    let has_cluster = metrics.membership_config.nodes().next().is_some();
    LocalReport {
        store_raft_id: Some(node.raft_id),
        store_pristine: Some(!has_cluster && metrics.last_log_index.is_none()),
        store_has_cluster: Some(has_cluster),
        store_alarms: Some(node.alarm_names().join(",")),
        ..Default::default()
    }
}

/// Write a node event to the audit trail, in the background (it needs a quorum).
fn record(node: &StoreNode, event: &str, detail: String) {
    let node = node.clone();
    let event = event.to_owned();
    tokio::spawn(
        async move {
            let req = Request {
                request_id: Uuid::now_v7().to_string(),
                request_hash: String::new(),
                actor: None,
                issued_at_ms: now_ms(),
                node: node.name.clone(),
                command: Command::RecordNodeEvent(RecordNodeEvent { event, detail }),
                rules: agenda_shared::command::CURRENT_RULES,
                token_stamp: None,
                limits: None,
            };
            if let Err(e) = node.execute(req, false).await {
                tracing::warn!(error = %e, "node event not recorded");
            }
        }
        .in_current_span(),
    );
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn info_of(m: &Member) -> NodeInfo {
    NodeInfo {
        addr: m.store_addr.clone(),
        node_name: m.node_id.clone(),
    }
}

/// rqlite-style bootstrap: the lowest pristine slot initialises once enough are seen.
async fn bootstrap(node: &StoreNode, config: &MembershipConfig, members: &[Member]) {
    if members
        .iter()
        .any(|m| m.store_has_cluster && m.state != MemberState::Dead)
    {
        // A cluster exists: wait for its leader to add us.
        return;
    }
    let mut candidates: Vec<&Member> = members
        .iter()
        .filter(|m| m.is_alive() && m.store_pristine && m.store_raft_id.is_some())
        .collect();
    if candidates.len() < config.bootstrap_expect.max(1) {
        return;
    }
    candidates.sort_by_key(|m| (m.slot, m.node_id.clone()));
    candidates.truncate(config.target_voters.max(config.bootstrap_expect));
    let Some(lowest) = candidates.first() else { return };
    if lowest.node_id != node.name || lowest.store_raft_id != Some(node.raft_id) {
        return;
    }
    let voters: BTreeMap<RaftId, NodeInfo> = candidates
        .iter()
        .filter_map(|m| m.store_raft_id.map(|id| (id, info_of(m))))
        .collect();
    tracing::info!(voters = ?voters, "bootstrapping the cluster");
    match node.raft.initialize(voters.clone()).await {
        Ok(()) => {
            let names: Vec<&str> = voters.values().map(|n| n.node_name.as_str()).collect();
            record(node, "cluster_initialized", format!("voters: {}", names.join(", ")));
        }
        Err(e) => tracing::warn!(error = %e, "bootstrap refused"),
    }
}

/// One membership step on the leader.
async fn reconcile(
    node: &StoreNode,
    config: &MembershipConfig,
    members: &[Member],
    metrics: &RaftMetrics<RaftId, NodeInfo>,
) {
    let membership = metrics.membership_config.membership();
    if membership.get_joint_config().len() > 1 {
        return; // a change is in flight
    }
    let voters: BTreeSet<RaftId> = membership.voter_ids().collect();
    let nodes: BTreeMap<RaftId, NodeInfo> = membership.nodes().map(|(id, n)| (*id, n.clone())).collect();
    let by_slot: BTreeMap<&str, &Member> = members.iter().map(|m| (m.node_id.as_str(), m)).collect();

    // 1. Discovered stores that are not members become learners.
    for m in members.iter().filter(|m| m.is_alive()) {
        let Some(id) = m.store_raft_id else { continue };
        if nodes.contains_key(&id) {
            continue;
        }
        tracing::info!(node = %m.node_id, raft_id = id, "adding learner");
        match node.raft.add_learner(id, info_of(m), false).await {
            Ok(_) => record(node, "learner_added", format!("{} as raft id {id}", m.node_id)),
            Err(e) => tracing::warn!(error = %e, "add learner"),
        }
        return;
    }

    // 2. Learners: drop stale incarnations, promote the caught-up ones.
    let last = metrics.last_log_index.unwrap_or(0);
    let matched = |id: RaftId| {
        metrics
            .replication
            .as_ref()
            .and_then(|r| r.get(&id).copied().flatten())
            .map(|l| l.index)
            .unwrap_or(0)
    };
    for (id, info) in nodes.iter().filter(|(id, _)| !voters.contains(id)) {
        let current = by_slot.get(info.node_name.as_str()).and_then(|m| m.store_raft_id);
        if current.is_some() && current != Some(*id) {
            tracing::info!(raft_id = id, node = %info.node_name, "removing a stale learner");
            let change = ChangeMembers::RemoveNodes(BTreeSet::from([*id]));
            if let Err(e) = node.raft.change_membership(change, false).await {
                tracing::warn!(error = %e, "remove stale learner");
            }
            return;
        }
        if matched(*id) + CATCH_UP_LAG < last {
            continue;
        }
        let old = voters
            .iter()
            .find(|v| **v != *id && nodes.get(v).is_some_and(|n| n.node_name == info.node_name))
            .copied();
        let (new_voters, event) = match old {
            Some(old) => {
                let mut v = voters.clone();
                v.remove(&old);
                v.insert(*id);
                (v, format!("{}: raft id {old} replaced by {id}", info.node_name))
            }
            None if voters.len() < config.target_voters => {
                let mut v = voters.clone();
                v.insert(*id);
                (v, format!("{} joined as raft id {id}", info.node_name))
            }
            None => continue,
        };
        tracing::info!(%event, "changing voters");
        match node.raft.change_membership(new_voters, false).await {
            Ok(_) => record(
                node,
                if old.is_some() { "voter_replaced" } else { "voter_added" },
                event,
            ),
            Err(e) => tracing::warn!(error = %e, "change membership"),
        }
        return;
    }

    // 3. Opt-in: remove voters that have been dead for REAP_AFTER.
    let Some(reap_after) = config.reap_after else { return };
    let now = now_ms() as u64;
    for v in voters.iter().filter(|v| **v != node.raft_id) {
        let Some(info) = nodes.get(v) else { continue };
        let Some(m) = by_slot.get(info.node_name.as_str()) else {
            continue;
        };
        let dead_long = matches!(m.state, MemberState::Dead | MemberState::Left)
            && now.saturating_sub(m.last_seen_ms) >= reap_after.as_millis() as u64;
        // Never shrink below a majority of the target: reaping is for replacing hosts.
        if dead_long && voters.len() > config.target_voters / 2 + 1 {
            let mut remaining = voters.clone();
            remaining.remove(v);
            let event = format!(
                "{}: raft id {v} removed after {} s dead",
                info.node_name,
                reap_after.as_secs()
            );
            tracing::warn!(%event, "reaping a dead voter");
            match node.raft.change_membership(remaining, false).await {
                Ok(_) => record(node, "voter_removed", event),
                Err(e) => tracing::warn!(error = %e, "reap voter"),
            }
            return;
        }
    }
}
