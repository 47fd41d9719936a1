//! What every handler shares ([`AppState`]) and the two ways to reach the store from a
//! request: [`AppState::execute`] (a write through the log) and [`AppState::query`].

use agenda_shared::ids::SlotId;
use std::sync::{Arc, OnceLock};

use agenda_shared::command::{CURRENT_RULES, Command, Limits, Request, Typed};
use agenda_shared::model::User;
use agenda_shared::query::{Principal, Query, TypedQuery, UserQuery};
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::auth::{Caller, Passwords, Tokens};
use crate::config::Secret;
use crate::config::WsSettings;
use crate::error::ApiError;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::ratelimit::{FeedLimiter, LoginLimiter, TrustedProxies};
use crate::readiness::Readiness;
use crate::store::{ReadConsistency, StorePool};
use crate::views::now_ms;

/// Handle on the shared state (cheap to clone).
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

/// The shared state of one API front.
#[derive(Debug)]
pub struct Shared {
    /// This slot's node id (the proposer recorded with writes).
    pub node_id: SlotId,
    /// The stores.
    pub pool: Arc<StorePool>,
    /// User tokens.
    pub tokens: Tokens,
    /// Password hashing.
    pub passwords: Passwords,
    /// Login rate limits.
    pub limiter: LoginLimiter,
    /// Budgets of unknown feed tokens per client.
    pub feed_limiter: FeedLimiter,
    /// The shared answer of `/readyz`.
    pub readiness: Readiness,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: TrustedProxies,
    /// Quotas and retention carried in every command.
    pub limits: Limits,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// The notification fan-out.
    pub hub: Arc<Hub>,
    /// `X-Audit-Token` value, when the audit route is enabled.
    pub audit_token: Option<Secret>,
    /// WebSocket settings.
    pub ws: WsSettings,
    /// Whether the front door speaks TLS (for absolute URLs).
    pub tls: bool,
    /// Cancelled when the service stops: open WebSockets close.
    pub shutdown: CancellationToken,
    /// Key for digests of secrets inside request fingerprints.
    pub(crate) fingerprint_key: Secret,
    /// The OpenAPI document, rendered once.
    pub(crate) openapi: OnceLock<Arc<String>>,
    /// The slot table from the discovery agent (empty without `DISCOVERY_ADDR`): how the
    /// cluster page reports the health of every slot's agent and API.
    pub(crate) sidecars: tokio::sync::watch::Sender<Vec<agenda_shared::rpc::member::Member>>,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The envelope of one write, from the request: its idempotency key and what the client
/// asked for (for the request hash).
#[derive(Debug, Clone)]
pub struct WriteMeta {
    /// Store request id: the client's `Idempotency-Key`, else a fresh id.
    pub request_id: String,
    /// HTTP method.
    pub method: String,
    /// Request path.
    pub path: String,
}

/// An accepted write and what it produced.
#[derive(Debug)]
pub struct Executed<T> {
    /// Revision the command was applied at (the original one for a replay).
    pub revision: u64,
    /// Whether this is the recorded outcome of an earlier identical request.
    pub replayed: bool,
    /// What the command produced.
    pub output: T,
}

/// An answer of another shape than the command or query asked for: a bug, or a version
/// skew between this front and the store (500; the detail goes to the log only).
fn unexpected(what: &str, got: &impl std::fmt::Debug) -> ApiError {
    ApiError::Internal(format!("the store answered {what} with {got:?}"))
}

impl AppState {
    pub(crate) fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }

    /// Hex HMAC of a secret (a password) for a request fingerprint: the fingerprint hash
    /// is stored in the replicated idempotency table, where a plain hash of a password
    /// could be brute-forced.
    pub fn secret_digest(&self, secret: &str) -> Result<String, ApiError> {
        // HMAC takes keys of any length; the error branch cannot happen.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.fingerprint_key.expose().as_bytes())
            .map_err(|e| ApiError::Internal(format!("fingerprint key: {e}")))?;
        mac.update(secret.as_bytes());
        Ok(hex::encode(mac.finalize().into_bytes()))
    }

    /// Propose `command` for `caller` (`None`: registration). `fingerprint` is what the
    /// client asked for (the body as parsed, plus any header that changes the meaning,
    /// never generated ids or timestamps); with the method, path and actor it forms the
    /// request hash that lets the store tell a retry from a different request under the
    /// same idempotency key. The caller's token stamp goes with the command: the store
    /// refuses it, exactly, if a password change revoked the token.
    pub async fn execute<C: Typed>(
        &self,
        meta: &WriteMeta,
        caller: Option<&Caller>,
        fingerprint: &impl Serialize,
        command: C,
    ) -> Result<Executed<C::Output>, ApiError> {
        let command: Command = command.into();
        let action = command.action();
        let actor = caller.map(Caller::id);
        let body = serde_json::to_vec(fingerprint).map_err(|e| ApiError::Internal(format!("fingerprint: {e}")))?;
        let mut hasher = Sha256::new();
        hasher.update(meta.method.as_bytes());
        hasher.update(b"\n");
        hasher.update(meta.path.as_bytes());
        hasher.update(b"\n");
        hasher.update(actor.map(|a| a.to_string()).unwrap_or_default().as_bytes());
        hasher.update(b"\n");
        hasher.update(&body);
        let request = Request {
            request_id: meta.request_id.clone(),
            request_hash: hex::encode(hasher.finalize()),
            actor,
            issued_at_ms: now_ms(),
            node: self.node_id.clone(),
            command,
            rules: CURRENT_RULES,
            token_stamp: caller.map(|c| c.principal().password_stamp),
            limits: Some(self.limits),
        };
        let result = self.pool.execute(&request).await?;
        if result.replayed {
            tracing::info!(request_id = %request.request_id, revision = result.revision, "idempotent replay");
        }
        let accepted = result.outcome.map_err(ApiError::from)?;
        let output = C::output(accepted).map_err(|other| unexpected(action, &other))?;
        Ok(Executed {
            revision: result.revision,
            replayed: result.replayed,
            output,
        })
    }

    /// A read for a signed-in user: the store answers only while their token is current
    /// (not revoked by a password change the answering replica has applied). Refusals (not
    /// found, forbidden, revoked) become errors.
    pub async fn read<Q: TypedQuery>(
        &self,
        caller: &Caller,
        query: Q,
        consistency: ReadConsistency,
    ) -> Result<(u64, Q::Output), ApiError> {
        self.ask(Some(caller.principal()), query, consistency).await
    }

    /// A read on the service's own behalf (login, feed URLs, the audit log); refusals
    /// become errors.
    pub async fn query<Q: TypedQuery>(
        &self,
        query: Q,
        consistency: ReadConsistency,
    ) -> Result<(u64, Q::Output), ApiError> {
        self.ask(None, query, consistency).await
    }

    async fn ask<Q: TypedQuery>(
        &self,
        principal: Option<Principal>,
        query: Q,
        consistency: ReadConsistency,
    ) -> Result<(u64, Q::Output), ApiError> {
        let query: Query = query.into();
        let read = self.pool.query(&query, principal, consistency);
        let (revision, outcome) = match consistency {
            // A revision no log holds would keep the read waiting for its whole retry budget
            // and end in a misleading 503: refuse it as soon as the stores show it is ahead.
            ReadConsistency::MinRevision(wanted) => tokio::select! {
                answer = read => answer?,
                latest = self.pool.beyond_every_log(wanted) => {
                    return Err(ApiError::RevisionAhead { wanted, latest });
                }
            },
            _ => read.await?,
        };
        let result = outcome.map_err(ApiError::from)?;
        let output = Q::output(result).map_err(|other| unexpected("a read", &other))?;
        Ok((revision, output))
    }

    /// The caller's own user, read for them (so a revoked token is refused).
    pub async fn me(&self, caller: &Caller, consistency: ReadConsistency) -> Result<(u64, User), ApiError> {
        self.read(caller, UserQuery { user_id: caller.id() }, consistency).await
    }

    /// Who a bearer token speaks for, checked now against the cluster (signature, expiry,
    /// and not revoked by a password change): for long-lived sessions (WebSocket), where
    /// no later store read would notice a revoked token by itself.
    pub async fn authenticate(&self, token: &str) -> Result<(Caller, User), ApiError> {
        let caller = Caller::from_claims(self.tokens.verify(token)?);
        let (_, user) = self.me(&caller, ReadConsistency::Linearizable).await?;
        Ok((caller, user))
    }
}
