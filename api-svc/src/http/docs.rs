//! The OpenAPI 3.1 document (utoipa): the top-level description, the security schemes,
//! the reusable error response sets, and [`ROUTES`], the one list of every route the router
//! serves (a test checks it against both the document and the router).

use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
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
    ("POST", "/api/groups/{id}/join"),
    ("POST", "/api/groups/{id}/decline"),
    ("GET", "/api/me/group-invitations"),
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

/// The document's fixed parts; paths come from the handlers' `#[utoipa::path]`, and
/// [`super::contract::refine`] adds what utoipa's model cannot say.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Agenda API",
        description = "Replicated multi-user calendar. Errors are RFC 9457 `application/problem+json` \
documents with a stable `code`. Writes accept `Idempotency-Key`; reads accept \
`X-Agenda-Min-Revision` (read-your-writes on any slot) and `?consistency=local`; \
responses carry `X-Request-ID`, and reads and writes `X-Agenda-Revision`. Live notifications: `GET /ws`. \
Rules no JSON Schema keyword can state (an end after its start, a range of at most 366 days, an \
e-mail address of at most 254 bytes, rules that depend on stored state) are in the descriptions; \
the server answers 422 `validation_failed` naming the `field` when they are broken."
    ),
    components(schemas(Problem)),
    modifiers(&SecuritySchemes),
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

/// Adds the `bearer` scheme (JWT HS256, user tokens) and `audit_token` (the operators'
/// `X-Audit-Token`).
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.bearer_format = Some("JWT".into());
        http.description = Some("A token from `POST /register`, `POST /login` or `PUT /api/me/password`.".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(http));
        components.add_security_scheme(
            "audit_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Audit-Token",
                "The configured `AUDIT_API_TOKEN`.",
            ))),
        );
    }
}

/// Errors of every authenticated read.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum ReadErrors {
    /// Malformed `X-Agenda-Min-Revision`.
    #[response(
        status = 400,
        description = "validation_failed: a malformed header",
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
    /// No such resource, or not visible to the caller.
    #[response(status = 404, description = "not_found", content_type = "application/problem+json")]
    NotFound(Problem),
    /// `X-Agenda-Min-Revision` names a revision beyond every store's log.
    #[response(
        status = 412,
        description = "precondition_failed: `X-Agenda-Min-Revision` is beyond the latest revision",
        content_type = "application/problem+json"
    )]
    Precondition(Problem),
    /// An invalid query parameter (bad time, range over 366 days, bad `consistency`, ...).
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

/// Errors of every authenticated write.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum WriteErrors {
    /// Malformed JSON, `Idempotency-Key` or `If-Match`.
    #[response(
        status = 400,
        description = "validation_failed: malformed JSON or header",
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
    /// No such resource, or not visible to the caller.
    #[response(status = 404, description = "not_found", content_type = "application/problem+json")]
    NotFound(Problem),
    /// Clashes with the current state (`conflicting_ids`).
    #[response(status = 409, description = "conflict", content_type = "application/problem+json")]
    Conflict(Problem),
    /// An invalid field (`field`), the `Idempotency-Key` reused for another request, or a
    /// quota reached (`quota`, `limit`).
    #[response(
        status = 422,
        description = "validation_failed, idempotency_mismatch or quota_exceeded",
        content_type = "application/problem+json"
    )]
    Invalid(Problem),
    /// No quorum (`Retry-After`). The write may still be applied: retry with the same
    /// `Idempotency-Key` to learn its outcome.
    #[response(status = 503, description = "unavailable", content_type = "application/problem+json")]
    Unavailable(Problem),
}

/// Errors of a request with a JSON body.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum BodyErrors {
    /// Body over the limit (`MAX_BODY_BYTES`).
    #[response(
        status = 413,
        description = "payload_too_large",
        content_type = "application/problem+json"
    )]
    TooLarge(Problem),
    /// `Content-Type` is not JSON.
    #[response(
        status = 415,
        description = "unsupported_media_type",
        content_type = "application/problem+json"
    )]
    MediaType(Problem),
}

/// Too many attempts (`Retry-After`): logins and registrations per client IP, password
/// checks per account, invitations per inviter, unknown feed URLs per client IP.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum RateLimited {
    /// Slow down.
    #[response(
        status = 429,
        description = "rate_limited",
        content_type = "application/problem+json"
    )]
    TooMany(Problem),
}

/// The 503 of the operations that hash or check a password: besides `unavailable`, the
/// front may have too many password hashing jobs queued. Listed after [`WriteErrors`], it
/// replaces that set's 503 (one answer per status).
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum PasswordWork {
    /// No store can serve the request, or the hashing queue is full (`Retry-After`).
    #[response(
        status = 503,
        description = "unavailable, or overloaded: too many password checks are queued on this front (nothing was done)",
        content_type = "application/problem+json"
    )]
    Unavailable(Problem),
}

/// `If-Match` names a stale version.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum Stale {
    /// The resource changed (`current_version`).
    #[response(
        status = 412,
        description = "precondition_failed: `If-Match` is stale",
        content_type = "application/problem+json"
    )]
    Precondition(Problem),
}
