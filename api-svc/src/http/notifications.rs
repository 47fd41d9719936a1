//! Notifications: `GET /api/notifications` and `/unread` (newest first, cursor
//! pagination), `POST /api/notifications/{id}/read` and `/read-all`.

use agenda_shared::command::MarkNotificationsRead;
use agenda_shared::query::NotificationsQuery;
use agenda_shared::query::{MAX_PAGE, NotificationCursor};
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::docs::{ReadErrors, WriteErrors};
use super::extract::{ApiPath, ApiQuery, Caller, ReadMeta, ReadParams, WriteParams};
use super::reply::Reply;
use super::rules;
use crate::error::ApiError;
use crate::state::{AppState, WriteMeta};
use crate::views::NotificationView;

/// Default page size.
const DEFAULT_LIMIT: u32 = 50;

/// Routes of this module.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_notifications))
        .routes(routes!(list_unread_notifications))
        .routes(routes!(mark_notification_read))
        .routes(routes!(mark_all_notifications_read))
}

/// Paging parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Where to continue.
    #[param(schema_with = rules::notification_cursor)]
    pub cursor: Option<String>,
    /// Page size (default 50).
    #[param(schema_with = rules::limit)]
    pub limit: Option<u32>,
}

/// One page of notifications.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationPage {
    /// Newest first.
    pub notifications: Vec<NotificationView>,
    /// Where the next page starts.
    #[schema(required = true, schema_with = rules::notification_next_cursor)]
    pub next_cursor: Option<String>,
    /// The caller's unread count.
    pub unread: u64,
}

/// The result of marking notifications read.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadMarks {
    /// How many changed from unread to read.
    pub marked: u64,
    /// Unread notifications left.
    pub unread: u64,
}

/// Opaque cursor text: `<revision>.<id>`.
fn encode_cursor(c: &NotificationCursor) -> String {
    format!("{}.{}", c.revision, c.id.simple())
}

/// Exactly [`encode_cursor`]'s form ([`rules::NOTIFICATION_CURSOR`]).
fn decode_cursor(raw: &str) -> Result<NotificationCursor, ApiError> {
    let bad = || ApiError::invalid("cursor", "is not a cursor returned by this API");
    if !super::agenda::is_cursor(raw, 19) {
        return Err(bad());
    }
    let (revision, id) = raw.split_once('.').ok_or_else(bad)?;
    Ok(NotificationCursor {
        revision: revision.parse().map_err(|_| bad())?,
        id: Uuid::try_parse(id).map_err(|_| bad())?,
    })
}

async fn page(
    app: &AppState,
    caller: &Caller,
    read: ReadMeta,
    q: PageQuery,
    unread_only: bool,
) -> Result<(u64, NotificationPage), ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid("limit", format!("must be between 1 and {MAX_PAGE}")));
    }
    let before = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let query = NotificationsQuery {
        actor: caller.id(),
        unread_only,
        before,
        limit,
    };
    let (revision, page) = app.read(caller, query, read.consistency).await?;
    Ok((
        revision,
        NotificationPage {
            notifications: page.notifications.into_iter().map(Into::into).collect(),
            next_cursor: page.next.as_ref().map(encode_cursor),
            unread: page.unread,
        },
    ))
}

/// The caller's notifications, newest first.
#[utoipa::path(get, path = "/api/notifications", tag = "notifications", security(("bearer" = [])), params(PageQuery, ReadParams),
    responses((status = 200, description = "A page", body = NotificationPage), ReadErrors))]
async fn list_notifications(
    State(app): State<AppState>,
    caller: Caller,
    read: ReadMeta,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Reply<NotificationPage>, ApiError> {
    let (revision, page) = page(&app, &caller, read, q, false).await?;
    Ok(Reply::ok(revision, page))
}

/// The caller's unread notifications, newest first.
#[utoipa::path(get, path = "/api/notifications/unread", tag = "notifications", security(("bearer" = [])), params(PageQuery, ReadParams),
    responses((status = 200, description = "A page", body = NotificationPage), ReadErrors))]
async fn list_unread_notifications(
    State(app): State<AppState>,
    caller: Caller,
    read: ReadMeta,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Reply<NotificationPage>, ApiError> {
    let (revision, page) = page(&app, &caller, read, q, true).await?;
    Ok(Reply::ok(revision, page))
}

/// Mark one notification read.
#[utoipa::path(post, path = "/api/notifications/{id}/read", tag = "notifications", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Notification id"), WriteParams),
    responses((status = 200, description = "Marked (`marked` is 0 when it was read already or is not the caller's)", body = ReadMarks), WriteErrors))]
async fn mark_notification_read(
    State(app): State<AppState>,
    caller: Caller,
    meta: WriteMeta,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Reply<ReadMarks>, ApiError> {
    let command = MarkNotificationsRead { ids: vec![id] };
    let done = app.execute(&meta, Some(&caller), &json!({}), command).await?;
    let marks = done.output;
    Ok(Reply::ok(
        done.revision,
        ReadMarks {
            marked: marks.marked,
            unread: marks.unread,
        },
    ))
}

/// Mark every notification of the caller read.
#[utoipa::path(post, path = "/api/notifications/read-all", tag = "notifications", security(("bearer" = [])), params(WriteParams),
    responses((status = 200, description = "Marked", body = ReadMarks), WriteErrors))]
async fn mark_all_notifications_read(
    State(app): State<AppState>,
    caller: Caller,
    meta: WriteMeta,
) -> Result<Reply<ReadMarks>, ApiError> {
    let command = MarkNotificationsRead { ids: Vec::new() };
    let done = app.execute(&meta, Some(&caller), &json!({}), command).await?;
    let marks = done.output;
    Ok(Reply::ok(
        done.revision,
        ReadMarks {
            marked: marks.marked,
            unread: marks.unread,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = NotificationCursor {
            revision: 42,
            id: Uuid::now_v7(),
        };
        assert_eq!(decode_cursor(&encode_cursor(&c)).unwrap(), c);
        let hyphenated = format!("42.{}", Uuid::now_v7());
        for bad in [
            "",
            "42",
            "x.y",
            "42.not-a-uuid",
            "-1.0190a2b4c5d67e8f9a0b1c2d3e4f5a6b",
            "+1.0190a2b4c5d67e8f9a0b1c2d3e4f5a6b",
            &hyphenated,
        ] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }
}
