//! The front door's listeners: plain TCP, or TLS (rustls with the ring provider) when a
//! certificate is configured. Handshakes run in their own tasks so a slow client cannot
//! hold up others, and the accept loop never waits for a handshake slot: past the pending
//! limits the oldest pending handshakes are dropped instead. Both listeners report the
//! peer address as [`PeerAddr`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::TlsFiles;
use crate::http::extract::PeerAddr;
use crate::metrics::{Handshake, Metrics};
use crate::ratelimit::client_key;

/// Longest a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes pending at once from everybody; past it the oldest is dropped. Each costs a
/// socket and a few KiB, and a real handshake completes in milliseconds.
pub const MAX_PENDING: usize = 4096;
/// Handshakes pending at once from one client (an IPv4 address or an IPv6 /64); past it
/// that client's oldest is dropped. Browsers open about six connections per site; this
/// leaves room for many clients behind one NAT, while one address cannot take the whole
/// pending budget.
pub const MAX_PENDING_PER_CLIENT: usize = 64;

/// Why the front door's TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("cannot read {}", path.display())]
    Pem {
        /// The file.
        path: std::path::PathBuf,
        /// Cause.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// The certificate file holds no certificate.
    #[error("no certificate in {}", .0.display())]
    NoCertificate(std::path::PathBuf),
    /// rustls refused the certificate and key.
    #[error("the certificate and key are not usable")]
    Rustls(#[from] rustls::Error),
}

/// Load the certificate chain and key into a server configuration (HTTP/1.1 over TLS).
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let pem = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Pem { path, source }
    };
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(pem(&files.cert))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(files.cert.clone()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(pem(&files.key))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Handshakes waiting to complete, by age, each with its client and its stop switch.
/// The accept loop admits every connection at once and, when there are too many, stops
/// the oldest pending ones (of the same client first), so the newest connection always
/// gets its chance and idle sockets can hold nobody up.
#[derive(Default)]
struct Pending {
    next: u64,
    by_age: BTreeMap<u64, (IpAddr, CancellationToken)>,
    by_client: HashMap<IpAddr, BTreeSet<u64>>,
}

/// The pending handshakes (never held across an await).
fn lock(pending: &Mutex<Pending>) -> std::sync::MutexGuard<'_, Pending> {
    pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Pending {
    /// Register a handshake from `client`; returns its number and the stop switches of the
    /// handshakes it displaced.
    fn admit(&mut self, client: IpAddr, stop: CancellationToken) -> (u64, Vec<CancellationToken>) {
        let id = self.next;
        self.next += 1;
        self.by_age.insert(id, (client, stop));
        let mut displaced = Vec::new();
        let mine = self.by_client.entry(client).or_default();
        mine.insert(id);
        if mine.len() > MAX_PENDING_PER_CLIENT
            && let Some(oldest) = mine.pop_first()
        {
            displaced.extend(self.by_age.remove(&oldest).map(|(_, stop)| stop));
        }
        if self.by_age.len() > MAX_PENDING
            && let Some((oldest, (client, stop))) = self.by_age.pop_first()
        {
            self.forget(client, oldest);
            displaced.push(stop);
        }
        (id, displaced)
    }

    /// Handshake `id` ended (completed, failed, timed out or displaced).
    fn finish(&mut self, id: u64) {
        if let Some((client, _)) = self.by_age.remove(&id) {
            self.forget(client, id);
        }
    }

    fn forget(&mut self, client: IpAddr, id: u64) {
        if let Some(ids) = self.by_client.get_mut(&client) {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_client.remove(&client);
            }
        }
    }
}

/// A listener yielding TLS streams whose handshake completed.
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accept on `tcp` and hand over connections once their handshake succeeded, until
    /// `shutdown`. The accept loop never waits for anything but the next connection: each
    /// handshake runs in a task of its own, bounded by [`HANDSHAKE_TIMEOUT`] and by the
    /// pending limits (see [`Pending`]).
    pub fn spawn(
        tcp: TcpListener,
        config: Arc<ServerConfig>,
        metrics: Metrics,
        shutdown: CancellationToken,
    ) -> io::Result<Self> {
        let local = tcp.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (tx, rx) = mpsc::channel(64);
        let pending = Arc::new(Mutex::new(Pending::default()));
        tokio::spawn(
            async move {
                loop {
                    let accepted = tokio::select! {
                        _ = shutdown.cancelled() => break,
                        a = tcp.accept() => a,
                    };
                    let (stream, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of file descriptors, typically: give the system a moment.
                            tracing::debug!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let stop = shutdown.child_token();
                    let (id, displaced) = lock(&pending).admit(client_key(peer.ip()), stop.clone());
                    for d in displaced {
                        d.cancel();
                    }
                    let (acceptor, tx, pending, metrics) =
                        (acceptor.clone(), tx.clone(), pending.clone(), metrics.clone());
                    tokio::spawn(
                        async move {
                            let _ = stream.set_nodelay(true);
                            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                            let outcome = tokio::select! {
                                _ = stop.cancelled() => None,
                                done = handshake => Some(done),
                            };
                            lock(&pending).finish(id);
                            match outcome {
                                Some(Ok(Ok(tls))) => {
                                    metrics.tls_handshake(Handshake::Ok);
                                    let _ = tx.send((tls, peer)).await;
                                }
                                Some(Ok(Err(e))) => {
                                    metrics.tls_handshake(Handshake::Failed);
                                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                }
                                Some(Err(_)) => {
                                    metrics.tls_handshake(Handshake::TimedOut);
                                    tracing::debug!(%peer, "TLS handshake timed out");
                                }
                                None => {
                                    metrics.tls_handshake(Handshake::Dropped);
                                    tracing::debug!(%peer, "TLS handshake dropped: too many pending");
                                }
                            }
                        }
                        .in_current_span(),
                    );
                }
            }
            .in_current_span(),
        );
        Ok(Self { rx, local })
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // The accept loop stopped (shutdown): no more connections.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Plain TCP with `TCP_NODELAY` on every accepted socket: small writes (WebSocket frames,
/// streamed bodies) leave at once instead of waiting for the client's delayed ACK.
#[derive(Debug)]
pub struct PlainListener(pub TcpListener);

impl Listener for PlainListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = Listener::accept(&mut self.0).await;
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        (stream, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

impl Connected<IncomingStream<'_, PlainListener>> for PeerAddr {
    fn connect_info(stream: IncomingStream<'_, PlainListener>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for PeerAddr {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_many_pending_handshakes_displace_the_oldest_of_the_same_client_first() {
        let mut pending = Pending::default();
        let busy = IpAddr::from([192, 0, 2, 1]);
        let other = IpAddr::from([192, 0, 2, 2]);
        let (first_other, _) = pending.admit(other, CancellationToken::new());
        let stops: Vec<CancellationToken> = (0..MAX_PENDING_PER_CLIENT).map(|_| CancellationToken::new()).collect();
        for stop in &stops {
            let (_, displaced) = pending.admit(busy, stop.clone());
            assert!(displaced.is_empty());
        }
        let (newest, displaced) = pending.admit(busy, CancellationToken::new());
        assert_eq!(displaced.len(), 1);
        displaced[0].cancel();
        assert!(stops[0].is_cancelled(), "the client's oldest handshake goes");
        assert!(stops[1..].iter().all(|s| !s.is_cancelled()));
        assert!(
            pending.by_age.contains_key(&first_other),
            "another client keeps its own"
        );
        assert_eq!(pending.by_client[&busy].len(), MAX_PENDING_PER_CLIENT);
        pending.finish(newest);
        pending.finish(first_other);
        assert!(!pending.by_client.contains_key(&other));
        assert_eq!(pending.by_age.len(), MAX_PENDING_PER_CLIENT - 1);
    }

    #[test]
    fn past_the_total_the_oldest_handshake_of_anybody_goes() {
        let mut pending = Pending::default();
        let client = |i: usize| IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
        let first = CancellationToken::new();
        pending.admit(client(0), first.clone());
        for i in 1..MAX_PENDING {
            assert!(pending.admit(client(i), CancellationToken::new()).1.is_empty());
        }
        let (_, displaced) = pending.admit(client(MAX_PENDING), CancellationToken::new());
        assert_eq!(displaced.len(), 1);
        displaced[0].cancel();
        assert!(first.is_cancelled());
        assert_eq!(pending.by_age.len(), MAX_PENDING);
        assert!(!pending.by_client.contains_key(&client(0)));
    }

    #[tokio::test]
    async fn plain_connections_are_accepted_with_nodelay() {
        let mut listener = PlainListener(TcpListener::bind("127.0.0.1:0").await.unwrap());
        let addr = Listener::local_addr(&listener).unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (accepted, peer) = Listener::accept(&mut listener).await;
        assert_eq!(peer, client.local_addr().unwrap());
        assert!(
            accepted.nodelay().unwrap(),
            "TCP_NODELAY must be set on accepted sockets"
        );
    }
}
