//! What every handler shares ([`AppState`]) and the two ways to reach the store from a
//! request: [`AppState::execute`] (a write through the log) and [`AppState::query`].

use std::sync::{Arc, OnceLock};

use agenda_shared::command::{Accepted, Command, Request};
use agenda_shared::model::{Appointment, User};
use agenda_shared::query::{Query, QueryResult};
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::auth::{Passwords, Tokens};
use crate::config::Secret;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::ratelimit::LoginLimiter;
use crate::store::{ReadConsistency, StorePool};
use crate::views::now_ms;
use crate::ws::{Hub, WsSettings};

/// Handle on the shared state (cheap to clone).
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

/// The shared state of one API front.
#[derive(Debug)]
pub struct Shared {
    /// This slot's node id (the proposer recorded with writes).
    pub node_id: String,
    /// The stores.
    pub pool: Arc<StorePool>,
    /// User tokens.
    pub tokens: Tokens,
    /// Password hashing.
    pub passwords: Passwords,
    /// Login rate limits.
    pub limiter: LoginLimiter,
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
    pub(crate) sidecars: tokio::sync::watch::Sender<Vec<discovery_svc::Member>>,
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

/// An accepted write.
#[derive(Debug)]
pub struct Executed {
    /// Revision the command was applied at (the original one for a replay).
    pub revision: u64,
    /// Whether this is the recorded outcome of an earlier identical request.
    pub replayed: bool,
    /// What apply produced.
    pub accepted: Accepted,
}

fn unexpected(what: &str, got: &impl std::fmt::Debug) -> ApiError {
    ApiError::Internal(format!("expected {what} from the store, got {got:?}"))
}

impl Executed {
    /// The user this write produced.
    pub fn user(self) -> Result<User, ApiError> {
        match self.accepted {
            Accepted::User { user } => Ok(user),
            other => Err(unexpected("a user", &other)),
        }
    }

    /// The appointment this write produced.
    pub fn appointment(self) -> Result<Appointment, ApiError> {
        match self.accepted {
            Accepted::Appointment { appointment } => Ok(appointment),
            other => Err(unexpected("an appointment", &other)),
        }
    }

    /// The read marks this write produced: `(marked, unread)`.
    pub fn notifications_read(&self) -> Result<(u64, u64), ApiError> {
        match &self.accepted {
            Accepted::NotificationsRead { marked, unread } => Ok((*marked, *unread)),
            other => Err(unexpected("read marks", other)),
        }
    }
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

    /// Propose `command` for `actor`. `fingerprint` is what the client asked for (the
    /// body as parsed, plus any header that changes the meaning, never generated ids or
    /// timestamps); with the method, path and actor it forms the request hash that lets
    /// the store tell a retry from a different request under the same idempotency key.
    pub async fn execute(
        &self,
        meta: &WriteMeta,
        actor: Option<Uuid>,
        fingerprint: &impl Serialize,
        command: Command,
    ) -> Result<Executed, ApiError> {
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
        };
        let result = self.pool.execute(&request).await?;
        if result.replayed {
            tracing::info!(request_id = %request.request_id, revision = result.revision, "idempotent replay");
        }
        let accepted = result.outcome.map_err(ApiError::from)?;
        Ok(Executed {
            revision: result.revision,
            replayed: result.replayed,
            accepted,
        })
    }

    /// Read; refusals (not found, forbidden) become errors.
    pub async fn query(&self, query: Query, consistency: ReadConsistency) -> Result<(u64, QueryResult), ApiError> {
        let (revision, outcome) = self.pool.query(&query, consistency).await?;
        Ok((revision, outcome.map_err(ApiError::from)?))
    }

    /// The user a bearer token speaks for: signature, expiry, and not revoked by a
    /// password change (checked against the user as read at `consistency`).
    /// Returns the revision of that read with the user.
    pub async fn authenticate(&self, token: &str, consistency: ReadConsistency) -> Result<(u64, User), ApiError> {
        let claims = self.tokens.verify(token)?;
        let (revision, user) = match self.user(claims.sub, consistency).await {
            Ok(found) => found,
            Err(ApiError::NotFound(_)) => return Err(ApiError::Unauthorized("the token's user does not exist")),
            Err(e) => return Err(e),
        };
        Tokens::current_for(&claims, &user)?;
        Ok((revision, user))
    }

    /// A user by id.
    pub async fn user(&self, user_id: Uuid, consistency: ReadConsistency) -> Result<(u64, User), ApiError> {
        match self.query(Query::User { user_id }, consistency).await? {
            (revision, QueryResult::User { user }) => Ok((revision, user)),
            (_, other) => Err(unexpected("a user", &other)),
        }
    }
}
