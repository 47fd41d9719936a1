//! The caller's agenda: `GET /api/agenda` (JSON) and `GET /api/agenda.ics` (iCalendar),
//! plus the range rules every listing shares (default: the next 7 days; at most 366 days).

use agenda_shared::model::Appointment;
use agenda_shared::query::{Query, QueryResult};
use agenda_shared::validate;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::docs::ReadErrors;
use super::extract::{ApiQuery, Caller, ReadMeta};
use super::reply::{Reply, Text};
use crate::error::ApiError;
use crate::ics;
use crate::state::AppState;
use crate::store::ReadConsistency;
use crate::views::{AgendaView, AppointmentView, now_ms, parse_time, rfc3339};

/// A day in milliseconds.
pub(crate) const DAY_MS: i64 = 24 * 3_600_000;

/// Routes of this module.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_agenda))
        .routes(routes!(get_agenda_ics))
}

/// A time range in the query string.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RangeQuery {
    /// Range start, RFC 3339 (default: now).
    pub start: Option<String>,
    /// Range end, exclusive, RFC 3339 (default: start + 7 days; at most 366 days after start).
    pub end: Option<String>,
}

/// The agenda's query string.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AgendaQuery {
    /// Range start, RFC 3339 (default: now).
    pub start: Option<String>,
    /// Range end, exclusive, RFC 3339 (default: start + 7 days; at most 366 days after start).
    pub end: Option<String>,
    /// Also list appointments the caller has not answered or declined: `pending`,
    /// `declined`, comma separated.
    pub include: Option<String>,
}

/// Resolve a requested range: missing ends default to `default_start` and a span of
/// `default_span` ms; the result is checked (ordered, renderable, at most 366 days).
pub(crate) fn resolve_range(
    start: Option<&str>,
    end: Option<&str>,
    default_start: i64,
    default_span: i64,
) -> Result<(i64, i64), ApiError> {
    let start_ms = start.map(|s| parse_time("start", s)).transpose()?;
    let end_ms = end.map(|s| parse_time("end", s)).transpose()?;
    let (start_ms, end_ms) = match (start_ms, end_ms) {
        (Some(s), Some(e)) => (s, e),
        (Some(s), None) => (s, s.saturating_add(default_span)),
        (None, Some(e)) => (e.saturating_sub(default_span), e),
        (None, None) => (default_start, default_start.saturating_add(default_span)),
    };
    validate::range(start_ms, end_ms)?;
    Ok((start_ms, end_ms))
}

/// The range of a JSON listing: default the next 7 days.
pub(crate) fn listing_range(q: &RangeQuery) -> Result<(i64, i64), ApiError> {
    resolve_range(q.start.as_deref(), q.end.as_deref(), now_ms(), 7 * DAY_MS)
}

/// The range of an iCalendar export: default from 30 days ago, one year long.
pub(crate) fn export_range(q: &RangeQuery) -> Result<(i64, i64), ApiError> {
    resolve_range(
        q.start.as_deref(),
        q.end.as_deref(),
        now_ms() - 30 * DAY_MS,
        365 * DAY_MS,
    )
}

/// `actor`'s appointments over `[start_ms, end_ms)`.
pub(crate) async fn read_agenda(
    app: &AppState,
    actor: Uuid,
    (start_ms, end_ms): (i64, i64),
    (include_pending, include_declined): (bool, bool),
    consistency: ReadConsistency,
) -> Result<(u64, Vec<Appointment>), ApiError> {
    let query = Query::Agenda {
        actor,
        start_ms,
        end_ms,
        include_pending,
        include_declined,
    };
    match app.query(query, consistency).await? {
        (revision, QueryResult::Appointments { appointments }) => Ok((revision, appointments)),
        (_, other) => Err(ApiError::Internal(format!("expected appointments, got {other:?}"))),
    }
}

/// Build the JSON view of an agenda.
pub(crate) fn agenda_view((start_ms, end_ms): (i64, i64), appointments: Vec<Appointment>) -> AgendaView {
    AgendaView {
        start: rfc3339(start_ms),
        end: rfc3339(end_ms),
        appointments: appointments.into_iter().map(AppointmentView::from).collect(),
    }
}

fn includes(raw: Option<&str>) -> Result<(bool, bool), ApiError> {
    let mut out = (false, false);
    for item in raw.unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item {
            "pending" => out.0 = true,
            "declined" => out.1 = true,
            _ => return Err(ApiError::invalid("include", "may list only `pending` and `declined`")),
        }
    }
    Ok(out)
}

/// The caller's agenda over a range.
#[utoipa::path(get, path = "/api/agenda", tag = "agenda", security(("bearer" = [])), params(AgendaQuery),
    responses((status = 200, description = "Appointments ordered by start", body = AgendaView), ReadErrors))]
async fn get_agenda(
    State(app): State<AppState>,
    caller: Caller,
    read: ReadMeta,
    ApiQuery(q): ApiQuery<AgendaQuery>,
) -> Result<Reply<AgendaView>, ApiError> {
    let range = resolve_range(q.start.as_deref(), q.end.as_deref(), now_ms(), 7 * DAY_MS)?;
    let include = includes(q.include.as_deref())?;
    let (revision, appointments) = read_agenda(&app, caller.id(), range, include, read.consistency).await?;
    Ok(Reply::ok(revision, agenda_view(range, appointments)))
}

/// The caller's agenda as iCalendar (default range: 30 days ago to 335 days ahead).
#[utoipa::path(get, path = "/api/agenda.ics", tag = "agenda", security(("bearer" = [])), params(RangeQuery),
    responses((status = 200, description = "RFC 5545 calendar", content_type = "text/calendar", body = String), ReadErrors))]
async fn get_agenda_ics(
    State(app): State<AppState>,
    caller: Caller,
    read: ReadMeta,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> Result<Text, ApiError> {
    let range = export_range(&q)?;
    let (revision, appointments) = read_agenda(&app, caller.id(), range, (false, false), read.consistency).await?;
    Ok(Text {
        content_type: ics::CONTENT_TYPE,
        revision: Some(revision),
        body: ics::calendar(&caller.user.display_name, &appointments, now_ms()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_default_and_are_bounded() {
        let now = 1_900_000_000_000;
        assert_eq!(resolve_range(None, None, now, DAY_MS).unwrap(), (now, now + DAY_MS));
        let (s, e) = resolve_range(Some("2030-01-01T00:00:00Z"), None, now, DAY_MS).unwrap();
        assert_eq!(e - s, DAY_MS);
        let err = resolve_range(Some("2030-01-01T00:00:00Z"), Some("2032-01-01T00:00:00Z"), now, DAY_MS);
        assert!(matches!(err, Err(ApiError::Invalid { .. })));
        let backwards = resolve_range(Some("2030-01-02T00:00:00Z"), Some("2030-01-01T00:00:00Z"), now, DAY_MS);
        assert!(matches!(backwards, Err(ApiError::Invalid { .. })));
        assert!(resolve_range(Some("0001-01-01T00:00:00Z"), None, now, DAY_MS).is_err());
    }

    #[test]
    fn include_lists_only_known_statuses() {
        assert_eq!(includes(Some("pending, declined")).unwrap(), (true, true));
        assert_eq!(includes(None).unwrap(), (false, false));
        assert!(includes(Some("accepted")).is_err());
    }
}
