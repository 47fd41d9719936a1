//! Unit tests of the signing scheme and its layers.

use super::*;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hmac::KeyInit;
use http::HeaderMap;
use http_body_util::BodyExt;
use tonic::body::Body;

use super::layer::rewrap;
use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use tower::{Layer as _, ServiceExt as _};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-secret";
const PATH: &str = "/agenda.v1.Raft/Vote";

fn auth(node: &str) -> RpcAuth {
    RpcAuth::new(ClusterSecret::new(SECRET).unwrap(), node)
}

/// The receiver every unit test signs for, and the server that is it.
const TO: &str = "addr=srv:7000;node=srv";

fn me() -> Identity {
    Identity::new("srv", ["srv:7000".to_owned()])
}

/// `verify` as the server `srv` reached at its advertised address.
trait VerifyAsSrv {
    fn check(&self, path: &str, headers: &HeaderMap, body: &[u8]) -> Result<String, VerifyError>;
}

impl VerifyAsSrv for RpcAuth {
    fn check(&self, path: &str, headers: &HeaderMap, body: &[u8]) -> Result<String, VerifyError> {
        self.verify(path, headers, body, &me(), None)
    }
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
    let signed = a.sign(PATH, TO, b"hello");
    assert_eq!(signed.node, "node-a");
    assert_eq!(signed.nonce.len(), 32);
    assert_eq!(signed.signature.len(), 64);
    assert!(
        signed
            .signature
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    let node = server.check(PATH, &headers_of(&signed), b"hello").unwrap();
    assert_eq!(node, "node-a");
}

#[test]
fn signature_matches_spec_string() {
    let a = auth("n1");
    let signed = a.sign_at(PATH, TO, b"body", 1_700_000_000_000, "abc");
    let body_hash = hex::encode(Sha256::digest(b"body"));
    let msg = format!("agenda-rpc-v2\n{PATH}\n1700000000000\nabc\nn1\n{TO}\n{body_hash}");
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
    let signed = other.sign(PATH, TO, b"x");
    assert_eq!(
        auth("srv").check(PATH, &headers_of(&signed), b"x"),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn tampering_is_bad_signature() {
    let a = auth("node-a");
    let server = auth("srv");
    let signed = a.sign(PATH, TO, b"body");
    let h = headers_of(&signed);
    assert_eq!(
        server.check("/agenda.v1.Raft/Append", &h, b"body"),
        Err(VerifyError::BadSignature)
    );
    let mut h2 = h.clone();
    h2.insert(NODE_HEADER, HeaderValue::from_static("node-evil"));
    assert_eq!(server.check(PATH, &h2, b"body"), Err(VerifyError::BadSignature));
    let mut h3 = h.clone();
    h3.insert(NONCE_HEADER, HeaderValue::from_static("othernonce"));
    assert_eq!(server.check(PATH, &h3, b"body"), Err(VerifyError::BadSignature));
    // Untampered still verifies (failed attempts did not burn the nonce).
    assert_eq!(server.check(PATH, &h, b"body").unwrap(), "node-a");
}

#[test]
fn stale_timestamps() {
    let a = auth("node-a");
    let server = auth("srv");
    let now = now_unix_ms();
    let old = a.sign_at(PATH, TO, b"", now - 31_000, "n-old");
    assert_eq!(server.check(PATH, &headers_of(&old), b""), Err(VerifyError::Stale));
    let future = a.sign_at(PATH, TO, b"", now + 31_000, "n-future");
    assert_eq!(server.check(PATH, &headers_of(&future), b""), Err(VerifyError::Stale));
    let ok = a.sign_at(PATH, TO, b"", now - 25_000, "n-ok");
    assert!(server.check(PATH, &headers_of(&ok), b"").is_ok());
    let narrow = auth("srv").with_window(Duration::from_secs(1));
    let two_s = a.sign_at(PATH, TO, b"", now - 2_000, "n-2s");
    assert_eq!(narrow.check(PATH, &headers_of(&two_s), b""), Err(VerifyError::Stale));
}

#[test]
fn replay_rejected() {
    let a = auth("node-a");
    let server = auth("srv");
    let h = headers_of(&a.sign(PATH, TO, b"x"));
    assert!(server.check(PATH, &h, b"x").is_ok());
    assert_eq!(server.check(PATH, &h, b"x"), Err(VerifyError::Replayed));
    // Clones share the cache.
    assert_eq!(server.clone().check(PATH, &h, b"x"), Err(VerifyError::Replayed));
    // Same nonce from another node is a different key.
    let b = auth("node-b");
    let hb = headers_of(&b.sign_at(PATH, TO, b"x", now_unix_ms(), &a_nonce(&h)));
    assert!(server.check(PATH, &hb, b"x").is_ok());
}

fn a_nonce(h: &HeaderMap) -> String {
    h.get(NONCE_HEADER).unwrap().to_str().unwrap().to_owned()
}

#[test]
fn a_full_replay_cache_still_accepts_fresh_requests() {
    let server = auth("srv").with_replay_capacity(2);
    let a = auth("node-a");
    let now = now_unix_ms();
    for (n, ts) in [("n1", now - 3), ("n2", now - 2)] {
        let h = headers_of(&a.sign_at(PATH, TO, b"", ts, n));
        assert!(server.check(PATH, &h, b"").is_ok());
    }
    // Full: the next fresh request is accepted (the oldest entry makes room)...
    let h3 = headers_of(&a.sign_at(PATH, TO, b"", now, "n3"));
    assert!(server.check(PATH, &h3, b"").is_ok());
    // ...and the evicted one still cannot be replayed.
    let h1 = headers_of(&a.sign_at(PATH, TO, b"", now - 3, "n1"));
    assert_eq!(server.check(PATH, &h1, b""), Err(VerifyError::Replayed));
}

#[test]
fn a_request_for_another_receiver_is_refused() {
    let a = auth("node-a");
    let server = auth("srv");
    let for_other = a.sign(PATH, "addr=other:7000", b"x");
    assert_eq!(
        server.check(PATH, &headers_of(&for_other), b"x"),
        Err(VerifyError::WrongReceiver)
    );
    let other_node = a.sign(PATH, "addr=srv:7000;node=other", b"x");
    assert_eq!(
        server.check(PATH, &headers_of(&other_node), b"x"),
        Err(VerifyError::WrongReceiver)
    );
    // Rewriting the receiver header breaks the signature.
    let mut h = headers_of(&for_other);
    h.insert(TO_HEADER, HeaderValue::from_static("addr=srv:7000"));
    assert_eq!(server.check(PATH, &h, b"x"), Err(VerifyError::BadSignature));
    // Reached by the IP of the connection: accepted.
    let by_ip = a.sign(PATH, "addr=10.0.0.9:7000", b"x");
    let local = Some("10.0.0.9:7000".parse().unwrap());
    assert_eq!(
        server.verify(PATH, &headers_of(&by_ip), b"x", &me(), local).unwrap(),
        "node-a"
    );
}

#[test]
fn the_body_must_be_the_signed_one() {
    let a = auth("node-a");
    let server = auth("srv");
    let signed = a.sign(PATH, TO, b"body");
    assert_eq!(
        server.check(PATH, &headers_of(&signed), b"bodz"),
        Err(VerifyError::BodyMismatch)
    );
    // Declaring another hash breaks the signature.
    let mut h = headers_of(&signed);
    h.insert(
        BODY_HASH_HEADER,
        HeaderValue::from_str(&hex::encode(Sha256::digest(b"bodz"))).unwrap(),
    );
    assert_eq!(server.check(PATH, &h, b"bodz"), Err(VerifyError::BadSignature));
}

#[test]
fn missing_and_malformed_headers() {
    let a = auth("node-a");
    let server = auth("srv");
    let signed = a.sign(PATH, TO, b"x");
    for name in [
        SIGNATURE_HEADER,
        TIMESTAMP_HEADER,
        NONCE_HEADER,
        NODE_HEADER,
        TO_HEADER,
        BODY_HASH_HEADER,
    ] {
        let mut h = headers_of(&signed);
        h.remove(name);
        assert_eq!(server.check(PATH, &h, b"x"), Err(VerifyError::Missing(name)));
    }
    assert_eq!(
        server.check(PATH, &HeaderMap::new(), b"x"),
        Err(VerifyError::Missing(SIGNATURE_HEADER))
    );
    let mut h = headers_of(&signed);
    h.insert(TIMESTAMP_HEADER, HeaderValue::from_static("soon"));
    assert_eq!(
        server.check(PATH, &h, b"x"),
        Err(VerifyError::Malformed(TIMESTAMP_HEADER))
    );
    let mut h = headers_of(&signed);
    h.insert(SIGNATURE_HEADER, HeaderValue::from_static("not-hex"));
    assert_eq!(
        server.check(PATH, &h, b"x"),
        Err(VerifyError::Malformed(SIGNATURE_HEADER))
    );
    h.remove(NODE_HEADER);
    assert_eq!(server.check(PATH, &h, b"x"), Err(VerifyError::Missing(NODE_HEADER)));
    let mut h = headers_of(&signed);
    h.append(NONCE_HEADER, HeaderValue::from_static("second"));
    assert_eq!(server.check(PATH, &h, b"x"), Err(VerifyError::Malformed(NONCE_HEADER)));
    let mut h = headers_of(&signed);
    h.insert(SIGNATURE_HEADER, HeaderValue::from_static("abcd"));
    assert_eq!(server.check(PATH, &h, b"x"), Err(VerifyError::BadSignature));
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
    let err = ClusterSecret::load(Some("short-secret".into()), None).unwrap_err();
    assert!(!err.to_string().contains("short-secret"));
    assert!(matches!(ClusterSecret::load(None, None), Err(AuthError::MissingSecret)));
    assert!(matches!(
        ClusterSecret::load(Some("".into()), None),
        Err(AuthError::MissingSecret)
    ));
    assert!(matches!(
        ClusterSecret::load(None, Some(Path::new("/nonexistent/agenda-secret"))),
        Err(AuthError::SecretFile { .. })
    ));
}

#[test]
fn secret_from_file_trims_and_value_wins() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    let content = "file-secret-file-secret-file-secret-0123";
    writeln!(file, "{content}  ").unwrap();
    let from_file = ClusterSecret::load(None, Some(file.path())).unwrap();
    assert_eq!(&*from_file.0, content.as_bytes());

    let value = "value-secret-value-secret-value-secret-99";
    let both = ClusterSecret::load(Some(value.into()), Some(file.path())).unwrap();
    assert_eq!(&*both.0, value.as_bytes());

    let mut short = tempfile::NamedTempFile::new().unwrap();
    writeln!(short, "{}", "s".repeat(31)).unwrap();
    assert!(matches!(
        ClusterSecret::load(None, Some(short.path())),
        Err(AuthError::SecretTooShort { len: 31 })
    ));
}

// ---- tower-level end to end --------------------------------------------------------

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

fn request(path: &str, body: Body) -> http::Request<Body> {
    http::Request::builder()
        .method("POST")
        .uri(format!("http://srv:7000{path}"))
        .header("content-type", "application/grpc")
        .body(body)
        .unwrap()
}

fn bytes_request(path: &str, body: &'static [u8]) -> http::Request<Body> {
    request(path, rewrap(Bytes::from_static(body)))
}

fn to_srv() -> Receiver {
    Receiver::addr("srv:7000").node("srv")
}

fn verify_layer() -> VerifyLayer {
    VerifyLayer::new(auth("srv"), me())
}

/// A body that sends `first`, then never finishes (or trickles nothing more).
fn endless_body(first: &'static [u8]) -> Body {
    let stream = futures_util_stream(first);
    Body::new(http_body_util::StreamBody::new(stream))
}

fn futures_util_stream(
    first: &'static [u8],
) -> impl tokio_stream::Stream<Item = Result<http_body::Frame<Bytes>, tonic::Status>> + Send + 'static {
    use tokio_stream::StreamExt as _;
    tokio_stream::once(Ok(http_body::Frame::data(Bytes::from_static(first)))).chain(tokio_stream::pending())
}

async fn body_of(resp: http::Response<Body>) -> Result<(Bytes, Option<HeaderMap>), tonic::Status> {
    let collected = resp.into_body().collect().await?;
    let trailers = collected.trailers().cloned();
    Ok((collected.to_bytes(), trailers))
}

#[tokio::test]
async fn sign_service_adds_valid_headers_and_keeps_request() {
    let captured: Arc<Mutex<Option<(HeaderMap, Bytes)>>> = Arc::default();
    let cap = captured.clone();
    // The inner service plays a server: it checks and seals like VerifyLayer would.
    let inner = tower::service_fn(move |req: http::Request<Body>| {
        let cap = cap.clone();
        async move {
            let (parts, body) = req.into_parts();
            let bytes = body.collect().await?.to_bytes();
            *cap.lock().unwrap() = Some((parts.headers, bytes));
            Ok::<_, BoxError>(tonic::Status::not_found("nothing").into_http())
        }
    });
    let svc = SignLayer::new(auth("node-a"), &to_srv()).layer(inner);
    // The fake server did not seal its answer: the client refuses it.
    let err = svc.oneshot(bytes_request(PATH, b"payload")).await.unwrap_err();
    let status = err.downcast::<tonic::Status>().expect("a status");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(status.message().contains("answer failed authentication"), "{status:?}");
    let (headers, body) = captured.lock().unwrap().take().unwrap();
    assert_eq!(&body[..], b"payload");
    assert_eq!(headers.get("content-type").unwrap(), "application/grpc");
    assert_eq!(headers.get(TO_HEADER).unwrap(), TO);
    assert_eq!(auth("srv").check(PATH, &headers, &body).unwrap(), "node-a");
}

#[tokio::test]
async fn signed_request_passes_verify_service_and_its_sealed_answer_passes_the_client() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(None));
    let server = verify_layer().layer(echo_inner(calls.clone(), seen.clone()));
    let client = SignLayer::new(auth("node-a"), &to_srv()).layer(server);
    let resp = client.oneshot(bytes_request(PATH, b"ping")).await.unwrap();
    let (body, trailers) = body_of(resp).await.unwrap();
    assert_eq!(&body[..], b"ping");
    assert!(trailers.unwrap().contains_key(ANSWER_HEADER));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(seen.lock().unwrap().as_deref(), Some("node-a"));
}

/// A relay between client and server that changes the answer.
fn tampering_relay<S>(
    server: S,
    tamper: fn(&mut Bytes, &mut HeaderMap),
) -> impl tower::Service<
    http::Request<Body>,
    Response = http::Response<Body>,
    Error = BoxError,
    Future = impl Future<Output = Result<http::Response<Body>, BoxError>> + Send,
> + Clone
+ Send
+ 'static
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send,
{
    tower::service_fn(move |req: http::Request<Body>| {
        let server = server.clone();
        async move {
            let resp = server.oneshot(req).await?;
            let (mut parts, body) = resp.into_parts();
            let collected = body.collect().await?;
            let mut trailers = collected.trailers().cloned().unwrap_or_default();
            let mut bytes = collected.to_bytes();
            tamper(&mut bytes, &mut trailers);
            if parts.headers.contains_key("grpc-status") {
                tamper(&mut Bytes::new(), &mut parts.headers);
            }
            let body = http_body_util::StreamBody::new(tokio_stream::iter([
                Ok::<_, tonic::Status>(http_body::Frame::data(bytes)),
                Ok(http_body::Frame::trailers(trailers)),
            ]));
            Ok::<_, BoxError>(http::Response::from_parts(parts, Body::new(body)))
        }
    })
}

#[tokio::test]
async fn a_relay_that_rewrites_an_answer_is_detected() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server = verify_layer().layer(echo_inner(calls.clone(), Arc::default()));

    // Untouched relay: fine.
    let honest = tampering_relay(server.clone(), |_, _| {});
    let client = SignLayer::new(auth("node-a"), &to_srv()).layer(honest);
    let resp = client.oneshot(bytes_request(PATH, b"ping")).await.unwrap();
    assert_eq!(&body_of(resp).await.unwrap().0[..], b"ping");

    // Rewritten body: the client's body fails when the trailers arrive.
    let rewrite = tampering_relay(server.clone(), |b, _| *b = Bytes::from_static(b"pong"));
    let client = SignLayer::new(auth("node-a"), &to_srv()).layer(rewrite);
    let resp = client.oneshot(bytes_request(PATH, b"ping")).await.unwrap();
    let err = body_of(resp).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);

    // Rewritten status (an error turned into success, or the reverse).
    let restatus = tampering_relay(server.clone(), |_, t| {
        t.insert("grpc-status", HeaderValue::from_static("5"));
    });
    let client = SignLayer::new(auth("node-a"), &to_srv()).layer(restatus);
    let resp = client.oneshot(bytes_request(PATH, b"ping")).await.unwrap();
    assert!(body_of(resp).await.is_err());

    // A MAC copied from another answer (another nonce) does not fit.
    let copied: Arc<Mutex<Option<HeaderValue>>> = Arc::default();
    {
        let server = verify_layer().layer(echo_inner(calls.clone(), Arc::default()));
        let client = SignLayer::new(auth("node-a"), &to_srv()).layer(server);
        let resp = client.oneshot(bytes_request(PATH, b"ping")).await.unwrap();
        let (_, trailers) = body_of(resp).await.unwrap();
        *copied.lock().unwrap() = trailers.unwrap().get(ANSWER_HEADER).cloned();
    }
    let mac = copied.lock().unwrap().clone().unwrap();
    let replayed_answer = tower::service_fn(move |_req: http::Request<Body>| {
        let mac = mac.clone();
        async move {
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", HeaderValue::from_static("0"));
            trailers.insert(ANSWER_HEADER, mac);
            let body = http_body_util::StreamBody::new(tokio_stream::iter([
                Ok::<_, tonic::Status>(http_body::Frame::data(Bytes::from_static(b"ping"))),
                Ok(http_body::Frame::trailers(trailers)),
            ]));
            Ok::<_, BoxError>(http::Response::new(Body::new(body)))
        }
    });
    let client = SignLayer::new(auth("node-a"), &to_srv()).layer(replayed_answer);
    let resp = client.oneshot(bytes_request(PATH, b"ping")).await.unwrap();
    assert!(body_of(resp).await.is_err(), "an answer to another request");
}

#[tokio::test]
async fn unsigned_request_rejected_without_calling_inner() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server = verify_layer().layer(echo_inner(calls.clone(), Arc::default()));
    let resp = server.clone().oneshot(bytes_request(PATH, b"ping")).await.unwrap();
    assert_eq!(resp.headers().get("grpc-status").unwrap(), "16");
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    // Wrong secret: also 16, inner not called; and the client does not trust the refusal
    // either (it is not sealed with the secret it knows).
    let forger = RpcAuth::new(ClusterSecret::new(vec![b'q'; 40]).unwrap(), "node-a");
    let client = SignLayer::new(forger, &to_srv()).layer(server.clone());
    let err = client.oneshot(bytes_request(PATH, b"ping")).await.unwrap_err();
    assert!(err.to_string().contains("answer failed authentication"), "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    // Replay of a captured valid request: first passes, second is 16.
    let signed = auth("node-a").sign(PATH, TO, b"ping");
    let mk = || {
        let mut r = bytes_request(PATH, b"ping");
        signed.apply(r.headers_mut());
        r
    };
    let resp = server.clone().oneshot(mk()).await.unwrap();
    assert!(resp.headers().get("grpc-status").is_none());
    let resp = server.clone().oneshot(mk()).await.unwrap();
    assert_eq!(resp.headers().get("grpc-status").unwrap(), "16");
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Replayed to another server (same secret): refused there.
    let other = VerifyLayer::new(auth("other"), Identity::new("other", ["other:7000".to_owned()]))
        .layer(echo_inner(calls.clone(), Arc::default()));
    let mut relayed = bytes_request(PATH, b"ping");
    auth("node-a").sign(PATH, TO, b"ping").apply(relayed.headers_mut());
    let resp = other.oneshot(relayed).await.unwrap();
    assert_eq!(resp.headers().get("grpc-status").unwrap(), "16");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_forged_request_is_refused_before_its_body_is_read() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server = verify_layer().layer(echo_inner(calls.clone(), Arc::default()));
    // Garbage signature, and a body that never ends: the answer must not wait for it.
    let mut req = request(PATH, endless_body(b"garbage"));
    let mut signed = auth("node-a").sign(PATH, TO, b"whatever");
    signed.signature = "00".repeat(32);
    signed.apply(req.headers_mut());
    let resp = tokio::time::timeout(Duration::from_secs(5), server.oneshot(req))
        .await
        .expect("refused without waiting for the body")
        .unwrap();
    assert_eq!(resp.headers().get("grpc-status").unwrap(), "16");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_declared_oversized_body_is_refused_before_it_is_read() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server = verify_layer().layer(echo_inner(calls.clone(), Arc::default()));
    let mut req = request(PATH, endless_body(b"x"));
    req.headers_mut()
        .insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("16777216"));
    auth("node-a").sign(PATH, TO, b"x").apply(req.headers_mut());
    let resp = tokio::time::timeout(Duration::from_secs(5), server.oneshot(req))
        .await
        .expect("refused without reading")
        .unwrap();
    assert_eq!(resp.headers().get("grpc-status").unwrap(), "8");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_trickled_body_is_cut_at_the_deadline() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server = verify_layer()
        .with_body_deadline(Duration::from_millis(200))
        .layer(echo_inner(calls.clone(), Arc::default()));
    // The signer buffers the body, so sign by hand and send a body that stalls.
    let mut req = request(PATH, endless_body(b"pi"));
    auth("node-a").sign(PATH, TO, b"ping").apply(req.headers_mut());
    let resp = tokio::time::timeout(Duration::from_secs(5), server.oneshot(req))
        .await
        .expect("cut at the deadline")
        .unwrap();
    assert_eq!(resp.headers().get("grpc-status").unwrap(), "4");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn oversized_body_is_resource_exhausted() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server = verify_layer()
        .with_max_body_bytes(8)
        .layer(echo_inner(calls.clone(), Arc::default()));
    let client = SignLayer::new(auth("node-a"), &to_srv()).layer(server);
    // The length is only found out while reading (no content-length): a sealed refusal.
    let resp = client.oneshot(bytes_request(PATH, b"0123456789")).await.unwrap();
    assert_eq!(resp.headers().get("grpc-status").unwrap(), "8");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}
