//! Operations: `/healthz` (the process serves), `/readyz` (a store is reachable and knows
//! a leader; worked out at most once a second for every caller, see
//! [`crate::readiness`]), `/metrics` (Prometheus) and `/api/openapi.json`.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::reply::{Reply, Text};
use crate::error::{ApiError, Problem};
use crate::readiness::Ready;
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
    /// `ok` (health) or `ready` (readiness).
    #[schema(pattern = "^(ok|ready)$")]
    pub status: String,
    /// This API front's node id.
    pub node: String,
    /// The store that answered (readiness; `null` for health).
    #[schema(required = true)]
    pub store: Option<String>,
    /// The leader that store knows (readiness; `null` for health).
    #[schema(required = true)]
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

/// Some store is reachable and knows a leader (as found at most a second ago).
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "Ready", body = Health),
        (status = 503, description = "unavailable", body = Problem, content_type = "application/problem+json")))]
async fn readyz(State(app): State<AppState>) -> Result<Reply<Health>, ApiError> {
    let Ready { store, leader_id } =
        app.readiness
            .get(|| first_store_with_a_leader(&app))
            .await
            .ok_or(ApiError::Unavailable {
                retry_after: crate::readiness::READINESS_TTL,
            })?;
    Ok(Reply::plain(Health {
        status: "ready".into(),
        node: app.node_id.clone(),
        store: Some(store),
        leader_id: Some(leader_id),
    }))
}

/// Ask the stores in order of preference for their status; the first that knows a leader.
async fn first_store_with_a_leader(app: &AppState) -> Option<Ready> {
    for store in app.pool.addrs() {
        if let Ok(status) = app.pool.status_of(&store).await
            && let Some(leader_id) = status.leader_id
        {
            return Some(Ready { store, leader_id });
        }
    }
    None
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Metrics", content_type = "text/plain", body = String)))]
async fn metrics(State(app): State<AppState>) -> Text {
    app.metrics.password_hash_jobs(app.passwords.jobs());
    app.metrics.store_alarms(&app.sidecars.borrow());
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
