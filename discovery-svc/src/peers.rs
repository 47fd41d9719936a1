//! Outgoing gRPC to other agents: one cached, lazily connected channel per address, every
//! request signed with the cluster HMAC.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use agenda_shared::auth::{RpcAuth, SignLayer, SignService};
use agenda_shared::discovery_proto::discovery_client::DiscoveryClient;
use tonic::transport::{Channel, Endpoint};
use tower::ServiceBuilder;

/// A discovery client whose requests are signed.
pub type SignedDiscoveryClient = DiscoveryClient<SignService<Channel>>;

/// Largest gRPC message accepted or sent by the discovery service (a table of a few
/// hundred members is far below it).
pub(crate) const MAX_MESSAGE: usize = 4 * 1024 * 1024;

/// A lazily connected channel to `addr` (`host:port`): connecting happens on first use
/// and again after the peer comes back.
pub(crate) fn lazy_channel(addr: &str, connect_timeout: Duration) -> Result<Channel, tonic::transport::Error> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true)
        .connect_lazy())
}

/// Wrap `channel` so every request is signed by `auth`.
pub(crate) fn signed_client(channel: Channel, auth: RpcAuth) -> SignedDiscoveryClient {
    DiscoveryClient::new(ServiceBuilder::new().layer(SignLayer::new(auth)).service(channel))
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

/// Channels kept at most; past it the cache is emptied (channels reconnect lazily), so
/// addresses that DNS no longer returns do not accumulate forever.
const MAX_CHANNELS: usize = 256;

/// Channel cache used by the gossip loop.
pub(crate) struct Peers {
    auth: RpcAuth,
    connect_timeout: Duration,
    channels: Mutex<HashMap<String, Channel>>,
}

impl Peers {
    pub(crate) fn new(auth: RpcAuth, connect_timeout: Duration) -> Self {
        Self {
            auth,
            connect_timeout,
            channels: Mutex::new(HashMap::new()),
        }
    }

    /// A signed client for the agent at `addr`.
    pub(crate) fn client(&self, addr: &str) -> Result<SignedDiscoveryClient, tonic::transport::Error> {
        let channel = {
            let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
            match map.get(addr) {
                Some(ch) => ch.clone(),
                None => {
                    if map.len() >= MAX_CHANNELS {
                        map.clear();
                    }
                    let ch = lazy_channel(addr, self.connect_timeout)?;
                    map.insert(addr.to_owned(), ch.clone());
                    ch
                }
            }
        };
        Ok(signed_client(channel, self.auth.clone()))
    }
}
