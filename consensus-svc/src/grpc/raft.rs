//! Server side of the Raft transport: decode, hand to openraft, encode the `Result`.

use agenda_shared::proto::RaftPayload;
use agenda_shared::proto::raft_server::Raft as RaftRpc;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, VoteRequest};
use tonic::{Request, Response, Status};

use std::time::Instant;

use crate::election::PreVoteRequest;
use crate::node::StoreNode;
use crate::types::TypeConfig;

/// gRPC `agenda.v1.Raft` service. Tells the node's freshness (bounds the staleness of local
/// reads) of every accepted `AppendEntries`, and its leader contact (pre-votes) of every
/// message from a current leader and every vote granted.
pub(crate) struct RaftService {
    pub(crate) node: StoreNode,
}

impl RaftService {
    /// Refuse messages meant for another incarnation of this slot.
    fn check_target(&self, payload: &RaftPayload) -> Result<(), Status> {
        if payload.target != self.node.raft_id {
            return Err(Status::failed_precondition(format!(
                "this store is raft id {}, not {}",
                self.node.raft_id, payload.target
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
        if !req.entries.is_empty() && self.node.disk.space() == crate::disk::Space::Critical {
            // Appending would fill the volume: stay out of the quorum until space returns.
            return Err(Status::resource_exhausted(
                self.node
                    .disk
                    .alarm()
                    .unwrap_or_else(|| "the data volume is full".into()),
            ));
        }
        let received = Instant::now();
        let commit = req.leader_commit.map_or(0, |l| l.index);
        let answer = self.node.raft.append_entries(req).await;
        if let Ok(response) = &answer {
            // Anything but "your vote is stale" came from the current leader.
            if !matches!(response, AppendEntriesResponse::HigherVote(_)) {
                self.node.contact.heard();
            }
            if response.is_success() {
                self.node.freshness.leader_contact(received, commit);
            }
        }
        encode(&answer)
    }

    async fn vote(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        self.check_target(request.get_ref())?;
        let req: VoteRequest<u64> = decode(&request.get_ref().data)?;
        let answer = self.node.raft.vote(req).await;
        if answer.as_ref().is_ok_and(|r| r.vote_granted) {
            // As a Raft follower resets its election timer when it grants a vote.
            self.node.contact.heard();
        }
        encode(&answer)
    }

    async fn install_snapshot(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        self.check_target(request.get_ref())?;
        let payload = request.into_inner();
        let mut req: InstallSnapshotRequest<TypeConfig> = decode(&payload.data)?;
        req.data = payload.blob;
        let answer = self.node.raft.install_snapshot(req).await;
        if answer.is_ok() {
            self.node.contact.heard();
        }
        encode(&answer)
    }

    async fn pre_vote(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        self.check_target(request.get_ref())?;
        let req: PreVoteRequest = decode(&request.get_ref().data)?;
        let answer = self.node.answer_pre_vote(&req).await;
        if !answer.granted {
            tracing::debug!(
                candidate = req.candidate,
                reason = answer.reason.as_deref().unwrap_or(""),
                "pre-vote refused"
            );
        }
        encode(&answer)
    }
}
