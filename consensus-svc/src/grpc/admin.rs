//! gRPC `agenda.v1.Admin`: cluster initialisation and membership changes.

use std::collections::{BTreeMap, BTreeSet};

use agenda_shared::proto::admin_server::Admin;
use std::io::Read;
use std::pin::Pin;

use agenda_shared::proto::{
    AddLearnerRequest, AdminReply, BackupChunk, BackupRequest, ChangeMembershipRequest, InitializeRequest, Member,
    MetricsRequest, StandForElectionRequest, TransferLeaderRequest, backup_chunk,
};
use futures::Stream;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::error::StoreError;
use crate::node::StoreNode;
use crate::types::{NodeInfo, RaftId};

/// gRPC `agenda.v1.Admin` service.
pub(crate) struct AdminService {
    pub(crate) node: StoreNode,
}

fn reply<T: serde::Serialize>(value: &T) -> Result<Response<AdminReply>, Status> {
    let data = serde_json::to_vec(value).map_err(|e| Status::internal(format!("encode: {e}")))?;
    Ok(Response::new(AdminReply { data }))
}

fn member(m: Member) -> Result<(RaftId, NodeInfo), Status> {
    if m.addr.is_empty() || m.node_name.is_empty() {
        return Err(StoreError::BadRequest("a member needs an address and a node name".into()).into());
    }
    Ok((
        m.raft_id,
        NodeInfo {
            addr: m.addr,
            node_name: m.node_name,
        },
    ))
}

/// Map a membership-changing Raft error (membership changes are the leader's).
fn membership_error<E>(e: openraft::error::RaftError<RaftId, E>) -> Status
where
    E: std::error::Error + openraft::TryAsRef<openraft::error::ForwardToLeader<RaftId, NodeInfo>>,
{
    if e.forward_to_leader::<NodeInfo>().is_some() {
        return StoreError::NotLeader.into();
    }
    StoreError::Membership(e.to_string()).into()
}

/// The chunks of a backup.
pub(crate) type BackupStream = Pin<Box<dyn Stream<Item = Result<BackupChunk, Status>> + Send>>;

fn chunk(part: backup_chunk::Part) -> Result<BackupChunk, Status> {
    Ok(BackupChunk { part: Some(part) })
}

#[tonic::async_trait]
impl Admin for AdminService {
    type BackupStream = BackupStream;

    async fn backup(&self, request: Request<BackupRequest>) -> Result<Response<BackupStream>, Status> {
        let linearizable = request.into_inner().linearizable;
        let (header, path) = self.node.backup(linearizable).await?;
        let header_json = serde_json::to_vec(&header).map_err(|e| Status::internal(format!("encode: {e}")))?;
        let (tx, rx) = mpsc::channel(4);
        // The file is read on a blocking thread and sent as the client takes it: never
        // held whole in memory. Dropping `path` at the end deletes the copy.
        tokio::task::spawn_blocking(move || {
            let send = |item| tx.blocking_send(item).is_ok();
            if !send(chunk(backup_chunk::Part::Header(header_json))) {
                return;
            }
            let mut file = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) => {
                    let _ = send(Err(Status::internal(format!("backup copy: {e}"))));
                    return;
                }
            };
            let mut hash = Sha256::new();
            let mut buf = vec![0u8; crate::backup::CHUNK];
            loop {
                match file.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        hash.update(&buf[..n]);
                        if !send(chunk(backup_chunk::Part::Data(buf[..n].to_vec()))) {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = send(Err(Status::internal(format!("backup copy: {e}"))));
                        return;
                    }
                }
            }
            let _ = send(chunk(backup_chunk::Part::Sha256(hex::encode(hash.finalize()))));
            drop(path);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn initialize(&self, request: Request<InitializeRequest>) -> Result<Response<AdminReply>, Status> {
        let members = request
            .into_inner()
            .members
            .into_iter()
            .map(member)
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        if members.is_empty() {
            return Err(StoreError::BadRequest("no members".into()).into());
        }
        tracing::info!(members = ?members, "initialising the cluster");
        match self.node.raft.initialize(members).await {
            Ok(()) => reply(&"initialized"),
            Err(e) => Err(StoreError::Membership(e.to_string()).into()),
        }
    }

    async fn add_learner(&self, request: Request<AddLearnerRequest>) -> Result<Response<AdminReply>, Status> {
        let msg = request.into_inner();
        let (id, node) = member(
            msg.member
                .ok_or_else(|| Status::invalid_argument("member is required"))?,
        )?;
        tracing::info!(raft_id = id, node = %node, "adding learner");
        match self.node.raft.add_learner(id, node, msg.blocking).await {
            Ok(resp) => reply(&resp.log_id),
            Err(e) => Err(membership_error(e)),
        }
    }

    async fn change_membership(
        &self,
        request: Request<ChangeMembershipRequest>,
    ) -> Result<Response<AdminReply>, Status> {
        let msg = request.into_inner();
        let voters: BTreeSet<RaftId> = msg.voters.into_iter().collect();
        if voters.is_empty() {
            return Err(StoreError::BadRequest("voters must not be empty".into()).into());
        }
        tracing::info!(voters = ?voters, retain = msg.retain, "changing membership");
        match self.node.raft.change_membership(voters, msg.retain).await {
            Ok(resp) => reply(&resp.log_id),
            Err(e) => Err(membership_error(e)),
        }
    }

    async fn transfer_leader(&self, request: Request<TransferLeaderRequest>) -> Result<Response<AdminReply>, Status> {
        let to = request.into_inner().to;
        let done = self.node.transfer_leadership((to != 0).then_some(to)).await?;
        reply(&done)
    }

    async fn stand_for_election(
        &self,
        _request: Request<StandForElectionRequest>,
    ) -> Result<Response<AdminReply>, Status> {
        self.node.stand_for_election()?;
        reply(&"standing")
    }

    async fn metrics(&self, _request: Request<MetricsRequest>) -> Result<Response<AdminReply>, Status> {
        let metrics = self.node.raft.metrics().borrow().clone();
        reply(&metrics)
    }
}
