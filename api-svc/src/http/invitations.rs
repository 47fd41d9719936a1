//! The invitee's side of a group appointment: `POST /api/appointments/{id}/accept` and
//! `/reject`, `GET /api/appointments/{id}/my-status`. (Membership invitations to a group
//! are in `group_invitations.rs`.)

use agenda_shared::command::RespondInvitation;
use agenda_shared::query::MyStatusQuery;
use axum::extract::State;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::docs::{ReadErrors, WriteErrors};
use super::extract::{ApiPath, Caller, ReadMeta, ReadParams, WriteParams};
use super::reply::Reply;
use crate::error::{ApiError, Problem};
use crate::state::{AppState, WriteMeta};
use crate::views::{ParticipantView, ResponseView};

/// Routes of this module.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(accept_invitation))
        .routes(routes!(reject_invitation))
        .routes(routes!(my_status))
}

/// Accept an invitation to a group appointment (409 when it would double-book you).
#[utoipa::path(post, path = "/api/appointments/{id}/accept", tag = "appointments", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Appointment id"), WriteParams),
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
    params(("id" = Uuid, Path, description = "Appointment id"), WriteParams),
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
    params(("id" = Uuid, Path, description = "Appointment id"), ReadParams),
    responses((status = 200, description = "The caller's participation", body = ParticipantView),
        (status = 403, description = "forbidden: you are not invited to this appointment", body = Problem, content_type = "application/problem+json"),
        ReadErrors))]
async fn my_status(
    State(app): State<AppState>,
    caller: Caller,
    read: ReadMeta,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Reply<ParticipantView>, ApiError> {
    let query = MyStatusQuery {
        actor: caller.id(),
        appointment_id: id,
    };
    let (revision, participant) = app.read(&caller, query, read.consistency).await?;
    Ok(Reply::ok(revision, participant.into()))
}

async fn respond(
    app: &AppState,
    caller: &Caller,
    meta: &WriteMeta,
    appointment_id: Uuid,
    accept: bool,
) -> Result<(u64, ResponseView), ApiError> {
    let command = RespondInvitation { appointment_id, accept };
    let done = app.execute(meta, Some(caller), &json!({}), command).await?;
    Ok((
        done.revision,
        ResponseView {
            appointment: done.output.appointment.into(),
            participant: done.output.participant.into(),
        },
    ))
}
