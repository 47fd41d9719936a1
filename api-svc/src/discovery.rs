//! Following the slot's discovery agent: the store list tracks the member table (this
//! slot's store first, then the others by slot), and the API reports itself ready to
//! the agent so the slot's entry says so.

use std::time::Duration;

use agenda_shared::auth::RpcAuth;
use agenda_shared::discovery_proto::LocalReport;
use agenda_shared::rpc::agent::{MembersWatcher, connect};
use agenda_shared::rpc::member::{Member, MemberState};
use agenda_shared::rpc::tls::ClusterTls;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

/// Re-send the readiness report this often (the agent may have restarted).
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// How the API reaches the discovery agents.
#[derive(Clone)]
pub(crate) struct Discovery {
    /// The slot's own agent: followed when it answers, and told the API is ready.
    pub(crate) addr: String,
    /// Any agent, while the own one cannot be reached (`DISCOVERY_FALLBACK`).
    pub(crate) fallback: Vec<String>,
    pub(crate) secret: agenda_shared::auth::ClusterSecret,
    pub(crate) tls: ClusterTls,
}

/// Store addresses from the member table: this slot's first, then the others by slot.
/// An API without a store in its slot (a replica beyond the slots: `agenda-12`) starts
/// at the store its slot number points to, counting round the table (slot 12 of 7
/// stores starts at the 5th), so that extra APIs spread their reads. Dead and departed
/// members are left out; suspects stay (the pool skips stores that fail anyway).
pub(crate) fn store_addrs(members: &[Member], own_node: &str) -> Vec<String> {
    let mut usable: Vec<&Member> = members
        .iter()
        .filter(|m| matches!(m.state, MemberState::Alive | MemberState::Suspect) && !m.store_addr.is_empty())
        .collect();
    usable.sort_by_key(|m| (m.node_id != own_node, m.slot, m.node_id.clone()));
    let own_store = usable.first().is_some_and(|m| m.node_id == own_node);
    let own_slot = agenda_shared::rpc::member::parse_slot(own_node);
    if !own_store
        && !usable.is_empty()
        && let Some(slot) = own_slot
    {
        let by = (slot as usize - 1) % usable.len();
        usable.rotate_left(by);
    }
    usable.into_iter().map(|m| m.store_addr.clone()).collect()
}

/// Follow the agents until `token` is cancelled.
pub(crate) async fn follow(app: AppState, own_node: String, discovery: Discovery, token: CancellationToken) {
    let Discovery {
        addr,
        fallback,
        secret,
        tls,
    } = discovery;
    // The agent takes reports only from `<NODE_ID>-<suffix>` of its own slot.
    let auth = RpcAuth::new(secret, format!("{own_node}-api"));
    let watcher = match MembersWatcher::spawn_with_fallback(&addr, fallback, auth.clone(), &tls, token.clone()) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(error = %e, %addr, "cannot follow the discovery agent; keeping STORE_ADDRS");
            return;
        }
    };
    let mut agent = match connect(&addr, auth, &tls) {
        Ok(a) => Some(a),
        Err(e) => {
            tracing::warn!(error = %e, "cannot report to the discovery agent");
            None
        }
    };
    let mut members = watcher.subscribe();
    let mut tick = tokio::time::interval(REPORT_EVERY);
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            r = members.changed() => if r.is_err() { break },
            _ = tick.tick() => {
                if let Some(agent) = agent.as_mut() {
                    let report = LocalReport { api_ready: Some(true), ..Default::default() };
                    if let Err(e) = agent.update_local(report).await {
                        tracing::debug!(error = %e, "readiness report not taken");
                    }
                }
                continue;
            }
        }
        let table = members.borrow_and_update().clone();
        let addrs = store_addrs(&table, &own_node);
        if !addrs.is_empty() && addrs != app.pool.addrs() {
            tracing::info!(stores = ?addrs, "store list follows discovery");
            app.pool.set_addrs(addrs);
        }
        app.sidecars.send_replace(table);
    }
    if let Some(agent) = agent.as_mut() {
        let report = LocalReport {
            api_ready: Some(false),
            ..Default::default()
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), agent.update_local(report)).await;
    }
    watcher.stop().await;
}

#[cfg(test)]
mod tests {
    use agenda_shared::rpc::member::Source;

    use super::*;

    fn member(slot: u32, state: MemberState) -> Member {
        Member {
            node_id: format!("agenda-{slot}"),
            slot,
            store_addr: format!("store-{slot}:7000"),
            api_addr: format!("api-{slot}:8080"),
            discovery_addr: format!("discovery-{slot}:7100"),
            store_raft_id: Some(u64::from(slot)),
            store_pristine: false,
            store_has_cluster: true,
            store_cluster_id: None,
            api_ready: true,
            store_alarms: Vec::new(),
            source: Source::Gossip,
            last_seen_ms: 0,
            incarnation: 1,
            heartbeat: 1,
            state,
        }
    }

    #[test]
    fn own_store_first_then_by_slot_without_the_dead() {
        let table = vec![
            member(1, MemberState::Alive),
            member(2, MemberState::Dead),
            member(3, MemberState::Suspect),
            member(4, MemberState::Alive),
            member(5, MemberState::Left),
        ];
        assert_eq!(
            store_addrs(&table, "agenda-4"),
            vec!["store-4:7000", "store-1:7000", "store-3:7000"]
        );
        assert!(store_addrs(&[], "agenda-1").is_empty());
    }

    #[test]
    fn an_api_beyond_the_slots_starts_at_the_store_its_slot_points_to() {
        let table: Vec<Member> = (1..=7).map(|s| member(s, MemberState::Alive)).collect();
        let order = store_addrs(&table, "agenda-12");
        assert_eq!(order.len(), 7, "every store kept: {order:?}");
        assert_eq!(order[0], "store-5:7000");
        assert_eq!(order[1], "store-6:7000");
        assert_eq!(store_addrs(&table, "agenda-8")[0], "store-1:7000");
        assert_eq!(store_addrs(&table, "agenda-14")[0], "store-7:7000");
        // A slot that has a store keeps it first.
        assert_eq!(store_addrs(&table, "agenda-3")[..2], ["store-3:7000", "store-1:7000"]);
    }
}
