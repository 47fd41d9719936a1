//! `GET /api/cluster/status`: every known store's own view (role, term, indexes) and its
//! lag behind the most advanced one, as seen from this API front.

use agenda_shared::status::StoreStatus;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::docs::ReadErrors;
use super::extract::Caller;
use super::reply::Reply;
use crate::state::AppState;

/// Routes of this module.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(cluster_status))
}

/// One store as seen from here.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoreView {
    /// gRPC address this API front uses.
    pub addr: String,
    /// Whether it answered.
    pub reachable: bool,
    /// Why not, when unreachable.
    pub error: Option<String>,
    /// Slot name (`agenda-3`).
    pub slot: Option<String>,
    /// Raft id of its current incarnation.
    pub raft_id: Option<u64>,
    /// `leader`, `follower`, `candidate`, `learner`.
    pub role: Option<String>,
    /// Current term.
    pub term: Option<u64>,
    /// Leader it knows.
    pub leader_id: Option<u64>,
    /// Last index in its log.
    pub last_log_index: Option<u64>,
    /// Last applied index (its revision).
    pub applied_index: Option<u64>,
    /// Last index covered by its snapshot.
    pub snapshot_index: Option<u64>,
    /// How far its applied index trails the most advanced reachable store.
    pub lag: Option<u64>,
}

/// A Raft member, per the leader (or the first store that answered).
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    /// Raft id.
    pub raft_id: u64,
    /// Slot name.
    pub slot: String,
    /// gRPC address.
    pub addr: String,
    /// Voter or learner.
    pub voter: bool,
    /// Last index known replicated to it (leader's view).
    pub matched_index: Option<u64>,
}

/// The cluster as seen from this API front.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterView {
    /// This API front's node id.
    pub api_node: String,
    /// The leader's Raft id, if a reachable store knows one.
    pub leader_id: Option<u64>,
    /// Every store this front knows of.
    pub stores: Vec<StoreView>,
    /// The Raft membership.
    pub members: Vec<MemberView>,
}

async fn gather(app: &AppState) -> ClusterView {
    let addrs = app.pool.addrs();
    let statuses: Vec<Result<StoreStatus, String>> =
        futures::future::join_all(addrs.iter().map(|a| app.pool.status_of(a))).await;
    let max_applied = statuses
        .iter()
        .filter_map(|s| s.as_ref().ok().and_then(|s| s.applied_index))
        .max();
    let reference = statuses
        .iter()
        .filter_map(|s| s.as_ref().ok())
        .find(|s| s.role == "leader")
        .or_else(|| statuses.iter().find_map(|s| s.as_ref().ok()));
    let leader_id = reference.and_then(|s| s.leader_id);
    let members = reference
        .map(|s| {
            s.members
                .iter()
                .map(|m| MemberView {
                    raft_id: m.raft_id,
                    slot: m.node_name.clone(),
                    addr: m.addr.clone(),
                    voter: m.voter,
                    matched_index: m.matched_index,
                })
                .collect()
        })
        .unwrap_or_default();
    let stores = addrs
        .into_iter()
        .zip(statuses)
        .map(|(addr, status)| match status {
            Ok(s) => StoreView {
                addr,
                reachable: true,
                error: None,
                lag: max_applied.map(|m| m.saturating_sub(s.applied_index.unwrap_or(0))),
                slot: Some(s.node_name),
                raft_id: Some(s.raft_id),
                role: Some(s.role),
                term: Some(s.term),
                leader_id: s.leader_id,
                last_log_index: s.last_log_index,
                applied_index: s.applied_index,
                snapshot_index: s.snapshot_index,
            },
            Err(e) => StoreView {
                addr,
                reachable: false,
                error: Some(e),
                slot: None,
                raft_id: None,
                role: None,
                term: None,
                leader_id: None,
                last_log_index: None,
                applied_index: None,
                snapshot_index: None,
                lag: None,
            },
        })
        .collect();
    ClusterView {
        api_node: app.node_id.clone(),
        leader_id,
        stores,
        members,
    }
}

/// Status of every known store.
#[utoipa::path(get, path = "/api/cluster/status", tag = "operations", security(("bearer" = [])),
    responses((status = 200, description = "The cluster", body = ClusterView), ReadErrors))]
async fn cluster_status(State(app): State<AppState>, _caller: Caller) -> Reply<ClusterView> {
    Reply::plain(gather(&app).await)
}
