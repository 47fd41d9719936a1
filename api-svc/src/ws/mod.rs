//! Live notifications over WebSocket (`GET /ws`, DESIGN §8): the [`Hub`] holds the one
//! store `Watch` stream of this API front; `session` serves each socket.

mod session;

use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::response::Response;
use http::{HeaderMap, header};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::WsSettings;

use crate::error::{ApiError, Problem};
use crate::http::extract::ApiQuery;
use crate::http::rules;
use crate::state::AppState;

/// Largest message a client may send.
const MAX_CLIENT_MESSAGE: usize = 16 * 1024;

/// Routes of this module.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(open_websocket))
}

/// Optional query parameters of `/ws`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WsQuery {
    /// Bearer token, for clients that cannot send a first `auth` message.
    pub token: Option<String>,
    /// Resume after this revision (same as a `resume` message).
    #[param(schema_with = rules::revision)]
    pub after: Option<u64>,
}

/// The handshake headers of RFC 6455 that the upgrade checks (case-insensitively), and
/// the browser's `Origin`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct WsHandshake {
    /// Must contain `upgrade`.
    #[param(rename = "Connection", pattern = "^.*[Uu][Pp][Gg][Rr][Aa][Dd][Ee].*$")]
    connection: String,
    /// `websocket`.
    #[param(rename = "Upgrade", pattern = "^[Ww][Ee][Bb][Ss][Oo][Cc][Kk][Ee][Tt]$")]
    upgrade: String,
    /// `13`.
    #[param(rename = "Sec-WebSocket-Version", pattern = "^13$")]
    sec_websocket_version: String,
    /// The client's nonce (RFC 6455: 16 random bytes, base64).
    #[param(rename = "Sec-WebSocket-Key")]
    sec_websocket_key: String,
    /// Sent by browsers: the API's own origin or one of `WS_ALLOWED_ORIGINS` (403
    /// otherwise). Clients that send none are allowed.
    #[param(rename = "Origin")]
    origin: Option<String>,
}

/// Whether a browser `Origin` may open a socket: no `Origin` (not a browser), the API's
/// own origin (same host), or one of the allowed origins.
fn origin_allowed(settings: &WsSettings, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if settings
        .allowed_origins
        .iter()
        .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or("");
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|host| !host.is_empty() && host.eq_ignore_ascii_case(origin_host))
}

/// Open the live notification socket. Messages: client `auth`, `resume`, `ping`,
/// `pong`; server `ready`, `notification`, `resync_required`, `ping`, `pong`, `error`.
#[utoipa::path(get, path = "/ws", tag = "live", params(WsQuery, WsHandshake),
    responses((status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "validation_failed: not a WebSocket request", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden: Origin not allowed", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed: a bad `after`", body = Problem, content_type = "application/problem+json")))]
async fn open_websocket(
    State(app): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<WsQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    if !origin_allowed(&app.ws, &headers) {
        return Err(ApiError::Forbidden("this Origin may not open a WebSocket".into()));
    }
    if q.after.is_some_and(|a| a > rules::MAX_REVISION) {
        return Err(ApiError::invalid(
            "after",
            format!("must be a revision between 0 and {}", rules::MAX_REVISION),
        ));
    }
    let ws = ws.map_err(|_| ApiError::BadRequest("expected a WebSocket upgrade request".into()))?;
    Ok(ws
        .max_message_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| session::serve(app, socket, q.token, q.after)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn settings(allowed: &[&str]) -> WsSettings {
        WsSettings {
            allowed_origins: allowed.iter().map(|s| s.to_string()).collect(),
            ping_interval: Duration::from_secs(30),
            resume_grace: Duration::from_millis(10),
        }
    }

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, host.parse().unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, o.parse().unwrap());
        }
        h
    }

    #[test]
    fn origins_are_checked_against_the_allow_list_and_the_own_host() {
        let s = settings(&["https://app.example.org"]);
        assert!(origin_allowed(&s, &headers(None, "api:8080")));
        assert!(origin_allowed(
            &s,
            &headers(Some("https://app.example.org"), "api:8080")
        ));
        assert!(origin_allowed(&s, &headers(Some("http://api:8080"), "api:8080")));
        assert!(!origin_allowed(&s, &headers(Some("https://evil.example"), "api:8080")));
        assert!(origin_allowed(
            &settings(&["*"]),
            &headers(Some("https://evil.example"), "api:8080")
        ));
    }
}
