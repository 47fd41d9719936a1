//! Building and running one API front.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use agenda_shared::auth::RpcAuth;
use axum::Router;
use tokio::net::TcpListener;
use tokio_rustls::rustls::ServerConfig;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::auth::{Passwords, Tokens};
use crate::config::Config;
use crate::config::WsSettings;
use crate::http::extract::PeerAddr;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::ratelimit::{FeedLimiter, LoginLimiter};
use crate::readiness::Readiness;
use crate::state::{AppState, Shared};
use crate::store::StorePool;
use crate::tls::{TlsListener, server_config};

/// Longest in-flight requests may take to finish at shutdown.
const DRAIN: Duration = Duration::from_secs(10);
/// How often idle rate-limit entries are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Why an API front could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The configuration is unusable.
    #[error("configuration")]
    Config(#[from] crate::config::ConfigError),
    /// The metrics registry could not be set up.
    #[error("metrics")]
    Metrics(#[from] prometheus::Error),
    /// The OpenAPI document could not be rendered.
    #[error("the OpenAPI document")]
    OpenApi(#[from] serde_json::Error),
    /// The HTTP listener could not be bound.
    #[error("bind {addr}: {source}")]
    Bind {
        /// Requested address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// Password hashing could not be set up.
    #[error("password hashing")]
    Passwords(#[from] crate::auth::PasswordSetupError),
    /// TLS could not be set up.
    #[error("tls")]
    Tls(#[from] crate::tls::TlsError),
    /// The HTTP server failed.
    #[error("http server: {0}")]
    Serve(#[from] std::io::Error),
}

/// A built API front: listening, not yet serving.
pub struct App {
    /// The sidecar's root span (see `agenda_shared::telemetry::sidecar_span`).
    span: tracing::Span,
    state: AppState,
    router: Router,
    listener: TcpListener,
    local_addr: SocketAddr,
    tls: Option<Arc<ServerConfig>>,
    /// The slot's discovery agent and how to reach it, when configured.
    discovery: Option<crate::discovery::Discovery>,
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
        let span = agenda_shared::telemetry::sidecar_span("api", &config.node_id);
        let mut app = Self::build_inner(config).instrument(span.clone()).await?;
        app.span = span;
        Ok(app)
    }

    async fn build_inner(config: Config) -> Result<Self, AppError> {
        config.validate()?;
        let tls = config.tls.as_ref().map(server_config).transpose()?;
        let metrics = Metrics::new()?;
        let auth = RpcAuth::new(config.cluster_secret.clone(), config.node_id.clone());
        let pool = StorePool::new(
            auth,
            config.cluster_tls.clone(),
            config.store_addrs.clone(),
            config.store_retry_budget,
            metrics.clone(),
        );
        let passwords = Passwords::new(config.password_cost, config.password_hash_queue)?;
        let state = AppState::new(Shared {
            node_id: config.node_id.clone(),
            hub: Hub::new(pool.clone()),
            pool,
            tokens: Tokens::new(&config.jwt_secret, config.token_ttl),
            passwords,
            limiter: LoginLimiter::new(config.login_limits),
            feed_limiter: FeedLimiter::new(config.feed_failures_per_ip_per_minute),
            readiness: Readiness::default(),
            trusted_proxies: config.trusted_proxies.clone(),
            limits: config.limits,
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
        let router = crate::http::build(state.clone(), config.max_body_bytes)?;
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
        tracing::info!(%local_addr, tls = tls.is_some(), stores = ?config.store_addrs, "api built");
        let discovery = config.discovery_addr.clone().map(|addr| crate::discovery::Discovery {
            addr,
            fallback: config.discovery_fallback.clone(),
            secret: config.cluster_secret.clone(),
            tls: config.cluster_tls.clone(),
        });
        Ok(Self {
            span: tracing::Span::none(),
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
        let span = self.span.clone();
        self.run_inner(shutdown).instrument(span).await
    }

    async fn run_inner(self, shutdown: CancellationToken) -> Result<(), AppError> {
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
        let hub = tokio::spawn(state.hub.clone().run(internal.clone()).in_current_span());
        let follower = discovery.map(|discovery| {
            tokio::spawn(
                crate::discovery::follow(state.clone(), state.node_id.clone(), discovery, internal.clone())
                    .in_current_span(),
            )
        });
        let pruner = {
            let state = state.clone();
            let stop = internal.clone();
            tokio::spawn(
                async move {
                    let mut tick = tokio::time::interval(PRUNE_EVERY);
                    loop {
                        tokio::select! {
                            _ = stop.cancelled() => break,
                            _ = tick.tick() => state.limiter.prune(),
                        }
                    }
                }
                .in_current_span(),
            )
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
                tokio::spawn(
                    async move {
                        axum::serve(listener, service)
                            .with_graceful_shutdown(stop_serving)
                            .await
                    }
                    .in_current_span(),
                )
            }
            Some(config) => {
                let listener = TlsListener::spawn(listener, config, state.metrics.clone(), internal.clone())?;
                let service = router.into_make_service_with_connect_info::<PeerAddr>();
                tokio::spawn(
                    async move {
                        axum::serve(listener, service)
                            .with_graceful_shutdown(stop_serving)
                            .await
                    }
                    .in_current_span(),
                )
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
