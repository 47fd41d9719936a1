//! Operations: `/healthz` (the process serves), `/readyz` (a store is reachable and knows
//! a leader), `/metrics` (Prometheus) and `/api/openapi.json`.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::reply::{Reply, Text};
use crate::error::{ApiError, Problem};
use crate::state::AppState;

/// Routes of this module.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi_json))
}

/// Health or readiness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `ready`.
    pub status: String,
    /// This API front's node id.
    pub node: String,
    /// The store that answered (readiness).
    pub store: Option<String>,
    /// The leader that store knows (readiness).
    pub leader_id: Option<u64>,
}

/// The process is up (does not depend on the stores).
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Serving", body = Health)))]
async fn healthz(State(app): State<AppState>) -> Reply<Health> {
    Reply::plain(Health {
        status: "ok".into(),
        node: app.node_id.clone(),
        store: None,
        leader_id: None,
    })
}

/// Some store is reachable and knows a leader.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "Ready", body = Health),
        (status = 503, description = "unavailable", body = Problem, content_type = "application/problem+json")))]
async fn readyz(State(app): State<AppState>) -> Result<Reply<Health>, ApiError> {
    for addr in app.pool.addrs() {
        if let Ok(status) = app.pool.status_of(&addr).await
            && let Some(leader) = status.leader_id
        {
            return Ok(Reply::plain(Health {
                status: "ready".into(),
                node: app.node_id.clone(),
                store: Some(addr),
                leader_id: Some(leader),
            }));
        }
    }
    Err(ApiError::Unavailable {
        retry_after: std::time::Duration::from_secs(1),
    })
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Metrics", content_type = "text/plain", body = String)))]
async fn metrics(State(app): State<AppState>) -> Text {
    Text {
        content_type: "text/plain; version=0.0.4; charset=utf-8",
        revision: None,
        body: app.metrics.render(),
    }
}

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
async fn openapi_json(State(app): State<AppState>) -> Text {
    Text {
        content_type: "application/json",
        revision: None,
        body: app.openapi.get().map(|d| d.as_str().to_owned()).unwrap_or_default(),
    }
}
