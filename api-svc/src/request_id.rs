//! The `X-Request-ID` of the request being served.
//!
//! The id is taken from the client when it is sane (1–128 characters of `[A-Za-z0-9._:-]`)
//! and generated (UUIDv7) otherwise. It is kept in a task-local for the duration of the
//! request so that error bodies, written far from the handler, can quote it.

use http::HeaderValue;
use uuid::Uuid;

/// Header carrying the request id, both ways.
pub const HEADER: &str = "x-request-id";

/// Longest request id accepted from a client.
const MAX_LEN: usize = 128;

tokio::task_local! {
    static CURRENT: RequestId;
}

/// The id of one HTTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId {
    value: String,
    generated: bool,
}

impl RequestId {
    /// Use the client's id if it is sane, else generate one.
    pub fn from_header(header: Option<&HeaderValue>) -> Self {
        match header.and_then(|h| h.to_str().ok()).filter(|s| is_sane(s)) {
            Some(s) => Self {
                value: s.to_owned(),
                generated: false,
            },
            None => Self::generate(),
        }
    }

    /// A fresh UUIDv7 id.
    pub fn generate() -> Self {
        Self {
            value: Uuid::now_v7().to_string(),
            generated: true,
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// Whether this service generated it (then it is unique and may double as the store
    /// request id of a write without an `Idempotency-Key`).
    pub fn is_generated(&self) -> bool {
        self.generated
    }

    /// Run `fut` with this id as the current one.
    pub async fn scope<F: Future>(self, fut: F) -> F::Output {
        CURRENT.scope(self, fut).await
    }

    /// The id of the request this task serves, if any.
    pub fn current() -> Option<RequestId> {
        CURRENT.try_with(Clone::clone).ok()
    }
}

fn is_sane(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_client_ids_are_kept_and_others_replaced() {
        let kept = RequestId::from_header(Some(&HeaderValue::from_static("abc-123.x:y_z")));
        assert_eq!(kept.as_str(), "abc-123.x:y_z");
        assert!(!kept.is_generated());
        for bad in ["", "a b", "<script>", &"x".repeat(129)] {
            let header = HeaderValue::from_str(bad).unwrap();
            let id = RequestId::from_header(Some(&header));
            assert!(id.is_generated(), "{bad:?} kept");
        }
    }

    #[tokio::test]
    async fn the_current_id_is_visible_inside_the_scope_only() {
        assert!(RequestId::current().is_none());
        let id = RequestId::generate();
        let seen = id.clone().scope(async { RequestId::current() }).await;
        assert_eq!(seen, Some(id));
    }
}
