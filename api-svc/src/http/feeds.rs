//! The per-user secret iCalendar feed: `GET /api/me/feed` (its URL), `POST
//! /api/me/feed/rotate` (a new URL; the old one stops working) and `GET /feeds/{token}.ics`,
//! which calendar apps poll without a bearer token (the token in the URL is the secret).
//!
//! Anybody may ask for a feed URL, and only a store knows which tokens exist. A token of
//! the wrong shape is refused here; a well-formed unknown one costs a store query, so each
//! client has a budget of unknown tokens ([`crate::ratelimit::FeedLimiter`]) and, once it
//! is spent, is answered 429 before any store is asked. Tokens carry no MAC that could be
//! checked here instead: the URLs calendar apps already poll are plain random tokens.

use agenda_shared::command::RotateFeedToken;
use agenda_shared::query::{FeedOwnerQuery, FeedTokenQuery};
use agenda_shared::secret::Secret;
use axum::extract::State;
use http::{HeaderMap, header};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::agenda::{RangeQuery, Reader, export_range, read_export};
use super::docs::{RateLimited, ReadErrors, WriteErrors};
use super::extract::{ApiPath, ApiQuery, Caller, ClientIp, ReadMeta, ReadParams, WriteParams};
use super::reply::{Reply, Text};
use super::rules;
use crate::error::{ApiError, Problem};
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
    /// Absolute URL (from the request's `Host`; just the path when `Host` is missing or
    /// odd), for calendar apps.
    #[schema(schema_with = rules::uri_reference)]
    pub url: String,
    /// The same URL's path.
    #[schema(pattern = "^/feeds/[A-Za-z0-9]{32,128}\\.ics$")]
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
#[utoipa::path(get, path = "/api/me/feed", tag = "agenda", security(("bearer" = [])), params(ReadParams),
    responses((status = 200, description = "The feed URL", body = FeedView), ReadErrors))]
async fn get_feed(
    State(app): State<AppState>,
    caller: Caller,
    read: ReadMeta,
    headers: HeaderMap,
) -> Result<Reply<FeedView>, ApiError> {
    let query = FeedTokenQuery { actor: caller.id() };
    let (revision, token) = app.read(&caller, query, read.consistency).await?;
    Ok(Reply::ok(revision, feed_view(&app, &headers, token.expose())))
}

/// Replace the caller's feed URL; the old one answers 404 from now on.
#[utoipa::path(post, path = "/api/me/feed/rotate", tag = "agenda", security(("bearer" = [])), params(WriteParams),
    responses((status = 200, description = "The new feed URL", body = FeedView), WriteErrors))]
async fn rotate_feed(
    State(app): State<AppState>,
    caller: Caller,
    meta: WriteMeta,
    headers: HeaderMap,
) -> Result<Reply<FeedView>, ApiError> {
    let token = rotation_token(&app, &caller, &meta)?;
    let command = RotateFeedToken {
        feed_token: Secret::new(token.clone()),
    };
    let done = app.execute(&meta, Some(&caller), &json!({}), command).await?;
    Ok(Reply::ok(done.revision, feed_view(&app, &headers, &token)))
}

/// A user's agenda as iCalendar, for calendar apps (`{file}` is `<token>.ics`). Unknown
/// tokens are limited per client IP (`FEED_FAILURES_PER_IP_PER_MINUTE`): past the budget,
/// 429 until it refills.
#[utoipa::path(get, path = "/feeds/{file}", tag = "agenda",
    params(("file" = String, Path, pattern = "^[A-Za-z0-9]{32,128}\\.ics$",
        description = "`<token>.ics`, the token being the secret of the feed URL"), RangeQuery, ReadParams),
    responses((status = 200, description = "RFC 5545 calendar", content_type = "text/calendar", body = String),
        (status = 404, description = "not_found: no feed has this token", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "validation_failed: a malformed header", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "precondition_failed: `X-Agenda-Min-Revision` is beyond the latest revision", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "unavailable", body = Problem, content_type = "application/problem+json"),
        RateLimited))]
async fn feed_ics(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    read: ReadMeta,
    ApiPath(file): ApiPath<String>,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> Result<Text, ApiError> {
    app.feed_limiter.check(ip)?;
    let not_found = || ApiError::NotFound("feed".into());
    let token = file.strip_suffix(".ics").ok_or_else(not_found)?;
    if !(32..=128).contains(&token.len()) || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(not_found());
    }
    let range = export_range(&q)?;
    let query = FeedOwnerQuery {
        token: Secret::new(token.to_owned()),
    };
    let owner = match app.query(query, read.consistency).await {
        Ok((_, owner)) => owner,
        // No store could answer: not the client's doing.
        Err(e @ ApiError::Unavailable { .. }) => return Err(e),
        // Unknown token, or a revision header no store has reached: both cost the stores
        // and both are the client's choice.
        Err(e) => {
            app.feed_limiter.failed(ip)?;
            return Err(e);
        }
    };
    let (revision, appointments) = read_export(&app, Reader::Feed(owner.id), range, read.consistency).await?;
    Ok(Text {
        content_type: ics::CONTENT_TYPE,
        revision: Some(revision),
        body: ics::calendar(&owner.display_name, &appointments, now_ms()),
    })
}
