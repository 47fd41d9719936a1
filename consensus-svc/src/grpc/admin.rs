//! gRPC `agenda.v1.Admin`: cluster initialisation and membership changes.

use std::collections::{BTreeMap, BTreeSet};

use agenda_shared::proto::admin_server::Admin;
use agenda_shared::proto::{
    AddLearnerRequest, AdminReply, ChangeMembershipRequest, InitializeRequest, Member, MetricsRequest,
};
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

#[tonic::async_trait]
impl Admin for AdminService {
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

    async fn metrics(&self, _request: Request<MetricsRequest>) -> Result<Response<AdminReply>, Status> {
        let metrics = self.node.raft.metrics().borrow().clone();
        reply(&metrics)
    }
}
