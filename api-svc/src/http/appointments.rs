//! Appointments: `POST/GET /api/appointments`, `GET/PATCH/DELETE /api/appointments/{id}`.
//! Changes take `If-Match: <version>` (412 when stale); answers carry `ETag: "<version>"`.

use agenda_shared::command::{CreateAppointment, DeleteAppointment, UpdateAppointment};
use agenda_shared::model::{Appointment, Privacy};
use agenda_shared::query::AppointmentQuery;
use agenda_shared::validate;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::agenda::{AgendaParams, DAY_MS, PageRequest, Reader, agenda_view, read_agenda, resolve_range};
use super::docs::{BodyErrors, ReadErrors, Stale, WriteErrors};
use super::extract::{ApiJson, ApiPath, ApiQuery, Caller, IfMatch, IfMatchParam, ReadMeta, ReadParams, WriteParams};
use super::reply::{NoContent, Reply};
use super::rules;
use crate::error::ApiError;
use crate::state::{AppState, WriteMeta};
use crate::store::ReadConsistency;
use crate::views::{AgendaView, AppointmentView, now_ms, parse_time};

/// Routes of this module.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_appointment, list_appointments))
        .routes(routes!(get_appointment, patch_appointment, delete_appointment))
}

/// A new appointment (`start`/`end` are accepted for `start_time`/`end_time`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"title": "Design review", "description": "Notes in the shared doc", "start_time": "2031-05-01T09:00:00+02:00", "end_time": "2031-05-01T10:00:00+02:00", "privacy": "full"})))]
pub struct AppointmentInput {
    /// Title.
    #[schema(schema_with = rules::title)]
    pub title: String,
    /// Description.
    #[serde(default)]
    #[schema(schema_with = rules::description_or_null)]
    pub description: Option<String>,
    /// Start.
    #[serde(alias = "start")]
    #[schema(schema_with = rules::start_time)]
    pub start_time: String,
    /// End.
    #[serde(alias = "end")]
    #[schema(schema_with = rules::end_time)]
    pub end_time: String,
    /// Privacy.
    #[serde(default)]
    #[schema(schema_with = rules::privacy_or_null)]
    pub privacy: Option<String>,
    /// Group, for a group appointment (you must be a member; every member is invited).
    #[serde(default)]
    pub group_id: Option<Uuid>,
}

/// A partial change of an appointment: at least one field that is not `null`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"title": "Design review (moved)", "start_time": "2031-05-01T11:00:00+02:00", "end_time": "2031-05-01T12:00:00+02:00"})))]
pub struct AppointmentPatch {
    /// New title.
    #[serde(default)]
    #[schema(schema_with = rules::title_or_null)]
    pub title: Option<String>,
    /// New description.
    #[serde(default)]
    #[schema(schema_with = rules::description_or_null)]
    pub description: Option<String>,
    /// New start.
    #[serde(default, alias = "start")]
    #[schema(schema_with = rules::start_time_or_null)]
    pub start_time: Option<String>,
    /// New end.
    #[serde(default, alias = "end")]
    #[schema(schema_with = rules::end_time_or_null)]
    pub end_time: Option<String>,
    /// New privacy.
    #[serde(default)]
    #[schema(schema_with = rules::privacy_or_null)]
    pub privacy: Option<String>,
}

/// Create an appointment owned by the caller; 409 lists overlapping appointments.
#[utoipa::path(post, path = "/api/appointments", tag = "appointments", security(("bearer" = [])),
    request_body = AppointmentInput, params(WriteParams),
    responses((status = 201, description = "Created", body = AppointmentView), WriteErrors, BodyErrors))]
async fn post_appointment(
    State(app): State<AppState>,
    caller: Caller,
    meta: WriteMeta,
    ApiJson(input): ApiJson<AppointmentInput>,
) -> Result<Reply<AppointmentView>, ApiError> {
    let (revision, appointment) = create_appointment(&app, &caller, &meta, input).await?;
    let version = appointment.version;
    Ok(Reply::created(revision, appointment.into()).etag(version))
}

/// The caller's appointments over a range (default: the next 7 days); same as `GET
/// /api/agenda`.
#[utoipa::path(get, path = "/api/appointments", tag = "appointments", security(("bearer" = [])), params(AgendaParams, ReadParams),
    responses((status = 200, description = "Appointments ordered by start", body = AgendaView), ReadErrors))]
async fn list_appointments(
    State(app): State<AppState>,
    caller: Caller,
    read: ReadMeta,
    ApiQuery(q): ApiQuery<AgendaParams>,
) -> Result<Reply<AgendaView>, ApiError> {
    let range = resolve_range(q.start.as_deref(), q.end.as_deref(), now_ms(), 7 * DAY_MS)?;
    let include = super::agenda::includes(q.include.as_deref())?;
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let page = read_agenda(&app, Reader::Caller(&caller), range, include, page, read.consistency).await?;
    Ok(Reply::ok(page.revision, agenda_view(range, page)))
}

/// One appointment, as the caller may see it.
#[utoipa::path(get, path = "/api/appointments/{id}", tag = "appointments", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Appointment id"), ReadParams),
    responses((status = 200, description = "The appointment", body = AppointmentView), ReadErrors))]
async fn get_appointment(
    State(app): State<AppState>,
    caller: Caller,
    read: ReadMeta,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Reply<AppointmentView>, ApiError> {
    let (revision, appointment) = read_appointment(&app, &caller, id, read.consistency).await?;
    let version = appointment.version;
    Ok(Reply::ok(revision, appointment.into()).etag(version))
}

/// Change an appointment the caller owns.
#[utoipa::path(patch, path = "/api/appointments/{id}", tag = "appointments", security(("bearer" = [])),
    request_body = AppointmentPatch,
    params(("id" = Uuid, Path, description = "Appointment id"), IfMatchParam, WriteParams),
    responses((status = 200, description = "Updated", body = AppointmentView), WriteErrors, BodyErrors, Stale))]
async fn patch_appointment(
    State(app): State<AppState>,
    caller: Caller,
    meta: WriteMeta,
    ApiPath(id): ApiPath<Uuid>,
    IfMatch(if_version): IfMatch,
    ApiJson(patch): ApiJson<AppointmentPatch>,
) -> Result<Reply<AppointmentView>, ApiError> {
    let (revision, appointment) = update_appointment(&app, &caller, &meta, id, if_version, patch).await?;
    let version = appointment.version;
    Ok(Reply::ok(revision, appointment.into()).etag(version))
}

/// Delete an appointment the caller owns.
#[utoipa::path(delete, path = "/api/appointments/{id}", tag = "appointments", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Appointment id"), IfMatchParam, WriteParams),
    responses((status = 204, description = "Deleted"), WriteErrors, Stale))]
async fn delete_appointment(
    State(app): State<AppState>,
    caller: Caller,
    meta: WriteMeta,
    ApiPath(id): ApiPath<Uuid>,
    IfMatch(if_version): IfMatch,
) -> Result<NoContent, ApiError> {
    let command = DeleteAppointment {
        appointment_id: id,
        if_version,
    };
    let done = app
        .execute(&meta, Some(&caller), &json!({ "if_match": if_version }), command)
        .await?;
    Ok(NoContent(done.revision))
}

fn privacy(raw: Option<&str>) -> Result<Option<Privacy>, ApiError> {
    raw.map(|p| {
        Privacy::parse(p).ok_or_else(|| ApiError::invalid("privacy", "must be `full`, `freebusy` or `private`"))
    })
    .transpose()
}

/// An appointment as the caller may see it.
pub(crate) async fn read_appointment(
    app: &AppState,
    caller: &Caller,
    appointment_id: Uuid,
    consistency: ReadConsistency,
) -> Result<(u64, Appointment), ApiError> {
    let query = AppointmentQuery {
        actor: caller.id(),
        appointment_id,
    };
    app.read(caller, query, consistency).await
}

async fn create_appointment(
    app: &AppState,
    caller: &Caller,
    meta: &WriteMeta,
    input: AppointmentInput,
) -> Result<(u64, Appointment), ApiError> {
    let title = validate::text("title", &input.title, validate::MAX_TITLE, true)?;
    let description = validate::text(
        "description",
        input.description.as_deref().unwrap_or(""),
        validate::MAX_DESCRIPTION,
        false,
    )?;
    let start_ms = parse_time("start_time", &input.start_time)?;
    let end_ms = parse_time("end_time", &input.end_time)?;
    validate::interval(start_ms, end_ms)?;
    let privacy = privacy(input.privacy.as_deref())?.unwrap_or_default();
    let command = CreateAppointment {
        appointment_id: Uuid::now_v7(),
        group_id: input.group_id,
        title,
        description,
        start_ms,
        end_ms,
        privacy,
    };
    let done = app.execute(meta, Some(caller), &input, command).await?;
    Ok((done.revision, done.output))
}

async fn update_appointment(
    app: &AppState,
    caller: &Caller,
    meta: &WriteMeta,
    id: Uuid,
    if_version: Option<u64>,
    patch: AppointmentPatch,
) -> Result<(u64, Appointment), ApiError> {
    let title = patch
        .title
        .as_deref()
        .map(|t| validate::text("title", t, validate::MAX_TITLE, true))
        .transpose()?;
    let description = patch
        .description
        .as_deref()
        .map(|d| validate::text("description", d, validate::MAX_DESCRIPTION, false))
        .transpose()?;
    let start_ms = patch
        .start_time
        .as_deref()
        .map(|s| parse_time("start_time", s))
        .transpose()?;
    let end_ms = patch
        .end_time
        .as_deref()
        .map(|s| parse_time("end_time", s))
        .transpose()?;
    if let (Some(s), Some(e)) = (start_ms, end_ms) {
        validate::interval(s, e)?;
    }
    let privacy = privacy(patch.privacy.as_deref())?;
    if title.is_none() && description.is_none() && start_ms.is_none() && end_ms.is_none() && privacy.is_none() {
        return Err(ApiError::invalid("body", "nothing to change"));
    }
    let command = UpdateAppointment {
        appointment_id: id,
        if_version,
        title,
        description,
        start_ms,
        end_ms,
        privacy,
    };
    let fingerprint = json!({ "patch": patch, "if_match": if_version });
    let done = app.execute(meta, Some(caller), &fingerprint, command).await?;
    Ok((done.revision, done.output))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_and_end_are_aliases_and_unknown_fields_are_refused() {
        let a: AppointmentInput = serde_json::from_str(
            r#"{"title":"t","start":"2030-01-01T10:00:00Z","end":"2030-01-01T11:00:00Z","privacy":"freebusy"}"#,
        )
        .unwrap();
        assert_eq!(a.start_time, "2030-01-01T10:00:00Z");
        assert!(
            serde_json::from_str::<AppointmentInput>(r#"{"title":"t","start_time":"x","end_time":"y","owner_id":"z"}"#)
                .is_err()
        );
        assert!(serde_json::from_str::<AppointmentInput>(r#"{"title":5,"start_time":"x","end_time":"y"}"#).is_err());
    }

    #[test]
    fn privacy_is_full_or_freebusy() {
        assert_eq!(privacy(Some("freebusy")).unwrap(), Some(Privacy::Freebusy));
        assert_eq!(privacy(None).unwrap(), None);
        assert!(privacy(Some("secret")).is_err());
    }
}
