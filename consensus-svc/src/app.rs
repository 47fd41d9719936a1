//! Building and running one store.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use agenda_shared::auth::{RpcAuth, VerifyLayer};
use agenda_shared::proto::admin_server::AdminServer;
use agenda_shared::proto::raft_server::RaftServer;
use agenda_shared::proto::store_server::StoreServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::grpc::admin::AdminService;
use crate::grpc::raft::RaftService;
use crate::grpc::store::StoreService;
use crate::log_store::LogStore;
use crate::membership::MembershipConfig;
use crate::network::Network;
use crate::node::StoreNode;
use crate::peers::{MAX_MESSAGE, Peers};
use crate::state::StateStore;
use crate::types::{NodeId, Raft};

/// Why a store could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The configuration is inconsistent.
    #[error("configuration: {0}")]
    Config(String),
    /// A database could not be opened or migrated.
    #[error("storage: {0}")]
    Storage(String),
    /// The gRPC listener could not be bound.
    #[error("bind {addr}: {source}")]
    Bind {
        /// Requested address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// Raft could not start.
    #[error("raft: {0}")]
    Raft(String),
    /// The gRPC server failed.
    #[error("grpc server: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// A built store, listening but not yet serving.
pub struct App {
    node: StoreNode,
    listener: TcpListener,
    grpc_addr: SocketAddr,
    advertise_addr: String,
    auth: RpcAuth,
    pristine: bool,
    drain: Duration,
    internal: CancellationToken,
    membership: Option<(MembershipConfig, RpcAuth)>,
}

impl App {
    /// Open the databases, start Raft and bind the gRPC listener.
    pub async fn build(config: Config) -> Result<Self, AppError> {
        config.timings.validate().map_err(AppError::Config)?;
        let raft_config = Arc::new(
            config
                .timings
                .raft_config()
                .map_err(|e| AppError::Config(e.to_string()))?,
        );
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| AppError::Storage(format!("create {}: {e}", config.data_dir.display())))?;

        let dir = config.data_dir.clone();
        let (log, state, raft_id, pristine) = tokio::task::spawn_blocking(move || {
            let log = LogStore::open(&dir).map_err(|e| AppError::Storage(format!("log.db: {e}")))?;
            let raft_id = log.node_id().map_err(|e| AppError::Storage(format!("node id: {e}")))?;
            let pristine = log.is_pristine().map_err(|e| AppError::Storage(e.to_string()))?;
            let state = StateStore::open(&dir).map_err(|e| AppError::Storage(format!("state.db: {e}")))?;
            Ok::<_, AppError>((log, state, raft_id, pristine))
        })
        .await
        .map_err(|e| AppError::Storage(e.to_string()))??;

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
        let peers = Peers::new(auth.clone(), Duration::from_millis(config.timings.connect_timeout_ms));
        let network = Network {
            peers: peers.clone(),
            faults: config.faults.clone(),
            self_name: config.node_name.clone(),
        };
        let raft = Raft::new(raft_id, raft_config, network, log, state.clone())
            .await
            .map_err(|e| AppError::Raft(e.to_string()))?;
        tracing::info!(node = %config.node_name, raft_id, %grpc_addr, %advertise_addr, pristine, "store built");

        // The agent only takes reports signed as `<NODE_ID>-<suffix>` of its own slot.
        let membership = config.membership.clone().map(|m| {
            (
                m,
                RpcAuth::new(config.secret.clone(), format!("{}-store", config.node_name)),
            )
        });
        let internal = CancellationToken::new();
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
        };
        Ok(Self {
            node,
            listener,
            grpc_addr,
            advertise_addr,
            auth,
            pristine,
            drain: Duration::from_millis(config.timings.drain_ms),
            internal,
            membership,
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
    pub fn raft_id(&self) -> NodeId {
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
        let App {
            node,
            listener,
            auth,
            drain,
            internal,
            membership,
            ..
        } = self;
        let name = node.name.clone();
        let raft_svc = RaftServer::new(RaftService {
            raft: node.raft.clone(),
            raft_id: node.raft_id,
        })
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
        let store_svc = StoreServer::new(StoreService { node: node.clone() })
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let admin_svc = AdminServer::new(AdminService { node: node.clone() });

        let stop_serving = internal.clone();
        let server = tonic::transport::Server::builder()
            .layer(VerifyLayer::new(auth))
            .add_service(raft_svc)
            .add_service(store_svc)
            .add_service(admin_svc)
            .serve_with_incoming_shutdown(agenda_shared::net::nodelay_incoming(listener), async move {
                stop_serving.cancelled().await
            });
        let mut server = tokio::spawn(server);
        let reconciler = membership
            .map(|(config, auth)| tokio::spawn(crate::membership::run(node.clone(), config, auth, internal.clone())));

        let served = tokio::select! {
            _ = shutdown.cancelled() => None,
            res = &mut server => Some(res),
        };
        tracing::info!(node = %name, "store stopping: no new requests, draining");
        internal.cancel();
        let result = match served {
            Some(res) => res
                .map_err(|e| AppError::Raft(e.to_string()))
                .and_then(|r| r.map_err(AppError::from)),
            None => match tokio::time::timeout(drain, &mut server).await {
                Ok(res) => res
                    .map_err(|e| AppError::Raft(e.to_string()))
                    .and_then(|r| r.map_err(AppError::from)),
                Err(_) => {
                    tracing::warn!(node = %name, "drain time exceeded; closing remaining connections");
                    server.abort();
                    Ok(())
                }
            },
        };
        if let Some(task) = reconciler {
            let _ = task.await;
        }
        tracing::info!(node = %name, "stopping raft");
        if let Err(e) = node.raft.shutdown().await {
            tracing::warn!(node = %name, error = %e, "raft shutdown");
        }
        drop(node);
        tracing::info!(node = %name, "store stopped");
        result
    }
}
