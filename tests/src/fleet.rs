//! A fleet of in-process discovery agents and a tiny authoritative DNS server on loopback,
//! for the discovery suites and the self-organising store suite.
//!
//! Address scheme: agent `agenda-N` listens on `127.0.0.N:P`, with the same port `P` for
//! every agent (the whole 127.0.0.0/8 range is loopback on Linux). That is exactly the
//! production shape — Docker answers `tasks.discovery` with one A record per task and
//! every agent listens on the same port — so the DNS server only needs A records:
//! `tasks.discovery` → `127.0.0.1..=N`, `discovery-N` → `127.0.0.N`.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::eventually;
use agenda_shared::auth::{ClusterSecret, RpcAuth};
use agenda_shared::discovery_proto::MembersRequest;
use agenda_shared::rpc::agent::{SignedDiscoveryClient, connect, members_of};
use agenda_shared::rpc::tls::Role;
use discovery_svc::faults::Faults;
use discovery_svc::{App, AppError, Config, DnsConfig, Member, MemberState, Timings};
use hickory_resolver::proto::op::{Message, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, SOA};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use tempfile::TempDir;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// TTL of every answer, as Docker's embedded DNS gives (the agents cap it).
pub const DOCKER_TTL: u32 = 600;

/// Short timings so suspicion and death happen within a test, yet loose enough for
/// seven debug-build agents sharing two cores with other tests.
pub fn test_timings() -> Timings {
    Timings {
        gossip_interval_ms: 200,
        gossip_fanout: 3,
        suspect_after_ms: 1500,
        dead_after_ms: 4000,
        gossip_timeout_ms: 500,
        persist_debounce_ms: 50,
    }
}

/// DNS settings for tests: resolve often, cache briefly.
pub fn test_dns(server: SocketAddr, names: &[&str], slot_template: Option<&str>, size: u32) -> DnsConfig {
    DnsConfig {
        names: names.iter().map(|n| (*n).to_owned()).collect(),
        slot_name_template: slot_template.map(str::to_owned),
        cluster_size: size,
        port: None,
        server: Some(server),
        max_ttl_ms: 500,
        interval_ms: 200,
        timeout_ms: 500,
    }
}

/// A minimal authoritative DNS server over UDP: A records from a mutable map, NXDOMAIN
/// (with an SOA whose negative TTL is Docker's 600 s) for unknown names, empty answers
/// for other record types.
pub struct DnsServer {
    addr: SocketAddr,
    records: Arc<Mutex<HashMap<String, Vec<Ipv4Addr>>>>,
    task: JoinHandle<()>,
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl DnsServer {
    /// Bind 127.0.0.1:0 and serve until dropped.
    pub async fn start() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind dns");
        let addr = socket.local_addr().expect("dns addr");
        let records: Arc<Mutex<HashMap<String, Vec<Ipv4Addr>>>> = Arc::default();
        let table = records.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    continue;
                };
                let Ok(request) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let reply = answer(&request, &table.lock().expect("records").clone());
                if let Ok(bytes) = reply.to_vec() {
                    let _ = socket.send_to(&bytes, from).await;
                }
            }
        });
        Self { addr, records, task }
    }

    /// The server's address (for `DnsConfig::server`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answer `name` with these A records (an empty list means NXDOMAIN).
    pub fn set(&self, name: &str, ips: impl IntoIterator<Item = Ipv4Addr>) {
        let ips: Vec<Ipv4Addr> = ips.into_iter().collect();
        let mut records = self.records.lock().expect("records");
        if ips.is_empty() {
            records.remove(&key(name));
        } else {
            records.insert(key(name), ips);
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn answer(request: &Message, records: &HashMap<String, Vec<Ipv4Addr>>) -> Message {
    let mut reply = Message::response(request.metadata.id, request.metadata.op_code);
    reply.metadata.authoritative = true;
    reply.metadata.recursion_desired = request.metadata.recursion_desired;
    reply.queries = request.queries.clone();
    for query in &request.queries {
        match records.get(&key(&query.name().to_ascii())) {
            Some(ips) => {
                if query.query_type() == RecordType::A {
                    for ip in ips {
                        reply.add_answer(Record::from_rdata(query.name().clone(), DOCKER_TTL, RData::A(A(*ip))));
                    }
                }
            }
            None => reply.metadata.response_code = ResponseCode::NXDomain,
        }
        if reply.answers.is_empty() {
            let zone = Name::from_str("test.").expect("zone");
            let soa = SOA::new(zone.clone(), zone.clone(), 1, 600, 600, 600, DOCKER_TTL);
            reply.add_authority(Record::from_rdata(zone, DOCKER_TTL, RData::SOA(soa)));
        }
    }
    reply
}

struct Running {
    token: CancellationToken,
    handle: JoinHandle<Result<(), AppError>>,
}

struct Slot {
    config: Config,
    running: Option<Running>,
}

/// N discovery agents in this process, `agenda-N` on `127.0.0.N:port`.
pub struct Fleet {
    secret: ClusterSecret,
    faults: Arc<Faults>,
    port: u16,
    _root: TempDir,
    slots: Vec<Slot>,
}

/// A port free on 127.0.0.1..=127.0.0.n, outside the ephemeral range (see [`crate::ports`]).
fn common_port(n: u32) -> u16 {
    crate::ports::reserve(&crate::ports::slots(n))
}

/// The address of slot `slot`'s agent.
pub fn agent_addr(slot: u32, port: u16) -> String {
    format!("127.0.0.{slot}:{port}")
}

impl Fleet {
    /// Build `n` agents (not started); `configure` adjusts each slot's config.
    pub fn new(n: u32, configure: impl Fn(u32, u16, &mut Config)) -> Self {
        agenda_shared::telemetry::init_for_tests();
        let root = TempDir::new().expect("temp dir");
        let secret =
            ClusterSecret::new(format!("discovery-test-secret-{}", uuid::Uuid::new_v4().simple())).expect("secret");
        let faults = Arc::new(Faults::default());
        let port = common_port(n);
        let slots = (1..=n)
            .map(|slot| {
                let mut config = Config {
                    node_id: format!("agenda-{slot}"),
                    data_dir: root.path().join(format!("agenda-{slot}")),
                    listen_addr: SocketAddr::from((Ipv4Addr::new(127, 0, 0, slot as u8), port)),
                    discovery_advertise: None,
                    store_advertise: format!("127.0.0.{slot}:7000"),
                    api_advertise: format!("127.0.0.{slot}:8080"),
                    secret: secret.clone(),
                    tls: crate::pki::tls(Role::Discovery),
                    seeds: Vec::new(),
                    dns: DnsConfig::default(),
                    timings: test_timings(),
                    faults: faults.clone(),
                };
                configure(slot, port, &mut config);
                Slot { config, running: None }
            })
            .collect();
        Self {
            secret,
            faults,
            port,
            _root: root,
            slots,
        }
    }

    /// The common listen port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Number of slots.
    pub fn len(&self) -> u32 {
        self.slots.len() as u32
    }

    /// Whether the fleet has no agents.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cluster secret.
    pub fn secret(&self) -> &ClusterSecret {
        &self.secret
    }

    /// Slot `slot`'s data folder.
    pub fn data_dir(&self, slot: u32) -> PathBuf {
        self.slot(slot).config.data_dir.clone()
    }

    fn slot(&self, slot: u32) -> &Slot {
        &self.slots[slot as usize - 1]
    }

    fn slot_mut(&mut self, slot: u32) -> &mut Slot {
        &mut self.slots[slot as usize - 1]
    }

    /// Change slot `slot`'s configuration for its next start.
    pub fn reconfigure(&mut self, slot: u32, change: impl FnOnce(&mut Config)) {
        change(&mut self.slot_mut(slot).config);
    }

    /// Build slot `slot`'s agent and return it, not running yet.
    pub async fn build(&self, slot: u32) -> App {
        App::build(self.slot(slot).config.clone()).await.expect("build agent")
    }

    /// Run an agent built by [`Fleet::build`].
    pub fn run(&mut self, slot: u32, app: App) {
        let token = CancellationToken::new();
        let handle = tokio::spawn(app.run(token.clone()));
        self.slot_mut(slot).running = Some(Running { token, handle });
    }

    /// Build and run slot `slot`.
    pub async fn start(&mut self, slot: u32) {
        let app = self.build(slot).await;
        self.run(slot, app);
    }

    /// Build and run every slot.
    pub async fn start_all(&mut self) {
        for slot in 1..=self.len() {
            self.start(slot).await;
        }
    }

    /// Stop slot `slot` gracefully (it announces it leaves and saves its table).
    pub async fn stop(&mut self, slot: u32) {
        if let Some(r) = self.slot_mut(slot).running.take() {
            r.token.cancel();
            r.handle.await.expect("join").expect("agent stopped cleanly");
        }
    }

    /// Stop every slot at once.
    pub async fn stop_all(&mut self) {
        let running: Vec<Running> = self.slots.iter_mut().filter_map(|s| s.running.take()).collect();
        for r in &running {
            r.token.cancel();
        }
        for r in running {
            r.handle.await.expect("join").expect("agent stopped cleanly");
        }
    }

    /// Cut slot `slot` off from gossip.
    pub fn isolate(&self, slot: u32) {
        self.faults.isolate(&format!("agenda-{slot}"));
    }

    /// Reconnect slot `slot`.
    pub fn heal(&self, slot: u32) {
        self.faults.heal(&format!("agenda-{slot}"));
    }

    /// A client of slot `slot`'s agent signed as `as_node`, linked with a certificate of
    /// the role the name implies (`…-store`, `…-api`, else an agent).
    pub fn client_as(&self, slot: u32, as_node: &str) -> SignedDiscoveryClient {
        let role = if as_node.ends_with("-store") {
            Role::Store
        } else if as_node.ends_with("-api") || as_node.ends_with("-test") {
            Role::Api
        } else {
            Role::Discovery
        };
        connect(
            &agent_addr(slot, self.port),
            RpcAuth::new(self.secret.clone(), as_node.to_owned()),
            &crate::pki::tls(role),
        )
        .expect("client")
    }

    /// Slot `slot`'s member table (signed `Members` call), or `None` if it does not answer.
    pub async fn members(&self, slot: u32) -> Option<Vec<Member>> {
        let mut client = self.client_as(slot, &format!("agenda-{slot}-test"));
        let reply = tokio::time::timeout(Duration::from_secs(2), client.members(MembersRequest {}))
            .await
            .ok()?
            .ok()?;
        Some(members_of(reply.into_inner()))
    }

    /// Wait until every slot in `observers` sees exactly `expected` node ids, all alive.
    pub async fn wait_all_alive(&self, observers: &[u32], expected: u32, deadline: Duration) -> Vec<Vec<Member>> {
        let what = format!("agents {observers:?} see {expected} alive members");
        eventually(&what, deadline, || async {
            let mut tables = Vec::new();
            for slot in observers {
                let table = self.members(*slot).await?;
                let ok = table.len() == expected as usize && table.iter().all(|m| m.state == MemberState::Alive);
                if !ok {
                    return None;
                }
                tables.push(table);
            }
            Some(tables)
        })
        .await
    }

    /// The state of `node` in slot `observer`'s table.
    pub async fn state_of(&self, observer: u32, node: u32) -> Option<MemberState> {
        let id = format!("agenda-{node}");
        self.members(observer)
            .await?
            .into_iter()
            .find(|m| m.node_id == id)
            .map(|m| m.state)
    }

    /// Stop everything.
    pub async fn shutdown(mut self) {
        self.stop_all().await;
    }
}

/// Every slot from 1 to `n`.
pub fn all(n: u32) -> Vec<u32> {
    (1..=n).collect()
}
