//! Outgoing gRPC channels, built one way for every link of the cluster: mutual TLS with the
//! cluster CA ([`ClusterTls`]), lazily connected (connecting happens on first use, and again
//! after the peer comes back), `TCP_NODELAY`, HTTP/2 keep-alives, every request signed with
//! the cluster HMAC for its receiver and every answer checked ([`SignLayer`]). [`Channels`]
//! caches one channel per address.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};
use tower::ServiceBuilder;

use super::tls::{ClusterTls, Role};
use crate::auth::{Receiver, RpcAuth, SignLayer, SignService};

/// A channel whose every request is signed.
pub type SignedChannel = SignService<Channel>;

/// Keep-alive ping interval on idle connections.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// How long a keep-alive ping may go unanswered before the connection is dropped.
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// A lazily connected channel to the `target` at `addr` (`host:port`), over `tls`.
pub fn lazy_channel(
    addr: &str,
    tls: &ClusterTls,
    target: Role,
    connect_timeout: Duration,
) -> Result<Channel, tonic::transport::Error> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(connect_timeout)
        .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .connect_with_connector_lazy(tls.connector(target)))
}

/// Wrap `channel` so every request is signed by `auth` for `to`, and every answer checked.
pub fn signed(channel: Channel, auth: RpcAuth, to: &Receiver) -> SignedChannel {
    ServiceBuilder::new().layer(SignLayer::new(auth, to)).service(channel)
}

/// One cached channel per address to peers of one role, signed as one sender. Past
/// `max_channels` the cache is emptied (channels reconnect lazily), so addresses nobody uses
/// any more do not accumulate forever.
#[derive(Debug)]
pub struct Channels {
    auth: RpcAuth,
    tls: ClusterTls,
    target: Role,
    connect_timeout: Duration,
    max_channels: usize,
    cache: Mutex<HashMap<String, Channel>>,
}

impl Channels {
    /// A cache of channels to `target`s over `tls`, signed by `auth`, each connecting within
    /// `connect_timeout`.
    pub fn new(auth: RpcAuth, tls: ClusterTls, target: Role, connect_timeout: Duration) -> Self {
        Self {
            auth,
            tls,
            target,
            connect_timeout,
            max_channels: 256,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The sender identity requests are signed with.
    pub fn auth(&self) -> &RpcAuth {
        &self.auth
    }

    /// The signed channel to `addr`, created on first use; requests name the receiver by
    /// its address.
    pub fn get(&self, addr: &str) -> Result<SignedChannel, tonic::transport::Error> {
        self.get_for(&Receiver::addr(addr))
    }

    /// The signed channel to `to.addr`, created on first use; requests name `to`.
    pub fn get_for(&self, to: &Receiver) -> Result<SignedChannel, tonic::transport::Error> {
        let addr = to.addr.as_str();
        let channel = {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            match cache.get(addr) {
                Some(ch) => ch.clone(),
                None => {
                    if cache.len() >= self.max_channels {
                        cache.clear();
                    }
                    let ch = lazy_channel(addr, &self.tls, self.target, self.connect_timeout)?;
                    cache.insert(addr.to_owned(), ch.clone());
                    ch
                }
            }
        };
        Ok(signed(channel, self.auth.clone(), to))
    }

    /// Forget every cached channel except those to `keep` (in-flight calls finish on
    /// theirs).
    pub fn retain(&self, keep: &[String]) {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|a, _| keep.contains(a));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::ClusterSecret;

    #[tokio::test]
    async fn channels_are_cached_per_address_and_bounded() {
        let auth = RpcAuth::new(ClusterSecret::new(vec![b's'; 32]).unwrap(), "test");
        let mut channels = Channels::new(auth, ClusterTls::insecure(), Role::Store, Duration::from_millis(100));
        channels.max_channels = 2;
        channels.get("127.0.0.1:1").unwrap();
        channels.get("127.0.0.1:1").unwrap();
        assert_eq!(channels.cache.lock().unwrap().len(), 1);
        channels.get("127.0.0.1:2").unwrap();
        channels.get("127.0.0.1:3").unwrap();
        assert!(channels.cache.lock().unwrap().len() <= 2);
        channels.retain(&["127.0.0.1:3".to_owned()]);
        assert_eq!(channels.cache.lock().unwrap().len(), 1);
        assert!(channels.get("not an address").is_err());
    }
}
