//! Calls to the stores: [`StorePool`] holds their addresses (this slot's own first, and
//! replaceable at run time when discovery learns new ones), one lazily connected, signed
//! gRPC channel per address, and the failover policy.
//!
//! Failover: a call goes to the preferred healthy store; when that store cannot serve it
//! (a transport failure, or a transient [`ErrorKind`]: `no_leader`, `not_leader`,
//! `shutting_down`, `quorum_unavailable`, `revision_not_reached`, `stale_replica`) the
//! *same* request goes to the next store, round after round,
//! until the retry budget is spent, then the caller gets [`StoreError::Unavailable`] (503).
//! Re-sending a write is safe: its request id makes the store apply it exactly once.
//! Stores that failed at the transport level are tried last for a couple of seconds.
//! A store that holds a call without answering (frozen, cut off) gets company after
//! [`HEDGE_AFTER`]: the same call also goes to the next store.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use agenda_shared::auth::RpcAuth;
use agenda_shared::command::{ExecuteResult, Request};
use agenda_shared::faults::Faults;
use agenda_shared::proto::WatchEvent;
use agenda_shared::query::{Principal, Query, QueryOutcome};
use agenda_shared::rpc::channel::Channels;
use agenda_shared::rpc::kind::{self, ErrorKind};
use agenda_shared::rpc::store::{CallError, StoreClient};
use agenda_shared::rpc::tls::{ClusterTls, Role};
use agenda_shared::status::StoreStatus;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::time::Instant;
use tonic::Streaming;
use uuid::Uuid;

use crate::metrics::Metrics;

pub use agenda_shared::rpc::store::ReadConsistency;

/// How long a store that failed at the transport level is tried last.
const DOWN_FOR: Duration = Duration::from_secs(2);
/// Pause between two rounds over every store.
const ROUND_PAUSE: Duration = Duration::from_millis(100);
/// TCP connect timeout to a store.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// A store that has not answered a call for this long gets company: the same call also
/// goes to the next store (healthy calls answer in milliseconds; one waiting on an
/// election takes about one election timeout).
const HEDGE_AFTER: Duration = Duration::from_millis(1000);
/// Attempts of one call in flight at once, at most.
const MAX_IN_FLIGHT: usize = 3;
/// `Status` calls (readiness, cluster view) give up after this long per store.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

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
    /// The command is larger than a log entry may be (`command_too_large`). Edge validation
    /// bounds every string, so only a gap in it leads here.
    #[error("the command is too large for the log")]
    CommandTooLarge,
}

/// What to do after a failed attempt.
enum Verdict {
    /// Try the next store; `down` marks this one as failing at the transport level.
    Retry { down: bool, hint: Option<Duration> },
    /// Give up.
    Fatal,
    /// Give up: the command is too large, wherever it is sent.
    TooLarge,
}

/// No store served the call in time.
fn unavailable() -> StoreError {
    StoreError::Unavailable {
        retry_after: Duration::from_secs(1),
    }
}

fn classify(status: &tonic::Status) -> Verdict {
    let hint = kind::retry_after(status);
    match ErrorKind::of(status) {
        Some(ErrorKind::ShuttingDown) => Verdict::Retry { down: true, hint },
        Some(ErrorKind::CommandTooLarge) => Verdict::TooLarge,
        Some(k) if k.is_transient() => Verdict::Retry { down: false, hint },
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
    down_until: HashMap<String, Instant>,
}

/// The stores this API front talks to.
pub struct StorePool {
    channels: Channels,
    retry_budget: Duration,
    metrics: Metrics,
    state: Mutex<PoolState>,
    faults: OnceLock<(Arc<Faults>, String)>,
}

impl std::fmt::Debug for StorePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorePool").field("addrs", &self.addrs()).finish()
    }
}

impl StorePool {
    /// A pool over `addrs` (`host:port`, the preferred store first), signing as `auth`,
    /// over `tls`.
    pub fn new(
        auth: RpcAuth,
        tls: ClusterTls,
        addrs: Vec<String>,
        retry_budget: Duration,
        metrics: Metrics,
    ) -> Arc<Self> {
        let pool = Arc::new(Self {
            channels: Channels::new(auth, tls, Role::Store, CONNECT_TIMEOUT),
            retry_budget,
            metrics,
            state: Mutex::new(PoolState::default()),
            faults: OnceLock::new(),
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
        self.channels.retain(&addrs);
        let mut state = self.lock();
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
        self.lock().down_until.remove(addr);
    }

    /// Tests only: apply `faults` to this pool's calls; `name` is this front's name in
    /// them (a cut from `name` to a store's address makes that store unreachable to new
    /// calls; streams already open stay open).
    pub fn inject_faults(&self, faults: Arc<Faults>, name: &str) {
        let _ = self.faults.set((faults, name.to_owned()));
    }

    /// A typed client of the store at `addr`, on its cached channel (`None`: unusable, or
    /// cut off by fault injection).
    fn client(&self, addr: &str) -> Option<StoreClient> {
        if let Some((faults, name)) = self.faults.get()
            && faults.blocked(name, addr)
        {
            tracing::debug!(%addr, "store cut off by fault injection");
            return None;
        }
        match self.channels.get(addr) {
            Ok(channel) => Some(StoreClient::new(channel)),
            Err(e) => {
                tracing::warn!(%addr, error = %e, "unusable store address");
                None
            }
        }
    }

    /// Run `call` against the stores with failover until it succeeds, fails for good, or
    /// the retry budget is spent. Returns the answer and the store that gave it.
    ///
    /// One attempt at a time, in [`StorePool::candidates`] order; a store that fails with
    /// a transient error passes the call to the next one, and after a pass over every
    /// store a new pass starts (after [`ROUND_PAUSE`] or the store's retry hint). A store
    /// that holds the call without answering for [`HEDGE_AFTER`] (frozen, cut off, or
    /// waiting on a leader that froze) does not hold the request: the same call also goes
    /// to the next store, at most [`MAX_IN_FLIGHT`] at once, and the first answer wins.
    async fn call<T, F, Fut>(
        &self,
        rpc: &'static str,
        prefer: Option<&str>,
        mut call: F,
    ) -> Result<(String, T), StoreError>
    where
        F: FnMut(StoreClient) -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        let deadline = Instant::now() + self.retry_budget;
        let mut pause = ROUND_PAUSE;
        let mut queue: VecDeque<String> = self.candidates(prefer).into();
        if queue.is_empty() {
            self.metrics.observe_store(rpc, "unavailable", Duration::ZERO);
            return Err(unavailable());
        }
        let mut inflight = FuturesUnordered::new();
        // Addresses with an attempt in flight, and when it started.
        let mut busy: Vec<(String, Instant)> = Vec::new();
        let mut refill_at: Option<Instant> = None;
        loop {
            let now = Instant::now();
            if now >= deadline {
                for (addr, started) in &busy {
                    self.metrics.observe_store(rpc, "timeout", now - *started);
                    self.mark_down(addr);
                }
                self.metrics.observe_store(rpc, "unavailable", Duration::ZERO);
                return Err(unavailable());
            }
            let last_launch = busy.iter().map(|(_, t)| *t).max();
            let hedge_due = last_launch.is_some_and(|t| now >= t + HEDGE_AFTER);
            if busy.len() < MAX_IN_FLIGHT && (busy.is_empty() || hedge_due) {
                if let Some(addr) = queue.pop_front() {
                    if let Some(client) = self.client(&addr) {
                        busy.push((addr.clone(), now));
                        let attempt = call(client);
                        inflight.push(async move { (addr, attempt.await) });
                    }
                    continue;
                }
                if refill_at.is_none() {
                    refill_at = Some(now + pause);
                    pause = ROUND_PAUSE;
                }
            }
            if refill_at.is_some_and(|t| now >= t) {
                refill_at = None;
                queue = self
                    .candidates(prefer)
                    .into_iter()
                    .filter(|a| !busy.iter().any(|(b, _)| b == a))
                    .collect();
                continue;
            }
            let mut wake = deadline;
            if let Some(t) = refill_at {
                wake = wake.min(t);
            }
            if let Some(t) = last_launch.filter(|_| busy.len() < MAX_IN_FLIGHT && !queue.is_empty()) {
                wake = wake.min(t + HEDGE_AFTER);
            }
            let (addr, result) = tokio::select! {
                Some(done) = inflight.next() => done,
                () = tokio::time::sleep_until(wake) => continue,
            };
            let started = busy
                .iter()
                .position(|(a, _)| *a == addr)
                .map(|i| busy.swap_remove(i).1)
                .unwrap_or(now);
            let elapsed = started.elapsed();
            let status = match result {
                Ok(answer) => {
                    self.metrics.observe_store(rpc, "ok", elapsed);
                    self.mark_up(&addr);
                    // The stores still holding the call were overtaken: try them last for
                    // a while (their attempts are dropped with `inflight`).
                    for (slow, since) in &busy {
                        self.metrics.observe_store(rpc, "timeout", since.elapsed());
                        self.mark_down(slow);
                    }
                    return Ok((addr, answer));
                }
                Err(CallError::Status(status)) => status,
                Err(CallError::Codec(e)) => {
                    self.metrics.observe_store(rpc, "refused", elapsed);
                    return Err(StoreError::Decode(e.to_string()));
                }
            };
            match classify(&status) {
                Verdict::Retry { down, hint } => {
                    self.metrics.observe_store(rpc, "retry", elapsed);
                    tracing::debug!(%addr, rpc, code = ?status.code(), message = status.message(), "store attempt failed; trying the next store");
                    if down {
                        self.mark_down(&addr);
                    }
                    if let Some(h) = hint {
                        pause = h.clamp(Duration::from_millis(20), Duration::from_secs(1));
                    }
                }
                Verdict::TooLarge => {
                    self.metrics.observe_store(rpc, "refused", elapsed);
                    tracing::warn!(%addr, rpc, message = status.message(), "store refused a command as too large");
                    return Err(StoreError::CommandTooLarge);
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
    }

    /// Propose a command; returns its revision and recorded outcome.
    pub async fn execute(&self, request: &Request) -> Result<ExecuteResult, StoreError> {
        let (_, result) = self
            .call("execute", None, |mut client| async move {
                client.execute(request, false).await
            })
            .await?;
        Ok(result)
    }

    /// Read, for `principal` when a signed-in user asks (the store refuses a revoked token);
    /// returns the revision the answering replica was at and the outcome.
    pub async fn query(
        &self,
        query: &Query,
        principal: Option<Principal>,
        consistency: ReadConsistency,
    ) -> Result<(u64, QueryOutcome), StoreError> {
        let (_, answer) = self
            .call("query", None, |mut client| async move {
                client.query(query, principal, consistency, false).await
            })
            .await?;
        Ok(answer)
    }

    /// Open a notification stream (revision > `after`, of `user` or of everybody), on
    /// `prefer` if it can serve it. Returns the store's address and the stream.
    pub async fn watch(
        &self,
        after: u64,
        user: Option<Uuid>,
        prefer: Option<&str>,
    ) -> Result<(String, Streaming<WatchEvent>), StoreError> {
        self.call(
            "watch",
            prefer,
            |mut client| async move { client.watch(after, user).await },
        )
        .await
    }

    /// The status of the first store that answers, with its address.
    pub async fn any_status(&self, prefer: Option<&str>) -> Result<(String, StoreStatus), StoreError> {
        self.call("status", prefer, |mut client| async move { client.status().await })
            .await
    }

    /// The status of one store, without failover (`Err` is a short reason).
    pub async fn status_of(&self, addr: &str) -> Result<StoreStatus, String> {
        let mut client = self.client(addr).ok_or_else(|| "unusable address".to_owned())?;
        let started = Instant::now();
        let reply = tokio::time::timeout(STATUS_TIMEOUT, client.status()).await;
        match reply {
            Err(_) => {
                self.metrics.observe_store("status", "timeout", started.elapsed());
                Err("timed out".into())
            }
            Ok(Err(CallError::Status(status))) => {
                self.metrics.observe_store("status", "retry", started.elapsed());
                Err(format!("{:?}", status.code()))
            }
            Ok(Err(CallError::Codec(e))) => Err(format!("undecodable status: {e}")),
            Ok(Ok(status)) => {
                self.metrics.observe_store("status", "ok", started.elapsed());
                Ok(status)
            }
        }
    }

    /// Completes, with the latest log index of the reachable stores, only if `wanted` is
    /// beyond every one of them: a revision no store can reach without new writes. Never
    /// completes otherwise; race it against a read waiting for `wanted`. The own store is
    /// asked first, which settles the usual case (its log already holds `wanted`) in one
    /// local call.
    pub async fn beyond_every_log(&self, wanted: u64) -> u64 {
        let last = |s: &StoreStatus| s.last_log_index.unwrap_or(0);
        let addrs = self.addrs();
        if let Some(own) = addrs.first()
            && let Ok(status) = self.status_of(own).await
            && last(&status) >= wanted
        {
            return std::future::pending().await;
        }
        let statuses = futures::future::join_all(addrs.iter().map(|a| self.status_of(a))).await;
        match statuses.iter().filter_map(|s| s.as_ref().ok()).map(last).max() {
            Some(latest) if latest < wanted => latest,
            _ => std::future::pending().await,
        }
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
    use agenda_shared::query::CredentialsQuery;

    use super::*;

    fn pool(addrs: &[&str]) -> Arc<StorePool> {
        let auth = RpcAuth::new(ClusterSecret::new(vec![b's'; 32]).unwrap(), "api-test");
        StorePool::new(
            auth,
            ClusterTls::insecure(),
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
        ErrorKind::NoLeader.mark(&mut s, Duration::from_millis(500));
        assert!(matches!(classify(&s), Verdict::Retry { down: false, .. }));
        let mut stale = tonic::Status::unavailable("x");
        ErrorKind::StaleReplica.mark(&mut stale, Duration::from_millis(500));
        assert!(matches!(classify(&stale), Verdict::Retry { down: false, .. }));
        let mut stopping = tonic::Status::unavailable("x");
        ErrorKind::ShuttingDown.mark(&mut stopping, Duration::from_millis(500));
        assert!(matches!(classify(&stopping), Verdict::Retry { down: true, .. }));
        let transport = tonic::Status::unavailable("connection refused");
        assert!(matches!(classify(&transport), Verdict::Retry { down: true, .. }));
        let mut bad = tonic::Status::invalid_argument("x");
        ErrorKind::BadRequest.mark(&mut bad, Duration::from_millis(500));
        assert!(matches!(classify(&bad), Verdict::Fatal));
        let mut large = tonic::Status::invalid_argument("x");
        ErrorKind::CommandTooLarge.mark(&mut large, Duration::from_millis(500));
        assert!(matches!(classify(&large), Verdict::TooLarge), "never retried elsewhere");
        assert!(matches!(classify(&tonic::Status::unauthenticated("x")), Verdict::Fatal));
    }

    #[tokio::test]
    async fn an_unreachable_cluster_is_unavailable_within_the_budget() {
        // Port 1 on loopback refuses connections.
        let p = pool(&["127.0.0.1:1"]);
        let err = p
            .query(
                &Query::Credentials(CredentialsQuery { login: "x".into() }),
                None,
                ReadConsistency::Local,
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    }
}
