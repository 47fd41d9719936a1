//! Building and running one store.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use agenda_shared::auth::{Identity, RpcAuth, VerifyLayer};
use agenda_shared::proto::admin_server::AdminServer;
use agenda_shared::proto::raft_server::RaftServer;
use agenda_shared::proto::store_server::StoreServer;
use agenda_shared::rpc::serve::{self, ConnLimits};
use agenda_shared::rpc::tls::ClusterTls;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::Config;
use crate::config::MembershipConfig;
use crate::grpc::admin::AdminService;
use crate::grpc::raft::RaftService;
use crate::grpc::store::StoreService;
use crate::log_store::LogStore;
use crate::network::Network;
use crate::node::{ProposalQueue, StoreNode};
use crate::peers::Peers;
use crate::state::StateStore;
use crate::types::{Raft, RaftId};
use agenda_shared::rpc::store::MAX_MESSAGE;

/// Why a store could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The configuration is inconsistent.
    #[error("configuration: {0}")]
    Config(String),
    /// A database or the data folder could not be opened or migrated.
    #[error("storage: cannot open {what}")]
    Storage {
        /// What could not be opened.
        what: String,
        /// Cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The gRPC listener could not be bound.
    #[error("bind {addr}: {source}")]
    Bind {
        /// Requested address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// Raft could not start.
    #[error("raft could not start")]
    Raft(#[source] openraft::error::Fatal<crate::types::RaftId>),
    /// A task of the store panicked or was cancelled.
    #[error("a store task failed")]
    Task(#[from] tokio::task::JoinError),
    /// The gRPC server failed.
    #[error("grpc server: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// A built store, listening but not yet serving.
pub struct App {
    /// The sidecar's root span (see `agenda_shared::telemetry::sidecar_span`).
    span: tracing::Span,
    node: StoreNode,
    listener: TcpListener,
    grpc_addr: SocketAddr,
    advertise_addr: String,
    auth: RpcAuth,
    tls: ClusterTls,
    identity: Identity,
    body_deadline: Duration,
    pristine: bool,
    drain: Duration,
    internal: CancellationToken,
    membership: Option<(MembershipConfig, RpcAuth)>,
    proposals: ProposalQueue,
    backups: Option<crate::backup_schedule::BackupSchedule>,
    hand_over_on_stop: bool,
}

impl App {
    /// Open the databases, start Raft and bind the gRPC listener.
    pub async fn build(config: Config) -> Result<Self, AppError> {
        let span = agenda_shared::telemetry::sidecar_span("store", &config.node_name);
        let mut app = Self::build_inner(config).instrument(span.clone()).await?;
        app.span = span;
        Ok(app)
    }

    async fn build_inner(config: Config) -> Result<Self, AppError> {
        config.timings.validate().map_err(AppError::Config)?;
        let raft_config = Arc::new(
            config
                .timings
                .raft_config()
                .map_err(|e| AppError::Config(e.to_string()))?,
        );
        let storage = |what: &str| {
            let what = what.to_owned();
            move |e: Box<dyn std::error::Error + Send + Sync>| AppError::Storage { what, source: e }
        };
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| storage(&config.data_dir.display().to_string())(e.into()))?;

        let dir = config.data_dir.clone();
        let (faults, node_name) = (config.faults.clone(), config.node_name.to_string());
        let (log, state, raft_id, pristine) = tokio::task::spawn_blocking(move || {
            let log =
                LogStore::open_with_faults(&dir, Some((faults, node_name))).map_err(|e| storage("log.db")(e.into()))?;
            let raft_id = log.node_id().map_err(|e| storage("log.db (raft id)")(e.into()))?;
            let pristine = log.is_pristine().map_err(|e| storage("log.db")(e.into()))?;
            let state = StateStore::open(&dir).map_err(|e| storage("state.db")(e.into()))?;
            Ok::<_, AppError>((log, state, raft_id, pristine))
        })
        .await??;

        let listener = TcpListener::bind(config.listen_addr)
            .await
            .map_err(|source| AppError::Bind {
                addr: config.listen_addr,
                source,
            })?;
        let grpc_addr = listener.local_addr().map_err(|source| AppError::Bind {
            addr: config.listen_addr,
            source,
        })?;
        let advertise_addr = config.advertise_addr.clone().unwrap_or_else(|| grpc_addr.to_string());

        let auth = RpcAuth::new(config.secret.clone(), config.node_name.clone());
        let peers = Peers::new(
            auth.clone(),
            config.tls.clone(),
            Duration::from_millis(config.timings.connect_timeout_ms),
        );
        let network = Network {
            peers: peers.clone(),
            faults: config.faults.clone(),
            self_name: config.node_name.clone(),
            retry: Duration::from_millis(config.timings.heartbeat_ms),
        };
        let raft = Raft::new(raft_id, raft_config, network, log.clone(), state.clone())
            .await
            .map_err(AppError::Raft)?;
        tracing::info!(raft_id, %grpc_addr, %advertise_addr, pristine, "store built");

        // The agent only takes reports signed as `<NODE_ID>-<suffix>` of its own slot.
        let membership = config.membership.clone().map(|m| {
            (
                m,
                RpcAuth::new(config.secret.clone(), format!("{}-store", config.node_name)),
            )
        });
        let internal = CancellationToken::new();
        state.set_max_entry_format(config.max_entry_format);
        let (proposer, proposals) = crate::node::propose_queue();
        let node = StoreNode {
            raft,
            state,
            peers,
            faults: config.faults.clone(),
            name: config.node_name.clone(),
            raft_id,
            timings: config.timings.clone(),
            shutdown: internal.clone(),
            reads: Default::default(),
            freshness: Default::default(),
            contact: Default::default(),
            log,
            proposer,
            gate: Default::default(),
            backups_taken: Default::default(),
            transferring: Default::default(),
            disk: Arc::new(crate::disk::DiskGuard::new(
                config.data_dir.clone(),
                config.min_free_bytes,
            )),
        };
        // Requests are accepted when signed for this store: its advertised or listen
        // address (or the address a connection arrives at), its slot, this incarnation.
        let identity = Identity::new(
            config.node_name.to_string(),
            [advertise_addr.clone(), grpc_addr.to_string()],
        )
        .with_raft(raft_id);
        Ok(Self {
            span: tracing::Span::none(),
            node,
            listener,
            grpc_addr,
            advertise_addr,
            auth,
            tls: config.tls.clone(),
            identity,
            body_deadline: Duration::from_millis(config.timings.rpc_body_deadline_ms),
            pristine,
            drain: Duration::from_millis(config.timings.drain_ms),
            internal,
            membership,
            proposals,
            backups: config.backups.clone(),
            hand_over_on_stop: config.hand_over_on_stop,
        })
    }

    /// The bound gRPC address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// The address other stores should use.
    pub fn advertise_addr(&self) -> &str {
        &self.advertise_addr
    }

    /// This incarnation's Raft id.
    pub fn raft_id(&self) -> RaftId {
        self.node.raft_id
    }

    /// Whether the store had no Raft state when it started.
    pub fn was_pristine(&self) -> bool {
        self.pristine
    }

    /// A handle on the running node (Raft, state machine, request logic).
    pub fn node(&self) -> StoreNode {
        self.node.clone()
    }

    /// The Raft handle.
    pub fn raft(&self) -> Raft {
        self.node.raft.clone()
    }

    /// Serve until `shutdown` is cancelled, then drain in-flight requests (bounded), stop
    /// Raft and close the databases.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), AppError> {
        let span = self.span.clone();
        self.run_inner(shutdown).instrument(span).await
    }

    async fn run_inner(self, shutdown: CancellationToken) -> Result<(), AppError> {
        let App {
            node,
            listener,
            auth,
            tls,
            identity,
            body_deadline,
            drain,
            internal,
            membership,
            proposals,
            backups,
            hand_over_on_stop,
            ..
        } = self;
        let raft_svc = RaftServer::new(RaftService { node: node.clone() })
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let store_svc = StoreServer::new(StoreService { node: node.clone() })
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let admin_svc = AdminServer::new(AdminService { node: node.clone() });

        let stop_serving = internal.clone();
        let incoming = serve::incoming(listener, &tls, ConnLimits::default());
        let server = serve::server_builder()
            .trace_fn({
                let span = tracing::Span::current();
                move |_| span.clone()
            })
            .layer(VerifyLayer::new(auth, identity).with_body_deadline(body_deadline))
            .add_service(raft_svc)
            .add_service(store_svc)
            .add_service(admin_svc)
            .serve_with_incoming_shutdown(incoming, async move { stop_serving.cancelled().await });
        let mut server = tokio::spawn(server.in_current_span());
        let elections = tokio::spawn(crate::election::run(node.clone(), internal.clone()).in_current_span());
        let backups = backups.map(|schedule| {
            tokio::spawn(crate::backup_schedule::run(node.clone(), schedule, internal.clone()).in_current_span())
        });
        let disk = tokio::spawn(crate::disk::run(node.clone(), internal.clone()).in_current_span());
        let snapshots = tokio::spawn(crate::snapshot_schedule::run(node.clone(), internal.clone()).in_current_span());
        let formats = tokio::spawn(crate::version::run(node.clone(), internal.clone()).in_current_span());
        let proposing = tokio::spawn(
            proposals
                .run(node.raft.clone(), node.gate.clone(), internal.clone())
                .in_current_span(),
        );
        let reconciler = membership.map(|(config, auth)| {
            tokio::spawn(
                crate::membership::run(node.clone(), config, auth, tls.clone(), internal.clone()).in_current_span(),
            )
        });

        let served = tokio::select! {
            _ = shutdown.cancelled() => None,
            res = &mut server => Some(res),
        };
        if served.is_none() && hand_over_on_stop {
            hand_over_before_stopping(&node).await;
        }
        tracing::info!("store stopping: no new requests, draining");
        internal.cancel();
        let result = match served {
            Some(res) => res.map_err(AppError::from).and_then(|r| r.map_err(AppError::from)),
            None => match tokio::time::timeout(drain, &mut server).await {
                Ok(res) => res.map_err(AppError::from).and_then(|r| r.map_err(AppError::from)),
                Err(_) => {
                    tracing::warn!("drain time exceeded; closing remaining connections");
                    server.abort();
                    Ok(())
                }
            },
        };
        if let Some(task) = reconciler {
            let _ = task.await;
        }
        let _ = elections.await;
        let _ = formats.await;
        let _ = disk.await;
        let _ = snapshots.await;
        if let Some(task) = backups {
            let _ = task.await;
        }
        let _ = proposing.await;
        tracing::info!("stopping raft");
        if let Err(e) = node.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
        drop(node);
        tracing::info!("store stopped");
        result
    }
}

/// A leader that stops gracefully hands over first (bounded), so writes wait for one
/// planned election instead of an election timeout.
async fn hand_over_before_stopping(node: &StoreNode) {
    let m = node.raft.metrics().borrow().clone();
    if m.state != openraft::ServerState::Leader || m.membership_config.membership().voter_ids().count() < 2 {
        return;
    }
    tracing::info!("this store leads: handing over before stopping");
    if let Err(e) = node.transfer_leadership(None).await {
        tracing::warn!(error = %e, "no hand-over; the others elect a leader once this store is gone");
    }
}
