//! The HTTP surface: one module per area, each exposing `router()` next to its handlers;
//! [`build`] merges them (adding an area is one `.merge` line), derives the OpenAPI
//! document from the same routes, and wraps everything in the cross-cutting layers:
//! request id + metrics ([`observe`]), body limit, panic catcher, problem+json fallbacks.

pub mod admin;
pub mod agenda;
pub mod appointments;
pub mod cluster;
pub mod docs;
pub mod extract;
pub mod feeds;
pub mod groups;
pub mod notifications;
pub mod ops;
pub mod reply;
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
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
use crate::request_id::{self, RequestId};
use crate::state::AppState;

/// Every area's routes, with their documentation.
fn areas() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(docs::ApiDoc::openapi())
        .merge(users::router())
        .merge(appointments::router())
        .merge(agenda::router())
        .merge(groups::router())
        .merge(feeds::router())
        .merge(notifications::router())
        .merge(admin::router())
        .merge(cluster::router())
        .merge(ops::router())
        .merge(crate::ws::router())
        .merge(ui::router())
}

/// The OpenAPI document of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    areas().split_for_parts().1
}

/// The complete router over `state`; bodies are limited to `max_body` bytes.
pub(crate) fn build(state: AppState, max_body: usize) -> Result<Router, ApiError> {
    let (router, doc) = areas().split_for_parts();
    let json = doc
        .to_pretty_json()
        .map_err(|e| ApiError::Internal(format!("openapi: {e}")))?;
    let _ = state.openapi.set(Arc::new(json));
    Ok(router
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(CatchPanicLayer::custom(panicked))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(from_fn_with_state(state.clone(), observe))
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
    app.metrics
        .observe_http(method.as_str(), &route, status.as_u16(), elapsed);
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
        let doc = openapi();
        let mut documented = BTreeSet::new();
        for (path, item) in &doc.paths.paths {
            let ops = [
                ("GET", item.get.is_some()),
                ("POST", item.post.is_some()),
                ("PUT", item.put.is_some()),
                ("PATCH", item.patch.is_some()),
                ("DELETE", item.delete.is_some()),
            ];
            for (method, present) in ops {
                if present {
                    documented.insert((method.to_owned(), path.clone()));
                }
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
        let doc = serde_json::to_value(openapi()).unwrap();
        let mut seen = BTreeSet::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                let id = op["operationId"].as_str().unwrap().to_owned();
                assert!(seen.insert(id.clone()), "duplicate operationId {id}");
            }
        }
    }
}
