//! `GET /api/admin/audit/logs`: the replicated audit trail, for operators holding the
//! `AUDIT_API_TOKEN` (header `X-Audit-Token`, compared in constant time). The route
//! answers 404, like an unknown path, when no token is configured.

use agenda_shared::model::AuditEntry;
use agenda_shared::query::AuditQuery;
use agenda_shared::query::MAX_PAGE;
use axum::extract::State;
use http::HeaderMap;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::extract::{ApiQuery, ReadMeta, ReadParams};
use super::reply::Reply;
use super::rules::{self, MAX_FILTER};
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use crate::views::{parse_time, rfc3339};

/// Header carrying the audit token.
pub const AUDIT_TOKEN_HEADER: &str = "x-audit-token";
/// Default page size.
const DEFAULT_LIMIT: u32 = 100;

/// Routes of this module.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(audit_logs))
}

/// Audit filters (exact matches).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Component that wrote the row (`store` for commands, `node` for cluster events).
    #[param(schema_with = rules::audit_filter)]
    pub component: Option<String>,
    /// Action (`register_user`, `create_appointment`, ...).
    #[param(schema_with = rules::audit_filter)]
    pub action: Option<String>,
    /// `info` (accepted) or `warn` (rejected).
    #[param(schema_with = rules::audit_filter)]
    pub level: Option<String>,
    /// Request id (the write's `Idempotency-Key`, or the `X-Request-ID` generated for it).
    #[param(schema_with = rules::audit_filter)]
    pub request_id: Option<String>,
    /// Since when.
    #[param(schema_with = rules::since)]
    pub since: Option<String>,
    /// Page size (default 100).
    #[param(schema_with = rules::limit)]
    pub limit: Option<u32>,
}

/// One audit row.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    /// Revision of the command.
    pub revision: u64,
    /// When it was proposed (RFC 3339).
    #[schema(format = DateTime)]
    pub at: String,
    /// Component that wrote the row.
    pub component: String,
    /// Action.
    pub action: String,
    /// Acting user (`null` for registrations and node events).
    #[schema(required = true)]
    pub actor: Option<Uuid>,
    /// `accepted` or the rejection code.
    pub outcome: String,
    /// `info` or `warn`.
    pub level: String,
    /// Request id.
    pub request_id: String,
    /// Node that proposed the command (or wrote the node event).
    pub node: String,
    /// Details of a node event (role transition, membership change); else `null`.
    #[schema(required = true)]
    pub detail: Option<String>,
}

impl From<AuditEntry> for AuditView {
    fn from(e: AuditEntry) -> Self {
        Self {
            revision: e.revision,
            at: rfc3339(e.at_ms),
            component: e.component,
            action: e.action,
            actor: e.actor,
            outcome: e.outcome,
            level: e.level,
            request_id: e.request_id,
            node: e.node,
            detail: e.detail,
        }
    }
}

/// A page of audit rows, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub entries: Vec<AuditView>,
}

fn check_token(app: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &app.audit_token else {
        return Err(ApiError::NotFound("route".into()));
    };
    let given = headers
        .get(AUDIT_TOKEN_HEADER)
        .ok_or(ApiError::Unauthorized("X-Audit-Token is required"))?;
    if bool::from(given.as_bytes().ct_eq(expected.expose().as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::Forbidden("the audit token is wrong".into()))
    }
}

fn filter(field: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if v.chars().count() > MAX_FILTER || v.chars().any(char::is_control) => Err(ApiError::invalid(
            field,
            format!("must be at most {MAX_FILTER} printable characters"),
        )),
        other => Ok(other.filter(|v| !v.is_empty())),
    }
}

async fn read_audit(app: &AppState, read: ReadMeta, q: AuditParams) -> Result<(u64, AuditPage), ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid("limit", format!("must be between 1 and {MAX_PAGE}")));
    }
    let query = AuditQuery {
        component: filter("component", q.component)?,
        action: filter("action", q.action)?,
        level: filter("level", q.level)?,
        request_id: filter("request_id", q.request_id)?,
        since_ms: q.since.as_deref().map(|s| parse_time("since", s)).transpose()?,
        limit,
    };
    let (revision, entries) = app.query(query, read.consistency).await?;
    Ok((
        revision,
        AuditPage {
            entries: entries.into_iter().map(Into::into).collect(),
        },
    ))
}

/// Audit rows, newest first (needs `X-Audit-Token`).
#[utoipa::path(get, path = "/api/admin/audit/logs", tag = "operations", security(("audit_token" = [])),
    params(AuditParams, ReadParams),
    responses((status = 200, description = "Audit rows", body = AuditPage),
        (status = 401, description = "unauthorized: no `X-Audit-Token`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "forbidden: a wrong `X-Audit-Token`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found: the route is disabled (no `AUDIT_API_TOKEN` configured)", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "validation_failed: a malformed header", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "precondition_failed: `X-Agenda-Min-Revision` is beyond the latest revision", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "unavailable", body = Problem, content_type = "application/problem+json")))]
async fn audit_logs(
    State(app): State<AppState>,
    headers: HeaderMap,
    read: ReadMeta,
    ApiQuery(q): ApiQuery<AuditParams>,
) -> Result<Reply<AuditPage>, ApiError> {
    check_token(&app, &headers)?;
    let (revision, page) = read_audit(&app, read, q).await?;
    Ok(Reply::ok(revision, page))
}
