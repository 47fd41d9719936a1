//! Successful responses: JSON with a status, `X-Agenda-Revision` and, for appointments,
//! an `ETag` carrying the version (quoted, as RFC 9110 wants; `If-Match` takes it back).

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

/// Response header carrying the revision a write was applied at or a read was served at.
pub const REVISION_HEADER: &str = "x-agenda-revision";

/// A JSON answer.
#[derive(Debug)]
pub struct Reply<T> {
    status: StatusCode,
    revision: Option<u64>,
    etag: Option<u64>,
    body: T,
}

impl<T: Serialize> Reply<T> {
    /// 200 with the revision.
    pub fn ok(revision: u64, body: T) -> Self {
        Self {
            status: StatusCode::OK,
            revision: Some(revision),
            etag: None,
            body,
        }
    }

    /// 201 with the revision.
    pub fn created(revision: u64, body: T) -> Self {
        Self {
            status: StatusCode::CREATED,
            ..Self::ok(revision, body)
        }
    }

    /// 202 with the revision (the request was recorded; its effect waits for somebody else).
    pub fn accepted(revision: u64, body: T) -> Self {
        Self {
            status: StatusCode::ACCEPTED,
            ..Self::ok(revision, body)
        }
    }

    /// 200 without a revision (answers that do not come from the replicated state).
    pub fn plain(body: T) -> Self {
        Self {
            status: StatusCode::OK,
            revision: None,
            etag: None,
            body,
        }
    }

    /// Add `ETag: "<version>"`.
    pub fn etag(mut self, version: u64) -> Self {
        self.etag = Some(version);
        self
    }
}

fn add_revision(response: &mut Response, revision: Option<u64>) {
    if let Some(r) = revision {
        response.headers_mut().insert(REVISION_HEADER, HeaderValue::from(r));
    }
}

impl<T: Serialize> IntoResponse for Reply<T> {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        add_revision(&mut response, self.revision);
        if let Some(v) = self.etag
            && let Ok(value) = HeaderValue::from_str(&format!("\"{v}\""))
        {
            response.headers_mut().insert(header::ETAG, value);
        }
        response
    }
}

/// 204 with the revision of the write.
#[derive(Debug)]
pub struct NoContent(pub u64);

impl IntoResponse for NoContent {
    fn into_response(self) -> Response {
        let mut response = StatusCode::NO_CONTENT.into_response();
        add_revision(&mut response, Some(self.0));
        response
    }
}

/// A non-JSON body (iCalendar, metrics text) with its content type.
#[derive(Debug)]
pub struct Text {
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Revision it was read at, if any.
    pub revision: Option<u64>,
    /// The body.
    pub body: String,
}

impl IntoResponse for Text {
    fn into_response(self) -> Response {
        let mut response = self.body.into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        add_revision(&mut response, self.revision);
        response
    }
}
