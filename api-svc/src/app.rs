//! Building and running one API front.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use agenda_shared::auth::RpcAuth;
use axum::Router;
use tokio::net::TcpListener;
use tokio_rustls::rustls::ServerConfig;
use tokio_util::sync::CancellationToken;

use crate::auth::{Passwords, Tokens};
use crate::config::Config;
use crate::http::extract::PeerAddr;
use crate::metrics::Metrics;
use crate::ratelimit::LoginLimiter;
use crate::state::{AppState, Shared};
use crate::store::StorePool;
use crate::tls::{TlsListener, server_config};
use crate::ws::{Hub, WsSettings};

/// Longest in-flight requests may take to finish at shutdown.
const DRAIN: Duration = Duration::from_secs(10);
/// How often idle rate-limit entries are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Why an API front could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The configuration is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// The HTTP listener could not be bound.
    #[error("bind {addr}: {source}")]
    Bind {
        /// Requested address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// TLS could not be set up.
    #[error("tls: {0}")]
    Tls(String),
    /// The HTTP server failed.
    #[error("http server: {0}")]
    Serve(#[from] std::io::Error),
}

/// A built API front: listening, not yet serving.
pub struct App {
    state: AppState,
    router: Router,
    listener: TcpListener,
    local_addr: SocketAddr,
    tls: Option<Arc<ServerConfig>>,
    /// The slot's discovery agent and the secret to sign with, when configured.
    discovery: Option<(String, agenda_shared::auth::ClusterSecret)>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl App {
    /// Validate the configuration, prepare the store pool, the hub and the router, and
    /// bind the HTTP listener (port 0 picks a free port).
    pub async fn build(config: Config) -> Result<Self, AppError> {
        config.validate().map_err(|e| AppError::Config(e.to_string()))?;
        let tls = config
            .tls
            .as_ref()
            .map(server_config)
            .transpose()
            .map_err(AppError::Tls)?;
        let metrics = Metrics::new().map_err(|e| AppError::Config(format!("metrics: {e}")))?;
        let auth = RpcAuth::new(config.cluster_secret.clone(), config.node_id.clone());
        let pool = StorePool::new(
            auth,
            config.store_addrs.clone(),
            config.store_retry_budget,
            metrics.clone(),
        );
        let passwords = Passwords::new(config.password_cost).map_err(AppError::Config)?;
        let state = AppState::new(Shared {
            node_id: config.node_id.clone(),
            hub: Hub::new(pool.clone()),
            pool,
            tokens: Tokens::new(&config.jwt_secret, config.token_ttl),
            passwords,
            limiter: LoginLimiter::new(config.login_limits),
            metrics,
            audit_token: config.audit_token.clone(),
            ws: WsSettings {
                allowed_origins: config.ws_allowed_origins.clone(),
                ping_interval: config.ws_ping_interval,
                resume_grace: config.ws_resume_grace,
            },
            tls: tls.is_some(),
            shutdown: CancellationToken::new(),
            fingerprint_key: config.jwt_secret.clone(),
            openapi: OnceLock::new(),
            sidecars: tokio::sync::watch::channel(Vec::new()).0,
        });
        let router =
            crate::http::build(state.clone(), config.max_body_bytes).map_err(|e| AppError::Config(e.to_string()))?;
        let listener = TcpListener::bind(config.http_listen)
            .await
            .map_err(|source| AppError::Bind {
                addr: config.http_listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| AppError::Bind {
            addr: config.http_listen,
            source,
        })?;
        tracing::info!(node = %config.node_id, %local_addr, tls = tls.is_some(), stores = ?config.store_addrs, "api built");
        let discovery = config
            .discovery_addr
            .clone()
            .map(|addr| (addr, config.cluster_secret.clone()));
        Ok(Self {
            state,
            router,
            listener,
            local_addr,
            tls,
            discovery,
        })
    }

    /// The bound HTTP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The store pool; discovery replaces its addresses with [`StorePool::set_addrs`].
    pub fn store_pool(&self) -> Arc<StorePool> {
        self.state.pool.clone()
    }

    /// Serve until `shutdown` is cancelled: then stop accepting, close the WebSockets,
    /// let in-flight requests finish (bounded) and stop the notification hub.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), AppError> {
        let App {
            state,
            router,
            listener,
            tls,
            discovery,
            ..
        } = self;
        let node = state.node_id.clone();
        let internal = CancellationToken::new();
        let hub = tokio::spawn(state.hub.clone().run(internal.clone()));
        let follower = discovery.map(|(addr, secret)| {
            tokio::spawn(crate::discovery::follow(
                state.clone(),
                state.node_id.clone(),
                addr,
                secret,
                internal.clone(),
            ))
        });
        let pruner = {
            let state = state.clone();
            let stop = internal.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(PRUNE_EVERY);
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tick.tick() => state.limiter.prune(),
                    }
                }
            })
        };

        let stop_serving = {
            let shutdown = shutdown.clone();
            let sockets = state.shutdown.clone();
            async move {
                shutdown.cancelled().await;
                // Upgraded connections are not drained by the server: close them now.
                sockets.cancel();
            }
        };
        let mut server = match tls {
            None => {
                let listener = crate::tls::PlainListener(listener);
                let service = router.into_make_service_with_connect_info::<PeerAddr>();
                tokio::spawn(async move {
                    axum::serve(listener, service)
                        .with_graceful_shutdown(stop_serving)
                        .await
                })
            }
            Some(config) => {
                let listener = TlsListener::spawn(listener, config, internal.clone())?;
                let service = router.into_make_service_with_connect_info::<PeerAddr>();
                tokio::spawn(async move {
                    axum::serve(listener, service)
                        .with_graceful_shutdown(stop_serving)
                        .await
                })
            }
        };
        tracing::info!(%node, "api serving");

        let early = tokio::select! {
            _ = shutdown.cancelled() => None,
            r = &mut server => Some(r),
        };
        tracing::info!(%node, "api stopping: no new connections, draining");
        let result = match early {
            Some(r) => r
                .map_err(|e| AppError::Serve(std::io::Error::other(e)))
                .and_then(|r| r.map_err(AppError::from)),
            None => match tokio::time::timeout(DRAIN, &mut server).await {
                Ok(r) => r
                    .map_err(|e| AppError::Serve(std::io::Error::other(e)))
                    .and_then(|r| r.map_err(AppError::from)),
                Err(_) => {
                    tracing::warn!(%node, "drain time exceeded; closing remaining connections");
                    server.abort();
                    Ok(())
                }
            },
        };
        state.shutdown.cancel();
        internal.cancel();
        let _ = hub.await;
        let _ = pruner.await;
        if let Some(f) = follower {
            let _ = f.await;
        }
        tracing::info!(%node, "api stopped");
        result
    }
}
