//! Server side of the Raft transport: decode, hand to openraft, encode the `Result`.

use agenda_shared::proto::RaftPayload;
use agenda_shared::proto::raft_server::Raft as RaftRpc;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use tonic::{Request, Response, Status};

use crate::types::{NodeId, Raft, TypeConfig};

/// gRPC `agenda.v1.Raft` service.
pub(crate) struct RaftService {
    pub(crate) raft: Raft,
    pub(crate) raft_id: NodeId,
}

impl RaftService {
    /// Refuse messages meant for another incarnation of this slot.
    fn check_target(&self, payload: &RaftPayload) -> Result<(), Status> {
        if payload.target != self.raft_id {
            return Err(Status::failed_precondition(format!(
                "this store is raft id {}, not {}",
                self.raft_id, payload.target
            )));
        }
        Ok(())
    }
}

fn decode<T: serde::de::DeserializeOwned>(data: &[u8]) -> Result<T, Status> {
    serde_json::from_slice(data).map_err(|e| Status::invalid_argument(format!("bad raft payload: {e}")))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Response<RaftPayload>, Status> {
    let data = serde_json::to_vec(value).map_err(|e| Status::internal(format!("encode: {e}")))?;
    Ok(Response::new(RaftPayload {
        data,
        ..Default::default()
    }))
}

#[tonic::async_trait]
impl RaftRpc for RaftService {
    async fn append_entries(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        self.check_target(request.get_ref())?;
        let req: AppendEntriesRequest<TypeConfig> = decode(&request.get_ref().data)?;
        encode(&self.raft.append_entries(req).await)
    }

    async fn vote(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        self.check_target(request.get_ref())?;
        let req: VoteRequest<u64> = decode(&request.get_ref().data)?;
        encode(&self.raft.vote(req).await)
    }

    async fn install_snapshot(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        self.check_target(request.get_ref())?;
        let payload = request.into_inner();
        let mut req: InstallSnapshotRequest<TypeConfig> = decode(&payload.data)?;
        req.data = payload.blob;
        encode(&self.raft.install_snapshot(req).await)
    }
}
