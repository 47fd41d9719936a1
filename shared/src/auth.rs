//! HMAC-SHA256 authentication of every gRPC call between the cluster's containers.
//!
//! # Scheme
//!
//! All nodes share one secret ([`ClusterSecret`], from `CLUSTER_HMAC_SECRET` or the file named
//! by `CLUSTER_HMAC_SECRET_FILE`, at least [`ClusterSecret::MIN_LEN`] bytes). The client side
//! ([`SignLayer`]) buffers each request body and adds four headers:
//!
//! | header                 | value                                              |
//! |------------------------|----------------------------------------------------|
//! | `x-agenda-timestamp`   | Unix time in milliseconds, decimal                 |
//! | `x-agenda-nonce`       | 128 random bits, lowercase hex                     |
//! | `x-agenda-node`        | the sender's node id                               |
//! | `x-agenda-signature`   | lowercase hex HMAC-SHA256(secret, signed string)   |
//!
//! where the signed string is
//!
//! ```text
//! {uri path}\n{timestamp}\n{nonce}\n{node}\n{hex(sha256(body))}
//! ```
//!
//! and the path is the request URI path, e.g. `/agenda.v1.Raft/Vote`. None of the fields can
//! contain a newline (header values and URI paths cannot), so the encoding is unambiguous.
//!
//! The server side ([`VerifyLayer`]) buffers the body (capped, see
//! [`VerifyLayer::with_max_body_bytes`]) and rejects with `UNAUTHENTICATED`, without calling
//! the wrapped service, a request whose headers are missing or malformed, whose timestamp
//! is more than the skew window (default ±30 s) away from the local clock, whose signature
//! does not match (compared in constant time), or whose `(node, nonce)` pair was already seen.
//! The replay check runs after the signature check so forged requests cannot fill the cache;
//! cache entries live for twice the window, which outlasts any timestamp that is still fresh.
//!
//! The secret is never logged: [`ClusterSecret`] prints as `[redacted]` and no error message
//! or log line includes it or a signature.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hmac::digest::Key;
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use sha2::{Digest, Sha256};
use tonic::body::Body;

type HmacSha256 = Hmac<Sha256>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Name of the header carrying the hex HMAC-SHA256 signature.
pub const SIGNATURE_HEADER: &str = "x-agenda-signature";
/// Name of the header carrying the signing time (Unix milliseconds, decimal).
pub const TIMESTAMP_HEADER: &str = "x-agenda-timestamp";
/// Name of the header carrying the single-use nonce.
pub const NONCE_HEADER: &str = "x-agenda-nonce";
/// Name of the header carrying the sender's node id.
pub const NODE_HEADER: &str = "x-agenda-node";

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
/// Default maximum request body the server layer buffers (16 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Longest accepted nonce header value, in bytes.
const MAX_NONCE_LEN: usize = 128;
/// Longest accepted node header value, in bytes.
const MAX_NODE_LEN: usize = 256;
/// The replay cache is never pruned below this many entries (amortisation floor).
const PRUNE_FLOOR: usize = 1024;
/// When the replay cache is full, prune it at most this often.
const FULL_PRUNE_INTERVAL: Duration = Duration::from_secs(1);
/// Longest claimed node id copied into a log line.
const MAX_LOGGED_NODE_LEN: usize = 64;

// ---------------------------------------------------------------------------------------------
// Secret
// ---------------------------------------------------------------------------------------------

/// The shared cluster secret. `Debug` and `Display` print `[redacted]`; it is never logged.
#[derive(Clone)]
pub struct ClusterSecret(Arc<[u8]>);

impl ClusterSecret {
    /// Minimum accepted secret length in bytes.
    pub const MIN_LEN: usize = 32;

    /// Wraps raw secret bytes, rejecting secrets shorter than [`Self::MIN_LEN`].
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, AuthError> {
        let bytes = bytes.into();
        if bytes.len() < Self::MIN_LEN {
            return Err(AuthError::SecretTooShort { len: bytes.len() });
        }
        Ok(Self(Arc::from(bytes)))
    }

    /// Loads the secret from a literal value or from a file (a Docker secret).
    ///
    /// The value wins when both are given. An empty value or empty path counts as not given.
    /// File contents have trailing whitespace (including the final newline) trimmed; the value
    /// is used verbatim. Neither given yields [`AuthError::MissingSecret`].
    pub fn from_value_or_file(value: Option<&str>, file: Option<&Path>) -> Result<Self, AuthError> {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            return Self::new(value.as_bytes());
        }
        if let Some(path) = file.filter(|p| !p.as_os_str().is_empty()) {
            let mut raw = std::fs::read(path).map_err(|source| AuthError::SecretFile {
                path: path.to_path_buf(),
                source,
            })?;
            let trimmed = raw.trim_ascii_end().len();
            raw.truncate(trimmed);
            return Self::new(raw);
        }
        Err(AuthError::MissingSecret)
    }

    /// Loads the secret from [`SECRET_ENV`] or, failing that, the file named by
    /// [`SECRET_FILE_ENV`] (see [`Self::from_value_or_file`]).
    pub fn from_env() -> Result<Self, AuthError> {
        let value = std::env::var(SECRET_ENV).ok();
        let file = std::env::var_os(SECRET_FILE_ENV).map(PathBuf::from);
        Self::from_value_or_file(value.as_deref(), file.as_deref())
    }

    /// The 64-byte HMAC-SHA256 block key derived from the secret exactly as RFC 2104 does it
    /// (zero-padded, or hashed first when longer than a block), so keying cannot fail.
    fn hmac(&self) -> HmacSha256 {
        let mut key = Key::<HmacSha256>::default();
        if self.0.len() <= key.len() {
            key[..self.0.len()].copy_from_slice(&self.0);
        } else {
            let hash = Sha256::digest(&self.0);
            key[..hash.len()].copy_from_slice(&hash);
        }
        <HmacSha256 as KeyInit>::new(&key)
    }
}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Why the cluster secret could not be loaded. Messages never include the secret.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Neither `CLUSTER_HMAC_SECRET` nor `CLUSTER_HMAC_SECRET_FILE` was provided.
    #[error(
        "cluster secret missing: set {SECRET_ENV} or {SECRET_FILE_ENV} (at least {} bytes)",
        ClusterSecret::MIN_LEN
    )]
    MissingSecret,
    /// The secret is shorter than [`ClusterSecret::MIN_LEN`].
    #[error(
        "cluster secret too short: {len} bytes, at least {} required",
        ClusterSecret::MIN_LEN
    )]
    SecretTooShort {
        /// Length of the rejected secret in bytes.
        len: usize,
    },
    /// The secret file could not be read.
    #[error("cannot read cluster secret file {}: {source}", path.display())]
    SecretFile {
        /// The file that was named.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
}

// ---------------------------------------------------------------------------------------------
// Signing / verifying context
// ---------------------------------------------------------------------------------------------

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

/// The four authentication headers of one request.
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
}

impl SignedHeaders {
    /// Inserts (replacing any existing values) the four headers into `headers`.
    ///
    /// A node id that is not a valid header value (node ids should be visible ASCII) is
    /// skipped with a warning; the peer will then reject the request as unauthenticated.
    pub fn apply(&self, headers: &mut HeaderMap) {
        let pairs = [
            (SIGNATURE_HEADER, &self.signature),
            (TIMESTAMP_HEADER, &self.timestamp),
            (NONCE_HEADER, &self.nonce),
            (NODE_HEADER, &self.node),
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
    /// The `(node, nonce)` pair was already used (or the replay cache is full).
    #[error("nonce already used")]
    Replayed,
    /// The signature does not match the request.
    #[error("signature mismatch")]
    BadSignature,
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
    /// twice this long.
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

    /// Signs a request now, with a fresh random 128-bit nonce.
    pub fn sign(&self, path: &str, body: &[u8]) -> SignedHeaders {
        let nonce = format!("{:032x}", rand::random::<u128>());
        self.sign_at(path, body, now_unix_ms(), &nonce)
    }

    /// Signs a request with an explicit timestamp and nonce (tests use this to forge variations).
    pub fn sign_at(&self, path: &str, body: &[u8], timestamp_ms: i64, nonce: &str) -> SignedHeaders {
        let timestamp = timestamp_ms.to_string();
        let mac = self.mac_for(path, &timestamp, nonce, &self.node_id, body);
        SignedHeaders {
            signature: hex::encode(mac.finalize().into_bytes()),
            timestamp,
            nonce: nonce.to_owned(),
            node: self.node_id.to_string(),
        }
    }

    /// Verifies a request's authentication headers against its path and body, and records the
    /// nonce on success. Returns the authenticated sender's node id.
    pub fn verify(&self, path: &str, headers: &HeaderMap, body: &[u8]) -> Result<String, VerifyError> {
        let parsed = parse_headers(headers)?;
        self.verify_parsed(path, &parsed, body)
    }

    fn verify_parsed(&self, path: &str, parsed: &ParsedHeaders, body: &[u8]) -> Result<String, VerifyError> {
        self.check_fresh(parsed.timestamp_ms)?;
        self.mac_for(path, &parsed.timestamp, &parsed.nonce, &parsed.node, body)
            .verify_slice(&parsed.signature)
            .map_err(|_| VerifyError::BadSignature)?;
        let fresh = self
            .replay
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .check_and_insert(
                &parsed.node,
                &parsed.nonce,
                self.window.saturating_mul(2),
                Instant::now(),
            );
        if !fresh {
            return Err(VerifyError::Replayed);
        }
        Ok(parsed.node.clone())
    }

    fn check_fresh(&self, timestamp_ms: i64) -> Result<(), VerifyError> {
        let window_ms = u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX);
        if now_unix_ms().abs_diff(timestamp_ms) > window_ms {
            return Err(VerifyError::Stale);
        }
        Ok(())
    }

    fn mac_for(&self, path: &str, timestamp: &str, nonce: &str, node: &str, body: &[u8]) -> HmacSha256 {
        let body_hash = hex::encode(Sha256::digest(body));
        let mut mac = self.mac.clone();
        for part in [path, timestamp, nonce, node] {
            mac.update(part.as_bytes());
            mac.update(b"\n");
        }
        mac.update(body_hash.as_bytes());
        mac
    }
}

fn now_unix_ms() -> i64 {
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
    // Presence of all four first, in a fixed order, so "missing" wins over "malformed".
    for name in [SIGNATURE_HEADER, TIMESTAMP_HEADER, NONCE_HEADER, NODE_HEADER] {
        if !headers.contains_key(name) {
            return Err(VerifyError::Missing(name));
        }
    }
    let signature = header_str(headers, SIGNATURE_HEADER)?;
    let timestamp = header_str(headers, TIMESTAMP_HEADER)?;
    let nonce = header_str(headers, NONCE_HEADER)?;
    let node = header_str(headers, NODE_HEADER)?;

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
    Ok(ParsedHeaders {
        signature,
        timestamp: timestamp.to_owned(),
        timestamp_ms,
        nonce: nonce.to_owned(),
        node: node.to_owned(),
    })
}

// ---------------------------------------------------------------------------------------------
// Replay cache
// ---------------------------------------------------------------------------------------------

/// Remembers recently used `(node, nonce)` pairs until they expire.
///
/// Keys are the first 128 bits of SHA-256(node `\n` nonce): fixed size whatever the header
/// lengths, and a collision merely rejects one honest request.
#[derive(Debug)]
struct ReplayCache {
    entries: HashMap<[u8; 16], Instant>,
    capacity: usize,
    /// Prune when the map reaches this size (doubles with the live size: amortised O(1)).
    next_prune_len: usize,
    last_prune: Instant,
}

impl ReplayCache {
    fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            capacity,
            next_prune_len: PRUNE_FLOOR,
            last_prune: Instant::now(),
        }
    }

    fn key(node: &str, nonce: &str) -> [u8; 16] {
        let digest = Sha256::new()
            .chain_update(node.as_bytes())
            .chain_update(b"\n")
            .chain_update(nonce.as_bytes())
            .finalize();
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        key
    }

    /// Records the pair and returns `true` if it was not already live; `false` on a replay or
    /// when the cache is full of live entries.
    fn check_and_insert(&mut self, node: &str, nonce: &str, ttl: Duration, now: Instant) -> bool {
        let len = self.entries.len();
        let full = len >= self.capacity;
        if len >= self.next_prune_len || (full && now.saturating_duration_since(self.last_prune) >= FULL_PRUNE_INTERVAL)
        {
            self.prune(now);
        }
        let expires = now.checked_add(ttl).unwrap_or(now);
        let key = Self::key(node, nonce);
        if let Some(existing) = self.entries.get_mut(&key) {
            if *existing > now {
                return false;
            }
            *existing = expires;
            return true;
        }
        if self.entries.len() >= self.capacity {
            return false;
        }
        self.entries.insert(key, expires);
        true
    }

    fn prune(&mut self, now: Instant) {
        self.entries.retain(|_, expires| *expires > now);
        self.next_prune_len = self.entries.len().saturating_mul(2).max(PRUNE_FLOOR);
        self.last_prune = now;
    }
}

// ---------------------------------------------------------------------------------------------
// Client layer
// ---------------------------------------------------------------------------------------------

/// Client-side tower layer: buffers each (unary) request body, signs the request and forwards
/// it. Use as `MyClient::new(ServiceBuilder::new().layer(SignLayer::new(auth)).service(channel))`.
#[derive(Clone, Debug)]
pub struct SignLayer {
    auth: RpcAuth,
}

impl SignLayer {
    /// Creates the layer signing as `auth.node_id()`.
    pub fn new(auth: RpcAuth) -> Self {
        Self { auth }
    }
}

impl<S> tower::Layer<S> for SignLayer {
    type Service = SignService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SignService {
            inner,
            auth: self.auth.clone(),
        }
    }
}

/// Service produced by [`SignLayer`].
#[derive(Clone, Debug)]
pub struct SignService<S> {
    inner: S,
    auth: RpcAuth,
}

impl<S> tower::Service<http::Request<Body>> for SignService<S>
where
    S: tower::Service<http::Request<Body>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        // Use the instance that was driven to readiness; leave a fresh clone in its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let bytes = body.collect().await.map_err(BoxError::from)?.to_bytes();
            auth.sign(parts.uri.path(), &bytes).apply(&mut parts.headers);
            let req = http::Request::from_parts(parts, rewrap(bytes));
            inner.call(req).await.map_err(Into::into)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Server layer
// ---------------------------------------------------------------------------------------------

/// Server-side tower layer: `Server::builder().layer(VerifyLayer::new(auth))`. Rejects
/// unauthenticated requests with `UNAUTHENTICATED` (and bodies over the cap with
/// `RESOURCE_EXHAUSTED`) without calling the wrapped service; authenticated requests are
/// forwarded unchanged (buffered body re-wrapped) with an [`AuthenticatedNode`] extension.
#[derive(Clone, Debug)]
pub struct VerifyLayer {
    auth: RpcAuth,
    max_body_bytes: usize,
}

impl VerifyLayer {
    /// Creates the layer with the default body cap ([`DEFAULT_MAX_BODY_BYTES`]).
    pub fn new(auth: RpcAuth) -> Self {
        Self {
            auth,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }

    /// Sets the largest request body (bytes) that is buffered; larger ones are rejected with
    /// `RESOURCE_EXHAUSTED`.
    pub fn with_max_body_bytes(mut self, max: usize) -> Self {
        self.max_body_bytes = max;
        self
    }
}

impl<S> tower::Layer<S> for VerifyLayer {
    type Service = VerifyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        VerifyService {
            inner,
            auth: self.auth.clone(),
            max_body_bytes: self.max_body_bytes,
        }
    }
}

/// Service produced by [`VerifyLayer`].
#[derive(Clone, Debug)]
pub struct VerifyService<S> {
    inner: S,
    auth: RpcAuth,
    max_body_bytes: usize,
}

impl<S> tower::Service<http::Request<Body>> for VerifyService<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
{
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = BoxFuture<Result<http::Response<Body>, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        let max_body_bytes = self.max_body_bytes;
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let path = parts.uri.path().to_owned();

            // Cheap checks before reading the body: headers present, parseable and fresh.
            let parsed = match parse_headers(&parts.headers).and_then(|p| {
                auth.check_fresh(p.timestamp_ms)?;
                Ok(p)
            }) {
                Ok(parsed) => parsed,
                Err(err) => return Ok(reject(&path, &parts.headers, &err)),
            };

            let bytes = match Limited::new(body, max_body_bytes).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(err) => {
                    let status = if err.downcast_ref::<LengthLimitError>().is_some() {
                        tracing::warn!(
                            path = %path,
                            node = %loggable_node(&parsed.node),
                            limit = max_body_bytes,
                            "rejected cluster RPC: request body too large"
                        );
                        tonic::Status::resource_exhausted(format!("request body exceeds {max_body_bytes} bytes"))
                    } else {
                        match err.downcast::<tonic::Status>() {
                            Ok(status) => *status,
                            Err(_) => tonic::Status::internal("failed to read request body"),
                        }
                    };
                    return Ok(status.into_http());
                }
            };

            match auth.verify_parsed(&path, &parsed, &bytes) {
                Ok(node) => {
                    parts.extensions.insert(AuthenticatedNode(node));
                    let req = http::Request::from_parts(parts, rewrap(bytes));
                    inner.call(req).await.map_err(Into::into)
                }
                Err(err) => Ok(reject(&path, &parts.headers, &err)),
            }
        })
    }
}

/// Logs the rejection (reason and claimed node only) and builds the `UNAUTHENTICATED` response.
fn reject(path: &str, headers: &HeaderMap, err: &VerifyError) -> http::Response<Body> {
    let claimed = headers
        .get(NODE_HEADER)
        .map_or("<none>", |v| v.to_str().unwrap_or("<non-ascii>"));
    tracing::warn!(
        path = %path,
        node = %loggable_node(claimed),
        reason = %err,
        "rejected unauthenticated cluster RPC"
    );
    tonic::Status::unauthenticated(format!("cluster RPC authentication failed: {err}")).into_http()
}

fn loggable_node(node: &str) -> &str {
    match node.char_indices().nth(MAX_LOGGED_NODE_LEN) {
        Some((idx, _)) => &node[..idx],
        None => node,
    }
}

fn rewrap(bytes: Bytes) -> Body {
    Body::new(Full::new(bytes))
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower::{Layer as _, ServiceExt as _};

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-secret";
    const PATH: &str = "/agenda.v1.Raft/Vote";

    fn auth(node: &str) -> RpcAuth {
        RpcAuth::new(ClusterSecret::new(SECRET).unwrap(), node)
    }

    fn headers_of(signed: &SignedHeaders) -> HeaderMap {
        let mut h = HeaderMap::new();
        signed.apply(&mut h);
        h
    }

    #[test]
    fn roundtrip() {
        let a = auth("node-a");
        let server = auth("node-b");
        let signed = a.sign(PATH, b"hello");
        assert_eq!(signed.node, "node-a");
        assert_eq!(signed.nonce.len(), 32);
        assert_eq!(signed.signature.len(), 64);
        assert!(
            signed
                .signature
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        let node = server.verify(PATH, &headers_of(&signed), b"hello").unwrap();
        assert_eq!(node, "node-a");
    }

    #[test]
    fn signature_matches_spec_string() {
        let a = auth("n1");
        let signed = a.sign_at(PATH, b"body", 1_700_000_000_000, "abc");
        let body_hash = hex::encode(Sha256::digest(b"body"));
        let msg = format!("{PATH}\n1700000000000\nabc\nn1\n{body_hash}");
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(SECRET).unwrap();
        mac.update(msg.as_bytes());
        assert_eq!(signed.signature, hex::encode(mac.finalize().into_bytes()));
    }

    #[test]
    fn long_secret_keying_matches_hmac_crate() {
        let long = vec![7u8; 100];
        let secret = ClusterSecret::new(long.clone()).unwrap();
        let ours = secret.hmac().chain_update(b"x").finalize().into_bytes();
        let theirs = <HmacSha256 as KeyInit>::new_from_slice(&long)
            .unwrap()
            .chain_update(b"x")
            .finalize()
            .into_bytes();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn wrong_secret_is_bad_signature() {
        let other = RpcAuth::new(ClusterSecret::new(vec![b'z'; 32]).unwrap(), "node-a");
        let signed = other.sign(PATH, b"x");
        assert_eq!(
            auth("srv").verify(PATH, &headers_of(&signed), b"x"),
            Err(VerifyError::BadSignature)
        );
    }

    #[test]
    fn tampering_is_bad_signature() {
        let a = auth("node-a");
        let server = auth("srv");
        let signed = a.sign(PATH, b"body");
        let h = headers_of(&signed);
        assert_eq!(server.verify(PATH, &h, b"bodz"), Err(VerifyError::BadSignature));
        assert_eq!(
            server.verify("/agenda.v1.Raft/Append", &h, b"body"),
            Err(VerifyError::BadSignature)
        );
        let mut h2 = h.clone();
        h2.insert(NODE_HEADER, HeaderValue::from_static("node-evil"));
        assert_eq!(server.verify(PATH, &h2, b"body"), Err(VerifyError::BadSignature));
        let mut h3 = h.clone();
        h3.insert(NONCE_HEADER, HeaderValue::from_static("othernonce"));
        assert_eq!(server.verify(PATH, &h3, b"body"), Err(VerifyError::BadSignature));
        // Untampered still verifies (failed attempts did not burn the nonce).
        assert_eq!(server.verify(PATH, &h, b"body").unwrap(), "node-a");
    }

    #[test]
    fn stale_timestamps() {
        let a = auth("node-a");
        let server = auth("srv");
        let now = now_unix_ms();
        let old = a.sign_at(PATH, b"", now - 31_000, "n-old");
        assert_eq!(server.verify(PATH, &headers_of(&old), b""), Err(VerifyError::Stale));
        let future = a.sign_at(PATH, b"", now + 31_000, "n-future");
        assert_eq!(server.verify(PATH, &headers_of(&future), b""), Err(VerifyError::Stale));
        let ok = a.sign_at(PATH, b"", now - 25_000, "n-ok");
        assert!(server.verify(PATH, &headers_of(&ok), b"").is_ok());
        let narrow = auth("srv").with_window(Duration::from_secs(1));
        let two_s = a.sign_at(PATH, b"", now - 2_000, "n-2s");
        assert_eq!(narrow.verify(PATH, &headers_of(&two_s), b""), Err(VerifyError::Stale));
    }

    #[test]
    fn replay_rejected() {
        let a = auth("node-a");
        let server = auth("srv");
        let h = headers_of(&a.sign(PATH, b"x"));
        assert!(server.verify(PATH, &h, b"x").is_ok());
        assert_eq!(server.verify(PATH, &h, b"x"), Err(VerifyError::Replayed));
        // Clones share the cache.
        assert_eq!(server.clone().verify(PATH, &h, b"x"), Err(VerifyError::Replayed));
        // Same nonce from another node is a different key.
        let b = auth("node-b");
        let hb = headers_of(&b.sign_at(PATH, b"x", now_unix_ms(), &a_nonce(&h)));
        assert!(server.verify(PATH, &hb, b"x").is_ok());
    }

    fn a_nonce(h: &HeaderMap) -> String {
        h.get(NONCE_HEADER).unwrap().to_str().unwrap().to_owned()
    }

    #[test]
    fn replay_cache_capacity_and_expiry() {
        let server = auth("srv").with_replay_capacity(2);
        let a = auth("node-a");
        for n in ["n1", "n2"] {
            let h = headers_of(&a.sign_at(PATH, b"", now_unix_ms(), n));
            assert!(server.verify(PATH, &h, b"").is_ok());
        }
        let h = headers_of(&a.sign_at(PATH, b"", now_unix_ms(), "n3"));
        assert_eq!(server.verify(PATH, &h, b""), Err(VerifyError::Replayed));

        let mut cache = ReplayCache::new(4);
        let t0 = Instant::now();
        let ttl = Duration::from_secs(60);
        assert!(cache.check_and_insert("a", "1", ttl, t0));
        assert!(!cache.check_and_insert("a", "1", ttl, t0 + Duration::from_secs(59)));
        assert!(cache.check_and_insert("a", "1", ttl, t0 + Duration::from_secs(61)));
        for i in 2..=4 {
            assert!(cache.check_and_insert("a", &i.to_string(), ttl, t0 + Duration::from_secs(61)));
        }
        // Full of live entries.
        assert!(!cache.check_and_insert("a", "5", ttl, t0 + Duration::from_secs(62)));
        // Once they expire, a prune frees room.
        assert!(cache.check_and_insert("a", "5", ttl, t0 + Duration::from_secs(200)));
        assert_eq!(cache.entries.len(), 1);
    }

    #[test]
    fn missing_and_malformed_headers() {
        let a = auth("node-a");
        let server = auth("srv");
        let signed = a.sign(PATH, b"x");
        for name in [SIGNATURE_HEADER, TIMESTAMP_HEADER, NONCE_HEADER, NODE_HEADER] {
            let mut h = headers_of(&signed);
            h.remove(name);
            assert_eq!(server.verify(PATH, &h, b"x"), Err(VerifyError::Missing(name)));
        }
        assert_eq!(
            server.verify(PATH, &HeaderMap::new(), b"x"),
            Err(VerifyError::Missing(SIGNATURE_HEADER))
        );
        let mut h = headers_of(&signed);
        h.insert(TIMESTAMP_HEADER, HeaderValue::from_static("soon"));
        assert_eq!(
            server.verify(PATH, &h, b"x"),
            Err(VerifyError::Malformed(TIMESTAMP_HEADER))
        );
        let mut h = headers_of(&signed);
        h.insert(SIGNATURE_HEADER, HeaderValue::from_static("not-hex"));
        assert_eq!(
            server.verify(PATH, &h, b"x"),
            Err(VerifyError::Malformed(SIGNATURE_HEADER))
        );
        h.remove(NODE_HEADER);
        assert_eq!(server.verify(PATH, &h, b"x"), Err(VerifyError::Missing(NODE_HEADER)));
        let mut h = headers_of(&signed);
        h.append(NONCE_HEADER, HeaderValue::from_static("second"));
        assert_eq!(server.verify(PATH, &h, b"x"), Err(VerifyError::Malformed(NONCE_HEADER)));
        let mut h = headers_of(&signed);
        h.insert(SIGNATURE_HEADER, HeaderValue::from_static("abcd"));
        assert_eq!(server.verify(PATH, &h, b"x"), Err(VerifyError::BadSignature));
    }

    #[test]
    fn secret_rules() {
        assert!(matches!(
            ClusterSecret::new(vec![1u8; 31]),
            Err(AuthError::SecretTooShort { len: 31 })
        ));
        assert!(ClusterSecret::new(vec![1u8; 32]).is_ok());
        let secret = ClusterSecret::new(SECRET).unwrap();
        let text = std::str::from_utf8(SECRET).unwrap();
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{secret}"), "[redacted]");
        assert!(!format!("{:?}", auth("n")).contains(text));
        let err = ClusterSecret::from_value_or_file(Some("short-secret"), None).unwrap_err();
        assert!(!err.to_string().contains("short-secret"));
        assert!(matches!(
            ClusterSecret::from_value_or_file(None, None),
            Err(AuthError::MissingSecret)
        ));
        assert!(matches!(
            ClusterSecret::from_value_or_file(Some(""), None),
            Err(AuthError::MissingSecret)
        ));
        assert!(matches!(
            ClusterSecret::from_value_or_file(None, Some(Path::new("/nonexistent/agenda-secret"))),
            Err(AuthError::SecretFile { .. })
        ));
    }

    #[test]
    fn secret_from_file_trims_and_value_wins() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        let content = "file-secret-file-secret-file-secret-0123";
        writeln!(file, "{content}  ").unwrap();
        let from_file = ClusterSecret::from_value_or_file(None, Some(file.path())).unwrap();
        assert_eq!(&*from_file.0, content.as_bytes());

        let value = "value-secret-value-secret-value-secret-99";
        let both = ClusterSecret::from_value_or_file(Some(value), Some(file.path())).unwrap();
        assert_eq!(&*both.0, value.as_bytes());

        let mut short = tempfile::NamedTempFile::new().unwrap();
        writeln!(short, "{}", "s".repeat(31)).unwrap();
        assert!(matches!(
            ClusterSecret::from_value_or_file(None, Some(short.path())),
            Err(AuthError::SecretTooShort { len: 31 })
        ));
    }

    // ---- tower-level end to end --------------------------------------------------------

    type Captured = Arc<Mutex<Option<(HeaderMap, Bytes)>>>;

    fn echo_inner(
        calls: Arc<AtomicUsize>,
        seen_node: Arc<Mutex<Option<String>>>,
    ) -> impl tower::Service<
        http::Request<Body>,
        Response = http::Response<Body>,
        Error = BoxError,
        Future = impl Future<Output = Result<http::Response<Body>, BoxError>> + Send,
    > + Clone
    + Send
    + 'static {
        tower::service_fn(move |req: http::Request<Body>| {
            let calls = calls.clone();
            let seen_node = seen_node.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                *seen_node.lock().unwrap() = req.extensions().get::<AuthenticatedNode>().map(|n| n.0.clone());
                let bytes = req.into_body().collect().await?.to_bytes();
                Ok::<_, BoxError>(http::Response::new(rewrap(bytes)))
            }
        })
    }

    fn request(path: &str, body: &'static [u8]) -> http::Request<Body> {
        http::Request::builder()
            .method("POST")
            .uri(format!("http://localhost{path}"))
            .header("content-type", "application/grpc")
            .body(rewrap(Bytes::from_static(body)))
            .unwrap()
    }

    #[tokio::test]
    async fn sign_service_adds_valid_headers_and_keeps_request() {
        let captured: Captured = Arc::default();
        let cap = captured.clone();
        let inner = tower::service_fn(move |req: http::Request<Body>| {
            let cap = cap.clone();
            async move {
                let (parts, body) = req.into_parts();
                let bytes = body.collect().await?.to_bytes();
                *cap.lock().unwrap() = Some((parts.headers, bytes));
                Ok::<_, BoxError>(http::Response::new(Body::empty()))
            }
        });
        let svc = SignLayer::new(auth("node-a")).layer(inner);
        svc.oneshot(request(PATH, b"payload")).await.unwrap();
        let (headers, body) = captured.lock().unwrap().take().unwrap();
        assert_eq!(&body[..], b"payload");
        assert_eq!(headers.get("content-type").unwrap(), "application/grpc");
        assert_eq!(auth("srv").verify(PATH, &headers, &body).unwrap(), "node-a");
    }

    #[tokio::test]
    async fn signed_request_passes_verify_service() {
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(None));
        let server = VerifyLayer::new(auth("srv")).layer(echo_inner(calls.clone(), seen.clone()));
        let client = SignLayer::new(auth("node-a")).layer(server);
        let resp = client.oneshot(request(PATH, b"ping")).await.unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ping");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(seen.lock().unwrap().as_deref(), Some("node-a"));
    }

    #[tokio::test]
    async fn unsigned_request_rejected_without_calling_inner() {
        let calls = Arc::new(AtomicUsize::new(0));
        let server = VerifyLayer::new(auth("srv")).layer(echo_inner(calls.clone(), Arc::default()));
        let resp = server.clone().oneshot(request(PATH, b"ping")).await.unwrap();
        assert_eq!(resp.headers().get("grpc-status").unwrap(), "16");
        assert_eq!(calls.load(Ordering::SeqCst), 0);

        // Wrong secret: also 16, inner not called.
        let forger = RpcAuth::new(ClusterSecret::new(vec![b'q'; 40]).unwrap(), "node-a");
        let client = SignLayer::new(forger).layer(server.clone());
        let resp = client.oneshot(request(PATH, b"ping")).await.unwrap();
        assert_eq!(resp.headers().get("grpc-status").unwrap(), "16");
        assert_eq!(calls.load(Ordering::SeqCst), 0);

        // Replay of a captured valid request: first passes, second is 16.
        let signed = auth("node-a").sign(PATH, b"ping");
        let mk = || {
            let mut r = request(PATH, b"ping");
            signed.apply(r.headers_mut());
            r
        };
        let resp = server.clone().oneshot(mk()).await.unwrap();
        assert!(resp.headers().get("grpc-status").is_none());
        let resp = server.clone().oneshot(mk()).await.unwrap();
        assert_eq!(resp.headers().get("grpc-status").unwrap(), "16");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn oversized_body_is_resource_exhausted() {
        let calls = Arc::new(AtomicUsize::new(0));
        let server = VerifyLayer::new(auth("srv"))
            .with_max_body_bytes(8)
            .layer(echo_inner(calls.clone(), Arc::default()));
        let client = SignLayer::new(auth("node-a")).layer(server);
        let resp = client.oneshot(request(PATH, b"0123456789")).await.unwrap();
        assert_eq!(resp.headers().get("grpc-status").unwrap(), "8");
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    // ---- real tonic over loopback ------------------------------------------------------

    #[derive(Clone, PartialEq, prost::Message)]
    struct EchoMsg {
        #[prost(string, tag = "1")]
        text: String,
    }

    #[derive(Clone)]
    struct EchoServer;

    impl tonic::server::NamedService for EchoServer {
        const NAME: &'static str = "test.Echo";
    }

    struct Say;

    impl tonic::server::UnaryService<EchoMsg> for Say {
        type Response = EchoMsg;
        type Future = BoxFuture<Result<tonic::Response<EchoMsg>, tonic::Status>>;

        fn call(&mut self, request: tonic::Request<EchoMsg>) -> Self::Future {
            let node = request
                .extensions()
                .get::<AuthenticatedNode>()
                .map_or_else(|| "?".to_owned(), |n| n.0.clone());
            Box::pin(async move {
                let text = format!("{node}:{}", request.into_inner().text);
                Ok(tonic::Response::new(EchoMsg { text }))
            })
        }
    }

    impl tower::Service<http::Request<Body>> for EchoServer {
        type Response = http::Response<Body>;
        type Error = std::convert::Infallible;
        type Future = BoxFuture<Result<http::Response<Body>, std::convert::Infallible>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: http::Request<Body>) -> Self::Future {
            Box::pin(async move {
                if req.uri().path() == "/test.Echo/Say" {
                    let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::<EchoMsg, EchoMsg>::default());
                    Ok(grpc.unary(Say, req).await)
                } else {
                    Ok(tonic::Status::unimplemented("no such method").into_http())
                }
            })
        }
    }

    async fn call_echo<T>(svc: T, text: &str) -> Result<String, tonic::Status>
    where
        T: tonic::client::GrpcService<Body>,
        T::Error: Into<BoxError>,
        T::ResponseBody: http_body::Body<Data = Bytes> + Send + 'static,
        <T::ResponseBody as http_body::Body>::Error: Into<BoxError>,
    {
        let mut grpc = tonic::client::Grpc::new(svc);
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unknown(e.into().to_string()))?;
        let resp: tonic::Response<EchoMsg> = grpc
            .unary(
                tonic::Request::new(EchoMsg { text: text.to_owned() }),
                http::uri::PathAndQuery::from_static("/test.Echo/Say"),
                tonic_prost::ProstCodec::default(),
            )
            .await?;
        Ok(resp.into_inner().text)
    }

    #[tokio::test]
    async fn tonic_loopback_end_to_end() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(
            tonic::transport::Server::builder()
                .layer(VerifyLayer::new(auth("srv")))
                .add_service(EchoServer)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stop_rx.await;
                }),
        );

        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();

        // Signed client (as generated clients would be built).
        let signed = tower::ServiceBuilder::new()
            .layer(SignLayer::new(auth("node-a")))
            .service(channel.clone());
        assert_eq!(call_echo(signed.clone(), "hi").await.unwrap(), "node-a:hi");
        assert_eq!(call_echo(signed, "again").await.unwrap(), "node-a:again");

        // Unsigned client.
        let err = call_echo(channel.clone(), "hi").await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);

        // Wrong secret.
        let forger = RpcAuth::new(ClusterSecret::new(vec![b'q'; 40]).unwrap(), "node-a");
        let forged = tower::ServiceBuilder::new()
            .layer(SignLayer::new(forger))
            .service(channel);
        let err = call_echo(forged, "hi").await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);

        let _ = stop_tx.send(());
        server.await.unwrap().unwrap();
    }
}
