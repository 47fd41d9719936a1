//! The caller's agenda: `GET /api/agenda` (JSON) and `GET /api/agenda.ics` (iCalendar),
//! plus the range rules every listing shares (default: the next 7 days; at most 366 days).

use agenda_shared::model::Appointment;
use agenda_shared::query::AgendaQuery;
use agenda_shared::query::{AgendaCursor, MAX_PAGE};
use agenda_shared::validate;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::docs::ReadErrors;
use super::extract::{ApiQuery, Caller, ReadMeta, ReadParams};
use super::reply::{Reply, Text};
use super::rules;
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

/// A time range in the query string (JSON listings: default the next 7 days; iCalendar:
/// from 30 days ago, one year).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RangeQuery {
    /// Range start.
    #[param(schema_with = rules::range_start)]
    pub start: Option<String>,
    /// Range end.
    #[param(schema_with = rules::range_end)]
    pub end: Option<String>,
}

/// The agenda's query string (default range: the next 7 days).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AgendaParams {
    /// Range start.
    #[param(schema_with = rules::range_start)]
    pub start: Option<String>,
    /// Range end.
    #[param(schema_with = rules::range_end)]
    pub end: Option<String>,
    /// Statuses to include besides accepted.
    #[param(schema_with = rules::include)]
    pub include: Option<String>,
    /// Page size (default 500). A page also ends before it reaches 4 MiB.
    #[param(schema_with = rules::limit)]
    pub limit: Option<u32>,
    /// Where to continue.
    #[param(schema_with = rules::agenda_cursor)]
    pub cursor: Option<String>,
}

/// A page of a listing, as asked for in the query string.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PageRequest {
    /// Page size.
    pub(crate) limit: Option<u32>,
    /// Where to continue.
    pub(crate) after: Option<AgendaCursor>,
}

impl PageRequest {
    /// Check `limit` (1–500) and decode `cursor`, which must be exactly what
    /// [`AgendaCursor::encode`] writes ([`rules::AGENDA_CURSOR`]).
    pub(crate) fn parse(limit: Option<u32>, cursor: Option<&str>) -> Result<Self, ApiError> {
        if let Some(l) = limit
            && !(1..=MAX_PAGE).contains(&l)
        {
            return Err(ApiError::invalid("limit", format!("must be between 1 and {MAX_PAGE}")));
        }
        let after = cursor
            .map(|c| {
                is_cursor(c, 15)
                    .then(|| AgendaCursor::decode(c))
                    .flatten()
                    .ok_or_else(|| ApiError::invalid("cursor", "must be the next_cursor of a previous page"))
            })
            .transpose()?;
        Ok(Self { limit, after })
    }
}

/// Whether `raw` is `<1..=max_digits digits>.<32 lower-case hex digits>`, the text form of
/// both cursors (`rules::AGENDA_CURSOR`, `rules::NOTIFICATION_CURSOR`).
pub(crate) fn is_cursor(raw: &str, max_digits: usize) -> bool {
    let Some((number, id)) = raw.split_once('.') else {
        return false;
    };
    (1..=max_digits).contains(&number.len())
        && number.bytes().all(|b| b.is_ascii_digit())
        && id.len() == 32
        && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Most pages an export (iCalendar) follows: 20 × 500 appointments.
const MAX_EXPORT_PAGES: usize = 20;

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

/// Who reads an agenda: the signed-in caller (their token is checked by the store), or
/// the service itself on behalf of `actor` (a secret feed URL).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Reader<'a> {
    /// The caller reads their own agenda.
    Caller(&'a Caller),
    /// A feed URL reads its owner's agenda.
    Feed(Uuid),
}

/// One page of an agenda.
#[derive(Debug)]
pub(crate) struct AgendaPage {
    pub(crate) revision: u64,
    pub(crate) appointments: Vec<Appointment>,
    pub(crate) next: Option<AgendaCursor>,
}

/// One page of the reader's appointments over `[start_ms, end_ms)`.
pub(crate) async fn read_agenda(
    app: &AppState,
    reader: Reader<'_>,
    (start_ms, end_ms): (i64, i64),
    (include_pending, include_declined): (bool, bool),
    page: PageRequest,
    consistency: ReadConsistency,
) -> Result<AgendaPage, ApiError> {
    let actor = match reader {
        Reader::Caller(c) => c.id(),
        Reader::Feed(owner) => owner,
    };
    let query = AgendaQuery {
        actor,
        start_ms,
        end_ms,
        include_pending,
        include_declined,
        limit: page.limit,
        after: page.after,
    };
    let (revision, page) = match reader {
        Reader::Caller(c) => app.read(c, query, consistency).await?,
        Reader::Feed(_) => app.query(query, consistency).await?,
    };
    Ok(AgendaPage {
        revision,
        appointments: page.appointments,
        next: page.next,
    })
}

/// Every page of the reader's accepted appointments over the range, for an export (at most
/// [`MAX_EXPORT_PAGES`] pages; later pages are read at the first page's revision or later).
pub(crate) async fn read_export(
    app: &AppState,
    reader: Reader<'_>,
    range: (i64, i64),
    consistency: ReadConsistency,
) -> Result<(u64, Vec<Appointment>), ApiError> {
    let mut page = read_agenda(app, reader, range, (false, false), PageRequest::default(), consistency).await?;
    let revision = page.revision;
    let mut all = std::mem::take(&mut page.appointments);
    for _ in 1..MAX_EXPORT_PAGES {
        let Some(after) = page.next else { break };
        let next = PageRequest {
            limit: None,
            after: Some(after),
        };
        page = read_agenda(
            app,
            reader,
            range,
            (false, false),
            next,
            ReadConsistency::MinRevision(revision),
        )
        .await?;
        all.append(&mut page.appointments);
    }
    Ok((revision, all))
}

/// Build the JSON view of an agenda page.
pub(crate) fn agenda_view((start_ms, end_ms): (i64, i64), page: AgendaPage) -> AgendaView {
    AgendaView {
        start: rfc3339(start_ms),
        end: rfc3339(end_ms),
        appointments: page.appointments.into_iter().map(AppointmentView::from).collect(),
        next_cursor: page.next.map(|c| c.encode()),
    }
}

pub(crate) fn includes(raw: Option<&str>) -> Result<(bool, bool), ApiError> {
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
#[utoipa::path(get, path = "/api/agenda", tag = "agenda", security(("bearer" = [])), params(AgendaParams, ReadParams),
    responses((status = 200, description = "Appointments ordered by start", body = AgendaView), ReadErrors))]
async fn get_agenda(
    State(app): State<AppState>,
    caller: Caller,
    read: ReadMeta,
    ApiQuery(q): ApiQuery<AgendaParams>,
) -> Result<Reply<AgendaView>, ApiError> {
    let range = resolve_range(q.start.as_deref(), q.end.as_deref(), now_ms(), 7 * DAY_MS)?;
    let include = includes(q.include.as_deref())?;
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let page = read_agenda(&app, Reader::Caller(&caller), range, include, page, read.consistency).await?;
    Ok(Reply::ok(page.revision, agenda_view(range, page)))
}

/// The caller's agenda as iCalendar (default range: 30 days ago to 335 days ahead).
#[utoipa::path(get, path = "/api/agenda.ics", tag = "agenda", security(("bearer" = [])), params(RangeQuery, ReadParams),
    responses((status = 200, description = "RFC 5545 calendar", content_type = "text/calendar", body = String), ReadErrors))]
async fn get_agenda_ics(
    State(app): State<AppState>,
    caller: Caller,
    read: ReadMeta,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> Result<Text, ApiError> {
    let range = export_range(&q)?;
    let (_, me) = app.me(&caller, read.consistency).await?;
    let (revision, appointments) = read_export(&app, Reader::Caller(&caller), range, read.consistency).await?;
    Ok(Text {
        content_type: ics::CONTENT_TYPE,
        revision: Some(revision),
        body: ics::calendar(&me.display_name, &appointments, now_ms()),
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
    fn pages_are_bounded_and_cursors_round_trip() {
        let c = AgendaCursor {
            start_ms: 1_900_000_000_000,
            id: Uuid::now_v7(),
        };
        let p = PageRequest::parse(Some(10), Some(&c.encode())).unwrap();
        assert_eq!((p.limit, p.after), (Some(10), Some(c)));
        assert!(PageRequest::parse(Some(0), None).is_err());
        assert!(PageRequest::parse(Some(501), None).is_err());
        assert!(PageRequest::parse(None, Some("garbage")).is_err());
        let upper = c.encode().to_ascii_uppercase();
        assert!(PageRequest::parse(None, Some(&upper)).is_err());
        assert!(PageRequest::parse(None, Some(&format!(" {}", c.encode()))).is_err());
    }

    #[test]
    fn include_lists_only_known_statuses() {
        assert_eq!(includes(Some("pending, declined")).unwrap(), (true, true));
        assert_eq!(includes(None).unwrap(), (false, false));
        assert!(includes(Some("accepted")).is_err());
    }
}
