//! Sockets of the gRPC servers.

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

/// `listener` as tonic's incoming stream with `TCP_NODELAY` on every accepted socket.
/// `Server::tcp_nodelay` only applies when tonic binds the socket itself; the sidecars bind
/// first (to report the address and fail early), and without this a response's trailers
/// waited for the peer's delayed ACK, ~40 ms per call (docs/benchmarks.md).
pub fn nodelay_incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt;

    #[tokio::test]
    async fn accepted_sockets_have_nodelay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut incoming = nodelay_incoming(listener);
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let accepted = incoming.next().await.expect("a connection").expect("accepted");
        assert!(
            accepted.nodelay().unwrap(),
            "TCP_NODELAY must be set on accepted sockets"
        );
    }
}
