//! gRPC `agenda.discovery.v1.Discovery`: the thin layer between the wire and [`Agent`].
//!
//! Authentication happened before these handlers run (the HMAC `VerifyLayer` around the
//! whole server); the handlers read the authenticated node id it leaves in the request
//! extensions.

use std::pin::Pin;
use std::sync::Arc;

use agenda_shared::auth::AuthenticatedNode;
use agenda_shared::discovery_proto::discovery_server::Discovery;
use agenda_shared::discovery_proto::{Ack, Digest, LocalReport, MembersReply, MembersRequest, WatchMembersRequest};
use futures::{Stream, StreamExt};
use tokio_stream::wrappers::WatchStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::agent::Agent;
use crate::error::DiscoveryError;
use crate::table::LocalUpdate;
use agenda_shared::rpc::member::{MAX_CLUSTER_ID_LEN, Source};

/// gRPC `Discovery` service of one agent.
pub(crate) struct DiscoveryService {
    pub(crate) agent: Arc<Agent>,
    /// Ends the `WatchMembers` streams at shutdown (a graceful server stop waits for them).
    pub(crate) streams_end: CancellationToken,
}

fn caller<T>(request: &Request<T>) -> String {
    request
        .extensions()
        .get::<AuthenticatedNode>()
        .map(|n| n.0.clone())
        .unwrap_or_default()
}

type MembersStream = Pin<Box<dyn Stream<Item = Result<MembersReply, Status>> + Send>>;

impl DiscoveryService {
    fn check_local(&self, caller: &str) -> Result<(), DiscoveryError> {
        let own = self.agent.node_id();
        let ok = caller == own || caller.strip_prefix(own).is_some_and(|rest| rest.starts_with('-'));
        if ok {
            Ok(())
        } else {
            Err(DiscoveryError::NotLocal {
                caller: caller.to_owned(),
                node_id: own.to_owned(),
            })
        }
    }
}

fn local_update(report: LocalReport) -> Result<LocalUpdate, DiscoveryError> {
    if report
        .store_cluster_id
        .as_ref()
        .is_some_and(|id| id.len() > MAX_CLUSTER_ID_LEN || !id.bytes().all(|b| b.is_ascii_graphic()))
    {
        return Err(DiscoveryError::BadReport("store_cluster_id"));
    }
    let store_alarms = match report.store_alarms {
        None => None,
        Some(list) => {
            let mut alarms: Vec<String> = list
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect();
            alarms.sort();
            alarms.dedup();
            if !agenda_shared::rpc::member::valid_alarms(&alarms) {
                return Err(DiscoveryError::BadReport("store_alarms"));
            }
            Some(alarms)
        }
    };
    Ok(LocalUpdate {
        store_alarms,
        store_raft_id: report.store_raft_id,
        store_pristine: report.store_pristine,
        store_has_cluster: report.store_has_cluster,
        store_cluster_id: report.store_cluster_id,
        api_ready: report.api_ready,
    })
}

#[tonic::async_trait]
impl Discovery for DiscoveryService {
    async fn gossip(&self, request: Request<Digest>) -> Result<Response<Digest>, Status> {
        let sender = caller(&request);
        let digest = request.into_inner();
        if digest.from_node_id != sender {
            return Err(DiscoveryError::SenderMismatch {
                claimed: digest.from_node_id.chars().take(64).collect(),
                signed: sender,
            }
            .into());
        }
        if self.agent.faults.blocked(&sender, self.agent.node_id()) {
            return Err(DiscoveryError::Isolated.into());
        }
        if sender != self.agent.node_id() {
            self.agent
                .merge_digest(digest, Source::Gossip)
                .map_err(DiscoveryError::from)?;
        }
        Ok(Response::new(self.agent.digest()))
    }

    async fn members(&self, _request: Request<MembersRequest>) -> Result<Response<MembersReply>, Status> {
        Ok(Response::new(self.agent.members_reply()))
    }

    type WatchMembersStream = MembersStream;

    async fn watch_members(
        &self,
        _request: Request<WatchMembersRequest>,
    ) -> Result<Response<Self::WatchMembersStream>, Status> {
        let agent = self.agent.clone();
        // WatchStream yields the current revision at once, then the latest one after each
        // change: a slow reader skips intermediate tables (coalescing).
        let stream = WatchStream::new(agent.subscribe())
            .map(move |_| Ok(agent.members_reply()))
            .take_until(self.streams_end.clone().cancelled_owned());
        Ok(Response::new(Box::pin(stream)))
    }

    async fn update_local(&self, request: Request<LocalReport>) -> Result<Response<Ack>, Status> {
        self.check_local(&caller(&request))?;
        let update = local_update(request.into_inner())?;
        let incarnation = self.agent.update_local(&update);
        Ok(Response::new(Ack { incarnation }))
    }
}
