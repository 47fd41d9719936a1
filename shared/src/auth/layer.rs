//! The tower layers: [`SignLayer`] signs every outgoing request and checks every answer,
//! [`VerifyLayer`] checks every incoming request before the service sees it and seals every
//! answer.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body::Frame;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use sha2::{Digest, Sha256};
use tonic::body::Body;

use super::*;
use crate::rpc::policy;
use crate::rpc::serve::PeerInfo;

/// Client-side tower layer: buffers each (unary) request body, signs the request for one
/// receiver, forwards it, and lets through only answers whose MAC verifies. Use as
/// `MyClient::new(ServiceBuilder::new().layer(SignLayer::new(auth, to)).service(channel))`.
#[derive(Clone, Debug)]
pub struct SignLayer {
    auth: RpcAuth,
    to: Arc<str>,
}

impl SignLayer {
    /// Creates the layer signing as `auth.node_id()` for the receiver `to`.
    pub fn new(auth: RpcAuth, to: &Receiver) -> Self {
        Self {
            auth,
            to: Arc::from(to.encode()),
        }
    }
}

impl<S> tower::Layer<S> for SignLayer {
    type Service = SignService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SignService {
            inner,
            auth: self.auth.clone(),
            to: self.to.clone(),
        }
    }
}

/// Service produced by [`SignLayer`].
#[derive(Clone, Debug)]
pub struct SignService<S> {
    inner: S,
    auth: RpcAuth,
    to: Arc<str>,
}

impl<S> tower::Service<http::Request<Body>> for SignService<S>
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
        // Use the instance that was driven to readiness; leave a fresh clone in its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        let to = self.to.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let bytes = body.collect().await.map_err(BoxError::from)?.to_bytes();
            let path = parts.uri.path().to_owned();
            let signed = auth.sign(&path, &to, &bytes);
            signed.apply(&mut parts.headers);
            let req = http::Request::from_parts(parts, rewrap(bytes));
            let response = inner.call(req).await.map_err(Into::into)?;
            let answer = Answer {
                auth,
                path,
                nonce: signed.nonce,
                to,
            };
            answer.check(response).map_err(|status| Box::new(status) as BoxError)
        })
    }
}

/// What an answer's MAC binds it to: the request it answers.
#[derive(Clone, Debug)]
struct Answer {
    auth: RpcAuth,
    path: String,
    nonce: String,
    to: Arc<str>,
}

impl Answer {
    fn mac(&self, fields: AnswerFields<'_>, body_sha256: &[u8]) -> String {
        self.auth
            .answer_mac(&self.path, &self.nonce, &self.to, fields, body_sha256)
    }

    fn verifies(&self, map: &HeaderMap, body_sha256: &[u8]) -> bool {
        map.get(ANSWER_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|claimed| {
                self.auth.answer_verifies(
                    &self.path,
                    &self.nonce,
                    &self.to,
                    AnswerFields::of(map),
                    body_sha256,
                    claimed,
                )
            })
    }

    fn refused(&self, map: &HeaderMap) -> tonic::Status {
        let said = AnswerFields::of(map);
        tracing::warn!(
            path = %self.path,
            to = %self.to,
            status = said.status,
            "cluster RPC answer failed authentication; discarded"
        );
        tonic::Status::unavailable(format!(
            "answer failed authentication (unverified status {:?})",
            said.status
        ))
    }

    /// Client side: a trailers-only answer is checked now, any other when its trailers
    /// arrive (the body is held to the MAC as it streams).
    fn check(self, response: http::Response<Body>) -> Result<http::Response<Body>, tonic::Status> {
        let (parts, body) = response.into_parts();
        if parts.headers.contains_key("grpc-status") {
            if !self.verifies(&parts.headers, &Sha256::digest(b"")) {
                return Err(self.refused(&parts.headers));
            }
            return Ok(http::Response::from_parts(parts, body));
        }
        let body = Body::new(CheckedBody {
            inner: body,
            hasher: Sha256::new(),
            answer: Some(self),
        });
        Ok(http::Response::from_parts(parts, body))
    }

    /// Server side: the MAC goes into the headers of a trailers-only answer, or into the
    /// trailers of any other.
    fn seal(self, response: http::Response<Body>) -> http::Response<Body> {
        let (mut parts, body) = response.into_parts();
        if parts.headers.contains_key("grpc-status") {
            let mac = self.mac(AnswerFields::of(&parts.headers), &Sha256::digest(b""));
            if let Ok(v) = HeaderValue::from_str(&mac) {
                parts.headers.insert(ANSWER_HEADER, v);
            }
            return http::Response::from_parts(parts, body);
        }
        let body = Body::new(SealedBody {
            inner: body,
            hasher: Sha256::new(),
            answer: Some(self),
        });
        http::Response::from_parts(parts, body)
    }
}

/// An answer body whose trailers get the MAC (server side).
struct SealedBody {
    inner: Body,
    hasher: Sha256,
    answer: Option<Answer>,
}

impl SealedBody {
    /// `trailers` with the answer's MAC (over the body hashed so far) added; the body ends.
    fn seal(&mut self, mut trailers: HeaderMap) -> HeaderMap {
        let answer = self.answer.take().expect("sealed once");
        let digest = std::mem::take(&mut self.hasher).finalize();
        let mac = answer.mac(AnswerFields::of(&trailers), &digest);
        if let Ok(v) = HeaderValue::from_str(&mac) {
            trailers.insert(ANSWER_HEADER, v);
        }
        trailers
    }
}

impl http_body::Body for SealedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let this = &mut *self;
        if this.answer.is_none() {
            return Poll::Ready(None);
        }
        match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    this.hasher.update(data);
                    return Poll::Ready(Some(Ok(frame)));
                }
                let Ok(trailers) = frame.into_trailers() else {
                    return Poll::Ready(Some(Err(tonic::Status::internal("unexpected answer frame"))));
                };
                Poll::Ready(Some(Ok(Frame::trailers(this.seal(trailers)))))
            }
            Some(Err(e)) => Poll::Ready(Some(Err(e))),
            // No trailers from the service: add some, carrying the MAC.
            None => Poll::Ready(Some(Ok(Frame::trailers(this.seal(HeaderMap::new()))))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.answer.is_none()
    }
}

/// An answer body that fails unless its trailers carry a valid MAC (client side).
struct CheckedBody {
    inner: Body,
    hasher: Sha256,
    answer: Option<Answer>,
}

impl http_body::Body for CheckedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let this = &mut *self;
        let Some(answer) = this.answer.as_ref() else {
            return Poll::Ready(None);
        };
        match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    this.hasher.update(data);
                    return Poll::Ready(Some(Ok(frame)));
                }
                let Some(trailers) = frame.trailers_ref() else {
                    return Poll::Ready(Some(Ok(frame)));
                };
                let digest = std::mem::take(&mut this.hasher).finalize();
                if !answer.verifies(trailers, &digest) {
                    let status = answer.refused(trailers);
                    this.answer = None;
                    return Poll::Ready(Some(Err(status)));
                }
                this.answer = None;
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => Poll::Ready(Some(Err(e))),
            None => {
                let status = answer.refused(&HeaderMap::new());
                this.answer = None;
                Poll::Ready(Some(Err(status)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.answer.is_none()
    }
}

/// Server-side tower layer: `Server::builder().layer(VerifyLayer::new(auth, identity))`.
///
/// Before reading the body it refuses, without calling the wrapped service: a declared body
/// over the RPC's budget (`RESOURCE_EXHAUSTED`), a request whose headers do not verify for
/// this server (`UNAUTHENTICATED`), and a caller whose certificate role the RPC does not
/// allow (`PERMISSION_DENIED`). It then reads the body within the budget and the body
/// deadline (`RESOURCE_EXHAUSTED`, `DEADLINE_EXCEEDED`), checks its hash
/// (`UNAUTHENTICATED`), forwards the request with an [`AuthenticatedNode`] extension and
/// seals the answer with its MAC.
#[derive(Clone, Debug)]
pub struct VerifyLayer {
    auth: RpcAuth,
    me: Arc<Identity>,
    max_body_bytes: Option<usize>,
    body_deadline: Duration,
}

impl VerifyLayer {
    /// Creates the layer for the server `me`, with the per-RPC budgets of
    /// [`policy::rule`] and the default body deadline ([`DEFAULT_BODY_DEADLINE`]).
    pub fn new(auth: RpcAuth, me: Identity) -> Self {
        Self {
            auth,
            me: Arc::new(me),
            max_body_bytes: None,
            body_deadline: DEFAULT_BODY_DEADLINE,
        }
    }

    /// Caps every request body at `max` bytes, below the per-RPC budgets.
    pub fn with_max_body_bytes(mut self, max: usize) -> Self {
        self.max_body_bytes = Some(max);
        self
    }

    /// Sets how long a verified request's body may take to arrive.
    pub fn with_body_deadline(mut self, deadline: Duration) -> Self {
        self.body_deadline = deadline;
        self
    }
}

impl<S> tower::Layer<S> for VerifyLayer {
    type Service = VerifyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        VerifyService {
            inner,
            layer: self.clone(),
        }
    }
}

/// Service produced by [`VerifyLayer`].
#[derive(Clone, Debug)]
pub struct VerifyService<S> {
    inner: S,
    layer: VerifyLayer,
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
        let layer = self.layer.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let path = parts.uri.path().to_owned();
            let peer = parts.extensions.get::<PeerInfo>().cloned();
            let rule = policy::rule(&path);
            let max_body = layer.max_body_bytes.map_or(rule.max_body, |cap| cap.min(rule.max_body));

            // Everything that can be judged from the connection and the headers, first.
            let declared = parts
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|len| len > max_body as u64) {
                return Ok(too_large(&path, &parts.headers, max_body).into_http());
            }
            let verified =
                match layer
                    .auth
                    .verify_headers(&path, &parts.headers, &layer.me, peer.as_ref().map(|p| p.local))
                {
                    Ok(v) => v,
                    // The signature held: the sender is one of ours and gets a sealed refusal.
                    Err(err @ (VerifyError::WrongReceiver | VerifyError::Replayed)) => {
                        let refusal = reject(&path, &parts.headers, &err);
                        return Ok(match parse_headers(&parts.headers) {
                            Ok(p) => Answer {
                                auth: layer.auth.clone(),
                                path: path.clone(),
                                nonce: p.nonce,
                                to: Arc::from(p.to.as_str()),
                            }
                            .seal(refusal),
                            Err(_) => refusal,
                        });
                    }
                    Err(err) => return Ok(reject(&path, &parts.headers, &err)),
                };
            let answer = Answer {
                auth: layer.auth.clone(),
                path: path.clone(),
                nonce: verified.nonce.clone(),
                to: Arc::from(verified.to.as_str()),
            };
            if let Some(peer) = peer.as_ref().filter(|p| p.tls) {
                let allowed = peer.role.is_some_and(|r| rule.roles.contains(&r));
                if !allowed {
                    let role = peer.role.map_or("none", |r| r.as_str());
                    tracing::warn!(path = %path, remote = %peer.remote, role, "refused cluster RPC: role not allowed");
                    let status = tonic::Status::permission_denied(format!("a {role} certificate may not call {path}"));
                    return Ok(answer.seal(status.into_http()));
                }
            }

            // Then the body: bounded in size and time, and the one that was signed.
            let read = tokio::time::timeout(layer.body_deadline, Limited::new(body, max_body).collect()).await;
            let bytes = match read {
                Ok(Ok(collected)) => collected.to_bytes(),
                Ok(Err(err)) => {
                    let status = if err.downcast_ref::<LengthLimitError>().is_some() {
                        too_large(&path, &parts.headers, max_body)
                    } else {
                        match err.downcast::<tonic::Status>() {
                            Ok(status) => *status,
                            Err(_) => tonic::Status::cancelled("the request body was not received"),
                        }
                    };
                    return Ok(answer.seal(status.into_http()));
                }
                Err(_) => {
                    tracing::warn!(
                        path = %path,
                        node = %loggable_node(&verified.node),
                        deadline_ms = layer.body_deadline.as_millis() as u64,
                        "refused cluster RPC: body not received in time"
                    );
                    let status = tonic::Status::deadline_exceeded("the request body did not arrive in time");
                    return Ok(answer.seal(status.into_http()));
                }
            };
            if !verified.body_matches(&bytes) {
                return Ok(answer.seal(reject(&path, &parts.headers, &VerifyError::BodyMismatch)));
            }

            parts.extensions.insert(AuthenticatedNode(verified.node));
            let req = http::Request::from_parts(parts, rewrap(bytes));
            let response = inner.call(req).await.map_err(Into::into)?;
            Ok(answer.seal(response))
        })
    }
}

fn too_large(path: &str, headers: &HeaderMap, max: usize) -> tonic::Status {
    tracing::warn!(
        path = %path,
        node = %loggable_node(claimed(headers)),
        limit = max,
        "refused cluster RPC: request body too large"
    );
    tonic::Status::resource_exhausted(format!("request body exceeds {max} bytes"))
}

fn claimed(headers: &HeaderMap) -> &str {
    headers
        .get(NODE_HEADER)
        .map_or("<none>", |v| v.to_str().unwrap_or("<non-ascii>"))
}

/// Logs the rejection (reason and claimed node only) and builds the `UNAUTHENTICATED` response.
fn reject(path: &str, headers: &HeaderMap, err: &VerifyError) -> http::Response<Body> {
    tracing::warn!(
        path = %path,
        node = %loggable_node(claimed(headers)),
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

pub(super) fn rewrap(bytes: Bytes) -> Body {
    Body::new(Full::new(bytes))
}
