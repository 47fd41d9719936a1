//! The invitee's side of a group membership (DESIGN §7 "Membership is by consent"):
//! `GET /api/me/group-invitations`, `POST /api/groups/{id}/join`, `POST
//! /api/groups/{id}/decline`. The inviter's side (`POST /api/groups/{id}/members`, and
//! `DELETE /api/groups/{id}/members/{user_id}` to withdraw) lives in `groups.rs`.

use agenda_shared::command::{DeclineGroupInvitation, JoinGroup};
use agenda_shared::query::GroupInvitationsQuery;
use axum::extract::State;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::docs::{ReadErrors, WriteErrors};
use super::extract::{ApiPath, Caller, ReadMeta, ReadParams, WriteParams};
use super::reply::Reply;
use crate::error::ApiError;
use crate::state::{AppState, WriteMeta};
use crate::views::GroupView;
use crate::views::InvitationView;

/// Routes of this module.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(my_invitations))
        .routes(routes!(join_group))
        .routes(routes!(decline_group))
}

/// The caller's pending invitations.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationList {
    /// Newest first.
    pub invitations: Vec<InvitationView>,
}

/// An invitation after the caller's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnsweredView {
    /// Always `declined`.
    #[schema(pattern = "^declined$")]
    pub status: String,
    /// The invitation.
    pub invitation: InvitationView,
}

/// The groups the caller is invited to and has not answered yet (they lapse after 30 days).
#[utoipa::path(get, path = "/api/me/group-invitations", tag = "groups", security(("bearer" = [])), params(ReadParams),
    responses((status = 200, description = "Pending invitations", body = InvitationList), ReadErrors))]
async fn my_invitations(
    State(app): State<AppState>,
    caller: Caller,
    read: ReadMeta,
) -> Result<Reply<InvitationList>, ApiError> {
    let query = GroupInvitationsQuery { actor: caller.id() };
    let (revision, invitations) = app.read(&caller, query, read.consistency).await?;
    Ok(Reply::ok(
        revision,
        InvitationList {
            invitations: invitations.into_iter().map(Into::into).collect(),
        },
    ))
}

/// Join a group the caller is invited to, at the offered rank. The rank rules are checked
/// again: if the inviter has left or no longer outranks the offered rank, 409 (ask for a
/// new invitation). Appointments booked before joining are not added.
#[utoipa::path(post, path = "/api/groups/{id}/join", tag = "groups", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Group id"), WriteParams),
    responses((status = 200, description = "Joined; the group", body = GroupView), WriteErrors))]
async fn join_group(
    State(app): State<AppState>,
    caller: Caller,
    meta: WriteMeta,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Reply<GroupView>, ApiError> {
    let command = JoinGroup { group_id: id };
    let done = app.execute(&meta, Some(&caller), &json!({}), command).await?;
    Ok(Reply::ok(done.revision, done.output.into()))
}

/// Decline an invitation to a group (the inviter is told).
#[utoipa::path(post, path = "/api/groups/{id}/decline", tag = "groups", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Group id"), WriteParams),
    responses((status = 200, description = "Declined", body = AnsweredView), WriteErrors))]
async fn decline_group(
    State(app): State<AppState>,
    caller: Caller,
    meta: WriteMeta,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Reply<AnsweredView>, ApiError> {
    let command = DeclineGroupInvitation { group_id: id };
    let done = app.execute(&meta, Some(&caller), &json!({}), command).await?;
    Ok(Reply::ok(
        done.revision,
        AnsweredView {
            status: "declined".into(),
            invitation: done.output.into(),
        },
    ))
}
