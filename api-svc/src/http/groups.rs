//! Groups and group appointments: `POST/GET /api/groups`, `GET/PATCH/DELETE
//! /api/groups/{id}`, members (`POST /api/groups/{id}/members`, `PUT/DELETE
//! /api/groups/{id}/members/{user_id}`; deleting oneself leaves), the group agenda, and the
//! invitee's side of a group appointment (`POST /api/appointments/{id}/accept|reject`,
//! `GET /api/appointments/{id}/my-status`). Group rules are enforced by the store (DESIGN
//! §7); group appointments themselves are created through `POST /api/appointments` with a
//! `group_id`.

use agenda_shared::command::{Accepted, Command};
use agenda_shared::model::{Appointment, Group, GroupMember, GroupType, MemberAgenda, Participant};
use agenda_shared::query::{Query, QueryResult};
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::agenda::{RangeQuery, listing_range};
use super::docs::{ReadErrors, WriteErrors};
use super::extract::{ApiJson, ApiPath, ApiQuery, Caller, ReadMeta};
use super::reply::{NoContent, Reply};
use crate::error::ApiError;
use crate::state::{AppState, WriteMeta};
use crate::store::ReadConsistency;
use crate::views::{AppointmentView, ParticipantView, rfc3339};

/// Routes of this module.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_group, list_groups))
        .routes(routes!(get_group, update_group, delete_group))
        .routes(routes!(add_member))
        .routes(routes!(change_rank, remove_member))
        .routes(routes!(group_agenda))
        .routes(routes!(accept_invitation))
        .routes(routes!(reject_invitation))
        .routes(routes!(my_status))
}

/// A new group.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupInput {
    /// Name (1–100 characters).
    pub name: String,
    /// Description (up to 1000 characters).
    #[serde(default)]
    pub description: Option<String>,
    /// `hierarchical` or `non_hierarchical`.
    #[schema(example = "hierarchical")]
    pub group_type: String,
    /// The creator's rank in a hierarchical group (1–1000000, default 100).
    #[serde(default)]
    pub creator_rank: Option<u32>,
}

/// A group change (creator only).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupPatch {
    /// New name.
    #[serde(default)]
    pub name: Option<String>,
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
}

/// A member to add: `user_id`, or `username` (a username or e-mail address).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberInput {
    /// The user.
    #[serde(default)]
    pub user_id: Option<Uuid>,
    /// The user's username or e-mail, instead of `user_id`.
    #[serde(default)]
    pub username: Option<String>,
    /// Rank (default 0; below the adder's own rank).
    #[serde(default)]
    pub rank: Option<u32>,
}

/// A new rank.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RankInput {
    /// New rank (below the actor's own).
    pub rank: u32,
}

/// A group member.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    /// The user.
    pub user_id: Uuid,
    /// Username.
    pub username: String,
    /// Display name.
    pub display_name: String,
    /// Rank (higher is more senior; 0 in non-hierarchical groups).
    pub rank: u32,
    /// When they joined (RFC 3339).
    #[schema(format = DateTime)]
    pub joined_at: String,
}

impl From<GroupMember> for MemberView {
    fn from(m: GroupMember) -> Self {
        Self {
            user_id: m.user_id,
            username: m.username,
            display_name: m.display_name,
            rank: m.rank,
            joined_at: rfc3339(m.joined_at_ms),
        }
    }
}

/// A group as its members see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupView {
    /// Stable id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// `hierarchical` or `non_hierarchical`.
    pub group_type: String,
    /// Creator (renames and deletes the group).
    pub creator_id: Uuid,
    /// The caller's rank.
    pub my_rank: u32,
    /// Creation time (RFC 3339).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Last change (RFC 3339).
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// Members, most senior first.
    pub members: Vec<MemberView>,
}

impl From<Group> for GroupView {
    fn from(g: Group) -> Self {
        Self {
            id: g.id,
            name: g.name,
            description: g.description,
            group_type: g.group_type.as_str().to_owned(),
            creator_id: g.creator_id,
            my_rank: g.my_rank,
            created_at: rfc3339(g.created_at_ms),
            updated_at: rfc3339(g.updated_at_ms),
            members: g.members.into_iter().map(Into::into).collect(),
        }
    }
}

/// The caller's groups.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupList {
    /// By name, then id.
    pub groups: Vec<GroupView>,
}

/// One member's busy time.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberBusyView {
    /// The member.
    pub member: MemberView,
    /// Their busy appointments in the range (details masked per privacy).
    pub busy: Vec<AppointmentView>,
}

impl From<MemberAgenda> for MemberBusyView {
    fn from(m: MemberAgenda) -> Self {
        Self {
            member: m.member.into(),
            busy: m.busy.into_iter().map(Into::into).collect(),
        }
    }
}

/// Every member's busy time over a range.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupAgendaView {
    /// The group.
    pub group: GroupView,
    /// Range start (RFC 3339).
    #[schema(format = DateTime)]
    pub start: String,
    /// Range end, exclusive (RFC 3339).
    #[schema(format = DateTime)]
    pub end: String,
    /// One entry per member, most senior first.
    pub members: Vec<MemberBusyView>,
}

/// The caller's answer to an invitation and the appointment after it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResponseView {
    /// The appointment.
    pub appointment: AppointmentView,
    /// The caller's participation.
    pub participant: ParticipantView,
}

const IDEMPOTENCY: &str = "Reusing a key with the same request returns the recorded answer; with a different request, 422 idempotency_mismatch.";

/// Create a group; the caller becomes its creator with the top rank.
#[utoipa::path(post, path = "/api/groups", tag = "groups", security(("bearer" = [])), request_body = GroupInput,
    params(("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY)),
    responses((status = 201, description = "Created", body = GroupView), WriteErrors))]
async fn create_group(
    State(app): State<AppState>,
    caller: Caller,
    meta: WriteMeta,
    ApiJson(input): ApiJson<GroupInput>,
) -> Result<Reply<GroupView>, ApiError> {
    let (revision, group) = new_group(&app, &caller, &meta, input).await?;
    Ok(Reply::created(revision, group.into()))
}

/// The caller's groups.
#[utoipa::path(get, path = "/api/groups", tag = "groups", security(("bearer" = [])),
    responses((status = 200, description = "Groups", body = GroupList), ReadErrors))]
async fn list_groups(
    State(app): State<AppState>,
    caller: Caller,
    read: ReadMeta,
) -> Result<Reply<GroupList>, ApiError> {
    match app
        .query(Query::Groups { actor: caller.id() }, read.consistency)
        .await?
    {
        (revision, QueryResult::Groups { groups }) => Ok(Reply::ok(
            revision,
            GroupList {
                groups: groups.into_iter().map(Into::into).collect(),
            },
        )),
        (_, other) => Err(ApiError::Internal(format!("expected groups, got {other:?}"))),
    }
}

/// A group the caller belongs to.
#[utoipa::path(get, path = "/api/groups/{id}", tag = "groups", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Group id")),
    responses((status = 200, description = "The group", body = GroupView), ReadErrors))]
async fn get_group(
    State(app): State<AppState>,
    caller: Caller,
    read: ReadMeta,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Reply<GroupView>, ApiError> {
    let (revision, group) = read_group(&app, caller.id(), id, read.consistency).await?;
    Ok(Reply::ok(revision, group.into()))
}

/// Rename or re-describe a group (creator only).
#[utoipa::path(patch, path = "/api/groups/{id}", tag = "groups", security(("bearer" = [])), request_body = GroupPatch,
    params(("id" = Uuid, Path, description = "Group id"),
        ("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY)),
    responses((status = 200, description = "Updated", body = GroupView), WriteErrors))]
async fn update_group(
    State(app): State<AppState>,
    caller: Caller,
    meta: WriteMeta,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(patch): ApiJson<GroupPatch>,
) -> Result<Reply<GroupView>, ApiError> {
    if patch.name.is_none() && patch.description.is_none() {
        return Err(ApiError::invalid("body", "nothing to change"));
    }
    let fingerprint = json!(patch);
    let command = Command::UpdateGroup {
        group_id: id,
        name: patch.name,
        description: patch.description,
    };
    let done = app.execute(&meta, Some(caller.id()), &fingerprint, command).await?;
    Ok(Reply::ok(done.revision, group_of(done.accepted)?.into()))
}

/// Delete a group (creator only); its appointments are cancelled.
#[utoipa::path(delete, path = "/api/groups/{id}", tag = "groups", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Group id"),
        ("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY)),
    responses((status = 204, description = "Deleted"), WriteErrors))]
async fn delete_group(
    State(app): State<AppState>,
    caller: Caller,
    meta: WriteMeta,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<NoContent, ApiError> {
    let command = Command::DeleteGroup { group_id: id };
    let done = app.execute(&meta, Some(caller.id()), &json!({}), command).await?;
    Ok(NoContent(done.revision))
}

/// Add a member (below the caller's rank; creator only in a non-hierarchical group).
#[utoipa::path(post, path = "/api/groups/{id}/members", tag = "groups", security(("bearer" = [])), request_body = MemberInput,
    params(("id" = Uuid, Path, description = "Group id"),
        ("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY)),
    responses((status = 201, description = "Added; the group", body = GroupView), WriteErrors))]
async fn add_member(
    State(app): State<AppState>,
    caller: Caller,
    meta: WriteMeta,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<MemberInput>,
) -> Result<Reply<GroupView>, ApiError> {
    let (revision, group) = add_to_group(&app, &caller, &meta, id, input).await?;
    Ok(Reply::created(revision, group.into()))
}

/// Change a junior member's rank (to below the caller's own).
#[utoipa::path(put, path = "/api/groups/{id}/members/{user_id}", tag = "groups", security(("bearer" = [])),
    request_body = RankInput,
    params(("id" = Uuid, Path, description = "Group id"), ("user_id" = Uuid, Path, description = "Member"),
        ("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY)),
    responses((status = 200, description = "Changed; the group", body = GroupView), WriteErrors))]
async fn change_rank(
    State(app): State<AppState>,
    caller: Caller,
    meta: WriteMeta,
    ApiPath((id, user_id)): ApiPath<(Uuid, Uuid)>,
    ApiJson(input): ApiJson<RankInput>,
) -> Result<Reply<GroupView>, ApiError> {
    let command = Command::ChangeRank {
        group_id: id,
        user_id,
        rank: input.rank,
    };
    let done = app.execute(&meta, Some(caller.id()), &input, command).await?;
    Ok(Reply::ok(done.revision, group_of(done.accepted)?.into()))
}

/// Remove a junior member, or leave the group (the caller's own id).
#[utoipa::path(delete, path = "/api/groups/{id}/members/{user_id}", tag = "groups", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Group id"), ("user_id" = Uuid, Path, description = "Member (yourself to leave)"),
        ("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY)),
    responses((status = 204, description = "Removed"), WriteErrors))]
async fn remove_member(
    State(app): State<AppState>,
    caller: Caller,
    meta: WriteMeta,
    ApiPath((id, user_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<NoContent, ApiError> {
    let command = if user_id == caller.id() {
        Command::LeaveGroup { group_id: id }
    } else {
        Command::RemoveMember { group_id: id, user_id }
    };
    let done = app.execute(&meta, Some(caller.id()), &json!({}), command).await?;
    Ok(NoContent(done.revision))
}

/// Every member's busy time over a range (members only; details masked per privacy).
#[utoipa::path(get, path = "/api/groups/{id}/agenda", tag = "groups", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Group id"), RangeQuery),
    responses((status = 200, description = "The group agenda", body = GroupAgendaView), ReadErrors))]
async fn group_agenda(
    State(app): State<AppState>,
    caller: Caller,
    read: ReadMeta,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> Result<Reply<GroupAgendaView>, ApiError> {
    let (revision, view) = read_group_agenda(&app, caller.id(), id, &q, read.consistency).await?;
    Ok(Reply::ok(revision, view))
}

/// Accept an invitation to a group appointment (409 when it would double-book you).
#[utoipa::path(post, path = "/api/appointments/{id}/accept", tag = "appointments", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Appointment id"),
        ("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY)),
    responses((status = 200, description = "Accepted", body = ResponseView), WriteErrors))]
async fn accept_invitation(
    State(app): State<AppState>,
    caller: Caller,
    meta: WriteMeta,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Reply<ResponseView>, ApiError> {
    let (revision, view) = respond(&app, &caller, &meta, id, true).await?;
    let version = view.appointment.version;
    Ok(Reply::ok(revision, view).etag(version))
}

/// Decline an invitation to a group appointment (always possible for an invitee).
#[utoipa::path(post, path = "/api/appointments/{id}/reject", tag = "appointments", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Appointment id"),
        ("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY)),
    responses((status = 200, description = "Declined", body = ResponseView), WriteErrors))]
async fn reject_invitation(
    State(app): State<AppState>,
    caller: Caller,
    meta: WriteMeta,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Reply<ResponseView>, ApiError> {
    let (revision, view) = respond(&app, &caller, &meta, id, false).await?;
    let version = view.appointment.version;
    Ok(Reply::ok(revision, view).etag(version))
}

/// The caller's participation in an appointment.
#[utoipa::path(get, path = "/api/appointments/{id}/my-status", tag = "appointments", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Appointment id")),
    responses((status = 200, description = "The caller's participation", body = ParticipantView), ReadErrors))]
async fn my_status(
    State(app): State<AppState>,
    caller: Caller,
    read: ReadMeta,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Reply<ParticipantView>, ApiError> {
    let query = Query::MyStatus {
        actor: caller.id(),
        appointment_id: id,
    };
    match app.query(query, read.consistency).await? {
        (revision, QueryResult::Participation { participant }) => Ok(Reply::ok(revision, participant.into())),
        (_, other) => Err(ApiError::Internal(format!("expected a participation, got {other:?}"))),
    }
}

fn group_of(accepted: Accepted) -> Result<Group, ApiError> {
    match accepted {
        Accepted::Group { group } => Ok(group),
        other => Err(ApiError::Internal(format!("expected a group, got {other:?}"))),
    }
}

fn responded(accepted: Accepted) -> Result<(Appointment, Participant), ApiError> {
    match accepted {
        Accepted::Responded {
            appointment,
            participant,
        } => Ok((appointment, participant)),
        other => Err(ApiError::Internal(format!("expected an answer, got {other:?}"))),
    }
}

async fn read_group(
    app: &AppState,
    actor: Uuid,
    group_id: Uuid,
    consistency: ReadConsistency,
) -> Result<(u64, Group), ApiError> {
    match app.query(Query::Group { actor, group_id }, consistency).await? {
        (revision, QueryResult::Group { group }) => Ok((revision, group)),
        (_, other) => Err(ApiError::Internal(format!("expected a group, got {other:?}"))),
    }
}

async fn new_group(
    app: &AppState,
    caller: &Caller,
    meta: &WriteMeta,
    input: GroupInput,
) -> Result<(u64, Group), ApiError> {
    let group_type = GroupType::parse(&input.group_type)
        .ok_or_else(|| ApiError::invalid("group_type", "must be `hierarchical` or `non_hierarchical`"))?;
    let command = Command::CreateGroup {
        group_id: Uuid::now_v7(),
        name: input.name.clone(),
        description: input.description.clone().unwrap_or_default(),
        group_type,
        creator_rank: input.creator_rank,
    };
    let done = app.execute(meta, Some(caller.id()), &input, command).await?;
    let revision = done.revision;
    Ok((revision, group_of(done.accepted)?))
}

/// The id of the user named by `input` (a username or e-mail is resolved through the store).
async fn member_id(app: &AppState, input: &MemberInput) -> Result<Uuid, ApiError> {
    match (input.user_id, input.username.as_deref()) {
        (Some(id), None) => Ok(id),
        (None, Some(name)) => {
            let name = name.trim();
            if name.is_empty() || name.len() > agenda_shared::validate::MAX_EMAIL {
                return Err(ApiError::invalid("username", "must be a username or an e-mail address"));
            }
            let query = Query::Credentials { login: name.to_owned() };
            match app.query(query, ReadConsistency::Linearizable).await {
                Ok((_, QueryResult::Credentials { credentials })) => Ok(credentials.user.id),
                Ok((_, other)) => Err(ApiError::Internal(format!("expected credentials, got {other:?}"))),
                Err(ApiError::NotFound(_)) => Err(ApiError::NotFound("user".into())),
                Err(e) => Err(e),
            }
        }
        _ => Err(ApiError::invalid("user_id", "give exactly one of user_id or username")),
    }
}

async fn add_to_group(
    app: &AppState,
    caller: &Caller,
    meta: &WriteMeta,
    group_id: Uuid,
    input: MemberInput,
) -> Result<(u64, Group), ApiError> {
    let user_id = member_id(app, &input).await?;
    let command = Command::AddMember {
        group_id,
        user_id,
        rank: input.rank,
    };
    let done = app.execute(meta, Some(caller.id()), &input, command).await?;
    let revision = done.revision;
    Ok((revision, group_of(done.accepted)?))
}

async fn read_group_agenda(
    app: &AppState,
    actor: Uuid,
    group_id: Uuid,
    q: &RangeQuery,
    consistency: ReadConsistency,
) -> Result<(u64, GroupAgendaView), ApiError> {
    let (start_ms, end_ms) = listing_range(q)?;
    let query = Query::GroupAgenda {
        actor,
        group_id,
        start_ms,
        end_ms,
    };
    match app.query(query, consistency).await? {
        (revision, QueryResult::GroupAgenda { group, members }) => Ok((
            revision,
            GroupAgendaView {
                group: group.into(),
                start: rfc3339(start_ms),
                end: rfc3339(end_ms),
                members: members.into_iter().map(Into::into).collect(),
            },
        )),
        (_, other) => Err(ApiError::Internal(format!("expected a group agenda, got {other:?}"))),
    }
}

async fn respond(
    app: &AppState,
    caller: &Caller,
    meta: &WriteMeta,
    appointment_id: Uuid,
    accept: bool,
) -> Result<(u64, ResponseView), ApiError> {
    let command = Command::RespondInvitation { appointment_id, accept };
    let done = app.execute(meta, Some(caller.id()), &json!({}), command).await?;
    let revision = done.revision;
    let (appointment, participant) = responded(done.accepted)?;
    Ok((
        revision,
        ResponseView {
            appointment: appointment.into(),
            participant: participant.into(),
        },
    ))
}
