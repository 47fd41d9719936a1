//! What went wrong in a store RPC, as the store tells its callers: a stable [`ErrorKind`]
//! in the `x-agenda-error` metadata of the gRPC status, and a retry hint. The store writes
//! them in one place (its `From<StoreError> for Status`), its callers (a forwarding store,
//! the API's store pool) read them here.

use std::time::Duration;

/// gRPC metadata key naming the [`ErrorKind`] of a failed store call, so a caller can tell
/// "the leader moved" from "the quorum is gone" from a transport failure (which has none).
pub const ERROR_KIND_KEY: &str = "x-agenda-error";
/// gRPC metadata key carrying a retry hint in milliseconds on `UNAVAILABLE`.
pub const RETRY_AFTER_KEY: &str = "x-agenda-retry-after-ms";

/// The kinds of store failures. Their text form (`as_str`) is the wire contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// This store is not the leader (a forwarded call reached a former leader).
    NotLeader,
    /// No leader is known (election under way, or the quorum is lost).
    NoLeader,
    /// The write or read-index did not reach a quorum in time (a write's outcome is then
    /// unknown: retry it with the same request id).
    QuorumUnavailable,
    /// The replica did not apply the requested revision in time.
    RevisionNotReached,
    /// A `local` read on a replica that lost touch with the leader.
    StaleReplica,
    /// The request could not be decoded.
    BadRequest,
    /// The proposed command is larger than [`crate::command::MAX_COMMAND_BYTES`]: refused
    /// before it reaches the log (the same request will always be refused).
    CommandTooLarge,
    /// A membership change was refused.
    Membership,
    /// Local storage failed.
    Storage,
    /// The Raft core stopped.
    Fatal,
    /// The store is shutting down.
    ShuttingDown,
}

impl ErrorKind {
    /// Every kind.
    pub const ALL: [ErrorKind; 11] = [
        ErrorKind::NotLeader,
        ErrorKind::NoLeader,
        ErrorKind::QuorumUnavailable,
        ErrorKind::RevisionNotReached,
        ErrorKind::StaleReplica,
        ErrorKind::BadRequest,
        ErrorKind::CommandTooLarge,
        ErrorKind::Membership,
        ErrorKind::Storage,
        ErrorKind::Fatal,
        ErrorKind::ShuttingDown,
    ];

    /// Stable text form, sent in [`ERROR_KIND_KEY`].
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotLeader => "not_leader",
            ErrorKind::NoLeader => "no_leader",
            ErrorKind::QuorumUnavailable => "quorum_unavailable",
            ErrorKind::RevisionNotReached => "revision_not_reached",
            ErrorKind::StaleReplica => "stale_replica",
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::CommandTooLarge => "command_too_large",
            ErrorKind::Membership => "membership",
            ErrorKind::Storage => "storage",
            ErrorKind::Fatal => "fatal",
            ErrorKind::ShuttingDown => "shutting_down",
        }
    }

    /// Parse [`ErrorKind::as_str`]'s form.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The kind a store put on `status`; `None` when the call never reached a store's
    /// service (connection refused or reset, a timeout) or the status came from elsewhere.
    pub fn of(status: &tonic::Status) -> Option<Self> {
        status
            .metadata()
            .get(ERROR_KIND_KEY)
            .and_then(|v| v.to_str().ok())
            .and_then(Self::parse)
    }

    /// Whether another store (or the same one, later) may serve the same request: the
    /// failure says nothing about the request itself.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorKind::NotLeader
                | ErrorKind::NoLeader
                | ErrorKind::QuorumUnavailable
                | ErrorKind::RevisionNotReached
                | ErrorKind::StaleReplica
                | ErrorKind::ShuttingDown
        )
    }

    /// Put this kind (and, for `UNAVAILABLE`, the retry hint) on `status`.
    pub fn mark(self, status: &mut tonic::Status, retry_after: Duration) {
        status.metadata_mut().insert(
            ERROR_KIND_KEY,
            tonic::metadata::MetadataValue::from_static(self.as_str()),
        );
        if status.code() == tonic::Code::Unavailable {
            status.metadata_mut().insert(
                RETRY_AFTER_KEY,
                tonic::metadata::MetadataValue::from(retry_after.as_millis() as u64),
            );
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The retry hint a store put on `status`.
pub fn retry_after(status: &tonic::Status) -> Option<Duration> {
    status
        .metadata()
        .get(RETRY_AFTER_KEY)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_a_status() {
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::parse(kind.as_str()), Some(kind));
            let mut status = tonic::Status::unavailable("x");
            kind.mark(&mut status, Duration::from_millis(250));
            assert_eq!(ErrorKind::of(&status), Some(kind));
            assert_eq!(retry_after(&status), Some(Duration::from_millis(250)));
        }
        assert_eq!(ErrorKind::of(&tonic::Status::unavailable("connection refused")), None);
        let mut bad = tonic::Status::invalid_argument("x");
        ErrorKind::BadRequest.mark(&mut bad, Duration::from_secs(1));
        assert_eq!(retry_after(&bad), None, "only UNAVAILABLE carries a hint");
        assert!(!ErrorKind::BadRequest.is_transient() && ErrorKind::StaleReplica.is_transient());
    }
}
