//! `GET /api/admin/audit/logs`: the replicated audit trail, for operators holding the
//! `AUDIT_API_TOKEN` (header `X-Audit-Token`, compared in constant time). The route
//! answers 404, like an unknown path, when no token is configured.

use agenda_shared::model::AuditEntry;
use agenda_shared::query::{MAX_PAGE, Query, QueryResult};
use axum::extract::State;
use http::HeaderMap;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::docs::ReadErrors;
use super::extract::{ApiQuery, ReadMeta};
use super::reply::Reply;
use crate::error::ApiError;
use crate::state::AppState;
use crate::views::{parse_time, rfc3339};

/// Header carrying the audit token.
pub const AUDIT_TOKEN_HEADER: &str = "x-audit-token";
/// Default page size.
const DEFAULT_LIMIT: u32 = 100;
/// Longest filter value.
const MAX_FILTER: usize = 200;

/// Routes of this module.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(audit_logs))
}

/// Audit filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Component that wrote the row (`store` for commands, `node` for cluster events).
    pub component: Option<String>,
    /// Action (`register_user`, `create_appointment`, ...).
    pub action: Option<String>,
    /// `info` (accepted) or `warn` (rejected).
    pub level: Option<String>,
    /// Request id (the write's `Idempotency-Key`, or the `X-Request-ID` generated for it).
    pub request_id: Option<String>,
    /// Only rows at or after this instant (RFC 3339).
    pub since: Option<String>,
    /// Page size, 1–500 (default 100).
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
    /// Acting user.
    pub actor: Option<Uuid>,
    /// `accepted` or the rejection code.
    pub outcome: String,
    /// `info` or `warn`.
    pub level: String,
    /// Request id.
    pub request_id: String,
    /// Node that proposed the command (or wrote the node event).
    pub node: String,
    /// Details of a node event (role transition, membership change).
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
        Some(v) if v.len() > MAX_FILTER || v.chars().any(char::is_control) => Err(ApiError::invalid(
            field,
            format!("must be at most {MAX_FILTER} printable characters"),
        )),
        other => Ok(other.filter(|v| !v.is_empty())),
    }
}

async fn read_audit(app: &AppState, read: ReadMeta, q: AuditQuery) -> Result<(u64, AuditPage), ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid("limit", format!("must be between 1 and {MAX_PAGE}")));
    }
    let query = Query::Audit {
        component: filter("component", q.component)?,
        action: filter("action", q.action)?,
        level: filter("level", q.level)?,
        request_id: filter("request_id", q.request_id)?,
        since_ms: q.since.as_deref().map(|s| parse_time("since", s)).transpose()?,
        limit,
    };
    match app.query(query, read.consistency).await? {
        (revision, QueryResult::Audit { entries }) => Ok((
            revision,
            AuditPage {
                entries: entries.into_iter().map(Into::into).collect(),
            },
        )),
        (_, other) => Err(ApiError::Internal(format!("expected audit rows, got {other:?}"))),
    }
}

/// Audit rows, newest first (needs `X-Audit-Token`).
#[utoipa::path(get, path = "/api/admin/audit/logs", tag = "operations", params(AuditQuery,
        ("X-Audit-Token" = String, Header, description = "The configured AUDIT_API_TOKEN")),
    responses((status = 200, description = "Audit rows", body = AuditPage), ReadErrors))]
async fn audit_logs(
    State(app): State<AppState>,
    headers: HeaderMap,
    read: ReadMeta,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Reply<AuditPage>, ApiError> {
    check_token(&app, &headers)?;
    let (revision, page) = read_audit(&app, read, q).await?;
    Ok(Reply::ok(revision, page))
}
