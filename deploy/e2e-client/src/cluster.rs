//! Cluster-level modes: `wait-healthy`, `leader`, `check-slot`, and the shared helpers
//! that read `GET /api/cluster/status` (which needs a signed-in user: a throwaway probe
//! account is registered per run).

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::json;
use tokio::time::Instant;

use crate::api::{Api, Call};
use crate::report::Report;

/// Pause between two polls.
const POLL: Duration = Duration::from_millis(500);

/// One store as an API front sees it (the fields of `StoreView` we use).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct StoreView {
    pub(crate) addr: String,
    pub(crate) reachable: bool,
    pub(crate) error: Option<String>,
    pub(crate) slot: Option<String>,
    pub(crate) raft_id: Option<u64>,
    pub(crate) role: Option<String>,
    pub(crate) term: Option<u64>,
    pub(crate) applied_index: Option<u64>,
    pub(crate) lag: Option<u64>,
}

/// One Raft member (the fields of `MemberView` we use).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct MemberView {
    pub(crate) raft_id: u64,
    pub(crate) slot: String,
    pub(crate) voter: bool,
}

/// `GET /api/cluster/status`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ClusterView {
    pub(crate) api_node: String,
    pub(crate) leader_id: Option<u64>,
    pub(crate) stores: Vec<StoreView>,
    pub(crate) members: Vec<MemberView>,
}

impl ClusterView {
    /// The leader's store, if some reachable store is the leader.
    pub(crate) fn leader(&self) -> Option<&StoreView> {
        self.stores
            .iter()
            .find(|s| s.reachable && s.role.as_deref() == Some("leader"))
    }

    /// Voter Raft ids.
    pub(crate) fn voters(&self) -> BTreeSet<u64> {
        self.members.iter().filter(|m| m.voter).map(|m| m.raft_id).collect()
    }

    /// One line: leader, voters, and each store's role and applied index.
    pub(crate) fn summary(&self) -> String {
        let stores: Vec<String> = self
            .stores
            .iter()
            .map(|s| match (s.reachable, &s.slot, &s.role) {
                (true, Some(slot), Some(role)) => format!(
                    "{slot}={role}/t{}@{}",
                    s.term.unwrap_or(0),
                    s.applied_index.unwrap_or(0)
                ),
                _ => format!("{}=DOWN({})", s.addr, s.error.as_deref().unwrap_or("?")),
            })
            .collect();
        format!(
            "via {}: leader {:?}, {} voters, stores [{}]",
            self.api_node,
            self.leader_id,
            self.voters().len(),
            stores.join(" ")
        )
    }
}

/// The number in `agenda-3`.
pub(crate) fn slot_number(slot: &str) -> Option<u32> {
    slot.rsplit_once('-').and_then(|(_, n)| n.parse().ok())
}

/// Register a throwaway user (status reads need a token) on any slot.
pub(crate) async fn probe_token(api: &Api, purpose: &str) -> anyhow::Result<String> {
    let name = format!("e2e-{purpose}-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let body = json!({
        "username": name,
        "email": format!("{name}@e2e.invalid"),
        "password": "probe-password-1",
        "display_name": format!("probe ({purpose})"),
    });
    let reply = api
        .call(&Call::post("/register", body), 0)
        .await
        .context("register a probe user")?;
    let session = reply.expect(201).context("register a probe user")?;
    session["token"]
        .as_str()
        .map(str::to_owned)
        .context("register answered no token")
}

/// The cluster status as seen from slot `slot`.
pub(crate) async fn status_from(api: &Api, token: &str, slot: usize, pinned: bool) -> anyhow::Result<ClusterView> {
    let mut call = Call::get("/api/cluster/status").token(token);
    if pinned {
        call = call.pinned();
    }
    let body = api.call(&call, slot).await?.expect(200)?;
    serde_json::from_value(body).context("decode /api/cluster/status")
}

/// `wait-healthy`: every slot ready, then (if `voters > 0`) a full, agreed membership.
pub(crate) async fn wait_healthy(api: &Api, voters: usize, timeout: Duration) -> anyhow::Result<()> {
    let mut report = Report::new("wait-healthy");
    let deadline = Instant::now() + timeout;
    report.phase(&format!("/readyz on {} slots", api.len()));
    let mut ready = vec![false; api.len()];
    let mut last_problem = vec![String::new(); api.len()];
    while ready.iter().any(|r| !r) {
        for (i, done) in ready.iter_mut().enumerate().filter(|(_, r)| !**r) {
            match api.call(&Call::get("/readyz").pinned(), i).await {
                Ok(r) if r.status == 200 => {
                    *done = true;
                    report.ok(&format!("{} ready: {}", api.name(i), r.body));
                }
                Ok(r) => last_problem[i] = format!("status {}", r.status),
                Err(e) => last_problem[i] = e.to_string(),
            }
        }
        if ready.iter().any(|r| !r) {
            if Instant::now() >= deadline {
                let waiting: Vec<String> = ready
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| !**r)
                    .map(|(i, _)| format!("{} ({})", api.name(i), last_problem[i]))
                    .collect();
                bail!("not ready after {timeout:?}: {}", waiting.join(", "));
            }
            tokio::time::sleep(POLL).await;
        }
    }
    if voters == 0 {
        return Ok(());
    }
    report.phase(&format!("waiting for {voters} reachable, caught-up voters"));
    let token = probe_token(api, "health").await?;
    let mut last;
    loop {
        match status_from(api, &token, 0, false).await {
            Ok(view) => {
                let complete = view.leader().is_some()
                    && view.voters().len() == voters
                    && view.stores.len() >= voters
                    && view
                        .stores
                        .iter()
                        .all(|s| s.reachable && s.lag.unwrap_or(u64::MAX) <= 50);
                last = view.summary();
                if complete {
                    report.ok(&format!("cluster formed: {last}"));
                    break;
                }
            }
            Err(e) => last = format!("{e:#}"),
        }
        if Instant::now() >= deadline {
            bail!("the cluster did not form within {timeout:?}; last seen: {last}");
        }
        tokio::time::sleep(POLL).await;
    }
    report.phase("every slot sees the same leader and voters");
    agree(api, &token, deadline, &mut report).await?;
    report.note(&format!(
        "healthy after {:.1}s ({} checks)",
        report.elapsed().as_secs_f64(),
        report.checks()
    ));
    Ok(())
}

/// Poll every slot's view until all agree on the leader and the voters.
pub(crate) async fn agree(api: &Api, token: &str, deadline: Instant, report: &mut Report) -> anyhow::Result<()> {
    loop {
        let mut views = Vec::new();
        let mut problem = None;
        for i in 0..api.len() {
            match status_from(api, token, i, true).await {
                Ok(v) => views.push(v),
                Err(e) => {
                    problem = Some(format!("{}: {e:#}", api.name(i)));
                    break;
                }
            }
        }
        if problem.is_none() {
            let first = &views[0];
            let disagreeing: Vec<String> = views
                .iter()
                .filter(|v| v.leader_id != first.leader_id || v.voters() != first.voters())
                .map(ClusterView::summary)
                .collect();
            if first.leader_id.is_some() && disagreeing.is_empty() {
                report.ok(&format!(
                    "{} slots agree: leader {:?}, voters {:?}",
                    views.len(),
                    first.leader_id,
                    first.voters()
                ));
                return Ok(());
            }
            problem = Some(format!(
                "disagreement with {}: {}",
                first.summary(),
                disagreeing.join(" | ")
            ));
        }
        if Instant::now() >= deadline {
            bail!("slots do not agree: {}", problem.unwrap_or_default());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `leader`: print the leader's slot, Raft id and address for the script to parse.
pub(crate) async fn print_leader(api: &Api, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let token = probe_token(api, "leader").await?;
    let mut last;
    loop {
        match status_from(api, &token, 0, false).await {
            Ok(view) => {
                if let Some(leader) = view.leader()
                    && let Some(slot) = leader.slot.as_deref().and_then(slot_number)
                {
                    eprintln!("{}", view.summary());
                    println!(
                        "leader_slot={slot} leader_raft_id={} leader_addr={}",
                        leader.raft_id.unwrap_or(0),
                        leader.addr
                    );
                    return Ok(());
                }
                last = view.summary();
            }
            Err(e) => last = format!("{e:#}"),
        }
        if Instant::now() >= deadline {
            bail!("no leader within {timeout:?}; last seen: {last}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `watch`: one status line per second for `duration`, from the slots in turn (a slot
/// that fails is reported and the next one is asked).
pub(crate) async fn watch(api: &Api, duration: Duration) -> anyhow::Result<()> {
    let report = Report::new("watch");
    let deadline = Instant::now() + duration;
    let token = probe_token(api, "watch").await?;
    let mut slot = 0;
    while Instant::now() < deadline {
        let tick = Instant::now() + Duration::from_secs(1);
        match status_from(api, &token, slot, true).await {
            Ok(view) => report.note(&view.summary()),
            Err(e) => {
                report.note(&format!("{}: {e:#}", api.name(slot)));
                slot = (slot + 1) % api.len();
            }
        }
        tokio::time::sleep_until(tick).await;
    }
    Ok(())
}

/// `check-slot`: wait until slot `slot`'s store is reachable, a voter, caught up (and has
/// Raft id `raft_id` when given: the same incarnation, i.e. it came back with its volume).
pub(crate) async fn check_slot(api: &Api, slot: u32, raft_id: Option<u64>, timeout: Duration) -> anyhow::Result<()> {
    let mut report = Report::new("check-slot");
    let deadline = Instant::now() + timeout;
    let token = probe_token(api, "slot").await?;
    let name = format!("agenda-{slot}");
    report.phase(&format!(
        "waiting for {name} to be a caught-up voter (raft id {raft_id:?})"
    ));
    let mut last;
    loop {
        match status_from(api, &token, 0, false).await {
            Ok(view) => {
                last = view.summary();
                let store = view
                    .stores
                    .iter()
                    .find(|s| s.reachable && s.slot.as_deref() == Some(name.as_str()));
                if let Some(store) = store {
                    let id = store.raft_id.unwrap_or(0);
                    if let Some(expected) = raft_id
                        && id != expected
                    {
                        bail!(
                            "{name} came back with Raft id {id}, expected {expected} (a new incarnation: its volume was not kept)"
                        );
                    }
                    let voter = view.members.iter().any(|m| m.raft_id == id && m.voter);
                    let caught_up = store.lag.is_some_and(|l| l <= 50);
                    if voter && caught_up && view.leader().is_some() {
                        report.ok(&format!(
                            "{name} is back: raft id {id}, role {}, lag {}",
                            store.role.as_deref().unwrap_or("?"),
                            store.lag.unwrap_or(0)
                        ));
                        println!("slot={slot} raft_id={id} role={}", store.role.as_deref().unwrap_or("?"));
                        return Ok(());
                    }
                }
            }
            Err(e) => last = format!("{e:#}"),
        }
        if Instant::now() >= deadline {
            bail!("{name} did not come back within {timeout:?}; last seen: {last}");
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_numbers_come_from_node_names() {
        assert_eq!(slot_number("agenda-3"), Some(3));
        assert_eq!(slot_number("agenda-x"), None);
    }

    #[test]
    fn the_leader_is_a_reachable_store_in_role_leader() {
        let view: ClusterView = serde_json::from_value(json!({
            "api_node": "agenda-1",
            "leader_id": 9,
            "stores": [
                {"addr": "store-1:7000", "reachable": false, "error": "down"},
                {"addr": "store-2:7000", "reachable": true, "slot": "agenda-2", "raft_id": 9,
                 "role": "leader", "applied_index": 40, "lag": 0},
            ],
            "members": [{"raft_id": 9, "slot": "agenda-2", "voter": true, "addr": "store-2:7000"}],
        }))
        .unwrap();
        assert_eq!(view.leader().unwrap().addr, "store-2:7000");
        assert_eq!(view.voters().len(), 1);
        assert!(view.summary().contains("store-1:7000=DOWN"));
    }
}
