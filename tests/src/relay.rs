//! A man in the middle for the link tests: an HTTP/2 relay in front of a store that
//! forwards every call and may rewrite the answers' bodies (their trailers, including the
//! answer MAC, pass through untouched). It models an attacker who answers on a store's
//! address on a plain-text network; with mutual TLS on, such a relay cannot even link.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use agenda_shared::rpc::channel::lazy_channel;
use agenda_shared::rpc::tls::{ClusterTls, Role};
use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tonic::body::Body;
use tower::ServiceExt as _;

/// Rewrites an answer body of the RPC at `path`; returns `None` to leave it alone.
pub type Rewrite = Arc<dyn Fn(&str, &Bytes) -> Option<Bytes> + Send + Sync>;

/// A running relay.
pub struct Relay {
    /// Where it listens.
    pub addr: SocketAddr,
    rewritten: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Relay plain-text gRPC from a fresh loopback port to `upstream`.
    pub async fn start(upstream: SocketAddr, rewrite: Rewrite) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let channel = lazy_channel(
            &upstream.to_string(),
            &ClusterTls::insecure(),
            Role::Store,
            Duration::from_secs(1),
        )
        .expect("channel");
        let rewritten = Arc::new(AtomicUsize::new(0));
        let counter = rewritten.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { break };
                let channel = channel.clone();
                let rewrite = rewrite.clone();
                let counter = counter.clone();
                let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let channel = channel.clone();
                    let rewrite = rewrite.clone();
                    let counter = counter.clone();
                    async move {
                        let path = req.uri().path().to_owned();
                        let (parts, body) = req.into_parts();
                        let req = http::Request::from_parts(parts, Body::new(body));
                        let resp = channel.oneshot(req).await.map_err(|e| e.to_string())?;
                        let (parts, body) = resp.into_parts();
                        let collected = body.collect().await.map_err(|e| e.to_string())?;
                        let trailers = collected.trailers().cloned();
                        let mut data = collected.to_bytes();
                        if let Some(new) = rewrite(&path, &data) {
                            counter.fetch_add(1, Ordering::SeqCst);
                            data = new;
                        }
                        let mut frames = vec![Ok::<_, tonic::Status>(http_body::Frame::data(data))];
                        if let Some(t) = trailers {
                            frames.push(Ok(http_body::Frame::trailers(t)));
                        }
                        let body = Body::new(StreamBody::new(tokio_stream::iter(frames)));
                        Ok::<_, String>(http::Response::from_parts(parts, body))
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Self { addr, rewritten, task }
    }

    /// How many answers it rewrote.
    pub fn rewritten(&self) -> usize {
        self.rewritten.load(Ordering::SeqCst)
    }

    /// Stop it.
    pub fn stop(self) {
        self.task.abort();
    }
}
