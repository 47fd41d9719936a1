//! HMAC-SHA256 authentication of every gRPC call between the cluster's containers, in both
//! directions: requests are signed by their sender for one receiver, answers carry a MAC
//! binding them to the request they answer.
//!
//! # Requests
//!
//! All nodes share one secret ([`ClusterSecret`], from `CLUSTER_HMAC_SECRET` or the file named
//! by `CLUSTER_HMAC_SECRET_FILE`, at least [`ClusterSecret::MIN_LEN`] bytes). The client side
//! ([`SignLayer`]) buffers each request body and adds six headers:
//!
//! | header                 | value                                                    |
//! |------------------------|----------------------------------------------------------|
//! | `x-agenda-timestamp`   | Unix time in milliseconds, decimal                       |
//! | `x-agenda-nonce`       | 128 random bits, lowercase hex                           |
//! | `x-agenda-node`        | the sender's node id                                     |
//! | `x-agenda-to`          | the intended receiver ([`Receiver`]): `addr=host:port`, then `;node=<id>` and `;raft=<id>` where the sender knows them |
//! | `x-agenda-body-sha256` | lowercase hex SHA-256 of the body                        |
//! | `x-agenda-signature`   | lowercase hex HMAC-SHA256(secret, signed string)         |
//!
//! where the signed string is
//!
//! ```text
//! agenda-rpc-v2\n{uri path}\n{timestamp}\n{nonce}\n{node}\n{to}\n{body sha256}
//! ```
//!
//! None of the fields can contain a newline (header values and URI paths cannot), so the
//! encoding is unambiguous.
//!
//! The server side ([`VerifyLayer`]) checks everything it can **from the headers, before
//! reading any byte of the body**: headers present and well formed, timestamp within the
//! skew window (default ±30 s), signature (constant time), receiver (this server: one of
//! its addresses or the address the connection arrived at, its node id and Raft id when
//! named, see [`Identity`]), the caller's role against the RPC ([`crate::rpc::policy`]),
//! the declared body length against the RPC's budget, and finally that `(node, nonce)` is
//! new. Only then is the body read, within the RPC's byte budget and a deadline, and its
//! SHA-256 compared with the signed one. The replay check runs after the signature check so
//! forged requests cannot fill the cache; see `replay` for how the cache stays bounded
//! without ever refusing valid traffic.
//!
//! # Answers
//!
//! Every answer carries `x-agenda-answer` (in the trailers, or in the headers of a
//! trailers-only error answer): lowercase hex HMAC-SHA256(secret, answer string) with
//!
//! ```text
//! agenda-rpc-answer-v2\n{uri path}\n{request nonce}\n{to}\n{grpc-status}\n{grpc-message}\n{x-agenda-error}\n{x-agenda-retry-after-ms}\n{body sha256}
//! ```
//!
//! (absent values empty). The client side checks it before handing the answer over: an
//! answer that was rewritten, replayed from another call, or produced by anyone without the
//! secret fails with `UNAVAILABLE` ("answer failed authentication") and is never used. A
//! streamed answer (`Watch`, `WatchMembers`) is checked when it ends; its events are
//! protected in transit by the mutual TLS of the link ([`crate::rpc::tls`]).
//!
//! The secret is never logged: [`ClusterSecret`] prints as `[redacted]` and no error message
//! or log line includes it or a signature.
//!
//! Modules: [`secret`] (the shared secret), the signing and verifying context
//! ([`RpcAuth`], here), `replay` (the nonce cache), [`layer`] (the client and server tower
//! layers).

mod layer;
mod receiver;
mod replay;
mod secret;

pub use layer::{SignLayer, SignService, VerifyLayer, VerifyService};
pub use receiver::{Identity, Receiver};
use replay::ReplayCache;
pub use secret::{AuthError, ClusterSecret};

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};

pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

pub(crate) type HmacSha256 = Hmac<Sha256>;
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Name of the header carrying the hex HMAC-SHA256 signature.
pub const SIGNATURE_HEADER: &str = "x-agenda-signature";
/// Name of the header carrying the signing time (Unix milliseconds, decimal).
pub const TIMESTAMP_HEADER: &str = "x-agenda-timestamp";
/// Name of the header carrying the single-use nonce.
pub const NONCE_HEADER: &str = "x-agenda-nonce";
/// Name of the header carrying the sender's node id.
pub const NODE_HEADER: &str = "x-agenda-node";
/// Name of the header naming the intended receiver ([`Receiver`]).
pub const TO_HEADER: &str = "x-agenda-to";
/// Name of the header carrying the hex SHA-256 of the request body.
pub const BODY_HASH_HEADER: &str = "x-agenda-body-sha256";
/// Name of the trailer (or header, for trailers-only answers) carrying the answer's MAC.
pub const ANSWER_HEADER: &str = "x-agenda-answer";

/// Environment variable holding the cluster secret itself.
pub const SECRET_ENV: &str = "CLUSTER_HMAC_SECRET";
/// Environment variable naming a file (e.g. a Docker secret) that holds the cluster secret.
pub const SECRET_FILE_ENV: &str = "CLUSTER_HMAC_SECRET_FILE";

/// Default tolerated clock skew between signer and verifier.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(30);
/// Largest skew window [`RpcAuth::with_window`] accepts (longer values are clamped).
pub const MAX_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);
/// Default maximum number of remembered `(node, nonce)` pairs.
pub const DEFAULT_REPLAY_CAPACITY: usize = 1_000_000;
/// Default longest time the server waits for a request body once the headers verified.
pub const DEFAULT_BODY_DEADLINE: Duration = Duration::from_secs(10);

/// Longest accepted nonce header value, in bytes.
const MAX_NONCE_LEN: usize = 128;
/// Longest accepted node header value, in bytes.
const MAX_NODE_LEN: usize = 256;
/// Longest accepted receiver header value, in bytes.
const MAX_TO_LEN: usize = 512;
/// Longest claimed node id copied into a log line.
const MAX_LOGGED_NODE_LEN: usize = 64;

/// Signing and verifying context: the keyed HMAC, this node's id, the replay cache (shared by
/// all clones) and the tolerated clock skew (default 30 s).
#[derive(Clone)]
pub struct RpcAuth {
    mac: HmacSha256,
    node_id: Arc<str>,
    window: Duration,
    replay: Arc<Mutex<ReplayCache>>,
}

impl fmt::Debug for RpcAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcAuth")
            .field("secret", &"[redacted]")
            .field("node_id", &self.node_id)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

/// The six authentication headers of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// Lowercase hex HMAC-SHA256 (`x-agenda-signature`).
    pub signature: String,
    /// Unix milliseconds, decimal (`x-agenda-timestamp`).
    pub timestamp: String,
    /// Single-use nonce (`x-agenda-nonce`).
    pub nonce: String,
    /// Sender node id (`x-agenda-node`).
    pub node: String,
    /// Intended receiver (`x-agenda-to`).
    pub to: String,
    /// Lowercase hex SHA-256 of the body (`x-agenda-body-sha256`).
    pub body_sha256: String,
}

impl SignedHeaders {
    /// Inserts (replacing any existing values) the six headers into `headers`.
    ///
    /// A value that is not a valid header value (node ids should be visible ASCII) is
    /// skipped with a warning; the peer will then reject the request as unauthenticated.
    pub fn apply(&self, headers: &mut HeaderMap) {
        let pairs = [
            (SIGNATURE_HEADER, &self.signature),
            (TIMESTAMP_HEADER, &self.timestamp),
            (NONCE_HEADER, &self.nonce),
            (NODE_HEADER, &self.node),
            (TO_HEADER, &self.to),
            (BODY_HASH_HEADER, &self.body_sha256),
        ];
        for (name, value) in pairs {
            match HeaderValue::from_str(value) {
                Ok(value) => {
                    headers.insert(HeaderName::from_static(name), value);
                }
                Err(_) => tracing::warn!(header = name, "cannot encode RPC auth header value"),
            }
        }
    }
}

/// Why a request failed authentication. Messages never include the secret or a signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The named authentication header is absent.
    #[error("missing header {0}")]
    Missing(&'static str),
    /// The named authentication header is present but cannot be parsed.
    #[error("malformed header {0}")]
    Malformed(&'static str),
    /// The timestamp is outside the tolerated clock skew window.
    #[error("timestamp outside the allowed clock skew window")]
    Stale,
    /// The `(node, nonce)` pair was already used.
    #[error("nonce already used")]
    Replayed,
    /// The signature does not match the request.
    #[error("signature mismatch")]
    BadSignature,
    /// The request is signed for another receiver.
    #[error("request meant for another receiver")]
    WrongReceiver,
    /// The body does not have the signed hash.
    #[error("body does not match its signed hash")]
    BodyMismatch,
}

/// Request extension the server layer adds after successful verification: the
/// authenticated sender's node id. Handlers read it with
/// `request.extensions().get::<AuthenticatedNode>()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedNode(pub String);

/// Authentication headers parsed from a request, before the signature is checked.
#[derive(Debug)]
struct ParsedHeaders {
    signature: Vec<u8>,
    timestamp: String,
    timestamp_ms: i64,
    nonce: String,
    node: String,
    to: String,
    body_sha256: String,
}

/// A request whose headers verified: who sent it, for whom, and the body hash it must
/// have.
#[derive(Debug, Clone)]
pub struct VerifiedHeaders {
    /// The sender's node id.
    pub node: String,
    /// The request's nonce (the answer's MAC names it).
    pub nonce: String,
    /// The receiver as signed.
    pub to: String,
    body_sha256: [u8; 32],
}

impl VerifiedHeaders {
    /// Whether `body` is the body that was signed.
    pub fn body_matches(&self, body: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(body).into();
        subtle::ConstantTimeEq::ct_eq(&digest[..], &self.body_sha256[..]).into()
    }
}

/// The fields of an answer its MAC covers besides the body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AnswerFields<'a> {
    /// `grpc-status`.
    pub status: &'a str,
    /// `grpc-message`.
    pub message: &'a str,
    /// `x-agenda-error`.
    pub kind: &'a str,
    /// `x-agenda-retry-after-ms`.
    pub retry_after: &'a str,
}

impl<'a> AnswerFields<'a> {
    /// The fields as found in `map` (the trailers, or the headers of a trailers-only answer).
    pub fn of(map: &'a HeaderMap) -> Self {
        let get = |name: &str| map.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
        Self {
            status: get("grpc-status"),
            message: get("grpc-message"),
            kind: get(crate::rpc::kind::ERROR_KIND_KEY),
            retry_after: get(crate::rpc::kind::RETRY_AFTER_KEY),
        }
    }
}

impl RpcAuth {
    /// Creates a context for node `node_id` (should be visible ASCII) with the default
    /// window and replay capacity.
    pub fn new(secret: ClusterSecret, node_id: impl Into<String>) -> Self {
        Self {
            mac: secret.hmac(),
            node_id: Arc::from(node_id.into()),
            window: DEFAULT_WINDOW,
            replay: Arc::new(Mutex::new(ReplayCache::new(DEFAULT_REPLAY_CAPACITY))),
        }
    }

    /// Sets the tolerated clock skew (clamped to [`MAX_WINDOW`]). Replay cache entries live for
    /// as long as their timestamp is within the window.
    pub fn with_window(mut self, window: Duration) -> Self {
        self.window = window.min(MAX_WINDOW);
        self
    }

    /// Replaces the replay cache with a fresh one remembering at most `capacity` nonces
    /// (no longer shared with clones made before this call).
    pub fn with_replay_capacity(mut self, capacity: usize) -> Self {
        self.replay = Arc::new(Mutex::new(ReplayCache::new(capacity)));
        self
    }

    /// This node's id, sent in `x-agenda-node`.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The tolerated clock skew.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Signs a request for `to` now, with a fresh random 128-bit nonce.
    pub fn sign(&self, path: &str, to: &str, body: &[u8]) -> SignedHeaders {
        let nonce = format!("{:032x}", rand::random::<u128>());
        self.sign_at(path, to, body, now_unix_ms(), &nonce)
    }

    /// Signs a request with an explicit timestamp and nonce (tests use this to forge variations).
    pub fn sign_at(&self, path: &str, to: &str, body: &[u8], timestamp_ms: i64, nonce: &str) -> SignedHeaders {
        let timestamp = timestamp_ms.to_string();
        let body_sha256 = hex::encode(Sha256::digest(body));
        let mac = self.request_mac(path, &timestamp, nonce, &self.node_id, to, &body_sha256);
        SignedHeaders {
            signature: hex::encode(mac.finalize().into_bytes()),
            timestamp,
            nonce: nonce.to_owned(),
            node: self.node_id.to_string(),
            to: to.to_owned(),
            body_sha256,
        }
    }

    /// Verifies a whole request (headers and body) meant for `me` arriving on a connection
    /// whose local address is `local`, and records the nonce on success. Returns the
    /// authenticated sender's node id.
    pub fn verify(
        &self,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
        me: &Identity,
        local: Option<std::net::SocketAddr>,
    ) -> Result<String, VerifyError> {
        let verified = self.verify_headers(path, headers, me, local)?;
        if !verified.body_matches(body) {
            return Err(VerifyError::BodyMismatch);
        }
        Ok(verified.node)
    }

    /// Verifies everything the headers carry (format, freshness, signature, receiver) and
    /// records the nonce; the body is checked later against [`VerifiedHeaders::body_matches`].
    pub fn verify_headers(
        &self,
        path: &str,
        headers: &HeaderMap,
        me: &Identity,
        local: Option<std::net::SocketAddr>,
    ) -> Result<VerifiedHeaders, VerifyError> {
        let parsed = parse_headers(headers)?;
        self.check_fresh(parsed.timestamp_ms)?;
        self.request_mac(
            path,
            &parsed.timestamp,
            &parsed.nonce,
            &parsed.node,
            &parsed.to,
            &parsed.body_sha256,
        )
        .verify_slice(&parsed.signature)
        .map_err(|_| VerifyError::BadSignature)?;
        let receiver = Receiver::parse(&parsed.to).ok_or(VerifyError::Malformed(TO_HEADER))?;
        if !me.accepts(&receiver, local) {
            return Err(VerifyError::WrongReceiver);
        }
        let window_ms = i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX);
        let fresh = self
            .replay
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .check_and_insert(
                &parsed.node,
                &parsed.nonce,
                parsed.timestamp_ms,
                now_unix_ms(),
                window_ms,
            );
        if !fresh {
            return Err(VerifyError::Replayed);
        }
        let mut body_sha256 = [0u8; 32];
        hex::decode_to_slice(&parsed.body_sha256, &mut body_sha256)
            .map_err(|_| VerifyError::Malformed(BODY_HASH_HEADER))?;
        Ok(VerifiedHeaders {
            node: parsed.node,
            nonce: parsed.nonce,
            to: parsed.to,
            body_sha256,
        })
    }

    /// The MAC of an answer to the request `(path, nonce, to)` (lowercase hex).
    pub fn answer_mac(
        &self,
        path: &str,
        nonce: &str,
        to: &str,
        fields: AnswerFields<'_>,
        body_sha256: &[u8],
    ) -> String {
        let body = hex::encode(body_sha256);
        let lines = [
            "agenda-rpc-answer-v2",
            path,
            nonce,
            to,
            fields.status,
            fields.message,
            fields.kind,
            fields.retry_after,
            &body,
        ];
        hex::encode(self.mac_of_lines(&lines).finalize().into_bytes())
    }

    /// Whether `claimed` (hex) is the MAC of that answer; constant time.
    pub fn answer_verifies(
        &self,
        path: &str,
        nonce: &str,
        to: &str,
        fields: AnswerFields<'_>,
        body_sha256: &[u8],
        claimed: &str,
    ) -> bool {
        let expected = self.answer_mac(path, nonce, to, fields, body_sha256);
        subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), claimed.as_bytes()).into()
    }

    fn check_fresh(&self, timestamp_ms: i64) -> Result<(), VerifyError> {
        let window_ms = u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX);
        if now_unix_ms().abs_diff(timestamp_ms) > window_ms {
            return Err(VerifyError::Stale);
        }
        Ok(())
    }

    fn request_mac(
        &self,
        path: &str,
        timestamp: &str,
        nonce: &str,
        node: &str,
        to: &str,
        body_sha256: &str,
    ) -> HmacSha256 {
        self.mac_of_lines(&["agenda-rpc-v2", path, timestamp, nonce, node, to, body_sha256])
    }

    /// The HMAC of `lines` joined with `\n` (none of them can hold a newline).
    fn mac_of_lines(&self, lines: &[&str]) -> HmacSha256 {
        let mut mac = self.mac.clone();
        for (i, line) in lines.iter().enumerate() {
            if i > 0 {
                mac.update(b"\n");
            }
            mac.update(line.as_bytes());
        }
        mac
    }
}

pub(crate) fn now_unix_ms() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

/// The single value of a header, or `Missing` / `Malformed` (repeated or not visible ASCII).
fn header_str<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, VerifyError> {
    let mut values = headers.get_all(name).iter();
    let value = values.next().ok_or(VerifyError::Missing(name))?;
    if values.next().is_some() {
        return Err(VerifyError::Malformed(name));
    }
    value.to_str().map_err(|_| VerifyError::Malformed(name))
}

fn parse_headers(headers: &HeaderMap) -> Result<ParsedHeaders, VerifyError> {
    const ALL: [&str; 6] = [
        SIGNATURE_HEADER,
        TIMESTAMP_HEADER,
        NONCE_HEADER,
        NODE_HEADER,
        TO_HEADER,
        BODY_HASH_HEADER,
    ];
    // Presence of all first, in a fixed order, so "missing" wins over "malformed".
    for name in ALL {
        if !headers.contains_key(name) {
            return Err(VerifyError::Missing(name));
        }
    }
    let signature = header_str(headers, SIGNATURE_HEADER)?;
    let timestamp = header_str(headers, TIMESTAMP_HEADER)?;
    let nonce = header_str(headers, NONCE_HEADER)?;
    let node = header_str(headers, NODE_HEADER)?;
    let to = header_str(headers, TO_HEADER)?;
    let body_sha256 = header_str(headers, BODY_HASH_HEADER)?;

    let signature = hex::decode(signature).map_err(|_| VerifyError::Malformed(SIGNATURE_HEADER))?;
    let timestamp_ms = timestamp
        .parse::<i64>()
        .map_err(|_| VerifyError::Malformed(TIMESTAMP_HEADER))?;
    if nonce.is_empty() || nonce.len() > MAX_NONCE_LEN {
        return Err(VerifyError::Malformed(NONCE_HEADER));
    }
    if node.is_empty() || node.len() > MAX_NODE_LEN {
        return Err(VerifyError::Malformed(NODE_HEADER));
    }
    if to.is_empty() || to.len() > MAX_TO_LEN {
        return Err(VerifyError::Malformed(TO_HEADER));
    }
    if body_sha256.len() != 64 || !body_sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(VerifyError::Malformed(BODY_HASH_HEADER));
    }
    Ok(ParsedHeaders {
        signature,
        timestamp: timestamp.to_owned(),
        timestamp_ms,
        nonce: nonce.to_owned(),
        node: node.to_owned(),
        to: to.to_owned(),
        body_sha256: body_sha256.to_owned(),
    })
}

#[cfg(test)]
mod tests;
