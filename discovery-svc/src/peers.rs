//! Outgoing gRPC to other agents: the shared channel cache ([`Channels`]), as discovery
//! clients.

use std::time::Duration;

use agenda_shared::auth::RpcAuth;
use agenda_shared::rpc::agent::{SignedDiscoveryClient, client};
use agenda_shared::rpc::channel::Channels;
use agenda_shared::rpc::tls::{ClusterTls, Role};

/// Channel cache used by the gossip loop.
pub(crate) struct Peers {
    channels: Channels,
}

impl Peers {
    pub(crate) fn new(auth: RpcAuth, tls: ClusterTls, connect_timeout: Duration) -> Self {
        Self {
            channels: Channels::new(auth, tls, Role::Discovery, connect_timeout),
        }
    }

    /// A signed client for the agent at `addr`.
    pub(crate) fn client(&self, addr: &str) -> Result<SignedDiscoveryClient, tonic::transport::Error> {
        Ok(client(self.channels.get(addr)?))
    }
}
