//! openraft's network over gRPC: AppendEntries, Vote and InstallSnapshot as JSON documents
//! inside `RaftPayload` (snapshot bytes travel beside the JSON, as raw bytes).

use std::error::Error;
use std::fmt::Display;
use std::sync::Arc;

use agenda_shared::proto::RaftPayload;
use agenda_shared::proto::raft_client::RaftClient;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::faults::Faults;
use crate::peers::{Peers, SignedChannel};
use crate::types::{NodeId, NodeInfo, TypeConfig};

/// Creates one [`PeerConnection`] per replication target.
#[derive(Clone)]
pub struct Network {
    pub(crate) peers: Arc<Peers>,
    pub(crate) faults: Arc<Faults>,
    pub(crate) self_name: String,
}

/// Raft RPCs to one peer.
pub struct PeerConnection {
    target: NodeId,
    node: NodeInfo,
    client: Option<RaftClient<SignedChannel>>,
    faults: Arc<Faults>,
    self_name: String,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> PeerConnection {
        let client = match self.peers.raft(&node.addr) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(peer = %node, error = %e, "bad peer address");
                None
            }
        };
        PeerConnection {
            target,
            node: node.clone(),
            client,
            faults: self.faults.clone(),
            self_name: self.self_name.clone(),
        }
    }
}

#[derive(Debug)]
struct Message(String);

impl Display for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for Message {}

fn unreachable(msg: impl Into<String>) -> Unreachable {
    Unreachable::new(&Message(msg.into()))
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, NodeInfo, RaftError<NodeId, E>>>;

impl PeerConnection {
    /// Send one RPC; transport failures become `Unreachable` (openraft backs off),
    /// a remote Raft error becomes `RemoteError`.
    async fn call<Req, Resp, E>(
        &mut self,
        kind: RpcKind,
        req: &Req,
        blob: Vec<u8>,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: Error + DeserializeOwned,
    {
        if self.faults.blocked(&self.self_name, &self.node.node_name) {
            return Err(RPCError::Unreachable(unreachable("cut off by fault injection")));
        }
        let Some(client) = self.client.as_mut() else {
            return Err(RPCError::Unreachable(unreachable(format!(
                "bad address {}",
                self.node.addr
            ))));
        };
        let data = serde_json::to_vec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let payload = RaftPayload {
            data,
            blob,
            target: self.target,
        };
        let call = async {
            match kind {
                RpcKind::Append => client.append_entries(payload).await,
                RpcKind::Vote => client.vote(payload).await,
                RpcKind::Snapshot => client.install_snapshot(payload).await,
            }
        };
        let reply = match tokio::time::timeout(option.hard_ttl(), call).await {
            Ok(Ok(reply)) => reply.into_inner(),
            Ok(Err(status)) => {
                return Err(RPCError::Unreachable(unreachable(format!(
                    "{}: {}",
                    status.code(),
                    status.message()
                ))));
            }
            Err(_) => return Err(RPCError::Unreachable(unreachable("timed out"))),
        };
        let result: Result<Resp, RaftError<NodeId, E>> =
            serde_json::from_slice(&reply.data).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new_with_node(self.target, self.node.clone(), e)))
    }
}

#[derive(Clone, Copy)]
enum RpcKind {
    Append,
    Vote,
    Snapshot,
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, openraft::error::Infallible> {
        self.call(RpcKind::Append, &rpc, Vec::new(), &option).await
    }

    async fn install_snapshot(
        &mut self,
        mut rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        let blob = std::mem::take(&mut rpc.data);
        self.call(RpcKind::Snapshot, &rpc, blob, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, openraft::error::Infallible> {
        self.call(RpcKind::Vote, &rpc, Vec::new(), &option).await
    }
}
