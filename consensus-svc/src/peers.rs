//! Outgoing gRPC to other stores: the shared channel cache ([`Channels`]), as Raft clients
//! (the Raft network) and typed store clients (forwarding to the leader).

use std::sync::Arc;
use std::time::Duration;

use agenda_shared::auth::{Receiver, RpcAuth};
use agenda_shared::proto::raft_client::RaftClient;
use agenda_shared::rpc::channel::{Channels, SignedChannel};
use agenda_shared::rpc::store::{MAX_MESSAGE, StoreClient};
use agenda_shared::rpc::tls::{ClusterTls, Role};

/// Channel cache shared by the Raft network and the forwarding clients.
pub(crate) struct Peers {
    channels: Channels,
}

impl Peers {
    pub(crate) fn new(auth: RpcAuth, tls: ClusterTls, connect_timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            channels: Channels::new(auth, tls, Role::Store, connect_timeout),
        })
    }

    /// A Raft client of the store `to` (its address, node id and Raft id).
    pub(crate) fn raft(&self, to: &Receiver) -> Result<RaftClient<SignedChannel>, tonic::transport::Error> {
        Ok(RaftClient::new(self.channels.get_for(to)?)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE))
    }

    /// A signed channel to the store at `addr`.
    pub(crate) fn channel(&self, addr: &str) -> Result<SignedChannel, tonic::transport::Error> {
        self.channels.get(addr)
    }

    /// A store client of the store at `addr`.
    pub(crate) fn store(&self, addr: &str) -> Result<StoreClient, tonic::transport::Error> {
        Ok(StoreClient::new(self.channels.get(addr)?))
    }
}
