//! The one error type of the HTTP API and its single mapping to RFC 9457
//! `application/problem+json` responses with a stable `code`.

use std::time::Duration;

use agenda_shared::command::Rejection;
use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::request_id::RequestId;
use crate::store::StoreError;

/// Media type of error bodies.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Everything a request can fail with. Each variant has one status and one stable code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (bad JSON, bad header, bad query string): 400.
    #[error("{0}")]
    BadRequest(String),
    /// A field is semantically invalid: 422.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The offending field.
        field: String,
        /// Why.
        reason: String,
    },
    /// Missing, malformed, expired or revoked credentials: 401.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Authenticated but not allowed: 403.
    #[error("{0}")]
    Forbidden(String),
    /// No such resource (or not visible to the caller): 404.
    #[error("{0} not found")]
    NotFound(String),
    /// The request clashes with the current state: 409.
    #[error("{reason}")]
    Conflict {
        /// Why.
        reason: String,
        /// Conflicting appointments, if any.
        ids: Vec<Uuid>,
    },
    /// `If-Match` names a stale version: 412.
    #[error("the resource changed (current version {current_version})")]
    PreconditionFailed {
        /// The current version.
        current_version: u64,
    },
    /// `X-Agenda-Min-Revision` names a revision no store's log holds yet: 412.
    #[error("revision {wanted} is beyond the latest revision ({latest})")]
    RevisionAhead {
        /// The revision asked for.
        wanted: u64,
        /// The latest revision in any reachable store's log.
        latest: u64,
    },
    /// The `Idempotency-Key` was used before for a different request: 422.
    #[error("the Idempotency-Key was already used for a different request")]
    IdempotencyMismatch,
    /// A configured quota is reached: 422.
    #[error("{reason}")]
    QuotaExceeded {
        /// What ran out (`appointments`, `groups`, `members`, `invitations`).
        quota: String,
        /// The limit.
        limit: u32,
        /// Why.
        reason: String,
    },
    /// The caller's token was revoked (or its user is gone), as the store saw it: 401.
    #[error("{0}")]
    Revoked(String),
    /// Too many attempts: 429 with `Retry-After`.
    #[error("too many attempts; retry later")]
    RateLimited {
        /// When to try again.
        retry_after: Duration,
    },
    /// No store can serve the request right now (quorum lost, election): 503 with `Retry-After`.
    #[error("the agenda is temporarily unavailable")]
    Unavailable {
        /// When to try again.
        retry_after: Duration,
    },
    /// This front has too much work of this kind queued (password hashing) and refused the
    /// request before doing anything: 503 with `Retry-After`.
    #[error("the server is busy; retry later")]
    Overloaded {
        /// When to try again.
        retry_after: Duration,
    },
    /// The body exceeds the limit: 413.
    #[error("the request body is too large")]
    PayloadTooLarge,
    /// The body is not JSON: 415.
    #[error("expected a JSON body (Content-Type: application/json)")]
    UnsupportedMediaType,
    /// The path exists but not with this method: 405.
    #[error("this method is not allowed on this path")]
    MethodNotAllowed,
    /// A bug or a broken dependency: 500. The detail is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Every stable `code`.
pub const CODES: [&str; 15] = [
    "validation_failed",
    "unauthorized",
    "forbidden",
    "not_found",
    "conflict",
    "precondition_failed",
    "idempotency_mismatch",
    "quota_exceeded",
    "rate_limited",
    "unavailable",
    "overloaded",
    "payload_too_large",
    "unsupported_media_type",
    "method_not_allowed",
    "internal",
];

fn code_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(CODES))
        .description(Some("Stable machine-readable code."))
        .build()
}

/// An RFC 9457 problem document as this API writes it. The optional members are present
/// only for the codes named in their descriptions.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// URI naming the problem kind: `urn:agenda:problem:{code}`.
    #[serde(rename = "type")]
    #[schema(pattern = "^urn:agenda:problem:[a-z_]+$")]
    pub kind: String,
    /// Short summary of the kind (the status's reason phrase).
    pub title: String,
    /// HTTP status.
    #[schema(minimum = 400, maximum = 599)]
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
    /// Stable machine-readable code.
    #[schema(schema_with = code_schema)]
    pub code: String,
    /// The request's `X-Request-ID`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub request_id: Option<String>,
    /// The offending field (`validation_failed`, when one field is to blame).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub field: Option<String>,
    /// Appointments in the way (`conflict`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub conflicting_ids: Option<Vec<Uuid>>,
    /// The current version (`precondition_failed` of an `If-Match`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub current_version: Option<u64>,
    /// The latest revision in any store's log (`precondition_failed` of an
    /// `X-Agenda-Min-Revision`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub latest_revision: Option<u64>,
    /// Seconds to wait before retrying (`rate_limited`, `unavailable`, `overloaded`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, minimum = 1)]
    pub retry_after: Option<u64>,
    /// The quota that ran out (`quota_exceeded`): `appointments`, `groups`, `members` or
    /// `invitations`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub quota: Option<String>,
    /// Its limit (`quota_exceeded`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub limit: Option<u32>,
}

impl ApiError {
    /// Shorthand for [`ApiError::Invalid`].
    pub fn invalid(field: &str, reason: impl Into<String>) -> Self {
        ApiError::Invalid {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }

    /// HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Invalid { .. } | ApiError::IdempotencyMismatch | ApiError::QuotaExceeded { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::Unauthorized(_) | ApiError::Revoked(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PreconditionFailed { .. } | ApiError::RevisionAhead { .. } => StatusCode::PRECONDITION_FAILED,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable { .. } | ApiError::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) | ApiError::Invalid { .. } => "validation_failed",
            ApiError::Unauthorized(_) | ApiError::Revoked(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict { .. } => "conflict",
            ApiError::PreconditionFailed { .. } | ApiError::RevisionAhead { .. } => "precondition_failed",
            ApiError::IdempotencyMismatch => "idempotency_mismatch",
            ApiError::QuotaExceeded { .. } => "quota_exceeded",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Unavailable { .. } => "unavailable",
            ApiError::Overloaded { .. } => "overloaded",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Internal(_) => "internal",
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::RateLimited { retry_after }
            | ApiError::Unavailable { retry_after }
            | ApiError::Overloaded { retry_after } => Some(retry_after.as_secs_f64().ceil().max(1.0) as u64),
            _ => None,
        }
    }

    /// The problem document for this error (5xx details are replaced by a generic text).
    pub fn problem(&self) -> Problem {
        let status = self.status();
        let detail = match self {
            ApiError::Internal(_) => "the server could not complete the request".to_owned(),
            other => other.to_string(),
        };
        Problem {
            kind: format!("urn:agenda:problem:{}", self.code()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            code: self.code().to_owned(),
            request_id: RequestId::current().map(|r| r.as_str().to_owned()),
            field: match self {
                ApiError::Invalid { field, .. } => Some(field.clone()),
                _ => None,
            },
            conflicting_ids: match self {
                ApiError::Conflict { ids, .. } => Some(ids.clone()),
                _ => None,
            },
            current_version: match self {
                ApiError::PreconditionFailed { current_version } => Some(*current_version),
                _ => None,
            },
            latest_revision: match self {
                ApiError::RevisionAhead { latest, .. } => Some(*latest),
                _ => None,
            },
            retry_after: self.retry_after(),
            quota: match self {
                ApiError::QuotaExceeded { quota, .. } => Some(quota.clone()),
                _ => None,
            },
            limit: match self {
                ApiError::QuotaExceeded { limit, .. } => Some(*limit),
                _ => None,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(error = %detail, "request failed");
        }
        let problem = self.problem();
        let mut response = (self.status(), Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(secs) = self.retry_after() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if matches!(self, ApiError::Unauthorized(_) | ApiError::Revoked(_)) {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> Self {
        match rejection {
            Rejection::Invalid { field, reason } => ApiError::Invalid { field, reason },
            Rejection::Forbidden { reason } => ApiError::Forbidden(reason),
            Rejection::NotFound { entity } => ApiError::NotFound(entity),
            Rejection::Conflict { reason, ids } => ApiError::Conflict { reason, ids },
            Rejection::PreconditionFailed { current_version } => ApiError::PreconditionFailed { current_version },
            Rejection::IdempotencyMismatch => ApiError::IdempotencyMismatch,
            Rejection::Unauthenticated { reason } => ApiError::Revoked(reason),
            Rejection::QuotaExceeded { quota, limit, reason } => ApiError::QuotaExceeded { quota, limit, reason },
            Rejection::RateLimited { retry_after_ms, .. } => ApiError::RateLimited {
                retry_after: std::time::Duration::from_millis(retry_after_ms.max(0) as u64),
            },
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable { retry_after } => ApiError::Unavailable { retry_after },
            StoreError::CommandTooLarge => ApiError::PayloadTooLarge,
            other => ApiError::Internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rejection_maps_to_its_status_and_code() {
        let cases = [
            (Rejection::invalid("title", "empty"), 422, "validation_failed"),
            (Rejection::forbidden("no"), 403, "forbidden"),
            (Rejection::not_found("appointment"), 404, "not_found"),
            (
                Rejection::Conflict {
                    reason: "overlap".into(),
                    ids: vec![Uuid::nil()],
                },
                409,
                "conflict",
            ),
            (
                Rejection::PreconditionFailed { current_version: 3 },
                412,
                "precondition_failed",
            ),
            (Rejection::IdempotencyMismatch, 422, "idempotency_mismatch"),
            (
                Rejection::Unauthenticated {
                    reason: "revoked".into(),
                },
                401,
                "unauthorized",
            ),
            (
                Rejection::QuotaExceeded {
                    quota: "groups".into(),
                    limit: 3,
                    reason: "too many".into(),
                },
                422,
                "quota_exceeded",
            ),
            (
                Rejection::RateLimited {
                    reason: "slow down".into(),
                    retry_after_ms: 1500,
                },
                429,
                "rate_limited",
            ),
        ];
        for (rejection, status, code) in cases {
            assert_eq!(rejection.code(), code);
            let e = ApiError::from(rejection);
            assert_eq!(e.status().as_u16(), status);
            assert_eq!(e.code(), code);
        }
    }

    #[test]
    fn a_command_the_store_finds_too_large_is_a_413() {
        let e = ApiError::from(StoreError::CommandTooLarge);
        assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(e.code(), "payload_too_large");
    }

    #[test]
    fn a_revision_ahead_is_a_failed_precondition() {
        let e = ApiError::RevisionAhead { wanted: 10, latest: 3 };
        assert_eq!((e.status().as_u16(), e.code()), (412, "precondition_failed"));
        assert_eq!(e.problem().latest_revision, Some(3));
    }

    #[test]
    fn internal_errors_say_nothing_internal() {
        let p = ApiError::Internal("sqlite exploded at /secret/path".into()).problem();
        assert_eq!(p.status, 500);
        assert!(!p.detail.contains("sqlite"));
    }

    #[test]
    fn conflict_and_retry_extensions_are_present() {
        let p = ApiError::Conflict {
            reason: "overlap".into(),
            ids: vec![Uuid::nil()],
        }
        .problem();
        assert_eq!(p.conflicting_ids, Some(vec![Uuid::nil()]));
        let r = ApiError::RateLimited {
            retry_after: Duration::from_millis(1500),
        };
        let response = r.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    }

    #[test]
    fn an_overloaded_front_says_so_and_when_to_retry() {
        let e = ApiError::Overloaded {
            retry_after: Duration::from_secs(1),
        };
        assert_eq!((e.status().as_u16(), e.code()), (503, "overloaded"));
        assert!(CODES.contains(&e.code()));
        assert_eq!(e.problem().retry_after, Some(1));
        assert_eq!(e.into_response().headers()[header::RETRY_AFTER], "1");
    }
}
