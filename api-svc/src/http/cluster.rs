//! `GET /api/cluster/status`: every known store's own view (role, term, indexes) and its
//! lag behind the most advanced one, as seen from this API front.

use agenda_shared::status::StoreStatus;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::Caller;
use super::reply::Reply;
use crate::error::Problem;
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
    #[schema(required = true)]
    pub error: Option<String>,
    /// Slot name (`agenda-3`).
    #[schema(required = true)]
    pub slot: Option<String>,
    /// Raft id of its current incarnation.
    #[schema(required = true)]
    pub raft_id: Option<u64>,
    /// `leader`, `follower`, `candidate`, `learner`.
    #[schema(required = true)]
    pub role: Option<String>,
    /// Current term.
    #[schema(required = true)]
    pub term: Option<u64>,
    /// Leader it knows.
    #[schema(required = true)]
    pub leader_id: Option<u64>,
    /// Last index in its log.
    #[schema(required = true)]
    pub last_log_index: Option<u64>,
    /// Last applied index (its revision).
    #[schema(required = true)]
    pub applied_index: Option<u64>,
    /// Last index covered by its snapshot.
    #[schema(required = true)]
    pub snapshot_index: Option<u64>,
    /// How far its applied index trails the most advanced reachable store.
    #[schema(required = true)]
    pub lag: Option<u64>,
    /// The newest log entry format it applies.
    #[schema(required = true)]
    pub max_entry_format: Option<u32>,
    /// The newest entry format it has applied.
    #[schema(required = true)]
    pub applied_entry_format: Option<u32>,
    /// The format the leader writes new entries in (the cluster format; leader only).
    #[schema(required = true)]
    pub cluster_entry_format: Option<u32>,
    /// Why it stopped applying the log, when it has (an entry of a format it does not
    /// apply: upgrade it).
    #[schema(required = true)]
    pub halted: Option<String>,
    /// The NOSPACE alarm, while its data volume is nearly full (it takes no writes).
    #[schema(required = true)]
    pub alarm: Option<String>,
    /// Free bytes on its data volume.
    #[schema(required = true)]
    pub disk_free_bytes: Option<u64>,
}

/// A Raft member, per the leader (or the first store that answered).
#[derive(Debug, Serialize, ToSchema)]
pub struct RaftMemberView {
    /// Raft id.
    pub raft_id: u64,
    /// Slot name.
    pub slot: String,
    /// gRPC address.
    pub addr: String,
    /// Voter or learner.
    pub voter: bool,
    /// Last index known replicated to it (leader's view).
    #[schema(required = true)]
    pub matched_index: Option<u64>,
    /// The newest entry format it said it applies (leader's view).
    #[schema(required = true)]
    pub max_entry_format: Option<u32>,
}

/// One slot as its discovery agents report it: the health of its agent and API front.
#[derive(Debug, Serialize, ToSchema)]
pub struct SlotView {
    /// Slot identity, e.g. `agenda-3`.
    pub slot: String,
    /// The slot's agent as gossip sees it: `alive`, `suspect`, `dead` or `left`.
    pub discovery: String,
    /// Whether the slot's API front reported itself ready.
    pub api_ready: bool,
    /// The Raft id the slot's store reported, if any.
    #[schema(required = true)]
    pub store_raft_id: Option<u64>,
    /// Unix milliseconds of the last news about the slot.
    pub last_seen_ms: u64,
}

/// The cluster as seen from this API front.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterView {
    /// This API front's node id.
    pub api_node: String,
    /// The leader's Raft id, if a reachable store knows one.
    #[schema(required = true)]
    pub leader_id: Option<u64>,
    /// Every store this front knows of.
    pub stores: Vec<StoreView>,
    /// The Raft membership.
    pub members: Vec<RaftMemberView>,
    /// Every slot's agent and API health, from the discovery table (empty when this
    /// front does not follow an agent).
    pub slots: Vec<SlotView>,
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
                .map(|m| RaftMemberView {
                    raft_id: m.raft_id,
                    slot: m.node_name.clone(),
                    addr: m.addr.clone(),
                    voter: m.voter,
                    matched_index: m.matched_index,
                    max_entry_format: m.max_entry_format,
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
                max_entry_format: Some(s.max_entry_format),
                applied_entry_format: Some(s.applied_entry_format),
                cluster_entry_format: s.cluster_entry_format,
                halted: s.halted,
                alarm: s.alarm,
                disk_free_bytes: s.disk_free_bytes,
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
                max_entry_format: None,
                applied_entry_format: None,
                cluster_entry_format: None,
                halted: None,
                alarm: None,
                disk_free_bytes: None,
            },
        })
        .collect();
    let slots = app
        .sidecars
        .borrow()
        .iter()
        .map(|m| SlotView {
            slot: m.node_id.clone(),
            discovery: m.state.as_str().to_owned(),
            api_ready: m.api_ready,
            store_raft_id: m.store_raft_id,
            last_seen_ms: m.last_seen_ms,
        })
        .collect();
    ClusterView {
        api_node: app.node_id.clone(),
        leader_id,
        stores,
        members,
        slots,
    }
}

/// Status of every known store.
#[utoipa::path(get, path = "/api/cluster/status", tag = "operations", security(("bearer" = [])),
    responses((status = 200, description = "The cluster", body = ClusterView),
        (status = 401, description = "unauthorized", body = Problem, content_type = "application/problem+json")))]
async fn cluster_status(State(app): State<AppState>, _caller: Caller) -> Reply<ClusterView> {
    Reply::plain(gather(&app).await)
}
