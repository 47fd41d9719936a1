//! The per-user secret iCalendar feed: `GET /api/me/feed` (its URL), `POST
//! /api/me/feed/rotate` (a new URL; the old one stops working) and `GET /feeds/{token}.ics`,
//! which calendar apps poll without a bearer token (the token in the URL is the secret).

use agenda_shared::command::{Command, Redacted};
use agenda_shared::query::{Query, QueryResult};
use axum::extract::State;
use http::{HeaderMap, header};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::agenda::{RangeQuery, export_range, read_agenda};
use super::docs::{ReadErrors, WriteErrors};
use super::extract::{ApiPath, ApiQuery, Caller, ReadMeta};
use super::reply::{Reply, Text};
use crate::error::ApiError;
use crate::ics;
use crate::state::{AppState, WriteMeta};
use crate::views::now_ms;

/// Routes of this module.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_feed))
        .routes(routes!(rotate_feed))
        .routes(routes!(feed_ics))
}

/// The new token of a rotation, derived (keyed HMAC) from the caller and the request id:
/// a retry with the same `Idempotency-Key` is answered with the token that was stored.
fn rotation_token(app: &AppState, caller: &Caller, meta: &WriteMeta) -> Result<String, ApiError> {
    app.secret_digest(&format!("feed-token\n{}\n{}", caller.id(), meta.request_id))
}

/// Where the caller's feed lives.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedView {
    /// Absolute URL (from the request's `Host`), for calendar apps.
    pub url: String,
    /// The same URL's path.
    pub path: String,
}

fn feed_view(app: &AppState, headers: &HeaderMap, token: &str) -> FeedView {
    let path = format!("/feeds/{token}.ics");
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).filter(|h| {
        !h.is_empty()
            && h.len() <= 255
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
    });
    let url = match host {
        Some(h) => format!("{}://{h}{path}", if app.tls { "https" } else { "http" }),
        None => path.clone(),
    };
    FeedView { url, path }
}

/// The caller's secret feed URL.
#[utoipa::path(get, path = "/api/me/feed", tag = "agenda", security(("bearer" = [])),
    responses((status = 200, description = "The feed URL", body = FeedView), ReadErrors))]
async fn get_feed(
    State(app): State<AppState>,
    caller: Caller,
    read: ReadMeta,
    headers: HeaderMap,
) -> Result<Reply<FeedView>, ApiError> {
    let query = Query::FeedToken { actor: caller.id() };
    match app.query(query, read.consistency).await? {
        (revision, QueryResult::FeedToken { token }) => {
            Ok(Reply::ok(revision, feed_view(&app, &headers, token.expose())))
        }
        (_, other) => Err(ApiError::Internal(format!("expected a feed token, got {other:?}"))),
    }
}

/// Replace the caller's feed URL; the old one answers 404 from now on.
#[utoipa::path(post, path = "/api/me/feed/rotate", tag = "agenda", security(("bearer" = [])),
    responses((status = 200, description = "The new feed URL", body = FeedView), WriteErrors))]
async fn rotate_feed(
    State(app): State<AppState>,
    caller: Caller,
    meta: WriteMeta,
    headers: HeaderMap,
) -> Result<Reply<FeedView>, ApiError> {
    let token = rotation_token(&app, &caller, &meta)?;
    let command = Command::RotateFeedToken {
        feed_token: Redacted(token.clone()),
    };
    let done = app.execute(&meta, Some(caller.id()), &json!({}), command).await?;
    Ok(Reply::ok(done.revision, feed_view(&app, &headers, &token)))
}

/// A user's agenda as iCalendar, for calendar apps (`{file}` is `<token>.ics`).
#[utoipa::path(get, path = "/feeds/{file}", tag = "agenda", params(("file" = String, Path, description = "`<token>.ics`"), RangeQuery),
    responses((status = 200, description = "RFC 5545 calendar", content_type = "text/calendar", body = String), ReadErrors))]
async fn feed_ics(
    State(app): State<AppState>,
    read: ReadMeta,
    ApiPath(file): ApiPath<String>,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> Result<Text, ApiError> {
    let not_found = || ApiError::NotFound("feed".into());
    let token = file.strip_suffix(".ics").ok_or_else(not_found)?;
    if !(32..=128).contains(&token.len()) || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(not_found());
    }
    let range = export_range(&q)?;
    let owner = match app
        .query(
            Query::FeedOwner {
                token: Redacted(token.to_owned()),
            },
            read.consistency,
        )
        .await?
    {
        (_, QueryResult::User { user }) => user,
        (_, other) => return Err(ApiError::Internal(format!("expected a user, got {other:?}"))),
    };
    let (revision, appointments) = read_agenda(&app, owner.id, range, (false, false), read.consistency).await?;
    Ok(Text {
        content_type: ics::CONTENT_TYPE,
        revision: Some(revision),
        body: ics::calendar(&owner.display_name, &appointments, now_ms()),
    })
}
