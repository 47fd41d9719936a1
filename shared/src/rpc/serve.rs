//! The server side of a cluster link: accepting connections without letting anyone hold
//! the accept loop, and the HTTP/2 limits every gRPC server of the cluster runs with.
//!
//! [`incoming`] accepts TCP (`TCP_NODELAY`), caps connections per peer address and in
//! total, and runs each TLS handshake in its own task with a deadline, so idle or slow
//! sockets never delay anyone else. A connection that completed its handshake carries a
//! [`PeerInfo`] (addresses, and the role its certificate names) that tonic puts in every
//! request's extensions for the verifying layer.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::either::Either;
use tonic::transport::server::Connected;

use super::tls::{ClusterTls, Role, peer_role};

/// Connection limits of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Open connections (including handshakes in progress) from one IP address.
    pub per_peer: usize,
    /// Open connections in total.
    pub total: usize,
    /// Longest a TLS handshake may take.
    pub handshake_timeout: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            per_peer: 128,
            total: 2048,
            handshake_timeout: Duration::from_secs(5),
        }
    }
}

/// HTTP/2 limits of every cluster gRPC server.
pub mod h2 {
    /// Streams one connection may have open at once.
    pub const MAX_CONCURRENT_STREAMS: u32 = 64;
    /// Flow-control window of one stream: what a peer can make the server buffer for a
    /// stream before the server reads it.
    pub const STREAM_WINDOW: u32 = 256 * 1024;
    /// Flow-control window of one connection (all its streams together).
    pub const CONNECTION_WINDOW: u32 = 1024 * 1024;
    /// Largest header block.
    pub const MAX_HEADER_LIST: u32 = 16 * 1024;
}

/// A tonic server builder with the cluster's HTTP/2 limits.
pub fn server_builder() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .max_concurrent_streams(h2::MAX_CONCURRENT_STREAMS)
        .initial_stream_window_size(h2::STREAM_WINDOW)
        .initial_connection_window_size(h2::CONNECTION_WINDOW)
        .http2_max_header_list_size(h2::MAX_HEADER_LIST)
        .http2_max_pending_accept_reset_streams(Some(32))
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(Duration::from_secs(5)))
}

/// Who is on the other end of a server connection. tonic adds it to every request's
/// extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's address.
    pub remote: SocketAddr,
    /// The address the connection arrived at.
    pub local: SocketAddr,
    /// The role the peer's certificate names; `None` on a plain-text link.
    pub role: Option<Role>,
    /// Whether the link is TLS.
    pub tls: bool,
}

/// Counts open connections per IP address and in total.
#[derive(Debug, Default)]
struct Counts {
    per_ip: HashMap<IpAddr, usize>,
    total: usize,
}

/// Releases one connection's slot when dropped.
#[derive(Debug)]
struct Slot {
    counts: Arc<Mutex<Counts>>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.per_ip.remove(&self.ip);
            }
        }
    }
}

fn take_slot(counts: &Arc<Mutex<Counts>>, ip: IpAddr, limits: &ConnLimits) -> Option<Slot> {
    let mut c = counts.lock().unwrap_or_else(|p| p.into_inner());
    let mine = c.per_ip.get(&ip).copied().unwrap_or(0);
    if mine >= limits.per_peer || c.total >= limits.total {
        return None;
    }
    c.per_ip.insert(ip, mine + 1);
    c.total += 1;
    Some(Slot {
        counts: counts.clone(),
        ip,
    })
}

/// One accepted connection, TLS or plain.
#[derive(Debug)]
pub struct ClusterConn {
    io: Either<Box<tokio_rustls::server::TlsStream<TcpStream>>, TcpStream>,
    info: PeerInfo,
    _slot: Slot,
}

impl Connected for ClusterConn {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for ClusterConn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for ClusterConn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Connections accepted on `listener`, ready for tonic's `serve_with_incoming_shutdown`.
/// The accept loop stops when the returned stream is dropped.
pub fn incoming(
    listener: TcpListener,
    tls: &ClusterTls,
    limits: ConnLimits,
) -> ReceiverStream<io::Result<ClusterConn>> {
    let (tx, rx) = mpsc::channel::<io::Result<ClusterConn>>(64);
    let acceptor = tls.acceptor();
    let counts = Arc::new(Mutex::new(Counts::default()));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = tx.closed() => break,
                a = listener.accept() => a,
            };
            let (tcp, remote) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            let Some(slot) = take_slot(&counts, remote.ip(), &limits) else {
                tracing::debug!(%remote, "connection refused: too many connections from this peer or in total");
                drop(tcp);
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let local = match tcp.local_addr() {
                Ok(l) => l,
                Err(_) => continue,
            };
            let tx = tx.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let conn = match acceptor {
                    None => ClusterConn {
                        io: Either::Right(tcp),
                        info: PeerInfo {
                            remote,
                            local,
                            role: None,
                            tls: false,
                        },
                        _slot: slot,
                    },
                    Some(acceptor) => {
                        match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
                            Ok(Ok(stream)) => {
                                let role = peer_role(stream.get_ref().1.peer_certificates());
                                ClusterConn {
                                    io: Either::Left(Box::new(stream)),
                                    info: PeerInfo {
                                        remote,
                                        local,
                                        role,
                                        tls: true,
                                    },
                                    _slot: slot,
                                }
                            }
                            Ok(Err(e)) => {
                                tracing::info!(%remote, error = %e, "cluster TLS handshake refused");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%remote, "cluster TLS handshake timed out");
                                return;
                            }
                        }
                    }
                };
                let _ = tx.send(Ok(conn)).await;
            });
        }
    });
    ReceiverStream::new(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_per_peer_and_in_total_and_released_on_drop() {
        let counts = Arc::new(Mutex::new(Counts::default()));
        let limits = ConnLimits {
            per_peer: 2,
            total: 3,
            handshake_timeout: Duration::from_secs(1),
        };
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let s1 = take_slot(&counts, a, &limits).expect("first");
        let _s2 = take_slot(&counts, a, &limits).expect("second");
        assert!(take_slot(&counts, a, &limits).is_none(), "third from one peer");
        let _s3 = take_slot(&counts, b, &limits).expect("another peer");
        assert!(take_slot(&counts, b, &limits).is_none(), "total reached");
        drop(s1);
        assert!(take_slot(&counts, a, &limits).is_some(), "released on drop");
    }
}
