//! HTTP access to the API fronts: one base URL per slot, bounded timeouts, and retries.
//!
//! A *call* is one logical request. It is retried (same body, same `Idempotency-Key`)
//! while it fails in a way a client should retry: a connection error, a timeout, 429,
//! 502, 503 or 504. A free call moves to the next slot on every retry (what a load
//! balancer would do); a pinned call stays on its slot (the smoke story tests slots one by
//! one and must not hide a broken one). A call that keeps failing past the retry budget,
//! or gets any other answer, is over: the caller decides what the status means.

use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::Value;
use tokio::time::Instant;

use crate::args::Args;

/// Connect timeout of one attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Timeout of one attempt. Above the API's own store retry budget (15 s by default), so a
/// slow answer is the API's verdict rather than ours.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Pause before retrying after a transport error.
const TRANSPORT_BACKOFF: Duration = Duration::from_millis(150);
/// Longest pause honoured from a `Retry-After`.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// One API front.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    /// As given, e.g. `api-3:8080`.
    pub(crate) name: String,
    /// `http://api-3:8080`.
    base: String,
}

/// The API fronts of one cluster.
#[derive(Debug)]
pub(crate) struct Api {
    http: reqwest::Client,
    slots: Vec<Slot>,
    retry_budget: Duration,
}

/// One logical request.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    method: Method,
    path: String,
    body: Option<Value>,
    token: Option<String>,
    idempotency_key: Option<String>,
    min_revision: Option<u64>,
    pinned: bool,
}

impl Call {
    /// A GET of `path`.
    pub(crate) fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path, None)
    }

    /// A POST of `body` to `path`, with a fresh idempotency key (kept across retries).
    pub(crate) fn post(path: impl Into<String>, body: Value) -> Self {
        let mut call = Self::new(Method::POST, path, Some(body));
        call.idempotency_key = Some(uuid::Uuid::new_v4().to_string());
        call
    }

    fn new(method: Method, path: impl Into<String>, body: Option<Value>) -> Self {
        Self {
            method,
            path: path.into(),
            body,
            token: None,
            idempotency_key: None,
            min_revision: None,
            pinned: false,
        }
    }

    /// Authenticate as the owner of `token`.
    pub(crate) fn token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    /// Read at least revision `rev` (`X-Agenda-Min-Revision`): read-your-writes on any slot.
    pub(crate) fn min_revision(mut self, rev: u64) -> Self {
        self.min_revision = Some(rev);
        self
    }

    /// Retry on the first slot only.
    pub(crate) fn pinned(mut self) -> Self {
        self.pinned = true;
        self
    }
}

/// The final answer of a call.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    /// The JSON body (`Null` when empty or not JSON).
    pub(crate) body: Value,
    /// `X-Agenda-Revision`.
    pub(crate) revision: Option<u64>,
    /// Index of the slot that gave this answer.
    pub(crate) slot: usize,
    /// Attempts made (1 when the first one answered).
    pub(crate) attempts: u32,
    pub(crate) elapsed: Duration,
}

impl Reply {
    /// The body, if the status is `expected`; otherwise an error naming the answer.
    pub(crate) fn expect(self, expected: u16) -> anyhow::Result<Value> {
        if self.status == expected {
            Ok(self.body)
        } else {
            bail!(
                "expected {expected}, got {} from slot #{}: {}",
                self.status,
                self.slot + 1,
                short(&self.body)
            )
        }
    }

    /// `X-Agenda-Revision`, required.
    pub(crate) fn revision(&self) -> anyhow::Result<u64> {
        self.revision.context("the answer has no X-Agenda-Revision header")
    }
}

/// A call that never got a final answer within the retry budget.
#[derive(Debug, Clone)]
pub(crate) struct CallFailed {
    pub(crate) attempts: u32,
    /// The last error seen.
    pub(crate) last: String,
}

impl std::fmt::Display for CallFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "gave up after {} attempts: {}", self.attempts, self.last)
    }
}

impl std::error::Error for CallFailed {}

/// A JSON value cut to a readable length for error messages.
pub(crate) fn short(v: &Value) -> String {
    let mut s = v.to_string();
    if s.len() > 300 {
        let mut cut = 300;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// Whether an answer with this status should be retried (elsewhere).
fn retryable(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

impl Api {
    /// The fronts named by `--api`; `tasks.<service>` entries are expanded through DNS.
    pub(crate) async fn new(args: &Args) -> anyhow::Result<Self> {
        let mut slots = Vec::new();
        for entry in &args.api {
            let with_port = if entry.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
                entry.clone()
            } else {
                format!("{entry}:8080")
            };
            if with_port.starts_with("tasks.") {
                let lookup = tokio::net::lookup_host(with_port.as_str());
                let mut addrs: Vec<_> = tokio::time::timeout(Duration::from_secs(5), lookup)
                    .await
                    .with_context(|| format!("resolving {with_port} timed out"))?
                    .with_context(|| format!("resolving {with_port}"))?
                    .collect();
                addrs.sort();
                addrs.dedup();
                slots.extend(addrs.into_iter().map(|a| Slot {
                    name: a.to_string(),
                    base: format!("http://{a}"),
                }));
            } else {
                slots.push(Slot {
                    base: format!("http://{with_port}"),
                    name: with_port,
                });
            }
        }
        if slots.is_empty() {
            bail!("no API front to talk to");
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(5))
            .no_proxy()
            .build()
            .context("HTTP client")?;
        Ok(Self {
            http,
            slots,
            retry_budget: args.retry_budget,
        })
    }

    /// Number of fronts.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// The name of slot `i` (modulo the number of slots).
    pub(crate) fn name(&self, i: usize) -> &str {
        &self.slots[i % self.slots.len()].name
    }

    /// The `ws://` URL of `/ws` on slot `i`.
    pub(crate) fn ws_url(&self, i: usize) -> String {
        let base = &self.slots[i % self.slots.len()].base;
        format!("ws{}/ws", base.trim_start_matches("http"))
    }

    /// Run `call`, starting on slot `first`, until it gets a final answer or the retry
    /// budget is spent.
    pub(crate) async fn call(&self, call: &Call, first: usize) -> Result<Reply, CallFailed> {
        let started = Instant::now();
        let deadline = started + self.retry_budget;
        let mut slot = first % self.slots.len();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let (last, pause) = match self.attempt(call, slot).await {
                Ok((status, body, revision, retry_after)) => {
                    if !retryable(status) {
                        return Ok(Reply {
                            status,
                            body,
                            revision,
                            slot,
                            attempts,
                            elapsed: started.elapsed(),
                        });
                    }
                    let pause = retry_after.unwrap_or(TRANSPORT_BACKOFF).min(MAX_BACKOFF);
                    (
                        format!("{} answered {status}: {}", self.name(slot), short(&body)),
                        pause,
                    )
                }
                Err(e) => (format!("{}: {e}", self.name(slot)), TRANSPORT_BACKOFF),
            };
            if Instant::now() + pause >= deadline {
                return Err(CallFailed { attempts, last });
            }
            tokio::time::sleep(pause).await;
            if !call.pinned {
                slot = (slot + 1) % self.slots.len();
            }
        }
    }

    /// One HTTP exchange: `(status, body, revision, retry_after)`.
    async fn attempt(&self, call: &Call, slot: usize) -> Result<(u16, Value, Option<u64>, Option<Duration>), String> {
        let url = format!("{}{}", self.slots[slot].base, call.path);
        let mut request = self.http.request(call.method.clone(), url);
        if let Some(token) = &call.token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = &call.idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(rev) = call.min_revision {
            request = request.header("X-Agenda-Min-Revision", rev.to_string());
        }
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(describe)?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let revision = header("x-agenda-revision");
        let retry_after = header("retry-after").map(Duration::from_secs);
        let bytes = response.bytes().await.map_err(describe)?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, body, revision, retry_after))
    }
}

/// A transport error with its causes, e.g. `connect: Connection refused`.
fn describe(e: reqwest::Error) -> String {
    let kind = if e.is_connect() {
        "connect"
    } else if e.is_timeout() {
        "timeout"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "request"
    };
    let mut text = kind.to_owned();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
