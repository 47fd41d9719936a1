//! The in-process cluster of stores.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agenda_shared::auth::{ClusterSecret, Receiver, RpcAuth};
use agenda_shared::command::{ExecuteResult, Request};
use agenda_shared::proto::admin_client::AdminClient;
use agenda_shared::proto::store_client::StoreClient as RawStoreClient;
use agenda_shared::proto::{AddLearnerRequest, ChangeMembershipRequest, Consistency, InitializeRequest, Member};
use agenda_shared::query::{Query, QueryOutcome};
use agenda_shared::rpc::channel::{SignedChannel, lazy_channel, signed};
use agenda_shared::rpc::store::{CallError, ReadConsistency, StoreClient};
use agenda_shared::rpc::tls::{ClusterTls, Role};
use agenda_shared::status::StoreStatus;
use consensus_svc::faults::Faults;
use consensus_svc::node::StoreNode;
use consensus_svc::types::{NodeInfo, RaftId};
use consensus_svc::{App, AppError, Config, Timings};
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::eventually;

/// A Store gRPC client that signs its requests (the raw protobuf one: tests also send what
/// the typed client never would).
pub type SignedStoreClient = RawStoreClient<SignedChannel>;

/// Timings for tests: short elections so failovers happen quickly on a loaded 2-core box,
/// but long enough that seven debug-build nodes in one process do not flap.
pub fn test_timings() -> Timings {
    Timings {
        heartbeat_ms: 100,
        election_min_ms: 700,
        election_max_ms: 1400,
        write_timeout_ms: 4000,
        snapshot_every: 10_000,
        keep_logs: 1000,
        connect_timeout_ms: 300,
        drain_ms: 2000,
        max_local_staleness_ms: 2000,
        rpc_body_deadline_ms: 10_000,
    }
}

struct Running {
    token: CancellationToken,
    handle: JoinHandle<Result<(), AppError>>,
    node: StoreNode,
}

struct Slot {
    name: String,
    dir: PathBuf,
    addr: SocketAddr,
    raft_id: RaftId,
    running: Option<Running>,
    /// This store's links, when not the cluster's (a rotated certificate).
    links: Option<ClusterTls>,
    /// The address it advertises, when not its listen address (a relay in front of it).
    advertise: Option<String>,
    /// The newest entry format it applies, when not this version's (an older version).
    max_entry_format: Option<u32>,
}

/// What a client call through the harness can fail with.
#[derive(Debug)]
pub enum ClientError {
    /// The store answered with a gRPC error.
    Status(tonic::Status),
    /// The reply could not be decoded.
    Decode(String),
}

impl From<CallError> for ClientError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Status(s) => ClientError::Status(s),
            CallError::Codec(c) => ClientError::Decode(c.to_string()),
        }
    }
}

impl ClientError {
    /// The gRPC code, if the store answered.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            ClientError::Status(s) => Some(s.code()),
            ClientError::Decode(_) => None,
        }
    }

    /// The error kind the store marked its answer with, if any.
    pub fn kind(&self) -> Option<agenda_shared::rpc::kind::ErrorKind> {
        match self {
            ClientError::Status(s) => agenda_shared::rpc::kind::ErrorKind::of(s),
            ClientError::Decode(_) => None,
        }
    }
}

/// N stores in this process.
pub struct TestCluster {
    secret: ClusterSecret,
    faults: Arc<Faults>,
    timings: Timings,
    /// The stores' links (a store certificate of the test CA, or plain text); the test
    /// clients link the same way.
    links: ClusterTls,
    _root: TempDir,
    slots: Vec<Slot>,
    /// Automatic backups of every store (`every`, `keep`), into `<slot dir>/auto-backups`.
    backups: Option<(Duration, usize)>,
}

impl TestCluster {
    /// Start `n` stores with [`test_timings`] and initialise them as one cluster of `n`
    /// voters; returns once a leader is known everywhere.
    pub async fn start(n: usize) -> Self {
        Self::start_with(n, test_timings()).await
    }

    /// Like [`TestCluster::start`] with custom timings.
    pub async fn start_with(n: usize, timings: Timings) -> Self {
        Self::start_linked(n, timings, crate::pki::tls(Role::Store)).await
    }

    /// Like [`TestCluster::start_with`], every store and test client linking with `links`
    /// (plain text for the tests that put an attacker between a client and a store).
    pub async fn start_linked(n: usize, timings: Timings, links: ClusterTls) -> Self {
        Self::start_full(n, timings, links, None).await
    }

    /// Like [`TestCluster::start`], every store taking automatic backups (when it leads)
    /// every `every`, keeping `keep`, in [`TestCluster::backup_dir`].
    pub async fn start_with_backups(n: usize, every: Duration, keep: usize) -> Self {
        Self::start_full(n, test_timings(), crate::pki::tls(Role::Store), Some((every, keep))).await
    }

    /// Where slot `i` keeps its automatic backups.
    pub fn backup_dir(&self, i: usize) -> PathBuf {
        self.slots[i].dir.join("auto-backups")
    }

    async fn start_full(n: usize, timings: Timings, links: ClusterTls, backups: Option<(Duration, usize)>) -> Self {
        agenda_shared::telemetry::init_for_tests();
        let root = TempDir::new().expect("temp dir");
        let secret = ClusterSecret::new(format!("test-secret-{}", uuid::Uuid::new_v4().simple())).expect("secret");
        let mut cluster = Self {
            secret,
            faults: Arc::new(Faults::default()),
            timings,
            links,
            slots: Vec::new(),
            _root: root,
            backups,
        };
        for i in 0..n {
            let name = format!("agenda-{}", i + 1);
            let dir = cluster._root.path().join(&name);
            cluster.slots.push(Slot {
                name,
                dir,
                // Restarts reuse this port: one outside the ephemeral range stays free.
                addr: SocketAddr::from(([127, 0, 0, 1], crate::ports::reserve(&[Ipv4Addr::LOCALHOST]))),
                raft_id: 0,
                running: None,
                links: None,
                advertise: None,
                max_entry_format: None,
            });
            cluster.launch(i).await;
        }
        let members: BTreeMap<RaftId, NodeInfo> = cluster
            .slots
            .iter()
            .map(|s| {
                (
                    s.raft_id,
                    NodeInfo {
                        addr: s.addr.to_string(),
                        node_name: s.name.clone(),
                    },
                )
            })
            .collect();
        let members = members
            .into_iter()
            .map(|(raft_id, node)| Member {
                raft_id,
                addr: node.addr,
                node_name: node.node_name,
            })
            .collect();
        cluster
            .admin(0)
            .initialize(InitializeRequest { members })
            .await
            .expect("initialize through the Admin RPC");
        cluster.wait_for_leader(&(0..n).collect::<Vec<_>>()).await;
        cluster
    }

    /// One store whose data folder `seed(dir, address)` prepares before it starts (a
    /// restore from a backup); no initialisation: the data says what the cluster is.
    /// Returns once it leads.
    pub async fn start_seeded(seed: impl FnOnce(&std::path::Path, &str)) -> Self {
        agenda_shared::telemetry::init_for_tests();
        let root = TempDir::new().expect("temp dir");
        let secret = ClusterSecret::new(format!("test-secret-{}", uuid::Uuid::new_v4().simple())).expect("secret");
        let name = "agenda-1".to_owned();
        let dir = root.path().join(&name);
        let addr = SocketAddr::from(([127, 0, 0, 1], crate::ports::reserve(&[Ipv4Addr::LOCALHOST])));
        seed(&dir, &addr.to_string());
        let mut cluster = Self {
            secret,
            faults: Arc::new(Faults::default()),
            timings: test_timings(),
            links: crate::pki::tls(Role::Store),
            slots: vec![Slot {
                name,
                dir,
                addr,
                raft_id: 0,
                running: None,
                links: None,
                advertise: None,
                max_entry_format: None,
            }],
            _root: root,
            backups: None,
        };
        cluster.launch(0).await;
        cluster.wait_for_leader(&[0]).await;
        cluster
    }

    async fn launch(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        let config = Config {
            node_name: slot.name.clone(),
            data_dir: slot.dir.clone(),
            listen_addr: slot.addr,
            advertise_addr: slot.advertise.clone(),
            secret: self.secret.clone(),
            tls: slot.links.clone().unwrap_or_else(|| self.links.clone()),
            timings: self.timings.clone(),
            faults: self.faults.clone(),
            membership: None,
            max_entry_format: slot.max_entry_format.unwrap_or(consensus_svc::entry::SUPPORTED_FORMAT),
            min_free_bytes: 16 << 20,
            hand_over_on_stop: true,
            backups: self
                .backups
                .map(|(every, keep)| consensus_svc::backup_schedule::BackupSchedule {
                    every,
                    dir: slot.dir.join("auto-backups"),
                    keep,
                }),
        };
        // Re-binding the same port right after a stop can race the old socket's close.
        let app = {
            let mut attempt = 0;
            loop {
                match App::build(config.clone()).await {
                    Ok(app) => break app,
                    Err(AppError::Bind { .. }) if attempt < 50 => {
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(e) => panic!("store {} failed to start: {e}", slot.name),
                }
            }
        };
        slot.addr = app.grpc_addr();
        slot.raft_id = app.raft_id();
        let node = app.node();
        let token = CancellationToken::new();
        let handle = tokio::spawn(app.run(token.clone()));
        slot.running = Some(Running { token, handle, node });
    }

    /// The stores' timings.
    pub fn timings(&self) -> &Timings {
        &self.timings
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the cluster has no slots.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The shared cluster secret.
    pub fn secret(&self) -> &ClusterSecret {
        &self.secret
    }

    /// Slot name of `i` (`agenda-{i+1}`).
    pub fn name(&self, i: usize) -> &str {
        &self.slots[i].name
    }

    /// gRPC address of `i`.
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.slots[i].addr
    }

    /// Current Raft id of `i`.
    pub fn raft_id(&self, i: usize) -> RaftId {
        self.slots[i].raft_id
    }

    /// Handle on a running store.
    pub fn node(&self, i: usize) -> &StoreNode {
        &self.slots[i]
            .running
            .as_ref()
            .unwrap_or_else(|| panic!("slot {i} is stopped"))
            .node
    }

    /// Whether slot `i` runs.
    pub fn is_running(&self, i: usize) -> bool {
        self.slots[i].running.is_some()
    }

    /// Indexes of running slots.
    pub fn running(&self) -> Vec<usize> {
        (0..self.slots.len()).filter(|&i| self.is_running(i)).collect()
    }

    /// Stop slot `i` gracefully; its data stays.
    pub async fn stop(&mut self, i: usize) {
        let running = self.slots[i].running.take().expect("slot already stopped");
        running.token.cancel();
        let result = tokio::time::timeout(Duration::from_secs(15), running.handle)
            .await
            .expect("store stops within 15 s")
            .expect("store task");
        result.expect("store stopped cleanly");
    }

    /// Start slot `i` again on the same address with the same data.
    pub async fn restart(&mut self, i: usize) {
        assert!(!self.is_running(i), "slot {i} is running");
        self.launch(i).await;
    }

    /// Slot `i` links with `links` from its next start on (a rotated certificate).
    pub fn set_links(&mut self, i: usize, links: ClusterTls) {
        self.slots[i].links = Some(links);
    }

    /// Every store and test client links with `links` from their next start on.
    pub fn set_cluster_links(&mut self, links: ClusterTls) {
        self.links = links;
    }

    /// Slot `i` applies entry formats up to `format` from its next start on (`None`: this
    /// version's newest), as an older version of the store would.
    pub fn set_max_entry_format(&mut self, i: usize, format: Option<u32>) {
        self.slots[i].max_entry_format = format;
    }

    /// Slot `i` advertises `addr` from its next start on (as if its name led there).
    pub fn set_advertise(&mut self, i: usize, addr: Option<String>) {
        self.slots[i].advertise = addr;
    }

    /// Stop slot `i` if running, delete its data and start it again: a new incarnation
    /// (new Raft id) that is not a member of the cluster yet.
    pub async fn wipe(&mut self, i: usize) {
        if self.is_running(i) {
            self.stop(i).await;
        }
        std::fs::remove_dir_all(&self.slots[i].dir).expect("remove data dir");
        self.launch(i).await;
    }

    /// Cut slot `i` off from every other store.
    pub fn isolate(&self, i: usize) {
        self.faults.isolate(&self.slots[i].name);
    }

    /// Reconnect slot `i`.
    pub fn heal(&self, i: usize) {
        self.faults.heal(&self.slots[i].name);
    }

    /// Drop what store `from` sends to store `to` (the other direction still works).
    pub fn cut(&self, from: usize, to: usize) {
        self.faults.cut(&self.slots[from].name, &self.slots[to].name);
    }

    /// Make every fsync of slot `i`'s Raft log take `extra` longer (`ZERO` restores it).
    pub fn slow_disk(&self, i: usize, extra: Duration) {
        self.faults.slow_disk(&self.slots[i].name, extra);
    }

    /// Lift every injected fault: cuts, isolations, freezes and slow disks.
    pub fn heal_all(&self) {
        self.faults.heal_all();
    }

    /// The faults the stores share (the API fronts of an `ApiCluster` use them too).
    pub fn faults(&self) -> Arc<Faults> {
        self.faults.clone()
    }

    /// Slot `i` sees `free` bytes free on its data volume (`None`: the real figure); the
    /// stores of this harness want 16 MiB free.
    pub fn free_space(&self, i: usize, free: Option<u64>) {
        self.faults.free_space(&self.slots[i].name, free);
    }

    /// Freeze slot `i`: what it sends and what is sent to it hangs, as with SIGSTOP.
    pub fn freeze(&self, i: usize) {
        self.faults.freeze(&self.slots[i].name);
    }

    /// Let slot `i` run again.
    pub fn thaw(&self, i: usize) {
        self.faults.thaw(&self.slots[i].name);
    }

    /// Status of a running slot.
    pub fn status(&self, i: usize) -> StoreStatus {
        self.node(i).status()
    }

    /// The leader every running slot in `among` agrees on, if there is one and it is in
    /// `among`.
    fn agreed_leader(&self, among: &[usize]) -> Option<usize> {
        let statuses: Vec<StoreStatus> = among
            .iter()
            .filter(|&&i| self.is_running(i))
            .map(|&i| self.status(i))
            .collect();
        let leader = statuses.first()?.leader_id?;
        if statuses.iter().any(|s| s.leader_id != Some(leader)) {
            return None;
        }
        let slot = among.iter().copied().find(|&i| self.slots[i].raft_id == leader)?;
        (self.is_running(slot) && self.status(slot).role == "leader").then_some(slot)
    }

    /// Wait until every slot in `among` that runs agrees on one leader that is in `among`;
    /// returns the leader's slot index.
    pub async fn wait_for_leader(&self, among: &[usize]) -> usize {
        eventually(
            "a leader agreed on by the given slots",
            Duration::from_secs(30),
            || async { self.agreed_leader(among) },
        )
        .await
    }

    /// Index of the slot the running cluster members currently call leader (waits for
    /// one). Stores that belong to no cluster yet (a wiped slot) are not asked. Who is a
    /// member is read again on every try: a store that was just restarted reports its
    /// membership only once it has loaded its log, and it may be the one elected.
    pub async fn leader(&self) -> usize {
        eventually(
            "a leader agreed on by the cluster's members",
            Duration::from_secs(30),
            || async {
                let members: Vec<usize> = self
                    .running()
                    .into_iter()
                    .filter(|&i| !self.status(i).members.is_empty())
                    .collect();
                self.agreed_leader(&members)
            },
        )
        .await
    }

    /// Wait until every slot in `among` has applied at least `revision`.
    pub async fn wait_applied(&self, among: &[usize], revision: u64) {
        eventually(
            &format!("slots {among:?} applied revision {revision}"),
            Duration::from_secs(30),
            || async {
                among
                    .iter()
                    .all(|&i| self.status(i).applied_index.unwrap_or(0) >= revision)
                    .then_some(())
            },
        )
        .await
    }

    /// A signed Store client to slot `i`.
    pub fn client(&self, i: usize) -> SignedStoreClient {
        self.client_signed_by(i, RpcAuth::new(self.secret.clone(), "test-client"))
    }

    /// A Store client to slot `i` signing with `auth` (e.g. a wrong secret).
    pub fn client_signed_by(&self, i: usize, auth: RpcAuth) -> SignedStoreClient {
        RawStoreClient::new(signed(self.raw_channel(i), auth, &self.receiver(i)))
    }

    /// A typed Store client to slot `i`.
    pub fn store_client(&self, i: usize) -> StoreClient {
        StoreClient::new(signed(
            self.raw_channel(i),
            RpcAuth::new(self.secret.clone(), "test-client"),
            &self.receiver(i),
        ))
    }

    /// A signed Admin client to slot `i`.
    pub fn admin(&self, i: usize) -> AdminClient<SignedChannel> {
        let auth = RpcAuth::new(self.secret.clone(), "test-admin");
        AdminClient::new(signed(self.raw_channel(i), auth, &self.receiver(i)))
    }

    /// Slot `i` as a request's receiver (its address).
    pub fn receiver(&self, i: usize) -> Receiver {
        Receiver::addr(self.slots[i].addr.to_string())
    }

    /// Replace the voter of slot `i` (after [`TestCluster::wipe`]) through the leader's
    /// Admin RPCs: add the new incarnation as a learner, wait until it caught up, then
    /// swap it for the old voter in one membership change.
    pub async fn replace_voter(&self, i: usize, old_raft_id: RaftId) {
        let leader = self.leader().await;
        let mut admin = self.admin(leader);
        admin
            .add_learner(AddLearnerRequest {
                member: Some(Member {
                    raft_id: self.raft_id(i),
                    addr: self.addr(i).to_string(),
                    node_name: self.name(i).to_owned(),
                }),
                blocking: true,
            })
            .await
            .expect("add learner");
        let voters: Vec<RaftId> = self
            .status(leader)
            .members
            .iter()
            .filter(|m| m.voter && m.raft_id != old_raft_id)
            .map(|m| m.raft_id)
            .chain(std::iter::once(self.raft_id(i)))
            .collect();
        admin
            .change_membership(ChangeMembershipRequest { voters, retain: false })
            .await
            .expect("change membership");
    }

    /// An unsigned channel to slot `i` (over TLS with a store certificate of the test CA,
    /// unless the cluster is plain text, so it may call every service; only the HMAC is
    /// missing).
    pub fn raw_channel(&self, i: usize) -> Channel {
        self.channel_with(i, &self.links)
    }

    /// An unsigned channel to slot `i` over `tls` (another role, another CA, plain text).
    pub fn channel_with(&self, i: usize, tls: &ClusterTls) -> Channel {
        lazy_channel(
            &self.slots[i].addr.to_string(),
            tls,
            Role::Store,
            Duration::from_millis(500),
        )
        .expect("channel")
    }

    /// Execute a request through slot `i`'s Store service.
    pub async fn execute(&self, i: usize, req: &Request) -> Result<ExecuteResult, ClientError> {
        Ok(self.store_client(i).execute(req, false).await?)
    }

    /// Query through slot `i` (`min_revision` for `Consistency::MinRevision`).
    pub async fn query(
        &self,
        i: usize,
        query: &Query,
        consistency: Consistency,
        min_revision: u64,
    ) -> Result<(u64, QueryOutcome), ClientError> {
        let consistency = ReadConsistency::from_wire(consistency as i32, min_revision).expect("a known consistency");
        Ok(self.store_client(i).query(query, None, consistency, false).await?)
    }

    /// Canonical dump of slot `i`'s agenda tables.
    pub async fn dump(&self, i: usize) -> String {
        self.node(i).state().canonical_dump().await.expect("dump")
    }

    /// Stop every running slot (tests call it to end cleanly).
    pub async fn shutdown(mut self) {
        for i in self.running() {
            self.stop(i).await;
        }
    }
}
