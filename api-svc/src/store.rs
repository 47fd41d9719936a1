//! Calls to the stores: [`StorePool`] holds their addresses (this slot's own first, and
//! replaceable at run time when discovery learns new ones), one lazily connected, signed
//! gRPC channel per address, and the failover policy.
//!
//! Failover: a call goes to the preferred healthy store; when that store cannot serve it
//! (transport failure, `no_leader`, `not_leader`, `shutting_down`, `quorum_unavailable`,
//! `revision_not_reached`) the *same* request goes to the next store, round after round,
//! until the retry budget is spent, then the caller gets [`StoreError::Unavailable`] (503).
//! Re-sending a write is safe: its request id makes the store apply it exactly once.
//! Stores that failed at the transport level are tried last for a couple of seconds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agenda_shared::auth::{RpcAuth, SignLayer, SignService};
use agenda_shared::command::{ExecuteResult, Request};
use agenda_shared::proto::store_client::StoreClient;
use agenda_shared::proto::{Consistency, ExecuteRequest, QueryRequest, StatusRequest, WatchEvent, WatchRequest};
use agenda_shared::query::{Query, QueryOutcome};
use agenda_shared::status::StoreStatus;
use tokio::time::Instant;
use tonic::Streaming;
use tonic::transport::{Channel, Endpoint};
use uuid::Uuid;

use crate::metrics::Metrics;

/// A channel that signs every request with the cluster HMAC.
pub type SignedChannel = SignService<Channel>;

/// gRPC metadata naming the store's error kind (`no_leader`, `quorum_unavailable`, ...).
const ERROR_KIND_KEY: &str = "x-agenda-error";
/// gRPC metadata with the store's retry hint in milliseconds.
const RETRY_AFTER_KEY: &str = "x-agenda-retry-after-ms";
/// Largest gRPC message exchanged with a store.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;
/// How long a store that failed at the transport level is tried last.
const DOWN_FOR: Duration = Duration::from_secs(2);
/// Pause between two rounds over every store.
const ROUND_PAUSE: Duration = Duration::from_millis(100);
/// TCP connect timeout to a store.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// `Status` calls (readiness, cluster view) give up after this long per store.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

/// How a read is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadConsistency {
    /// Leader read-index (the default): reflects every write acknowledged before it.
    Linearizable,
    /// The answering replica's current state, possibly stale (`?consistency=local`).
    Local,
    /// The answering replica once it has applied this revision (`X-Agenda-Min-Revision`).
    MinRevision(u64),
}

/// Why a store call produced no answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No store could serve the call within the retry budget.
    #[error("no store could serve the request in time")]
    Unavailable {
        /// Suggested wait before retrying.
        retry_after: Duration,
    },
    /// A store refused the call for good (a bug or a misconfiguration, e.g. a wrong
    /// cluster secret).
    #[error("the store refused the call: {0}")]
    Refused(String),
    /// A store answered a document this service cannot decode (version skew).
    #[error("undecodable store document: {0}")]
    Decode(String),
}

/// What to do after a failed attempt.
enum Verdict {
    /// Try the next store; `down` marks this one as failing at the transport level.
    Retry { down: bool, hint: Option<Duration> },
    /// Give up.
    Fatal,
}

fn classify(status: &tonic::Status) -> Verdict {
    let hint = status
        .metadata()
        .get(RETRY_AFTER_KEY)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis);
    let kind = status.metadata().get(ERROR_KIND_KEY).and_then(|v| v.to_str().ok());
    match kind {
        Some("not_leader" | "no_leader" | "quorum_unavailable" | "revision_not_reached") => {
            Verdict::Retry { down: false, hint }
        }
        Some("shutting_down") => Verdict::Retry { down: true, hint },
        Some(_) => Verdict::Fatal,
        // No kind: the call never reached the store's service (refused, reset, timed out).
        None => match status.code() {
            tonic::Code::Unavailable
            | tonic::Code::Unknown
            | tonic::Code::Cancelled
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Aborted => Verdict::Retry { down: true, hint },
            _ => Verdict::Fatal,
        },
    }
}

#[derive(Default)]
struct PoolState {
    addrs: Vec<String>,
    channels: HashMap<String, Channel>,
    down_until: HashMap<String, Instant>,
}

/// The stores this API front talks to.
pub struct StorePool {
    auth: RpcAuth,
    retry_budget: Duration,
    metrics: Metrics,
    state: Mutex<PoolState>,
}

impl std::fmt::Debug for StorePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorePool").field("addrs", &self.addrs()).finish()
    }
}

impl StorePool {
    /// A pool over `addrs` (`host:port`, the preferred store first), signing as `auth`.
    pub fn new(auth: RpcAuth, addrs: Vec<String>, retry_budget: Duration, metrics: Metrics) -> Arc<Self> {
        let pool = Arc::new(Self {
            auth,
            retry_budget,
            metrics,
            state: Mutex::new(PoolState::default()),
        });
        pool.set_addrs(addrs);
        pool
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replace the store addresses (the preferred store first). Channels to stores that
    /// are no longer listed are dropped; in-flight calls finish on their old channel.
    pub fn set_addrs(&self, addrs: Vec<String>) {
        let mut seen = std::collections::HashSet::new();
        let addrs: Vec<String> = addrs
            .into_iter()
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty() && seen.insert(a.clone()))
            .collect();
        let mut state = self.lock();
        state.channels.retain(|a, _| addrs.contains(a));
        state.down_until.retain(|a, _| addrs.contains(a));
        tracing::info!(stores = ?addrs, "store addresses set");
        state.addrs = addrs;
    }

    /// The current store addresses, preferred first.
    pub fn addrs(&self) -> Vec<String> {
        self.lock().addrs.clone()
    }

    /// Addresses in the order to try them: `prefer` (if listed), the healthy ones in
    /// configured order, then the ones that recently failed.
    fn candidates(&self, prefer: Option<&str>) -> Vec<String> {
        let state = self.lock();
        let now = Instant::now();
        let down = |a: &String| state.down_until.get(a).is_some_and(|t| *t > now);
        let mut out: Vec<String> = Vec::with_capacity(state.addrs.len());
        if let Some(p) = prefer.filter(|p| state.addrs.iter().any(|a| a == p)) {
            out.push(p.to_owned());
        }
        for a in state.addrs.iter().filter(|a| !down(a)) {
            if !out.contains(a) {
                out.push(a.clone());
            }
        }
        for a in state.addrs.iter().filter(|a| down(a)) {
            if !out.contains(a) {
                out.push(a.clone());
            }
        }
        out
    }

    fn mark_down(&self, addr: &str) {
        self.lock()
            .down_until
            .insert(addr.to_owned(), Instant::now() + DOWN_FOR);
    }

    fn mark_up(&self, addr: &str) {
        let mut state = self.lock();
        if state.down_until.contains_key(addr) {
            state.down_until.remove(addr);
        }
    }

    /// A signed client to `addr`, on a cached lazily connected channel.
    fn client(&self, addr: &str) -> Option<StoreClient<SignedChannel>> {
        let channel = {
            let mut state = self.lock();
            match state.channels.get(addr) {
                Some(ch) => ch.clone(),
                None => {
                    let endpoint = match Endpoint::from_shared(format!("http://{addr}")) {
                        Ok(e) => e,
                        Err(e) => {
                            tracing::warn!(%addr, error = %e, "unusable store address");
                            return None;
                        }
                    };
                    let ch = endpoint
                        .connect_timeout(CONNECT_TIMEOUT)
                        .tcp_nodelay(true)
                        .http2_keep_alive_interval(Duration::from_secs(10))
                        .keep_alive_timeout(Duration::from_secs(5))
                        .keep_alive_while_idle(true)
                        .connect_lazy();
                    state.channels.insert(addr.to_owned(), ch.clone());
                    ch
                }
            }
        };
        let svc = tower::ServiceBuilder::new()
            .layer(SignLayer::new(self.auth.clone()))
            .service(channel);
        Some(
            StoreClient::new(svc)
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
        )
    }

    /// Run `call` against the stores with failover until it succeeds, fails for good, or
    /// the retry budget is spent. Returns the answer and the store that gave it.
    async fn call<T, F, Fut>(
        &self,
        rpc: &'static str,
        prefer: Option<&str>,
        mut call: F,
    ) -> Result<(String, T), StoreError>
    where
        F: FnMut(StoreClient<SignedChannel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let deadline = Instant::now() + self.retry_budget;
        let mut pause = ROUND_PAUSE;
        loop {
            let candidates = self.candidates(prefer);
            for addr in &candidates {
                let remaining = deadline.saturating_duration_since(Instant::now());
                if remaining.is_zero() {
                    break;
                }
                let Some(client) = self.client(addr) else { continue };
                let started = Instant::now();
                let attempt = tokio::time::timeout(remaining, call(client)).await;
                let elapsed = started.elapsed();
                let status = match attempt {
                    Ok(Ok(reply)) => {
                        self.metrics.observe_store(rpc, "ok", elapsed);
                        self.mark_up(addr);
                        return Ok((addr.clone(), reply.into_inner()));
                    }
                    Ok(Err(status)) => status,
                    Err(_) => {
                        self.metrics.observe_store(rpc, "timeout", elapsed);
                        self.mark_down(addr);
                        continue;
                    }
                };
                match classify(&status) {
                    Verdict::Retry { down, hint } => {
                        self.metrics.observe_store(rpc, "retry", elapsed);
                        tracing::debug!(%addr, rpc, code = ?status.code(), message = status.message(), "store attempt failed; trying the next store");
                        if down {
                            self.mark_down(addr);
                        }
                        if let Some(h) = hint {
                            pause = h.clamp(Duration::from_millis(20), Duration::from_secs(1));
                        }
                    }
                    Verdict::Fatal => {
                        self.metrics.observe_store(rpc, "refused", elapsed);
                        tracing::error!(%addr, rpc, code = ?status.code(), message = status.message(), "store refused the call");
                        return Err(StoreError::Refused(format!(
                            "{:?}: {}",
                            status.code(),
                            status.message()
                        )));
                    }
                }
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() || candidates.is_empty() {
                self.metrics.observe_store(rpc, "unavailable", Duration::ZERO);
                return Err(StoreError::Unavailable {
                    retry_after: Duration::from_secs(1),
                });
            }
            tokio::time::sleep(pause.min(remaining)).await;
            pause = ROUND_PAUSE;
        }
    }

    /// Propose a command; returns its revision and recorded outcome.
    pub async fn execute(&self, request: &Request) -> Result<ExecuteResult, StoreError> {
        let bytes = serde_json::to_vec(request).map_err(|e| StoreError::Decode(e.to_string()))?;
        let (_, reply) = self
            .call("execute", None, |mut client| {
                let request = bytes.clone();
                async move {
                    client
                        .execute(ExecuteRequest {
                            request,
                            forwarded: false,
                        })
                        .await
                }
            })
            .await?;
        let outcome = serde_json::from_slice(&reply.outcome).map_err(|e| StoreError::Decode(e.to_string()))?;
        Ok(ExecuteResult {
            revision: reply.revision,
            replayed: reply.replayed,
            outcome,
        })
    }

    /// Read; returns the revision the answering replica was at and the outcome.
    pub async fn query(&self, query: &Query, consistency: ReadConsistency) -> Result<(u64, QueryOutcome), StoreError> {
        let bytes = serde_json::to_vec(query).map_err(|e| StoreError::Decode(e.to_string()))?;
        let (level, min_revision) = match consistency {
            ReadConsistency::Linearizable => (Consistency::Linearizable, 0),
            ReadConsistency::Local => (Consistency::Local, 0),
            ReadConsistency::MinRevision(r) => (Consistency::MinRevision, r),
        };
        let (_, reply) = self
            .call("query", None, |mut client| {
                let query = bytes.clone();
                async move {
                    client
                        .query(QueryRequest {
                            consistency: level as i32,
                            min_revision,
                            query,
                            forwarded: false,
                        })
                        .await
                }
            })
            .await?;
        let outcome = serde_json::from_slice(&reply.result).map_err(|e| StoreError::Decode(e.to_string()))?;
        Ok((reply.revision, outcome))
    }

    /// Open a notification stream (revision > `after`, of `user` or of everybody), on
    /// `prefer` if it can serve it. Returns the store's address and the stream.
    pub async fn watch(
        &self,
        after: u64,
        user: Option<Uuid>,
        prefer: Option<&str>,
    ) -> Result<(String, Streaming<WatchEvent>), StoreError> {
        let user_id = user.map(|u| u.to_string()).unwrap_or_default();
        self.call("watch", prefer, |mut client| {
            let user_id = user_id.clone();
            async move {
                client
                    .watch(WatchRequest {
                        after_revision: after,
                        user_id,
                    })
                    .await
            }
        })
        .await
    }

    /// The status of the first store that answers, with its address.
    pub async fn any_status(&self, prefer: Option<&str>) -> Result<(String, StoreStatus), StoreError> {
        let (addr, reply) = self
            .call("status", prefer, |mut client| async move {
                client.status(StatusRequest {}).await
            })
            .await?;
        let status = serde_json::from_slice(&reply.status).map_err(|e| StoreError::Decode(e.to_string()))?;
        Ok((addr, status))
    }

    /// The status of one store, without failover (`Err` is a short reason).
    pub async fn status_of(&self, addr: &str) -> Result<StoreStatus, String> {
        let mut client = self.client(addr).ok_or_else(|| "unusable address".to_owned())?;
        let started = Instant::now();
        let reply = tokio::time::timeout(STATUS_TIMEOUT, client.status(StatusRequest {})).await;
        let reply = match reply {
            Err(_) => {
                self.metrics.observe_store("status", "timeout", started.elapsed());
                return Err("timed out".into());
            }
            Ok(Err(status)) => {
                self.metrics.observe_store("status", "retry", started.elapsed());
                return Err(format!("{:?}", status.code()));
            }
            Ok(Ok(r)) => r.into_inner(),
        };
        self.metrics.observe_store("status", "ok", started.elapsed());
        serde_json::from_slice(&reply.status).map_err(|e| format!("undecodable status: {e}"))
    }

    /// Forget that `addr` failed recently (e.g. after a stream on it ended normally).
    pub fn report_healthy(&self, addr: &str) {
        self.mark_up(addr);
    }

    /// Try `addr` last for a while (e.g. after a stream on it broke).
    pub fn report_failed(&self, addr: &str) {
        self.mark_down(addr);
    }
}

#[cfg(test)]
mod tests {
    use agenda_shared::auth::ClusterSecret;

    use super::*;

    fn pool(addrs: &[&str]) -> Arc<StorePool> {
        let auth = RpcAuth::new(ClusterSecret::new(vec![b's'; 32]).unwrap(), "api-test");
        StorePool::new(
            auth,
            addrs.iter().map(|s| s.to_string()).collect(),
            Duration::from_millis(300),
            Metrics::new().unwrap(),
        )
    }

    #[test]
    fn failed_stores_are_tried_last_and_preference_wins() {
        let p = pool(&["a:1", "b:1", "c:1", "a:1", " "]);
        assert_eq!(p.addrs(), ["a:1", "b:1", "c:1"]);
        p.mark_down("a:1");
        assert_eq!(p.candidates(None), ["b:1", "c:1", "a:1"]);
        assert_eq!(p.candidates(Some("c:1")), ["c:1", "b:1", "a:1"]);
        p.mark_up("a:1");
        assert_eq!(p.candidates(Some("zzz")), ["a:1", "b:1", "c:1"]);
        p.set_addrs(vec!["d:1".into()]);
        assert_eq!(p.candidates(None), ["d:1"]);
    }

    #[test]
    fn store_errors_are_classified_by_kind() {
        let mut s = tonic::Status::unavailable("x");
        s.metadata_mut().insert(ERROR_KIND_KEY, "no_leader".parse().unwrap());
        assert!(matches!(classify(&s), Verdict::Retry { down: false, .. }));
        let transport = tonic::Status::unavailable("connection refused");
        assert!(matches!(classify(&transport), Verdict::Retry { down: true, .. }));
        let mut bad = tonic::Status::invalid_argument("x");
        bad.metadata_mut()
            .insert(ERROR_KIND_KEY, "bad_request".parse().unwrap());
        assert!(matches!(classify(&bad), Verdict::Fatal));
        assert!(matches!(classify(&tonic::Status::unauthenticated("x")), Verdict::Fatal));
    }

    #[tokio::test]
    async fn an_unreachable_cluster_is_unavailable_within_the_budget() {
        // Port 1 on loopback refuses connections.
        let p = pool(&["127.0.0.1:1"]);
        let err = p
            .query(&Query::Credentials { login: "x".into() }, ReadConsistency::Local)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    }
}
