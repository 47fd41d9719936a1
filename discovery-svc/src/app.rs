//! Building and running one discovery agent.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agenda_shared::auth::{Identity, RpcAuth, VerifyLayer};
use agenda_shared::discovery_proto::discovery_server::DiscoveryServer;
use agenda_shared::rpc::serve::{self, ConnLimits};
use agenda_shared::rpc::tls::ClusterTls;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::agent::{Agent, now_ms};
use crate::config::Config;
use crate::dns::{DnsSource, build_resolver};
use crate::gossip;
use crate::peers::Peers;
use crate::persist;
use crate::service::DiscoveryService;
use crate::table::MemberTable;
use agenda_shared::rpc::agent::MAX_MESSAGE;
use agenda_shared::rpc::member::{Member, MemberState, Source};

/// Longest the gRPC server may take to finish in-flight calls at shutdown.
const DRAIN: Duration = Duration::from_secs(3);

/// Why an agent could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The configuration is inconsistent.
    #[error("configuration: {0}")]
    Config(String),
    /// The data folder could not be created.
    #[error("cannot create {}", path.display())]
    DataDir {
        /// The folder.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The member table file could not be read or written.
    #[error("the member table file")]
    Table(#[from] crate::persist::PersistError),
    /// A task of the agent panicked or was cancelled.
    #[error("an agent task failed")]
    Task(#[from] tokio::task::JoinError),
    /// The gRPC listener could not be bound.
    #[error("bind {addr}: {source}")]
    Bind {
        /// Requested address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("grpc server: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// A built agent: table loaded, listener bound, not yet serving nor gossiping.
pub struct App {
    /// The sidecar's root span (see `agenda_shared::telemetry::sidecar_span`).
    span: tracing::Span,
    agent: Arc<Agent>,
    listener: TcpListener,
    local_addr: SocketAddr,
    advertise: String,
    auth: RpcAuth,
    tls: ClusterTls,
    identity: Identity,
    peers: Arc<Peers>,
    dns: Option<DnsSource>,
    data_dir: PathBuf,
    debounce: Duration,
}

impl App {
    /// Validate the configuration, reload `members.json` (raising the own incarnation
    /// above the one saved), bind the gRPC listener and prepare the sources. A DNS
    /// source that cannot be set up is a warning: the agent runs on seeds and gossip.
    pub async fn build(config: Config) -> Result<Self, AppError> {
        let span = agenda_shared::telemetry::sidecar_span("discovery", &config.node_id);
        let mut app = Self::build_inner(config).instrument(span.clone()).await?;
        app.span = span;
        Ok(app)
    }

    async fn build_inner(config: Config) -> Result<Self, AppError> {
        config.validate().map_err(AppError::Config)?;
        let (dir, node) = (config.data_dir.clone(), config.node_id.clone());
        let restored = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir).map_err(|source| AppError::DataDir {
                path: dir.clone(),
                source,
            })?;
            Ok::<_, AppError>(persist::load(&dir, &node)?)
        })
        .await??;

        let listener = TcpListener::bind(config.listen_addr)
            .await
            .map_err(|source| AppError::Bind {
                addr: config.listen_addr,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| AppError::Bind {
            addr: config.listen_addr,
            source,
        })?;
        let advertise = match &config.discovery_advertise {
            Some(a) => a.clone(),
            None if local_addr.ip().is_unspecified() => {
                return Err(AppError::Config(format!(
                    "listening on {local_addr}: set DISCOVERY_ADVERTISE (or HOSTNAME) to an address the others can reach"
                )));
            }
            None => local_addr.to_string(),
        };

        // What the slot's store and API reported before a restart of this agent stays
        // valid until they report again.
        let previous = restored.iter().find(|m| m.node_id == config.node_id);
        let me = Member {
            node_id: config.node_id.clone(),
            slot: config.slot(),
            store_addr: config.store_advertise.clone(),
            api_addr: config.api_advertise.clone(),
            discovery_addr: advertise.clone(),
            store_raft_id: previous.and_then(|p| p.store_raft_id),
            store_pristine: previous.is_some_and(|p| p.store_pristine),
            store_has_cluster: previous.is_some_and(|p| p.store_has_cluster),
            store_cluster_id: previous.and_then(|p| p.store_cluster_id.clone()),
            api_ready: false,
            store_alarms: Vec::new(),
            source: Source::SelfNode,
            last_seen_ms: 0,
            incarnation: 0,
            heartbeat: 0,
            state: MemberState::Alive,
        };
        let restored_count = restored.len();
        let table = MemberTable::new(me, restored, Instant::now(), now_ms());
        let incarnation = table.me().incarnation;

        // Save the raised incarnation before gossiping it, so a crash cannot reuse it.
        let members = table.members(now_ms());
        let (dir, node) = (config.data_dir.clone(), config.node_id.clone());
        tokio::task::spawn_blocking(move || persist::save(&dir, &node, &members, now_ms())).await??;

        let dns = if config.dns.enabled() {
            match build_resolver(&config.dns) {
                Ok(resolver) => Some(DnsSource::new(
                    resolver,
                    config.dns.all_names(config.slot()),
                    config.dns.port.unwrap_or(local_addr.port()),
                    Duration::from_millis(config.dns.interval_ms),
                )),
                Err(e) => {
                    tracing::warn!(error = %e, "DNS source disabled; using seeds and gossip only");
                    None
                }
            }
        } else {
            None
        };

        let auth = RpcAuth::new(config.secret.clone(), config.node_id.clone());
        let peers = Arc::new(Peers::new(
            auth.clone(),
            config.tls.clone(),
            config.timings.gossip_timeout(),
        ));
        let own_addrs = [advertise.clone(), local_addr.to_string()];
        let identity = Identity::new(config.node_id.to_string(), own_addrs.clone());
        let agent = Arc::new(Agent::new(
            table,
            config.seeds.clone(),
            own_addrs,
            config.faults.clone(),
            config.timings.clone(),
        ));
        tracing::info!(
            node = %config.node_id,
            %local_addr,
            %advertise,
            incarnation,
            restored = restored_count,
            seeds = ?config.seeds,
            dns = dns.is_some(),
            "discovery agent built"
        );
        Ok(Self {
            span: tracing::Span::none(),
            agent,
            listener,
            local_addr,
            advertise,
            auth,
            tls: config.tls.clone(),
            identity,
            peers,
            dns,
            data_dir: config.data_dir,
            debounce: Duration::from_millis(config.timings.persist_debounce_ms),
        })
    }

    /// The bound gRPC address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address the other agents use to reach this one.
    pub fn advertise_addr(&self) -> &str {
        &self.advertise
    }

    /// This agent's own entry (its incarnation is already raised for this run).
    pub fn me(&self) -> Member {
        self.agent.me()
    }

    /// The member table as loaded (before [`App::run`] starts gossiping).
    pub fn members(&self) -> Vec<Member> {
        self.agent.snapshot().1
    }

    /// Serve and gossip until `shutdown` is cancelled; then stop the sources, announce
    /// the departure (own entry `left`) to a few alive peers, stop serving, save the table.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), AppError> {
        let span = self.span.clone();
        self.run_inner(shutdown).instrument(span).await
    }

    async fn run_inner(self, shutdown: CancellationToken) -> Result<(), AppError> {
        let App {
            agent,
            listener,
            auth,
            tls,
            identity,
            peers,
            dns,
            data_dir,
            debounce,
            ..
        } = self;
        let tracker = TaskTracker::new();
        let sources = CancellationToken::new();
        let persister = CancellationToken::new();
        let stop_serving = CancellationToken::new();
        let streams_end = CancellationToken::new();

        let service = DiscoveryServer::new(DiscoveryService {
            agent: agent.clone(),
            streams_end: streams_end.clone(),
        })
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
        let stop = stop_serving.clone();
        let incoming = serve::incoming(listener, &tls, ConnLimits::default());
        let server = serve::server_builder()
            .trace_fn({
                let span = tracing::Span::current();
                move |_| span.clone()
            })
            .layer(VerifyLayer::new(auth, identity))
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, async move { stop.cancelled().await });
        let mut server = tokio::spawn(server.in_current_span());

        tracker.spawn(gossip::run(agent.clone(), peers.clone(), sources.clone()).in_current_span());
        if let Some(dns) = dns {
            tracker.spawn(dns.run(agent.clone(), sources.clone()).in_current_span());
        }
        let persist_task =
            tokio::spawn(persist_loop(agent.clone(), data_dir.clone(), debounce, persister.clone()).in_current_span());
        tracker.close();

        let served = tokio::select! {
            _ = shutdown.cancelled() => None,
            res = &mut server => Some(res),
        };

        tracing::info!("discovery stopping: sources off, leaving gossip");
        sources.cancel();
        tracker.wait().await;
        agent.leave();
        if served.is_none() {
            gossip::announce_leave(&agent, &peers).await;
        }

        streams_end.cancel();
        stop_serving.cancel();
        let result = match served {
            Some(res) => flatten(res),
            None => match tokio::time::timeout(DRAIN, &mut server).await {
                Ok(res) => flatten(res),
                Err(_) => {
                    tracing::warn!("drain time exceeded; closing remaining connections");
                    server.abort();
                    Ok(())
                }
            },
        };

        persister.cancel();
        if let Err(e) = persist_task.await {
            tracing::warn!(error = %e, "persistence task failed");
        }
        save(&agent, &data_dir).await;
        tracing::info!("discovery stopped");
        result
    }
}

fn flatten(res: Result<Result<(), tonic::transport::Error>, tokio::task::JoinError>) -> Result<(), AppError> {
    match res {
        Ok(r) => r.map_err(AppError::from),
        Err(e) => Err(AppError::Task(e)),
    }
}

/// Write the table now; a failure is a warning (the file is a cache).
async fn save(agent: &Agent, dir: &std::path::Path) {
    let (_, members) = agent.snapshot();
    let (dir, node) = (dir.to_owned(), agent.node_id().to_owned());
    let result = tokio::task::spawn_blocking(move || persist::save(&dir, &node, &members, now_ms())).await;
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot save the member table"),
        Err(e) => tracing::warn!(error = %e, "cannot save the member table"),
    }
}

/// Save the table after each change, `debounce` after the first change of a burst.
async fn persist_loop(agent: Arc<Agent>, dir: PathBuf, debounce: Duration, token: CancellationToken) {
    let mut changes = agent.subscribe();
    changes.borrow_and_update();
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            changed = changes.changed() => if changed.is_err() { return },
        }
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(debounce) => {}
        }
        changes.borrow_and_update();
        save(&agent, &dir).await;
    }
}
