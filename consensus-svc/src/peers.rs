//! Outgoing gRPC to other stores: one cached, lazily connected channel per peer address,
//! every request signed with the cluster HMAC.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agenda_shared::auth::{RpcAuth, SignLayer, SignService};
use agenda_shared::proto::raft_client::RaftClient;
use agenda_shared::proto::store_client::StoreClient;
use tonic::transport::{Channel, Endpoint};
use tower::ServiceBuilder;

/// A channel that signs every request.
pub(crate) type SignedChannel = SignService<Channel>;

/// Largest gRPC message accepted or sent between stores (snapshot chunks are 3 MiB).
pub(crate) const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// Channel cache shared by the Raft network and the forwarding clients.
pub(crate) struct Peers {
    auth: RpcAuth,
    connect_timeout: Duration,
    channels: Mutex<HashMap<String, Channel>>,
}

impl Peers {
    pub(crate) fn new(auth: RpcAuth, connect_timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            auth,
            connect_timeout,
            channels: Mutex::new(HashMap::new()),
        })
    }

    /// The cached channel to `addr` (`host:port`), created lazily: connecting happens on
    /// first use and again after the peer comes back.
    fn channel(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ch) = map.get(addr) {
            return Ok(ch.clone());
        }
        let channel = Endpoint::from_shared(format!("http://{addr}"))?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .keep_alive_while_idle(true)
            .connect_lazy();
        map.insert(addr.to_owned(), channel.clone());
        Ok(channel)
    }

    fn signed(&self, addr: &str) -> Result<SignedChannel, tonic::transport::Error> {
        Ok(ServiceBuilder::new()
            .layer(SignLayer::new(self.auth.clone()))
            .service(self.channel(addr)?))
    }

    pub(crate) fn raft(&self, addr: &str) -> Result<RaftClient<SignedChannel>, tonic::transport::Error> {
        Ok(RaftClient::new(self.signed(addr)?)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE))
    }

    pub(crate) fn store(&self, addr: &str) -> Result<StoreClient<SignedChannel>, tonic::transport::Error> {
        Ok(StoreClient::new(self.signed(addr)?)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE))
    }
}
