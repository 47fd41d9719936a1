//! The HTTP surface: one module per area, each exposing `router()` next to its handlers;
//! [`build`] merges them (adding an area is one line in `area_routers`), derives the OpenAPI
//! document from the same routes, and wraps everything in the cross-cutting layers:
//! request id + metrics ([`observe`]), body limit, panic catcher, problem+json fallbacks.

pub mod admin;
pub mod agenda;
pub mod appointments;
pub mod cluster;
mod contract;
pub mod docs;
pub mod extract;
pub mod feeds;
pub mod group_invitations;
pub mod groups;
pub mod invitations;
pub mod notifications;
pub mod ops;
pub mod reply;
pub mod rules;
mod ui;
pub mod users;

use std::any::Any;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use http::HeaderValue;
use tokio::time::Instant;
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
use crate::request_id::{self, RequestId};
use crate::state::AppState;

/// Every area's routes, with their documentation (adding an area is one line).
fn area_routers() -> [OpenApiRouter<AppState>; 13] {
    [
        users::router(),
        appointments::router(),
        agenda::router(),
        groups::router(),
        group_invitations::router(),
        invitations::router(),
        feeds::router(),
        notifications::router(),
        admin::router(),
        cluster::router(),
        ops::router(),
        crate::ws::router(),
        ui::router(),
    ]
}

/// Every area's routes merged, under the document's fixed parts.
fn areas() -> OpenApiRouter<AppState> {
    area_routers().into_iter().fold(
        OpenApiRouter::with_openapi(docs::ApiDoc::openapi()),
        OpenApiRouter::merge,
    )
}

/// utoipa's document of every route, before [`contract::refine`].
fn openapi_parts() -> utoipa::openapi::OpenApi {
    areas().split_for_parts().1
}

/// The OpenAPI document of every route, as served at `/api/openapi.json`.
pub fn openapi() -> Result<serde_json::Value, ApiError> {
    contract::refine(&openapi_parts()).map_err(|e| ApiError::Internal(format!("openapi: {e}")))
}

/// The complete router over `state`; bodies are limited to `max_body` bytes.
pub(crate) fn build(state: AppState, max_body: usize) -> Result<Router, serde_json::Error> {
    let (router, doc) = areas().split_for_parts();
    let doc = contract::refine(&doc)?;
    let json = serde_json::to_string_pretty(&doc)?;
    let _ = state.openapi.set(Arc::new(json));
    // Requests run in the sidecar's root span (axum serves each connection in a task of
    // its own, which would otherwise start with no span).
    let span = tracing::Span::current();
    Ok(router
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(CatchPanicLayer::custom(panicked))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(from_fn_with_state(state.clone(), observe))
        .layer(axum::middleware::from_fn(move |req: Request, next: Next| {
            next.run(req).instrument(span.clone())
        }))
        .with_state(state))
}

async fn no_route() -> ApiError {
    ApiError::NotFound("route".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

fn panicked(panic: Box<dyn Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    ApiError::Internal(format!("handler panicked: {what}")).into_response()
}

/// Give every request an id (kept in a task-local for error bodies, echoed in
/// `X-Request-ID`) and count it per route template.
async fn observe(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = RequestId::from_header(req.headers().get(request_id::HEADER));
    req.extensions_mut().insert(id.clone());
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let mut response = id.clone().scope(next.run(req)).await;
    if let Ok(v) = HeaderValue::from_str(id.as_str()) {
        response.headers_mut().insert(request_id::HEADER, v);
    }
    let status = response.status();
    let elapsed = started.elapsed();
    app.metrics.observe_http(&method, &route, status.as_u16(), elapsed);
    if status.is_server_error() {
        tracing::warn!(request_id = id.as_str(), %method, route, status = status.as_u16(), ?elapsed, "request failed");
    } else {
        tracing::debug!(request_id = id.as_str(), %method, route, status = status.as_u16(), ?elapsed, "request");
    }
    response
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn the_document_lists_exactly_the_routes() {
        let doc = openapi().unwrap();
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                documented.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
        let listed: BTreeSet<(String, String)> = docs::ROUTES
            .iter()
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
            .collect();
        assert_eq!(documented, listed);
    }

    #[test]
    fn operation_ids_are_unique() {
        let doc = openapi().unwrap();
        let mut seen = BTreeSet::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                let id = op["operationId"].as_str().unwrap().to_owned();
                assert!(seen.insert(id.clone()), "duplicate operationId {id}");
            }
        }
    }

    #[test]
    fn front_door_refusals_are_documented() {
        let doc = openapi().unwrap();
        let op = |path: &str, method: &str| doc["paths"][path][method]["responses"].clone();
        for (path, method) in [
            ("/register", "post"),
            ("/login", "post"),
            ("/api/me", "patch"),
            ("/api/me/profile", "patch"),
            ("/api/me/password", "put"),
        ] {
            let description = op(path, method)["503"]["description"].as_str().unwrap_or("").to_owned();
            assert!(
                description.contains("overloaded") && description.contains("unavailable"),
                "{method} {path}: {description}"
            );
        }
        assert_eq!(op("/api/appointments", "post")["503"]["description"], "unavailable");
        let feed = op("/feeds/{file}", "get");
        assert_eq!(feed["429"]["description"], "rate_limited");
        assert_eq!(feed["429"]["headers"]["Retry-After"]["required"], true);
        let codes = &doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"];
        assert!(codes.as_array().unwrap().contains(&"overloaded".into()), "{codes}");
    }

    /// utoipa keeps one schema per name and silently lets the last area's win: two types
    /// of the same name would leave one route pointing at the other's shape.
    #[test]
    fn schema_names_are_unique_across_areas() {
        let mut seen = std::collections::BTreeMap::new();
        for area in area_routers() {
            let doc = serde_json::to_value(area.into_openapi()).unwrap();
            for (name, schema) in doc["components"]["schemas"].as_object().into_iter().flatten() {
                if let Some(earlier) = seen.insert(name.clone(), schema.clone()) {
                    assert_eq!(&earlier, schema, "two different schemas are named {name}");
                }
            }
        }
    }
}
