//! The OpenAPI 3.1 document (utoipa): the top-level description, the bearer scheme, the
//! reusable error response sets, and [`ROUTES`], the one list of every route the router
//! serves (a test checks it against both the document and the router).

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi};

use crate::error::Problem;

/// Every `(method, path)` the router serves, in axum/OpenAPI path syntax.
pub const ROUTES: &[(&str, &str)] = &[
    ("POST", "/register"),
    ("POST", "/login"),
    ("GET", "/api/me"),
    ("PATCH", "/api/me"),
    ("GET", "/api/me/profile"),
    ("PATCH", "/api/me/profile"),
    ("PUT", "/api/me/password"),
    ("GET", "/api/me/feed"),
    ("POST", "/api/me/feed/rotate"),
    ("POST", "/api/appointments"),
    ("GET", "/api/appointments"),
    ("GET", "/api/appointments/{id}"),
    ("PATCH", "/api/appointments/{id}"),
    ("DELETE", "/api/appointments/{id}"),
    ("POST", "/api/appointments/{id}/accept"),
    ("POST", "/api/appointments/{id}/reject"),
    ("GET", "/api/appointments/{id}/my-status"),
    ("POST", "/api/groups"),
    ("GET", "/api/groups"),
    ("GET", "/api/groups/{id}"),
    ("PATCH", "/api/groups/{id}"),
    ("DELETE", "/api/groups/{id}"),
    ("POST", "/api/groups/{id}/members"),
    ("PUT", "/api/groups/{id}/members/{user_id}"),
    ("DELETE", "/api/groups/{id}/members/{user_id}"),
    ("GET", "/api/groups/{id}/agenda"),
    ("GET", "/api/agenda"),
    ("GET", "/api/agenda.ics"),
    ("GET", "/feeds/{file}"),
    ("GET", "/api/notifications"),
    ("GET", "/api/notifications/unread"),
    ("POST", "/api/notifications/{id}/read"),
    ("POST", "/api/notifications/read-all"),
    ("GET", "/api/admin/audit/logs"),
    ("GET", "/api/cluster/status"),
    ("GET", "/ws"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/api/openapi.json"),
];

/// The document's fixed parts; paths come from the handlers' `#[utoipa::path]`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Agenda API",
        description = "Replicated multi-user calendar. Errors are RFC 9457 `application/problem+json` \
documents with a stable `code`. Writes accept `Idempotency-Key`; reads accept \
`X-Agenda-Min-Revision` (read-your-writes on any slot) and `?consistency=local`; \
responses carry `X-Request-ID` and `X-Agenda-Revision`. Live notifications: `GET /ws`."
    ),
    components(schemas(Problem)),
    modifiers(&BearerScheme),
    tags(
        (name = "accounts", description = "Registration, login, profile"),
        (name = "appointments", description = "Personal and group appointments"),
        (name = "groups", description = "Groups, members and the group agenda"),
        (name = "agenda", description = "The caller's agenda and its iCalendar export"),
        (name = "notifications", description = "Notifications (also pushed on /ws)"),
        (name = "operations", description = "Health, readiness, metrics, cluster status, audit"),
        (name = "live", description = "WebSocket notifications")
    )
)]
pub struct ApiDoc;

/// Adds the `bearer` security scheme (JWT HS256).
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.bearer_format = Some("JWT".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(http));
    }
}

/// Errors of the public account routes.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum PublicErrors {
    /// Malformed JSON or header.
    #[response(
        status = 400,
        description = "validation_failed: malformed request",
        content_type = "application/problem+json"
    )]
    BadRequest(Problem),
    /// Wrong credentials.
    #[response(
        status = 401,
        description = "unauthorized",
        content_type = "application/problem+json"
    )]
    Unauthorized(Problem),
    /// Username or e-mail taken.
    #[response(status = 409, description = "conflict", content_type = "application/problem+json")]
    Conflict(Problem),
    /// Body over the limit.
    #[response(
        status = 413,
        description = "payload_too_large",
        content_type = "application/problem+json"
    )]
    TooLarge(Problem),
    /// Not JSON.
    #[response(
        status = 415,
        description = "unsupported_media_type",
        content_type = "application/problem+json"
    )]
    MediaType(Problem),
    /// Invalid field, or Idempotency-Key reused for another request.
    #[response(
        status = 422,
        description = "validation_failed or idempotency_mismatch",
        content_type = "application/problem+json"
    )]
    Invalid(Problem),
    /// Too many attempts (`Retry-After`).
    #[response(
        status = 429,
        description = "rate_limited",
        content_type = "application/problem+json"
    )]
    RateLimited(Problem),
    /// No quorum (`Retry-After`).
    #[response(status = 503, description = "unavailable", content_type = "application/problem+json")]
    Unavailable(Problem),
}

/// Errors of authenticated reads.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum ReadErrors {
    /// Malformed header or query.
    #[response(
        status = 400,
        description = "validation_failed: malformed request",
        content_type = "application/problem+json"
    )]
    BadRequest(Problem),
    /// Missing, invalid, expired or revoked token.
    #[response(
        status = 401,
        description = "unauthorized",
        content_type = "application/problem+json"
    )]
    Unauthorized(Problem),
    /// Not visible to the caller.
    #[response(status = 403, description = "forbidden", content_type = "application/problem+json")]
    Forbidden(Problem),
    /// No such resource.
    #[response(status = 404, description = "not_found", content_type = "application/problem+json")]
    NotFound(Problem),
    /// Invalid parameter (bad time, range over 366 days, ...).
    #[response(
        status = 422,
        description = "validation_failed",
        content_type = "application/problem+json"
    )]
    Invalid(Problem),
    /// No store can serve the read (`Retry-After`).
    #[response(status = 503, description = "unavailable", content_type = "application/problem+json")]
    Unavailable(Problem),
}

/// Errors of authenticated writes.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum WriteErrors {
    /// Malformed JSON, header or `If-Match`.
    #[response(
        status = 400,
        description = "validation_failed: malformed request",
        content_type = "application/problem+json"
    )]
    BadRequest(Problem),
    /// Missing, invalid, expired or revoked token.
    #[response(
        status = 401,
        description = "unauthorized",
        content_type = "application/problem+json"
    )]
    Unauthorized(Problem),
    /// Not allowed.
    #[response(status = 403, description = "forbidden", content_type = "application/problem+json")]
    Forbidden(Problem),
    /// No such resource.
    #[response(status = 404, description = "not_found", content_type = "application/problem+json")]
    NotFound(Problem),
    /// Clashes with the current state (`conflicting_ids`).
    #[response(status = 409, description = "conflict", content_type = "application/problem+json")]
    Conflict(Problem),
    /// `If-Match` is stale (`current_version`).
    #[response(
        status = 412,
        description = "precondition_failed",
        content_type = "application/problem+json"
    )]
    Precondition(Problem),
    /// Body over the limit.
    #[response(
        status = 413,
        description = "payload_too_large",
        content_type = "application/problem+json"
    )]
    TooLarge(Problem),
    /// Not JSON.
    #[response(
        status = 415,
        description = "unsupported_media_type",
        content_type = "application/problem+json"
    )]
    MediaType(Problem),
    /// Invalid field, or Idempotency-Key reused for another request.
    #[response(
        status = 422,
        description = "validation_failed or idempotency_mismatch",
        content_type = "application/problem+json"
    )]
    Invalid(Problem),
    /// Too many password attempts (`Retry-After`).
    #[response(
        status = 429,
        description = "rate_limited",
        content_type = "application/problem+json"
    )]
    RateLimited(Problem),
    /// No quorum (`Retry-After`).
    #[response(status = 503, description = "unavailable", content_type = "application/problem+json")]
    Unavailable(Problem),
}
