//! Groups: `POST/GET /api/groups`, `GET/PATCH/DELETE /api/groups/{id}`, members (`POST
//! /api/groups/{id}/members` invites, `PUT/DELETE /api/groups/{id}/members/{user_id}`;
//! deleting oneself leaves, deleting an invitee withdraws the invitation) and the group
//! agenda. Joining and declining a membership invitation live in `group_invitations.rs`;
//! answering an appointment invitation in `invitations.rs`; the JSON shapes in
//! `views/groups.rs`. Group rules are enforced by the store (DESIGN §7); group
//! appointments themselves are created through `POST /api/appointments` with a `group_id`.

use agenda_shared::command::{
    ChangeRank, CreateGroup, DeleteGroup, InviteMember, LeaveGroup, RemoveMember, UpdateGroup,
};
use agenda_shared::model::{Group, GroupType};
use agenda_shared::query::{CredentialsQuery, GroupAgendaQuery, GroupQuery, GroupsQuery};
use agenda_shared::validate;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::agenda::{RangeQuery, listing_range};
use super::docs::{BodyErrors, RateLimited, ReadErrors, WriteErrors};
use super::extract::{ApiJson, ApiPath, ApiQuery, Caller, ReadMeta, ReadParams, WriteParams, whole};
use super::reply::{NoContent, Reply};
use super::rules;
use crate::error::ApiError;
use crate::state::{AppState, WriteMeta};
use crate::store::ReadConsistency;
use crate::views::{GroupAgendaView, GroupList, GroupView, InvitationView, InvitedView, rfc3339};

/// Routes of this module.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_group, list_groups))
        .routes(routes!(get_group, update_group, delete_group))
        .routes(routes!(add_member))
        .routes(routes!(change_rank, remove_member))
        .routes(routes!(group_agenda))
}

/// A new group.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"name": "Platform team", "description": "Weekly syncs", "group_type": "hierarchical", "creator_rank": 100})))]
pub struct GroupInput {
    /// Name.
    #[schema(schema_with = rules::group_name)]
    pub name: String,
    /// Description.
    #[serde(default)]
    #[schema(schema_with = rules::group_description_or_null)]
    pub description: Option<String>,
    /// Type.
    #[schema(schema_with = rules::group_type)]
    pub group_type: String,
    /// Creator's rank.
    #[serde(default, deserialize_with = "whole::option_u32")]
    #[schema(schema_with = rules::creator_rank)]
    pub creator_rank: Option<u32>,
}

/// A group change (creator only): at least one field that is not `null`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"name": "Platform and infrastructure"})))]
pub struct GroupPatch {
    /// New name.
    #[serde(default)]
    #[schema(schema_with = rules::group_name_or_null)]
    pub name: Option<String>,
    /// New description.
    #[serde(default)]
    #[schema(schema_with = rules::group_description_or_null)]
    pub description: Option<String>,
}

/// Whom to invite: exactly one of `user_id` and `username`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"username": "grace", "rank": 10})))]
pub struct MemberInput {
    /// The user.
    #[serde(default)]
    pub user_id: Option<Uuid>,
    /// The user, by name.
    #[serde(default)]
    #[schema(schema_with = rules::member_lookup_or_null)]
    pub username: Option<String>,
    /// Rank offered (default 0): below the inviter's own rank (403 otherwise) in a
    /// hierarchical group, 0 in a non-hierarchical one (422 otherwise).
    #[serde(default, deserialize_with = "whole::option_u32")]
    #[schema(maximum = 999_999)]
    pub rank: Option<u32>,
}

/// A new rank.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"rank": 20})))]
pub struct RankInput {
    /// New rank: below the caller's own (403 otherwise); only in a hierarchical group (422
    /// otherwise).
    #[serde(deserialize_with = "whole::u32")]
    #[schema(maximum = 999_999)]
    pub rank: u32,
}

/// Create a group; the caller becomes its creator with the top rank.
#[utoipa::path(post, path = "/api/groups", tag = "groups", security(("bearer" = [])), request_body = GroupInput,
    params(WriteParams),
    responses((status = 201, description = "Created", body = GroupView), WriteErrors, BodyErrors))]
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
#[utoipa::path(get, path = "/api/groups", tag = "groups", security(("bearer" = [])), params(ReadParams),
    responses((status = 200, description = "Groups", body = GroupList), ReadErrors))]
async fn list_groups(
    State(app): State<AppState>,
    caller: Caller,
    read: ReadMeta,
) -> Result<Reply<GroupList>, ApiError> {
    let query = GroupsQuery { actor: caller.id() };
    let (revision, groups) = app.read(&caller, query, read.consistency).await?;
    Ok(Reply::ok(
        revision,
        GroupList {
            groups: groups.into_iter().map(Into::into).collect(),
        },
    ))
}

/// A group the caller belongs to.
#[utoipa::path(get, path = "/api/groups/{id}", tag = "groups", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Group id"), ReadParams),
    responses((status = 200, description = "The group", body = GroupView), ReadErrors))]
async fn get_group(
    State(app): State<AppState>,
    caller: Caller,
    read: ReadMeta,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Reply<GroupView>, ApiError> {
    let (revision, group) = read_group(&app, &caller, id, read.consistency).await?;
    Ok(Reply::ok(revision, group.into()))
}

/// Rename or re-describe a group (creator only).
#[utoipa::path(patch, path = "/api/groups/{id}", tag = "groups", security(("bearer" = [])), request_body = GroupPatch,
    params(("id" = Uuid, Path, description = "Group id"), WriteParams),
    responses((status = 200, description = "Updated", body = GroupView), WriteErrors, BodyErrors))]
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
    let command = UpdateGroup {
        group_id: id,
        name: patch.name.as_deref().map(validate::group_name).transpose()?,
        description: patch
            .description
            .as_deref()
            .map(validate::group_description)
            .transpose()?,
    };
    let done = app.execute(&meta, Some(&caller), &fingerprint, command).await?;
    Ok(Reply::ok(done.revision, done.output.into()))
}

/// Delete a group (creator only); its appointments are cancelled.
#[utoipa::path(delete, path = "/api/groups/{id}", tag = "groups", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Group id"), WriteParams),
    responses((status = 204, description = "Deleted"), WriteErrors))]
async fn delete_group(
    State(app): State<AppState>,
    caller: Caller,
    meta: WriteMeta,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<NoContent, ApiError> {
    let command = DeleteGroup { group_id: id };
    let done = app.execute(&meta, Some(&caller), &json!({}), command).await?;
    Ok(NoContent(done.revision))
}

/// Invite somebody to the group with an offered rank (below the caller's rank; only the
/// creator in a non-hierarchical group). They become a member only when they join
/// (`POST /api/groups/{id}/join`); until then they see nothing of the group and the group
/// sees nothing of them. At most 100 invitations wait per group, 20 per inviter per hour;
/// unanswered ones lapse after 30 days.
#[utoipa::path(post, path = "/api/groups/{id}/members", tag = "groups", security(("bearer" = [])), request_body = MemberInput,
    params(("id" = Uuid, Path, description = "Group id"), WriteParams),
    responses((status = 202, description = "Invited; the invitation waits for the user's answer", body = InvitedView),
        WriteErrors, BodyErrors, RateLimited))]
async fn add_member(
    State(app): State<AppState>,
    caller: Caller,
    meta: WriteMeta,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<MemberInput>,
) -> Result<Reply<InvitedView>, ApiError> {
    let (revision, invitation) = invite(&app, &caller, &meta, id, input).await?;
    Ok(Reply::accepted(
        revision,
        InvitedView {
            status: "invited".into(),
            invitation,
        },
    ))
}

/// Change a junior member's rank (to below the caller's own).
#[utoipa::path(put, path = "/api/groups/{id}/members/{user_id}", tag = "groups", security(("bearer" = [])),
    request_body = RankInput,
    params(("id" = Uuid, Path, description = "Group id"), ("user_id" = Uuid, Path, description = "Member"), WriteParams),
    responses((status = 200, description = "Changed; the group", body = GroupView), WriteErrors, BodyErrors))]
async fn change_rank(
    State(app): State<AppState>,
    caller: Caller,
    meta: WriteMeta,
    ApiPath((id, user_id)): ApiPath<(Uuid, Uuid)>,
    ApiJson(input): ApiJson<RankInput>,
) -> Result<Reply<GroupView>, ApiError> {
    let command = ChangeRank {
        group_id: id,
        user_id,
        rank: input.rank,
    };
    let done = app.execute(&meta, Some(&caller), &input, command).await?;
    Ok(Reply::ok(done.revision, done.output.into()))
}

/// Remove a junior member, leave the group (the caller's own id), or withdraw a pending
/// invitation (an invitee's id). Leaving or removal takes the person out of the group's
/// appointments that have not started; those they organised are cancelled.
#[utoipa::path(delete, path = "/api/groups/{id}/members/{user_id}", tag = "groups", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Group id"), ("user_id" = Uuid, Path, description = "Member (yourself to leave)"),
        WriteParams),
    responses((status = 204, description = "Removed"), WriteErrors))]
async fn remove_member(
    State(app): State<AppState>,
    caller: Caller,
    meta: WriteMeta,
    ApiPath((id, user_id)): ApiPath<(Uuid, Uuid)>,
) -> Result<NoContent, ApiError> {
    let revision = if user_id == caller.id() {
        let command = LeaveGroup { group_id: id };
        app.execute(&meta, Some(&caller), &json!({}), command).await?.revision
    } else {
        let command = RemoveMember { group_id: id, user_id };
        app.execute(&meta, Some(&caller), &json!({}), command).await?.revision
    };
    Ok(NoContent(revision))
}

/// Every member's busy time over a range (members only; details masked per privacy).
#[utoipa::path(get, path = "/api/groups/{id}/agenda", tag = "groups", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Group id"), RangeQuery, ReadParams),
    responses((status = 200, description = "The group agenda", body = GroupAgendaView), ReadErrors))]
async fn group_agenda(
    State(app): State<AppState>,
    caller: Caller,
    read: ReadMeta,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> Result<Reply<GroupAgendaView>, ApiError> {
    let (revision, view) = read_group_agenda(&app, &caller, id, &q, read.consistency).await?;
    Ok(Reply::ok(revision, view))
}

async fn read_group(
    app: &AppState,
    caller: &Caller,
    group_id: Uuid,
    consistency: ReadConsistency,
) -> Result<(u64, Group), ApiError> {
    let query = GroupQuery {
        actor: caller.id(),
        group_id,
    };
    app.read(caller, query, consistency).await
}

async fn new_group(
    app: &AppState,
    caller: &Caller,
    meta: &WriteMeta,
    input: GroupInput,
) -> Result<(u64, Group), ApiError> {
    let group_type = GroupType::parse(&input.group_type)
        .ok_or_else(|| ApiError::invalid("group_type", "must be `hierarchical` or `non_hierarchical`"))?;
    let command = CreateGroup {
        group_id: Uuid::now_v7(),
        name: validate::group_name(&input.name)?,
        description: validate::group_description(input.description.as_deref().unwrap_or_default())?,
        group_type,
        creator_rank: input.creator_rank,
    };
    let done = app.execute(meta, Some(caller), &input, command).await?;
    Ok((done.revision, done.output))
}

/// The id of the user named by `input` (a username or e-mail is resolved through the store).
async fn member_id(app: &AppState, input: &MemberInput) -> Result<Uuid, ApiError> {
    match (input.user_id, input.username.as_deref()) {
        (Some(id), None) => Ok(id),
        (None, Some(name)) => {
            let name = name.trim();
            if name.is_empty() || name.chars().count() > validate::MAX_EMAIL {
                return Err(ApiError::invalid("username", "must be a username or an e-mail address"));
            }
            let query = CredentialsQuery { login: name.to_owned() };
            match app.query(query, ReadConsistency::Linearizable).await {
                Ok((_, credentials)) => Ok(credentials.user.id),
                Err(ApiError::NotFound(_)) => Err(ApiError::NotFound("user".into())),
                Err(e) => Err(e),
            }
        }
        _ => Err(ApiError::invalid("user_id", "give exactly one of user_id or username")),
    }
}

async fn invite(
    app: &AppState,
    caller: &Caller,
    meta: &WriteMeta,
    group_id: Uuid,
    input: MemberInput,
) -> Result<(u64, InvitationView), ApiError> {
    let user_id = member_id(app, &input).await?;
    let command = InviteMember {
        group_id,
        user_id,
        rank: input.rank,
    };
    let done = app.execute(meta, Some(caller), &input, command).await?;
    Ok((done.revision, done.output.into()))
}

async fn read_group_agenda(
    app: &AppState,
    caller: &Caller,
    group_id: Uuid,
    q: &RangeQuery,
    consistency: ReadConsistency,
) -> Result<(u64, GroupAgendaView), ApiError> {
    let (start_ms, end_ms) = listing_range(q)?;
    let query = GroupAgendaQuery {
        actor: caller.id(),
        group_id,
        start_ms,
        end_ms,
    };
    let (revision, agenda) = app.read(caller, query, consistency).await?;
    Ok((
        revision,
        GroupAgendaView {
            group: agenda.group.into(),
            start: rfc3339(start_ms),
            end: rfc3339(end_ms),
            members: agenda.members.into_iter().map(Into::into).collect(),
            truncated: agenda.truncated,
        },
    ))
}
