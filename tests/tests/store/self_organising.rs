//! Slots that organise themselves: each slot is a discovery agent, a store and an API
//! that follow it. The cluster forms with no manual step (from seeds or from a DNS name),
//! the APIs learn the stores from the member table, a slot that lost its volume is
//! replaced, a slot cut off from gossip rejoins, and the whole cluster comes back after
//! all 21 sidecars restart at once.

use agenda_shared::query::{AuditQuery, UserQuery};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agenda_shared::command::{Accepted, ExecuteResult};
use agenda_shared::discovery_proto::MembersRequest;
use agenda_shared::query::{Query, QueryResult};
use agenda_shared::rpc::store::ReadConsistency;
use agenda_tests::api::Client;
use agenda_tests::fleet::{DnsServer, Fleet, agent_addr, test_dns};
use agenda_tests::requests::{register, request};
use agenda_tests::{eventually, test_timings};
use consensus_svc::faults::Faults;
use consensus_svc::node::StoreNode;
use consensus_svc::{App, AppError, Config, MembershipConfig};
use discovery_svc::MemberState;
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;
use uuid::Uuid;

struct Store {
    token: CancellationToken,
    handle: JoinHandle<Result<(), AppError>>,
    node: StoreNode,
}

struct Api {
    token: CancellationToken,
    handle: JoinHandle<Result<(), api_svc::AppError>>,
}

/// N slots: the agents of a [`Fleet`] and one store per slot on `127.0.0.N`.
struct Pods {
    fleet: Fleet,
    faults: Arc<Faults>,
    root: TempDir,
    store_addrs: Vec<SocketAddr>,
    stores: Vec<Option<Store>>,
    api_addrs: Vec<SocketAddr>,
    apis: Vec<Option<Api>>,
    jwt: api_svc::Secret,
}

impl Pods {
    /// Bind the stores, then build the agents (advertising those stores) with `configure`.
    async fn new(n: u32, configure: impl Fn(u32, u16, &mut discovery_svc::Config)) -> Self {
        let mut store_addrs = Vec::new();
        let mut api_addrs = Vec::new();
        for slot in 1..=n {
            // Stores and APIs restart on these addresses: ports no one else is handed.
            let ip = Ipv4Addr::new(127, 0, 0, slot as u8);
            for addrs in [&mut store_addrs, &mut api_addrs] {
                addrs.push(SocketAddr::from((ip, agenda_tests::ports::reserve(&[ip]))));
            }
        }
        let addrs = store_addrs.clone();
        let fleet = Fleet::new(n, move |slot, port, cfg| {
            cfg.store_advertise = addrs[slot as usize - 1].to_string();
            configure(slot, port, cfg);
        });
        Self {
            fleet,
            faults: Arc::new(Faults::default()),
            root: TempDir::new().expect("dir"),
            store_addrs,
            stores: (0..n).map(|_| None).collect(),
            api_addrs,
            apis: (0..n).map(|_| None).collect(),
            jwt: api_svc::Secret::new(format!("jwt-{}", Uuid::new_v4().simple())),
        }
    }

    /// Start slot `slot`'s API knowing no store: it must learn them from its agent.
    async fn start_api(&mut self, slot: u32) {
        self.start_api_with(slot, Vec::new()).await;
    }

    /// Start slot `slot`'s API knowing no store, with `fallback` agents
    /// (`DISCOVERY_FALLBACK`) for while its own agent cannot be reached.
    async fn start_api_with(&mut self, slot: u32, fallback: Vec<String>) {
        let config = self.api_config(
            &format!("agenda-{slot}"),
            self.api_addrs[slot as usize - 1],
            slot,
            fallback,
        );
        let api = run_api(config).await;
        self.apis[slot as usize - 1] = Some(api);
    }

    /// The configuration of an API named `node` on `listen` that follows `agent_slot`'s
    /// agent (and `fallback`), with no store address of its own.
    fn api_config(&self, node: &str, listen: SocketAddr, agent_slot: u32, fallback: Vec<String>) -> api_svc::Config {
        let mut config = api_svc::Config::new(
            node.to_owned(),
            Vec::new(),
            self.jwt.clone(),
            self.fleet.secret().clone(),
            agenda_tests::pki::tls(agenda_shared::rpc::tls::Role::Api),
        );
        config.http_listen = listen;
        config.discovery_addr = Some(agent_addr(agent_slot, self.fleet.port()));
        config.discovery_fallback = fallback;
        config.password_cost = api_svc::PasswordCost::insecure_fast_for_tests();
        config
    }

    async fn stop_api(&mut self, slot: u32) {
        if let Some(a) = self.apis[slot as usize - 1].take() {
            a.token.cancel();
            a.handle.await.expect("join").expect("api stopped cleanly");
        }
    }

    fn client(&self, slot: u32) -> Client {
        Client::new(format!("http://{}", self.api_addrs[slot as usize - 1]))
    }

    fn dir(&self, slot: u32) -> PathBuf {
        self.root.path().join(format!("store-{slot}"))
    }

    async fn start_store(&mut self, slot: u32) {
        let config = Config {
            node_name: format!("agenda-{slot}"),
            data_dir: self.dir(slot),
            listen_addr: self.store_addrs[slot as usize - 1],
            advertise_addr: None,
            secret: self.fleet.secret().clone(),
            tls: agenda_tests::pki::tls(agenda_shared::rpc::tls::Role::Store),
            timings: test_timings(),
            faults: self.faults.clone(),
            membership: Some(MembershipConfig {
                discovery_addr: agent_addr(slot, self.fleet.port()),
                bootstrap_expect: 7,
                target_voters: 7,
                reap_after: None,
                interval: Duration::from_millis(200),
            }),
            max_entry_format: consensus_svc::entry::SUPPORTED_FORMAT,
            backups: None,
            min_free_bytes: 16 << 20,
            hand_over_on_stop: true,
        };
        let app = eventually("the store's port is free again", Duration::from_secs(10), || {
            let config = config.clone();
            async move {
                match App::build(config).await {
                    Ok(app) => Some(app),
                    Err(AppError::Bind { .. }) => None,
                    Err(e) => panic!("store {slot}: {e}"),
                }
            }
        })
        .await;
        let node = app.node();
        let token = CancellationToken::new();
        let handle = tokio::spawn(app.run(token.clone()));
        self.stores[slot as usize - 1] = Some(Store { token, handle, node });
    }

    async fn start_all(&mut self) {
        self.fleet.start_all().await;
        for slot in 1..=self.fleet.len() {
            self.start_store(slot).await;
            self.start_api(slot).await;
        }
    }

    async fn stop_store(&mut self, slot: u32) {
        if let Some(s) = self.stores[slot as usize - 1].take() {
            s.token.cancel();
            s.handle.await.expect("join").expect("store stopped cleanly");
        }
    }

    fn node(&self, slot: u32) -> &StoreNode {
        &self.stores[slot as usize - 1].as_ref().expect("running store").node
    }

    /// Wait until the running stores agree on a leader whose membership has `voters`
    /// voters, every running store among them; returns the leader's slot.
    async fn wait_formed(&self, voters: usize) -> u32 {
        let what = format!("one cluster of {voters} voters with every running store in it");
        eventually(&what, Duration::from_secs(60), || async {
            let running: Vec<u32> = (1..=self.fleet.len())
                .filter(|s| self.stores[*s as usize - 1].is_some())
                .collect();
            let statuses: Vec<_> = running.iter().map(|s| (*s, self.node(*s).status())).collect();
            let leader_id = statuses.first()?.1.leader_id?;
            let (leader_slot, leader) = statuses.iter().find(|(_, st)| st.raft_id == leader_id)?;
            let voter_ids: Vec<u64> = leader.members.iter().filter(|m| m.voter).map(|m| m.raft_id).collect();
            let agreed = statuses
                .iter()
                .all(|(_, st)| st.leader_id == Some(leader_id) && voter_ids.contains(&st.raft_id));
            (agreed && voter_ids.len() == voters && leader.role == "leader").then_some(*leader_slot)
        })
        .await
    }

    async fn register(&self, via: u32, name: &str) -> (Uuid, ExecuteResult) {
        let (id, cmd) = register(name);
        let result = self
            .node(via)
            .execute(request(None, cmd), false)
            .await
            .expect("register");
        assert!(
            matches!(result.outcome, Ok(Accepted::User { .. })),
            "{:?}",
            result.outcome
        );
        (id, result)
    }

    async fn has_user(&self, slot: u32, id: Uuid, revision: u64) -> bool {
        let (_, outcome) = self
            .node(slot)
            .query(
                Query::User(UserQuery { user_id: id }),
                None,
                ReadConsistency::MinRevision(revision),
                false,
            )
            .await
            .expect("read");
        matches!(outcome, Ok(QueryResult::User { .. }))
    }

    async fn shutdown(mut self) {
        for slot in 1..=self.fleet.len() {
            self.stop_api(slot).await;
            self.stop_store(slot).await;
        }
        self.fleet.shutdown().await;
    }
}

/// Build and run an API, waiting for its port to be free (it may be a restart).
async fn run_api(config: api_svc::Config) -> Api {
    let node = config.node_id.clone();
    let app = eventually("the API's port is free again", Duration::from_secs(10), || {
        let config = config.clone();
        let node = node.clone();
        async move {
            match api_svc::App::build(config).await {
                Ok(app) => Some(app),
                Err(api_svc::AppError::Bind { .. }) => None,
                Err(e) => panic!("api {node}: {e}"),
            }
        }
    })
    .await;
    let token = CancellationToken::new();
    let handle = tokio::spawn(app.run(token.clone()));
    Api { token, handle }
}

fn seeds(slot: u32, port: u16, n: u32) -> Vec<String> {
    (1..=n).filter(|s| *s != slot).map(|s| agent_addr(s, port)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seven_slots_knowing_only_seeds_form_one_cluster_of_seven_voters() {
    let mut pods = Pods::new(7, |slot, port, cfg| cfg.seeds = seeds(slot, port, 7)).await;
    pods.start_all().await;
    let leader = pods.wait_formed(7).await;
    let (id, result) = pods.register(leader, "formed").await;
    for slot in 1..=7 {
        assert!(pods.has_user(slot, id, result.revision).await);
    }
    // The APIs started with no store address: they learned the stores from their agents.
    pods.client(2).register("through-api").await;
    let token = pods.client(6).login("through-api").await;
    // The cluster page's data: every slot's agent alive and API front ready.
    let client = pods.client(3).with_token(&token);
    eventually(
        "the API reports every slot's sidecars healthy",
        Duration::from_secs(30),
        || async {
            let status = client.get("/api/cluster/status").await;
            let slots = status.json["slots"].as_array()?.clone();
            let healthy = slots.len() == 7
                && slots
                    .iter()
                    .all(|s| s["discovery"] == "alive" && s["api_ready"] == true && s["store_raft_id"].is_u64());
            healthy.then_some(())
        },
    )
    .await;
    // The formation is in the audit trail.
    let (_, outcome) = pods
        .node(leader)
        .query(
            Query::Audit(AuditQuery {
                component: Some("node".into()),
                action: Some("cluster_initialized".into()),
                level: None,
                request_id: None,
                since_ms: None,
                limit: 5,
            }),
            None,
            ReadConsistency::Linearizable,
            false,
        )
        .await
        .expect("audit");
    let Ok(QueryResult::Audit { entries }) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(entries.len(), 1, "bootstrapped exactly once");
    assert_eq!(entries[0].component, "node");
    pods.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seven_slots_knowing_only_a_dns_name_form_one_cluster() {
    let dns = DnsServer::start().await;
    dns.set("tasks.discovery", (1..=7).map(|i| Ipv4Addr::new(127, 0, 0, i)));
    let server = dns.addr();
    let mut pods = Pods::new(7, move |_, _, cfg| {
        cfg.dns = test_dns(server, &["tasks.discovery"], None, 7)
    })
    .await;
    pods.start_all().await;
    pods.wait_formed(7).await;
    pods.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wiped_slot_is_replaced_and_every_acknowledged_write_is_kept() {
    let mut pods = Pods::new(7, |slot, port, cfg| cfg.seeds = seeds(slot, port, 7)).await;
    pods.start_all().await;
    let leader = pods.wait_formed(7).await;
    let victim = if leader == 7 { 6 } else { 7 };
    let mut written = Vec::new();
    for k in 0..5 {
        written.push(pods.register(leader, &format!("before{k}")).await);
    }
    let old_id = pods.node(victim).status().raft_id;
    info!(victim, "--- the slot loses its volume");
    pods.stop_store(victim).await;
    std::fs::remove_dir_all(pods.dir(victim)).expect("wipe");
    pods.start_store(victim).await;
    let new_id = pods.node(victim).status().raft_id;
    assert_ne!(new_id, old_id);
    let leader = pods.wait_formed(7).await;
    let voters: Vec<u64> = pods
        .node(leader)
        .status()
        .members
        .iter()
        .filter(|m| m.voter)
        .map(|m| m.raft_id)
        .collect();
    assert!(voters.contains(&new_id) && !voters.contains(&old_id), "{voters:?}");
    let (late, result) = pods.register(leader, "after").await;
    written.push((late, result));
    for (id, result) in &written {
        assert!(pods.has_user(victim, *id, result.revision).await);
    }
    pods.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slot_cut_off_turns_dead_and_rejoins_after_the_heal() {
    let mut pods = Pods::new(7, |slot, port, cfg| cfg.seeds = seeds(slot, port, 7)).await;
    pods.start_all().await;
    let leader = pods.wait_formed(7).await;
    let victim = if leader == 3 { 4 } else { 3 };
    info!(victim, "--- cut the slot off: its agent and its store");
    pods.fleet.isolate(victim);
    pods.faults.isolate(&format!("agenda-{victim}"));
    let observer = if leader == 1 && victim != 2 { 2 } else { leader };
    eventually("the others see the slot dead", Duration::from_secs(30), || async {
        (pods.fleet.state_of(observer, victim).await == Some(MemberState::Dead)).then_some(())
    })
    .await;
    let (id, result) = pods.register(leader, "while-cut-off").await;
    info!("--- heal");
    pods.fleet.heal(victim);
    pods.faults.heal(&format!("agenda-{victim}"));
    eventually("the slot is alive again", Duration::from_secs(30), || async {
        (pods.fleet.state_of(observer, victim).await == Some(MemberState::Alive)).then_some(())
    })
    .await;
    assert!(pods.has_user(victim, id, result.revision).await, "the store caught up");
    pods.wait_formed(7).await;
    pods.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarting_every_sidecar_at_once_brings_the_same_cluster_back_with_its_data() {
    let mut pods = Pods::new(7, |slot, port, cfg| cfg.seeds = seeds(slot, port, 7)).await;
    pods.start_all().await;
    let leader = pods.wait_formed(7).await;
    let (id, result) = pods.register(leader, "durable").await;
    let before: Vec<u64> = (1..=7).map(|s| pods.node(s).status().raft_id).collect();
    pods.client(4).register("api-user").await;
    info!("--- stop all 21 sidecars, start them again");
    for slot in 1..=7 {
        pods.stop_api(slot).await;
        pods.stop_store(slot).await;
    }
    pods.fleet.stop_all().await;
    pods.start_all().await;
    let leader = pods.wait_formed(7).await;
    let after: Vec<u64> = (1..=7).map(|s| pods.node(s).status().raft_id).collect();
    assert_eq!(before, after, "same incarnations");
    for slot in 1..=7 {
        assert!(pods.has_user(slot, id, result.revision).await);
    }
    pods.register(leader, "after-restart").await;
    for slot in [1, 7] {
        pods.client(slot).login("api-user").await;
    }
    // Every agent sees all seven slots alive again.
    let mut client = pods.fleet.client_as(1, "agenda-1-test");
    let reply = client.members(MembersRequest {}).await.expect("members").into_inner();
    assert_eq!(reply.members.len(), 7);
    pods.shutdown().await;
}

/// The API scales on its own (issue 15): replicas beyond the seven slots have no agent of
/// their own (`discovery-8` does not exist) and no store list; they follow any agent of
/// `DISCOVERY_FALLBACK` (a name resolving to the agents, as `tasks.discovery` in Swarm)
/// and serve. A slot's API restarted while its own agent is down does the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn api_replicas_beyond_the_slots_find_the_stores_through_any_agent() {
    let mut pods = Pods::new(7, |slot, port, cfg| cfg.seeds = seeds(slot, port, 7)).await;
    pods.start_all().await;
    pods.wait_formed(7).await;
    let port = pods.fleet.port();

    // agenda-8: its own agent (127.0.0.8) does not exist; the fallback is a name
    // (`localhost` resolves to slot 1's agent). agenda-9: a list of two agents.
    let mut extras = Vec::new();
    let mut extra_clients = Vec::new();
    for (slot, fallback) in [
        (8_u32, vec![format!("localhost:{port}")]),
        (9, vec![agent_addr(3, port), agent_addr(4, port)]),
    ] {
        let ip = Ipv4Addr::new(127, 0, 0, slot as u8);
        let listen = SocketAddr::from((ip, agenda_tests::ports::reserve(&[ip])));
        let config = pods.api_config(&format!("agenda-{slot}"), listen, slot, fallback);
        assert!(config.store_addrs.is_empty(), "the extra API is given no store");
        extras.push(run_api(config).await);
        extra_clients.push(Client::new(format!("http://{listen}")));
    }
    for (i, client) in extra_clients.iter().enumerate() {
        eventually(
            &format!("extra API {} ready (it found a store and a leader)", i + 8),
            Duration::from_secs(30),
            || async { (client.get("/readyz").await.status == 200).then_some(()) },
        )
        .await;
    }
    // Both serve writes and reads, and their data is the cluster's.
    let (user_id, _) = extra_clients[0].register("extra-api-user").await;
    let token = extra_clients[1].login("extra-api-user").await;
    let me = extra_clients[1].with_token(&token).get("/api/me").await;
    assert_eq!(me.status, 200, "{:?}", me.json);
    assert_eq!(me.json["id"], user_id.to_string());
    let slot_token = pods.client(5).login("extra-api-user").await;
    assert!(!slot_token.is_empty());
    // The extra API shows the seven slots (from the table it follows), none for itself.
    let status = extra_clients[0].with_token(&token).get("/api/cluster/status").await;
    let slots = status.json["slots"].as_array().cloned().unwrap_or_default();
    assert_eq!(slots.len(), 7, "{:?}", status.json);

    // Slot 5's API restarted while slot 5's agent is down: without a fallback it would
    // know no store at all; with one it follows another agent.
    pods.stop_api(5).await;
    pods.fleet.stop(5).await;
    pods.start_api_with(5, vec![agent_addr(6, port)]).await;
    let client = pods.client(5);
    eventually(
        "slot 5's API ready without its own agent",
        Duration::from_secs(30),
        || async { (client.get("/readyz").await.status == 200).then_some(()) },
    )
    .await;
    let token = client.login("extra-api-user").await;
    assert!(!token.is_empty());

    for api in extras {
        api.token.cancel();
        api.handle.await.expect("join").expect("extra api stopped cleanly");
    }
    pods.shutdown().await;
}

/// A store's alarm travels with its slot's entry in the member table: every API exports
/// it in `/metrics` (`agenda_store_alarm`) without asking the stores, and it clears the
/// same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_alarm_reaches_every_apis_metrics_through_discovery() {
    const MIB: u64 = 1 << 20;
    let mut pods = Pods::new(7, |slot, port, cfg| cfg.seeds = seeds(slot, port, 7)).await;
    pods.start_all().await;
    let leader = pods.wait_formed(7).await;
    let full = if leader == 3 { 4 } else { 3 };
    let raised = format!(r#"agenda_store_alarm{{alarm="nospace",slot="agenda-{full}"}} 1"#);
    let cleared = format!(r#"agenda_store_alarm{{alarm="nospace",slot="agenda-{full}"}} 0"#);
    let client = pods.client(6);
    eventually(
        "every slot's alarms exported, none raised",
        Duration::from_secs(30),
        || async {
            let text = client.get("/metrics").await.text;
            let slots = (1..=7)
                .filter(|s| text.contains(&format!(r#"agenda_store_alarm{{alarm="halted",slot="agenda-{s}"}} 0"#)))
                .count();
            (slots == 7 && text.contains(&cleared)).then_some(())
        },
    )
    .await;

    info!(full, "--- the store's volume is nearly full");
    pods.faults.free_space(&format!("agenda-{full}"), Some(MIB));
    for slot in [1, 6] {
        let client = pods.client(slot);
        eventually(
            &format!("API {slot} exports the NOSPACE alarm of store {full}"),
            Duration::from_secs(30),
            || async { client.get("/metrics").await.text.contains(&raised).then_some(()) },
        )
        .await;
    }
    let text = pods.client(1).get("/metrics").await.text;
    assert!(
        !text.contains(&format!(
            r#"agenda_store_alarm{{alarm="nospace",slot="agenda-{leader}"}} 1"#
        )),
        "only the full store has the alarm:\n{text}"
    );

    info!("--- space returns");
    pods.faults.free_space(&format!("agenda-{full}"), None);
    let client = pods.client(1);
    eventually("the alarm clears in /metrics", Duration::from_secs(30), || async {
        client.get("/metrics").await.text.contains(&cleared).then_some(())
    })
    .await;
    pods.shutdown().await;
}
